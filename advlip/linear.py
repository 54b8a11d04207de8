r"""Binary linear classification under an Lp attack, in closed form (SPEC §2).

Model :math:`f(x) = w\cdot x + b`, margin :math:`m = y f(x)`, decreasing margin loss
:math:`\ell`. By Hölder's inequality the inner maximisation has the closed form

.. math:: \max_{\|\delta\|_p \le \varepsilon} \ell\big(y(w\cdot(x+\delta) + b)\big)
          = \ell(\tilde m), \qquad \tilde m = m - \varepsilon \|w\|_q ,

attained at :math:`\delta^* = -y\,\varepsilon\, u(w)`, :math:`u(w) \in \partial\|w\|_q`.
Danskin's theorem gives, with :math:`a = y x - \varepsilon u(w)`,

.. math:: \nabla_w L = \ell'(\tilde m)\, a, \qquad \partial_b L = \ell'(\tilde m)\, y,
.. math:: \nabla^2_w L = \ell''(\tilde m)\, a a^\top - \varepsilon\,\ell'(\tilde m)\, \nabla^2\|w\|_q ,

each averaged over the rows of a dataset. The gradient exists except where
:math:`\|w\|_q` is not differentiable and :math:`\varepsilon\,\ell'(\tilde m) \ne 0`:
``w = 0`` for every p, coordinates ``w_i = 0`` for p = ∞, ties of the largest
:math:`|w_i|` for p = 1 (:func:`nondifferentiable_reason`).

Example:
    >>> import jax.numpy as jnp
    >>> from advlip import linear
    >>> w, X, y = jnp.array([1.0, -2.0]), jnp.array([[0.5, 1.0], [1.0, -1.0]]), jnp.array([1.0, -1.0])
    >>> round(float(linear.adversarial_loss(w, X, y, eps=0.1, p=2)), 6)
    2.575214
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from advlip import norms
from advlip._validate import (
    check_data,
    check_eps,
    check_finite,
    check_labels,
    check_p,
    check_scalar,
    check_weights,
    is_traced,
)
from advlip.losses import MarginLoss, get_loss

__all__ = [
    "adversarial_margin",
    "adversarial_loss",
    "optimal_perturbation",
    "adversarial_grad",
    "adversarial_hessian",
    "nondifferentiable_reason",
    "check_differentiable",
    "NonDifferentiableError",
    "LinearProblem",
]


class NonDifferentiableError(ValueError):
    """The adversarial loss has no gradient at the requested point."""


# --------------------------------------------------------------------------- core (no checks)


def _margins(w, X, y, b, eps, q):
    X2 = jnp.atleast_2d(X)
    y1 = jnp.atleast_1d(y)
    return y1 * (X2 @ w + b) - eps * norms.lp_norm(w, q)


def _grad(w, X, y, b, eps, q, lo: MarginLoss):
    X2 = jnp.atleast_2d(X)
    y1 = jnp.atleast_1d(y)
    mt = y1 * (X2 @ w + b) - eps * norms.lp_norm(w, q)
    g1 = lo.d1(mt)
    u = norms.dual_direction(w, q=q)
    gw = ((g1 * y1) @ X2) / X2.shape[0] - eps * jnp.mean(g1) * u  # a matrix-vector product
    gb = jnp.mean(g1 * y1)
    return gw, gb


def _hessian(w, X, y, b, eps, q, lo: MarginLoss):
    X2 = jnp.atleast_2d(X)
    y1 = jnp.atleast_1d(y)
    mt = y1 * (X2 @ w + b) - eps * norms.lp_norm(w, q)
    g1, g2 = lo.d1(mt), lo.d2(mt)
    u = norms.dual_direction(w, q=q)
    a = y1[:, None] * X2 - eps * u[None, :]  # (n, d)
    a_full = jnp.concatenate([a, y1[:, None]], axis=1)  # bias column
    outer = jnp.einsum("n,ni,nj->ij", g2, a_full, a_full) / a.shape[0]
    d = w.shape[0]
    curv = -eps * jnp.mean(g1) * norms.norm_hessian(w, q=q)
    return outer.at[:d, :d].add(curv)


# --------------------------------------------------------------------------- public API


def _prepare(w, X, y, eps, p, b):
    p = check_p(p)
    check_eps(eps)
    check_data(w, X, y)
    check_scalar("b", b)
    return norms.dual_exponent(p)


def adversarial_margin(
    w: ArrayLike, X: ArrayLike, y: ArrayLike, *, eps: ArrayLike, p: float, b: ArrayLike = 0.0
) -> jax.Array:
    r"""Worst-case margins :math:`\tilde m_i = y_i(w\cdot x_i + b) - \varepsilon\|w\|_q`, shape (n,)."""
    q = _prepare(w, X, y, eps, p, b)
    return _margins(jnp.asarray(w), jnp.asarray(X), jnp.asarray(y), b, eps, q)


def adversarial_loss(
    w: ArrayLike,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    b: ArrayLike = 0.0,
    loss: str | MarginLoss = "softplus",
) -> jax.Array:
    r"""Mean adversarial loss :math:`L(w, b) = \operatorname{mean}_i \ell(\tilde m_i)` (SPEC §2, closed form).

    Args:
      w: weights, shape (d,).
      X: examples, shape (n, d), or one example of shape (d,).
      y: labels in {-1, +1}, shape (n,) or scalar.
      eps: attack radius ε ≥ 0.
      p: attack norm, 1 ≤ p ≤ ∞ (static).
      b: bias (scalar).
      loss: ``"softplus"``, ``"exponential"`` or ``"squared_hinge"``.

    Differentiable by ``jax.grad`` wherever the loss is (see :func:`nondifferentiable_reason`).
    """
    lo = get_loss(loss)
    q = _prepare(w, X, y, eps, p, b)
    return jnp.mean(lo.value(_margins(jnp.asarray(w), jnp.asarray(X), jnp.asarray(y), b, eps, q)))


def optimal_perturbation(w: ArrayLike, y: ArrayLike, *, eps: ArrayLike, p: float) -> jax.Array:
    r"""The attack :math:`\delta^* = -y\,\varepsilon\,u(w)` that attains the closed form.

    It is feasible, :math:`\|\delta^*\|_p = \varepsilon` (for :math:`w \ne 0`), and attains
    Hölder's equality :math:`y\, w\cdot\delta^* = -\varepsilon\|w\|_q`. Shape (d,) for a scalar
    ``y``, (n, d) for ``y`` of shape (n,). At ``w = 0`` every δ is optimal and 0 is returned.
    """
    p = check_p(p)
    check_eps(eps)
    check_weights(w)
    check_labels(y)
    if np.ndim(y) > 1:
        raise ValueError(f"y must be a scalar or of shape (n,), got shape {np.shape(y)}")
    q = norms.dual_exponent(p)
    u = norms.dual_direction(jnp.asarray(w), q=q)
    y = jnp.asarray(y)
    if y.ndim:
        return -(y[:, None] * eps) * u[None, :]
    return -y * eps * u


def adversarial_grad(
    w: ArrayLike,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    b: ArrayLike = 0.0,
    loss: str | MarginLoss = "softplus",
) -> tuple[jax.Array, jax.Array]:
    r"""Danskin gradient :math:`(\nabla_w L, \partial_b L) = \operatorname{mean}_i \ell'(\tilde m_i)\,(a_i, y_i)`.

    At a point where the gradient does not exist it returns the element of the
    subdifferential built from :func:`advlip.norms.dual_direction`; call
    :func:`check_differentiable` first when that matters.
    """
    lo = get_loss(loss)
    q = _prepare(w, X, y, eps, p, b)
    return _grad(jnp.asarray(w), jnp.asarray(X), jnp.asarray(y), b, eps, q, lo)


def adversarial_hessian(
    w: ArrayLike,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    b: ArrayLike = 0.0,
    loss: str | MarginLoss = "softplus",
) -> jax.Array:
    r"""Hessian over :math:`\theta = (w, b)`, shape (d+1, d+1), where it exists.

    :math:`\nabla^2_w L = \operatorname{mean}\,\ell''(\tilde m) a a^\top - \varepsilon\,\operatorname{mean}\,\ell'(\tilde m)\,\nabla^2\|w\|_q`;
    the bias row/column is :math:`\operatorname{mean}\,\ell''(\tilde m)\, y\,(a, y)`.
    Raises :class:`NonDifferentiableError` where the gradient itself does not exist.
    """
    lo = get_loss(loss)
    q = _prepare(w, X, y, eps, p, b)
    if not is_traced(w, eps):
        check_differentiable(w, eps=eps, p=p)
    return _hessian(jnp.asarray(w), jnp.asarray(X), jnp.asarray(y), b, eps, q, lo)


def nondifferentiable_reason(w: ArrayLike, *, eps: ArrayLike, p: float) -> str | None:
    """Why the adversarial loss has no gradient at ``w``, or ``None`` where it has one.

    With ε > 0 the term :math:`-\\varepsilon\\|w\\|_q` is not differentiable at ``w = 0``
    (every p), where some :math:`w_i = 0` (p = ∞, q = 1), and where the largest
    :math:`|w_i|` is attained twice (p = 1, q = ∞). (For the squared hinge the kink
    is harmless where every margin is ≥ 1; this function does not look at the data and
    reports the kink of the norm.)
    """
    p = check_p(p)
    check_eps(eps)
    if np.ndim(w) == 0:  # a scalar weight is a 1-D model
        w = np.atleast_1d(np.asarray(w, dtype=float))
    check_weights(w)
    if float(eps) == 0.0:
        return None
    wa = np.abs(np.asarray(w, dtype=float))
    if not wa.any():
        return (
            f"w = 0: the adversarial loss contains -eps*||w||_q with eps={float(eps):g}, "
            f"which has no gradient at w = 0 for p={p:g} (SPEC LIN-L2-ZERO); "
            "the gradient ratio grows like 1/t on pairs ±t·v"
        )
    if math.isinf(p) and (wa == 0).any():
        idx = np.flatnonzero(wa == 0).tolist()
        return (
            f"w has zero coordinate(s) {idx[:8]}: under p=inf the loss contains -eps*||w||_1, "
            "whose gradient jumps across every hyperplane w_i = 0 (SPEC LIN-LINF)"
        )
    if p == 1.0:
        top = np.flatnonzero(wa == wa.max())
        if top.size > 1:
            return (
                f"the largest |w_i| is attained at coordinates {top[:8].tolist()}: under p=1 "
                "the loss contains -eps*||w||_inf, which has no gradient where the maximum ties "
                "(SPEC LIN-L1)"
            )
    return None


def check_differentiable(w: ArrayLike, *, eps: ArrayLike, p: float) -> None:
    """Raise :class:`NonDifferentiableError` where the adversarial loss has no gradient."""
    reason = nondifferentiable_reason(w, eps=eps, p=p)
    if reason is not None:
        raise NonDifferentiableError(
            f"the gradient of the adversarial loss does not exist here, so no smoothness "
            f"claim can be checked at this point: {reason}"
        )


# --------------------------------------------------------------------------- a problem instance


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False)
class LinearProblem:
    r"""A dataset, a threat model and a loss: :math:`\theta \mapsto L(\theta)` as flat-array functions.

    ``theta`` is ``w`` (shape (d,)) when ``fit_bias`` is False (the bias is the
    constant ``b``), and ``concat(w, [b])`` (shape (d+1,)) when it is True. These are
    the functions the smoothness checks differentiate, compare and search over.

    A problem is a pytree: ``X``, ``y``, ``eps`` and ``b`` are its leaves, ``p``, ``loss``
    and ``fit_bias`` static. Pass it *as an argument* to a jitted function
    (``jax.jit(LinearProblem.grad)(prob, theta)``) and one compilation serves every
    problem of the same shapes and static settings.

    Example:
        >>> import jax.numpy as jnp
        >>> from advlip.linear import LinearProblem
        >>> prob = LinearProblem(X=jnp.eye(2), y=jnp.array([1.0, -1.0]), eps=0.1, p=2.0)
        >>> prob.grad(jnp.array([1.0, 1.0])).shape
        (2,)
    """

    X: Any
    y: Any
    eps: float
    p: float
    loss: str = "softplus"
    b: float = 0.0
    fit_bias: bool = False

    def tree_flatten(self):
        return (self.X, self.y, self.eps, self.b), (self.p, self.loss, self.fit_bias)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)  # no validation: leaves may be tracers or placeholders
        for name, value in zip(("X", "y", "eps", "b"), children, strict=True):
            object.__setattr__(obj, name, value)
        for name, value in zip(("p", "loss", "fit_bias"), aux, strict=True):
            object.__setattr__(obj, name, value)
        return obj

    def __post_init__(self):
        object.__setattr__(self, "p", check_p(self.p))
        check_eps(self.eps)
        get_loss(self.loss)
        X = jnp.atleast_2d(jnp.asarray(self.X))
        y = jnp.atleast_1d(jnp.asarray(self.y))
        if X.ndim == 2 and X.shape[1] == 0:
            raise ValueError(
                f"X must have at least one feature (d >= 1), got shape {np.shape(self.X)}"
            )
        check_data(jnp.zeros(X.shape[1]), X, y)
        check_finite("b", self.b)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "eps", jnp.asarray(self.eps, dtype=X.dtype))
        object.__setattr__(self, "b", jnp.asarray(self.b, dtype=X.dtype))

    @property
    def q(self) -> float:
        return norms.dual_exponent(self.p)

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    @property
    def dim(self) -> int:
        """Number of parameters in θ."""
        return self.d + int(self.fit_bias)

    @property
    def x_norm_max(self) -> jax.Array:
        """:math:`\\max_i \\|x_i\\|_2`, the data constant of the bounds (a JAX scalar)."""
        return jnp.max(jnp.linalg.norm(self.X, axis=1))

    def _check_theta(self, theta: Any) -> None:
        """``theta`` has shape ``(dim,)`` (a static check: it also runs under jit/vmap)."""
        if not hasattr(self.X, "shape"):  # unflattened with placeholder leaves
            return
        shape = np.shape(theta)
        if shape != (self.dim,):
            what = f"the {self.d} weights" + (" and the bias" if self.fit_bias else "")
            got = f"length {shape[0]}" if len(shape) == 1 else f"shape {shape}"
            raise ValueError(
                f"theta must have length {self.dim} ({what}; shape ({self.dim},)), got {got}"
            )

    def split(self, theta: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(w, b)`` from ``theta``; a ``theta`` of the wrong length raises a ValueError."""
        self._check_theta(theta)
        if self.fit_bias:
            return theta[: self.d], theta[self.d]
        return theta, jnp.asarray(self.b, dtype=theta.dtype)

    def margins(self, theta: jax.Array) -> jax.Array:
        w, b = self.split(theta)
        return _margins(w, self.X, self.y, b, self.eps, self.q)

    def loss_value(self, theta: jax.Array) -> jax.Array:
        return jnp.mean(get_loss(self.loss).value(self.margins(theta)))

    def grad(self, theta: jax.Array) -> jax.Array:
        """Closed-form Danskin gradient over θ."""
        w, b = self.split(theta)
        gw, gb = _grad(w, self.X, self.y, b, self.eps, self.q, get_loss(self.loss))
        return jnp.concatenate([gw, gb[None]]) if self.fit_bias else gw

    def hessian(self, theta: jax.Array) -> jax.Array:
        """Closed-form Hessian over θ (where it exists)."""
        w, b = self.split(theta)
        H = _hessian(w, self.X, self.y, b, self.eps, self.q, get_loss(self.loss))
        return H if self.fit_bias else H[: self.d, : self.d]

    def weights(self, theta: jax.Array) -> jax.Array:
        return self.split(theta)[0]

    def grad_error_bound(self, theta: jax.Array) -> jax.Array:
        r"""A rounding-error bound on ``‖grad(θ)‖`` computed as in :meth:`grad` (2-norm).

        The unit roundoff is that of the dtype the gradient is computed in (the least
        precise of ``theta`` and the data: float32 parameters get a float32 bound).

        Rounding model (:mod:`advlip.tolerance`): each margin :math:`\tilde m_i` is a
        dot product plus a norm, :math:`k_m = 2d + 4` operations on terms bounded by
        :math:`|x_i|\cdot|w| + |b| + \varepsilon\|w\|_q`; its error moves :math:`\ell'`
        by at most :math:`\ell''_{\sup}\,\delta m`. The mean over n rows of
        :math:`\ell'(\tilde m_i)(y_i x_i - \varepsilon u)` adds :math:`\gamma_{n+4}` times the
        sum of the absolute terms, per component, and each operation may add one
        underflow (:func:`advlip.tolerance.underflow`).
        """
        from advlip import tolerance

        lo = get_loss(self.loss)
        work = tolerance.working_dtype(theta, self.X)
        w, b = self.split(theta)
        mt = self.margins(theta)
        scale_m = jnp.abs(self.X) @ jnp.abs(w) + jnp.abs(b) + self.eps * norms.lp_norm(w, self.q)
        dm = tolerance.gamma(2 * self.d + 4, work) * scale_m
        d2 = lo.d2_sup(mt - dm, mt + dm)
        d1 = jnp.abs(lo.d1(mt)) + d2 * dm
        u = jnp.abs(norms.dual_direction(w, q=self.q))
        xu = jnp.abs(self.X) + self.eps * u[None, :]
        terms = jnp.mean(d1[:, None] * xu, axis=0)
        err_w = tolerance.gamma(self.X.shape[0] + 4, work) * terms + jnp.mean(
            (d2 * dm)[:, None] * xu, axis=0
        )
        # underflow: each of the k ≈ 2d + n + 8 operations behind a component can add
        # one smallest-normal (products like ε·u·ℓ' with a tiny ε flush to zero)
        err_w = err_w + (2 * self.d + self.X.shape[0] + 8) * tolerance.underflow(work)
        # ‖err_w‖ scaled by its largest entry (norms.lp_norm): a plain norm squares entries
        # near the underflow threshold (float32: 1e-38² = 0) and would report a zero bound
        err = norms.lp_norm(err_w, 2.0)
        if self.fit_bias:
            err = (
                err + tolerance.gamma(self.X.shape[0] + 4, work) * jnp.mean(d1) + jnp.mean(d2 * dm)
            )
        return err
