"""The ``advlip`` command line: parses arguments, calls the checks, prints the report.

    advlip verify [--quick] [--seed N] [--json PATH] [--only ID ...] [--list] [--bounds]

Exit status: 0 when every check holds, 1 when any fails or is undetermined,
2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

__all__ = ["main"]


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _enable_compilation_cache() -> None:
    """Keep XLA's compiled programs between runs (most of a quick run is compilation).

    The cache lives in ``$ADVLIP_CACHE_DIR`` (default ``~/.cache/advlip/jax``);
    ``ADVLIP_CACHE_DIR=off`` disables it. It changes no number, only the time.
    """
    import os
    from pathlib import Path

    import jax

    where = os.environ.get("ADVLIP_CACHE_DIR", str(Path.home() / ".cache" / "advlip" / "jax"))
    if where.lower() in {"off", "0", "none", ""}:
        return
    try:
        Path(where).mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # read-only home: run without the cache
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def _verify(args: argparse.Namespace) -> int:
    from advlip import report, theorems

    registry = theorems.all_results()
    if args.list:
        for res in registry:
            print(f"{res.id:<18} {res.kind:<16} {res.title}")
        return 0
    if args.only:
        known = {r.id for r in registry}
        unknown = [i for i in args.only if i not in known]
        if unknown:
            _progress(f"advlip verify: unknown id(s) {unknown}; allowed: {sorted(known)}")
            return 2
        registry = [r for r in registry if r.id in args.only]

    config = theorems.CheckConfig(seed=args.seed, quick=args.quick)
    size = "quick" if args.quick else "full"
    _progress(f"advlip verify: {len(registry)} checks, {size} size, seed {args.seed} (float64)")
    results = []
    start = time.perf_counter()
    for i, res in enumerate(registry, 1):
        _progress(f"[{i}/{len(registry)}] {res.id}: {res.title} ...")
        result = res.check(config)
        results.append(result)
        _progress(f"[{i}/{len(registry)}] {res.id}: {result.verdict} ({result.elapsed_s:.1f} s)")
    total = time.perf_counter() - start

    print(report.table(results))
    if args.bounds:
        print()
        print(report.bounds_section(registry))
    counts = report.summary(results)
    print()
    print(
        f"{counts['holds']} hold, {counts['fails']} fail, {counts['undetermined']} undetermined "
        f"in {total:.1f} s. Replay: advlip verify --seed {args.seed}" + (" --quick" if args.quick else "")
    )
    if args.json:
        report.write_json(
            args.json, report.to_json(results, seed=args.seed, quick=args.quick, registry=registry)
        )
        _progress(f"wrote {args.json}")
    return 0 if counts["holds"] == len(results) else 1


def _parser() -> argparse.ArgumentParser:
    from advlip import __version__

    parser = argparse.ArgumentParser(
        prog="advlip",
        description="Check how smooth the loss of adversarial training is (Kanai et al. 2021).",
    )
    parser.add_argument("--version", action="version", version=f"advlip {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    v = sub.add_parser(
        "verify",
        help="run every registered check of SPEC's results",
        description="Run the built-in checks of every registered result and print a table.",
    )
    v.add_argument("--quick", action="store_true", help="small sizes: under a minute on 2 cores")
    v.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    v.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    v.add_argument("--only", nargs="+", metavar="ID", help="run only these result ids")
    v.add_argument("--list", action="store_true", help="list the result ids and exit")
    v.add_argument("--bounds", action="store_true", help="print every bound as SymPy renders it")
    v.set_defaults(func=_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _enable_compilation_cache()
    try:
        return args.func(args)
    except ValueError as err:
        _progress(f"advlip {args.command}: error: {err}")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
