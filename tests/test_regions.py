"""Regions at large dimension and in float32: O(n·P) work, dtype in = dtype out."""

import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advlip import regions, tolerance

BIG = 10**6


def _regions(dim):
    return {
        "ball": regions.Ball(np.full(dim, 0.5), 2.0),
        "norm-at-least": regions.NormAtLeast(1.0, dim),
        "box": regions.Box(-np.ones(dim), np.ones(dim)),
    }


@pytest.mark.parametrize("name", ["ball", "norm-at-least", "box"])
def test_sample_project_contains_are_linear_in_the_dimension(name):
    region = _regions(BIG)[name]
    tracemalloc.start()
    try:
        pts = region.sample(np.random.default_rng(0), 2)
        inside = [region.contains(p) for p in pts]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pts.shape == (2, BIG) and all(inside)
    # two samples are 16 MB; a handful of temporaries of that size is O(n·P) — a P×P
    # array would be 8 TB. 8 copies of the samples bound what sample+contains may hold.
    assert peak < 8 * pts.nbytes
    far = 3.0 * pts[0] + 5.0
    px = np.asarray(jax.jit(region.project)(jnp.asarray(far)))
    assert px.shape == (BIG,) and region.contains(px)


@pytest.mark.parametrize("name", ["ball", "norm-at-least", "box"])
def test_project_keeps_the_parameters_dtype(name):
    region = _regions(50)[name]
    x = jnp.asarray(10.0 * np.random.default_rng(1).standard_normal(50), dtype=jnp.float32)
    px = region.project(x)
    assert px.dtype == jnp.float32
    # a float32 projection lands on the boundary up to its own rounding: a norm of 50
    # terms and a rescaling, γ_{P+4} in float32 (what the falsifier passes as rtol)
    # (contains' default for a float32 point) — and not float64's
    assert region.contains(np.asarray(px))
    assert region.contains(np.asarray(px), rtol=tolerance.gamma(50 + 4, np.float32))


def test_ball_slack_scales_with_its_center_and_the_points_dtype():
    # A small ball far from the origin: storing c + v in float32 rounds each coordinate
    # by u·|c_i|, moving the point by up to u·‖c‖ (2·10⁻⁴ here) ≫ u·radius. The default
    # slack of contains is γ_{P+4}·radius + u·(‖c‖ + radius) in the point's dtype.
    P = 1000
    c = np.full(P, 100.0)
    ball = regions.Ball(c, 0.01)
    x = jnp.asarray(c + np.random.default_rng(2).standard_normal(P), dtype=jnp.float32)
    px = np.asarray(ball.project(x))
    assert px.dtype == np.float32 and ball.contains(px)  # (1e-12 · radius refused it)
    u = tolerance.unit_roundoff(np.float32)
    slack = tolerance.gamma(P + 4, np.float32) * 0.01 + u * (np.linalg.norm(c) + 0.01)
    d = px.astype(np.float64) - c
    d /= np.linalg.norm(d)
    # 3·slack out, then stored in float32 (which moves it by at most u·‖point‖ ≈ slack):
    # still 2·slack out, refused
    assert not ball.contains((c + (0.01 + 3 * slack) * d).astype(np.float32))
    # half the float32 slack out, stored in float64: float64's slack is 10⁸ times
    # smaller, so refused — the tolerance follows the dtype the point is in
    assert not ball.contains(c + (0.01 + 0.5 * slack) * d)
    assert ball.contains(c + (0.01 + 0.5 * slack) * d, rtol=slack / 0.01)


def test_ball_remembers_a_float32_pytree():
    params = {"w": jnp.ones(3, jnp.float32), "b": jnp.zeros((), jnp.float32)}
    ball = regions.Ball(params, 1.0)
    assert ball.dtype == np.float32 and ball.dim == 4
    assert regions.NormAtLeast(1.0, 3).dtype is None  # JAX's default float
