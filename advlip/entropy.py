r"""Local entropy :math:`F_\gamma`, the smoothed adversarial loss of EntropySGD
(docs/theory/entropy-smooth.md).

.. math:: F_\gamma(\theta) = -\log \int \exp\!\Big(-L(\theta') - \frac{\gamma}{2}\|\theta - \theta'\|^2\Big)\, d\theta' ,

.. math:: \nabla F_\gamma = \gamma(\theta - \mathbb{E}[\theta']), \qquad
          \nabla^2 F_\gamma = \gamma I - \gamma^2 \operatorname{Cov}[\theta'] ,

under the Gibbs measure :math:`p(\theta'|\theta) \propto \exp(-L(\theta') - \frac{\gamma}{2}\|\theta-\theta'\|^2)`.
Always :math:`\nabla^2 F_\gamma \preceq \gamma I`; for convex :math:`L` (the linear adversarial losses
with convex decreasing ℓ) Brascamp–Lieb gives :math:`\operatorname{Cov} \preceq I/\gamma`, so
:math:`0 \preceq \nabla^2 F_\gamma \preceq \gamma I`: :math:`F_\gamma` is γ-smooth even across the L∞ kinks.

In :math:`d \le 2` this module computes :math:`F_\gamma`, its gradient and Hessian by quadrature
on a fixed tensor grid (trapezoid rule; the grid does not move with θ, so the quadrature
error is a smooth function of θ and cancels in gradient differences). Its error is
estimated by Richardson: the same sums on the grid with every other node (step 2h)
differ from the fine ones by ≈ 3× the error of an O(h²) rule.

The quadrature is a float64 instrument (its weights span many orders of magnitude),
so turn on JAX's float64 mode before building it; without it JAX warns and computes
in float32.

Examples:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> import jax.numpy as jnp
    >>> from advlip import entropy
    >>> L = lambda th: 0.5 * jnp.sum(th**2)          # F_γ of a quadratic is a quadratic:
    >>> q = entropy.Quadrature.build(L, center=jnp.zeros(2), gamma=1.0, half_width=12.0, n=201)
    >>> round(float(q.grad(jnp.array([1.0, 0.0]))[0]), 6)   # ∇F = γ/(1+γ) θ = 0.5 θ
    0.5
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from advlip._validate import check_positive_int

__all__ = ["Quadrature", "gibbs_width"]


@dataclasses.dataclass(frozen=True, eq=False)
class Quadrature:
    """Gibbs-measure moments on a fixed 1-D or 2-D grid, for every query θ.

    Build with :meth:`build`; then :meth:`F`, :meth:`grad`, :meth:`hessian`, and
    :meth:`grad_error` (the Richardson estimate of the gradient's quadrature error).

    Examples:
        For :math:`L(\\theta) = \\|\\theta\\|^2/2` in 2-D and γ = 1 the Gibbs integral is
        Gaussian: :math:`F_1(\\theta) = \\|\\theta\\|^2/4 - \\log\\pi`, Hessian :math:`I/2`.

        >>> import jax; jax.config.update("jax_enable_x64", True)
        >>> import jax.numpy as jnp
        >>> from advlip.entropy import Quadrature
        >>> L = lambda th: 0.5 * jnp.sum(th**2)
        >>> q = Quadrature.build(L, center=jnp.zeros(2), gamma=1.0, half_width=12.0, n=201)
        >>> round(float(q.F(jnp.zeros(2))), 4)            # -log π
        -1.1447
        >>> [round(float(v), 4) for v in jnp.diag(q.hessian(jnp.array([1.0, 0.0])))]
        [0.5, 0.5]
        >>> q.grad(jnp.ones((5, 2))).shape                # a batch of queries at once
        (5, 2)
    """

    nodes: jax.Array  # (N, d)
    log_w: jax.Array  # (N,) log(trapezoid weight) - L(node)
    log_w_coarse: jax.Array  # (N,) same on the step-2h subgrid (-inf off it)
    gamma: float
    cell: float  # log of the area element

    @classmethod
    def build(
        cls,
        loss: Callable[[jax.Array], jax.Array],
        *,
        center: jax.Array,
        gamma: float,
        half_width: float,
        n: int = 401,
    ) -> Quadrature:
        """Grid ``center ± half_width`` with ``n`` (odd) nodes per axis; ``loss`` maps θ (d,) to L.

        ``half_width`` must cover every query θ plus about 8/√γ (where the Gaussian
        factor is below e^-32): the caller chooses it.
        """
        if not (math.isfinite(gamma) and gamma > 0):
            raise ValueError(f"gamma={gamma!r} is not allowed; allowed: a finite real > 0")
        n = check_positive_int("n", n, minimum=5)
        if n % 2 == 0:
            raise ValueError(f"n={n} must be odd (the step-2h subgrid shares the end nodes)")
        center = jnp.atleast_1d(jnp.asarray(center, dtype=jnp.float64))
        d = center.shape[0]
        if d not in (1, 2):
            raise ValueError(
                f"quadrature is for d <= 2 parameters, got d={d}; use SGLD (entropy_sgd)"
            )
        axis = jnp.linspace(-half_width, half_width, n)
        h = float(axis[1] - axis[0])
        tw = jnp.ones(n).at[0].set(0.5).at[-1].set(0.5)  # trapezoid weights (× h)
        even = jnp.arange(n) % 2 == 0
        tw2 = jnp.where(even, 2.0, 0.0).at[0].set(1.0).at[-1].set(1.0)  # step-2h weights (× h)
        if d == 1:
            nodes = center[None, :] + axis[:, None]
            w, w2 = tw, tw2
        else:
            gx, gy = jnp.meshgrid(axis, axis, indexing="ij")
            nodes = center[None, :] + jnp.stack([gx.ravel(), gy.ravel()], axis=1)
            w, w2 = jnp.outer(tw, tw).ravel(), jnp.outer(tw2, tw2).ravel()
        Lv = jax.jit(jax.vmap(loss))(nodes)
        if not bool(jnp.all(jnp.isfinite(Lv))):
            raise ValueError("loss is not finite on the whole grid; shrink half_width")
        log_w = jnp.log(w) - Lv
        log_w2 = jnp.where(w2 > 0, jnp.log(jnp.where(w2 > 0, w2, 1.0)), -jnp.inf) - Lv
        return cls(nodes, log_w, log_w2, float(gamma), d * math.log(h))

    def _m(self, theta, coarse: bool = False):
        return _moments(self.nodes, self.log_w_coarse if coarse else self.log_w, self.gamma, theta)

    def F(self, theta: jax.Array) -> jax.Array:
        r""":math:`F_\gamma(\theta)` (``theta`` of shape (d,) or a batch (k, d))."""
        lse, _, _ = self._m(jnp.asarray(theta))
        return -(lse + self.cell)

    def grad(self, theta: jax.Array, *, coarse: bool = False) -> jax.Array:
        r""":math:`\nabla F_\gamma = \gamma(\theta - E[\theta'])` (``coarse``: on the step-2h subgrid)."""
        theta = jnp.asarray(theta)
        _, mean, _ = self._m(theta, coarse)
        return self.gamma * (theta - mean)

    def hessian(self, theta: jax.Array, *, coarse: bool = False) -> jax.Array:
        r""":math:`\nabla^2 F_\gamma = \gamma I - \gamma^2 \operatorname{Cov}[\theta']`."""
        theta = jnp.asarray(theta)
        _, _, cov = self._m(theta, coarse)
        eye = jnp.broadcast_to(jnp.eye(theta.shape[-1]), cov.shape)
        return self.gamma * eye - self.gamma**2 * cov

    def grad_error(self, theta: jax.Array) -> jax.Array:
        """Richardson estimate of the quadrature error of :meth:`grad` (2-norm): |fine − coarse| / 3."""
        diff = self.grad(theta) - self.grad(theta, coarse=True)
        return jnp.linalg.norm(diff, axis=-1) / 3.0

    def hessian_error(self, theta: jax.Array) -> jax.Array:
        """Richardson estimate of the quadrature error of :meth:`hessian` (Frobenius norm)."""
        diff = self.hessian(theta) - self.hessian(theta, coarse=True)
        return jnp.sqrt(jnp.sum(diff * diff, axis=(-2, -1))) / 3.0


@jax.jit
def _moments(nodes, log_w, gamma, theta):
    """log Σ w e^{-γ/2‖θ-θ'‖²}, mean and covariance of θ' (θ of shape (d,) or (k, d))."""

    def one(th):
        diff = nodes - th[None, :]
        z = log_w - 0.5 * gamma * jnp.sum(diff * diff, axis=1)
        lse = logsumexp(z)
        p = jnp.exp(z - lse)
        mean = p @ nodes
        c = nodes - mean[None, :]
        return lse, mean, (p[:, None] * c).T @ c

    if theta.ndim == 1:
        return one(theta)
    return jax.vmap(one)(theta)


def gibbs_width(gamma: float) -> float:
    """Half-width that holds the Gaussian factor of the Gibbs measure to e^-32: 8/√γ.

    Examples:
        >>> from advlip.entropy import gibbs_width
        >>> gibbs_width(1.0), gibbs_width(4.0)   # a grid for queries |θ| ≤ 2 needs 2 + 8/√γ
        (8.0, 4.0)
    """
    return 8.0 / math.sqrt(gamma)
