"""Properties of advlip.norms: dual exponents, Hölder, dual directions, Hessians, projections.

Tolerances follow advlip.tolerance: ``gamma(k) * (sum of |terms|)``, with ``k`` counted
from the formula in the helpers below. The one rule used beyond +-*/ and sqrt: a power
``x**a`` of a computed ``x`` with relative error ``k`` roundings has relative error
``|a| k`` roundings plus 2 for the power itself (libm's pow is within 1 ulp).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from advlip import norms, strategies, tolerance
from advlip.tolerance import gamma

P_VALUES = (1.0, 1.5, 2.0, 3.0, math.inf)
# JAX compiles each operation per shape, even eagerly: the checks that run JAX share d = 3
# (as test_linear does); d from 1 to 6 is drawn where numpy does the work.
DIMS = st.just(3)


def k_norm(q: float, d: int) -> float:
    """Roundings in ``lp_norm(w, q)`` relative to ``||w||_q``.

    ``r_i = |w_i|/s`` (1), ``r_i**q`` (q*1 + 2), ``d - 1`` additions of nonnegative terms:
    ``q + d + 1`` on the sum; ``**(1/q)`` divides that by q and adds 2; ``* s`` adds 1.
    Also an upper bound for the special paths (q = 1: d - 1; q = 2: (d + 1)/2 + 1; q = inf: 0).
    """
    return 4.0 if math.isinf(q) else (q + d + 1.0) / q + 3.0


def k_dual(q: float, d: int) -> float:
    """Roundings in each ``u_i`` of ``dual_direction(w, q=q)``, relative to ``|u_i|``.

    ``u = sign(w)`` (q = 1) and the one-hot ``sign(w_k) e_k`` (q = inf) are exact; otherwise
    ``(|w_i| / N)**(q-1)``: N (k_norm), the division (1), the power ((q-1)(k_norm+1) + 2).
    """
    if q == 1.0 or math.isinf(q):
        return 0.0
    return (q - 1.0) * (k_norm(q, d) + 1.0) + 2.0


def g(k: float) -> float:
    """``gamma`` of a possibly fractional count (rounded up)."""
    return gamma(math.ceil(k))


def assert_close(actual, expected, tol) -> None:
    """``|actual - expected| <= tol`` elementwise, reporting the worst ratio."""
    err = np.abs(np.asarray(actual, dtype=float) - np.asarray(expected, dtype=float))
    tol = np.broadcast_to(np.asarray(tol, dtype=float), err.shape)
    bad = err > tol
    assert not bad.any(), (
        f"error {err[bad].max():.3e} > tolerance {tol[bad].min():.3e}\n{err}\n{tol}"
    )


# Entries are 0 or of magnitude >= 1e-100, and radii below are >= 1e-100: every product the
# checks form then stays a normal float, the setting of the gamma error model (it does not
# cover underflow).
_entries = st.floats(-10, 10, allow_subnormal=False).map(lambda x: x if abs(x) >= 1e-100 else 0.0)
vectors = partial(hnp.arrays, np.float64, elements=_entries)


# --------------------------------------------------------------------------- dual exponents


@pytest.mark.parametrize(("p", "q"), [(1.0, math.inf), (2.0, 2.0), (math.inf, 1.0)])
def test_dual_exponent_special_pairs(p, q):
    assert norms.dual_exponent(p) == q
    assert norms.dual_exponent(q) == p


@given(strategies.p_values())
def test_dual_exponent_is_holder_conjugate(p):
    q = norms.dual_exponent(p)
    assert q >= 1.0
    if p in (1.0, math.inf):
        assert 1.0 / p + 1.0 / q == 1.0
        return
    # 1/p + 1/q - 1 with q = p/(p-1): p-1 and the division (2 roundings on q), 1/q (3 on
    # 1/q), 1/p (1), the sum (1): |error| <= gamma(4) * (1/p + 1/q).
    assert abs(1.0 / p + 1.0 / q - 1.0) <= gamma(4) * (1.0 / p + 1.0 / q)


def test_dual_exponent_accepts_inf_spelled_as_string():
    assert norms.dual_exponent("inf") == 1.0


# --------------------------------------------------------------------------- Hölder and u(w)


@given(w=strategies.weights(DIMS, kind="generic"), p=st.sampled_from(P_VALUES), data=st.data())
def test_holder_inequality(w, p, data):
    d = w.shape[0]
    q = norms.dual_exponent(p)
    delta = data.draw(vectors(d))
    lhs = abs(float(w @ delta))
    norm_w, norm_delta = float(norms.lp_norm(w, q)), float(norms.lp_norm(delta, p))
    # The dot product is off by gamma(d) * sum|w_i delta_i|; the product of the two norms
    # by k_norm(q) + k_norm(p) + 1 roundings relative to itself.
    tol = (
        g(d) * float(np.sum(np.abs(w * delta)))
        + g(k_norm(q, d) + k_norm(p, d) + 1) * norm_w * norm_delta
    )
    assert lhs <= norm_w * norm_delta + tol


ANY_WEIGHTS = st.one_of([strategies.weights(DIMS, kind=k) for k in strategies.WEIGHT_KINDS])


@given(w=ANY_WEIGHTS, p=st.sampled_from(P_VALUES))
def test_dual_direction_attains_holder_equality(w, p):
    # Holds at every w != 0, kinks and ties included: u(w) is a subgradient of ||.||_q.
    d = w.shape[0]
    q = norms.dual_exponent(p)
    u = np.asarray(norms.dual_direction(w, q=q))
    norm_w = float(norms.lp_norm(w, q))
    # u.w: each u_i w_i carries k_dual + 1 roundings, the sum d - 1 more; ||w||_q: k_norm.
    tol = g(k_dual(q, d) + d) * float(np.sum(np.abs(u * w))) + g(k_norm(q, d)) * norm_w
    assert abs(float(u @ w) - norm_w) <= tol
    # ||u||_p = 1: ||.||_p is monotone and 1-homogeneous, so a relative error of k_dual
    # roundings in every u_i moves it by k_dual roundings; computing it adds k_norm(p).
    assert abs(float(norms.lp_norm(u, p)) - 1.0) <= g(k_dual(q, d) + k_norm(p, d))


def test_dual_direction_at_zero_is_zero():
    for q in (1.0, 1.5, 2.0, 3.0, math.inf):
        np.testing.assert_array_equal(norms.dual_direction(np.zeros(3), q=q), np.zeros(3))


# --------------------------------------------------------------------------- Hessian of ||w||_q

_HESSIANS = {
    norms.dual_exponent(p): jax.jit(jax.hessian(partial(norms.lp_norm, p=norms.dual_exponent(p))))
    for p in P_VALUES
}


@given(w=strategies.weights(DIMS, kind="generic"), p=st.sampled_from(P_VALUES))
def test_norm_hessian_matches_autodiff(w, p):
    q = norms.dual_exponent(p)
    d = w.shape[0]
    H = np.asarray(norms.norm_hessian(w, q=q))
    if q == 1.0 or math.isinf(q):
        # ||w||_1 and ||w||_inf are piecewise linear: the Hessian is exactly 0 off the kinks.
        np.testing.assert_array_equal(H, np.zeros((d, d)))
        np.testing.assert_array_equal(_HESSIANS[q](w), np.zeros((d, d)))
        return
    H_ad = np.asarray(_HESSIANS[q](w))
    N = float(norms.lp_norm(w, q))
    r = np.abs(w) / N
    u = np.asarray(norms.dual_direction(w, q=q))
    kn = k_norm(q, d)
    # Closed form (q-1)/N [diag(r^(q-2)) - u u^T]: r^(q-2) has |q-2|(kn+1)+2 roundings,
    # u_i u_j 2 k_dual + 1, the difference 1, the factor (q-1)/N kn + 2.
    k = max(abs(q - 2.0) * (kn + 1.0) + 2.0, 2.0 * k_dual(q, d) + 1.0) + 1.0 + kn + 2.0
    terms = (q - 1.0) / N * (np.diag(r ** (q - 2.0)) + np.abs(np.outer(u, u)))
    # jax.hessian differentiates lp_norm's s * S**(1/q), s = max|w_i|: the chain rule through
    # s adds, in the row and column of argmax|w_i|, terms of size up to (q+1) N/s^2 that
    # cancel exactly; they enter its sum of |terms| (the same count k covers its steps).
    through_s = np.zeros((d, d))
    kmax = int(np.argmax(np.abs(w)))
    through_s[kmax, :] += 1.0
    through_s[:, kmax] += 1.0
    s = float(np.max(np.abs(w)))
    terms_ad = terms + (q + 1.0) * N / s**2 * through_s
    assert_close(H, H_ad, g(k) * (terms + terms_ad))


@given(ANY_WEIGHTS)
def test_norm_hessian_q2_is_projector_over_norm(w):
    d = w.shape[0]
    H = np.asarray(norms.norm_hessian(w, q=2.0))
    n = float(np.linalg.norm(w))
    w_hat = w / n
    expected = (np.eye(d) - np.outer(w_hat, w_hat)) / n
    # Both sides: the norm (d products, d - 1 sums, sqrt: d + 1), w_hat (1 more), the outer
    # product (1), the difference (1), the division (1): k = d + 5 per side, on
    # (1 + |w_hat_i w_hat_j|)/||w||.
    terms = (np.eye(d) + np.abs(np.outer(w_hat, w_hat))) / n
    assert_close(H, expected, 2 * gamma(d + 5) * terms)


# --------------------------------------------------------------------------- projections

PROJ_P = (1.0, 2.0, math.inf)


def projection_error(delta: np.ndarray, P: np.ndarray, eps: float, p: float) -> np.ndarray:
    """Bound on ``|P_i - P_exact_i|`` per coordinate.

    L-inf: clipping is exact. L2: ``delta * eps / sqrt(max(||delta||^2, eps^2))``, d + 4
    roundings relative to ``|P_i|``. L1 (optax, sort-based): the threshold theta comes from a
    cumulative sum of the sorted ``|delta_i|/eps`` (d roundings on ``||delta||_1/eps + 1``),
    and ``P_i = eps * max(|delta_i|/eps - theta, 0)`` cancels, so the error is absolute:
    gamma(d + 4) * (||delta||_1 + eps).
    """
    d = delta.shape[-1]
    if math.isinf(p):
        return np.zeros_like(P)
    if p == 2.0:
        return gamma(d + 4) * np.abs(P)
    return np.full_like(P, gamma(d + 4) * (float(np.sum(np.abs(delta))) + eps))


def feasible_points(d: int, eps: float, p: float) -> st.SearchStrategy[np.ndarray]:
    """Points of B_p(eps): ``t eps v/||v||_p`` (t in [0, 1], 1 often) and extreme points."""
    direction = vectors(d).filter(lambda v: np.max(np.abs(v)) > 1e-3)
    t = st.one_of(st.just(1.0), st.floats(0.0, 1.0))
    scaled = st.tuples(direction, t).map(
        lambda vt: vt[1] * eps * vt[0] / float(norms.lp_norm(vt[0], p))
    )
    if p == 1.0:
        extreme = st.tuples(st.integers(0, d - 1), st.sampled_from([-1.0, 1.0])).map(
            lambda ks: ks[1] * eps * np.eye(d)[ks[0]]
        )
    elif math.isinf(p):
        extreme = hnp.arrays(np.float64, d, elements=st.sampled_from([-eps, eps]))
    else:
        return scaled
    return st.one_of(scaled, extreme)


def feasible_slack(z: np.ndarray, eps: float, p: float) -> float:
    """How far (in L2, per coordinate bound) a drawn z may sit outside the ball: z carries
    k_norm(p) + 3 roundings relative to ``|z_i|`` (the norm, the division, two products)."""
    return g(k_norm(p, z.shape[0]) + 3) * float(np.linalg.norm(z))


@given(
    delta=vectors(DIMS),
    # A few radii: project_ball compiles anew for every distinct eps under p = 1 (optax's
    # lax.cond closes over it); the entries of delta span 1e-100 .. 10, so delta/eps still
    # ranges over every scale. eps = 0 and tiny radii: the tests below.
    eps=st.sampled_from([1e-3, 0.5, 1.0, 10.0]),
    p=st.sampled_from(PROJ_P),
    data=st.data(),
)
def test_project_ball_is_the_euclidean_projection(delta, eps, p, data):
    d = delta.shape[0]
    P = np.asarray(norms.project_ball(delta, eps=eps, p=p))
    e = projection_error(delta, P, eps, p)
    e2 = float(np.linalg.norm(e))

    # Feasible: ||P||_p <= ||P_exact||_p + ||P - P_exact||_p <= eps + ||e||_1, plus the
    # k_norm(p) roundings of computing ||P||_p.
    assert float(norms.lp_norm(P, p)) <= (eps + float(np.sum(e))) * (1 + g(k_norm(p, d)))

    # Idempotent: P lies within ||e||_2 of the ball, and projecting moves a point by its
    # distance to the ball (up to the error of the second projection).
    PP = np.asarray(norms.project_ball(P, eps=eps, p=p))
    e_second = projection_error(P, PP, eps, p)
    assert_close(PP, P, e2 + e_second)

    # Variational inequality <delta - P, z - P> <= 0 for every feasible z (this characterises
    # the Euclidean projection). With P off by e and z outside the ball by at most sz:
    # |change| <= ||e|| (||z - P|| + ||delta - P|| + ||e||) + ||delta - P|| sz, plus the
    # gamma(d + 2) rounding of the differences and the d-term dot product.
    z = data.draw(feasible_points(d, eps, p), label="z")
    a, c = delta - P, z - P
    sz = feasible_slack(z, eps, p)
    tol = (
        e2 * (float(np.linalg.norm(c)) + float(np.linalg.norm(a)) + e2)
        + float(np.linalg.norm(a)) * sz
        + gamma(d + 2) * float(np.sum(np.abs(a * c)))
    )
    assert float(a @ c) <= tol


def test_project_ball_l1_is_a_projection_not_a_rescaling():
    delta, eps = np.array([3.0, 1.0]), 1.0
    P = np.asarray(norms.project_ball(delta, eps=eps, p=1.0))
    # Duchi et al.: threshold theta = 2, so P = (3 - 2, max(1 - 2, 0)) = (1, 0).
    e = projection_error(delta, P, eps, 1.0)
    assert_close(P, [1.0, 0.0], e)
    rescaled = eps * delta / np.sum(np.abs(delta))  # (0.75, 0.25): feasible, not nearest
    assert np.linalg.norm(P - rescaled) > 0.25


def test_project_ball_batches_over_leading_axes():
    delta = np.array([[3.0, 1.0, -0.5], [0.1, 0.2, 0.0], [-4.0, 3.0, 2.5]])
    for p in PROJ_P:
        batched = np.asarray(norms.project_ball(delta, eps=1.0, p=p))
        rows = np.stack([np.asarray(norms.project_ball(r, eps=1.0, p=p)) for r in delta])
        np.testing.assert_array_equal(batched, rows)


@pytest.mark.parametrize(
    ("p", "delta"),
    [
        pytest.param(
            1.0,
            [1.0, 2.0],
            id="p=1-delta!=0",
        ),
        pytest.param(1.0, [0.0, 0.0], id="p=1-delta=0"),
        pytest.param(2.0, [1.0, 2.0], id="p=2-delta!=0"),
        pytest.param(
            2.0,
            [0.0, 0.0],
            id="p=2-delta=0",
        ),
        pytest.param(math.inf, [1.0, 2.0], id="p=inf-delta!=0"),
        pytest.param(math.inf, [0.0, 0.0], id="p=inf-delta=0"),
    ],
)
def test_project_ball_onto_radius_zero_is_zero(p, delta):
    # B_p(0) = {0}; eps = 0 is an allowed radius (check_eps accepts eps >= 0).
    np.testing.assert_array_equal(norms.project_ball(np.array(delta), eps=0.0, p=p), [0.0, 0.0])


def test_project_ball_tiny_radius():
    np.testing.assert_array_equal(norms.project_ball(np.zeros(2), eps=1e-200, p=2.0), [0.0, 0.0])


# --------------------------------------------------------------------------- l2_radius


@given(
    d=st.integers(1, 6),
    p=strategies.p_values(),
    direction=hnp.arrays(np.float64, 6, elements=st.floats(-1, 1, allow_subnormal=False)),
)
def test_l2_radius_is_the_largest_euclidean_norm_on_the_unit_ball(d, p, direction):
    radius = norms.l2_radius(d, p)
    # d ** max(0, 1/2 - 1/p): 1/p and the difference (2 roundings on an exponent a <= 1/2,
    # moving d**a by a*ln(d) <= 1 times that for d <= 7), the power (2): k = 4.
    tol = gamma(4) * radius
    if p <= 2.0:
        assert radius == 1.0  # attained at e_1
    else:
        # attained at d**(-1/p) (1, ..., 1), which has ||.||_p = 1: its entries carry 3
        # roundings (1/p, amplified by ln(d)/p <= 1, and the power's 2), the norm d + 1
        inv_p = 0.0 if math.isinf(p) else 1.0 / p
        corner = np.full(d, float(d) ** -inv_p)
        assert abs(float(np.linalg.norm(corner)) - radius) <= tol + g(d + 4) * radius
    if math.isinf(p):
        assert abs(radius - math.sqrt(d)) <= tol
    v = direction[:d]
    if np.max(np.abs(v)) > 0:
        s = np.max(np.abs(v))  # ||v||_p with lp_norm's scaling, in numpy (any d, no compiles)
        norm_p = s if math.isinf(p) else s * float(np.sum((np.abs(v) / s) ** p) ** (1 / p))
        on_sphere = v / norm_p
        # ||v/||v||_p||_2: k_norm(p) + 1 roundings on v/||v||_p, then k_norm(2).
        bound = radius * (1 + tol) * (1 + g(k_norm(p, d) + 1 + k_norm(2.0, d)))
        assert float(np.linalg.norm(on_sphere)) <= bound


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_l1_projection_keeps_the_dtype_and_matches_optax(dtype):
    """project_ball(p=1) runs in the input's dtype (optax's divides by an integer count,
    which float64 mode promotes, and then fails on float32 input) and equals optax's
    sort-based projection, computed in float64 on the same float32-representable input."""
    import optax.projections

    rng = np.random.default_rng(4)
    V = jnp.asarray(rng.standard_normal((50, 6)) * rng.choice([0.1, 1.0, 10.0], (50, 1)), dtype)
    out = norms.project_ball(V, eps=1.0, p=1.0)
    assert out.dtype == dtype
    V64 = np.asarray(V, np.float64)
    ref = np.stack(
        [
            v if np.abs(v).sum() <= 1.0 else np.asarray(optax.projections.projection_l1_ball(v))
            for v in V64
        ]
    )
    # both sort-based on the same input: each output entry is |v_i| − θ with θ from a
    # cumulative sum of ≤ d terms and a division: γ_{4d+8} of ‖v‖₁ apart, in each dtype
    tol = (tolerance.gamma(4 * 6 + 8, dtype) + tolerance.gamma(4 * 6 + 8)) * np.abs(V64).sum(
        axis=1, keepdims=True
    )
    assert np.all(np.abs(np.asarray(out, np.float64) - ref) <= tol)
