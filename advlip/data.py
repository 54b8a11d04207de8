"""Datasets: a seeded synthetic set for the built-in checks (bundled real data lands here too).

Example:
    >>> from advlip import data
    >>> X, y = data.synthetic(0, n=8, d=3)
    >>> X.shape, sorted(set(y.tolist()))
    ((8, 3), [-1.0, 1.0])
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from advlip._validate import check_positive_int

__all__ = ["synthetic"]


def synthetic(seed: int, *, n: int = 24, d: int = 4, flip: float = 0.1) -> tuple[jax.Array, jax.Array]:
    """Gaussian inputs ``x ~ N(0, I/d)`` (so ‖x‖ ≈ 1) labelled by a random hyperplane,
    with a fraction ``flip`` of labels flipped (so the data are not separable and
    every margin loss keeps curvature). Both labels are always present. NumPy's
    seeded generator makes the data instantly (no compilation) and replayable."""
    n = check_positive_int("n", n, minimum=2)
    d = check_positive_int("d", d)
    if not 0.0 <= flip < 0.5:
        raise ValueError(f"flip={flip!r} is not allowed; allowed: 0 <= flip < 0.5")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) / np.sqrt(d)
    w = rng.standard_normal(d)
    y = np.where(X @ w >= 0, 1.0, -1.0)
    y = np.where(rng.uniform(size=n) < flip, -y, y)
    y[0], y[1] = 1.0, -1.0
    return jnp.asarray(X), jnp.asarray(y)
