r"""Decreasing margin losses :math:`\ell(m)` and the constants the bounds need.

Each loss carries its value and first two derivatives in closed form (used by the
Danskin gradient and the Hessian of SPEC §2), its SymPy expression (used by
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

Example:
    >>> from advlip.losses import get_loss
    >>> get_loss("softplus").d2_max
    0.25
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import sympy as sp

__all__ = ["MarginLoss", "LOSSES", "get_loss"]


@dataclasses.dataclass(frozen=True)
class MarginLoss:
    """A convex, decreasing margin loss with closed-form derivatives.

    Attributes:
      name: registry name.
      value, d1, d2: :math:`\\ell`, :math:`\\ell'`, :math:`\\ell''` as JAX functions of the margin.
      d2_max, d1_abs_max: global suprema (``math.inf`` if unbounded).
      d2_sup, d1_abs_sup: suprema over a margin interval ``[lo, hi]`` (JAX-traceable).
      sympy: the loss as a SymPy expression of a margin symbol.
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
    """Look a loss up by name (``softplus``, ``exponential``, ``squared_hinge``)."""
    if isinstance(loss, MarginLoss):
        return loss
    try:
        return LOSSES[loss]
    except (KeyError, TypeError):
        raise ValueError(
            f"loss={loss!r} is not a known margin loss; allowed: {sorted(LOSSES)}"
        ) from None
