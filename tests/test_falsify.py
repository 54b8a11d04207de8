"""The falsifier: sound on true claims, powerful on false ones, replayable."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advlip import data, falsifier, falsify, falsify_smoothness, regions
from advlip.falsifier import STRATEGIES
from advlip.linear import LinearProblem

X, Y = data.synthetic(jax.random.PRNGKey(0), n=16, d=3)


def _lin_l2_beta(prob, r):
    # LIN-L2 (docs/theory/lin-l2.md) (softplus: ℓ''max = 1/4, |ℓ'|max = 1): β = ¼((max‖x‖+ε)² + [bias]) + ε/r on ‖w‖ ≥ r
    return 0.25 * ((prob.x_norm_max + prob.eps) ** 2 + prob.fit_bias) + prob.eps / r


# ---------------------------------------------------------------- soundness: true claims stand


@settings(max_examples=4, suppress_health_check=[HealthCheck.nested_given])
@given(
    eps=st.sampled_from([0.1, 0.5, 1.0]),
    r=st.sampled_from([0.2, 1.0, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_lin_l2_true_bound_is_never_refuted(eps, r, seed):
    prob = LinearProblem(X=X, y=Y, eps=eps, p=2.0)
    v = falsify_smoothness(
        prob.grad,
        beta=_lin_l2_beta(prob, r),
        region=regions.NormAtLeast(r, prob.dim),
        budget=1200,
        seed=seed,
    )
    assert not v.refuted and v.excess <= 1.0


@settings(max_examples=3, suppress_health_check=[HealthCheck.nested_given])
@given(eps=st.sampled_from([0.1, 0.5]), seed=st.integers(0, 2**16))
def test_lin_linf_additive_bound_is_never_refuted(eps, seed):
    prob = LinearProblem(X=X, y=Y, eps=eps, p=math.inf)
    sd = math.sqrt(prob.d)
    beta = (
        0.25 * (prob.x_norm_max + eps * sd) ** 2
    )  # LIN-LINF (docs/theory/lin-linf.md), softplus constants
    alpha = 2 * eps * sd * 1.0
    v = falsify_smoothness(
        prob.grad,
        beta=beta,
        alpha=alpha,
        region=regions.Ball(np.zeros(prob.dim), 3.0),
        budget=1200,
        seed=seed,
    )
    assert not v.refuted


# ---------------------------------------------------------------- power: false claims fall


@pytest.mark.parametrize("p", [1.0, math.inf], ids=["L1", "Linf"])
@pytest.mark.parametrize("beta", [1.0, 100.0, 1e4])
def test_l1_and_linf_claimed_smooth_are_refuted(p, beta):
    prob = LinearProblem(X=X, y=Y, eps=0.5, p=p)
    v = falsify_smoothness(prob.grad, beta=beta, region=regions.NormAtLeast(1.0, prob.dim), seed=1)
    assert v.refuted
    # the witness straddles the kink: its ratio exceeds β, re-computed here from scratch
    g = lambda th: np.asarray(prob.grad(jnp.asarray(th)))  # noqa: E731
    R = np.linalg.norm(g(v.theta1) - g(v.theta2)) / np.linalg.norm(v.theta1 - v.theta2)
    assert R > beta
    assert regions.NormAtLeast(1.0, prob.dim).contains(v.theta1)


def test_lin_l2_below_its_supremum_is_refuted():
    # The sup of R on ‖w‖ ≥ r is at least λ_max of the Hessian at any w there (R → ‖H v‖ as
    # pairs close along v). Claiming 0.9 × the largest such λ_max is false; it must fall.
    r = 0.5
    prob = LinearProblem(X=X, y=Y, eps=0.5, p=2.0)
    rng = np.random.default_rng(0)
    ws = regions.NormAtLeast(r, prob.dim, max_norm=2 * r).sample(rng, 64)
    lam = max(
        float(np.max(np.abs(np.linalg.eigvalsh(np.asarray(prob.hessian(jnp.asarray(w)))))))
        for w in ws
    )
    v = falsify_smoothness(
        prob.grad, beta=0.9 * lam, region=regions.NormAtLeast(r, prob.dim), seed=2
    )
    assert v.refuted and v.ratio > 0.9 * lam


def test_sign_switch_found_by_bisection_without_probes():
    # ∇L jumps across the hyperplane θ·a = 0.3 (not a coordinate plane: no probe sits on it);
    # the segment bisection must find it.
    a = jnp.array([0.6, -0.8])
    grad = lambda th: jnp.where(th @ a > 0.3, 1.0, -1.0) * a + 0.1 * th  # noqa: E731
    v = falsify_smoothness(
        grad,
        beta=50.0,
        region=regions.Box([-2.0, -2.0], [2.0, 2.0]),
        strategies=("bisection",),
        seed=3,
    )
    assert v.refuted and v.strategy == "bisection"


def test_each_strategy_alone_reports_itself():
    grad = lambda th: jnp.sign(th)  # noqa: E731
    for name in STRATEGIES:
        v = falsify_smoothness(
            grad, beta=1.0, region=regions.Box([-1.0], [1.0]), strategies=(name,), budget=400
        )
        assert set(v.per_strategy) == {name}
        assert v.evaluations <= 400 + 64  # the budget, give or take one padded batch


# ---------------------------------------------------------------- replay, pytrees, generic claims


def test_refutation_replays_from_its_seed():
    prob = LinearProblem(X=X, y=Y, eps=0.5, p=math.inf)
    kw = dict(
        beta=5.0,
        region=regions.Ball(np.ones(prob.dim), 1.0),
        seed=7,
        strategies=("random", "bisection"),
    )
    a, b = falsify_smoothness(prob.grad, **kw), falsify_smoothness(prob.grad, **kw)
    assert a.refuted == b.refuted
    np.testing.assert_array_equal(a.theta1, b.theta1)
    np.testing.assert_array_equal(a.theta2, b.theta2)


def test_pytree_parameters():
    params = {"w": jnp.ones(2), "b": jnp.zeros(())}
    grad = jax.grad(lambda p: jnp.sum(jnp.abs(p["w"])) + p["b"] ** 2)
    v = falsify_smoothness(grad, beta=10.0, region=regions.Ball(params, 1.5), budget=600, seed=0)
    assert v.refuted and v.theta1.shape == (3,)


def test_generic_falsify_both_ways():
    bad = falsify(lambda x: x * x - 4 * x, st.floats(-10, 10), budget=200, seed=0)  # "x² ≤ 4x"
    assert bad.refuted and bad.counterexample**2 - 4 * bad.counterexample > 0
    good = falsify(lambda x: -(x * x), st.floats(-10, 10), budget=100, seed=0)  # "x² ≥ 0"
    assert not good.refuted and good.examples == 100
    assert falsify(lambda x: x < 5, st.integers(0, 10), budget=200).refuted  # bool claims too


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(beta=0.0), "beta=0.0"),
        (dict(beta=float("nan")), "beta=nan"),
        (dict(alpha=-1.0), "alpha=-1.0"),
        (dict(budget=10), "budget=10"),
        (dict(strategies=("magic",)), "allowed values"),
        (dict(region="ball"), "region must be"),
    ],
    ids=[
        "beta-zero",
        "beta-nan",
        "alpha-negative",
        "budget-small",
        "strategy-unknown",
        "region-type",
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(beta=1.0, region=regions.Box([-1.0], [1.0]), budget=200)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        falsify_smoothness(lambda th: th, **args)


def test_gradient_of_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="returns shape"):
        falsify_smoothness(
            lambda th: jnp.sum(th), beta=1.0, region=regions.Box([0.0, 0.0], [1.0, 1.0])
        )


# ---------------------------------------------------------------- regions


@pytest.mark.parametrize(
    "region",
    [
        regions.Ball(np.array([1.0, -1.0, 0.5]), 0.7),
        regions.NormAtLeast(2.0, 3),
        regions.Box([-1, 0, 2], [0, 1, 3]),
    ],
    ids=["ball", "norm-at-least", "box"],
)
def test_regions_sample_inside_and_project(region):
    pts = region.sample(np.random.default_rng(0), 200)
    assert pts.shape == (200, 3) and all(region.contains(p) for p in pts)
    outside = 10.0 * np.random.default_rng(1).standard_normal((50, 3))
    for x in outside:
        px = np.asarray(region.project(jnp.asarray(x)))
        assert region.contains(px)
        np.testing.assert_allclose(
            np.asarray(region.project(jnp.asarray(px))), px, rtol=1e-14, atol=1e-14
        )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: regions.Ball(np.zeros(2), -1.0), "radius"),
        (lambda: regions.NormAtLeast(0.0, 2), "r=0.0"),
        (lambda: regions.NormAtLeast(1.0, 0), "dim"),
        (lambda: regions.Box([0.0, 1.0], [1.0, 1.0]), "low"),
        (lambda: regions.Box([0.0], [1.0, 2.0]), "shape"),
    ],
    ids=["ball-radius", "norm-r", "norm-dim", "box-order", "box-shape"],
)
def test_bad_regions(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---------------------------------------------------------------- what a claim may return


def _calls(claim):
    """``claim`` wrapped to count its calls."""
    n = [0]

    def counted(x):
        n[0] += 1
        return claim(x)

    return counted, n


@pytest.mark.parametrize(
    "holds, fails",
    [
        (lambda x: True, lambda x: False),
        (lambda x: np.bool_(True), lambda x: np.bool_(False)),
        (lambda x: np.array(True), lambda x: np.array(False)),
        (lambda x: jnp.abs(jnp.sin(x)) <= 1.0, lambda x: jnp.sin(x) > 2.0),  # issue 9
        (lambda x: jnp.asarray(x) == jnp.asarray(x), lambda x: jnp.asarray(x) != jnp.asarray(x)),
    ],
    ids=["python", "numpy-scalar", "numpy-0d", "jax-sin", "jax-eq"],
)
def test_a_zero_d_boolean_is_a_verdict(holds, fails):
    # A JAX 0-d bool once fell through to float(out): True became a margin 1.0 > 0
    # ("violated") and False a margin 0.0 ("holds") — every verdict inverted.
    good = falsify(holds, st.floats(-10, 10), budget=50, seed=0)
    assert not good.refuted and good.examples == 50 and good.best_margin == 0.0
    counted, n = _calls(fails)
    bad = falsify(counted, st.floats(-10, 10), budget=50, seed=0)
    assert bad.refuted and bad.examples == 1 and bad.counterexample is not None
    assert n[0] == 1  # the violation ends the search: the claim is not called again


@pytest.mark.parametrize(
    "wrap",
    [float, np.float32, lambda v: jnp.asarray(v, dtype=jnp.float32), jnp.asarray, int, np.int64],
    ids=["python-float", "np-float32", "jax-float32", "jax-default", "python-int", "np-int64"],
)
def test_a_zero_d_real_is_a_margin(wrap):
    counted, n = _calls(lambda x: wrap(x - 5))  # "x ≤ 5" as a margin
    bad = falsify(counted, st.integers(0, 10), budget=200, seed=0)
    assert bad.refuted and bad.counterexample > 5 and bad.best_margin > 0
    assert n[0] == bad.examples  # no replay of the violating example
    good = falsify(lambda x: wrap(-1), st.integers(-(10**6), 10**6), budget=30, seed=0)
    assert not good.refuted and good.best_margin == -1.0 and good.examples == 30


@pytest.mark.parametrize(
    "out, says",
    [
        (jnp.ones(2), r"shape \(2,\).*dtype float"),
        (jnp.array([True]), r"shape \(1,\).*dtype bool"),
        (np.zeros((1, 1)), r"shape \(1, 1\).*dtype float64"),
        ("yes", r"type builtins\.str"),
        (None, r"type builtins\.NoneType"),
        (1j, r"type builtins\.complex"),
        (np.complex128(1j), r"dtype complex128"),
        (jnp.asarray(1j), r"shape \(\).*dtype complex"),
    ],
    ids=[
        "jax-vector",
        "jax-bool-vector",
        "np-matrix",
        "str",
        "none",
        "complex",
        "np-complex",
        "jax-complex",
    ],
)
def test_anything_else_is_a_type_error_saying_what_came_back(out, says):
    with pytest.raises(TypeError, match=says) as info:
        falsify(lambda x: out, st.floats(-10, 10), budget=20, seed=0)
    assert type(info.value) is TypeError  # itself, not wrapped by Hypothesis
    assert "allowed: a 0-d boolean" in str(info.value)


def test_nan_margin_and_claim_errors_propagate_as_themselves():
    with pytest.raises(ValueError, match="claim returned NaN") as info:
        falsify(lambda x: float("nan"), st.floats(-10, 10), budget=20, seed=0)
    assert type(info.value) is ValueError

    def broken(x):
        raise ZeroDivisionError("inside the claim")

    with pytest.raises(ZeroDivisionError, match="inside the claim"):
        falsify(broken, st.floats(-10, 10), budget=20, seed=0)


def test_falsify_replays_from_its_seed_under_any_profile():
    # the test profile may be derandomized; the seed must still decide the examples
    seen = {s: [] for s in (1, 2)}
    for s in seen:
        falsify(lambda x, s=s: seen[s].append(x) or True, st.floats(-1e6, 1e6), budget=20, seed=s)
    again = []
    falsify(lambda x: again.append(x) or True, st.floats(-1e6, 1e6), budget=20, seed=1)
    assert again == seen[1] and seen[1] != seen[2]


# ---------------------------------------------------------------- precision of the gradient


def _float32_linear_gradient(dim=12):
    # ∇L(θ) = A θ with A symmetric in float32, the product computed in float32. The exact
    # map is ‖A‖₂-Lipschitz, so β = ‖A‖₂ (of the float32 entries, in float64) is the true
    # smallest constant: any excess comes from float32 rounding alone.
    rng = np.random.default_rng(0)
    M = rng.standard_normal((dim, dim))
    A32 = ((M + M.T) / 2).astype(np.float32)
    lam, vec = np.linalg.eigh(A32.astype(np.float64))
    k = int(np.argmax(np.abs(lam)))
    A = jnp.asarray(A32)
    return (lambda th: A @ th.astype(jnp.float32)), float(abs(lam[k])), vec[:, k]


def _along(v):
    """A probe: pairs θ, θ + t·v, t from 10⁻⁷ to 10⁻⁴: along the top eigenvector the exact
    ratio is β itself, so the float32 rounding of the gradient decides the excess."""

    def probe(rng, region):
        th = region.sample(rng, 32)
        t = np.logspace(-7, -4, 32)[:, None]
        return th, th + t * v[None, :]

    return probe


def test_float32_gradient_is_judged_by_float32_rounding(monkeypatch):
    grad, beta, v = _float32_linear_gradient()
    region = regions.Box(-np.ones(v.size), np.ones(v.size))
    kw = dict(beta=beta, region=region, budget=600, seed=0, probes=[_along(v)])
    verdict = falsify_smoothness(grad, **kw)
    assert verdict.grad_dtype == "float32"
    assert not verdict.refuted
    # ... though float32 rounding does push the ratio past the true β on these pairs:
    assert verdict.excess > 1.0
    # judged with float64's γ_1000 instead (what it was before), that rounding would
    # be reported as a witness against a true claim

    monkeypatch.setattr(
        falsifier, "default_grad_rtol", lambda dtype, dim=0: falsifier.DEFAULT_GRAD_RTOL
    )
    assert falsify_smoothness(grad, **kw).refuted


def test_parameters_stay_float32_without_x64():
    # with float64 off (what a user gets unless they turn it on) the parameters, the
    # gradient and the witness are float32; a jump is still found, a true β still stands
    with jax.enable_x64(False):
        grad, beta, v = _float32_linear_gradient()
        region = regions.Box(-np.ones(v.size), np.ones(v.size))
        v = falsify_smoothness(grad, beta=beta, region=region, budget=600, seed=0)
        assert not v.refuted and v.grad_dtype == "float32"
        assert v.theta1.dtype == np.float32
        jump = falsify_smoothness(
            lambda th: jnp.sign(th), beta=100.0, region=regions.Box([-1.0], [1.0]), budget=200
        )
        assert jump.refuted and jump.theta1.dtype == np.float32


def test_float32_pytree_parameters_are_fed_as_float32():
    params = {"w": jnp.ones(3, jnp.float32)}
    seen = []

    def grad(p):
        seen.append(p["w"].dtype)
        return {"w": 2.0 * p["w"]}

    v = falsify_smoothness(grad, beta=2.0, region=regions.Ball(params, 1.0), budget=200, seed=0)
    assert set(seen) == {jnp.dtype(jnp.float32)} and v.grad_dtype == "float32"
    assert not v.refuted


def test_no_checkable_pair_is_an_error_that_says_why():
    # Neither "refuted" nor "not refuted" is true when no pair gave a ratio: the search
    # must say so (UncheckableClaimError, a ValueError), with the cause.
    from advlip.falsifier import UncheckableClaimError

    with pytest.raises(UncheckableClaimError, match="inf or NaN"):
        falsify_smoothness(
            lambda th: th * jnp.inf, beta=1.0, region=regions.Box([-1.0], [1.0]), budget=200, seed=0
        )
    with pytest.raises(UncheckableClaimError, match="coincided"):
        falsify_smoothness(
            lambda th: 2.0 * th, beta=1.0, region=regions.Box([0.0], [5e-324]), budget=200, seed=0
        )


def test_pairs_near_the_underflow_threshold_keep_their_ratio():
    # ∇ = 2θ on a box 1e-300 wide: every pair's ratio is exactly 2. A plain 2-norm squares
    # 1e-300 to 0 and loses (or divides by) the distance; the scaled norm keeps it.
    box = regions.Box([0.0], [1e-300])
    v = falsify_smoothness(lambda th: 2.0 * th, beta=1.0, region=box, budget=200, seed=0)
    assert v.refuted and v.ratio == pytest.approx(2.0, rel=1e-12)
    v = falsify_smoothness(lambda th: 2.0 * th, beta=3.0, region=box, budget=200, seed=0)
    assert not v.refuted and v.ratio == pytest.approx(2.0, rel=1e-12)


def test_grad_error_may_be_a_function_of_theta():
    # ∇ = sign(θ) jumps by 2 at 0: refuted with the default error, but not when the
    # gradient's own error bound (here a deliberately huge one) swallows the jump; a
    # bound that returns NaN is refused, not used.
    box = regions.Box([-1.0], [1.0])
    grad = lambda th: jnp.sign(th)  # noqa: E731
    assert falsify_smoothness(grad, beta=100.0, region=box, budget=400, seed=0).refuted
    huge = falsify_smoothness(
        grad, beta=100.0, region=box, budget=400, seed=0, grad_error=lambda th: 10.0
    )
    assert not huge.refuted
    with pytest.raises(ValueError, match="grad_error"):
        falsify_smoothness(
            grad, beta=100.0, region=box, budget=400, seed=0, grad_error=lambda th: math.nan
        )


def test_default_gradient_error_counts_the_dimension():
    # a gradient over P parameters sums P-term dot products: its default k grows with P
    from advlip import tolerance

    assert falsifier.default_grad_rtol(np.float64, 10**6) == tolerance.gamma(1000 + 4 * 10**6)
    assert falsifier.default_grad_rtol(np.float64, 10**6) > falsifier.default_grad_rtol(np.float64)
