r"""Binary linear classification under an Lp attack, in closed form
(docs/theory/closed-form.md).

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

Examples:
    >>> import jax.numpy as jnp
    >>> from advlip import linear
    >>> w, X, y = jnp.array([1.0, -2.0]), jnp.array([[0.5, 1.0], [1.0, -1.0]]), jnp.array([1.0, -1.0])
    >>> round(float(linear.adversarial_loss(w, X, y, eps=0.1, p=2)), 6)
    2.575214
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from advlip import keys, norms, tolerance
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
    "crosses_kink",
    "NonDifferentiableError",
    "LinearProblem",
]


class NonDifferentiableError(ValueError):
    """The adversarial loss has no gradient at the requested point.

    A ``ValueError``: the point is a bad input for a gradient or a Hessian.

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.linear import NonDifferentiableError, adversarial_hessian
        >>> try:   # w_1 = 0 under an L∞ attack: the gradient jumps there
        ...     adversarial_hessian(jnp.array([0.0, 1.0]), jnp.eye(2), jnp.ones(2), eps=0.1, p=float("inf"))
        ... except NonDifferentiableError as err:
        ...     print(isinstance(err, ValueError), "docs/theory/lin-linf.md" in str(err))
        True True
    """


# --------------------------------------------------------------------------- core (no checks)


# The margins are written ``w @ X.T``, not ``X @ w``: under ``vmap`` over many w (pair sweeps,
# searches) XLA:CPU then runs one (K, d)·(d, n) product with K rows, about 1.3x faster than the
# (n, d)·(d, K) orientation (benchmarks/NOTES.md). Same numbers: each margin is one dot product.
def _margins(w, X, y, b, eps, q):
    X2 = jnp.atleast_2d(X)
    y1 = jnp.atleast_1d(y)
    return y1 * (w @ X2.T + b) - eps * norms.lp_norm(w, q)


def _grad(w, X, y, b, eps, q, lo: MarginLoss):
    X2 = jnp.atleast_2d(X)
    y1 = jnp.atleast_1d(y)
    mt = y1 * (w @ X2.T + b) - eps * norms.lp_norm(w, q)
    g1 = lo.d1(mt)
    u = norms.dual_direction(w, q=q)
    gw = ((g1 * y1) @ X2) / X2.shape[0] - eps * jnp.mean(g1) * u  # a matrix-vector product
    gb = jnp.mean(g1 * y1)
    return gw, gb


def _hessians(w, X, y, b, eps, q, lo: MarginLoss):
    r"""``(total, naive)`` over (w, b): the naive Hessian :math:`\operatorname{mean}\,\ell'' a a^\top`
    holds δ* fixed; the total one adds :math:`-\varepsilon\,\operatorname{mean}\,\ell'\,\nabla^2\|w\|_q`."""
    X2 = jnp.atleast_2d(X)
    y1 = jnp.atleast_1d(y)
    mt = y1 * (w @ X2.T + b) - eps * norms.lp_norm(w, q)
    g1, g2 = lo.d1(mt), lo.d2(mt)
    u = norms.dual_direction(w, q=q)
    a = y1[:, None] * X2 - eps * u[None, :]  # (n, d)
    a_full = jnp.concatenate([a, y1[:, None]], axis=1)  # bias column
    outer = jnp.einsum("n,ni,nj->ij", g2, a_full, a_full) / a.shape[0]
    d = w.shape[0]
    curv = -eps * jnp.mean(g1) * norms.norm_hessian(w, q=q)
    return outer.at[:d, :d].add(curv), outer


def _hessian(w, X, y, b, eps, q, lo: MarginLoss):
    return _hessians(w, X, y, b, eps, q, lo)[0]


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
    r"""Worst-case margins :math:`\tilde m_i = y_i(w\cdot x_i + b) - \varepsilon\|w\|_q`, shape (n,).

    Examples:
        Clean margins 3 and −4, lowered by :math:`\varepsilon\|w\|_q`: 0.1 · 5 for p = 2
        (q = 2), 0.1 · 7 for p = ∞ (q = 1):

        >>> import jax.numpy as jnp
        >>> from advlip import linear
        >>> w, X, y = jnp.array([3.0, 4.0]), jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([1.0, -1.0])
        >>> [round(float(m), 4) for m in linear.adversarial_margin(w, X, y, eps=0.1, p=2.0)]
        [2.5, -4.5]
        >>> [round(float(m), 4) for m in linear.adversarial_margin(w, X, y, eps=0.1, p=float("inf"))]
        [2.3, -4.7]
    """
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
    r"""Mean adversarial loss :math:`L(w, b) = \operatorname{mean}_i \ell(\tilde m_i)` (docs/theory/closed-form.md).

    Args:
      w: weights, shape (d,).
      X: examples, shape (n, d), or one example of shape (d,).
      y: labels in {-1, +1}, shape (n,) or scalar.
      eps: attack radius ε ≥ 0.
      p: attack norm, 1 ≤ p ≤ ∞ (static).
      b: bias (scalar).
      loss: ``"softplus"``, ``"exponential"`` or ``"squared_hinge"``.

    Differentiable by ``jax.grad`` wherever the loss is (see :func:`nondifferentiable_reason`).

    Examples:
        With the squared hinge, margins 2.5 and −4.5 cost 0 and 5.5² (the mean is 15.125);
        without the attack, 0 and 5²:

        >>> import jax.numpy as jnp
        >>> from advlip import linear
        >>> w, X, y = jnp.array([3.0, 4.0]), jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([1.0, -1.0])
        >>> round(float(linear.adversarial_loss(w, X, y, eps=0.1, p=2.0, loss="squared_hinge")), 4)
        15.125
        >>> round(float(linear.adversarial_loss(w, X, y, eps=0.0, p=2.0, loss="squared_hinge")), 4)
        12.5
    """
    lo = get_loss(loss)
    q = _prepare(w, X, y, eps, p, b)
    return jnp.mean(lo.value(_margins(jnp.asarray(w), jnp.asarray(X), jnp.asarray(y), b, eps, q)))


def optimal_perturbation(w: ArrayLike, y: ArrayLike, *, eps: ArrayLike, p: float) -> jax.Array:
    r"""The attack :math:`\delta^* = -y\,\varepsilon\,u(w)` that attains the closed form.

    It is feasible, :math:`\|\delta^*\|_p = \varepsilon` (for :math:`w \ne 0`), and attains
    Hölder's equality :math:`y\, w\cdot\delta^* = -\varepsilon\|w\|_q`. Shape (d,) for a scalar
    ``y``, (n, d) for ``y`` of shape (n,). At ``w = 0`` every δ is optimal and 0 is returned.

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.linear import optimal_perturbation
        >>> w = jnp.array([3.0, 4.0])
        >>> delta = optimal_perturbation(w, 1.0, eps=0.1, p=2.0)    # -ε w/‖w‖₂
        >>> [round(float(v), 4) for v in delta], round(float(w @ delta), 4)   # w·δ* = -ε‖w‖₂
        ([-0.06, -0.08], -0.5)
        >>> optimal_perturbation(w, jnp.array([1.0, -1.0, 1.0]), eps=0.1, p=2.0).shape
        (3, 2)
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

    Examples:
        One example, margin 3 − 0.1 · 5 = 2.5: the gradient is
        :math:`\ell'(2.5)\,(x - \varepsilon w/\|w\|, y)` with :math:`\ell'(2.5) = -\sigma(-2.5)`,
        and automatic differentiation of the closed form agrees (Danskin's theorem):

        >>> import jax
        >>> import jax.numpy as jnp
        >>> from advlip import linear
        >>> w, X, y = jnp.array([3.0, 4.0]), jnp.array([[1.0, 0.0]]), jnp.array([1.0])
        >>> gw, gb = linear.adversarial_grad(w, X, y, eps=0.1, p=2.0)
        >>> [round(float(v), 4) for v in gw], round(float(gb), 4)
        ([-0.0713, 0.0061], -0.0759)
        >>> auto = jax.jit(jax.grad(lambda w: linear.adversarial_loss(w, X, y, eps=0.1, p=2.0)))
        >>> [round(float(v), 4) for v in auto(w)]
        [-0.0713, 0.0061]
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

    Examples:
        The diagonal: :math:`\ell''(2.5)\,a_i^2` with :math:`a = (0.94, -0.08, 1)`, plus the
        curvature of :math:`\|w\|_2` on the weights, :math:`-\varepsilon\ell'(2.5)\,(0.128, 0.072)`:

        >>> import jax.numpy as jnp
        >>> from advlip import linear
        >>> w, X, y = jnp.array([3.0, 4.0]), jnp.array([[1.0, 0.0]]), jnp.array([1.0])
        >>> H = linear.adversarial_hessian(w, X, y, eps=0.1, p=2.0)
        >>> H.shape, [round(float(v), 4) for v in H.diagonal()]
        ((3, 3), [0.0629, 0.001, 0.0701])
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

    Examples:
        >>> from advlip.linear import nondifferentiable_reason
        >>> nondifferentiable_reason([3.0, 4.0], eps=0.1, p=2.0) is None
        True
        >>> print(nondifferentiable_reason([0.0, 1.0], eps=0.1, p=float("inf")))
        w has zero coordinate(s) [0]: under p=inf the loss contains -eps*||w||_1, ...
        >>> nondifferentiable_reason([0.0, 1.0], eps=0.0, p=float("inf")) is None   # no attack
        True
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
            f"which has no gradient at w = 0 for p={p:g} (docs/theory/lin-l2-zero.md); "
            "the gradient ratio grows like 1/t on pairs ±t·v"
        )
    if math.isinf(p) and (wa == 0).any():
        idx = np.flatnonzero(wa == 0).tolist()
        return (
            f"w has zero coordinate(s) {idx[:8]}: under p=inf the loss contains -eps*||w||_1, "
            "whose gradient jumps across every hyperplane w_i = 0 (docs/theory/lin-linf.md)"
        )
    if p == 1.0:
        top = np.flatnonzero(wa == wa.max())
        if top.size > 1:
            return (
                f"the largest |w_i| is attained at coordinates {top[:8].tolist()}: under p=1 "
                "the loss contains -eps*||w||_inf, which has no gradient where the maximum ties "
                "(docs/theory/lin-l1.md)"
            )
    return None


def check_differentiable(w: ArrayLike, *, eps: ArrayLike, p: float) -> None:
    """Raise :class:`NonDifferentiableError` where the adversarial loss has no gradient.

    Examples:
        >>> from advlip.linear import check_differentiable
        >>> check_differentiable([2.0, 1.0], eps=0.1, p=1.0)   # the largest |w_i| is unique
        >>> check_differentiable([1.0, -1.0], eps=0.1, p=1.0)
        Traceback (most recent call last):
            ...
        advlip.linear.NonDifferentiableError: the gradient of the adversarial loss does not exist here, ...
    """
    reason = nondifferentiable_reason(w, eps=eps, p=p)
    if reason is not None:
        raise NonDifferentiableError(
            f"the gradient of the adversarial loss does not exist here, so no smoothness "
            f"claim can be checked at this point: {reason}"
        )


def crosses_kink(w1: ArrayLike, w2: ArrayLike, *, p: float) -> bool:
    r"""Whether the segment from ``w1`` to ``w2`` may meet a kink of :math:`\|w\|_q`.

    ``False`` certifies that :math:`-\varepsilon\|w\|_q` is smooth on the whole segment:

    * p = 1 (q = ∞): the largest :math:`|w_j|` is unique at both ends, at the same
      coordinate j, and :math:`w_j` keeps its sign; then :math:`|w_j(s)|` is linear in s and
      every other :math:`|w_i(s)|` is convex, below its chord, so j stays the largest;
    * p > 2 (q < 2: a kink, or for 1 < q < 2 an unbounded Hessian, at every
      :math:`w_i = 0`): no coordinate is 0 at an end or changes sign;
    * 1 < p ≤ 2: neither end is :math:`w = 0` (the segment itself meets 0 only when the
      ends are exactly antiparallel, which this test does not look for).

    NumPy, not traceable.

    Examples:
        >>> from advlip.linear import crosses_kink
        >>> crosses_kink([1.0, 0.5], [2.0, 0.2], p=1.0)   # w_1 stays the unique largest
        False
        >>> crosses_kink([1.0, 0.5], [0.5, 1.0], p=1.0)   # the largest coordinate changes
        True
        >>> crosses_kink([1.0, -0.5], [1.0, 0.5], p=float("inf"))   # w_2 changes sign
        True
    """
    p = check_p(p)
    w1, w2 = np.asarray(w1), np.asarray(w2)
    if p == 1.0:
        a1, a2 = np.abs(w1), np.abs(w2)
        j = int(np.argmax(a1))
        same = int(np.argmax(a2)) == j and w1[j] * w2[j] > 0
        unique = np.sum(a1 == a1[j]) == 1 and np.sum(a2 == a2[j]) == 1
        return not (same and unique)
    if p > 2.0:
        return bool(np.any(np.sign(w1) != np.sign(w2)) or np.any(w1 == 0) or np.any(w2 == 0))
    return bool(not np.any(w1) or not np.any(w2))


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

    Examples:
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

    #: The model family, as :func:`advlip.training.train` writes it into its history.
    kind: ClassVar[str] = "linear"
    #: Steps of the training attack: none, the closed form is the exact maximiser.
    attack_steps: ClassVar[int] = 0

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

    def naive_hessian(self, theta: jax.Array) -> jax.Array:
        r"""The Hessian with the attack held fixed, :math:`\operatorname{mean}\,\ell''(\tilde m)\, a a^\top`.

        What differentiating :math:`\ell(y(w\cdot(x+\delta^*) + b))` twice in θ with
        :math:`\delta^*` frozen gives: :meth:`hessian` without the curvature term
        :math:`-\varepsilon\,\operatorname{mean}\,\ell'\,\nabla^2\|w\|_q` (0 for q ∈ {1, ∞}
        away from the kinks; positive semidefinite for q = 2, so total ⪰ naive there).
        """
        w, b = self.split(theta)
        H = _hessians(w, self.X, self.y, b, self.eps, self.q, get_loss(self.loss))[1]
        return H if self.fit_bias else H[: self.d, : self.d]

    def loss_and_grad_many(self, thetas: ArrayLike) -> tuple[jax.Array, jax.Array]:
        """:meth:`loss_value` and :meth:`grad` at every row of ``thetas`` (K, dim), in one
        compiled program per shape and static setting: shapes (K,) and (K, dim)."""
        return _loss_and_grad_many(self, jnp.asarray(thetas))

    def grad_error_bound_many(self, thetas: ArrayLike) -> jax.Array:
        """:meth:`grad_error_bound` at every row of ``thetas`` (K, dim), compiled once per shape."""
        return _grad_error_bound_many(self, jnp.asarray(thetas))

    def curvature_bound(self) -> float:
        r"""A bound on the naive Hessian, :math:`\ell''_{\max}((\max_i\|x_i\| + \varepsilon\rho)^2 + [\text{bias}])`.

        :math:`\|a_i\| \le \|x_i\| + \varepsilon\|u\|_2` with :math:`\|u\|_2 \le \rho =
        d^{\max(0, 1/2 - 1/p)}` (:func:`advlip.norms.l2_radius`), and the bias column adds
        :math:`y_i^2 = 1`. Where :math:`\|w\|_q` is linear along a segment (q ∈ {1, ∞}, no
        kink crossed) the Hessian is the naive one, so this bounds the gradient ratio there.
        ``inf`` for a loss with unbounded :math:`\ell''`. A float (concrete data).
        """
        rho = norms.l2_radius(self.d, self.p)
        bias = 1.0 if self.fit_bias else 0.0
        x_max = float(self.x_norm_max)
        return get_loss(self.loss).d2_max * ((x_max + float(self.eps) * rho) ** 2 + bias)

    def ratio_bound(self, theta1: ArrayLike, theta2: ArrayLike) -> float:
        r"""A bound on :math:`R = \|\nabla L(\theta_1) - \nabla L(\theta_2)\| / \|\theta_1 - \theta_2\|`
        for this pair, from the linear results (docs/theory/lin-l2.md,
        docs/theory/lin-linf.md, docs/theory/lin-l1.md), or ``inf`` where none applies.

        p = 2: LIN-L2's :math:`\beta(w_1, w_2) = \ell''_{\max}((\max\|x\| + \varepsilon)^2
        + [\text{bias}]) + \varepsilon|\ell'|_{\max}/\sqrt{\|w_1\|\|w_2\|}` (every pair with
        :math:`w_1, w_2 \ne 0`). p ∈ {1, ∞}: :meth:`curvature_bound` where the segment crosses
        no kink (:func:`crosses_kink`), since :math:`\|w\|_q` is linear there (LIN-LINF, LIN-L1);
        across a kink the gradient jumps and no bound is given. Other p: ``inf``.
        """
        self._check_theta(theta1)
        self._check_theta(theta2)
        w1, w2 = np.asarray(theta1)[: self.d], np.asarray(theta2)[: self.d]
        return self._pair_bound(w1, w2, self.curvature_bound())

    def _pair_bound(self, w1: np.ndarray, w2: np.ndarray, curvature: float) -> float:
        """:meth:`ratio_bound` from the weights and :meth:`curvature_bound` (NumPy only)."""
        if self.p == 2.0:
            n1, n2 = float(np.linalg.norm(w1)), float(np.linalg.norm(w2))
            if n1 == 0 or n2 == 0:
                return math.inf
            lo = get_loss(self.loss)
            return curvature + float(self.eps) * lo.d1_abs_max / math.sqrt(n1 * n2)
        if self.p in (1.0, math.inf) and not crosses_kink(w1, w2, p=self.p):
            return curvature
        return math.inf

    # ----------------------------------------------------------------- training protocol

    def init(self, key: jax.Array) -> jax.Array:
        r"""Initial θ for training: :math:`w \sim \mathcal N(0, 0.1^2/d)` (and b likewise when
        ``fit_bias``), drawn by :func:`advlip.keys.numpy_rng` ``(key, 17)``, in X's dtype."""
        rng = keys.numpy_rng(keys.check_key(key), 17)
        theta = 0.1 * rng.standard_normal(self.dim) / math.sqrt(self.d)
        return jnp.asarray(theta, dtype=self.X.dtype)

    def evaluate(
        self, theta: jax.Array, X: jax.Array, y: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        r"""``(L, ∇L, clean accuracy, robust accuracy)`` on the data ``(X, y)``, closed form.

        The problem's threat model and loss, on any data (a minibatch, a test set):
        :math:`L = \operatorname{mean}\,\ell(\tilde m)`, the Danskin gradient of :meth:`grad`,
        the fractions of :math:`m_i > 0` and of :math:`\tilde m_i = m_i - \varepsilon\|w\|_q > 0`
        (robust ≤ clean, exactly: :math:`\tilde m` is :math:`m` minus a number ≥ 0).
        Traceable (:func:`advlip.training.train` compiles it once per shape).
        """
        w, b = self.split(theta)
        lo = get_loss(self.loss)
        X2, y1 = jnp.atleast_2d(X), jnp.atleast_1d(y)
        m = y1 * (X2 @ w + b)
        mt = m - self.eps * norms.lp_norm(w, self.q)
        gw, gb = _grad(w, X2, y1, b, self.eps, self.q, lo)
        g = jnp.concatenate([gw, gb[None]]) if self.fit_bias else gw
        frac = lambda ok: jnp.mean(ok.astype(m.dtype))  # noqa: E731 - the mean of a bool is float32
        return jnp.mean(lo.value(mt)), g, frac(m > 0), frac(mt > 0)

    def checkpoint(
        self,
        theta: jax.Array,
        X: jax.Array,
        y: jax.Array,
        *,
        key: jax.Array | None = None,
        strong_steps: int = 0,
        strong_restarts: int = 0,
        certify: bool = False,
    ) -> dict[str, Any]:
        r"""What a training checkpoint records, exactly: accuracies on ``(X, y)``, and the top
        eigenvalue of the total (:meth:`hessian`) and naive (:meth:`naive_hessian`) Hessians
        on the problem's own data.

        The closed form is the exact worst case, so the strong robust accuracy is the
        robust one; ``key``, ``strong_steps``, ``strong_restarts`` and ``certify`` (for
        attacks that are not exact) are not used. ``lambda_error``: ``eigvalsh`` is
        backward stable, an error :math:`\gamma_{P^2}\|H\|_F`, plus the formula's own
        rounding (k ≈ 4P + n operations per entry on terms bounded by :math:`|H|`).
        """
        del key, strong_steps, strong_restarts, certify
        theta = jnp.asarray(theta)
        clean, robust, total, naive = _checkpoint(self, theta, jnp.asarray(X), jnp.asarray(y))
        total, naive = np.asarray(total), np.asarray(naive)
        P, n = total.shape[0], self.X.shape[0]
        work = tolerance.working_dtype(theta, self.X)
        err = tolerance.gamma(P * P + 4 * P + n, work) * float(
            np.linalg.norm(total) + np.linalg.norm(naive)
        )
        return {
            "clean_acc": float(clean),
            "robust_acc": float(robust),
            "strong_robust_acc": float(robust),  # the closed form is the exact worst case
            "lambda_max_total": float(np.linalg.eigvalsh(total)[-1]),
            "lambda_max_naive": float(np.linalg.eigvalsh(naive)[-1]),
            "lambda_error": err,
            "info": {"attack": "closed form (exact)"},
        }

    def path_bounds(self, thetas: ArrayLike) -> dict[str, np.ndarray]:
        r"""Facts about a path :math:`\theta_0, \dots, \theta_T` (rows of ``thetas``), per step and per iterate.

        Per step t (length T): ``ratio_bound`` (:meth:`ratio_bound` of
        :math:`(\theta_t, \theta_{t+1})`), ``kink_crossed`` (:func:`crosses_kink`). Per
        iterate (length T + 1): ``near_zero``, the fraction of weights within one step of
        their kink, :math:`|w_{t,i}| \le |w_{t,i} - w_{t-1,i}|` (NaN at t = 0), and
        ``grad_error`` (:meth:`grad_error_bound`).
        """
        th = np.asarray(thetas)
        if th.ndim != 2 or th.shape[1] != self.dim:
            raise ValueError(f"thetas must have shape (T + 1, {self.dim}), got {th.shape}")
        W = th[:, : self.d]
        steps = range(th.shape[0] - 1)
        near = [float(np.mean(np.abs(W[t + 1]) <= np.abs(W[t + 1] - W[t]))) for t in steps]
        curvature = self.curvature_bound()
        return {
            "ratio_bound": np.asarray([self._pair_bound(W[t], W[t + 1], curvature) for t in steps]),
            "kink_crossed": np.asarray(
                [crosses_kink(W[t], W[t + 1], p=self.p) for t in steps], dtype=bool
            ),
            "near_zero": np.asarray([math.nan, *near]),
            "grad_error": np.asarray(self.grad_error_bound_many(th)),
        }

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


# --------------------------------------------------------------------------- compiled, per shape
# A problem is a pytree (its arrays are traced), so each of these compiles once per shape and
# static setting (p, loss, fit_bias), for every dataset, ε and b.


@jax.jit
def _loss_and_grad_many(prob: LinearProblem, thetas: jax.Array):
    return jax.vmap(lambda th: (prob.loss_value(th), prob.grad(th)))(thetas)


@jax.jit
def _grad_error_bound_many(prob: LinearProblem, thetas: jax.Array):
    return jax.vmap(prob.grad_error_bound)(thetas)


@jax.jit
def _checkpoint(prob: LinearProblem, theta: jax.Array, X: jax.Array, y: jax.Array):
    """Accuracies on (X, y) and the (total, naive) Hessians on the problem's data, one program."""
    _, _, clean, robust = prob.evaluate(theta, X, y)
    w, b = prob.split(theta)
    total, naive = _hessians(w, prob.X, prob.y, b, prob.eps, prob.q, get_loss(prob.loss))
    if not prob.fit_bias:
        total, naive = total[: prob.d, : prob.d], naive[: prob.d, : prob.d]
    return clean, robust, total, naive
