"""advlip.spectral: CG, Lanczos and power iteration against dense LAPACK answers.

Every expected value is ``numpy.linalg.eigh`` / ``solve`` on the same matrix; the
tolerances are the a-posteriori bounds the functions return (an eigenvalue lies
within the Lanczos residual bound / the power residual of the estimate) or the
float64 error of a solve, γ_k · cond · ‖x‖ with k counted in the comment.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advlip import spectral, tolerance

_EXAMPLES = max(6, settings.default.max_examples // 2)


@st.composite
def symmetric_matrices(draw, *, sizes=(3, 6)):
    """A random symmetric matrix with a drawn spectrum (distinct or repeated values)."""
    n = draw(st.sampled_from(sizes))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    spread = draw(st.sampled_from([1e-2, 1.0, 1e3]))
    lam = rng.uniform(-spread, spread, n)
    if draw(st.booleans()):
        lam[: n // 2] = lam[0]  # a repeated eigenvalue: the Krylov space is smaller
    A = (Q * lam) @ Q.T
    return 0.5 * (A + A.T), rng.standard_normal(n)


def _mv(A):
    A = jnp.asarray(A)
    return lambda v: A @ v


# The matrix is an argument of one compiled function per shape (a closure over a new
# constant would compile the loop again for every drawn example).
@functools.partial(jax.jit, static_argnames=("num_steps",))
def _lanczos(A, v0, num_steps, max_steps=None):
    return spectral.lanczos(lambda v: A @ v, v0, num_steps=num_steps, max_steps=max_steps)


@functools.partial(jax.jit, static_argnames=("num_steps",))
def _power(A, v0, num_steps):
    return spectral.power_iteration(lambda v: A @ v, v0, num_steps=num_steps)


@functools.partial(jax.jit, static_argnames=("maxiter",))
def _cg(A, b, maxiter):
    return spectral.cg(lambda v: A @ v, b, maxiter=maxiter)


@settings(max_examples=_EXAMPLES)
@given(symmetric_matrices())
def test_lanczos_extremes_within_their_bounds(case):
    A, v0 = case
    n = A.shape[0]
    res = _lanczos(jnp.asarray(A), jnp.asarray(v0), num_steps=n)
    lam = np.linalg.eigvalsh(A)
    # an eigenvalue lies within the residual bound; with k = n steps the Krylov space is
    # invariant, so the extremes are eigenvalues up to the float64 error of the
    # reorthogonalised recurrence, γ_{4n+8}·‖A‖ (two n-term passes per step).
    slack = tolerance.gamma(4 * n + 8) * np.abs(lam).max() * n
    assert abs(float(res.largest) - lam[-1]) <= float(res.largest_bound) + slack
    assert abs(float(res.smallest) - lam[0]) <= float(res.smallest_bound) + slack
    # every Ritz value lies inside the spectrum (Cauchy interlacing)
    assert float(res.ritz_values.min()) >= lam[0] - slack
    assert float(res.ritz_values.max()) <= lam[-1] + slack
    assert float(res.spectral_norm) == pytest.approx(np.abs(lam).max(), abs=slack + 1e-300)


def test_lanczos_stops_on_an_invariant_subspace():
    # v0 in a 2-dimensional invariant subspace: 2 steps, no spurious Ritz value 0 after.
    A = np.diag([1.0, 3.0, 7.0, -5.0])
    v0 = jnp.array([1.0, 1.0, 0.0, 0.0])
    res = _lanczos(jnp.asarray(A), v0, num_steps=4)
    assert int(res.steps) == 2
    assert float(res.largest) == pytest.approx(3.0, abs=1e-14)
    assert float(res.smallest) == pytest.approx(1.0, abs=1e-14)
    assert set(np.round(np.asarray(res.ritz_values), 12)) <= {1.0, 2.0, 3.0}  # 2.0 = α₀ filler


def test_lanczos_max_steps_caps_the_iteration():
    A = np.diag([1.0, 2.0, 4.0, 8.0])
    res = _lanczos(jnp.asarray(A), jnp.ones(4), num_steps=4, max_steps=2)
    assert int(res.steps) == 2
    # two steps cannot reach the extremes of a 4-dimensional spectrum from a generic start
    assert float(res.largest) < 8.0 - 1e-3
    assert float(res.largest_bound) > 1e-3


def test_lanczos_rejects_zero_steps():
    with pytest.raises(ValueError, match="num_steps"):
        spectral.lanczos(_mv(np.eye(2)), jnp.ones(2), num_steps=0)


@settings(max_examples=_EXAMPLES)
@given(symmetric_matrices(sizes=(4,)))
def test_power_iteration_residual_bounds_its_error(case):
    A, v0 = case
    res = _power(jnp.asarray(A), jnp.asarray(v0), num_steps=60)
    lam = np.linalg.eigvalsh(A)
    # the residual ‖Av − λv‖ bounds the distance to *some* eigenvalue
    dist = np.min(np.abs(lam - float(res.eigenvalue)))
    assert dist <= float(res.residual) * (1 + 1e-12) + tolerance.gamma(16) * np.abs(lam).max()


def test_power_iteration_finds_the_dominant_eigenvalue_with_its_sign():
    A = np.diag([1.0, -10.0, 2.0])
    res = _power(jnp.asarray(A), jnp.ones(3), num_steps=200)
    assert float(res.eigenvalue) == pytest.approx(-10.0, rel=1e-12)
    assert float(res.residual) < 1e-10


@settings(max_examples=_EXAMPLES)
@given(st.integers(0, 2**31 - 1), st.sampled_from([1.0, 1e2, 1e4]))
def test_cg_solves_spd_systems(seed, cond):
    rng = np.random.default_rng(seed)
    n = 5
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.geomspace(1.0, cond, n)
    A = (Q * lam) @ Q.T
    A = 0.5 * (A + A.T)
    b = rng.standard_normal(n)
    x, info = _cg(jnp.asarray(A), jnp.asarray(b), maxiter=4 * n)
    ref = np.linalg.solve(A, b)
    # forward error ≤ cond · (relative residual) · ‖x‖; the residual CG reaches is
    # γ_{2n+4}‖b‖ (its default stop), CG's rounding adds cond·γ_{2n+4} per iteration pass
    rel = float(info.residual) / np.linalg.norm(b) + cond * tolerance.gamma(2 * n + 4) * 4 * n
    assert np.linalg.norm(np.asarray(x) - ref) <= cond * rel * np.linalg.norm(ref)
    assert float(info.min_curvature) >= lam[0] * (1 - 1e-9)


def test_cg_reports_negative_curvature():
    A = np.diag([1.0, -2.0, 3.0])
    _, info = _cg(jnp.asarray(A), jnp.ones(3), maxiter=10)
    assert float(info.min_curvature) <= 0.0


def test_cg_zero_right_hand_side_is_zero():
    x, info = _cg(jnp.eye(3), jnp.zeros(3), maxiter=5)
    assert np.all(np.asarray(x) == 0.0) and int(info.iterations) == 0


def test_dense_matrix_rebuilds_the_operator():
    A = np.arange(9.0).reshape(3, 3)
    assert np.array_equal(np.asarray(spectral.dense_matrix(_mv(A), 3)), A)


def test_works_under_jit_and_vmap():
    A = jnp.stack([jnp.diag(jnp.array([1.0, 2.0, 3.0])), jnp.diag(jnp.array([-1.0, 0.5, 4.0]))])

    @jax.jit
    def top(A):
        return jax.vmap(
            lambda M: spectral.lanczos(lambda v: M @ v, jnp.ones(3), num_steps=3).largest
        )(A)

    assert np.allclose(np.asarray(top(A)), [3.0, 4.0], atol=1e-13)


@settings(max_examples=_EXAMPLES)
@given(symmetric_matrices())
def test_lanczos_aux_sums_to_frobenius_norms_over_a_full_basis(case):
    """With has_aux the per-term squared norms summed over the orthonormal Krylov basis
    are ‖A_i Q‖_F², which is ‖A_i‖_F² once the basis spans the space (k = n steps and
    no breakdown): A = A_1 + A_2 with A_2 = 2A_1 gives 1/9 and 4/9 of ‖A‖_F²."""
    A, v0 = case
    n = A.shape[0]
    A1 = jnp.asarray(A / 3.0)

    @jax.jit
    def run(A1, v0):
        def mv(v):
            w1 = A1 @ v
            return 3.0 * w1, jnp.stack([w1 @ w1, 4.0 * (w1 @ w1)])

        return spectral.lanczos(mv, v0, num_steps=n, has_aux=True)

    res = run(A1, jnp.asarray(v0))
    if int(res.steps) < n:  # an invariant subspace: the basis does not span R^n
        assert np.all(np.asarray(res.aux) <= np.array([1.0, 4.0]) * np.sum(A * A) / 9 * (1 + 1e-12))
        return
    fro = np.sum(np.asarray(A) ** 2)
    # an orthonormal basis to float64 rounding of n-term sums: γ_{4n+8} relative
    tol = tolerance.gamma(4 * n + 8) * n * fro
    assert np.allclose(np.asarray(res.aux), np.array([1.0, 4.0]) * fro / 9.0, rtol=0, atol=tol)


def test_power_iteration_reports_its_rounding_in_the_vector_dtype():
    A = np.diag([1.0, -10.0, 2.0])
    for dtype in (jnp.float32, jnp.float64):
        M = jnp.asarray(A, dtype)
        res = spectral.power_iteration(lambda v, M=M: M @ v, jnp.ones(3, dtype), num_steps=200)
        # γ_{2n+8} of the dtype, twice, on ‖Av‖ = 10
        expected = 2 * tolerance.gamma(2 * 3 + 8, dtype) * 10.0
        assert float(res.rounding) == pytest.approx(expected, rel=1e-3)
        assert abs(float(res.eigenvalue) + 10.0) <= float(res.residual) + float(res.rounding)
