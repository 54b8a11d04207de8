"""Properties of advlip.losses: closed-form derivatives, edge cases, curvature constants.

Tolerances are ``gamma(k) * (sum of |terms|)`` (advlip.tolerance), ``k`` counted in the
comments. Counting rule used throughout: ``exp`` and ``log`` of an exactly representable
argument are within 1 ulp (1 rounding); the margins tested here are inputs, so ``-m`` is
exact; the logistic ``1/(1 + exp(-x))`` costs 3 roundings (exp, the sum of two positive
terms, the division) relative to its value.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from advlip import losses
from advlip.losses import LOSSES, MarginLoss, get_loss
from advlip.tolerance import gamma

NAMES = tuple(LOSSES)
# Roundings of each closed form relative to its value: softplus' l' is a logistic (3), l''
# a product of two (3 + 3 + 1 = 7); exponential is one exp (1); the squared hinge is
# 1 - m (1) then a product or square (1). k = 8 covers every one of them, and also the
# route jax.grad takes through the same elementary functions.
K_LOSS = 8


def assert_close(actual, expected, tol) -> None:
    """``|actual - expected| <= tol`` elementwise, reporting the worst case."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    err = np.abs(actual - expected)
    tol = np.broadcast_to(np.asarray(tol, dtype=float), err.shape)
    bad = ~(err <= tol)
    assert not bad.any(), f"|{actual[bad]} - {expected[bad]}| = {err[bad]} > tolerance {tol[bad]}"


def _derivative_routes(loss: MarginLoss):
    """jit(vmap) of the closed forms and of jax.grad, compiled once per loss and shape."""
    first = jax.grad(loss.value)
    second = jax.grad(first)
    return jax.jit(lambda m: (loss.d1(m), loss.d2(m), jax.vmap(first)(m), jax.vmap(second)(m)))


ROUTES = {name: _derivative_routes(loss) for name, loss in LOSSES.items()}
N_MARGINS = 8


@given(
    name=st.sampled_from(NAMES),
    m=hnp.arrays(np.float64, N_MARGINS, elements=st.floats(-50, 50, allow_subnormal=False)),
)
def test_closed_form_derivatives_match_autodiff(name, m):
    if name == "squared_hinge":
        # l'' jumps at m = 1 (it does not exist there); take any other margin.
        m = np.where(m == 1.0, 0.5, m)
    d1, d2, ad1, ad2 = (np.asarray(a) for a in ROUTES[name](jnp.asarray(m)))
    # The closed forms: K_LOSS roundings. jax.grad of softplus(-m) = logaddexp(-m, 0) forms
    # l' as exp(x - logaddexp(x, 0)): the exponent's subtraction of terms of size |m| and
    # |m| + log 2 is off by u (2|m| + 1) absolutely, which exp turns into a relative error;
    # so that route has K_LOSS + 2|m| + 1 roundings (an upper bound for the other losses).
    k_ad = K_LOSS + 2 * np.abs(m) + 1
    gamma_ad = np.vectorize(lambda k: gamma(int(np.ceil(k))))(k_ad)
    assert_close(d1, ad1, (gamma(K_LOSS) + gamma_ad) * np.abs(d1))
    # l'': autodiff forms softplus' l'' as s (1 - s), s = sigma(-m) = |l'|: the difference
    # 1 - s is exact only up to gamma(1)(1 + s), so its terms sum to |l''| + |l'|(1 + |l'|).
    terms = np.abs(d2) + np.abs(d1) * (1 + np.abs(d1))
    assert_close(d2, ad2, (gamma(K_LOSS) + gamma_ad) * terms)


SYMPY_MARGINS = (-7.5, -1.0, 0.0, 0.25, 0.999, 1.001, 3.0, 20.0)


@pytest.mark.parametrize("name", NAMES)
def test_closed_form_derivatives_match_sympy(name):
    loss = LOSSES[name]
    m = sp.Symbol("m", real=True)
    expr = loss.sympy(m)
    for order, closed in ((0, loss.value), (1, loss.d1), (2, loss.d2)):
        deriv = sp.diff(expr, m, order)
        for x in SYMPY_MARGINS:
            exact = float(deriv.subs(m, sp.Rational(x)).evalf(30))
            # SymPy evaluates to 30 digits: the only error is the closed form's.
            assert_close(closed(jnp.float64(x)), exact, gamma(K_LOSS) * abs(exact))


EDGE_MARGINS = np.array([-np.inf, -1e308, -1e3, -50.0, 0.0, 1.0, 50.0, 1e3, 1e308, np.inf])


@pytest.mark.parametrize("name", NAMES)
def test_edge_battery(name):
    loss = LOSSES[name]
    m = jnp.asarray(EDGE_MARGINS)
    value, d1, d2 = (np.asarray(f(m)) for f in (loss.value, loss.d1, loss.d2))
    grad1 = np.asarray(jax.vmap(jax.grad(loss.value))(m))
    for label, arr in (("value", value), ("d1", d1), ("d2", d2), ("grad", grad1)):
        assert not np.isnan(arr).any(), f"{name}.{label} is NaN at {EDGE_MARGINS[np.isnan(arr)]}"
    # A decreasing convex loss: l >= 0, l' <= 0, l'' >= 0, everywhere, extremes included.
    assert (value >= 0).all() and (d1 <= 0).all() and (d2 >= 0).all()
    large = EDGE_MARGINS >= 1e3
    # Correct margins far beyond the boundary cost nothing (the values underflow to 0).
    np.testing.assert_array_equal(value[large], 0.0)
    np.testing.assert_array_equal(d1[large], 0.0)
    # Wrong margins: the loss grows at least linearly (softplus(-m) = -m + log1p(e^m)).
    assert (value[EDGE_MARGINS <= -1e3] >= 1e3).all()
    if name == "softplus":
        assert_close(value[2], 1e3, gamma(K_LOSS) * 1e3)  # -m + log1p(e^-1000) = 1000
        np.testing.assert_array_equal(d1[:3], -1.0)  # sigma(inf) = 1 exactly
    # vmap equals a loop of scalar calls (each a K_LOSS-rounding evaluation).
    for f in (loss.value, loss.d1, loss.d2):
        vmapped = np.asarray(jax.vmap(f)(m))
        looped = np.array([float(f(x)) for x in m])
        finite = np.isfinite(looped)
        np.testing.assert_array_equal(vmapped[~finite], looped[~finite])
        assert_close(vmapped[finite], looped[finite], 2 * gamma(K_LOSS) * np.abs(looped[finite]))


GRID = np.linspace(-60.0, 60.0, 240_001)  # spacing 5e-4, with 0 and 1 on the grid


@pytest.mark.parametrize("name", NAMES)
def test_global_suprema_hold_and_are_attained(name):
    loss = LOSSES[name]
    for label, f, sup in (
        ("d2_max", loss.d2, loss.d2_max),
        ("d1_abs_max", lambda m: jnp.abs(loss.d1(m)), loss.d1_abs_max),
    ):
        values = np.asarray(f(jnp.asarray(GRID)))
        if np.isinf(sup):
            # Unbounded claim: the function overflows at m = -1e308 (e^1e308, 2(1 + 1e308)).
            assert np.isinf(float(f(jnp.float64(-1e308)))), f"{name}.{label}"
            continue
        # Bound on the grid up to the K_LOSS roundings of each value.
        assert values.max() <= sup * (1 + gamma(K_LOSS)), f"{name}.{label}"
        # Attained: softplus' l'' peaks at m = 0 (a grid point), |l'| -> 1 as m -> -inf
        # (sigma(60) = 1 - 9e-27 rounds to 1), the squared hinge's l'' is 2 for all m < 1.
        assert values.max() >= sup * (1 - gamma(K_LOSS)), f"{name}.{label}"


N_INTERVAL = 2001


@given(
    name=st.sampled_from(NAMES),
    ends=st.lists(st.floats(-30, 30, allow_subnormal=False), min_size=2, max_size=2, unique=True),
)
def test_interval_suprema_bound_and_are_attained(name, ends):
    loss = LOSSES[name]
    lo, hi = sorted(ends)
    grid = np.linspace(lo, hi, N_INTERVAL)  # endpoints exact
    h = (hi - lo) / (N_INTERVAL - 1)
    for f, sup_fn in (
        (loss.d2, loss.d2_sup),
        (lambda m: jnp.abs(loss.d1(m)), loss.d1_abs_sup),
    ):
        values = np.asarray(f(jnp.asarray(grid)))
        sup = float(sup_fn(jnp.float64(lo), jnp.float64(hi)))
        # An upper bound on [lo, hi], up to the K_LOSS roundings of the value and the sup.
        assert values.max() <= sup + 2 * gamma(K_LOSS) * sup
        # Attained within the grid's resolution: the sup is taken at a point within h/2 of
        # a grid point, and each function is Lipschitz there with constant sup|l'''| <= sup l''
        # (softplus: l''' = l''(1 - 2 sigma(m)); exponential: |l'''| = l''; squared hinge: 0
        # off m = 1, where its l'' is monotone and its sup is at the grid point lo), resp.
        # sup l'' for |l'|. sup l'' on [lo, hi] is d2_sup, tested by the first pass.
        lipschitz = float(loss.d2_sup(jnp.float64(lo), jnp.float64(hi)))
        resolution = lipschitz * h / 2
        assert sup <= values.max() + resolution + 2 * gamma(K_LOSS) * sup


def test_softplus_interval_sup_away_from_zero():
    # l'' is even and decreasing in |m|: on [2, 5] the sup is l''(2), on [-5, -2] too.
    sp_loss = LOSSES["softplus"]
    at2 = float(sp_loss.d2(jnp.float64(2.0)))
    for lo, hi in ((2.0, 5.0), (-5.0, -2.0), (-2.0, 3.0)):
        expected = 0.25 if lo <= 0 <= hi else at2
        assert_close(
            sp_loss.d2_sup(jnp.float64(lo), jnp.float64(hi)), expected, gamma(K_LOSS) * 0.25
        )


def test_get_loss_by_name_and_instance():
    for name, loss in LOSSES.items():
        assert get_loss(name) is loss
        assert get_loss(loss) is loss
        assert loss.name == name
        assert repr(loss) == f"MarginLoss({name!r})"


@pytest.mark.parametrize("bad", ["nope", "Softplus", "", None, 3, ["softplus"]], ids=repr)
def test_get_loss_unknown_name_lists_allowed(bad):
    with pytest.raises(ValueError, match=re.escape(f"loss={bad!r}")) as info:
        get_loss(bad)
    for name in NAMES:
        assert name in str(info.value)


def test_public_names():
    assert set(losses.__all__) == {
        "MarginLoss",
        "LOSSES",
        "get_loss",
        "LogitLoss",
        "LOGIT_LOSSES",
        "get_logit_loss",
        "check_labels",
    }
