"""The experiments (advlip.experiments): the numbers behind every figure say what it claims.

Every quick experiment runs once (module fixture); the tests read its JSON, as a reader of
the pictures would, and check each claim from the numbers with the tolerances the code
reports (fit tolerances, quadrature and float64 error bounds), never with new ones.
"""

import doctest
import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest

from advlip import cli, experiments, smoothness, tolerance

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
    """SPEC LIN-LP, written out here independently of advlip.symbolic."""
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
        assert r - e <= g  # F_γ is γ-smooth (SPEC §4), up to the quadrature's Richardson error
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
    for a, b in zip(rows[:-1], rows[1:], strict=True):  # G4: flatter input, larger λ_max
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


def test_experiments_doctest():
    result = doctest.testmod(experiments)
    assert result.attempted >= 1 and result.failed == 0
