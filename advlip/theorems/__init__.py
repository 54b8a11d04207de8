"""The registry of results: one object per check id, each with a check.

Families: :mod:`advlip.theorems.linear` (the linear model's closed form,
docs/theory/closed-form.md, and one page per LIN id), :mod:`advlip.theorems.general`
(general models, docs/theory/general-models.md) and :mod:`advlip.theorems.smoothing`
(EntropySGD's local entropy, docs/theory/entropy-smooth.md). ``advlip verify`` runs
:func:`all_results`; ``advlip verify --list`` prints :func:`ids`.

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
