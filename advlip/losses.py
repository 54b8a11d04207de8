r"""Decreasing margin losses :math:`\ell(m)` and the constants the bounds need.

Each loss carries its value and first two derivatives in closed form (used by the
Danskin gradient and the Hessian of docs/theory/closed-form.md), its SymPy expression (used by
:mod:`advlip.symbolic` and ``proofs/``), and the suprema of :math:`\ell''` and
:math:`|\ell'|` — globally, and over an interval of margins :math:`[lo, hi]`, which is
what a bound needs when the global supremum is infinite (exponential, squared hinge).

=================  =====================  ==============================  =====================
name               :math:`\ell(m)`        :math:`\sup \ell''`             :math:`\sup |\ell'|`
=================  =====================  ==============================  =====================
``softplus``       :math:`\log(1+e^{-m})`  1/4 (at m = 0)                  1
``exponential``    :math:`e^{-m}`          ∞ (:math:`e^{-lo}` on [lo, ∞))  ∞ (:math:`e^{-lo}`)
``squared_hinge``  :math:`\max(0,1-m)^2`   2                               ∞ (:math:`2(1-lo)`)
=================  =====================  ==============================  =====================

Examples:
    >>> from advlip.losses import get_loss
    >>> get_loss("softplus").d2_max
    0.25
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import sympy as sp

__all__ = [
    "MarginLoss",
    "LOSSES",
    "get_loss",
    "LogitLoss",
    "LOGIT_LOSSES",
    "get_logit_loss",
    "check_labels",
]


@dataclasses.dataclass(frozen=True)
class MarginLoss:
    r"""A convex, decreasing margin loss with closed-form derivatives.

    Attributes:
      name: registry name.
      value: :math:`\ell` as a JAX function of the margin.
      d1: :math:`\ell'` as a JAX function of the margin.
      d2: :math:`\ell''` as a JAX function of the margin.
      d2_max: the global supremum of :math:`\ell''` (``math.inf`` if unbounded).
      d1_abs_max: the global supremum of :math:`|\ell'|` (``math.inf`` if unbounded).
      d2_sup: the supremum of :math:`\ell''` over a margin interval ``[lo, hi]``, as
        ``d2_sup(lo, hi)`` (JAX-traceable).
      d1_abs_sup: the supremum of :math:`|\ell'|` over ``[lo, hi]``, as ``d1_abs_sup(lo, hi)``.
      sympy: the loss as a SymPy expression of a margin symbol.

    Examples:
        >>> import jax.numpy as jnp, sympy
        >>> from advlip.losses import get_loss
        >>> softplus = get_loss("softplus")
        >>> m = jnp.array(0.0)                   # ℓ(0) = log 2, ℓ'(0) = -σ(0), ℓ''(0) = σ(0)²
        >>> [round(float(f(m)), 4) for f in (softplus.value, softplus.d1, softplus.d2)]
        [0.6931, -0.5, 0.25]
        >>> round(float(softplus.d2_sup(jnp.array(1.0), jnp.array(3.0))), 4)   # σ(1)σ(-1)
        0.1966
        >>> softplus.sympy(sympy.Symbol("m"))
        log(1 + exp(-m))
    """

    name: str
    value: Callable[[jax.Array], jax.Array]
    d1: Callable[[jax.Array], jax.Array]
    d2: Callable[[jax.Array], jax.Array]
    d2_max: float
    d1_abs_max: float
    d2_sup: Callable[[jax.Array, jax.Array], jax.Array]
    d1_abs_sup: Callable[[jax.Array, jax.Array], jax.Array]
    sympy: Callable[[sp.Expr], sp.Expr]

    def __repr__(self) -> str:
        return f"MarginLoss({self.name!r})"


def _softplus_d2_sup(lo, hi):
    # ℓ''(m) = σ(m)σ(-m) is even and peaks at m = 0 with value 1/4.
    m = jnp.where((lo <= 0) & (hi >= 0), 0.0, jnp.minimum(jnp.abs(lo), jnp.abs(hi)))
    return jax.nn.sigmoid(m) * jax.nn.sigmoid(-m)


SOFTPLUS = MarginLoss(
    name="softplus",
    value=lambda m: jax.nn.softplus(-m),
    d1=lambda m: -jax.nn.sigmoid(-m),
    d2=lambda m: jax.nn.sigmoid(m) * jax.nn.sigmoid(-m),
    d2_max=0.25,
    d1_abs_max=1.0,
    d2_sup=_softplus_d2_sup,
    d1_abs_sup=lambda lo, hi: jax.nn.sigmoid(-lo),
    sympy=lambda m: sp.log(1 + sp.exp(-m)),
)

EXPONENTIAL = MarginLoss(
    name="exponential",
    value=lambda m: jnp.exp(-m),
    d1=lambda m: -jnp.exp(-m),
    d2=lambda m: jnp.exp(-m),
    d2_max=math.inf,
    d1_abs_max=math.inf,
    d2_sup=lambda lo, hi: jnp.exp(-lo),
    d1_abs_sup=lambda lo, hi: jnp.exp(-lo),
    sympy=lambda m: sp.exp(-m),
)

SQUARED_HINGE = MarginLoss(
    name="squared_hinge",
    value=lambda m: jnp.maximum(0.0, 1.0 - m) ** 2,
    d1=lambda m: -2.0 * jnp.maximum(0.0, 1.0 - m),
    # ℓ' is 2-Lipschitz; ℓ'' jumps at m = 1 and is taken as 0 there (one-sided value).
    d2=lambda m: jnp.where(m < 1.0, 2.0, 0.0).astype(jnp.result_type(m, float)),
    d2_max=2.0,
    d1_abs_max=math.inf,
    d2_sup=lambda lo, hi: jnp.where(lo < 1.0, 2.0, 0.0),
    d1_abs_sup=lambda lo, hi: 2.0 * jnp.maximum(0.0, 1.0 - lo),
    sympy=lambda m: sp.Max(0, 1 - m) ** 2,
)

LOSSES: dict[str, MarginLoss] = {loss.name: loss for loss in (SOFTPLUS, EXPONENTIAL, SQUARED_HINGE)}


def get_loss(loss: str | MarginLoss) -> MarginLoss:
    """Look a loss up by name (``softplus``, ``exponential``, ``squared_hinge``).

    Examples:
        >>> from advlip.losses import get_loss
        >>> get_loss("squared_hinge").d2_max, get_loss("exponential").d2_max   # ℓ'' = 2; e^-m
        (2.0, inf)
        >>> get_loss("hinge")
        Traceback (most recent call last):
            ...
        ValueError: loss='hinge' is not a known margin loss; allowed: ['exponential', 'softplus', 'squared_hinge']
    """
    if isinstance(loss, MarginLoss):
        return loss
    try:
        return LOSSES[loss]
    except (KeyError, TypeError):
        raise ValueError(
            f"loss={loss!r} is not a known margin loss; allowed: {sorted(LOSSES)}"
        ) from None


# --------------------------------------------------------------------------- losses on logits


@dataclasses.dataclass(frozen=True)
class LogitLoss:
    r"""A classification loss on a network's logits :math:`z`, for one example.

    ``value(z, y)``: ``z`` has shape (K,) for K ≥ 2 classes and ``y`` is an integer class
    in ``[0, K)``; or ``z`` has shape () or (1,) — one logit of a binary classifier — and
    ``y`` is a label in {−1, +1}. The attack maximises it and training minimises it.

    Attributes:
      name: registry name.
      value: the loss, a JAX function of ``(z, y)``.
      smooth: whether it is twice differentiable in ``z`` everywhere (the theory's
        assumption for the total Hessian); the margins are not where two logits tie.
      min_classes: the fewest classes it is defined for (1 means a binary logit works).

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.losses import get_logit_loss
        >>> ce = get_logit_loss("cross_entropy")
        >>> round(float(ce(jnp.array([0.0, 0.0]), 0)), 4)   # two equal logits: log 2
        0.6931
        >>> round(float(ce(jnp.array(0.0), 1.0)), 4)        # one binary logit: softplus(-y z)
        0.6931
        >>> ce.smooth, get_logit_loss("cw").smooth, get_logit_loss("dlr").min_classes
        (True, False, 3)
    """

    name: str
    value: Callable[[jax.Array, jax.Array], jax.Array]
    smooth: bool
    min_classes: int

    def __call__(self, z: jax.Array, y: jax.Array) -> jax.Array:
        return self.value(z, y)

    def __repr__(self) -> str:
        return f"LogitLoss({self.name!r})"


def _binary(z: jax.Array) -> bool:
    return z.ndim == 0 or z.shape == (1,)


def _true_and_rest(z: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:math:`z_y` and :math:`\\max_{j \\ne y} z_j` (one-hot, so ``y`` may be traced)."""
    onehot = jax.nn.one_hot(jnp.asarray(y).astype(jnp.int32), z.shape[-1], dtype=z.dtype)
    zy = onehot @ z
    other = jnp.max(jnp.where(onehot > 0, -jnp.inf, z))
    return zy, other


def _cross_entropy(z, y):
    if _binary(z):
        return jax.nn.softplus(-jnp.asarray(y, z.dtype) * z.reshape(()))
    zy, _ = _true_and_rest(z, y)
    return jax.nn.logsumexp(z) - zy


def _cw(z, y):
    if _binary(z):
        return -jnp.asarray(y, z.dtype) * z.reshape(())
    zy, other = _true_and_rest(z, y)
    return other - zy


def _dlr(z, y):
    zy, other = _true_and_rest(z, y)
    top = jnp.sort(z)[::-1]
    # Croce & Hein (2020): scale-invariant margin; the 1e-12 keeps it finite on ties
    return (other - zy) / (top[0] - top[2] + 1e-12)


CROSS_ENTROPY = LogitLoss("cross_entropy", _cross_entropy, smooth=True, min_classes=1)
CW = LogitLoss("cw", _cw, smooth=False, min_classes=1)
DLR = LogitLoss("dlr", _dlr, smooth=False, min_classes=3)

LOGIT_LOSSES: dict[str, LogitLoss] = {loss.name: loss for loss in (CROSS_ENTROPY, CW, DLR)}


def get_logit_loss(loss: str | LogitLoss) -> LogitLoss:
    """Look a loss on logits up by name (``cross_entropy``, ``cw``, ``dlr``).

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.losses import get_logit_loss
        >>> float(get_logit_loss("cw")(jnp.array([2.0, 0.5, -1.0]), 1))
        1.5
    """
    if isinstance(loss, LogitLoss):
        return loss
    try:
        return LOGIT_LOSSES[loss]
    except (KeyError, TypeError):
        raise ValueError(
            f"loss={loss!r} is not a known loss on logits; allowed: {sorted(LOGIT_LOSSES)}"
        ) from None


def check_labels(y: Any, num_classes: int, *, name: str = "y") -> None:
    """Refuse labels a classifier with ``num_classes`` outputs cannot take, naming them.

    ``num_classes == 1`` (one logit): labels in {−1, +1}; otherwise integers in
    ``[0, num_classes)``.

    Examples:
        >>> from advlip.losses import check_labels
        >>> check_labels([0, 2, 1], 3)          # valid: returns None
        >>> check_labels([1, -1, 0], 1)
        Traceback (most recent call last):
            ...
        ValueError: y holds the label 0; allowed: -1 or +1 (a binary classifier with one logit)
    """
    import numpy as np

    y = np.asarray(y)
    if num_classes == 1:
        bad = ~np.isin(y, (-1.0, 1.0))
        allowed = "-1 or +1 (a binary classifier with one logit)"
    else:
        bad = (y != np.round(y)) | (y < 0) | (y >= num_classes)
        allowed = f"integer classes 0..{num_classes - 1} (a classifier with {num_classes} logits)"
    if np.any(bad):
        first = y.ravel()[np.flatnonzero(bad.ravel())[0]].item()
        raise ValueError(f"{name} holds the label {first!r}; allowed: {allowed}")
