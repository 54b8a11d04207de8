"""The experiments (advlip.experiments): the numbers behind every figure say what it claims.

Every quick experiment runs once (module fixture); the tests read its JSON, as a reader of
the pictures would, and check each claim from the numbers with the tolerances the code
reports (fit tolerances, quadrature and float64 error bounds), never with new ones. The
figures are redrawn from the JSON (experiments.figures, the code that drew the PNGs) and
inspected as artists: every panel shows data, every run is plotted, no legend covers
data, every line is named (plots.figure_problems, itself tested on bad figures here).
"""

import copy
import json
import math
import re
from pathlib import Path

import jax
import numpy as np
import pytest

from advlip import cli, experiments, plots, smoothness, tolerance

KEY = jax.random.PRNGKey(0)

REQUIRED = [
    "phase-diagram",
    "linear-l2-vs-linf",
    "mlp-l2-vs-linf",
    "entropy-sgd",
    "flatness",
    "landscape",
]


def _strict(text: str) -> dict:
    def no_constants(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=no_constants)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("experiments")


@pytest.fixture(scope="module")
def docs(out):
    return {
        name: experiments.run(name, out_dir=out, quick=True, key=KEY, progress=None)
        for name in REQUIRED
    }


def _spec_exponent(p: float) -> float:
    """LIN-LP's exponent (docs/theory/lin-lp.md), written out here independently of
    advlip.symbolic."""
    if p == 1.0 or math.isinf(p):
        return -1.0
    if p <= 2.0:
        return 0.0
    return p / (p - 1.0) - 2.0


# --------------------------------------------------------------------------- registry, errors


def test_names_include_every_required_experiment():
    assert set(REQUIRED) <= set(experiments.names())
    assert set(experiments.describe()) == set(experiments.names())


def test_unknown_names_options_and_datasets_are_clear_errors(tmp_path):
    with pytest.raises(
        ValueError, match="experiment 'nope' is not known; allowed: phase-diagram, "
    ):
        experiments.run("nope", out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"takes no option\(s\) \['bogus'\]; allowed: \['data'\]"):
        experiments.run("linear-l2-vs-linf", out_dir=tmp_path, bogus=1)
    with pytest.raises(
        ValueError,
        match="data='mnist' is not a bundled dataset; allowed: breast-cancer, digits-A-B",
    ):
        experiments.run("linear-l2-vs-linf", out_dir=tmp_path, quick=True, data="mnist")
    with pytest.raises(ValueError, match="data='digits-3-3'"):
        experiments.run("mlp-l2-vs-linf", out_dir=tmp_path, quick=True, data="digits-3-3")
    with pytest.raises(
        ValueError, match="model='cnn' is not allowed; allowed: 'linear', 'mlp', 'both'"
    ):
        experiments.run("landscape", out_dir=tmp_path, quick=True, model="cnn")
    with pytest.raises(ValueError, match="key must be one concrete JAX PRNG key"):
        experiments.run("flatness", out_dir=tmp_path, key="0")
    with pytest.raises(ValueError, match=r"key=0 is an integer; allowed: a JAX PRNG key"):
        experiments.run("flatness", out_dir=tmp_path, key=0)
    assert not list(tmp_path.glob("*.json"))  # nothing written on bad input


# --------------------------------------------------------------------------- every document


@pytest.mark.parametrize("name", REQUIRED)
def test_document_is_strict_json_with_replay_and_pictures(docs, out, name):
    doc = docs[name]
    on_disk = _strict((Path(out) / f"{name}.json").read_text())
    assert on_disk == doc
    assert doc["seed"] == 0 and doc["quick"] is True and doc["experiment"] == name
    assert doc["replay"].endswith("--seed 0 --quick") and f"--out {out}" in doc["replay"]
    assert doc["pngs"]
    for png in doc["pngs"]:
        blob = Path(png).read_bytes()
        assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) < 400_000
    assert doc["claims"] and all(c["holds"] for c in doc["claims"]), [
        c["claim"] for c in doc["claims"] if not c["holds"]
    ]


# --------------------------------------------------------------------------- per figure


def test_phase_diagram_exponents_lie_on_spec_curve(docs):
    doc = docs["phase-diagram"]
    ps = [pt["p"] for pt in doc["points"]]
    assert {1.0, 2.0, "inf"} <= set(ps)  # non-finite floats are written as strings
    for pt in doc["points"]:
        p = math.inf if pt["p"] == "inf" else pt["p"]
        # a few float64 operations on numbers of size ≤ 2
        assert pt["expected"] == pytest.approx(_spec_exponent(p), abs=tolerance.gamma(4) * 2)
        assert abs(pt["exponent"] - pt["expected"]) <= pt["tolerance"]
        assert pt["tolerance"] < smoothness.RESOLUTION  # resolved
    inv_p, curve = np.asarray(doc["curve"]["inv_p"]), np.asarray(doc["curve"]["expected"])
    expected = [_spec_exponent(1.0 / r) for r in inv_p]
    # two routes of 4 float64 operations each (1/r, p - 1, a division, - 2) on numbers of size
    # ≤ q + 2 ≤ 4 where the curve is q - 2 (r < 1/2): |difference| ≤ 2 γ_4 · 4
    np.testing.assert_allclose(curve, expected, rtol=0, atol=2 * tolerance.gamma(4) * 4)


def _hist(run):
    h = dict(run["history"])
    for k, v in h.items():
        if isinstance(v, list):
            h[k] = np.asarray(
                [np.nan if x == "nan" else np.inf if x == "inf" else x for x in v], dtype=float
            )
    return h


def test_linear_training_numbers(docs):
    doc = docs["linear-l2-vs-linf"]
    runs = doc["runs"]
    assert {r["p"] for r in runs} == {2.0, "inf"}
    assert {r["optimizer"] for r in runs} == {"adam", "sgd-momentum"}
    for r in runs:
        h = _hist(r)
        assert h["loss"][-1] < h["loss"][0]  # training lowers the adversarial loss
        assert np.all(h["robust_acc"] <= h["clean_acc"])
        if r["p"] == 2.0:
            assert r["eps"] == r["eps_l2"]
            assert np.all(h["grad_ratio"] <= h["ratio_bound"] + h["ratio_error"])  # LIN-L2
            assert np.all(h["lambda_max_total"] >= h["lambda_max_naive"] - h["lambda_error"])
        else:
            d = len(r["final_abs_w"])
            matched = r["eps_l2"] / math.sqrt(d)  # the largest L∞ ball inside the L2 ball
            assert r["eps"] == pytest.approx(matched, rel=tolerance.gamma(4))
            off = ~h["kink_crossed"].astype(bool)
            assert np.all(h["grad_ratio"][off] <= h["ratio_bound"][off] + h["ratio_error"][off])
            assert np.all(
                np.abs(h["lambda_max_total"] - h["lambda_max_naive"]) <= h["lambda_error"]
            )
    # the near-zero comparison is a finding, reported either way, with both fractions
    near = doc["findings"][0]
    assert near["of"] == len(near["pairs"]) == 2
    assert near["linf_more_in"] == sum(
        p["near_zero_linf"] > p["near_zero_l2"] for p in near["pairs"]
    )


def test_mlp_training_numbers(docs):
    doc = docs["mlp-l2-vs-linf"]
    assert doc["n_train"] + doc["n_test"] <= 357
    for r in doc["runs"]:
        h = _hist(r)
        assert h["loss"][-1] < h["loss"][0]
        assert np.all(h["robust_acc"] <= h["clean_acc"])  # PGD starts at 0 and keeps its best
        assert np.all(h["ck_robust_acc"] <= h["ck_clean_acc"])
        assert np.all(
            h["ck_strong_robust_acc"] <= h["ck_robust_acc"]
        )  # stronger attack, never weaker
        assert h["checkpoint_step"][0] == 0 and h["checkpoint_step"][-1] == len(h["loss"]) - 1


def test_entropy_sgd_numbers(docs):
    doc = docs["entropy-sgd"]
    assert len(doc["gamma"]) == len(doc["max_ratio"]) >= 2
    for g, r, e in zip(doc["gamma"], doc["max_ratio"], doc["max_ratio_error"], strict=True):
        # F_γ is γ-smooth (docs/theory/entropy-smooth.md), up to the quadrature's Richardson error
        assert r - e <= g
    fit = doc["quadrature"]["raw_loss_fit"]
    assert abs(fit["exponent"] + 1.0) <= fit["tolerance"]  # R of L grows like 1/t at the kink
    for case in doc["quadrature"]["cases"]:
        R_L, R_F = np.asarray(case["kink_ratio_L"]), np.asarray(case["kink_ratio_F"])
        assert R_L[0] > case["gamma"] > R_F.max() - case["max_ratio_error"]
    tr = doc["training"]
    plain = _hist({"history": tr["plain"]})
    assert plain["loss"][-1] < plain["loss"][0]
    for run in tr["entropy_sgd"]:
        h = _hist(run)
        assert h["loss"][-1] < h["loss"][0]
        assert len(h["direction_ratio"]) == len(h["loss"]) - 2


def test_flatness_numbers(docs):
    doc = docs["flatness"]
    rows = doc["rows"]
    kappa = [r["kappa"] for r in rows]
    assert kappa == sorted(kappa)
    # flatness in x vs smoothness in θ (docs/theory/gen-flatness.md): flatter input, larger λ_max
    for a, b in zip(rows[:-1], rows[1:], strict=True):
        assert b["lambda_total"] <= a["lambda_total"] + a["error"] + b["error"]
    interior = [r for r in rows if r["interior"] == r["n"]]
    assert len(interior) >= 3
    for r in interior:
        assert abs(r["lambda_total"] - max(1.0 / r["kappa"], doc["s_c"])) <= r["error"]
    for r in rows:  # δ held fixed, the Hessian cannot see κ
        assert abs(r["lambda_naive"] - doc["s_c"]) <= r["error"]
        assert r["determined"] == r["n"]


def test_landscape_numbers(docs):
    doc = docs["landscape"]
    lin, mlp = doc["linear"], doc["mlp"]
    for key in ("l2", "linf"):
        s = lin[key]
        n2 = len(s["grid"])
        assert np.asarray(s["loss_2d"]).shape == (n2, n2)
        assert len(s["loss_1d"]) == len(s["t"]) == len(s["dloss_dwi_1d"])
        m = mlp[key]
        assert np.asarray(m["loss_2d"]).shape == (len(m["grid"]), len(m["grid"]))
        assert np.all(np.isfinite(m["loss_1d"]))
    linf = next(c for c in doc["claims"] if c["claim"].startswith("Linf"))
    assert (
        abs(linf["jump"] - linf["predicted"]) <= linf["slack"]
        and linf["predicted"] > 100 * linf["slack"]
    )
    l2 = next(c for c in doc["claims"] if c["claim"].startswith("L2"))
    assert abs(l2["change"]) <= l2["allowed"]


# --------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("name", ["linear-l2-vs-linf", "mlp-l2-vs-linf"])
def test_same_seed_same_numbers(docs, tmp_path, name):
    again = experiments.run(name, out_dir=tmp_path, quick=True, key=KEY, progress=None)
    strip = lambda d: {k: v for k, v in d.items() if k not in ("pngs", "replay")}  # noqa: E731
    assert json.dumps(strip(again), sort_keys=True) == json.dumps(strip(docs[name]), sort_keys=True)


def test_another_key_other_numbers(docs, tmp_path):
    other = experiments.run(
        "linear-l2-vs-linf", out_dir=tmp_path, quick=True, key=jax.random.PRNGKey(1), progress=None
    )
    assert other["seed"] == 1 and other["replay"].endswith("--seed 1 --quick")
    assert (
        other["runs"][0]["history"]["loss"][0]
        != docs["linear-l2-vs-linf"]["runs"][0]["history"]["loss"][0]
    )


def test_a_key_no_seed_spells_is_replayed_from_python(monkeypatch, tmp_path):
    seen = []

    def fake(ctx):
        seen.append(ctx.key)
        return {"claims": [{"claim": "x", "holds": True}], "pngs": []}

    monkeypatch.setitem(experiments._REGISTRY, "fake", experiments._Experiment(fake, "fake"))
    key = jax.random.split(jax.random.PRNGKey(0))[1]  # bits [a, b] with a != 0: no --seed
    bits = [int(b) for b in np.asarray(key)]
    doc = experiments.run("fake", out_dir=tmp_path, key=key, progress=None)
    np.testing.assert_array_equal(np.asarray(seen[0]), np.asarray(key))  # the key itself
    assert doc["seed"] == (bits[0] << 32) | bits[1] > 2**32 - 1
    assert doc["replay"].startswith("advlip.experiments.run('fake'") and str(bits) in doc["replay"]


# --------------------------------------------------------------------------- command line


def test_cli_lists_and_rejects_unknown_names(tmp_path, capsys):
    assert cli.main(["experiment", "--list"]) == 0
    listed = capsys.readouterr().out
    for name in REQUIRED:
        assert name in listed
    assert cli.main(["experiment", "nope", "--out", str(tmp_path)]) == 2
    assert "allowed: phase-diagram" in capsys.readouterr().err
    assert cli.main(["experiment", "phase-diagram"]) == 2  # no --out
    with pytest.raises(SystemExit) as exc:
        cli.main(["landscape", "--out", str(tmp_path), "--model", "cnn"])
    assert exc.value.code == 2


def test_cli_runs_an_experiment_and_writes_its_json(tmp_path, capsys):
    assert (
        cli.main(["experiment", "phase-diagram", "--out", str(tmp_path), "--quick", "--seed", "0"])
        == 0
    )
    out = capsys.readouterr().out
    assert "1/1 claims hold" in out and "replay: advlip experiment phase-diagram" in out
    doc = _strict((tmp_path / "phase-diagram.json").read_text())
    assert doc["replay"] == f"advlip experiment phase-diagram --out {tmp_path} --seed 0 --quick"
    assert (tmp_path / "phase-diagram.png").exists()


# --------------------------------------------------------------------------- figures


def _figure_with(build):
    fig, ax = plots._subplots(figsize=(5, 4))
    build(fig, ax)
    return fig


def test_figure_problems_finds_each_rule_broken_and_passes_a_clean_figure():
    def clean(fig, ax):
        ax.plot([0.0, 1.0], [0.0, 1.0], label="data")
        ax.axhline(0.5, ls="--", label="reference y = 0.5")
        ax.errorbar([0.5], [0.2], yerr=[0.1], fmt="o", label="measured ± tolerance")
        ax.set_title("G1 (interior maximiser)")
        plots._legend_right(ax)

    assert plots.figure_problems(_figure_with(clean)) == []

    def unnamed_reference(fig, ax):
        ax.plot([0.0, 1.0], [0.0, 1.0], label="data")
        ax.axhline(0.5)  # a bound drawn without a name
        plots._legend_right(ax)

    (msg,) = plots.figure_problems(_figure_with(unnamed_reference))
    assert "has no legend entry" in msg

    def label_not_in_any_legend(fig, ax):
        ax.plot([0.0, 1.0], [0.0, 1.0], label="data")  # labelled, but no legend drawn

    (msg,) = plots.figure_problems(_figure_with(label_not_in_any_legend))
    assert "'data' has no legend entry" in msg

    def lone_point(fig, ax):
        ax.plot([0.3], [0.4], label="one epoch")  # a line of one point draws nothing
        plots._legend_right(ax)

    (msg,) = plots.figure_problems(_figure_with(lone_point))
    assert "one point, no marker" in msg
    assert plots.figure_problems(plots._finish(_figure_with(lone_point), None)) == []

    def empty_panel(fig, ax):
        ax.text(0.5, 0.5, "computed at full size only", transform=ax.transAxes)

    (msg,) = plots.figure_problems(_figure_with(empty_panel))
    assert "shows no data" in msg

    def vertex_under_legend(fig, ax):
        ax.plot([0.0, 0.5, 1.0], [0.0, 0.5, 1.0], "o-", label="data")
        ax.legend(loc="center")  # on the middle point

    (msg,) = plots.figure_problems(_figure_with(vertex_under_legend))
    assert "covers data" in msg

    def segment_under_legend(fig, ax):
        # two points far apart; only the segment between them passes under the legend
        ax.plot([0.0, 1.0], [0.0, 1.0], label="data")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="center")

    (msg,) = plots.figure_problems(_figure_with(segment_under_legend))
    assert "covers data" in msg

    def band_under_legend(fig, ax):
        ax.plot([0.0, 1.0], [0.9, 0.9], label="mean")
        ax.fill_between([0.0, 1.0], [0.0, 0.0], [1.0, 1.0], alpha=0.2)
        ax.legend(loc="center")

    (msg,) = plots.figure_problems(_figure_with(band_under_legend))
    assert "covers data" in msg

    def legend_in_an_empty_corner(fig, ax):
        ax.plot([0.0, 1.0], [0.0, 0.1], label="data")
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left")

    assert plots.figure_problems(_figure_with(legend_in_an_empty_corner)) == []

    def bare_case_label(fig, ax):
        ax.plot([0.0, 1.0], [0.0, 1.0], label="interior maximisers, G1")
        plots._legend_right(ax)

    (msg,) = plots.figure_problems(_figure_with(bare_case_label))
    assert "G0-G4 is not defined" in msg


def _lines(fig):
    return [line for ax in fig.axes for line in ax.lines]


def _with_gid(fig, gid):
    return [line for line in _lines(fig) if line.get_gid() == gid]


def _same(a, b) -> bool:
    """Equal arrays, NaN where NaN (the JSON's "nan" strings read back as NaN)."""
    return np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True)


@pytest.mark.parametrize("name", REQUIRED)
def test_figures_are_the_pngs_and_follow_the_rules(docs, name, tmp_path):
    doc = docs[name]
    figs = experiments.figures(doc)
    assert list(figs) == [Path(p).name for p in doc["pngs"]]
    for (fname, fig), png in zip(figs.items(), doc["pngs"], strict=True):
        assert plots.figure_problems(fig) == [], fname
        # redrawn from the JSON alone, byte for byte the PNG the experiment wrote: the
        # figure inspected here is the picture, and the JSON holds every number it shows
        plots._save(fig, tmp_path / fname)
        assert (tmp_path / fname).read_bytes() == Path(png).read_bytes(), fname


@pytest.mark.parametrize("name", ["linear-l2-vs-linf", "mlp-l2-vs-linf"])
def test_every_run_is_plotted(docs, name):
    runs = docs[name]["runs"]
    fig = experiments.figures(docs[name])[f"{name}-training.png"]
    for k, r in enumerate(runs):
        mine = _with_gid(fig, f"run:{k}")
        assert any(_same(line.get_ydata(), r["history"]["loss"]) for line in mine), k
    loss_curves = [ln for ln in _lines(fig) if (ln.get_gid() or "").startswith("run:")]
    assert len({ln.get_gid() for ln in loss_curves}) == len(runs)


def test_entropy_sgd_figure_plots_every_run_and_names_gamma(docs):
    tr = docs["entropy-sgd"]["training"]
    fig = experiments.figures(docs["entropy-sgd"])["entropy-sgd-training.png"]
    (plain,) = _with_gid(fig, "run:plain")
    assert _same(plain.get_ydata(), tr["plain"]["loss"])
    for i, run in enumerate(tr["entropy_sgd"]):
        (line,) = _with_gid(fig, f"run:{i}")
        assert _same(line.get_ydata(), run["history"]["loss"])
        # the reference line y = γ is drawn, and named
        gamma = [ln for ln in _lines(fig) if ln.get_label().startswith(f"y = γ = {run['gamma']:g}")]
        assert gamma and all(_same(ln.get_ydata(), [run["gamma"]] * 2) for ln in gamma)


def _more_budgets(runs, factors=(1.0, 2.0, 4.0), datasets=("a", "b")):
    """The quick runs copied to several budgets and datasets, as a full run has them."""
    out = []
    for data in datasets:
        for f in factors:
            for r in runs:
                c = copy.deepcopy(r)
                c["data"], c["eps_l2"], c["eps"] = data, r["eps_l2"] * f, r["eps"] * f
                out.append(c)
    return out


def test_full_size_linear_figures_plot_every_budget_and_dataset(docs):
    runs = _more_budgets(docs["linear-l2-vs-linf"]["runs"], factors=(1.0, 2.0))
    fig = plots.linear_training(runs)
    assert len(fig.axes) == 4 * 4  # a row per (dataset, budget), four panels each
    for k, r in enumerate(runs):
        assert any(_same(ln.get_ydata(), r["history"]["loss"]) for ln in _with_gid(fig, f"run:{k}"))
    assert plots.figure_problems(fig) == []
    summary = plots.linear_summary(runs)
    assert plots.figure_problems(summary) == []
    acc = summary.axes[0]
    adam = [r for r in runs if r["optimizer"] == "adam"]
    # one robust and one clean point per adam run
    assert sum(len(ln.get_xdata()) for ln in acc.lines) == 2 * len(adam)


def test_full_size_mlp_figure_plots_every_budget_and_the_certified_lambda(docs):
    runs = _more_budgets(docs["mlp-l2-vs-linf"]["runs"], datasets=(None,))
    for r in runs:
        r.pop("data")
    middle = [r for r in runs if r["eps_l2"] == 2 * docs["mlp-l2-vs-linf"]["runs"][0]["eps_l2"]]
    for r in middle:  # as at full size: the middle budget's adam runs are certified
        r["certified"] = True
        n = len(r["history"]["checkpoint_step"])
        r["history"]["lambda_max_total"] = list(np.linspace(1.0, 2.0, n))
        r["history"]["lambda_max_naive"] = list(np.linspace(0.5, 1.0, n))
    fig = plots.mlp_training(runs)
    assert len(fig.axes) == 3 * 3 + 1  # three budgets of three panels, and the λ_max row
    for k, r in enumerate(runs):
        assert any(_same(ln.get_ydata(), r["history"]["loss"]) for ln in _with_gid(fig, f"run:{k}"))
    lam = fig.axes[-1]
    assert lam.get_title().startswith("top Hessian eigenvalue")
    totals = [ln for ln in lam.lines if "total" in ln.get_label()]
    assert len(totals) == len(middle)
    assert plots.figure_problems(fig) == []


def test_quick_mlp_figure_draws_no_panel_it_has_no_data_for(docs):
    doc = docs["mlp-l2-vs-linf"]
    assert not any(r["certified"] for r in doc["runs"])
    assert doc["lambda_max"].startswith("not computed at the quick size, and not drawn")
    fig = experiments.figures(doc)["mlp-l2-vs-linf-training.png"]
    assert not [ax for ax in fig.axes if ax.get_title().startswith("top Hessian eigenvalue")]
    assert "full size only" in fig.get_suptitle()


def test_text_shown_to_users_defines_every_case_label(docs):
    bare = re.compile(r"\bG[0-4]\b(?!\s*\()")
    shown = list(experiments.describe().values())
    shown += [c["claim"] for doc in docs.values() for c in doc["claims"]]
    assert shown and not [s for s in shown if bare.search(s) or ("SP" + "EC") in s]


def test_figures_refuses_an_unknown_experiment():
    with pytest.raises(ValueError, match="experiment 'nope' is not known; allowed: phase-diagram"):
        experiments.figures({"experiment": "nope"})
