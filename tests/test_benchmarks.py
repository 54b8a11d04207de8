"""The benchmark scripts stay runnable and their report says what it must (their timings are
never asserted: benchmarks/ owns them)."""

import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))


def test_run_all_lists_modules_that_exist_and_define_run():
    run_all = importlib.import_module("run_all")
    for name in run_all.MODULES:
        mod = importlib.import_module(name)
        assert callable(mod.run) and callable(mod.main), name


def test_json_and_table_format(tmp_path):
    common = importlib.import_module("common")
    rows = [
        common.entry("a", ratio=2.0, target=3.0, met=False, notes="x"),
        common.entry("b", ratio=None, target=None, met=None),
        common.entry("c", ratio=0.5, target=1.0, met=True, goal="≤", notes="|Δλ| small"),
    ]
    path = tmp_path / "b.json"
    common.write(str(path), rows, {"device": "d"})
    doc = json.loads(path.read_text())
    assert [r["name"] for r in doc["benchmarks"]] == ["a", "b", "c"]
    assert {"ratio", "target", "met", "device"} <= set(doc["benchmarks"][0])
    assert doc["meta"] == {"device": "d"}
    table = common.markdown(rows)
    assert "| a | 2 | 3 | **no** | x |" in table and "| b | — | — | n/a |" in table
    # the direction of a target is shown, and a "|" in the notes cannot split the cell
    assert "| c | 0.5 | ≤ 1 | yes | \\|Δλ\\| small |" in table


@pytest.mark.parametrize("slope", [0.5, 1.0, 2.0])
def test_fit_exponent_recovers_power_laws(slope):
    common = importlib.import_module("common")
    xs = [1.0, 2.0, 4.0, 8.0]
    # t = 3 x^slope exactly: the least-squares slope of log t on log x is slope up to rounding
    assert common.fit_exponent(xs, [3.0 * x**slope for x in xs]) == pytest.approx(slope, abs=1e-12)


@pytest.mark.parametrize("a", [0.1, -0.3])
def test_exponent_stderr_matches_the_hand_computed_value(a):
    common = importlib.import_module("common")
    # log x = 0, 1, 2 and log t = 0, 1 + a, 2: the fitted slope is 1 and intercept a/3, so the
    # residuals are (-a/3, 2a/3, -a/3), SSR = 2a²/3 and SE = sqrt(SSR / (3 - 2) / 2) = |a|/√3.
    # Every step is a few float64 operations on O(1) numbers: agreement to 1e-12 is generous.
    xs, ts = np.exp([0.0, 1.0, 2.0]), np.exp([0.0, 1.0 + a, 2.0])
    assert common.fit_exponent(xs, ts) == pytest.approx(1.0, abs=1e-12)
    assert common.exponent_stderr(xs, ts) == pytest.approx(abs(a) / math.sqrt(3.0), abs=1e-12)
    assert math.isnan(common.exponent_stderr([1.0, 2.0], [1.0, 2.0]))  # 2 points: no residual


def test_roofline_is_the_larger_of_the_two_limits():
    sweep = importlib.import_module("bench_pair_sweep")
    # 1 GB at 10 GB/s = 0.1 s against 1 GFLOP at 100 GFLOP/s = 0.01 s: memory-bound, and back
    assert sweep.roofline_time(1e9, 1e9, 1e10, 1e11) == (0.1, "memory")
    assert sweep.roofline_time(1e9, 1e11, 1e10, 1e11) == (1.0, "compute")


def test_pair_sweep_counts_are_lower_bounds_of_the_compiled_work():
    """The roofline is fair only if the bytes and flops it counts are a minimum: at most what
    XLA's own cost analysis of the compiled sweep says the program moves and does."""
    import jax

    from advlip import data, smoothness
    from advlip.linear import LinearProblem

    sweep = importlib.import_module("bench_pair_sweep")
    n_pairs, d = 32, 64
    t1, t2 = smoothness.sample_pairs(np.random.default_rng(0), n_pairs, d)
    for n in sweep.EXAMPLES:  # both sizes the benchmark runs
        X, y = data.synthetic(jax.random.PRNGKey(0), n=n, d=d)
        prob = LinearProblem(X=X, y=y, eps=sweep.EPS, p=2.0)
        f = jax.jit(
            lambda a, b, prob=prob: smoothness.pair_ratios(
                LinearProblem.grad, a, b, args=(prob,), shard=False
            )[0]
        )
        cost = f.lower(t1, t2).compile().cost_analysis()
        nbytes, flops = sweep.sweep_counts(n_pairs, d, n)
        # the inputs t1, t2 alone are 2·N·d float64s: the count is at least that, and no more
        # than XLA's count of what the program touches
        assert 16 * n_pairs * d <= nbytes <= cost["bytes accessed"], n
        assert 0 < flops <= cost["flops"], n


def _row_names(rows):
    return " ".join(r["name"] for r in rows)


def _every_row_has_a_verdict_or_says_why(rows):
    for r in rows:
        assert {"ratio", "target", "met", "device", "notes"} <= set(r), r["name"]
        if r["met"] is not None:  # a verdict needs a target
            assert r["target"] is not None, r["name"]
        if r["target"] is None:
            assert r["met"] is None and ("no target" in r["notes"] or "not run" in r["notes"]), r


def test_run_all_smoke_path_reports_every_row_with_its_target(tmp_path):
    """run_all's smoke path (bench_hvp_torch at one tiny size, P = 1,057, seconds): the JSON's
    meta, every row's target and verdict, and RESULTS.md from it. Never a time."""
    run_all = importlib.import_module("run_all")
    path, md = tmp_path / "bench.json", tmp_path / "RESULTS.md"
    argv = ["--quick", "--only", "bench_hvp_torch", "--sizes", "16", "--json", str(path)]
    assert run_all.main([*argv, "--results", str(md)]) == 0
    doc = json.loads(path.read_text())
    meta, rows = doc["meta"], doc["benchmarks"]
    assert meta["device"] and meta["date"] and "run_all.py --quick" in meta["command"]
    assert {"python", "jax", "jaxlib", "numpy", "torch"} <= set(meta["versions"])
    _every_row_has_a_verdict_or_says_why(rows)
    names = _row_names(rows)
    for part in ("naive HVP", "factorised tangent", "(CG)", "torch (eager)", "torch.func"):
        assert part in names, part
    assert not any(r["notes"].startswith("crashed") for r in rows)
    have_torch = meta["versions"]["torch"] != "not installed"
    power = [r for r in rows if r["name"].startswith("power iteration:")]
    assert len(power) == 2
    for r in power:
        assert (r["ratio"] is not None) == have_torch
        assert have_torch or r["notes"].startswith("not run: PyTorch missing")
    # the memory row: measured on Linux (/proc), against the stated model
    (mem,) = [r for r in rows if r["name"].startswith("memory:")]
    assert mem["params"] == 1057 and "model 8 B × (8 P + 13 n·d)" in mem["notes"]
    if mem["mem_measured"]:
        assert mem["mem_live_arrays_mb"] > 0 and mem["mem_power_rise_mb"] >= 0
        assert mem["ratio"] == pytest.approx(mem["mem_power_peak_mb"] / mem["model_mb"])
    text = md.read_text()
    assert all(r["name"].replace("|", "\\|") in text for r in rows)
    assert "GPU figures: missing" in text and "bash benchmarks/gpu.sh" in text


def _doc(rows, **meta):
    return {"benchmarks": rows, "meta": meta}


def test_results_md_has_every_row_the_summary_and_the_gpu_line(tmp_path):
    common = importlib.import_module("common")
    results_md = importlib.import_module("results_md")
    rows = [
        common.entry("alpha ratio", ratio=25.0, target=20.0, met=True, goal="≥", notes="ok"),
        common.entry("beta | piped", ratio=0.2, target=0.5, met=False, goal="≥", notes="slow"),
        common.entry("gamma", ratio=None, target=None, met=None, notes="no target: reference"),
    ]
    path = tmp_path / "bench.json"
    common.write(str(path), rows, {"device": "cpu:test", "date": "2026-12-01 00:00 UTC"})
    notes = tmp_path / "NOTES.md"
    notes.write_text("Hand-written analysis stays verbatim.\n")
    text = results_md.render(results_md.load(path), [], notes=notes)
    for name in ("alpha ratio", "beta \\| piped", "gamma"):
        assert f"| {name} |" in text, name
    assert "3 rows: **1 met, 1 not met**, 1 without a verdict" in text
    assert "- beta \\| piped: 0.2 (target ≥ 0.5)" in text
    assert "cpu:test" in text and "2026-12-01 00:00 UTC" in text
    assert "GPU figures: missing" in text and "bash benchmarks/gpu.sh" in text
    assert text.rstrip().endswith("Hand-written analysis stays verbatim.")
    # with a GPU JSON (the GPU benchmark's own format) its device and rows replace the line
    gpu = tmp_path / "gpu.json"
    gpu_row = common.entry("resnet curvature: naive HVP / gradient", ratio=1.5, target=2.0,
                           met=True, goal="≤", notes="float32")  # fmt: skip
    gpu.write_text(json.dumps({"benchmarks": [gpu_row], "device": "gpu:NVIDIA H200 x1",
                               "command": "bash benchmarks/gpu.sh"}))  # fmt: skip
    text = results_md.render(results_md.load(path), [results_md.load(gpu)], notes=None)
    assert "GPU figures: missing" not in text and "NVIDIA H200" in text
    assert "| resnet curvature: naive HVP / gradient | 1.5 | ≤ 2 | yes | float32 |" in text


def test_results_md_rejects_a_file_that_is_not_a_benchmark_json(tmp_path):
    results_md = importlib.import_module("results_md")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="path=.*bad.json.*allowed"):
        results_md.load(bad)


def test_resnet_curvature_quick_runs_and_reports(tmp_path):
    """Smoke run of bench_resnet_curvature --quick (tiny CNN, 4×4×3 synthetic images, CPU
    float64): the report's shape and its checks, never a time."""
    bench = importlib.import_module("bench_resnet_curvature")
    path = tmp_path / "rc.json"
    assert bench.main(["--quick", "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    run = doc["run"]
    assert "bench_resnet_curvature.py --model cnn" in doc["command"]
    assert run["platform"] and run["device_kind"] and run["dtype"] == "float64"
    assert run["checks_ok"] and len(run["checks"]) == 3
    assert 0.0 <= run["undetermined_fraction"] <= 1.0
    for h in ("total", "naive"):
        assert math.isfinite(run["eigen"][h]["value"]) and run["eigen"][h]["bound"] >= 0
    names = " ".join(r["name"] for r in doc["benchmarks"])
    for part in (
        "gradient (baseline)",
        "naive HVP",
        "total HVP",
        "λ_max",
        "undetermined",
        "attack",
    ):
        assert part in names, part
    assert all({"ratio", "target", "met", "device", "command"} <= set(r) for r in doc["benchmarks"])
    _every_row_has_a_verdict_or_says_why(doc["benchmarks"])


def test_gpu_script_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(BENCH / "gpu.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
