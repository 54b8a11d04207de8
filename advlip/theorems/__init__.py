"""The registry of SPEC results: one object per id, each with a check.

Families: :mod:`advlip.theorems.linear` (SPEC §2), ``general`` (§3) and
``smoothing`` (§4) as they land. ``advlip verify`` runs :func:`all_results`.

Example:
    >>> from advlip import theorems
    >>> "LIN-L2" in theorems.ids()
    True
"""

from advlip.theorems.base import (
    CheckConfig,
    CheckResult,
    Result,
    all_results,
    get,
    ids,
    register,
)

__all__ = ["CheckConfig", "CheckResult", "Result", "all_results", "get", "ids", "register"]
