"""The ``advlip`` command line: parses arguments, calls the checks, prints the report.

    advlip verify  [--quick] [--seed N] [--json PATH] [--only ID ...] [--list] [--bounds]
    advlip falsify --p P --eps E --beta B [--data NAME|PATH] [--loss L] [--bias]
                   [--min-norm R | --ball R | --box LOW HIGH] [--alpha A] [--budget N] [--seed N] [--json PATH]

    advlip experiment NAME --out DIR [--quick] [--seed N] [--data NAME]
    advlip experiment --list
    advlip landscape --out DIR [--model linear|mlp|both] [--data NAME] [--eps E]
                     [--quick] [--seed N]

Exit status of ``verify``: 0 when every check holds, 1 when any fails or is
undetermined; of ``falsify``: 0 when the claim is not refuted, 1 when it is; of
``experiment`` and ``landscape``: 0 when every claim the figures make holds, 1 when any
does not. All: 2 on bad arguments or input.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

__all__ = ["main"]


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fast_compile() -> None:
    """Ask XLA for its quickest code generation (``--xla_backend_optimization_level=0``).

    A verify run is hundreds of small programs that each run for milliseconds:
    compiling them dominates, and unoptimised code generation cuts it about threefold
    (measured in benchmarks/bench_verify.py). It changes no formula, only how the
    machine code is scheduled; every check's tolerance is derived for float64
    rounding either way. Must run before JAX starts its backend; a no-op afterwards.
    ``ADVLIP_FAST_COMPILE=0`` keeps XLA's default.
    """
    import os

    if os.environ.get("ADVLIP_FAST_COMPILE", "1") == "0":
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_backend_optimization_level=0").strip()


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
        f"in {total:.1f} s. Replay: advlip verify --seed {args.seed}"
        + (" --quick" if args.quick else "")
    )
    if args.json:
        report.write_json(
            args.json, report.to_json(results, seed=args.seed, quick=args.quick, registry=registry)
        )
        _progress(f"wrote {args.json}")
    return 0 if counts["holds"] == len(results) else 1


def _falsify(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from advlip import data, falsifier, regions, report
    from advlip.linear import LinearProblem

    X, y = data.load(args.data, seed=args.seed)
    prob = LinearProblem(X=X, y=y, eps=args.eps, p=args.p, loss=args.loss, fit_bias=args.bias)
    dim = prob.dim
    chosen = [a for a in ("min_norm", "ball", "box") if getattr(args, a) is not None]
    if len(chosen) > 1:
        raise ValueError(f"give one region, not {len(chosen)}: --min-norm, --ball or --box")
    if args.ball is not None:
        region = regions.Ball(np.zeros(dim), args.ball)
    elif args.box is not None:
        region = regions.Box(np.full(dim, args.box[0]), np.full(dim, args.box[1]))
    else:
        region = regions.NormAtLeast(args.min_norm if args.min_norm is not None else 1.0, dim)
    _progress(
        f"advlip falsify: claim ‖Δ∇L‖ ≤ {args.beta:g}‖Δθ‖"
        + (f" + {args.alpha:g}" if args.alpha else "")
        + f" for the p={args.p} adversarial {args.loss} loss (ε={args.eps:g}) of a linear model "
        f"on {args.data} (n={X.shape[0]}, d={X.shape[1]}{', bias' if args.bias else ''}), "
        f"region {region.describe()}; budget {args.budget}, seed {args.seed}"
    )
    verdict = falsifier.falsify_smoothness(
        prob.grad,
        beta=args.beta,
        alpha=args.alpha,
        region=region,
        budget=args.budget,
        seed=args.seed,
    )
    rows = [
        ("claim", verdict.claim),
        ("region", verdict.region),
        ("verdict", "REFUTED" if verdict.refuted else "not refuted"),
        ("best ratio R", f"{verdict.ratio:.6g}"),
        ("‖Δg‖ / (β‖Δθ‖ + α)", f"{verdict.excess:.6g}"),
        ("found by", verdict.strategy),
        ("gradient evaluations", str(verdict.evaluations)),
        ("θ1", np.array2string(verdict.theta1, precision=6, max_line_width=120)),
        ("θ2", np.array2string(verdict.theta2, precision=6, max_line_width=120)),
        ("‖θ1 − θ2‖", f"{float(np.linalg.norm(verdict.theta1 - verdict.theta2)):.3e}"),
        ("seed", f"{verdict.seed} (same arguments and seed replay this run)"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
    print()
    print("strategy    evaluations  best ‖Δg‖/(β‖Δθ‖+α)")
    for name, fig in verdict.per_strategy.items():
        print(f"{name:<10}  {int(fig['evaluations']):>11}  {fig['best_excess']:.6g}")
    if args.json:
        doc = {
            "command": "falsify",
            "data": args.data,
            "p": args.p,
            "eps": args.eps,
            "loss": args.loss,
            "bias": args.bias,
            **verdict.to_dict(),
        }
        report.write_json(args.json, json.loads(json.dumps(doc, default=float)))
        _progress(f"wrote {args.json}")
    return 1 if verdict.refuted else 0


def _print_experiment(doc: dict, out: str) -> int:
    claims = doc.get("claims", [])
    for c in claims:
        print(f"{'holds' if c['holds'] else 'FAILS':<6} {c['claim']}")
    held = sum(bool(c["holds"]) for c in claims)
    print()
    print(f"{held}/{len(claims)} claims hold. JSON: {out}/{doc['experiment']}.json")
    for png in doc["pngs"]:
        print(f"picture: {png}")
    print(f"replay: {doc['replay']}")
    return 0 if held == len(claims) else 1


def _experiment(args: argparse.Namespace) -> int:
    from advlip import experiments

    if args.list:
        for name, summary in experiments.describe().items():
            print(f"{name:<20} {summary}")
        return 0
    if not args.name or not args.out:
        _progress("advlip experiment: give NAME and --out DIR (or --list)")
        return 2
    if args.quick:
        _fast_compile()  # quick runs are mostly compilation; must precede JAX's backend
    options = {"data": args.data} if args.data else {}
    doc = experiments.run(
        args.name, out_dir=args.out, quick=args.quick, seed=args.seed, progress=_progress, **options
    )
    return _print_experiment(doc, args.out)


def _landscape(args: argparse.Namespace) -> int:
    from advlip import experiments

    if args.quick:
        _fast_compile()
    options = {"model": args.model, "data": args.data, "eps": args.eps}
    doc = experiments.run(
        "landscape",
        out_dir=args.out,
        quick=args.quick,
        seed=args.seed,
        progress=_progress,
        **{k: v for k, v in options.items() if v is not None},
    )
    return _print_experiment(doc, args.out)


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

    f = sub.add_parser(
        "falsify",
        help="try to refute a smoothness claim about a linear model's adversarial loss",
        description=(
            "Try hard to refute ‖∇L(θ1) − ∇L(θ2)‖ ≤ β‖θ1 − θ2‖ + α on a region, for the "
            "closed-form adversarial loss of a linear model. Exit 0: not refuted; 1: refuted "
            "(the witness pair is printed); 2: bad input."
        ),
    )
    f.add_argument("--p", required=True, help="attack norm: 1 <= p <= inf (e.g. 2, inf)")
    f.add_argument("--eps", type=float, required=True, help="attack radius ε >= 0")
    f.add_argument("--beta", type=float, required=True, help="the claimed constant β > 0")
    f.add_argument("--alpha", type=float, default=0.0, help="additive term α >= 0 (default 0)")
    f.add_argument(
        "--data",
        default="synthetic",
        help="synthetic, breast-cancer, digits-A-B, or a .npz (X, y) / .csv (label last) path",
    )
    f.add_argument("--loss", default="softplus", help="softplus, exponential or squared_hinge")
    f.add_argument("--bias", action="store_true", help="the bias is a parameter too")
    f.add_argument(
        "--min-norm", type=float, metavar="R", help="region ‖θ‖ ≥ R (the default, R = 1)"
    )
    f.add_argument("--ball", type=float, metavar="R", help="region ‖θ‖ ≤ R")
    f.add_argument(
        "--box", type=float, nargs=2, metavar=("LOW", "HIGH"), help="region LOW ≤ θ_i ≤ HIGH"
    )
    f.add_argument("--budget", type=int, default=4000, help="gradient evaluations (default 4000)")
    f.add_argument("--seed", type=int, default=0, help="seed of the search (default 0)")
    f.add_argument("--json", metavar="PATH", help="also write the verdict as JSON to PATH")
    f.set_defaults(func=_falsify)

    e = sub.add_parser(
        "experiment",
        help="run an experiment on real data and draw its pictures (JSON + PNG)",
        description=(
            "Run a named experiment (adversarial training L2 vs L∞, EntropySGD, flatness, the "
            "LIN-LP phase diagram, loss landscapes); write DIR/NAME.json with every plotted "
            "number and the PNGs beside it. Exit 0: every claim holds; 1: one does not; "
            "2: bad input."
        ),
    )
    e.add_argument("name", nargs="?", metavar="NAME", help="experiment name (see --list)")
    e.add_argument("--out", metavar="DIR", help="output folder (created if missing)")
    e.add_argument("--quick", action="store_true", help="small sizes: seconds, for tests")
    e.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    e.add_argument("--data", help="dataset: breast-cancer or digits-A-B (e.g. digits-3-8)")
    e.add_argument("--list", action="store_true", help="list the experiments and exit")
    e.set_defaults(func=_experiment)

    s = sub.add_parser(
        "landscape",
        help="1-D and 2-D slices of the adversarial loss, L2 beside L∞ (JSON + PNG)",
        description=(
            "Train a linear model and/or a small MLP under L2 and under L∞ (matched budgets) and "
            "draw slices of their adversarial losses; write DIR/landscape.json and PNGs."
        ),
    )
    s.add_argument("--out", metavar="DIR", required=True, help="output folder (created if missing)")
    s.add_argument("--model", choices=("linear", "mlp", "both"), help="which model (default both)")
    s.add_argument("--data", help="dataset: breast-cancer or digits-A-B (e.g. digits-3-8)")
    s.add_argument("--eps", type=float, help="L2 budget ε₂ (L∞ gets ε₂/√d)")
    s.add_argument("--quick", action="store_true", help="small sizes: seconds, for tests")
    s.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    s.set_defaults(func=_landscape)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "verify":
        _fast_compile()
    _enable_compilation_cache()
    try:
        return args.func(args)
    except ValueError as err:
        _progress(f"advlip {args.command}: error: {err}")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
