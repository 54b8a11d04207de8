r"""Experiments that make the theory's results visible on real data: numbers, JSON and pictures.

Each experiment trains or measures something, checks what its figure claims, and writes
``out_dir/NAME.json`` (every plotted number, strict JSON) and PNGs beside it. The PNGs
are drawn from the JSON document itself (:func:`figures` redraws them from it), so the
document holds every number a figure shows.

=====================  ====================================================================
name                   what it shows (theory page)
=====================  ====================================================================
``phase-diagram``      the growth exponent of R at the kink against p, on ``q − 2``
                       (docs/theory/lin-lp.md)
``linear-l2-vs-linf``  adversarial training of a linear model, L2 vs L∞ at matched budgets:
                       R along training under LIN-L2's β / jumping at L∞ kinks, weights
                       driven to the kinks, λ_max of the total vs naive Hessian
                       (docs/theory/closed-form.md)
``mlp-l2-vs-linf``     the same for a small MLP with PGD; robust accuracy from a stronger
                       attack; total vs naive λ_max at checkpoints (full size)
                       (docs/theory/general-models.md)
``entropy-sgd``        F_γ is γ-smooth across an L∞ kink (2-D quadrature) while R of L
                       grows like 1/t; EntropySGD vs plain adversarial training
                       (docs/theory/entropy-smooth.md)
``flatness``           λ_max of the total Hessian against the input curvature κ of the
                       family ℓ_κ (:class:`advlip.models.FlatnessLoss`): flatness in x vs
                       smoothness in θ (docs/theory/gen-flatness.md)
``landscape``          1-D and 2-D slices of the adversarial loss, L2 beside L∞ (linear
                       model through a kink; MLP along filter-normalised directions)
=====================  ====================================================================

Budgets are matched by :func:`advlip.training.matched_eps`: :math:`\varepsilon_\infty =
\varepsilon_2/\sqrt d`, the largest L∞ ball inside the L2 ball. ``quick=True`` sizes every
experiment for a test (seconds); the full size takes minutes. Everything random comes
from ``key`` (a JAX PRNG key; the command line's ``--seed N`` is ``jax.random.PRNGKey(N)``):
the same key gives the same JSON numbers.

Example:
    >>> from advlip import experiments
    >>> "phase-diagram" in experiments.names()
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from advlip import data, keys, tolerance, training
from advlip.linear import LinearProblem
from advlip.losses import get_loss

__all__ = [
    "names",
    "describe",
    "options_of",
    "dataset",
    "check_data",
    "run",
    "figures",
    "DATASETS",
]

#: The bundled datasets the experiments accept (scikit-learn ships them; no download).
DATASETS = ("breast-cancer", "digits-A-B (two different digits 0-9, e.g. digits-3-8)")

Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class _Ctx:
    name: str
    out_dir: Path
    quick: bool
    key: jax.Array
    progress: Progress
    options: dict

    @property
    def seed(self) -> int:
        """The integer the key spells (:func:`advlip.keys.key_seed`): N for ``PRNGKey(N)``."""
        return keys.key_seed(self.key)

    def png(self, suffix: str = "") -> Path:
        return self.out_dir / f"{self.name}{'-' + suffix if suffix else ''}.png"


@dataclasses.dataclass(frozen=True)
class _Experiment:
    fn: Callable[[_Ctx], dict]
    summary: str
    options: tuple[str, ...] = ()


_REGISTRY: dict[str, _Experiment] = {}

#: Per experiment, its figures drawn from its JSON document: ``[(suffix, Figure), ...]``.
_DRAWERS: dict[str, Callable[[dict], list]] = {}


def _register(name: str, summary: str, options: tuple[str, ...] = ()):
    def deco(fn):
        _REGISTRY[name] = _Experiment(fn, summary, options)
        return fn

    return deco


def _drawer(name: str):
    def deco(fn):
        _DRAWERS[name] = fn
        return fn

    return deco


def _draw(ctx: _Ctx, body: dict) -> list[Path]:
    """Draw the figures of ``body`` from its JSON form (what ``NAME.json`` holds) and save
    them beside it; the PNG paths."""
    from advlip import plots

    doc = training.json_safe({**body, "quick": ctx.quick})
    paths = []
    for suffix, fig in _DRAWERS[ctx.name](doc):
        path = ctx.png(suffix)
        plots._save(fig, path)
        paths.append(path)
    return paths


def figures(doc: dict, name: str | None = None) -> dict[str, Any]:
    """Redraw the figures of an experiment's JSON document from its numbers alone.

    The experiments draw their PNGs this way, so the figures returned here are the ones
    in the PNGs, open to inspection (:func:`advlip.plots.figure_problems`, their artists).

    Args:
        doc: the document :func:`run` returned, or ``NAME.json`` read back with
            ``json.load``.
        name: the experiment (default ``doc["experiment"]``).

    Returns:
        ``{PNG file name: matplotlib Figure}``, in the order of ``doc["pngs"]``.

    Raises:
        ValueError: ``name`` is not a known experiment.

    Example:
        >>> from advlip import experiments, plots
        >>> doc = {"experiment": "phase-diagram",
        ...        "points": [{"p": 2.0, "exponent": 0.0, "tolerance": 0.01}],
        ...        "curve": {"inv_p": [0.25, 0.75], "expected": [-0.67, 0.0]}}
        >>> figs = experiments.figures(doc)
        >>> list(figs), plots.figure_problems(figs["phase-diagram.png"])
        (['phase-diagram.png'], [])
    """
    name = doc.get("experiment") if name is None else name
    if name not in _REGISTRY:
        raise ValueError(f"experiment {name!r} is not known; allowed: {', '.join(names())}")
    if name not in _DRAWERS:
        _lazy_drawer(name)
    return {
        f"{name}{'-' + suffix if suffix else ''}.png": fig for suffix, fig in _DRAWERS[name](doc)
    }


def _lazy_drawer(name: str) -> None:
    """The drawers of the experiments that live in their own modules."""
    if name == "curvature-table":
        from advlip import curvature_table

        _DRAWERS[name] = curvature_table._figures
    elif name == "entropy-sgd-robust":
        from advlip import robust_training

        _DRAWERS[name] = robust_training._figures


def names() -> list[str]:
    """The experiment names, in the order ``advlip experiment --list`` prints them.

    Returns:
        The names, each a valid ``name`` of :func:`run`.

    Example:
        >>> from advlip import experiments
        >>> experiments.names()[:2]
        ['phase-diagram', 'linear-l2-vs-linf']
    """
    return list(_REGISTRY)


def describe() -> dict[str, str]:
    """What each experiment shows, in a line.

    Returns:
        ``{name: one-line summary}``, in the order of :func:`names`.

    Example:
        >>> from advlip import experiments
        >>> experiments.describe()["landscape"].startswith("1-D and 2-D slices")
        True
    """
    return {k: v.summary for k, v in _REGISTRY.items()}


def options_of(name: str) -> tuple[str, ...]:
    """The options experiment ``name`` accepts (keyword arguments of :func:`run`).

    Args:
        name: an experiment name (:func:`names`).

    Returns:
        The option names; ``()`` when it takes none.

    Raises:
        ValueError: ``name`` is not a known experiment.

    Example:
        >>> from advlip import experiments
        >>> experiments.options_of("landscape"), experiments.options_of("flatness")
        (('model', 'data', 'eps'), ())
    """
    if name not in _REGISTRY:
        raise ValueError(f"experiment {name!r} is not known; allowed: {', '.join(names())}")
    return _REGISTRY[name].options


#: The largest ``--seed`` of the command line (``advlip.cli.MAX_SEED``): a key spelling a
#: larger integer is replayed from Python, not from the command line.
_MAX_CLI_SEED = 2**32 - 1


def run(
    name: str,
    *,
    out_dir: str | Path,
    quick: bool = False,
    key: jax.Array | None = None,
    progress: Progress | None = _stderr,
    **options: Any,
) -> dict:
    """Run experiment ``name``; write ``out_dir/NAME.json`` and its PNGs; return the JSON document.

    The document holds every plotted number, the checks of what each figure claims
    (``"claims"``: statement, ``holds``, the figures), ``"seed"`` (the integer the key
    spells, :func:`advlip.keys.key_seed`: N for ``PRNGKey(N)``), ``"quick"``, the command
    that replays it (``"replay"``: ``advlip experiment NAME ... --seed N``) and the PNG
    paths (``"pngs"``), drawn from the document itself (:func:`figures`). Non-finite
    floats are written as the strings ``"nan"``/``"inf"``.

    Args:
        name: the experiment (:func:`names`).
        out_dir: the folder of the JSON and the PNGs (created if missing).
        quick: the quick size (seconds to a few minutes) instead of the full one.
        key: the JAX PRNG key of every random draw (default ``jax.random.PRNGKey(0)``).
        progress: called with a line of text as the run goes (default: stderr; None:
            silent).
        **options: experiment-specific (:func:`options_of`; ``landscape``: ``model`` in
            ``linear``, ``mlp``, ``both``, and ``data``, ``eps``; the training
            experiments: ``data``).

    Returns:
        The JSON document, as written to ``out_dir/NAME.json``.

    Raises:
        ValueError: an unknown ``name`` or option, a bad option value, a ``key`` that is
            not one JAX PRNG key, or an ``out_dir`` that cannot be written — before any
            work is done.

    Example:
        >>> import tempfile
        >>> from advlip import experiments
        >>> experiments.run("flatness", out_dir=tempfile.mkdtemp(), data="digits-3-8")
        Traceback (most recent call last):
        ...
        ValueError: experiment 'flatness' takes no option(s) ['data']; allowed: none
    """
    with jax.enable_x64(True):  # experiments verify in float64; scoped to this run
        if name not in _REGISTRY:
            raise ValueError(f"experiment {name!r} is not known; allowed: {', '.join(names())}")
        exp = _REGISTRY[name]
        unknown = sorted(set(options) - set(exp.options))
        if unknown:
            raise ValueError(
                f"experiment {name!r} takes no option(s) {unknown}; "
                f"allowed: {list(exp.options) or 'none'}"
            )
        key = jax.random.PRNGKey(0) if key is None else keys.check_key(key)
        out = _output_dir(out_dir)
        progress = progress or (lambda msg: None)
        ctx = _Ctx(
            name,
            out,
            bool(quick),
            key,
            progress,
            {k: v for k, v in options.items() if v is not None},
        )
        size = "quick" if quick else "full"
        progress(f"advlip experiment {name}: {size} size, seed {ctx.seed} (float64)")
        start = time.perf_counter()
        body = exp.fn(ctx)
        replay = _replay(name, out, ctx)
        doc = {
            "experiment": name,
            "summary": exp.summary,
            "seed": ctx.seed,
            "quick": bool(quick),
            "options": ctx.options,
            "replay": replay,
            **body,
        }
        doc["pngs"] = [str(p) for p in body.get("pngs", [])]
        doc = training.json_safe(doc)
        path = out / f"{name}.json"
        path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
        claims = doc.get("claims", [])
        held = sum(bool(c.get("holds")) for c in claims)
        progress(
            f"advlip experiment {name}: {held}/{len(claims)} claims hold; wrote {path} and "
            f"{len(doc['pngs'])} PNG(s) in {time.perf_counter() - start:.1f} s"
        )
        return doc


def _output_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a writable folder, created if missing; a ValueError naming it if not."""
    import tempfile

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir={str(out_dir)!r} exists and is a file; give a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise ValueError(
            f"out_dir={str(out_dir)!r} cannot be created or written ({err.strerror}); "
            "give a writable directory"
        ) from None
    return out


def _replay(name: str, out: Path, ctx: _Ctx) -> str:
    if ctx.seed > _MAX_CLI_SEED:  # a split or folded key: no --seed spells it
        bits = np.asarray(jax.random.key_data(ctx.key)).ravel().tolist()
        args = "".join(f", {k}={v!r}" for k, v in ctx.options.items())
        return (
            f"advlip.experiments.run({name!r}, out_dir={str(out)!r}, quick={ctx.quick}, "
            f"key=jax.numpy.array({bits}, dtype='uint32'){args})"
        )
    if name == "landscape":
        cmd = "advlip landscape"
        for key in ("model", "data", "eps"):
            if key in ctx.options:
                cmd += f" --{key} {ctx.options[key]}"
    else:
        cmd = f"advlip experiment {name}"
        for key, val in ctx.options.items():
            cmd += f" --{key} {val}"
    cmd += f" --out {out} --seed {ctx.seed}"
    return cmd + (" --quick" if ctx.quick else "")


def _claim(statement: str, holds: bool, **figures: Any) -> dict:
    return {"claim": statement, "holds": bool(holds), **figures}


# --------------------------------------------------------------------------- data


def dataset(name: str) -> tuple[jax.Array, jax.Array, str]:
    """A bundled binary dataset the experiments take, and how it is scaled.

    ``breast-cancer``: :func:`advlip.data.breast_cancer` (standardised / √30, ‖x‖ ≈ 1);
    ``digits-A-B``: :func:`advlip.data.digits` with pixels rescaled to [0, 1] (‖x‖ ≈ 4).

    Args:
        name: ``breast-cancer`` or ``digits-A-B`` (two different digits 0-9).

    Returns:
        ``(X, y, description)``: inputs (n, d), labels ±1, and a line saying what they are.

    Raises:
        ValueError: ``name`` is not a bundled dataset.

    Example:
        >>> from advlip import experiments
        >>> X, y, desc = experiments.dataset("digits-3-8")
        >>> X.shape[1], float(X.max()) <= 1.0, desc.split(":")[0]
        (64, True, 'digits 3 (+1) vs 8 (-1)')
    """
    key = str(name).strip().lower()
    if key in ("breast-cancer", "breast_cancer"):
        X, y = data.breast_cancer()
        return X, y, "breast-cancer: 569 x 30, standardised features / sqrt(30), +1 benign"
    m = re.fullmatch(r"digits-(\d)-(\d)", key)
    if m and m.group(1) != m.group(2):
        a, b = int(m.group(1)), int(m.group(2))
        X, y = data.digits((a, b))
        return X * 8.0, y, f"digits {a} (+1) vs {b} (-1): 8x8 pixels in [0, 1]"
    raise ValueError(f"data={name!r} is not a bundled dataset; allowed: {', '.join(DATASETS)}")


#: Experiments whose ``data`` option is an image dataset (:func:`advlip.data.images`:
#: ``digits``, ``mnist:DIR``, ``cifar10:DIR``), not a bundled binary one.
IMAGE_DATA = ("entropy-sgd-robust",)


def check_data(name: str, value: str) -> None:
    """Refuse a ``data`` option experiment ``name`` cannot read, before the run.

    Binary sets are checked by name (:func:`dataset`), image sets (the experiments in
    :data:`IMAGE_DATA`) by reading one example.

    Args:
        name: the experiment.
        value: its ``data`` option.

    Raises:
        ValueError: naming the data set and the ones allowed.

    Example:
        >>> from advlip import experiments
        >>> experiments.check_data("linear-l2-vs-linf", "breast-cancer")
        >>> experiments.check_data("linear-l2-vs-linf", "mnist")
        Traceback (most recent call last):
        ...
        ValueError: data='mnist' is not a bundled dataset; allowed: breast-cancer, digits-A-B (two different digits 0-9, e.g. digits-3-8)
    """
    if name in IMAGE_DATA:
        data.images(value, split="test", n=1)
    else:
        dataset(value)


def _split(X, y, key: jax.Array, n_train: int, n_test: int | None):
    """A train/test split drawn from ``key`` (:func:`advlip.keys.numpy_rng` ``(key, 1)``)."""
    perm = keys.numpy_rng(key, 1).permutation(X.shape[0])
    n_test = X.shape[0] - n_train if n_test is None else n_test
    if n_train + n_test > X.shape[0]:
        raise ValueError(f"n_train + n_test = {n_train + n_test} exceeds the {X.shape[0]} examples")
    tr, te = perm[:n_train], perm[n_train : n_train + n_test]
    return X[tr], y[tr], X[te], y[te]


def _p_name(p: float) -> str:
    return "inf" if math.isinf(p) else f"{p:g}"


# --------------------------------------------------------------------------- phase diagram


def _expected_curve(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """LIN-LP's exponent against 1/p ∈ (0, 1): q − 2 for 2 < p < ∞, 0 for 1 < p ≤ 2
    (docs/theory/lin-lp.md)."""
    inv_p = np.linspace(1e-4, 1 - 1e-4, n)
    q = 1.0 / (1.0 - inv_p)
    return inv_p, np.where(inv_p < 0.5, q - 2.0, 0.0)


@_register("phase-diagram", "LIN-LP: growth exponent of R at the kink vs p, on the theory's q - 2")
def _phase_diagram(ctx: _Ctx) -> dict:
    from advlip.theorems.base import CheckConfig
    from advlip.theorems.linear import EPS, check_lin_lp

    res = check_lin_lp(CheckConfig(seed=ctx.seed, quick=ctx.quick))
    points = res.figures["points"]
    inv_p, curve = _expected_curve()
    ok = [abs(pt["exponent"] - pt["expected"]) <= pt["tolerance"] for pt in points]
    body = {
        "points": points,
        "curve": {"inv_p": inv_p, "expected": curve},
        "verdict": res.verdict,
        "figure": res.figure,
        "data": f"advlip.data.synthetic(jax.random.PRNGKey({ctx.seed}), n=24, d=4)",
        "eps": EPS,
        "claims": [
            _claim(
                "every measured exponent lies on LIN-LP's curve (0 for 1<p<=2, q-2 for 2<p<inf, "
                "-1 for p in {1, inf}; docs/theory/lin-lp.md) within the tolerance the fit "
                "reports",
                all(ok),
                agree=int(sum(ok)),
                of=len(ok),
            )
        ],
    }
    return {**body, "pngs": _draw(ctx, body)}


@_drawer("phase-diagram")
def _draw_phase_diagram(doc: dict) -> list:
    from advlip import plots

    curve = doc["curve"]
    return [("", plots.phase_diagram(doc["points"], curve["inv_p"], curve["expected"]))]


# --------------------------------------------------------------------------- linear L2 vs L∞


def _linear_setup(name: str, quick: bool) -> dict:
    X, y, desc = dataset(name)
    big = name.startswith("digits")
    eps_l2 = (
        ([0.5] if quick else [0.25, 0.5, 1.0]) if big else ([0.25] if quick else [0.1, 0.25, 0.5])
    )
    return {"X": X, "y": y, "desc": desc, "eps_l2": eps_l2}


def _sgd_rate(X, eps_l2: float) -> float:
    """1/β with β = ¼((max‖x‖ + ε₂)² + 1): the step of gradient descent on a β-smooth
    function (LIN-L2's first term, softplus, with the bias)."""
    xm = float(jnp.max(jnp.linalg.norm(X, axis=1)))
    return 1.0 / (0.25 * ((xm + eps_l2) ** 2 + 1.0))


def _linear_runs(ctx: _Ctx, datasets: list[str], steps: int, optimizers: list[str]) -> list[dict]:
    runs = []
    for name in datasets:
        setup = _linear_setup(name, ctx.quick)
        X, y = setup["X"], setup["y"]
        d = int(X.shape[1])
        for e2 in setup["eps_l2"]:
            for opt in optimizers:
                lr = 0.05 if opt == "adam" else _sgd_rate(X, e2)
                for p in (2.0, math.inf):
                    eps = training.matched_eps(e2, d, p)
                    prob = LinearProblem(X=X, y=y, eps=eps, p=p, fit_bias=True)
                    ctx.progress(
                        f"[{name}] linear, p={_p_name(p)}, eps={eps:.4g} (eps_2={e2:g}), {opt}"
                    )
                    h = training.train(
                        prob,
                        optimizer=opt,
                        learning_rate=lr,
                        steps=steps,
                        key=ctx.key,
                        track_every=max(1, steps // 5),
                        progress=ctx.progress,
                    )
                    runs.append(
                        {
                            "data": name,
                            "data_description": setup["desc"],
                            "eps_l2": e2,
                            "eps": eps,
                            "p": p,
                            "optimizer": opt,
                            "learning_rate": lr,
                            "history": h,
                            "final_abs_w": np.abs(h.final_params[:d]),
                        }
                    )
    return runs


def _linear_claims(runs: list[dict]) -> list[dict]:
    claims = []
    dec = [r["history"].loss[-1] < r["history"].loss[0] for r in runs]
    claims.append(
        _claim(
            "training lowers the adversarial loss (every run)",
            all(dec),
            runs=len(runs),
            lowered=int(sum(dec)),
        )
    )
    rob = [bool(np.all(r["history"].robust_acc <= r["history"].clean_acc)) for r in runs]
    claims.append(
        _claim("robust accuracy <= clean accuracy at every step (exact closed form)", all(rob))
    )
    l2 = [r for r in runs if r["p"] == 2.0]
    viol = [
        int(np.sum(r["history"].grad_ratio > r["history"].ratio_bound + r["history"].ratio_error))
        for r in l2
    ]
    worst = max(float(np.nanmax(r["history"].grad_ratio / r["history"].ratio_bound)) for r in l2)
    claims.append(
        _claim(
            "L2: every gradient ratio between consecutive iterates is under LIN-L2's "
            "beta(w_t, w_t+1)",
            sum(viol) == 0,
            violations=sum(viol),
            worst_R_over_beta=worst,
        )
    )
    li = [r for r in runs if math.isinf(r["p"])]
    smooth_viol, crossings, kink_max, smooth_max = 0, 0, 0.0, 0.0
    for r in li:
        h = r["history"]
        ok = ~h.kink_crossed
        smooth_viol += int(np.sum(h.grad_ratio[ok] > h.ratio_bound[ok] + h.ratio_error[ok]))
        crossings += int(np.sum(h.kink_crossed))
        if np.any(h.kink_crossed):
            kink_max = max(kink_max, float(np.nanmax(h.grad_ratio[h.kink_crossed])))
        if np.any(ok):
            smooth_max = max(smooth_max, float(np.nanmax(h.grad_ratio[ok] / h.ratio_bound[ok])))
    claims.append(
        _claim(
            "Linf: on steps that cross no kink w_i = 0, R is under the smooth-piece bound "
            "l''max((max||x|| + eps sqrt(d))^2 + 1); steps that cross one are reported",
            smooth_viol == 0,
            violations=smooth_viol,
            kink_crossing_steps=crossings,
            max_R_on_crossing_steps=kink_max,
            worst_R_over_bound_off_kinks=smooth_max,
        )
    )
    lam_ok, eq_ok = True, True
    for r in runs:
        h = r["history"]
        if r["p"] == 2.0:  # total - naive = -eps mean l' (I - ŵŵᵀ)/‖w‖ ⪰ 0
            lam_ok &= bool(np.all(h.lambda_max_total >= h.lambda_max_naive - h.lambda_error))
        else:  # ‖w‖_1 is piecewise linear: no curvature term
            eq_ok &= bool(np.all(np.abs(h.lambda_max_total - h.lambda_max_naive) <= h.lambda_error))
    claims.append(
        _claim(
            "lambda_max of the total Hessian >= the naive one (delta held fixed) under L2, "
            "and equal under Linf (norm Hessian 0), within the float64 error",
            lam_ok and eq_ok,
            l2_total_ge_naive=lam_ok,
            linf_equal=eq_ok,
        )
    )
    return claims


def _near_zero_finding(runs: list[dict]) -> dict:
    """L∞ vs L2: the fraction of weights within one step of their kink w_i = 0 at the end of
    each pair of runs (same data, budget, optimiser). A finding, reported either way."""
    rows = []
    for r in runs:
        if not math.isinf(r["p"]):
            continue
        twin = next(
            s
            for s in runs
            if s["p"] == 2.0
            and (s["data"], s["eps_l2"], s["optimizer"]) == (r["data"], r["eps_l2"], r["optimizer"])
        )
        rows.append(
            {
                "data": r["data"],
                "eps_l2": r["eps_l2"],
                "optimizer": r["optimizer"],
                "near_zero_linf": float(r["history"].near_zero[-1]),
                "near_zero_l2": float(twin["history"].near_zero[-1]),
            }
        )
    more = [row["near_zero_linf"] > row["near_zero_l2"] for row in rows]
    return {
        "finding": "fraction of weights within one step of their kink (|w_i| <= |w_i - w_i,prev|) "
        "after training, Linf vs L2 at the matched budget",
        "linf_more_in": int(sum(more)),
        "of": len(rows),
        "pairs": rows,
    }


def _run_dicts(runs: list[dict]) -> list[dict]:
    out = []
    for r in runs:
        item = {k: v for k, v in r.items() if k != "history"}
        item["history"] = r["history"].to_dict()
        out.append(item)
    return out


@_register(
    "linear-l2-vs-linf",
    "adversarial training of a linear model, L2 vs Linf at matched budgets (closed-form attack)",
    options=("data",),
)
def _linear_l2_vs_linf(ctx: _Ctx) -> dict:
    datasets = (
        [ctx.options["data"]]
        if "data" in ctx.options
        else (["breast-cancer"] if ctx.quick else ["breast-cancer", "digits-3-8"])
    )
    for name in datasets:
        dataset(name)  # validate before any work
    steps = 150 if ctx.quick else 400
    optimizers = ["adam", "sgd-momentum"]
    runs = _linear_runs(ctx, datasets, steps, optimizers)
    body = {
        "matching": training.MATCHING,
        "attack": "closed form (exact): delta* = -y eps u(w), "
        "robust accuracy = mean(m - eps ||w||_q > 0)",
        "steps": steps,
        "optimizers": {
            "adam": "optax.adam(0.05)",
            "sgd-momentum": "optax.sgd(1/beta, momentum=0.9), beta = 1/4((max||x||+eps_2)^2+1)",
        },
        "init": "w ~ N(0, 0.1^2/d), b ~ N(0, 0.01/d), from the key (LinearProblem.init)",
        "runs": _run_dicts(runs),
        "claims": _linear_claims(runs),
        "findings": [_near_zero_finding(runs)],
    }
    return {**body, "pngs": _draw(ctx, body)}


@_drawer("linear-l2-vs-linf")
def _draw_linear(doc: dict) -> list:
    from advlip import plots

    return [
        ("training", plots.linear_training(doc["runs"])),
        ("summary", plots.linear_summary(doc["runs"])),
    ]


# --------------------------------------------------------------------------- MLP L2 vs L∞


@_register(
    "mlp-l2-vs-linf",
    "adversarial training of a small MLP with PGD, L2 vs Linf; strong-attack robust accuracy",
    options=("data",),
)
def _mlp_l2_vs_linf(ctx: _Ctx) -> dict:
    name = ctx.options.get("data", "digits-3-8")
    X, y, desc = dataset(name)
    q = ctx.quick
    n_train = min(150 if q else 250, X.shape[0] - 50)
    n_test = min(100, X.shape[0] - n_train) if q else None
    Xtr, ytr, Xte, yte = _split(X, y, ctx.key, n_train, n_test)
    d = int(X.shape[1])
    widths = (8,) if q else (16,)
    steps = 40 if q else 150
    attack_steps = 5 if q else 10
    strong_steps, restarts = (20, 2) if q else (50, 4)
    big = name.startswith("digits")
    eps_grid = ([0.5] if q else [0.25, 0.5, 1.0]) if big else ([0.25] if q else [0.1, 0.25, 0.5])
    optimizers = [("adam", 0.02)] if q else [("adam", 0.02), ("sgd-momentum", 0.2)]
    runs = []
    for e2 in eps_grid:
        for opt, lr in optimizers:
            for p in (2.0, math.inf):
                eps = training.matched_eps(e2, d, p)
                certify = (not q) and opt == "adam" and e2 == eps_grid[len(eps_grid) // 2]
                prob = training.MLPProblem(
                    X=Xtr, y=ytr, eps=eps, p=p, widths=widths, attack_steps=attack_steps
                )
                ctx.progress(
                    f"[{name}] MLP {widths}, p={_p_name(p)}, eps={eps:.4g} (eps_2={e2:g}), "
                    f"{opt}{', certified checkpoints' if certify else ''}"
                )
                h = training.train(
                    prob,
                    optimizer=opt,
                    learning_rate=lr,
                    steps=steps,
                    key=ctx.key,
                    track_every=max(1, steps // (2 if q else 3)),
                    eval_data=(Xte, yte),
                    strong_steps=strong_steps,
                    strong_restarts=restarts,
                    certify=certify,
                    progress=ctx.progress,
                )
                runs.append(
                    {
                        "eps_l2": e2,
                        "eps": eps,
                        "p": p,
                        "optimizer": opt,
                        "learning_rate": lr,
                        "certified": certify,
                        "history": h,
                    }
                )
    claims = []
    dec = [r["history"].loss[-1] < r["history"].loss[0] for r in runs]
    claims.append(
        _claim(
            "training lowers the adversarial loss (every run)",
            all(dec),
            lowered=int(sum(dec)),
            runs=len(runs),
        )
    )
    rob = all(
        bool(np.all(r["history"].robust_acc <= r["history"].clean_acc))
        and bool(np.all(r["history"].ck_robust_acc <= r["history"].ck_clean_acc))
        for r in runs
    )
    claims.append(
        _claim(
            "robust accuracy <= clean accuracy (every step on the training set, every "
            "checkpoint on the test set)",
            rob,
        )
    )
    strong = all(
        bool(np.all(r["history"].ck_strong_robust_acc <= r["history"].ck_robust_acc)) for r in runs
    )
    gap = max(
        float(np.max(r["history"].ck_robust_acc - r["history"].ck_strong_robust_acc)) for r in runs
    )
    claims.append(
        _claim(
            "the strong attack's robust accuracy <= the training attack's (every checkpoint)",
            strong,
            largest_drop=gap,
        )
    )
    cert = [r for r in runs if r["certified"]]
    findings = []
    if cert:
        # G1 (interior maximiser) / G2 (L2 sphere): ∇²L = H_θθ + H_θx A⁺ P H_xθ with A = P(μI − H_xx)P ≻ 0 where the attack is
        # determined, so the correction is PSD and λ_max(total) ≥ λ_max(naive) (Courant–Fischer);
        # checked at the checkpoints where every example is determined, up to the Lanczos bounds
        ok, used = True, 0
        for r in cert:
            h = r["history"]
            for k, c in enumerate(h.info["checkpoints"]):
                if c.get("determined") != c.get("n"):
                    continue
                used += 1
                ok &= bool(h.lambda_max_total[k] >= h.lambda_max_naive[k] - 2 * h.lambda_error[k])
        claims.append(
            _claim(
                "lambda_max of the total Hessian >= that of the naive one (delta held fixed) at "
                "every certified checkpoint where the attack is determined on every example "
                "(the implicit correction is PSD: docs/theory/general-models.md)",
                ok and used > 0,
                checkpoints_used=used,
            )
        )
        findings.append(
            {
                "finding": "certified attack (advlip.attacks.pgd from the strong delta): examples "
                "converged / determined / n at each certified checkpoint",
                "per_run": [
                    {
                        "p": r["p"],
                        "eps": r["eps"],
                        "converged": [
                            c["certified_converged"] for c in r["history"].info["checkpoints"]
                        ],
                        "determined": [c["determined"] for c in r["history"].info["checkpoints"]],
                        "n": r["history"].info["n_train"],
                    }
                    for r in cert
                ],
            }
        )
    body = {
        "data": desc,
        "n_train": int(Xtr.shape[0]),
        "n_test": int(Xte.shape[0]),
        "model": f"MLP {d} -> {widths} -> 1, tanh, softplus margin loss (advlip.models.MLPLoss)",
        "matching": training.MATCHING,
        "attack": {
            "training": f"PGD, {attack_steps} steepest-ascent steps from 0, step "
            "2.5 eps/steps, best iterate",
            "strong": f"{strong_steps} PGD steps from 0 and from {restarts} uniform random "
            "starts in the "
            "ball, plus the training attack's delta; worst case per example",
            "certified": "full size, adam at the middle eps: advlip.attacks.pgd from the "
            "strong delta "
            "(KKT certificate), then advlip.adversarial.linearize(...).top_eigenvalue",
        },
        "lambda_max": "not computed at the quick size, and not drawn: the certified attack "
        "and the total Hessian compile for about a minute per norm (run without --quick)"
        if q
        else "Lanczos on total / naive Hessian-vector products (advlip.adversarial), "
        "certified runs only (adam, the middle budget); drawn in the last row of the figure",
        "steps": steps,
        "runs": _run_dicts(runs),
        "claims": claims,
        "findings": findings,
    }
    return {**body, "pngs": _draw(ctx, body)}


@_drawer("mlp-l2-vs-linf")
def _draw_mlp(doc: dict) -> list:
    from advlip import plots

    return [("training", plots.mlp_training(doc["runs"], quick=bool(doc.get("quick"))))]


# --------------------------------------------------------------------------- EntropySGD


@_register(
    "entropy-sgd",
    "F_gamma is gamma-smooth across an Linf kink (2-D quadrature); EntropySGD vs plain training",
    options=("data",),
)
def _entropy(ctx: _Ctx) -> dict:
    from advlip import entropy_sgd, smoothness
    from advlip.theorems import smoothing

    q = ctx.quick
    gammas = (1.0, 4.0) if q else smoothing.GAMMAS
    n_grid = 151 if q else 401
    prob2 = smoothing.entropy_problem(ctx.key)
    rows = []
    for g in gammas:
        ctx.progress(f"  quadrature of F_gamma, gamma={g:g}, {n_grid}^2 grid")
        rows.append(smoothing.entropy_ratios(prob2, g, key=ctx.key, n_grid=n_grid))
    ts = smoothness.witness_ts(1e-6, 1e-2)
    e = jnp.array([1.0, 0.0])
    dg, dt = smoothness.witness_differences(jax.jit(prob2.grad), jnp.array([0.0, 0.7]), e, -e, ts)
    fit = smoothness.fit_growth_exponent(ts, dg, dt)

    # EntropySGD vs plain adversarial training on real data (linear, L∞, matched budget)
    name = ctx.options.get("data", "breast-cancer")
    X, y, desc = dataset(name)
    d = int(X.shape[1])
    e2 = 1.0 if name.startswith("digits") else 0.25
    eps = training.matched_eps(e2, d, math.inf)
    prob = LinearProblem(X=X, y=y, eps=eps, p=math.inf, fit_bias=True)
    steps = 60 if q else 200
    lr = 0.5 * _sgd_rate(X, e2)
    train_gammas = (1.0,) if q else (1.0, 4.0)
    sgld = {"steps": 20, "step_size": 0.1, "temperature": 1e-4, "chains": 4}
    ctx.progress(f"[{name}] plain adversarial training (sgd-momentum), Linf eps={eps:.4g}")
    plain = training.train(
        prob,
        optimizer="sgd-momentum",
        learning_rate=lr,
        steps=steps,
        key=ctx.key,
        track_every=max(1, steps // 3),
        progress=ctx.progress,
    )
    esgd = []
    for g in train_gammas:
        opt = entropy_sgd.entropy_sgd(
            training.danskin_grad_fn(prob), lr, gamma=g, key=ctx.key, **sgld
        )

        def direction(state, theta, g=g):
            return g * (theta - state[0].last_mean)

        ctx.progress(f"[{name}] EntropySGD, gamma={g:g}, SGLD {sgld}")
        h = training.train(
            prob,
            optimizer=opt,
            optimizer_name=f"entropy-sgd(gamma={g:g})",
            steps=steps,
            key=ctx.key,
            track_every=max(1, steps // 3),
            direction_fn=direction,
            progress=ctx.progress,
        )
        esgd.append({"gamma": g, "history": h})
    claims = [
        _claim(
            "the gradient ratio of F_gamma never exceeds gamma (quadrature, kink and random "
            "pairs), "
            "up to the quadrature error",
            all(r["max_ratio"] - r["max_ratio_error"] <= r["gamma"] for r in rows),
            max_ratio_over_gamma=[r["max_ratio"] / r["gamma"] for r in rows],
        ),
        _claim(
            "0 <= eigenvalues of the Hessian of F_gamma <= gamma (quadrature)",
            all(r["hessian_ok"] for r in rows),
        ),
        _claim(
            "across the same kink R of the raw loss L grows like 1/t (growth exponent -1)",
            fit.resolved and fit.agrees_with(-1.0),
            exponent=fit.exponent,
            tolerance=fit.tolerance,
        ),
        _claim(
            "EntropySGD lowers the adversarial loss, like plain adversarial training",
            all(r["history"].loss[-1] < r["history"].loss[0] for r in esgd)
            and plain.loss[-1] < plain.loss[0],
            final_loss_plain=float(plain.loss[-1]),
            final_loss_entropy_sgd=[float(r["history"].loss[-1]) for r in esgd],
        ),
    ]
    body = {
        "gamma": [r["gamma"] for r in rows],
        "max_ratio": [r["max_ratio"] for r in rows],
        "max_ratio_error": [r["max_ratio_error"] for r in rows],
        "quadrature": {
            "problem": f"synthetic(PRNGKey({ctx.seed}), n=16, d=2), linear, Linf, "
            f"eps={smoothing.EPS}",
            "n_grid": n_grid,
            "cases": rows,
            "raw_loss_fit": fit.to_dict(),
        },
        "training": {
            "data": desc,
            "eps": eps,
            "eps_l2": e2,
            "matching": training.MATCHING,
            "learning_rate": lr,
            "momentum": 0.9,
            "sgld": sgld,
            "note": "EntropySGD spends sgld.steps gradient evaluations per step; "
            "direction_ratio is R "
            "of its SGLD estimate of grad F_gamma (Monte-Carlo noise included)",
            "plain": plain.to_dict(),
            "entropy_sgd": [{"gamma": r["gamma"], "history": r["history"].to_dict()} for r in esgd],
        },
        "claims": claims,
    }
    return {**body, "pngs": _draw(ctx, body)}


@_drawer("entropy-sgd")
def _draw_entropy(doc: dict) -> list:
    from advlip import plots

    quad, tr = doc["quadrature"], doc["training"]
    return [
        ("quadrature", plots.entropy_quadrature(quad["cases"], quad["raw_loss_fit"])),
        ("training", plots.entropy_training(tr["plain"], tr["entropy_sgd"])),
    ]


# --------------------------------------------------------------------------- flatness


@_register(
    "flatness",
    "flatness in x vs smoothness in theta: lambda_max of the total Hessian falls as the input "
    "curvature kappa grows",
)
def _flatness(ctx: _Ctx) -> dict:
    from advlip import adversarial, models

    q = ctx.quick
    X, y, desc = dataset("digits-3-8")
    X = X / 8.0  # pixels in [0, 1/8]: ‖x‖ ≤ 0.58
    n = 24 if q else 64
    idx = keys.numpy_rng(ctx.key, 2).permutation(X.shape[0])[:n]
    X, y = X[idx], y[idx]
    d = int(X.shape[1])
    eps = 2.0
    kappas = np.geomspace(0.02, 16.0, 7 if q else 15)
    params = models.init_flatness(ctx.key, d, w_norm=0.25, c=1.0)
    rows = []
    for k in kappas:
        fam = models.FlatnessLoss(jnp.asarray(float(k)))
        pt = adversarial.linearize(fam, params, X, y, eps=eps, p=2.0)
        blk = pt.blocks()
        tot, nai = np.asarray(blk.total), np.asarray(blk.naive)
        # Weyl: an eigenvalue moves by at most the spectral norm of the error, ≤ its Frobenius norm
        err = float(np.linalg.norm(np.asarray(blk.error))) + tolerance.gamma(tot.size) * float(
            np.linalg.norm(tot)
        )
        cases = pt.cases
        rows.append(
            {
                "kappa": float(k),
                "lambda_total": float(np.linalg.eigvalsh(0.5 * (tot + tot.T))[-1]),
                "lambda_naive": float(np.linalg.eigvalsh(0.5 * (nai + nai.T))[-1]),
                "lambda_formula": float(fam.lambda_max(params, y)),
                "error": err,
                "interior": int(sum(c == "interior" for c in cases)),
                "boundary": int(sum(c == "l2_boundary" for c in cases)),
                "determined": int(np.sum(pt.determined)),
                "n": n,
            }
        )
        ctx.progress(
            f"  kappa={k:.3g}: lambda_max total {rows[-1]['lambda_total']:.4g}, "
            f"naive {rows[-1]['lambda_naive']:.4g}, {rows[-1]['interior']}/{n} interior"
        )
    interior = [r for r in rows if r["interior"] == r["n"]]
    match = all(abs(r["lambda_total"] - r["lambda_formula"]) <= r["error"] for r in interior)
    mono = all(
        b["lambda_total"] <= a["lambda_total"] + a["error"] + b["error"]
        for a, b in zip(rows[:-1], rows[1:], strict=True)
    )
    s_c = float(models.FlatnessLoss(jnp.asarray(1.0)).curvature_of_c(params, y))
    naive_const = all(abs(r["lambda_naive"] - s_c) <= r["error"] for r in rows)
    body = {
        "family": "l_kappa(x, y; w, c) = y w.x - kappa/2 ||x||^2 + softplus(-y c) "
        "(advlip.models.FlatnessLoss)",
        "data": desc + f", rescaled to [0, 1/8]; n={n} seeded examples",
        "eps": eps,
        "p": 2.0,
        "w_norm": 0.25,
        "c": 1.0,
        "s_c": s_c,
        "kappa": [r["kappa"] for r in rows],
        "lambda_total": [r["lambda_total"] for r in rows],
        "lambda_naive": [r["lambda_naive"] for r in rows],
        "rows": rows,
        "claims": [
            _claim(
                "lambda_max of the total Hessian does not increase with kappa (within the error)",
                mono,
            ),
            _claim(
                "where every maximiser is interior (docs/theory/gen-interior.md), lambda_max = "
                "max(1/kappa, s(c)) within the float64 error of the total Hessian",
                match and bool(interior),
                interior_kappas=[r["kappa"] for r in interior],
            ),
            _claim(
                "the naive Hessian (delta held fixed) has lambda_max = s(c) for every kappa: it "
                "cannot see the flatness",
                naive_const,
            ),
        ],
    }
    return {**body, "pngs": _draw(ctx, body)}


@_drawer("flatness")
def _draw_flatness(doc: dict) -> list:
    from advlip import plots

    return [("", plots.flatness(doc["rows"], float(doc["s_c"])))]


# --------------------------------------------------------------------------- landscape


def _filter_normalised(key, params):
    """A random direction with every filter (row of each W) scaled to the norm of the
    parameters' filter, biases 0 (Li et al., *Visualizing the Loss Landscape*, 2018)."""
    out = []
    keys = jax.random.split(key, len(params))
    for k, layer in zip(keys, params, strict=True):
        W = layer["W"]
        D = jax.random.normal(k, W.shape, W.dtype)
        scale = jnp.linalg.norm(W, axis=1, keepdims=True) / jnp.linalg.norm(
            D, axis=1, keepdims=True
        )
        out.append({"W": D * scale, "b": jnp.zeros_like(layer["b"])})
    return out


@_register(
    "landscape",
    "1-D and 2-D slices of the adversarial loss, L2 beside Linf (linear through a kink; MLP)",
    options=("model", "data", "eps"),
)
def _landscape(ctx: _Ctx) -> dict:
    model = ctx.options.get("model", "both")
    if model not in ("linear", "mlp", "both"):
        raise ValueError(f"model={model!r} is not allowed; allowed: 'linear', 'mlp', 'both'")
    if "data" in ctx.options:
        dataset(ctx.options["data"])
    if "eps" in ctx.options:
        e = ctx.options["eps"]
        if not (isinstance(e, int | float) and math.isfinite(e) and e > 0):
            raise ValueError(
                f"eps={e!r} is not allowed; allowed: a finite real > 0 (the L2 budget)"
            )
    out: dict[str, Any] = {"matching": training.MATCHING, "claims": []}
    if model in ("linear", "both"):
        out["linear"] = _landscape_linear(ctx)
        out["claims"] += out["linear"].pop("claims")
    if model in ("mlp", "both"):
        out["mlp"] = _landscape_mlp(ctx)
        out["claims"] += out["mlp"].pop("claims")
    return {**out, "pngs": _draw(ctx, out)}


@_drawer("landscape")
def _draw_landscape(doc: dict) -> list:
    from advlip import plots

    out = []
    if "linear" in doc:
        out.append(("linear", plots.landscape_linear(doc["linear"])))
    if "mlp" in doc:
        out.append(("mlp", plots.landscape_mlp(doc["mlp"])))
    return out


def _landscape_linear(ctx: _Ctx) -> dict:
    name = ctx.options.get("data", "breast-cancer")
    X, y, desc = dataset(name)
    d = int(X.shape[1])
    e2 = float(ctx.options.get("eps", 1.0 if name.startswith("digits") else 0.25))
    steps = 150 if ctx.quick else 400
    n1, n2 = (201, 41) if ctx.quick else (401, 81)
    panels = {}
    centre_l1 = None
    for p in (2.0, math.inf):
        eps = training.matched_eps(e2, d, p)
        prob = LinearProblem(X=X, y=y, eps=eps, p=p, fit_bias=True)
        ctx.progress(
            f"[{name}] landscape: training the linear model, p={_p_name(p)}, eps={eps:.4g}"
        )
        h = training.train(
            prob, optimizer="adam", learning_rate=0.05, steps=steps, key=ctx.key, track_every=0
        )
        theta = h.final_params
        panels[p] = (prob, theta, h)
        if math.isinf(p):
            centre_l1 = np.abs(theta[:d])
    # the two coordinates the L∞ model left nearest to their kink; one radius for both panels
    i, j = (int(k) for k in np.argsort(centre_l1)[:2])
    radius = 2.0 * max(float(np.max(np.abs(th[:d]))) for _, th, _ in panels.values()) / 3.0
    out: dict[str, Any] = {
        "data": desc,
        "eps_l2": e2,
        "coordinates": [i, j],
        "directions": "coordinate axes e_i, e_j through w_i = w_j = 0 (the Linf kinks)",
    }
    claims = []
    for p, (prob, theta, h) in panels.items():
        lo = get_loss(prob.loss)
        centre = np.asarray(theta).copy()
        centre[[i, j]] = 0.0
        r = radius
        e_i, e_j = np.eye(prob.dim)[i], np.eye(prob.dim)[j]
        # the plotted line, then the pair ±h_k straddling the kink (h_k ≪ grid step)
        h_k = 1e-7 * r
        a1 = np.linspace(-r, r, n1)
        a_all = np.concatenate([a1, [-h_k, h_k]])
        line = centre[None, :] + a_all[:, None] * e_i[None, :]
        a2 = np.linspace(-r, r, n2)
        A, B = np.meshgrid(a2, a2, indexing="xy")
        grid = (
            centre[None, :] + A.ravel()[:, None] * e_i[None, :] + B.ravel()[:, None] * e_j[None, :]
        )
        both = jnp.asarray(np.concatenate([line, grid]))
        Lb, Gb = prob.loss_and_grad_many(both)
        L1, G1, L2 = Lb[: n1 + 2], Gb[: n1 + 2], Lb[n1 + 2 :]
        gi = np.asarray(G1)[:, i]
        L1 = np.asarray(L1)
        jump = float(gi[-1] - gi[-2])
        # both gradients' rounding (LinearProblem.grad_error_bound: the gradient as computed)
        err = 2.0 * float(np.max(np.asarray(prob.grad_error_bound_many(line[-2:]))))
        key = "l2" if p == 2.0 else "linf"
        mean_d1 = float(jnp.mean(lo.d1(prob.margins(jnp.asarray(centre)))))  # mean ℓ'(m̃)
        out[key] = {
            "p": p,
            "eps": float(prob.eps),
            "radius": r,
            "t": a1,
            "loss_1d": L1[:n1],
            "dloss_dwi_1d": gi[:n1],
            "grid": a2,
            "loss_2d": np.asarray(L2).reshape(n2, n2),
            "centre_loss": float(L1[n1 // 2]),
            "kink_pair_half_distance": h_k,
            "jump_across_kink": jump,
            "final_loss": float(h.loss[-1]),
        }
        if p == 2.0:
            # LIN-L2's β of the pair itself: ℓ''max((max‖x‖ + ε)² + 1) + ε|ℓ'|max/√(‖w1‖‖w2‖),
            # and ‖w‖ ≥ ‖w_centre‖ on the line (w_centre,i = 0 ⟂ e_i), so β ≤ its value at
            # the centre
            beta = prob.ratio_bound(line[-2], line[-1])
            allowed = beta * 2.0 * h_k + err
            claims.append(
                _claim(
                    "L2: dL/dw_i is continuous across w_i = 0: on the pair +-h it changes by "
                    "at most "
                    "LIN-L2's beta * 2h (+ float64 error)",
                    abs(jump) <= allowed,
                    change=jump,
                    allowed=allowed,
                    h=h_k,
                )
            )
        else:
            predicted = 2.0 * prob.eps * abs(mean_d1)
            # ∂L/∂w_i(a) = mean ℓ'(m̃(a)) (y x_i − ε sign(a)); m̃ is (max‖x‖ + ε)-Lipschitz in a
            # and ℓ' is ℓ''max-Lipschitz, so over [−h, h] the jump differs from 2ε|mean ℓ'(m̃(0))|
            # by ≤ ℓ''max (max‖x‖ + ε)² · 2h ≤ β∞ · 2h, β∞ = ℓ''max((max‖x‖ + ε√d)² + 1)
            beta = prob.curvature_bound()
            slack = beta * 2.0 * h_k + err
            claims.append(
                _claim(
                    "Linf: dL/dw_i jumps across w_i = 0 by 2 eps |mean l'(m~)| (LIN-LINF), up to "
                    "beta_inf * 2h + float64 error on the pair +-h",
                    abs(jump - predicted) <= slack,
                    jump=jump,
                    predicted=predicted,
                    slack=slack,
                    h=h_k,
                )
            )
    out["claims"] = claims
    return out


def _landscape_mlp(ctx: _Ctx) -> dict:
    name = ctx.options.get("data", "digits-3-8")
    X, y, desc = dataset(name)
    q = ctx.quick
    # the training split of mlp-l2-vs-linf (same shapes: its compiled programs are reused)
    n_train = min(150 if q else 250, X.shape[0] - 50)
    Xtr, ytr, _, _ = _split(X, y, ctx.key, n_train, 0)
    d = int(X.shape[1])
    e2 = float(ctx.options.get("eps", 0.5 if name.startswith("digits") else 0.25))
    steps = 40 if q else 150
    widths = (8,) if q else (16,)
    n1, n2 = (21, 9) if q else (61, 25)
    out: dict[str, Any] = {
        "data": desc,
        "n_train": int(Xtr.shape[0]),
        "eps_l2": e2,
        "directions": "two filter-normalised random directions (Li et al. 2018): "
        "each row of each W scaled to the row of theta, biases 0",
    }
    for p in (2.0, math.inf):
        eps = training.matched_eps(e2, d, p)
        prob = training.MLPProblem(
            X=Xtr, y=ytr, eps=eps, p=p, widths=widths, attack_steps=5 if q else 10
        )
        ctx.progress(f"[{name}] landscape: training the MLP, p={_p_name(p)}, eps={eps:.4g}")
        h = training.train(
            prob, optimizer="adam", learning_rate=0.02, steps=steps, key=ctx.key, track_every=0
        )
        theta = training.unravel_mlp(h.final_params, d, widths)
        k1, k2 = jax.random.split(jax.random.fold_in(ctx.key, 7))
        d1 = training.ravel(_filter_normalised(k1, theta))
        d2 = training.ravel(_filter_normalised(k2, theta))
        a1 = np.linspace(-1.0, 1.0, n1)
        a2 = np.linspace(-1.0, 1.0, n2)
        A, B = np.meshgrid(a2, a2, indexing="xy")
        coords = np.concatenate(
            [np.stack([a1, np.zeros(n1)], 1), np.stack([A.ravel(), B.ravel()], 1)]
        )
        thetas = h.final_params[None, :] + coords[:, :1] * d1[None, :] + coords[:, 1:] * d2[None, :]
        losses = np.asarray(training.adversarial_loss_many(prob, thetas))
        L1, L2 = losses[:n1], losses[n1:].reshape(n2, n2)
        key = "l2" if p == 2.0 else "linf"
        out[key] = {
            "p": p,
            "eps": eps,
            "t": a1,
            "loss_1d": L1,
            "grid": a2,
            "loss_2d": L2,
            "final_loss": float(h.loss[-1]),
            "centre_loss": float(L1[n1 // 2]),
        }
    out["claims"] = []
    return out


# --------------------------------------------------------------------------- networks on images
# These two live in their own modules (they train CNNs); the registry imports them lazily.


@_register(
    "curvature-table",
    "Total vs naive λ_max and trace of a CNN's adversarial loss (10-class digits), L2 vs L∞, "
    "across ε and training; distances to switching surfaces and the gradient jump there",
)
def _curvature_table(ctx: _Ctx) -> dict:
    from advlip import curvature_table

    return curvature_table.experiment(ctx)


@_register(
    "entropy-sgd-robust",
    "EntropySGD vs SGD + momentum for adversarial training of a CNN: held-out robust "
    "accuracy under APGD (≥ 5 seeds, 95% intervals), with the smoothness along training",
    options=("data",),
)
def _entropy_sgd_robust(ctx: _Ctx) -> dict:
    from advlip import robust_training

    return robust_training.experiment(ctx)
