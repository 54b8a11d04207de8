"""Write benchmarks/RESULTS.md from the JSON of ``run_all.py`` (never by hand).

    python benchmarks/run_all.py --quick --json bench.json
    python benchmarks/results_md.py bench.json [--gpu benchmarks/results/gpu-*.json] \\
        > benchmarks/RESULTS.md

The report: the device, date, command, versions (Python, JAX, jaxlib, NumPy, PyTorch) and
load of the run; a summary (rows met, not met, without a target) and the rows not met;
the table of every row (name, ratio, target, met, notes); a GPU section — the figures of
each GPU JSON given (``benchmarks/gpu.sh`` writes them, device named), else a line
saying they are missing and how to produce them; and benchmarks/NOTES.md, the
hand-written analysis, verbatim.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cell, markdown, target_text  # noqa: E402

HERE = Path(__file__).resolve().parent
NOTES = HERE / "NOTES.md"
GPU_COMMAND = "bash benchmarks/gpu.sh"
GPU_MISSING = "**GPU figures: missing.**"
REGENERATE = (
    "python benchmarks/run_all.py --quick --json bench.json && "
    "python benchmarks/results_md.py bench.json > benchmarks/RESULTS.md"
)


def load(path: str | Path) -> dict:
    """A benchmark JSON: ``{"benchmarks": [...]}`` with ``meta`` (run_all) or ``device`` and
    ``command`` at the top (a single benchmark's own ``--json``, e.g. the GPU benchmark).

    Raises:
        ValueError: ``path`` holds no ``benchmarks`` list of rows.
    """
    doc = json.loads(Path(path).read_text())
    rows = doc.get("benchmarks") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "name" in r for r in rows):
        raise ValueError(
            f"path={str(path)!r} is not a benchmark JSON; allowed: "
            '{"benchmarks": [{"name", "ratio", "target", "met", ...}, ...]}'
        )
    doc.setdefault("meta", {})
    doc["source"] = str(path)
    return doc


def _meta_line(doc: dict) -> str:
    m = doc.get("meta") or {}
    device = m.get("device") or doc.get("device") or _first(doc, "device") or "unknown device"
    command = m.get("command") or doc.get("command") or _first(doc, "command") or "unknown"
    parts = [f"Taken with `{command}` on **{device}**"]
    if m.get("date"):
        parts.append(f", {m['date']}")
    line = "".join(parts) + "."
    if doc.get("source"):
        line += f" Figures from `{doc['source']}`."
    extra = []
    if m.get("cpu_count"):
        extra.append(f"{m['cpu_count']} CPUs")
    if m.get("load_average_at_start"):
        extra.append(f"load average {m['load_average_at_start'][0]:.1f} at the start")
    if m.get("wall_s") is not None:
        extra.append(f"{m['wall_s'] / 60:.1f} min in all")
    if extra:
        text = "; ".join(extra)
        line += " " + text[0].upper() + text[1:] + "."
    v = m.get("versions")
    if v:
        names = (
            ("python", "Python"),
            ("jax", "JAX"),
            ("jaxlib", "jaxlib"),
            ("numpy", "NumPy"),
            ("torch", "PyTorch"),
            ("advlip", "advlip"),
        )
        line += " Versions: " + ", ".join(f"{label} {v[k]}" for k, label in names if k in v) + "."
    return line


def _first(doc: dict, key: str):
    return next((r[key] for r in doc["benchmarks"] if r.get(key)), None)


def summary(rows: list[dict]) -> str:
    """Counts of rows met / not met / without a target, and the names of those not met."""
    met = sum(r["met"] is True for r in rows)
    missed = [r for r in rows if r["met"] is False]
    none = sum(r["met"] is None for r in rows)
    lines = [
        f"{len(rows)} rows: **{met} met, {len(missed)} not met**, {none} without a verdict "
        "(no target, or not run: the notes say why)."
    ]
    if missed:
        lines.append("")
        lines.append("Not met:")
        lines.append("")
        for r in missed:
            ratio = "—" if r["ratio"] is None else f"{r['ratio']:.3g}"
            lines.append(f"- {cell(r['name'])}: {ratio} (target {target_text(r)})")
    return "\n".join(lines)


def gpu_section(gpu: list[dict], cpu_json: str = "bench.json") -> str:
    """The GPU figures of each GPU JSON, or the line saying they are missing and how to take
    them (``cpu_json``: the run's JSON, for the command that regenerates the report)."""
    if not gpu:
        return (
            f"{GPU_MISSING} No GPU was available to the run above. To take them, on a machine "
            f'with a CUDA GPU and `pip install "jax[cuda12]"` beside advlip, run '
            f"`{GPU_COMMAND}` (ResNet-18 on CIFAR-10 from `$CIFAR10_DIR`, else synthetic "
            "images; float32; `N=32` for a first session): it prints the device and writes "
            "`benchmarks/results/gpu-*.json`; then regenerate this file with "
            f"`python benchmarks/results_md.py {cpu_json} --gpu benchmarks/results/gpu-….json "
            "> benchmarks/RESULTS.md`."
        )
    out = []
    for doc in gpu:
        run = doc.get("run") or {}
        kind = run.get("device_kind")
        device = doc.get("device") or _first(doc, "device") or "unknown device"
        label = f"{device}" + (f" ({kind})" if kind and kind not in device else "")
        out.append(f"### {label}")
        out.append("")
        out.append(
            f"`{doc.get('command') or _first(doc, 'command') or 'unknown command'}` → `{doc['source']}`"
        )
        out.append("")
        out.append(markdown(doc["benchmarks"]))
        out.append("")
    return "\n".join(out).rstrip()


def render(doc: dict, gpu: list[dict] | None = None, notes: Path | None = NOTES) -> str:
    """RESULTS.md for the run ``doc`` (and the GPU runs ``gpu``), NOTES.md appended."""
    rows = doc["benchmarks"]
    parts = [
        "# Benchmark results",
        "",
        "<!-- Generated by benchmarks/results_md.py from the JSON of benchmarks/run_all.py; "
        "edit benchmarks/NOTES.md, not this file. -->",
        "",
        _meta_line(doc),
        "",
        "Every ratio is measured within one run, against a baseline or a hardware limit measured "
        "in the same run; nothing in the test suite asserts a time. On a shared machine ratios "
        f"move between runs; take your own figures with `{REGENERATE}`.",
        "",
        "## Summary",
        "",
        summary(rows),
        "",
        "## Every row",
        "",
        markdown(rows),
        "",
        "## GPU",
        "",
        gpu_section(gpu or [], doc.get("source") or "bench.json"),
    ]
    if notes is not None and Path(notes).is_file():
        parts += ["", "## Notes", "", Path(notes).read_text().strip()]
    return "\n".join(parts) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", help="the JSON of run_all.py (--json)")
    ap.add_argument(
        "--gpu", action="append", default=[], metavar="PATH",
        help="a GPU benchmark JSON (benchmarks/gpu.sh); repeatable",
    )  # fmt: skip
    ap.add_argument("--out", help="write here instead of stdout")
    args = ap.parse_args(argv)
    text = render(load(args.json), [load(p) for p in args.gpu])
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
