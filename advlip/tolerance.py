r"""The float64 error model behind every tolerance advlip uses.

Standard rounding-error analysis (Higham, *Accuracy and Stability of Numerical
Algorithms*, §3.1): with unit roundoff :math:`u = 2^{-53}`, a computation of
:math:`k` floating-point operations on terms :math:`t_j` has an absolute error at most
:math:`\gamma_k \sum_j |t_j|`, :math:`\gamma_k = k u / (1 - k u)`. A tolerance is that
bound for the quantity compared, with ``k`` counted from the formula and stated
where it is used — never a number picked to make a check pass.

Example:
    >>> from advlip import tolerance
    >>> tolerance.gamma(10) > 10 * tolerance.UNIT_ROUNDOFF
    True
"""

from __future__ import annotations

import numpy as np

__all__ = ["UNIT_ROUNDOFF", "gamma", "sum_error", "ratio_error"]

#: Unit roundoff of IEEE float64, :math:`2^{-53} \approx 1.1 \times 10^{-16}`.
UNIT_ROUNDOFF: float = float(np.finfo(np.float64).eps) / 2.0


def gamma(k: int) -> float:
    r""":math:`\gamma_k = k u / (1 - k u)`: relative error bound of ``k`` chained float64 operations."""
    ku = k * UNIT_ROUNDOFF
    if ku >= 1:
        raise ValueError(f"k={k} operations is too many for a float64 error bound (k*u >= 1)")
    return ku / (1.0 - ku)


def sum_error(k: int, abs_terms: float) -> float:
    r"""Absolute error bound :math:`\gamma_k \sum|t_j|` of a ``k``-operation computation."""
    return gamma(k) * float(abs_terms)


def ratio_error(grad_error: float, dtheta_norm: float, ratio: float, k: int = 8) -> float:
    r"""Absolute error of :math:`R = \|g_1 - g_2\| / \|\theta_1 - \theta_2\|`.

    Each gradient carries an absolute error ``grad_error`` (per the caller's count),
    so the numerator is off by at most ``2 * grad_error``; the norms and the
    division add :math:`\gamma_k R`.
    """
    return 2.0 * float(grad_error) / float(dtheta_norm) + gamma(k) * abs(float(ratio))
