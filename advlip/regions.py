"""Regions of parameter space that a smoothness claim lives on.

A region knows its dimension, how to draw points from it (seeded NumPy), how to
project a point back into it (JAX-traceable, used by the searches), and whether it
contains a point. Points are flat vectors; a region built from a parameter pytree
(``Ball(center=params, ...)``) remembers how to unflatten them.

Examples:
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

from advlip import tolerance
from advlip._validate import check_finite, check_positive_int

__all__ = ["Region", "Ball", "NormAtLeast", "Box"]


class Region:
    """Base class: ``dim``, ``sample(rng, n)``, ``project(θ)``, ``contains(θ)``, ``describe()``.

    Every method is O(n·dim) in time and memory (never dim²): regions of 10⁶ parameters
    are as cheap as the vectors themselves.

    Examples:
        Every region answers the same five questions (here the unit disc):

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip.regions import Ball, Region
        >>> region = Ball(center=np.zeros(2), radius=1.0)
        >>> isinstance(region, Region), region.dim, region.describe()
        (True, 2, 'Ball(‖θ − c‖ ≤ 1, dim 2)')
        >>> x = region.project(jnp.array([3.0, 4.0]))   # the nearest point: (3, 4)/5
        >>> [round(float(v), 4) for v in x], region.contains(x)
        ([0.6, 0.8], True)
    """

    dim: int
    unravel: Any = None  # flat vector -> pytree, when the region was built from a pytree
    dtype: Any = None  # the parameters' dtype, when known (a pytree's); None: JAX's default

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    def project(self, theta: jax.Array) -> jax.Array:
        """The nearest point of the region (JAX-traceable; returns θ's dtype)."""
        raise NotImplementedError

    def contains(self, theta: Any, *, rtol: float | None = None) -> bool:
        """Whether ``theta`` is in the region, up to a relative rounding error ``rtol``.

        By default (``rtol=None``) the rounding of :meth:`project` in ``theta``'s own
        dtype: a float32 point is judged by float32 rounding, a float64 one by float64.
        """
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    @property
    def scale(self) -> float:
        """A typical size of the region (for step sizes and distances)."""
        raise NotImplementedError


def _point(theta: Any) -> tuple[np.ndarray, np.dtype]:
    """θ as a float64 vector, and the dtype it was stored in (float64 unless floating)."""
    dt = getattr(theta, "dtype", None)
    dt = np.dtype(dt) if dt is not None and jnp.issubdtype(dt, jnp.floating) else np.dtype("f8")
    return np.asarray(theta, dtype=np.float64), dt


def _norm_rtol(dim: int, dtype: np.dtype) -> float:
    """γ_{dim+4} in ``dtype``: a 2-norm of ``dim`` terms, a division and a rescaling."""
    try:
        return tolerance.gamma(dim + 4, dtype)
    except ValueError as err:
        raise ValueError(
            f"a {dtype.name} point of dimension {dim}: a norm of {dim} terms has no "
            "rounding-error bound in it; use float64 (jax.config.update('jax_enable_x64', True))"
        ) from err


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True, eq=False)
class Ball(Region):
    """The Euclidean ball ``{θ : ‖θ − center‖₂ ≤ radius}``; ``center`` may be a pytree.

    ``dtype`` is that of the flattened center (float32 parameters stay float32 points).

    Examples:
        A ball around a parameter pytree; points are flat vectors, in the order of
        ``jax.flatten_util.ravel_pytree`` (dict keys sorted: ``b`` before ``w``):

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip.regions import Ball
        >>> ball = Ball(center={"w": np.ones(2), "b": np.zeros(1)}, radius=0.5)
        >>> pts = ball.sample(np.random.default_rng(0), 3)
        >>> pts.shape, all(ball.contains(x) for x in pts)
        ((3, 3), True)
        >>> ball.unravel(jnp.arange(3.0))["w"].tolist()
        [1.0, 2.0]
        >>> ball.contains(np.array([0.6, 1.0, 1.0]))   # b = 0.6: 0.6 from the center
        False
    """

    center: Any
    radius: float

    def __post_init__(self):
        flat, unravel = ravel_pytree(self.center)
        dtype = np.dtype(flat.dtype) if jnp.issubdtype(flat.dtype, jnp.floating) else None
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
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "_center_norm", float(np.linalg.norm(flat)))

    def sample(self, rng, n):
        r = self.radius * rng.uniform(size=(n, 1)) ** (1.0 / self.dim)
        return self._flat[None, :] + r * _unit(rng, n, self.dim)

    def project(self, theta):
        c = jnp.asarray(self._flat, dtype=theta.dtype)  # θ's dtype in, θ's dtype out
        d = theta - c
        nd = jnp.linalg.norm(d)
        return c + d * jnp.minimum(1.0, self.radius / jnp.maximum(nd, 1e-300))

    def contains(self, theta, *, rtol=None):
        # project() rescales θ − c to the radius (relative error rtol, by default
        # γ_{P+4} of θ's dtype: a norm, a division, a product), then adds c and stores
        # the result in θ's dtype: that rounds each coordinate by u·|c_i + v_i|, so the
        # point moves by up to u·(‖c‖ + radius) — far more than u·radius for a small
        # ball away from the origin (Ball(100·1, 0.01)).
        x, dt = _point(theta)
        rtol = _norm_rtol(self.dim, dt) if rtol is None else rtol
        slack = rtol * self.radius + tolerance.unit_roundoff(dt) * (self._center_norm + self.radius)
        return bool(np.linalg.norm(x - self._flat) <= self.radius + slack)

    def describe(self):
        return f"Ball(‖θ − c‖ ≤ {self.radius:g}, dim {self.dim})"

    @property
    def scale(self):
        return float(self.radius)


@dataclasses.dataclass(frozen=True, eq=False)
class NormAtLeast(Region):
    """``{θ ∈ R^dim : ‖θ‖₂ ≥ r}`` — where LIN-L2 says the L2 loss is smooth.

    Unbounded: samples have norms log-uniform in ``[r, max_norm]`` (default ``10·max(r, 1)``).
    See docs/theory/lin-l2.md.

    Examples:
        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip.regions import NormAtLeast
        >>> region = NormAtLeast(1.0, dim=2)
        >>> [round(float(v), 4) for v in region.project(jnp.array([0.3, 0.4]))]   # pushed out to ‖θ‖ = 1
        [0.6, 0.8]
        >>> region.contains(np.array([0.3, 0.4])), region.max_norm
        (False, 10.0)
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

    def contains(self, theta, *, rtol=None):
        # project() rescales to norm r: off by γ_{P+4} of θ's dtype (a norm, a division,
        # a product per coordinate) by default
        x, dt = _point(theta)
        rtol = _norm_rtol(self.dim, dt) if rtol is None else rtol
        return bool(np.linalg.norm(x) >= self.r * (1 - rtol))

    def describe(self):
        return f"NormAtLeast(‖θ‖ ≥ {self.r:g}, dim {self.dim})"

    @property
    def scale(self):
        return float(self.r)


@dataclasses.dataclass(frozen=True, eq=False)
class Box(Region):
    """The box ``{θ : low ≤ θ ≤ high}`` (elementwise; ``low``/``high`` arrays of one shape).

    Examples:
        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip.regions import Box
        >>> box = Box(low=[0.0, -1.0], high=[1.0, 1.0])
        >>> box.project(jnp.array([2.0, -3.0])).tolist()   # clipped coordinate by coordinate
        [1.0, -1.0]
        >>> box.contains(np.array([0.5, 0.0])), box.scale   # scale: the shortest side
        (True, 1.0)
    """

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
        dt = theta.dtype  # θ's dtype in, θ's dtype out
        return jnp.clip(theta, jnp.asarray(self._lo, dtype=dt), jnp.asarray(self._hi, dtype=dt))

    def contains(self, theta, *, rtol=None):
        # project() clips to low/high stored in θ's dtype: off by one rounding, u·|bound|
        t, dt = _point(theta)
        rtol = tolerance.unit_roundoff(dt) if rtol is None else rtol
        slack = rtol * np.maximum(np.abs(self._lo), np.abs(self._hi))
        return bool(np.all(t >= self._lo - slack) and np.all(t <= self._hi + slack))

    def describe(self):
        return f"Box(dim {self.dim})"

    @property
    def scale(self):
        return float(np.min(self._hi - self._lo))
