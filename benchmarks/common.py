"""Shared timing helpers for the benchmarks (not a test: nothing here asserts a time).

Every benchmark checks its result is right before timing it, warms up (compiles)
first, blocks on the result (``block_until_ready``), and reports the median of
several repeats. Targets are ratios measured in the same run.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

# The benchmarks time advlip's float64 verification path (importing advlip changes no
# JAX setting), so every benchmark process turns float64 on here, before any array.
jax.config.update("jax_enable_x64", True)


def block(x: Any) -> Any:
    return jax.tree.map(
        lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, x
    )


def timeit(
    fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1, min_time: float = 0.05
) -> float:
    """Median seconds of one call (after ``warmup`` calls; each sample loops to ``min_time``)."""
    for _ in range(warmup):
        block(fn())
    samples = []
    for _ in range(repeat):
        n, start = 0, time.perf_counter()
        while True:
            block(fn())
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        samples.append(elapsed / n)
    return statistics.median(samples)


def fit_exponent(xs, ts) -> float:
    """Slope of log t against log x (least squares)."""
    return float(np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ts, float)), 1)[0])


def exponent_stderr(xs, ts) -> float:
    """Standard error of :func:`fit_exponent`'s slope, from the fit's residuals (``nan`` with
    fewer than three points): how far noise in the timings can move the exponent."""
    lx, lt = np.log(np.asarray(xs, float)), np.log(np.asarray(ts, float))
    if lx.size < 3:
        return float("nan")
    slope, icpt = np.polyfit(lx, lt, 1)
    resid = lt - (slope * lx + icpt)
    return float(np.sqrt(resid @ resid / (lx.size - 2) / np.sum((lx - lx.mean()) ** 2)))


def device() -> str:
    d = jax.devices()[0]
    return (
        f"{d.platform}:{getattr(d, 'device_kind', '')} x{jax.device_count()} "
        f"({platform.machine()}, {platform.processor() or 'cpu'})"
    )


def versions() -> dict[str, str]:
    """Python and the packages whose versions move the figures (``"not installed"`` if absent)."""
    out = {"python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "numpy", "torch", "advlip"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def meta(command: str) -> dict[str, Any]:
    """What a reader needs to judge a run: device, date, command, versions, CPUs and load."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "device": device(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "versions": versions(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(load) if load else None,
    }


def entry(
    name: str,
    *,
    ratio: float | None,
    target: float | None,
    met: bool | None,
    goal: str | None = None,
    **extra: Any,
) -> dict:
    """One result row. ``goal`` says which way the target points (``"≥"``, ``"≤"``, ``">"``,
    ``"<"``); a row without a target (``target=None``, ``met=None``) says why in ``notes``."""
    row = {"name": name, "ratio": ratio, "target": target, "met": met, "device": device()}
    if goal is not None:
        row["goal"] = goal
    return {**row, **extra}


def target_text(row: dict) -> str:
    """The target as a reader needs it: ``"≥ 20"``, ``"≤ 1"``, or ``"—"`` for none."""
    if row["target"] is None:
        return "—"
    goal = row.get("goal")
    return f"{goal} {row['target']:.3g}" if goal else f"{row['target']:.3g}"


def cell(text: Any) -> str:
    """``text`` safe inside a Markdown table cell: ``|`` escaped, newlines as spaces."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table: name, ratio, target, met (yes / **no** / n/a), notes."""
    lines = ["| benchmark | ratio | target | met | notes |", "|---|---|---|---|---|"]
    for r in rows:
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.3g}"
        target = target_text(r)
        met = {True: "yes", False: "**no**", None: "n/a"}[r["met"]]
        lines.append(
            f"| {cell(r['name'])} | {ratio} | {target} | {met} | {cell(r.get('notes', ''))} |"
        )
    return "\n".join(lines)


def write(path: str | None, rows: list[dict], info: dict | None = None) -> None:
    """``{"benchmarks": rows}`` (and ``"meta": info`` when given) as JSON at ``path``."""
    if path:
        doc: dict[str, Any] = {"benchmarks": rows}
        if info is not None:
            doc["meta"] = info
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(doc, indent=2, default=float) + "\n")


def main(run: Callable[[bool], list[dict]], doc: str, argv=None) -> int:
    """The command line every benchmark shares: ``[--quick] [--json PATH]``, table on stdout."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    rows = run(args.quick)
    print(markdown(rows))
    write(args.json, rows)
    return 0
