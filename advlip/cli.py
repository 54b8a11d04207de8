"""The ``advlip`` command line: parses arguments, calls the checks, prints the report.

    advlip verify  [--quick] [--seed N] [--json PATH] [--only ID ...]
    advlip verify  --list
    advlip verify  --bounds [--only ID ...] [--json PATH]
    advlip falsify --p P --eps E --beta B [--data NAME|PATH] [--loss L] [--bias]
                   [--min-norm R | --ball R | --box LOW HIGH] [--alpha A] [--budget N] [--seed N] [--json PATH]

    advlip experiment NAME --out DIR [--quick] [--seed N] [--data NAME]
    advlip experiment --list
    advlip landscape --out DIR [--model linear|mlp|both] [--data NAME] [--eps E]
                     [--quick] [--seed N]
    advlip curvature --model MODULE:FACTORY --p {1,2,inf} --eps E [--data NAME_OR_PATH]
                     [--k K] [--trace] [--density] [--batch-size B] [--n N] [--json PATH]

Exit status, the same scheme for every command:

* **0** — the claim holds: every check of ``verify`` holds; ``falsify`` did not refute
  the claim; every claim the figures of ``experiment``/``landscape`` make holds;
  ``curvature`` determined the total Hessian at every example.
* **1** — it does not: a check fails or is undetermined; the claim is refuted (the
  witness pair is printed); a figure's claim does not hold; ``curvature`` found
  examples where the total Hessian is not determined (their reasons are printed).
* **2** — bad input: a flag's value, a data file, an output path. The message names
  the argument (``argument --seed: ...``) and says what is allowed. Every argument is
  checked before the run starts, output paths included (``--json`` must be a file in
  an existing, writable folder; ``--out`` a folder, created if missing), so a bad one
  costs no run time.
* **3** — an internal error of advlip (a bug): any exception once the arguments have
  passed their checks. The traceback is printed on stderr, with the command that
  replays it; please report it. A traceback never comes with another exit status.
* **130** — interrupted (Ctrl-C); **141** — the reader of the output went away
  (``advlip verify --list | head``), as a shell reports SIGPIPE.

``advlip verify`` checks the results stated in the theory pages (the list and the
notation: docs/theory/index.md; each id's statement and derivation:
docs/theory/<id>.md, e.g. docs/theory/lin-l2.md). ``--list`` prints the ids with their
pages; ``--bounds`` runs no check: it prints each result's statement, bound (as SymPy
renders it) and page, and with ``--json PATH`` writes them as JSON
(:func:`advlip.report.bounds_json`) instead of check results; it exits 0. Tables fit
the terminal's width (``COLUMNS`` if set; 100 columns when the output is a pipe or a
file): free text wraps at word boundaries, and no id, verdict or number is cut.

The command computes in float64: :func:`main` turns on JAX's float64 mode for its run
(importing advlip does not) and restores the previous setting when it returns.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "main",
    "UsageError",
    "EXIT_HOLDS",
    "EXIT_FAILS",
    "EXIT_USAGE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_BROKEN_PIPE",
]

EXIT_HOLDS = 0  # holds / not refuted
EXIT_FAILS = 1  # fails, undetermined / refuted
EXIT_USAGE = 2  # bad input; the message names the argument
EXIT_INTERNAL = 3  # a bug in advlip; the traceback is printed
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout closed it

#: The largest seed: every random generator advlip uses takes it (JAX keys, NumPy).
MAX_SEED = 2**32 - 1


class UsageError(ValueError):
    """Bad input to the command; :func:`main` prints it and returns exit status 2.

    Args:
        arg: the argument it names: a flag, ``NAME``, a file.
        message: what is wrong and what is allowed.

    Example:
        >>> from advlip import cli
        >>> err = cli.UsageError("--seed", "seed=-1 is not allowed; allowed: 0 <= seed")
        >>> str(err), err.arg
        ('argument --seed: seed=-1 is not allowed; allowed: 0 <= seed', '--seed')
    """

    def __init__(self, arg: str, message: str):
        super().__init__(f"argument {arg}: {message}")
        self.arg = arg
        self.message = message


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


# --------------------------------------------------------------------------- argument checks
# Every command checks all of its arguments before its run starts, and names the flag.


@contextlib.contextmanager
def _bad_input(arg: str) -> Iterator[None]:
    """Validation of ``arg``: a ValueError, TypeError or OSError (a path the user gave)
    inside is bad input naming it."""
    try:
        yield
    except UsageError:
        raise
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        raise UsageError(arg, f"{err.strerror or err}{where}") from None
    except (ValueError, TypeError) as err:
        raise UsageError(arg, str(err)) from None


def _real(
    flag: str, value: Any, *, minimum: float | None = None, strict: bool = False, what: str = ""
) -> float:
    """``value`` as a finite float above ``minimum`` (``strict``: not equal to it)."""
    from advlip._validate import check_real

    with _bad_input(flag):
        return check_real(flag.lstrip("-"), value, minimum=minimum, strict=strict, what=what)


def _seed(value: int) -> int:
    if not 0 <= value <= MAX_SEED:
        raise UsageError(
            "--seed",
            f"seed={value!r} is not allowed; allowed: an integer 0 <= seed <= {MAX_SEED} (2**32 - 1)",
        )
    return value


def _key(seed: int):
    """The JAX key of ``--seed N``: ``jax.random.PRNGKey(N)`` (the library takes keys)."""
    import jax

    return jax.random.PRNGKey(seed)


def _json_path(flag: str, path: str) -> None:
    """``path`` can be written as a file: not a folder, in an existing writable folder."""
    with _bad_input(flag):
        _check_json_path(flag, path)


def _check_json_path(flag: str, path: str) -> None:
    import tempfile

    p = Path(path)
    if p.is_dir():
        raise UsageError(flag, f"{path} is a folder; give a file path, e.g. {p / 'results.json'}")
    parent = p.parent
    if not parent.exists():
        raise UsageError(
            flag,
            f"the folder {parent} of {path} does not exist; create it first "
            f"(mkdir -p {shlex.quote(str(parent))}) or give a path in an existing folder",
        )
    if not parent.is_dir():
        raise UsageError(flag, f"{parent} is a file, not a folder; {path} cannot be written")
    try:
        if p.exists():
            with open(p, "a"):  # opens for writing, changes nothing
                pass
        else:
            with tempfile.TemporaryFile(dir=parent):
                pass
    except OSError as err:
        raise UsageError(
            flag, f"cannot write {path} ({err.strerror}); give a writable path"
        ) from None


def _out_dir(flag: str, path: str) -> None:
    """``path`` is, or can be created as, a writable folder (nothing is created here)."""
    with _bad_input(flag):
        _check_out_dir(flag, path)


def _check_out_dir(flag: str, path: str) -> None:
    import tempfile

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(flag, f"{path} exists and is a file; give a directory")
    existing = p
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(flag, f"{path} cannot be created: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        where = "written" if existing == p else f"created in {existing}"
        raise UsageError(
            flag, f"{path} cannot be {where} ({err.strerror}); give a writable directory"
        ) from None


# --------------------------------------------------------------------------- commands


def _verify(args: argparse.Namespace) -> int:
    from advlip import report, theorems

    registry = theorems.all_results()
    if args.list:
        print(report.list_table(registry))
        return EXIT_HOLDS
    seed = _seed(args.seed)
    if args.only:
        known = {r.id for r in registry}
        unknown = [i for i in args.only if i not in known]
        if unknown:
            raise UsageError(
                "--only",
                f"unknown id(s) {unknown}; allowed: {sorted(known)} (advlip verify --list)",
            )
        registry = [r for r in registry if r.id in args.only]
    if args.json:
        _json_path("--json", args.json)
    if args.bounds:  # the formulas only: no check runs
        print(report.bounds_section(registry))
        print()
        print("Notation and the list of results: docs/theory/index.md.")
        if args.json:
            report.write_json(args.json, report.bounds_json(registry))
            _progress(f"wrote {args.json}")
        return EXIT_HOLDS

    config = theorems.CheckConfig(seed=seed, quick=args.quick)
    size = "quick" if args.quick else "full"
    _progress(f"advlip verify: {len(registry)} checks, {size} size, seed {seed} (float64)")
    results = []
    start = time.perf_counter()
    for i, res in enumerate(registry, 1):
        _progress(f"[{i}/{len(registry)}] {res.id}: {res.title} ...")
        result = res.check(config)
        results.append(result)
        _progress(f"[{i}/{len(registry)}] {res.id}: {result.verdict} ({result.elapsed_s:.1f} s)")
    total = time.perf_counter() - start

    print(report.table(results))
    counts = report.summary(results)
    print()
    print(
        f"{counts['holds']} hold, {counts['fails']} fail, {counts['undetermined']} undetermined "
        f"in {total:.1f} s."
    )
    replay = ["advlip", "verify", "--seed", str(seed)] + (["--quick"] if args.quick else [])
    print(_shell_lines("Replay: ", replay + (["--only", *args.only] if args.only else [])))
    if args.json:
        report.write_json(
            args.json, report.to_json(results, seed=seed, quick=args.quick, registry=registry)
        )
        _progress(f"wrote {args.json}")
    return EXIT_HOLDS if counts["holds"] == len(results) else EXIT_FAILS


def _shell_lines(prefix: str, words: Sequence[str]) -> str:
    """``prefix`` and the command ``words``, continued with `` \\`` onto indented lines
    where one line would be wider than the terminal: still one command for a shell."""
    from advlip import report

    width = report.terminal_width()
    lines, line = [], prefix + shlex.quote(words[0])
    for word in map(shlex.quote, words[1:]):
        if len(line) + 1 + len(word) + 2 > width:  # room for " \\"
            lines.append(line + " \\")
            line = "    " + word
        else:
            line += " " + word
    return "\n".join([*lines, line])


def _region(args: argparse.Namespace, dim: int):
    import numpy as np

    from advlip import regions

    given = {"--min-norm": args.min_norm, "--ball": args.ball, "--box": args.box}
    chosen = [flag for flag, value in given.items() if value is not None]
    if len(chosen) > 1:
        raise UsageError(
            ", ".join(chosen), f"give one region, not {len(chosen)}: --min-norm, --ball or --box"
        )
    if args.ball is not None:
        r = _real("--ball", args.ball, minimum=0.0, strict=True, what=" (the radius)")
        with _bad_input("--ball"):
            return regions.Ball(np.zeros(dim), r)
    if args.box is not None:
        low, high = (_real("--box", v, what=" (LOW and HIGH)") for v in args.box)
        if not low < high:
            raise UsageError("--box", f"LOW={low!r} must be < HIGH={high!r}")
        with _bad_input("--box"):
            return regions.Box(np.full(dim, low), np.full(dim, high))
    r = 1.0 if args.min_norm is None else args.min_norm
    r = _real("--min-norm", r, minimum=0.0, strict=True, what=" (the radius)")
    with _bad_input("--min-norm"):
        return regions.NormAtLeast(r, dim)


def _falsify(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from advlip import data, falsifier, report
    from advlip._validate import check_p
    from advlip.linear import LinearProblem
    from advlip.losses import get_loss

    # every argument, before the search starts
    with _bad_input("--p"):
        p = check_p(args.p)
    eps = _real("--eps", args.eps, minimum=0.0)
    beta = _real("--beta", args.beta, minimum=0.0, strict=True)
    alpha = _real("--alpha", args.alpha, minimum=0.0)
    if args.budget < 100:
        raise UsageError(
            "--budget", f"budget={args.budget!r} is not allowed; allowed: an integer >= 100"
        )
    seed = _seed(args.seed)
    with _bad_input("--loss"):
        get_loss(args.loss)
    with _bad_input("--data"):
        X, y = data.load(args.data, key=_key(seed))
        prob = LinearProblem(X=X, y=y, eps=eps, p=p, loss=args.loss, fit_bias=args.bias)
    region = _region(args, prob.dim)
    if args.json:
        _json_path("--json", args.json)

    _progress(
        f"advlip falsify: claim ‖Δ∇L‖ ≤ {beta:g}‖Δθ‖"
        + (f" + {alpha:g}" if alpha else "")
        + f" for the p={args.p} adversarial {args.loss} loss (ε={eps:g}) of a linear model "
        f"on {args.data} (n={X.shape[0]}, d={X.shape[1]}{', bias' if args.bias else ''}), "
        f"region {region.describe()}; budget {args.budget}, seed {seed}"
    )
    try:
        verdict = falsifier.falsify_smoothness(
            prob.grad,
            beta=beta,
            alpha=alpha,
            region=region,
            budget=args.budget,
            seed=seed,
            # the closed form's own rounding bound at each point (counts the d-term dot
            # products and the margin's conditioning), not a generic default
            grad_error=lambda th: float(prob.grad_error_bound(th)),
        )
    except falsifier.UncheckableClaimError as err:
        # bad input found by the search itself (an overflowing ε, a region too small for
        # float64): name the arguments that set those magnitudes
        flag = next(
            (f for f, a in (("--ball", "ball"), ("--box", "box")) if getattr(args, a) is not None),
            "--min-norm",
        )
        raise UsageError(f"--eps/{flag}/--budget", str(err)) from err
    rows = [
        ("claim", verdict.claim),
        ("region", verdict.region),
        ("verdict", "REFUTED" if verdict.refuted else "not refuted"),
        ("best ratio R", f"{verdict.ratio:.6g}"),
        ("‖Δg‖ / (β‖Δθ‖ + α)", f"{verdict.excess:.6g}"),
        ("found by", verdict.strategy),
        ("gradient evaluations", str(verdict.evaluations)),
        ("θ1", np.array2string(verdict.theta1, precision=6, max_line_width=sys.maxsize)),
        ("θ2", np.array2string(verdict.theta2, precision=6, max_line_width=sys.maxsize)),
        ("‖θ1 − θ2‖", f"{verdict.distance:.3e}"),
        ("seed", f"{verdict.seed} (same arguments and seed replay this run)"),
    ]
    print(report.text_table(("falsify", "result"), rows, wrap=(1,)))
    print()
    strategies = [
        (name, str(int(fig["evaluations"])), f"{fig['best_excess']:.6g}")
        for name, fig in verdict.per_strategy.items()
    ]
    print(report.text_table(("strategy", "evaluations", "best ‖Δg‖/(β‖Δθ‖+α)"), strategies))
    if args.json:
        doc = {
            "command": "falsify",
            "data": args.data,
            "p": args.p,
            "eps": eps,
            "loss": args.loss,
            "bias": args.bias,
            **verdict.to_dict(),
        }
        report.write_json(args.json, json.loads(json.dumps(doc, default=float)))
        _progress(f"wrote {args.json}")
    return EXIT_FAILS if verdict.refuted else EXIT_HOLDS


def _print_experiment(doc: dict, out: str) -> int:
    from advlip import report

    claims = doc.get("claims", [])
    for c in claims:
        mark = f"{'holds' if c['holds'] else 'FAILS':<6} "
        print(report.wrap_paragraph(c["claim"], first=mark, indent=" " * len(mark)))
    held = sum(bool(c["holds"]) for c in claims)
    print()
    print(f"{held}/{len(claims)} claims hold. JSON: {out}/{doc['experiment']}.json")
    for png in doc["pngs"]:
        print(f"picture: {png}")
    print(f"replay: {doc['replay']}")
    return EXIT_HOLDS if held == len(claims) else EXIT_FAILS


def _experiment_data(experiments, name: str, value: str | None) -> None:
    """``--data`` names a bundled dataset, and experiment ``name`` takes one."""
    if value is None:
        return
    takes = [n for n in experiments.names() if "data" in experiments.options_of(n)]
    if name not in takes:
        raise UsageError(
            "--data", f"experiment {name!r} takes no --data; the ones that do: {', '.join(takes)}"
        )
    with _bad_input("--data"):
        experiments.check_data(name, value)


def _experiment(args: argparse.Namespace) -> int:
    from advlip import experiments

    if args.list:
        for name, summary in experiments.describe().items():
            print(f"{name:<20} {summary}")
        return EXIT_HOLDS
    allowed = ", ".join(experiments.names())
    if not args.name:
        raise UsageError("NAME", f"give an experiment name (one of: {allowed}), or --list")
    if args.name not in experiments.names():
        raise UsageError("NAME", f"{args.name!r} is not an experiment; allowed: {allowed}")
    if not args.out:
        raise UsageError("--out", "give the output folder: --out DIR")
    seed = _seed(args.seed)
    _experiment_data(experiments, args.name, args.data)
    _out_dir("--out", args.out)
    options = {"data": args.data} if args.data else {}
    doc = experiments.run(
        args.name,
        out_dir=args.out,
        quick=args.quick,
        key=_key(seed),
        progress=_progress,
        **options,
    )
    return _print_experiment(doc, args.out)


def _landscape(args: argparse.Namespace) -> int:
    from advlip import experiments

    seed = _seed(args.seed)
    if args.eps is not None:
        _real("--eps", args.eps, minimum=0.0, strict=True, what=" (the L2 budget)")
    _experiment_data(experiments, "landscape", args.data)
    _out_dir("--out", args.out)
    options = {"model": args.model, "data": args.data, "eps": args.eps}
    doc = experiments.run(
        "landscape",
        out_dir=args.out,
        quick=args.quick,
        key=_key(seed),
        progress=_progress,
        **{k: v for k, v in options.items() if v is not None},
    )
    return _print_experiment(doc, args.out)


def _load_factory(spec: str):
    """``MODULE:FACTORY`` → the callable: MODULE a dotted module or a ``.py`` file."""
    import importlib
    import importlib.util

    if ":" not in spec:
        raise UsageError(
            "--model",
            f"{spec!r} is not MODULE:FACTORY; allowed: e.g. advlip.networks:cnn, "
            "mymodels:make_net or path/to/models.py:make_net",
        )
    mod_name, _, attr = spec.rpartition(":")
    try:
        if mod_name.endswith(".py") or Path(mod_name).is_file():
            if not Path(mod_name).is_file():
                raise UsageError("--model", f"no file {mod_name}")
            mspec = importlib.util.spec_from_file_location(Path(mod_name).stem, mod_name)
            module = importlib.util.module_from_spec(mspec)
            mspec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except UsageError:
        raise
    except Exception as err:  # the user's module: its import error is bad input
        raise UsageError(
            "--model", f"cannot import {mod_name}: {type(err).__name__}: {err}"
        ) from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UsageError("--model", f"{mod_name} has no callable {attr!r}")
    return factory


def _call_factory(factory, seed: int, input_shape: tuple, num_classes: int):
    """Call the factory with those of ``key``, ``input_shape``, ``num_classes`` it takes."""
    import inspect

    offered = {"key": _key(seed), "input_shape": input_shape, "num_classes": num_classes}
    try:
        names = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        names = {}
    kwargs = {k: v for k, v in offered.items() if k in names}
    try:
        return factory(**kwargs)
    except Exception as err:  # the user's factory failing is bad input, named
        raise UsageError("--model", f"the factory raised {type(err).__name__}: {err}") from err


def _curvature(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from advlip import curvature, data, report
    from advlip._validate import check_p
    from advlip.losses import get_logit_loss

    # every argument, before the run starts
    seed = _seed(args.seed)
    with _bad_input("--p"):
        p = check_p(args.p)
        if p not in (1.0, 2.0, float("inf")):
            raise ValueError(f"p={args.p} is not supported; allowed: 1, 2 or inf")
    eps = _real("--eps", args.eps, minimum=0.0)
    for flag, val, lo in (
        ("--k", args.k, 1),
        ("--n", args.n, 1),
        ("--num-samples", args.num_samples, 1),
    ):
        if val < lo:
            raise UsageError(
                flag, f"{flag.lstrip('-')}={val!r} is not allowed; allowed: an integer >= {lo}"
            )
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(
            "--batch-size",
            f"batch_size={args.batch_size!r} is not allowed; allowed: an integer >= 1",
        )
    with _bad_input("--loss"):
        get_logit_loss(args.loss)
    if args.json:
        _json_path("--json", args.json)
    if args.png:
        _json_path("--png", args.png)
    with _bad_input("--data"):
        X, y, described = data.images(args.data, split=args.split, n=args.n, key=_key(seed))
    X = np.asarray(X, dtype=args.dtype)
    factory = _load_factory(args.model)
    num_classes = int(np.max(y)) + 1
    obj = _call_factory(factory, seed, tuple(X.shape[1:]), num_classes)
    first = args.layout == "nchw" or (args.layout == "auto" and curvature.channels_first(obj))
    if first and X.ndim == 4:
        X = np.ascontiguousarray(X.transpose(0, 3, 1, 2))
    with _bad_input("--model"):
        params, loss_fn = curvature.resolve_model(obj, X[0], loss=args.loss)
        import jax

        params = jax.tree.map(
            lambda a: (
                a.astype(args.dtype) if np.issubdtype(np.asarray(a).dtype, np.floating) else a
            ),
            params,
        )
    with _bad_input("--model/--data"):
        from advlip.attacks import prepare_problem

        prepare_problem(loss_fn, params, X, y, eps, p)  # shapes, labels, dtypes: named errors
    _progress(
        f"advlip curvature: {args.model} on {described} (n={X.shape[0]}), L{args.p} ε={eps:g}, "
        f"top-{args.k}{', trace' if args.trace else ''}{', density' if args.density else ''}, "
        f"{args.dtype}, seed {seed}"
    )
    res = curvature.measure(
        loss_fn,
        params,
        X,
        y,
        eps=eps,
        p=p,
        k=args.k,
        trace=args.trace,
        density=args.density or bool(args.png),
        num_samples=args.num_samples,
        batch_size=args.batch_size,
        layer=args.layer,
        key=_key(seed),
        progress=True,
    )
    print(res.table())
    replay = shlex.join(["advlip", *args.argv])
    print(_shell_lines("replay: ", ["advlip", *args.argv]))
    if res.densities and args.png:
        from advlip import plots

        plots.plot_spectral_density(
            res.densities, args.png, title=f"{args.model}, L{args.p} ε={eps:g}"
        )
        _progress(f"wrote {args.png}")
    if args.json:
        doc = {
            "command": "curvature",
            "model": args.model,
            "data": described,
            "seed": seed,
            "replay": replay,
            **res.to_json(),
        }
        report.write_json(args.json, json.loads(json.dumps(doc, default=float)))
        _progress(f"wrote {args.json}")
    return EXIT_HOLDS if res.undetermined_fraction == 0 else EXIT_FAILS


# --------------------------------------------------------------------------- parser


def _exit_status(holds: str, fails: str) -> str:
    return (
        f"Exit status: 0 {holds}; 1 {fails}; 2 bad input (the message names the argument; "
        "every argument is checked before the run starts); 3 internal error of advlip "
        "(a bug: the traceback is printed; please report it)."
    )


def _parser() -> argparse.ArgumentParser:
    from advlip import __version__

    parser = argparse.ArgumentParser(
        prog="advlip",
        description="Check how smooth the loss of adversarial training is (Kanai et al. 2021).",
        epilog=(
            "Exit status of every command: 0 holds / not refuted; 1 fails / refuted; "
            "2 bad input (the message names the argument); 3 internal error of advlip "
            "(a bug: the traceback is printed; please report it); 130 interrupted; "
            "141 the output pipe was closed."
        ),
    )
    parser.add_argument("--version", action="version", version=f"advlip {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    seed_help = f"seed of every random draw, 0 <= N <= {MAX_SEED} (default 0)"
    v = sub.add_parser(
        "verify",
        help="run the check of every result stated in docs/theory/index.md",
        description=(
            "Run the built-in check of every registered result (the results and their "
            "notation: docs/theory/index.md; each id's statement and derivation: "
            "docs/theory/<id>.md) and print a table that fits the terminal (COLUMNS, "
            "else 100 columns when the output is not a terminal). --bounds prints the "
            "formulas instead and runs nothing. "
            + _exit_status("every check holds", "a check fails or is undetermined")
            + " --list and --bounds exit 0."
        ),
    )
    v.add_argument("--quick", action="store_true", help="small sizes: under a minute on 2 cores")
    v.add_argument("--seed", type=int, default=0, metavar="N", help=seed_help)
    v.add_argument(
        "--json",
        metavar="PATH",
        help="also write the results as JSON to PATH (its folder must exist); with --bounds, "
        "the statements and bounds instead",
    )
    v.add_argument(
        "--only", nargs="+", metavar="ID", help="run (or with --bounds, print) only these ids"
    )
    v.add_argument(
        "--list", action="store_true", help="list the result ids and their theory pages; exit"
    )
    v.add_argument(
        "--bounds",
        action="store_true",
        help="run no check: print each result's statement, bound (as SymPy renders it) and "
        "theory page, then exit 0 (takes a second)",
    )
    v.set_defaults(func=_verify)

    f = sub.add_parser(
        "falsify",
        help="try to refute a smoothness claim about a linear model's adversarial loss",
        description=(
            "Try hard to refute ‖∇L(θ1) − ∇L(θ2)‖ ≤ β‖θ1 − θ2‖ + α on a region, for the "
            "closed-form adversarial loss of a linear model. "
            + _exit_status(
                "the claim is not refuted", "it is refuted (the witness pair is printed)"
            )
        ),
    )
    f.add_argument("--p", required=True, help="attack norm: 1 <= p <= inf (e.g. 2, inf)")
    f.add_argument("--eps", type=float, required=True, help="attack radius ε >= 0 (finite)")
    f.add_argument("--beta", type=float, required=True, help="the claimed constant β > 0 (finite)")
    f.add_argument("--alpha", type=float, default=0.0, help="additive term α >= 0 (default 0)")
    f.add_argument(
        "--data",
        default="synthetic",
        help=(
            "synthetic, breast-cancer, digits-A-B, a .npz file (arrays X (n, d) and y (n,)), or "
            "a .csv/.tsv/.txt file: one example per row, the label -1/+1 in the LAST column, "
            "separated by commas, semicolons, tabs or spaces"
        ),
    )
    f.add_argument("--loss", default="softplus", help="softplus, exponential or squared_hinge")
    f.add_argument("--bias", action="store_true", help="the bias is a parameter too")
    f.add_argument(
        "--min-norm", type=float, metavar="R", help="region ‖θ‖ ≥ R > 0 (the default, R = 1)"
    )
    f.add_argument("--ball", type=float, metavar="R", help="region ‖θ‖ ≤ R, R > 0")
    f.add_argument(
        "--box", type=float, nargs=2, metavar=("LOW", "HIGH"), help="region LOW ≤ θ_i ≤ HIGH"
    )
    f.add_argument(
        "--budget", type=int, default=4000, help="gradient evaluations, >= 100 (default 4000)"
    )
    f.add_argument("--seed", type=int, default=0, metavar="N", help=seed_help)
    f.add_argument(
        "--json",
        metavar="PATH",
        help="also write the verdict as JSON to PATH (its folder must exist)",
    )
    f.set_defaults(func=_falsify)

    e = sub.add_parser(
        "experiment",
        help="run an experiment on real data and draw its pictures (JSON + PNG)",
        description=(
            "Run a named experiment (adversarial training L2 vs L∞, EntropySGD, flatness, the "
            "LIN-LP phase diagram, loss landscapes); write DIR/NAME.json with every plotted "
            "number and the PNGs beside it. "
            + _exit_status("every claim the figures make holds", "one does not")
        ),
    )
    e.add_argument("name", nargs="?", metavar="NAME", help="experiment name (see --list)")
    e.add_argument("--out", metavar="DIR", help="output folder (created if missing)")
    e.add_argument("--quick", action="store_true", help="small sizes: seconds, for tests")
    e.add_argument("--seed", type=int, default=0, metavar="N", help=seed_help)
    e.add_argument(
        "--data",
        help="dataset: breast-cancer or digits-A-B (e.g. digits-3-8); for entropy-sgd-robust "
        "digits, mnist:DIR or cifar10:DIR",
    )
    e.add_argument("--list", action="store_true", help="list the experiments and exit")
    e.set_defaults(func=_experiment)

    s = sub.add_parser(
        "landscape",
        help="1-D and 2-D slices of the adversarial loss, L2 beside L∞ (JSON + PNG)",
        description=(
            "Train a linear model and/or a small MLP under L2 and under L∞ (matched budgets) and "
            "draw slices of their adversarial losses; write DIR/landscape.json and PNGs. "
            + _exit_status("every claim the figures make holds", "one does not")
        ),
    )
    s.add_argument("--out", metavar="DIR", required=True, help="output folder (created if missing)")
    s.add_argument("--model", choices=("linear", "mlp", "both"), help="which model (default both)")
    s.add_argument("--data", help="dataset: breast-cancer or digits-A-B (e.g. digits-3-8)")
    s.add_argument("--eps", type=float, help="L2 budget ε₂ > 0 (L∞ gets ε₂/√d)")
    s.add_argument("--quick", action="store_true", help="small sizes: seconds, for tests")
    s.add_argument("--seed", type=int, default=0, metavar="N", help=seed_help)
    s.set_defaults(func=_landscape)

    c = sub.add_parser(
        "curvature",
        help="total vs naive curvature of a network's adversarial loss (table + JSON)",
        description=(
            "Attack every example, then measure the top eigenvalues (and optionally the trace "
            "and spectral density) of the total Hessian of the adversarial loss — the attack's "
            "dependence on θ counted — beside the naive one (attack held fixed). "
            + _exit_status(
                "the total Hessian is determined at every example",
                "some examples are undetermined (their reasons are printed)",
            )
        ),
    )
    c.add_argument(
        "--model",
        required=True,
        metavar="MODULE:FACTORY",
        help="a factory returning an equinox/flax/PyTorch model or (params, loss_fn); it is "
        "given key, input_shape, num_classes if it takes them (e.g. advlip.networks:cnn)",
    )
    c.add_argument(
        "--data",
        default="digits",
        metavar="NAME_OR_PATH",
        help="digits, synthetic-cifar10, cifar10:DIR, mnist:DIR, or a CIFAR-10/MNIST folder",
    )
    c.add_argument("--split", choices=("train", "test"), default="test", help="default test")
    c.add_argument("--n", type=int, default=64, help="examples drawn from the data (default 64)")
    c.add_argument("--p", required=True, help="attack norm: 1, 2 or inf")
    c.add_argument("--eps", type=float, required=True, help="attack radius ε >= 0")
    c.add_argument("--k", type=int, default=1, help="top-k eigenvalues of each Hessian")
    c.add_argument("--trace", action="store_true", help="Hutch++ traces with standard errors")
    c.add_argument("--density", action="store_true", help="spectral densities (SLQ)")
    c.add_argument("--num-samples", type=int, default=30, help="trace probes (default 30)")
    c.add_argument("--batch-size", type=int, help="attack and multiply in batches of B")
    c.add_argument("--layer", help="restrict to parameters whose path starts with this")
    c.add_argument("--loss", default="cross_entropy", help="cross_entropy, cw or dlr")
    c.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    c.add_argument(
        "--layout",
        choices=("auto", "nhwc", "nchw"),
        default="auto",
        help="image layout the model takes (auto: NCHW for PyTorch/equinox, else NHWC)",
    )
    c.add_argument("--seed", type=int, default=0, metavar="N", help=seed_help)
    c.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    c.add_argument("--png", metavar="PATH", help="draw the spectral densities to PATH")
    c.set_defaults(func=_curvature)
    return parser


def _internal_error(command: str, argv: Sequence[str]) -> None:
    """The traceback of the exception being handled, and what to do with it."""
    import traceback

    from advlip import __version__

    traceback.print_exc(file=sys.stderr)
    _progress(
        f"advlip {command}: internal error: this is a bug in advlip {__version__}, not a "
        "problem with your input. Please report it to the advlip developers with the "
        "traceback above and the command that replays it:\n"
        f"    {shlex.join(['advlip', *argv])}"
    )


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush into the closed
    pipe raises nothing (Python's documented recipe for SIGPIPE)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``advlip`` command; returns the exit status (see the module docstring).

    Args:
        argv: the arguments after ``advlip``; ``None``: ``sys.argv[1:]``.

    Returns:
        The exit status: 0, 1, 2, 3, 130 or 141 (see the module docstring).

    Raises:
        SystemExit: argparse's, for a syntax error (status 2) or ``--help`` (status 0).

    Example:
        >>> from advlip import cli
        >>> code = cli.main(["verify", "--bounds", "--only", "LIN-L2-ZERO"])
        LIN-L2-ZERO — L2 adversarial loss is not smooth at w = 0
          statement: pairs ±t·v: R ≈ ε|mean ℓ'(y b)|/t → ∞ (growth exponent −1)
          bound:     ε·|mean ℓ'|/t
          theory:    docs/theory/lin-l2-zero.md
        <BLANKLINE>
        Notation and the list of results: docs/theory/index.md.
        >>> code
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv  # the command as given: reports print it to replay the run
    # verify --list and --bounds print what is registered: nothing is compiled
    static = args.command == "verify" and (args.list or args.bounds)
    if not static and (
        args.command == "verify" or (args.command in ("experiment", "landscape") and args.quick)
    ):
        _fast_compile()  # quick runs are mostly compilation; must precede JAX's backend
    import jax

    x64_before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # the command verifies in float64
    if not static:
        _enable_compilation_cache()
    try:
        return args.func(args)
    except UsageError as err:  # raised while the arguments are checked, before the run
        _progress(f"advlip {args.command}: error: {err}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _progress(f"advlip {args.command}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of stdout left (advlip verify --list | head)
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception:  # every argument was checked: an error in the run is advlip's
        _internal_error(args.command, argv)
        return EXIT_INTERNAL
    finally:  # called in-process (tests, a notebook): leave the caller's setting as it was
        jax.config.update("jax_enable_x64", x64_before)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
