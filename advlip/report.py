"""Rendering check results: a readable table for people, JSON for machines.

Nothing here computes; it only formats :class:`advlip.theorems.CheckResult` objects.
"""

from __future__ import annotations

import json
import math
import platform
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax

from advlip.theorems.base import CheckResult, Result

__all__ = ["table", "bounds_section", "to_json", "write_json", "summary"]

_MARK = {"holds": "holds", "fails": "FAILS", "undetermined": "undetermined"}


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(results: Sequence[CheckResult], *, width: int = 150) -> str:
    """A fixed-width table: id, kind, verdict, headline figure, seconds."""
    headers = ("id", "kind", "verdict", "figure", "time")
    rows = [(r.id, r.kind, _MARK[r.verdict], r.figure, f"{r.elapsed_s:.1f}s") for r in results]
    fixed = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    fig_w = max(20, width - sum(fixed[i] for i in (0, 1, 2, 4)) - 8)
    fixed[3] = min(fixed[3], fig_w)
    line = lambda cells: "  ".join(  # noqa: E731
        _clip(c, w).ljust(w) for c, w in zip(cells, fixed, strict=True)
    ).rstrip()
    out = [line(headers), line(tuple("-" * w for w in fixed))]
    out += [line(row) for row in rows]
    notes = [r for r in results if r.verdict != "holds"]
    for r in notes:
        out.append("")
        out.append(f"{r.id}: {r.verdict.upper()} — {r.statement}")
        if r.reason:
            out.append(textwrap.indent(textwrap.fill(r.reason, width - 4), "    "))
        if r.worst:
            out.append(f"    witness/worst: {json.dumps(r.worst)[: width * 3]}")
        out.append(f"    replay: {r.replay}")
    return "\n".join(out)


def bounds_section(results: Sequence[Result]) -> str:
    """Each result's statement and, where it has one, its bound as SymPy prints it."""
    from advlip import symbolic

    lines = []
    for res in results:
        lines.append(f"{res.id}: {res.statement}")
        if res.bound is not None:
            lines.append(f"    bound: {symbolic.pretty(res.bound())}")
    return "\n".join(lines)


def summary(results: Sequence[CheckResult]) -> dict[str, int]:
    counts = {"holds": 0, "fails": 0, "undetermined": 0}
    for r in results:
        counts[r.verdict] += 1
    return counts


def to_json(
    results: Sequence[CheckResult], *, seed: int, quick: bool, registry: Sequence[Result] = ()
) -> dict[str, Any]:
    """The JSON document ``advlip verify --json`` writes."""
    from advlip import __version__

    bounds = {}
    if registry:
        bounds = {r.id: str(r.bound()) for r in registry if r.bound is not None}
    return {
        "advlip_version": __version__,
        "seed": seed,
        "quick": quick,
        "replay": f"advlip verify --seed {seed}" + (" --quick" if quick else ""),
        "environment": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "x64": bool(jax.config.jax_enable_x64),
        },
        "summary": summary(results),
        "results": [
            {**r.to_dict(), **({"bound": bounds[r.id]} if r.id in bounds else {})} for r in results
        ],
    }


def _strict(x: Any) -> Any:
    """``x`` with non-finite floats as the strings ``"nan"``, ``"inf"``, ``"-inf"``."""
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_strict(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def write_json(path: str | Path, document: dict[str, Any]) -> None:
    """Write ``document`` as strict JSON (a non-finite float becomes ``"nan"``/``"inf"``:
    JSON has no such numbers, and a verdict can hold one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_strict(document), indent=2, allow_nan=False) + "\n")
