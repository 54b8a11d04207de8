"""The GEN checks (docs/theory/general-models.md): they hold on the reference models, and they have power.

Each check runs once at the quick size on seed 0 (the figures of ``advlip verify
--quick``), then again with the wrong formula a plain tool would use planted in it —
the gradient at the clean input, the Hessian with δ held fixed, no jump at a switching
surface — and must then report ``fails``. The planted runs reuse the cached numerics
of the first, so the power checks cost little.
"""

import json
import math

import numpy as np
import pytest

from advlip import theorems
from advlip.theorems import CheckConfig, general

IDS = ["GEN-DANSKIN", "GEN-INTERIOR", "GEN-L2-BOUNDARY", "GEN-LINF-VERTEX", "GEN-FLATNESS"]
QUICK = CheckConfig(seed=0, quick=True)


@pytest.fixture(scope="module")
def results():
    return {rid: theorems.get(rid).check(QUICK) for rid in IDS}


def test_registered_in_the_general_family():
    registered = {r.id: r for r in theorems.all_results()}
    for rid in IDS:
        assert rid in registered
        res = registered[rid]
        assert res.family == "general"
        assert res.statement and res.hypotheses and res.title
        if res.bound is not None:
            assert res.bound().free_symbols  # a SymPy expression


@pytest.mark.parametrize("rid", IDS)
def test_check_holds_on_the_reference_model(results, rid):
    r = results[rid]
    assert r.verdict == "holds", (r.figure, r.reason, r.figures)
    assert r.id == rid and r.figure and r.replay.endswith("--quick")
    json.dumps(r.to_dict())  # every figure is JSON-serialisable


def test_danskin_figures(results):
    rows = results["GEN-DANSKIN"].figures["rows"]
    assert {row["p"] for row in rows} == {2.0, math.inf}
    for row in rows:
        assert row["danskin_vs_fd"]["excess"] <= 0
        assert row["clean_gradient_vs_fd"]["excess"] > 0  # the check has power


def test_l2_boundary_figures(results):
    f = results["GEN-L2-BOUNDARY"].figures
    assert f["cases"] == {"l2_boundary": 8}
    assert f["total_vs_fd"]["max_ratio"] <= 1.0 < f["naive_vs_fd"]["max_ratio"]
    assert f["min_tangent_curvature"] > 0 and f["mu_range"][0] > 0


def test_interior_figures(results):
    f = results["GEN-INTERIOR"].figures
    assert f["cases"] == {"interior": 8}
    assert f["correction_psd"] and f["g1_bound_holds"]
    assert f["hessian_norm"] <= f["g1_bound"]
    assert f["min_lambda_neg_Hxx"] > 0


def test_linf_figures(results):
    f = results["GEN-LINF-VERTEX"].figures
    assert f["vertices"]["all_vertex"] and f["vertices"]["naive_equals_total"]
    sw = f["switching"]
    assert sw["examples_switched"] == 8
    assert np.allclose(sw["delta_jump_norms"], 2 * general.EPS_LINF)
    assert abs(sw["exponent"]["exponent"] + 1.0) <= sw["exponent"]["tolerance"]
    assert sw["max_abs_jump_error"] <= sw["max_tolerance"]


def test_flatness_figures(results):
    f = results["GEN-FLATNESS"].figures
    rows = f["rows"]
    lam = [row["lambda_total"] for row in rows]
    assert lam == sorted(lam, reverse=True) or f["monotone"]
    assert lam[0] > 3 * lam[-1]  # it falls
    for row in rows:
        assert row["matches"] and row["naive_matches"] and row["liu_valid"]
        # Liu's effective constant does not see κ; the measured one is far below it
        assert row["R_pair"] < 0.05 * row["liu_effective_constant"]
        assert row["lambda_total"] <= row["g1_bound"] + row["tolerance"]


@pytest.mark.parametrize(
    "rid, planted",
    [
        ("GEN-DANSKIN", "clean"),
        ("GEN-L2-BOUNDARY", "naive"),
        ("GEN-INTERIOR", "naive"),
        ("GEN-LINF-VERTEX", "no_jump"),
        ("GEN-FLATNESS", "naive"),
    ],
)
def test_planted_wrong_formula_is_caught(results, rid, planted):
    fn = {
        "GEN-DANSKIN": general.check_gen_danskin,
        "GEN-L2-BOUNDARY": general.check_gen_l2_boundary,
        "GEN-INTERIOR": general.check_gen_interior,
        "GEN-LINF-VERTEX": general.check_gen_linf_vertex,
        "GEN-FLATNESS": general.check_gen_flatness,
    }[rid]
    r = fn(QUICK, planted=planted)
    assert r.verdict == "fails", (r.figure, r.reason)


def test_interior_setup_makes_every_maximiser_interior():
    params, X, _ = general.reference_problem(0, 8)
    for activation in general.ACTIVATION_BOUNDS:
        st = general.interior_setup(params, X, activation)
        assert st["kappa"] == pytest.approx(2 * st["B"])
        # ‖δ*‖ ≤ 2G/κ + x_max = ε/2 by construction
        assert st["eps"] > 2 * (2 * st["G"] / st["kappa"])


def test_switching_surface_cuts_the_input():
    params, _, _ = general.reference_problem(0, 8)
    theta0, e = general.switching_surface(params, j=1)
    assert np.all(np.asarray(theta0["layers"][0]["W"])[:, 1] == 0)
    assert float(theta0["skip"][1]) == 0.0
    assert np.linalg.norm(e) == 1.0 and np.count_nonzero(e) == 1
