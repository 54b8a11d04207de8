"""Shared timing helpers for the benchmarks (not a test: nothing here asserts a time).

Every benchmark checks its result is right before timing it, warms up (compiles)
first, blocks on the result (``block_until_ready``), and reports the median of
several repeats. Targets are ratios measured in the same run.
"""

from __future__ import annotations

import json
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


def device() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', '')} x{jax.device_count()} ({platform.machine()}, {platform.processor() or 'cpu'})"


def entry(
    name: str, *, ratio: float | None, target: float | None, met: bool | None, **extra: Any
) -> dict:
    return {"name": name, "ratio": ratio, "target": target, "met": met, "device": device(), **extra}


def markdown(rows: list[dict]) -> str:
    lines = ["| benchmark | ratio | target | met | notes |", "|---|---|---|---|---|"]
    for r in rows:
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.3g}"
        target = "—" if r["target"] is None else f"{r['target']:.3g}"
        met = {True: "yes", False: "**no**", None: "n/a"}[r["met"]]
        lines.append(f"| {r['name']} | {ratio} | {target} | {met} | {r.get('notes', '')} |")
    return "\n".join(lines)


def write(path: str | None, rows: list[dict]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"benchmarks": rows}, indent=2, default=float) + "\n")


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
