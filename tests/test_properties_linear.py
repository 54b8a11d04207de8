"""Property tests of the linear results (docs/theory/lin-*.md) over Hypothesis-drawn problems and pairs.

These use the public strategies of advlip.strategies, as a user's own tests would.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from advlip import falsify, norms, smoothness, strategies
from advlip.linear import LinearProblem
from advlip.theorems import linear as TL

D = 3
problems_l2 = strategies.linear_problems(
    n=st.sampled_from([1, 4]),
    d=D,
    p=2.0,
    loss="softplus",
    eps=strategies.epsilons(min_eps=0.01, max_eps=1.0),
)
_ratio_and_bound = jax.jit(TL.lin_l2_ratio_and_bound)


@given(problems_l2, strategies.weight_pairs(D, min_norm=1e-3, max_norm=10.0))
def test_lin_l2_bound_holds_on_every_drawn_pair(prob, pair):
    R, beta, err = _ratio_and_bound(prob, 1.0, jnp.asarray(pair[0]), jnp.asarray(pair[1]))
    # the ratio exceeds the bound by no more than its own float64 error
    assert float(R - err) <= float(beta), (float(R), float(beta))


def _half_bound_margin(args):
    prob, pair = args
    R, beta, err = _ratio_and_bound(prob, 0.5, jnp.asarray(pair[0]), jnp.asarray(pair[1]))
    return float((R - err) / beta - 1.0)  # > 0: the halved bound is violated


def test_power_halved_lin_l2_bound_is_refuted_by_hypothesis_search():
    # the bound is nearly attained (the verify search reaches R/β = 0.9999 on small weights,
    # docs/theory/lin-l2.md), so half of it must fall; one example
    # with a bias-free single point and small weights is where it is nearly attained.
    pairs = strategies.weight_pairs(D, min_norm=1e-3, max_norm=0.1, max_rel_dist=2.0)
    found = falsify(_half_bound_margin, st.tuples(problems_l2, pairs), budget=400, seed=0)
    assert found.refuted and _half_bound_margin(found.counterexample) > 0


@settings(max_examples=10)
@given(
    p=st.one_of(st.sampled_from([3.0, 4.0, 6.0, math.inf]), st.floats(2.5, 12.0)),
    w=strategies.weights(D, kind="exact_kink", min_norm=0.5, max_norm=3.0),
    eps=strategies.epsilons(min_eps=0.1, max_eps=1.0),
)
def test_witness_exponent_is_q_minus_2_at_a_zero_coordinate(p, w, eps):
    # LIN-LP (docs/theory/lin-lp.md): at w_i = 0 the ratio on w ± t e_i grows like t^(q−2) for 2 < p < ∞, 1/t for p = ∞
    from advlip import data

    X, y = data.synthetic(jax.random.PRNGKey(1), n=8, d=D)
    prob = LinearProblem(X=X, y=y, eps=eps, p=p)
    i = int(np.flatnonzero(w == 0.0)[0])
    e = jnp.eye(D)[i]
    ts = smoothness.witness_ts()
    dg, dt = smoothness.witness_differences(
        LinearProblem.grad, jnp.asarray(w), e, -e, ts, args=(prob,)
    )
    err = 2 * float(jax.jit(LinearProblem.grad_error_bound)(prob, jnp.asarray(w)))
    fit = smoothness.fit_growth_exponent(ts, dg, dt, grad_abs_error=err)
    expected = -1.0 if math.isinf(p) else norms.dual_exponent(p) - 2.0
    assert fit.resolved and fit.agrees_with(expected), (p, fit.exponent, fit.tolerance, expected)


@settings(max_examples=10)
@given(
    p=st.floats(1.05, 2.0), w=strategies.weights(D, kind="exact_kink", min_norm=0.5, max_norm=3.0)
)
def test_witness_is_bounded_for_p_at_most_2(p, w):
    # LIN-LP (docs/theory/lin-lp.md): for 1 < p ≤ 2 (q ≥ 2) the zero coordinate is no kink: exponent 0
    from advlip import data

    X, y = data.synthetic(jax.random.PRNGKey(2), n=8, d=D)
    prob = LinearProblem(X=X, y=y, eps=0.5, p=p)
    i = int(np.flatnonzero(w == 0.0)[0])
    e = jnp.eye(D)[i]
    ts = smoothness.witness_ts()
    dg, dt = smoothness.witness_differences(
        LinearProblem.grad, jnp.asarray(w), e, -e, ts, args=(prob,)
    )
    err = 2 * float(jax.jit(LinearProblem.grad_error_bound)(prob, jnp.asarray(w)))
    fit = smoothness.fit_growth_exponent(ts, dg, dt, grad_abs_error=err)
    assert fit.bounded and fit.agrees_with(0.0)
