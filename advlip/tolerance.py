r"""The rounding-error model behind every tolerance advlip uses, for the dtype actually used.

Standard rounding-error analysis (Higham, *Accuracy and Stability of Numerical
Algorithms*, §3.1): with unit roundoff :math:`u` of the floating-point format, a
computation of :math:`k` floating-point operations on terms :math:`t_j` has an absolute
error at most :math:`\gamma_k \sum_j |t_j|`, :math:`\gamma_k = k u / (1 - k u)`. A
tolerance is that bound for the quantity compared, with ``k`` counted from the formula
and stated where it is used — never a number picked to make a check pass.

``u`` is that of the dtype the computation ran in: :math:`2^{-53}` for float64,
:math:`2^{-24}` for float32 (what flax and equinox initialise), :math:`2^{-8}` for
bfloat16. :func:`working_dtype` reads it off the arrays of a computation (the least
precise floating leaf decides, since every later operation inherits its rounding).

Examples:
    >>> import numpy as np
    >>> from advlip import tolerance
    >>> tolerance.gamma(10) > 10 * tolerance.UNIT_ROUNDOFF
    True
    >>> tolerance.unit_roundoff(np.float32) == 2.0**-24
    True
    >>> tolerance.working_dtype({"w": np.ones(3, np.float32), "b": np.zeros(1)})
    dtype('float32')
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

__all__ = [
    "UNIT_ROUNDOFF",
    "unit_roundoff",
    "working_dtype",
    "gamma",
    "underflow",
    "sum_error",
    "ratio_error",
    "PROBABILISTIC_LAMBDA",
]

#: Unit roundoff of IEEE float64, :math:`2^{-53} \approx 1.1 \times 10^{-16}`.
UNIT_ROUNDOFF: float = float(np.finfo(np.float64).eps) / 2.0


def unit_roundoff(dtype: Any = np.float64) -> float:
    r"""Unit roundoff :math:`u` of a floating dtype (half its machine epsilon).

    Raises ``TypeError`` naming the dtype when it is not a floating type.

    Examples:
        >>> import numpy as np
        >>> from advlip.tolerance import unit_roundoff
        >>> [unit_roundoff(t) == 2.0**-k for t, k in ((np.float64, 53), (np.float32, 24))]
        [True, True]
        >>> unit_roundoff("bfloat16") == 2.0**-8
        True
        >>> unit_roundoff(np.int32)
        Traceback (most recent call last):
            ...
        TypeError: dtype=int32 is not a floating dtype; allowed: float64, float32, float16, bfloat16
    """
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype={dtype!r} is not a dtype; allowed: a floating dtype") from err
    if not np.issubdtype(dt, np.floating) and dt.name != "bfloat16":
        raise TypeError(
            f"dtype={dt} is not a floating dtype; allowed: float64, float32, float16, bfloat16"
        )
    return float(jax.numpy.finfo(dt).eps) / 2.0


def working_dtype(*trees: Any) -> np.dtype:
    """The least precise floating dtype among the leaves of ``trees`` (float64 if none is floating).

    A computation that mixes float32 parameters with float64 data is only as accurate
    as float32: its inputs were rounded to 24 bits. Python scalars are skipped (JAX
    treats them as weakly typed, adopting the dtype of the arrays they meet).

    Examples:
        >>> import numpy as np
        >>> from advlip.tolerance import working_dtype
        >>> working_dtype({"w": np.ones(3, np.float32)}, np.zeros(4))   # float32 decides
        dtype('float32')
        >>> working_dtype(np.arange(3), 1.0)   # no floating array: float64
        dtype('float64')
    """
    worst = np.dtype(np.float64)
    for tree in trees:
        for leaf in jax.tree_util.tree_leaves(tree):
            if isinstance(leaf, bool | int | float | complex):
                continue
            dt = getattr(leaf, "dtype", None)
            if dt is None:
                continue
            dt = np.dtype(dt)
            if (np.issubdtype(dt, np.floating) or dt.name == "bfloat16") and unit_roundoff(
                dt
            ) > unit_roundoff(worst):
                worst = dt
    return worst


#: λ of the probabilistic bound :func:`gamma` falls back to (Higham & Mary 2019): each
#: chain of k operations stays within it with probability at least
#: :math:`1 - 2k\,e^{-\lambda^2(1-u)^2/2}` (about :math:`1 - 8 \cdot 10^{-15}` for
#: :math:`k = 2 \cdot 10^7`).
PROBABILISTIC_LAMBDA: float = 10.0


def gamma(k: int, dtype: Any = np.float64) -> float:
    r""":math:`\gamma_k = k u / (1 - k u)`: relative error bound of ``k`` chained operations in ``dtype``.

    Where :math:`k u \ge 1` the worst-case bound does not exist — float32 chains of
    :math:`2^{24}` operations, i.e. the dot products of a network with ~10⁷ parameters.
    There it returns Higham & Mary's probabilistic bound (SIAM J. Sci. Comput. 41(5),
    2019, Thm 2.4) :math:`\tilde\gamma_k(\lambda) = \exp(\lambda\sqrt{k}\,u + k u^2/(1-u)) - 1`
    with :math:`\lambda` = :data:`PROBABILISTIC_LAMBDA`, which holds unless the rounding
    errors conspire (probability :math:`\le 2k e^{-\lambda^2(1-u)^2/2}` under their model of
    mean-independent errors), and warns once that it did: a bound for float64 work never
    needs it below :math:`k = 9 \cdot 10^{15}`.

    Examples:
        >>> import numpy as np
        >>> from advlip.tolerance import gamma
        >>> float(gamma(10)) == 10 * 2.0**-53 / (1 - 10 * 2.0**-53)
        True
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     g = gamma(2 * 10**8, np.float32)  # k u = 12 > 1: probabilistic
        >>> 0 < g < 0.01, "Higham & Mary" in str(caught[0].message)
        (True, True)
    """
    u = unit_roundoff(dtype)
    ku = k * u
    if ku < 1:
        return ku / (1.0 - ku)
    import warnings

    warnings.warn(
        f"{k} chained {np.dtype(dtype).name} operations have no worst-case error bound "
        f"(k*u = {ku:.3g} >= 1); advlip uses the probabilistic bound of Higham & Mary (2019) "
        f"with lambda = {PROBABILISTIC_LAMBDA:g} instead. Compute in float64 for worst-case "
        "bounds (jax.config.update('jax_enable_x64', True) and cast params and X).",
        UserWarning,
        stacklevel=2,
    )
    lam = PROBABILISTIC_LAMBDA
    return math.expm1(lam * math.sqrt(k) * u + k * u * u / (1.0 - u))


def underflow(dtype: Any = np.float64) -> float:
    r"""Absolute error one operation can add by underflow: the smallest normal number of ``dtype``.

    The relative model :math:`\gamma_k` assumes no underflow; with it, each operation also
    carries an absolute error :math:`\eta` (Higham §2.1). XLA flushes subnormal results to
    zero on CPU and GPU, so :math:`|\eta|` is bounded by the smallest *normal* number
    (``finfo.tiny``: 2.2e-308 for float64, 1.2e-38 for float32), not the smallest subnormal.
    It matters only for quantities near that size, e.g. a gradient scaled by a tiny ε.

    Examples:
        >>> import numpy as np
        >>> from advlip.tolerance import underflow
        >>> underflow() == 2.0**-1022, underflow(np.float32) == 2.0**-126
        (True, True)
    """
    unit_roundoff(dtype)  # validates the dtype
    return float(jax.numpy.finfo(np.dtype(dtype)).tiny)


def sum_error(k: int, abs_terms: float, dtype: Any = np.float64) -> float:
    r"""Absolute error bound :math:`\gamma_k \sum|t_j|` of a ``k``-operation computation.

    Examples:
        >>> import numpy as np
        >>> from advlip.tolerance import sum_error
        >>> # a 3-term sum whose terms have absolute values adding to 10: 3u·10/(1 - 3u)
        >>> f"{sum_error(3, 10.0):.3e}", f"{sum_error(3, 10.0, np.float32):.3e}"
        ('3.331e-15', '1.788e-06')
    """
    return gamma(k, dtype) * float(abs_terms)


def ratio_error(
    grad_error: float, dtheta_norm: float, ratio: float, k: int = 8, dtype: Any = np.float64
) -> float:
    r"""Absolute error of :math:`R = \|g_1 - g_2\| / \|\theta_1 - \theta_2\|`.

    Each gradient carries an absolute error ``grad_error`` (per the caller's count),
    so the numerator is off by at most ``2 * grad_error``; the norms and the
    division add :math:`\gamma_k R`.

    Examples:
        >>> from advlip.tolerance import ratio_error
        >>> # gradients good to 1e-12, points 1e-3 apart, R = 5: 2e-12/1e-3 + γ_8·5
        >>> f"{ratio_error(1e-12, 1e-3, 5.0):.3e}"
        '2.000e-09'
    """
    return 2.0 * float(grad_error) / float(dtheta_norm) + gamma(k, dtype) * abs(float(ratio))
