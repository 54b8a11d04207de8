"""advlip.smoothness on functions whose answers are known in closed form."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advlip import smoothness, tolerance


def test_gradient_ratio_of_quadratic_is_its_curvature():
    # L = ½ θᵀAθ: ∇L(θ1) − ∇L(θ2) = A(θ1 − θ2), so R = ‖A e‖ for the unit direction e.
    A = jnp.diag(jnp.array([1.0, 4.0]))
    r = smoothness.gradient_ratio(lambda th: A @ th, jnp.array([0.0, 1.0]), jnp.zeros(2))
    # two matrix-vector products and two norms: a handful of roundings on terms of size 4
    assert abs(float(r) - 4.0) <= tolerance.sum_error(8, 4.0)


def test_pair_ratios_match_loop():
    grad = jax.jit(lambda th: jnp.tanh(th) * 3.0)
    rng = np.random.default_rng(0)
    t1, t2 = smoothness.sample_pairs(rng, 5, 3)
    r, dg, dt = smoothness.pair_ratios(grad, t1, t2)
    for i in range(5):
        one = smoothness.gradient_ratio(grad, t1[i], t2[i])
        assert float(r[i]) == pytest.approx(float(one), rel=tolerance.gamma(16))
    np.testing.assert_allclose(np.asarray(dt), np.linalg.norm(np.asarray(t1 - t2), axis=1))


def test_sample_pairs_cover_the_requested_scales():
    rng = np.random.default_rng(1)
    t1, t2 = smoothness.sample_pairs(
        rng, 2000, 4, norm_range=(0.1, 10.0), rel_dist_range=(1e-3, 1.0)
    )
    n1 = np.linalg.norm(np.asarray(t1), axis=1)
    rel = np.linalg.norm(np.asarray(t2 - t1), axis=1) / n1
    assert n1.min() >= 0.1 * (1 - 1e-12) and n1.max() <= 10.0 * (1 + 1e-12)
    assert rel.min() >= 1e-3 * (1 - 1e-12) and rel.max() <= 1.0 * (1 + 1e-12)
    # log-uniform: both ends of each range are visited (2000 draws, a decade each tail)
    assert n1.min() < 0.2 and n1.max() > 5.0 and rel.min() < 2e-3
    # replayable from the seed
    again = smoothness.sample_pairs(
        np.random.default_rng(1), 2000, 4, norm_range=(0.1, 10.0), rel_dist_range=(1e-3, 1.0)
    )
    np.testing.assert_array_equal(np.asarray(t1), np.asarray(again[0]))


def test_search_finds_the_known_worst_pair():
    # R of ∇L(θ) = sin(θ) (1-D, elementwise) is |sin a − sin b|/|a − b| ≤ 1, → 1 as a, b → 0.
    grad = lambda th: jnp.sin(th)  # noqa: E731
    score = lambda a, b: jnp.log(smoothness.gradient_ratio(grad, a, b))  # noqa: E731
    rng = np.random.default_rng(2)
    s1 = jnp.asarray(rng.uniform(1.0, 2.0, (4, 1)))
    s2 = s1 + 0.5
    found = smoothness.search_worst_pair(score, s1, s2, steps=300, learning_rate=0.05)
    start = max(float(score(a, b)) for a, b in zip(s1, s2, strict=True))
    assert found.score >= start  # never worse than the starts
    assert found.score > math.log(0.95)  # and it climbed to the sup (log 1 = 0)
    assert found.score <= tolerance.gamma(16)  # never above the true sup beyond rounding


def _kink_grad(s):
    """∇L(θ) = sign(θ)|θ|^{1+s} + 0.3 θ: R on ±t has growth exponent s (s = −1: a jump)."""
    return lambda th: jnp.sign(th) * jnp.abs(th) ** (1.0 + s) + 0.3 * th + 0.1 * th**2


@pytest.mark.parametrize("s", [-1.0, -0.8, -0.5, -0.2, 0.0, 0.5], ids=lambda s: f"s={s}")
def test_growth_exponent_recovers_known_power_laws(s):
    ts = smoothness.witness_ts()
    e = jnp.ones(1)
    dg, dt = smoothness.witness_differences(_kink_grad(s), jnp.zeros(1), e, -e, ts)
    fit = smoothness.fit_growth_exponent(ts, dg, dt, grad_abs_error=tolerance.gamma(8))
    expected = min(0.0, s)
    assert fit.resolved
    assert fit.agrees_with(expected), fit.to_dict()
    assert fit.bounded == (s >= 0)
    # and it would reject the neighbouring exponents of LIN-LP's phase diagram
    assert not fit.agrees_with(expected - 0.1) and not fit.agrees_with(expected + 0.1)


def test_plain_slope_is_biased_where_richardson_is_not():
    # With a bounded background 0.3 and s = -0.5, log R vs log t bends; the corrected one does not.
    ts = smoothness.witness_ts()
    e = jnp.ones(1)
    dg, dt = smoothness.witness_differences(_kink_grad(-0.5), jnp.zeros(1), e, -e, ts)
    fit = smoothness.fit_growth_exponent(ts, dg, dt)
    assert abs(fit.slope + 0.5) > abs(fit.exponent + 0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ts=np.ones(3), grad_diffs=np.ones((3, 1)), dtheta_norms=np.ones(3)), "k >= 6"),
        (
            dict(ts=np.arange(1.0, 8.0), grad_diffs=np.ones((7, 1)), dtheta_norms=np.ones(7)),
            "ratio 2",
        ),
        (
            dict(
                ts=smoothness.witness_ts()[:8],
                grad_diffs=np.full((8, 1), np.nan),
                dtheta_norms=np.ones(8),
            ),
            "finite",
        ),
    ],
    ids=["too-few-points", "not-geometric", "nan-differences"],
)
def test_fit_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        smoothness.fit_growth_exponent(**kwargs)


def test_pair_sweep_in_chunks_equals_one_vmapped_sweep(monkeypatch):
    # On CPU the sweep runs in chunks (lax.map with a batch size) once N·P exceeds
    # CHUNK_ENTRIES; shrink it so 10 pairs run as chunks of 4, 4 and 2 (a remainder).
    from advlip import data
    from advlip.linear import LinearProblem

    X, y = data.synthetic(jax.random.PRNGKey(0), n=8, d=16)
    prob = LinearProblem(X=X, y=y, eps=0.5, p=2.0)
    t1, t2 = smoothness.sample_pairs(
        np.random.default_rng(0), 10, 16, norm_range=(0.5, 2.0), rel_dist_range=(0.5, 1.0)
    )
    whole = smoothness.pair_ratios(prob.grad, t1, t2)
    monkeypatch.setattr(smoothness, "CHUNK_ENTRIES", 4 * 16)
    jax.clear_caches()  # the chunk size is read at trace time
    chunked = smoothness.pair_ratios(prob.grad, t1, t2)
    # same formula per pair; only XLA's tiling of the n·d-term sums may differ, so each
    # gradient moves by ≤ γ_{nd+d}·(its scale) and ‖Δg‖ by twice that
    g = np.asarray(jax.vmap(prob.grad)(t1)), np.asarray(jax.vmap(prob.grad)(t2))
    scale = np.linalg.norm(np.abs(g[0]) + np.abs(g[1]), axis=1) * float(
        np.max(np.abs(np.asarray(X))) * 8 + 1
    )
    tol = 2 * tolerance.gamma(8 * 16 + 16, np.float64) * scale
    assert np.all(np.abs(np.asarray(chunked[1]) - np.asarray(whole[1])) <= tol)
    np.testing.assert_array_equal(np.asarray(chunked[2]), np.asarray(whole[2]))  # ‖Δθ‖: same ops
