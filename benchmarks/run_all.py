"""Run every benchmark and write one JSON and one Markdown table.

    python benchmarks/run_all.py --quick --json PATH [--markdown PATH]

JSON: ``{"benchmarks": [{"name", "ratio", "target", "met", "device", ...}, ...]}``.
Each benchmark is a module here with ``run(quick) -> list[dict]``; one that cannot
run (e.g. PyTorch missing for a baseline) is listed with ``met: null`` and the reason.
Nothing asserts a time: targets are ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import device, entry, markdown, write  # noqa: E402

MODULES = (
    "bench_verify",
    "bench_pair_sweep",
    "bench_scaling",
    "bench_total_hessian",
    "bench_hvp_torch",
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes on 2 cores)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--markdown", help="also write the Markdown table here")
    ap.add_argument("--only", nargs="+", help="run only these modules")
    args = ap.parse_args(argv)
    rows = []
    for name in args.only or MODULES:
        start = time.perf_counter()
        print(f"== {name} ({'quick' if args.quick else 'full'})", file=sys.stderr, flush=True)
        try:
            mod = importlib.import_module(name)
            rows.extend(mod.run(args.quick))
        except ModuleNotFoundError as err:
            rows.append(entry(name, ratio=None, target=None, met=None, notes=f"not run: {err}"))
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
    table = markdown(rows)
    print(f"Device: {device()}\n\n{table}")
    write(args.json, rows)
    if args.markdown:
        Path(args.markdown).write_text(f"Device: {device()}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
