r"""The tangent operator of the inner problem's active face: one object for every use.

At a KKT point δ of :math:`\max_{\|\delta\|_p\le\varepsilon}\ell(x+\delta)` the active
constraints define a face with orthogonal tangent projector :math:`P` (from the
certificate's ``mask`` and ``normal``: :math:`Pv = m\odot v - \nu(\nu\cdot(m\odot v))`) and
constraint curvature :math:`\mu` (the L2 multiplier; 0 on the flat faces of L1 and L∞).
With :math:`H = \nabla^2_{xx}\ell` (symmetrised),

.. math:: A = P(\mu I - H)P, \qquad M = A + (I - P),

:math:`M` is symmetric, and positive definite exactly when the second-order condition
:math:`A \succ 0` on the tangent space holds. Three computations need it:

* the Newton step of the attack on its face, :math:`s = A^{+}Pg`;
* the implicit derivative of the maximiser, :math:`D\delta^* = A^{+}PH_{x\theta}`;
* the second-order condition and the δ error bound, from the extreme eigenvalues of
  :math:`A` on the tangent space.

:class:`TangentOperator` holds the face and the Hessian (a matrix-free ``hvp`` or the
dense ``H``) and offers :meth:`~TangentOperator.mv`, :meth:`~TangentOperator.as_matrix`,
:meth:`~TangentOperator.solve` (CG or dense), :meth:`~TangentOperator.spectrum`; the
δ error bound is :func:`delta_error`. Everything is a pure function of arrays, so it
runs under ``jit``, ``vmap`` and every JAX transformation.

**Why the solve is not lineax's CG.** The solve is wrapped in ``lax.custom_linear_solve``
(symmetric), so JAX differentiates and transposes it implicitly — what
``jax.grad`` through the attack's maximiser needs — and it runs advlip's own
:func:`advlip.spectral.cg`, for two reasons: its stopping test is the 2-norm relative
residual :math:`\|r\| \le \gamma_{2d+4}\|b\|` that the error bound of the total
Hessian-vector product is derived from (lineax's CG scales the residual componentwise
by :math:`atol + rtol|b_j|`, which never stops with ``atol = 0`` on a face's projected
right-hand side, exactly zero on the clamped coordinates), and it reports a
non-positive curvature instead of returning NaN, which the attack's Newton phase needs
away from the maximiser.

Example (the unit L2 sphere, δ = e₁, H = −I, μ = 1: on the tangent space A = 2I):
    >>> import jax.numpy as jnp
    >>> from advlip import attacks, tangent
    >>> c = attacks.kkt(jnp.array([1.0, 0.0, 0.0]), jnp.array([1.0, 0.0, 0.0]), eps=1.0, p=2)
    >>> op = tangent.TangentOperator(c, H=-jnp.eye(3))
    >>> op.solve(jnp.array([5.0, 2.0, 4.0])).tolist()  # the normal component is projected out
    [0.0, 1.0, 2.0]
    >>> lo, hi, err = op.spectrum()
    >>> float(lo), float(hi)
    (2.0, 2.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from advlip import spectral, tolerance

__all__ = ["TangentOperator", "project", "delta_error"]


def project(face: Any, v: jax.Array) -> jax.Array:
    r"""The tangent projector :math:`P` of one example's certificate applied to ``v`` (d,).

    Example:
        On the unit L2 sphere at δ = (0.6, 0.8), P removes the normal component:
        :math:`Pe_1 = e_1 - 0.6\,\delta = (0.64, -0.48)`.

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import attacks, tangent
        >>> c = attacks.kkt(jnp.array([0.6, 0.8]), jnp.array([3.0, 4.0]), eps=1.0, p=2)
        >>> np.round(np.asarray(tangent.project(c, jnp.array([1.0, 0.0])), float), 4).tolist()
        [0.64, -0.48]
    """
    mv = face.mask * v
    return mv - face.normal * (face.normal @ mv)


def _projector_matrix(face: Any) -> jax.Array:
    return jnp.diag(face.mask) - jnp.outer(face.normal, face.normal)


class TangentOperator:
    r""":math:`M = P(\mu I - H)P + (I - P)` of one example's face (d × d).

    Args:
      face: the example's KKT certificate (:class:`advlip.attacks.KKT`, one example):
        ``mask``, ``normal``, ``mu`` and ``tangent_dim`` are read.
      hvp: ``w ↦ H w``, the Hessian of the loss in x at the point (matrix-free), or
      H: the dense (d, d) Hessian (symmetrised here). One of the two.

    Example:
        g = 3δ on the unit L2 sphere at δ = (0.6, 0.8), so μ = 3; with H = −I the
        tangent curvature is μ + 1 = 4, and the solve divides a tangent vector by it.

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import attacks, tangent
        >>> c = attacks.kkt(jnp.array([0.6, 0.8]), jnp.array([1.8, 2.4]), eps=1.0, p=2)
        >>> op = tangent.TangentOperator(c, H=-jnp.eye(2))
        >>> lo, hi, err = op.spectrum()
        >>> round(float(lo), 4), round(float(hi), 4)
        (4.0, 4.0)
        >>> u = op.solve(jnp.array([0.8, -0.6]))  # a tangent vector: u = b / 4
        >>> np.round(np.asarray(u, float), 4).tolist()
        [0.2, -0.15]
    """

    def __init__(
        self,
        face: Any,
        *,
        hvp: Callable[[jax.Array], jax.Array] | None = None,
        H: jax.Array | None = None,
    ):
        if (hvp is None) == (H is None):
            raise ValueError("TangentOperator takes exactly one of hvp= or H=")
        self.face = face
        self.H = None if H is None else 0.5 * (H + H.T)
        self._hvp = hvp if hvp is not None else (lambda w: self.H @ w)

    @property
    def dim(self) -> int:
        return self.face.mask.shape[0]

    def project(self, v: jax.Array) -> jax.Array:
        """:math:`Pv`."""
        return project(self.face, v)

    def tangent_mv(self, w: jax.Array) -> jax.Array:
        """:math:`A w = P(\\mu I - H)P w` (zero off the tangent space)."""
        pw = self.project(w)
        return self.face.mu * pw - self.project(self._hvp(pw))

    def mv(self, w: jax.Array) -> jax.Array:
        """:math:`M w = A w + (I - P) w`: symmetric, positive definite iff :math:`A \\succ 0`."""
        pw = self.project(w)
        return self.face.mu * pw - self.project(self._hvp(pw)) + (w - pw)

    def as_matrix(self) -> jax.Array:
        """:math:`M` as a dense (d, d) matrix (from ``H`` or d Hessian-vector products)."""
        d = self.dim
        dt = self.face.mask.dtype
        eye = jnp.eye(d, dtype=dt)
        P = _projector_matrix(self.face)
        H = self.H if self.H is not None else jax.vmap(self._hvp)(eye).T
        H = 0.5 * (H + H.T)
        return P @ (self.face.mu * eye - H) @ P + eye - P

    def pinv(self) -> jax.Array:
        """:math:`A^{+}P = P M^{-1} P` as a dense (d, d) matrix: the solve factorised once,
        for many right-hand sides (LAPACK; d Hessian-vector products when matrix-free)."""
        M = self.as_matrix()
        P = _projector_matrix(self.face)
        return P @ jnp.linalg.solve(M, P)

    def solve(
        self,
        b: jax.Array,
        *,
        solver: str = "cg",
        maxiter: int | None = None,
        rtol: float | None = None,
        with_info: bool = False,
    ):
        r""":math:`u = A^{+}Pb = P M^{-1} P b`, the tangent component of the solution.

        ``solver="dense"``: LAPACK on :meth:`as_matrix`. ``solver="cg"``:
        :func:`advlip.spectral.cg` on :meth:`mv` (at most ``maxiter`` products, default
        ``2d + 5``; relative residual ``rtol``, default :math:`\gamma_{2d+4}` in the
        dtype). Both are wrapped in ``lax.custom_linear_solve``: JAX differentiates the
        solution implicitly, :math:`\partial u = M^{-1}(\partial b - \partial M\,u)`, and
        transposes it with the same solve (M is symmetric). With ``with_info`` also
        returns the CG iterations (0 for dense) and the smallest curvature CG met
        (``inf`` for dense): a non-positive one says M is not positive definite.
        """
        if solver not in ("cg", "dense"):
            raise ValueError(f"solver={solver!r} is not allowed; allowed: 'cg', 'dense'")
        d = self.dim
        maxiter = 2 * d + 5 if maxiter is None else int(maxiter)
        rhs = self.project(b)
        if solver == "dense":
            M = self.as_matrix()
            u = lax.custom_linear_solve(
                lambda w: M @ w, rhs, lambda _, r: jnp.linalg.solve(M, r), symmetric=True
            )
            iters = jnp.asarray(0)
            curv = jnp.asarray(jnp.inf, dtype=rhs.dtype)
        else:

            def cg_solve(matvec, r):
                x, info = spectral.cg(matvec, r, maxiter=maxiter, rtol=rtol)
                return x, (info.iterations, info.min_curvature)

            u, (iters, curv) = lax.custom_linear_solve(
                self.mv, rhs, cg_solve, symmetric=True, has_aux=True
            )
        u = self.project(u)
        return (u, iters, curv) if with_info else u

    def spectrum(self, *, start: jax.Array | None = None, num_steps: int | None = None):
        r"""Extreme eigenvalues of :math:`A` on the tangent space and their error bound.

        Returns ``(smallest, largest, bound)``: ``(inf, 0, 0)`` when the tangent space
        is {0} (a vertex). Dense ``H``: the eigenvalues of :math:`A + \sigma(I-P)` with
        σ above the spectrum of A (the tangent eigenvalues come first), bound the
        symmetric eigensolver's backward error :math:`\gamma_{d^2+8}\|A\|_F`.
        Matrix-free: Lanczos from :math:`P` ``start`` for at most the tangent dimension
        (and ``num_steps``, default min(d, 64)) steps, bound the a-posteriori
        :math:`|\beta s|` plus the iteration's rounding. The second-order condition is
        ``smallest > bound`` (plus the caller's rounding of the operator).
        """
        face = self.face
        d = self.dim
        dt = face.mask.dtype
        none = face.tangent_dim == 0
        if self.H is not None:
            eye = jnp.eye(d, dtype=dt)
            P = _projector_matrix(face)
            A = P @ (face.mu * eye - self.H) @ P
            fro = jnp.sqrt(jnp.sum(A * A))
            sigma = 2.0 * fro + 1.0
            vals = jnp.linalg.eigvalsh(A + sigma * (eye - P))
            top = vals[jnp.maximum(face.tangent_dim - 1, 0)]
            lo, hi, bound = vals[0], top, tolerance.gamma(d * d + 8, dt) * fro
        else:
            start = jnp.ones(d, dtype=dt) if start is None else start
            q0 = self.project(start)
            # a start (nearly) orthogonal to the face: P start is then the rounding of the
            # projection, ~γ_{2d+4}‖start‖, pointing anywhere (along the normal, say) and
            # Lanczos would leave the tangent space. Fall back to P e_j for the largest
            # diagonal entry of P (≥ tangent_dim/d > 0 whenever the tangent space is not
            # {0}: trace P is its dimension)
            j = jnp.argmax(face.mask - face.normal * face.normal)
            noise = tolerance.gamma(4 * d + 8, dt) * jnp.linalg.norm(start)
            fallback = self.project(jnp.eye(d, dtype=dt)[j])
            q0 = jnp.where(jnp.linalg.norm(q0) > noise, q0, fallback)
            steps = min(d, 64) if num_steps is None else int(num_steps)
            res = spectral.lanczos(
                self.tangent_mv,
                q0,
                num_steps=steps,
                max_steps=face.tangent_dim,
                project=self.project,
            )
            lo, hi = res.smallest, res.largest
            bound = jnp.maximum(res.smallest_bound, res.largest_bound) + res.rounding
        return (
            jnp.where(none, jnp.inf, lo),
            jnp.where(none, 0.0, hi),
            jnp.where(none, 0.0, bound),
        )


def delta_error(residual: Any, curvature_lower: Any, tangent_dim: Any) -> Any:
    r"""First-order bound on :math:`\|\hat\delta - \delta^*\|` from a KKT residual.

    :math:`r/\lambda` with :math:`\lambda` a lower bound on the smallest eigenvalue of
    :math:`A` on the tangent space (the computed one minus its error): the inner
    problem is :math:`\lambda`-strongly concave on the face near δ*, so a projected
    gradient of size r is at most :math:`r/\lambda` from the maximiser. 0 where the
    tangent space is {0} (a vertex does not move) and where r = 0; ``inf`` where a
    positive r meets no positive curvature. Works on scalars or per-example arrays,
    NumPy or JAX (also under ``jit``). The caller says what r covers (the computed
    residual plus the rounding of the gradient it came from, for a bound on the true
    distance).

    Example:
        A residual r = 0.001 on a face of curvature 0.5 is within r/0.5 = 0.002 of the
        maximiser; a vertex (tangent dimension 0) does not move; without positive
        curvature there is no bound.

        >>> from advlip import tangent
        >>> float(tangent.delta_error(1e-3, 0.5, 1)), float(tangent.delta_error(1e-3, 0.5, 0))
        (0.002, 0.0)
        >>> float(tangent.delta_error(1e-3, 0.0, 1))
        inf
    """
    xp = jnp if any(isinstance(a, jax.Array) for a in (residual, curvature_lower)) else None
    if xp is None:
        import numpy as xp  # NumPy in, NumPy out (host-side error bounds)
    r = xp.asarray(residual)
    lam = xp.asarray(curvature_lower)
    tdim = xp.asarray(tangent_dim)
    pos = lam > 0
    safe = xp.where(pos, lam, 1.0)
    out = xp.where(pos, r / safe, xp.where(r > 0, xp.inf, 0.0))
    return xp.where(tdim > 0, out, 0.0)
