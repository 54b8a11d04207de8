"""The benchmark scripts stay runnable (their timings are never asserted: benchmarks/ owns them)."""

import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

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
    ]
    path = tmp_path / "b.json"
    common.write(str(path), rows)
    doc = json.loads(path.read_text())
    assert [r["name"] for r in doc["benchmarks"]] == ["a", "b"]
    assert {"ratio", "target", "met", "device"} <= set(doc["benchmarks"][0])
    table = common.markdown(rows)
    assert "| a | 2 | 3 | **no** | x |" in table and "| b | — | — | n/a |" in table


@pytest.mark.parametrize("slope", [0.5, 1.0, 2.0])
def test_fit_exponent_recovers_power_laws(slope):
    common = importlib.import_module("common")
    xs = [1.0, 2.0, 4.0, 8.0]
    # t = 3 x^slope exactly: the least-squares slope of log t on log x is slope up to rounding
    assert common.fit_exponent(xs, [3.0 * x**slope for x in xs]) == pytest.approx(slope, abs=1e-12)


def test_hvp_torch_quick_runs_and_reports_every_target(tmp_path):
    """Smoke run of bench_hvp_torch --quick (one tiny size, seconds; PyTorch rows say
    "not run" where torch is not installed). Checks the report's shape, never a time."""
    bench = importlib.import_module("bench_hvp_torch")
    path = tmp_path / "hvp.json"
    assert bench.main(["--quick", "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    rows = doc["benchmarks"]
    assert doc["device"] and "bench_hvp_torch.py --quick" in doc["command"]
    assert all({"ratio", "target", "met", "device", "command"} <= set(r) for r in rows)
    names = " ".join(r["name"] for r in rows)
    for part in ("naive HVP", "factorised tangent", "(CG)", "eager PyTorch", "torch.func"):
        assert part in names, part
    (size,) = doc["run"]["sizes"]
    assert size["jax"]["peak_rss_mb"] > 0 and size["jax"]["cg_iterations_max"] >= 1
    assert ("torch" in size) == doc["run"]["torch"]


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


def test_gpu_script_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(BENCH / "gpu.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
