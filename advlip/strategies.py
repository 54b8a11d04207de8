r"""Hypothesis strategies for property tests of adversarial losses.

Each strategy draws one of the objects of docs/theory/index.md and
docs/theory/closed-form.md — a norm exponent ``p``, an
attack radius ε, weights ``w`` (generic, or deliberately close to the kinks where the
adversarial loss loses its gradient), datasets ``(X, y)``, margin-loss names, whole
:class:`advlip.linear.LinearProblem` instances, and pairs of weights for gradient
ratios — as NumPy float64 arrays (or Python floats and strings), ready for the
functions of :mod:`advlip.norms` and :mod:`advlip.linear`.

The weight *kinds* name the places the paper is about:

=============== ==================================================================
kind             what is drawn
=============== ==================================================================
``generic``      no zero coordinate, no tie of the largest :math:`|w_i|`, with margins
                 (both at least ``GENERIC_SEPARATION`` relative to :math:`\max|w_i|`)
``near_zero``    a generic direction with :math:`\|w\|_2` tiny (``1e-8 .. 1e-3``): LIN-L2-ZERO
``near_kink``    one coordinate at 0 or within ``1e-9 .. 1e-3`` (relative) of it: LIN-LINF
``near_tie``     the two largest :math:`|w_i|` equal or within ``1e-9 .. 1e-3`` (relative): LIN-L1
``exact_kink``   one coordinate exactly 0.0 (witness tests)
``exact_tie``    the two largest :math:`|w_i|` exactly equal (witness tests)
=============== ==================================================================

Every parameter is keyword-only except the ``dim`` of :func:`weights` and
:func:`weight_pairs`, and is checked when the strategy is created: a bad value raises
:class:`hypothesis.errors.InvalidArgument` naming the parameter. Parameters documented
as "an int or a strategy" are checked again on each drawn value.

Subnormal floats are never drawn: :mod:`advlip.tolerance` bounds rounding errors
relative to the magnitudes of the terms, which underflow would void.

Examples:
    A property of the adversarial loss's dual direction, checked at weights next to the
    L∞ kink (the doctest runs in the test suite; ``deadline=None`` because the first call
    compiles, ``derandomize=True`` so that every run draws the same weights):

    >>> from hypothesis import given, settings
    >>> from advlip import norms, strategies
    >>> @settings(max_examples=20, deadline=None, derandomize=True, database=None)
    ... @given(strategies.weights(3, kind="near_kink"))
    ... def test_dual_direction_is_a_sign_vector(w):
    ...     assert set(abs(norms.dual_direction(w, q=1.0)).tolist()) <= {0.0, 1.0}
    >>> test_dual_direction_is_a_sign_vector()
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from advlip.linear import LinearProblem
from advlip.losses import LOSSES

__all__ = [
    "WEIGHT_KINDS",
    "GENERIC_SEPARATION",
    "NEAR_GAP",
    "p_values",
    "epsilons",
    "weights",
    "weight_pairs",
    "datasets",
    "margin_losses",
    "linear_problems",
]

#: The kinds :func:`weights` draws.
WEIGHT_KINDS: tuple[str, ...] = (
    "generic",
    "near_zero",
    "near_kink",
    "near_tie",
    "exact_kink",
    "exact_tie",
)

#: A ``generic`` weight has :math:`|w_i| \ge` this times :math:`\max_j |w_j|` for every ``i``,
#: and its largest :math:`|w_i|` exceeds the second largest by at least this times the largest.
GENERIC_SEPARATION: float = 1e-3

#: Relative gap range of the ``near_kink`` / ``near_tie`` kinds (0 is drawn too).
NEAR_GAP: tuple[float, float] = (1e-9, 1e-3)

#: Norm range (Euclidean) used when ``min_norm`` / ``max_norm`` are not given.
_DEFAULT_NORMS = {kind: (0.1, 10.0) for kind in WEIGHT_KINDS} | {"near_zero": (1e-8, 1e-3)}

#: Special exponents (the standard threat models) and rational ones in between.
_SPECIAL_P = (1.0, 2.0, math.inf)
_RATIONAL_P = (4.0 / 3.0, 1.5, 3.0, 4.0, 6.0)

# Magnitudes of a direction are drawn in [_LOW, 1]; the largest is then pushed _LOW above
# the second. So min/max >= _LOW/(1+_LOW) and gap/max >= _LOW/(1+_LOW), both about 10x
# GENERIC_SEPARATION: the guarantee survives the final rescaling (a relative change of a
# few ulps) with room to spare.
_LOW = 1e-2
# Rest of a near_tie vector, kept clearly below the tied pair (1 - NEAR_GAP[1] > _TIE_REST).
_TIE_REST = 0.98
# Relative nudge used to move a rescaled vector's norm into [min_norm, max_norm] after rounding.
_NUDGE = 4.0 * float(np.finfo(np.float64).eps)

T = TypeVar("T")

# Default sizes of drawn datasets (module-level so every call shares one strategy object).
_DEFAULT_ROWS = st.integers(1, 8)
_DEFAULT_DIMS = st.integers(1, 4)


# --------------------------------------------------------------------------- argument checks


def _check_real(name: str, value: Any, *, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidArgument(f"{name}={value!r} must be a real number")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise InvalidArgument(f"{name}={value!r} must be a finite real number")
    return value


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidArgument(f"{name}={value!r} must be an int (or a strategy of ints)")
    if value < minimum:
        raise InvalidArgument(f"{name}={value!r} must be >= {minimum}")
    return int(value)


def _check_int_or_strategy(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, st.SearchStrategy):
        _check_int(name, value, minimum)


def _resolve(draw: Any, value: T | st.SearchStrategy[T]) -> T:
    return draw(value) if isinstance(value, st.SearchStrategy) else value


def _check_norm_range(kind: str, min_norm: Any, max_norm: Any) -> tuple[float, float]:
    lo_default, hi_default = _DEFAULT_NORMS[kind]
    lo = lo_default if min_norm is None else _check_real("min_norm", min_norm)
    hi = hi_default if max_norm is None else _check_real("max_norm", max_norm)
    if lo <= 0:
        raise InvalidArgument(
            f"min_norm={lo!r} must be > 0 (w = 0 is its own case: docs/theory/lin-l2-zero.md)"
        )
    if hi < lo:
        raise InvalidArgument(f"max_norm={hi!r} must be >= min_norm={lo!r}")
    return lo, hi


# --------------------------------------------------------------------------- scalars


def p_values(
    *, include_special: bool = True, min_p: float = 1.0, max_p: float | None = None
) -> st.SearchStrategy[float]:
    r"""Norm exponents ``p`` in ``[min_p, max_p]`` as Python floats (``math.inf`` for ∞).

    Draws the standard threat models 1, 2 and ∞ (when ``include_special`` and in range),
    rationals such as 4/3, 1.5, 3, 4, 6, and any float in between (up to 10 when
    ``max_p`` is ∞ or None). Exponents close to 1 have a huge dual exponent
    :math:`q = p/(p-1)`: the problems they make are ill-conditioned on purpose.

    Args:
      include_special: whether 1, 2 and ∞ may be drawn; False excludes them exactly.
      min_p: smallest exponent, finite, >= 1.
      max_p: largest exponent, >= ``min_p``; None or ``math.inf`` for no upper bound.

    Examples:
        The L2 radius of the unit Lp ball in 4 dimensions lies between 1 (p ≤ 2) and
        √4 = 2 (p = ∞), for every drawn ``p``:

        >>> from hypothesis import given, settings
        >>> from advlip import strategies
        >>> from advlip.norms import l2_radius
        >>> @settings(max_examples=20, deadline=None, derandomize=True, database=None)
        ... @given(strategies.p_values())
        ... def test_l2_radius_of_the_threat_model(p):
        ...     assert 1.0 <= l2_radius(4, p) <= 2.0
        >>> test_l2_radius_of_the_threat_model()
        >>> strategies.p_values(min_p=2.0, max_p=1.5)
        Traceback (most recent call last):
            ...
        hypothesis.errors.InvalidArgument: max_p=1.5 must be >= min_p=2.0
    """
    if not isinstance(include_special, bool):
        raise InvalidArgument(f"include_special={include_special!r} must be a bool")
    lo = _check_real("min_p", min_p)
    if lo < 1:
        raise InvalidArgument(f"min_p={min_p!r} must be >= 1 (no Lp norm for p < 1)")
    hi = math.inf if max_p is None else _check_real("max_p", max_p, allow_inf=True)
    if hi < lo:
        raise InvalidArgument(f"max_p={max_p!r} must be >= min_p={lo!r}")
    if not include_special and lo == hi and lo in _SPECIAL_P:
        raise InvalidArgument(
            f"min_p = max_p = {lo!r} is a special exponent, but include_special=False excludes it"
        )
    return _p_values(include_special, lo, hi)


@st.composite
def _p_values(draw: Any, include_special: bool, lo: float, hi: float) -> float:
    float_hi = hi if math.isfinite(hi) else max(10.0, 2.0 * lo)
    choices = [st.floats(lo, float_hi)]
    rationals = [p for p in _RATIONAL_P if lo <= p <= hi]
    if rationals:
        choices.insert(0, st.sampled_from(rationals))
    if include_special:
        specials = [p for p in _SPECIAL_P if lo <= p <= hi]
        if specials:
            choices.insert(0, st.sampled_from(specials))
    strategy = st.one_of(choices)
    if not include_special:
        strategy = strategy.filter(lambda p: p not in _SPECIAL_P)
    return float(draw(strategy))


def epsilons(
    *, min_eps: float = 0.0, max_eps: float = 1.0, allow_zero: bool = True
) -> st.SearchStrategy[float]:
    r"""Attack radii ε in ``[min_eps, max_eps]`` as Python floats (never subnormal).

    Args:
      min_eps: smallest radius, finite, >= 0.
      max_eps: largest radius, finite, >= ``min_eps``.
      allow_zero: whether ε = 0 (no attack: the loss is then smooth everywhere) may be drawn.

    Examples:
        >>> from hypothesis import given, settings
        >>> from advlip import strategies
        >>> @settings(max_examples=20, deadline=None, derandomize=True, database=None)
        ... @given(strategies.epsilons(max_eps=0.5, allow_zero=False))
        ... def test_a_real_attack(eps):
        ...     assert isinstance(eps, float) and 0.0 < eps <= 0.5
        >>> test_a_real_attack()
    """
    lo = _check_real("min_eps", min_eps)
    hi = _check_real("max_eps", max_eps)
    if lo < 0:
        raise InvalidArgument(f"min_eps={min_eps!r} must be >= 0")
    if hi < lo:
        raise InvalidArgument(f"max_eps={max_eps!r} must be >= min_eps={lo!r}")
    if not isinstance(allow_zero, bool):
        raise InvalidArgument(f"allow_zero={allow_zero!r} must be a bool")
    if not allow_zero and hi == 0:
        raise InvalidArgument("max_eps=0 leaves only eps = 0, but allow_zero=False excludes it")
    return st.floats(lo, hi, exclude_min=(lo == 0 and not allow_zero), allow_subnormal=False)


def margin_losses() -> st.SearchStrategy[str]:
    """Names of the margin losses in :data:`advlip.losses.LOSSES` (shrinking to ``softplus``).

    Examples:
        Every margin loss is decreasing where the margin is 0:

        >>> import jax.numpy as jnp
        >>> from hypothesis import given, settings
        >>> from advlip import strategies
        >>> from advlip.losses import get_loss
        >>> @settings(max_examples=20, deadline=None, derandomize=True, database=None)
        ... @given(strategies.margin_losses())
        ... def test_decreasing(name):
        ...     assert float(get_loss(name).d1(jnp.array(0.0))) < 0
        >>> test_decreasing()
    """
    return st.sampled_from(tuple(LOSSES))


# --------------------------------------------------------------------------- weights


def weights(
    dim: int | st.SearchStrategy[int],
    *,
    kind: str = "generic",
    min_norm: float | None = None,
    max_norm: float | None = None,
) -> st.SearchStrategy[np.ndarray]:
    r"""Weight vectors ``w`` of shape ``(dim,)``, float64, of a given ``kind``.

    ``min_norm <= ‖w‖₂ <= max_norm`` always (as ``numpy.linalg.norm`` computes it);
    the defaults are ``1e-8 .. 1e-3`` for ``near_zero`` and ``0.1 .. 10`` otherwise.
    Signs are random. The kinds (see the module docstring):

    * ``generic``: :math:`|w_i| \ge s\max_j|w_j|` for all ``i`` and the largest
      :math:`|w_i|` exceeds the others by :math:`\ge s\max_j|w_j|`, ``s = GENERIC_SEPARATION``:
      every :math:`\|w\|_q` is twice differentiable on a neighbourhood of relative radius
      ``s``, so the kinks of docs/theory/closed-form.md (``w_i = 0`` for p = ∞, ties for
      p = 1) are that far.
    * ``near_zero``: as generic, with a tiny norm.
    * ``near_kink`` / ``exact_kink``: one coordinate ``k`` (at a random position) has
      :math:`|w_k| = t \max_j|w_j|`, ``t`` = 0 or in ``NEAR_GAP`` (near) / ``t = 0`` (exact);
      the other coordinates are generic (nonzero, their largest unique).
    * ``near_tie`` / ``exact_tie``: two coordinates hold the largest :math:`|w_i|`, the second
      :math:`(1 - t)` times the first, ``t`` = 0 or in ``NEAR_GAP`` / ``t = 0``; the rest are
      nonzero and at most 0.98 times the largest.

    Args:
      dim: the dimension ``d``, an int or a strategy of ints; >= 1, and >= 2 for the
        kink and tie kinds.
      kind: one of :data:`WEIGHT_KINDS`.
      min_norm: the smallest :math:`\|w\|_2`, ``0 < min_norm <= max_norm``.
      max_norm: the largest :math:`\|w\|_2`, finite.

    Examples:
        Every ``exact_tie`` weight is a point where the L1-attack loss has no gradient
        (docs/theory/lin-l1.md), and every ``generic`` one is not:

        >>> import numpy as np
        >>> from hypothesis import given, settings
        >>> from advlip import strategies
        >>> from advlip.linear import nondifferentiable_reason
        >>> @settings(max_examples=20, deadline=None, derandomize=True, database=None)
        ... @given(strategies.weights(3, kind="exact_tie"), strategies.weights(3))
        ... def test_ties_are_kinks(tie, generic):
        ...     top = np.sort(np.abs(tie))[-2:]
        ...     assert top[0] == top[1] and 0.1 <= np.linalg.norm(tie) <= 10.0
        ...     assert nondifferentiable_reason(tie, eps=0.1, p=1.0) is not None
        ...     assert nondifferentiable_reason(generic, eps=0.1, p=1.0) is None
        >>> test_ties_are_kinks()
    """
    if kind not in WEIGHT_KINDS:
        raise InvalidArgument(f"kind={kind!r} is not one of {list(WEIGHT_KINDS)}")
    min_dim = 1 if kind in ("generic", "near_zero") else 2
    _check_int_or_strategy("dim", dim, min_dim)
    lo, hi = _check_norm_range(kind, min_norm, max_norm)
    return _weights(dim, kind, lo, hi, min_dim)


def _magnitudes(draw: Any, d: int, top: float = 1.0) -> np.ndarray:
    """``d`` magnitudes in ``[_LOW, top]`` whose largest exceeds the others by ``>= _LOW``."""
    if d == 0:
        return np.zeros(0)
    mags = draw(hnp.arrays(np.float64, d, elements=st.floats(_LOW, top)))
    if d > 1:
        k = int(np.argmax(mags))
        second = np.max(np.delete(mags, k))
        mags[k] = max(mags[k], second + _LOW)
    return mags


def _gap(draw: Any, exact: bool) -> float:
    if exact:
        return 0.0
    lo, hi = (math.log10(g) for g in NEAR_GAP)
    return draw(st.one_of(st.just(0.0), st.floats(lo, hi).map(lambda e: 10.0**e)))


def _rescale(v: np.ndarray, norm: float, lo: float, hi: float) -> np.ndarray:
    """``v`` scaled to Euclidean norm ``norm``, nudged by a few ulps into ``[lo, hi]``."""
    w = v * (norm / np.linalg.norm(v))
    for _ in range(8):
        n = np.linalg.norm(w)
        if n < lo:
            w = w * (1.0 + _NUDGE)
        elif n > hi:
            w = w * (1.0 - _NUDGE)
        else:
            break
    return w


def _norms_between(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Log-uniform-ish norms in ``[lo, hi]``, endpoints included."""
    if lo == hi:
        return st.just(lo)
    a, b = math.log10(lo), math.log10(hi)
    return st.floats(a, b).map(lambda e: min(max(10.0**e, lo), hi))


@st.composite
def _weights(draw: Any, dim: Any, kind: str, lo: float, hi: float, min_dim: int) -> np.ndarray:
    d = _check_int("dim", _resolve(draw, dim), min_dim)
    if kind in ("generic", "near_zero"):
        mags = _magnitudes(draw, d)
    else:
        perm = draw(st.permutations(range(d)))
        t = _gap(draw, exact=kind.startswith("exact"))
        mags = np.empty(d)
        if kind.endswith("kink"):
            rest = _magnitudes(draw, d - 1)
            mags[perm[1:]] = rest
            mags[perm[0]] = t * np.max(rest)
        else:  # a tie of the two largest
            mags[perm[2:]] = draw(
                hnp.arrays(np.float64, d - 2, elements=st.floats(_LOW, _TIE_REST))
            )
            mags[perm[0]] = 1.0
            mags[perm[1]] = 1.0 - t
    signs = draw(hnp.arrays(np.bool_, d))
    v = np.where(signs, -mags, mags)
    w = _rescale(v, draw(_norms_between(lo, hi)), lo, hi)
    return draw(st.just(w).filter(lambda w: lo <= np.linalg.norm(w) <= hi))


def weight_pairs(
    dim: int | st.SearchStrategy[int],
    *,
    min_norm: float = 0.1,
    max_norm: float = 10.0,
    min_rel_dist: float = 1e-6,
    max_rel_dist: float = 2.0,
) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    r"""Pairs ``(w1, w2)`` of distinct weights for gradient ratios :math:`R(w_1, w_2)`
    (docs/theory/index.md).

    ``w1`` is a ``generic`` weight with ``min_norm <= ‖w1‖₂ <= max_norm``;
    ``w2 = w1 + r ‖w1‖₂ v`` for a random unit direction ``v`` and a relative distance
    ``r`` in ``[min_rel_dist, max_rel_dist]`` (drawn log-uniformly, so pairs from nearly
    equal to far apart). Both satisfy ``‖w‖₂ >= min_norm`` — the region
    :math:`\{\|w\| \ge r\}` of LIN-L2 (docs/theory/lin-l2.md) — and
    ``‖w2‖₂ <= (1 + max_rel_dist) max_norm``.
    ``w2`` need not be generic.

    Args:
      dim: the dimension, an int or a strategy of ints, >= 1.
      min_norm: the smallest ``‖w1‖₂``, ``0 < min_norm <= max_norm``.
      max_norm: the largest ``‖w1‖₂``, finite.
      min_rel_dist: the smallest ``‖w1 - w2‖₂ / ‖w1‖₂``, ``0 < min_rel_dist <= max_rel_dist``.
      max_rel_dist: the largest ``‖w1 - w2‖₂ / ‖w1‖₂``, finite.

    Examples:
        >>> import numpy as np
        >>> from hypothesis import given, settings
        >>> from advlip import strategies
        >>> @settings(max_examples=20, deadline=None, derandomize=True, database=None)
        ... @given(strategies.weight_pairs(3, min_norm=1.0))
        ... def test_pairs_stay_in_the_region(pair):
        ...     w1, w2 = pair
        ...     assert min(np.linalg.norm(w1), np.linalg.norm(w2)) >= 1.0
        ...     assert not np.array_equal(w1, w2)
        >>> test_pairs_stay_in_the_region()
    """
    _check_int_or_strategy("dim", dim, 1)
    lo, hi = _check_norm_range("generic", min_norm, max_norm)
    rlo = _check_real("min_rel_dist", min_rel_dist)
    rhi = _check_real("max_rel_dist", max_rel_dist)
    if rlo <= 0:
        raise InvalidArgument(f"min_rel_dist={min_rel_dist!r} must be > 0 (the pair must differ)")
    if rhi < rlo:
        raise InvalidArgument(f"max_rel_dist={max_rel_dist!r} must be >= min_rel_dist={rlo!r}")
    return _weight_pairs(dim, lo, hi, rlo, rhi)


@st.composite
def _weight_pairs(
    draw: Any, dim: Any, lo: float, hi: float, rlo: float, rhi: float
) -> tuple[np.ndarray, np.ndarray]:
    d = _check_int("dim", _resolve(draw, dim), 1)
    w1 = draw(_weights(d, "generic", lo, hi, 1))
    direction = draw(
        hnp.arrays(np.float64, d, elements=st.floats(-1.0, 1.0, allow_subnormal=False)).filter(
            lambda v: np.linalg.norm(v) >= 0.5
        )
    )
    r = draw(_norms_between(rlo, rhi))
    w2 = w1 + (r * np.linalg.norm(w1) / np.linalg.norm(direction)) * direction
    return draw(st.just((w1, w2)).filter(lambda pair: np.linalg.norm(pair[1]) >= lo))


# --------------------------------------------------------------------------- data and problems


def datasets(
    *,
    n: int | st.SearchStrategy[int] = _DEFAULT_ROWS,
    d: int | st.SearchStrategy[int] = _DEFAULT_DIMS,
    x_scale: float = 1.0,
) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    r"""Datasets ``(X, y)``: ``X`` float64 of shape ``(n, d)`` with entries in
    ``[-x_scale, x_scale]``, ``y`` float64 of shape ``(n,)`` with labels in {-1, +1}
    (any mix, one class only included).

    Args:
      n: number of examples, an int or a strategy of ints, >= 1.
      d: input dimension, an int or a strategy of ints, >= 1.
      x_scale: bound on :math:`|X_{ij}|`, finite, > 0.

    Examples:
        >>> import numpy as np
        >>> from hypothesis import given, settings
        >>> from advlip import strategies
        >>> @settings(max_examples=20, deadline=None, derandomize=True, database=None)
        ... @given(strategies.datasets(n=5, d=2, x_scale=0.5))
        ... def test_dataset(data):
        ...     X, y = data
        ...     assert X.shape == (5, 2) and np.abs(X).max() <= 0.5
        ...     assert set(y.tolist()) <= {-1.0, 1.0}
        >>> test_dataset()
    """
    _check_int_or_strategy("n", n, 1)
    _check_int_or_strategy("d", d, 1)
    scale = _check_real("x_scale", x_scale)
    if scale <= 0:
        raise InvalidArgument(f"x_scale={x_scale!r} must be > 0")
    return _datasets(n, d, scale)


@st.composite
def _datasets(draw: Any, n: Any, d: Any, scale: float) -> tuple[np.ndarray, np.ndarray]:
    n_ = _check_int("n", _resolve(draw, n), 1)
    d_ = _check_int("d", _resolve(draw, d), 1)
    elements = st.floats(-scale, scale, allow_subnormal=False)
    X = draw(hnp.arrays(np.float64, (n_, d_), elements=elements))
    y = draw(hnp.arrays(np.float64, n_, elements=st.sampled_from([-1.0, 1.0])))
    return X, y


def linear_problems(
    *,
    n: int | st.SearchStrategy[int] = _DEFAULT_ROWS,
    d: int | st.SearchStrategy[int] = _DEFAULT_DIMS,
    x_scale: float = 1.0,
    eps: float | st.SearchStrategy[float] | None = None,
    p: float | st.SearchStrategy[float] | None = None,
    loss: str | st.SearchStrategy[str] | None = None,
    b: float | st.SearchStrategy[float] = 0.0,
    fit_bias: bool | st.SearchStrategy[bool] = False,
) -> st.SearchStrategy[LinearProblem]:
    r"""Instances of :class:`advlip.linear.LinearProblem` on a drawn dataset.

    Every argument is a value or a strategy; None means the default strategy:
    ``eps`` from :func:`epsilons`, ``p`` from :func:`p_values`, ``loss`` from
    :func:`margin_losses`. ``n``, ``d``, ``x_scale`` are passed to :func:`datasets`.
    ``b`` is the (fixed) bias, used as the bias's value when ``fit_bias`` is False.

    Examples:
        >>> from hypothesis import given, settings
        >>> from advlip import strategies
        >>> @settings(max_examples=20, deadline=None, derandomize=True, database=None)
        ... @given(strategies.linear_problems(d=2, p=2.0, fit_bias=True))
        ... def test_theta_holds_the_weights_and_the_bias(prob):
        ...     assert prob.p == 2.0 and prob.d == 2 and prob.dim == 3
        >>> test_theta_holds_the_weights_and_the_bias()
    """
    dataset_strategy = datasets(n=n, d=d, x_scale=x_scale)
    if eps is None:
        eps = epsilons()
    elif not isinstance(eps, st.SearchStrategy):
        if _check_real("eps", eps) < 0:
            raise InvalidArgument(f"eps={eps!r} must be >= 0")
    if p is None:
        p = p_values()
    elif not isinstance(p, st.SearchStrategy):
        if _check_real("p", p, allow_inf=True) < 1:
            raise InvalidArgument(f"p={p!r} must be >= 1")
    if loss is None:
        loss = margin_losses()
    elif not isinstance(loss, st.SearchStrategy) and loss not in LOSSES:
        raise InvalidArgument(f"loss={loss!r} is not one of {sorted(LOSSES)}")
    if not isinstance(b, st.SearchStrategy):
        _check_real("b", b)
    if not isinstance(fit_bias, st.SearchStrategy | bool):
        raise InvalidArgument(f"fit_bias={fit_bias!r} must be a bool (or a strategy of bools)")
    return _linear_problems(dataset_strategy, eps, p, loss, b, fit_bias)


@st.composite
def _linear_problems(
    draw: Any, dataset_strategy: Any, eps: Any, p: Any, loss: Any, b: Any, fit_bias: Any
) -> LinearProblem:
    X, y = draw(dataset_strategy)
    return LinearProblem(
        X=X,
        y=y,
        eps=float(_resolve(draw, eps)),
        p=float(_resolve(draw, p)),
        loss=_resolve(draw, loss),
        b=float(_resolve(draw, b)),
        fit_bias=bool(_resolve(draw, fit_bias)),
    )
