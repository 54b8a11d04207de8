"""Regions of parameter space that a smoothness claim lives on.

A region knows its dimension, how to draw points from it (seeded NumPy), how to
project a point back into it (JAX-traceable, used by the searches), and whether it
contains a point. Points are flat vectors; a region built from a parameter pytree
(``Ball(center=params, ...)``) remembers how to unflatten them.

Example:
    >>> import numpy as np
    >>> from advlip.regions import NormAtLeast
    >>> region = NormAtLeast(1.0, dim=3)
    >>> pts = region.sample(np.random.default_rng(0), 4)
    >>> bool(np.all(np.linalg.norm(pts, axis=1) >= 1.0))
    True
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from advlip._validate import check_finite, check_positive_int

__all__ = ["Region", "Ball", "NormAtLeast", "Box"]


class Region:
    """Base class: ``dim``, ``sample(rng, n)``, ``project(θ)``, ``contains(θ)``, ``describe()``."""

    dim: int
    unravel: Any = None  # flat vector -> pytree, when the region was built from a pytree

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    def project(self, theta: jax.Array) -> jax.Array:
        raise NotImplementedError

    def contains(self, theta: Any, *, rtol: float = 1e-12) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    @property
    def scale(self) -> float:
        """A typical size of the region (for step sizes and distances)."""
        raise NotImplementedError


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True, eq=False)
class Ball(Region):
    """The Euclidean ball ``{θ : ‖θ − center‖₂ ≤ radius}``; ``center`` may be a pytree."""

    center: Any
    radius: float

    def __post_init__(self):
        flat, unravel = ravel_pytree(self.center)
        flat = np.asarray(flat, dtype=np.float64)
        if flat.size == 0:
            raise ValueError("Ball: center must have at least one entry")
        check_finite("center", flat)
        if not (
            isinstance(self.radius, int | float) and math.isfinite(self.radius) and self.radius > 0
        ):
            raise ValueError(
                f"Ball: radius={self.radius!r} is not allowed; allowed: a finite real > 0"
            )
        object.__setattr__(self, "_flat", flat)
        object.__setattr__(self, "unravel", unravel)
        object.__setattr__(self, "dim", flat.size)

    def sample(self, rng, n):
        r = self.radius * rng.uniform(size=(n, 1)) ** (1.0 / self.dim)
        return self._flat[None, :] + r * _unit(rng, n, self.dim)

    def project(self, theta):
        c = jnp.asarray(self._flat)
        d = theta - c
        nd = jnp.linalg.norm(d)
        return c + d * jnp.minimum(1.0, self.radius / jnp.maximum(nd, 1e-300))

    def contains(self, theta, *, rtol=1e-12):
        d = np.linalg.norm(np.asarray(theta, dtype=float) - self._flat)
        return bool(d <= self.radius * (1 + rtol))

    def describe(self):
        return f"Ball(‖θ − c‖ ≤ {self.radius:g}, dim {self.dim})"

    @property
    def scale(self):
        return float(self.radius)


@dataclasses.dataclass(frozen=True, eq=False)
class NormAtLeast(Region):
    """``{θ ∈ R^dim : ‖θ‖₂ ≥ r}`` — where LIN-L2 says the L2 loss is smooth.

    Unbounded: samples have norms log-uniform in ``[r, max_norm]`` (default ``10·max(r, 1)``).
    """

    r: float
    dim: int
    max_norm: float | None = None

    def __post_init__(self):
        if not (isinstance(self.r, int | float) and math.isfinite(self.r) and self.r > 0):
            raise ValueError(
                f"NormAtLeast: r={self.r!r} is not allowed; allowed: a finite real > 0"
            )
        check_positive_int("dim", self.dim)
        hi = self.max_norm if self.max_norm is not None else 10.0 * max(self.r, 1.0)
        if not hi > self.r:
            raise ValueError(f"NormAtLeast: max_norm={hi!r} must exceed r={self.r!r}")
        object.__setattr__(self, "max_norm", float(hi))

    def sample(self, rng, n):
        norms = np.exp(rng.uniform(math.log(self.r), math.log(self.max_norm), (n, 1)))
        return norms * _unit(rng, n, self.dim)

    def project(self, theta):
        n = jnp.linalg.norm(theta)
        e1 = jnp.zeros_like(theta).at[0].set(1.0)
        safe = jnp.where(n > 0, theta, e1)
        ns = jnp.linalg.norm(safe)
        return jnp.where(ns >= self.r, safe, safe * (self.r / ns))

    def contains(self, theta, *, rtol=1e-12):
        return bool(np.linalg.norm(np.asarray(theta, dtype=float)) >= self.r * (1 - rtol))

    def describe(self):
        return f"NormAtLeast(‖θ‖ ≥ {self.r:g}, dim {self.dim})"

    @property
    def scale(self):
        return float(self.r)


@dataclasses.dataclass(frozen=True, eq=False)
class Box(Region):
    """The box ``{θ : low ≤ θ ≤ high}`` (elementwise; ``low``/``high`` arrays of one shape)."""

    low: Any
    high: Any

    def __post_init__(self):
        lo = np.atleast_1d(np.asarray(self.low, dtype=np.float64))
        hi = np.atleast_1d(np.asarray(self.high, dtype=np.float64))
        if lo.shape != hi.shape or lo.ndim != 1:
            raise ValueError(
                f"Box: low and high must be 1-D of one shape, got {lo.shape} and {hi.shape}"
            )
        check_finite("low", lo)
        check_finite("high", hi)
        if np.any(lo >= hi):
            raise ValueError("Box: every low[i] must be < high[i]")
        object.__setattr__(self, "_lo", lo)
        object.__setattr__(self, "_hi", hi)
        object.__setattr__(self, "dim", lo.size)

    def sample(self, rng, n):
        return rng.uniform(self._lo, self._hi, (n, self.dim))

    def project(self, theta):
        return jnp.clip(theta, jnp.asarray(self._lo), jnp.asarray(self._hi))

    def contains(self, theta, *, rtol=1e-12):
        t = np.asarray(theta, dtype=float)
        slack = rtol * np.maximum(np.abs(self._lo), np.abs(self._hi))
        return bool(np.all(t >= self._lo - slack) and np.all(t <= self._hi + slack))

    def describe(self):
        return f"Box(dim {self.dim})"

    @property
    def scale(self):
        return float(np.min(self._hi - self._lo))
