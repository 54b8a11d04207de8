"""Run every benchmark and write one JSON (and, if asked, RESULTS.md from it).

    python benchmarks/run_all.py --quick --json PATH [--results benchmarks/RESULTS.md]
    python benchmarks/run_all.py --quick --only bench_hvp_torch --sizes 16 --json PATH  # smoke

JSON: ``{"benchmarks": [{"name", "ratio", "target", "met", "device", "notes", ...}, ...],
"meta": {"device", "date", "command", "versions", ...}}``. Each benchmark is a module
here with ``run(quick) -> list[dict]``; one that cannot run (e.g. PyTorch missing for a
baseline) is listed with ``met: null`` and the reason. Every row has a target and whether
it is met, or says in its notes why it has none. Nothing asserts a time: targets are
ratios measured in the same run. ``--results`` writes the Markdown report with
``results_md.py`` (which also runs alone: ``python benchmarks/results_md.py PATH``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import entry, markdown, meta, write  # noqa: E402

MODULES = (
    "bench_verify",
    "bench_pair_sweep",
    "bench_scaling",
    "bench_total_hessian",
    "bench_hvp_torch",
)
# the modules whose ``run`` takes ``sizes=`` (``--sizes``)
SIZED = ("bench_hvp_torch",)


def _command(argv: list[str]) -> str:
    return " ".join(["python benchmarks/run_all.py", *argv])


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes on 2 cores)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--results", help="also write the Markdown report (RESULTS.md) here")
    ap.add_argument(
        "--gpu", action="append", default=[], metavar="PATH",
        help="with --results: a GPU benchmark JSON (benchmarks/gpu.sh) to include; repeatable",
    )  # fmt: skip
    ap.add_argument("--only", nargs="+", choices=MODULES, help="run only these modules")
    ap.add_argument(
        "--sizes", nargs="+",
        help=f"sizes for {', '.join(SIZED)} (widths or parameter counts; 16 for a smoke run)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    info = meta(_command(argv))
    rows = []
    for name in args.only or MODULES:
        start = time.perf_counter()
        print(f"== {name} ({'quick' if args.quick else 'full'})", file=sys.stderr, flush=True)
        try:
            mod = importlib.import_module(name)
            if name in SIZED and args.sizes:
                sizes = [mod._parse_size(s) for s in args.sizes]
                rows.extend(mod.run(args.quick, sizes=sizes))
            else:
                rows.extend(mod.run(args.quick))
        except ModuleNotFoundError as err:
            rows.append(
                entry(name, ratio=None, target=None, met=None, notes=f"not run (no target): {err}")
            )
        except Exception as err:  # report, never hide: a crashed benchmark is a finding
            traceback.print_exc()
            rows.append(
                entry(
                    name,
                    ratio=None,
                    target=None,
                    met=False,
                    notes=f"crashed: {type(err).__name__}: {err}",
                )
            )
        print(f"   {time.perf_counter() - start:.1f} s", file=sys.stderr)
    info["wall_s"] = time.perf_counter() - t0
    print(f"Device: {info['device']}\n\n{markdown(rows)}")
    write(args.json, rows, info)
    if args.results:
        import results_md

        doc = {"benchmarks": rows, "meta": info}
        gpu = [results_md.load(p) for p in args.gpu]
        Path(args.results).write_text(results_md.render(doc, gpu))
    return 0


if __name__ == "__main__":
    sys.exit(main())
