r"""Pictures of the experiments (matplotlib, Agg backend, PNG), readable without the code.

Each function takes the numbers an experiment writes to its JSON (:mod:`advlip.experiments`)
— in their JSON form (lists, ``"inf"``/``"nan"`` strings, a training history as a dict) or
as the objects in memory (arrays, :class:`advlip.training.TrainingHistory`) — draws one
figure, saves it as a PNG when given a path, and returns it (a matplotlib ``Figure`` on
the Agg canvas; no pyplot, so no global backend switch). Nothing here computes.

Every figure follows four rules, which :func:`figure_problems` checks: every panel shows
data; every run the figure names is plotted; legends sit outside the data (beside the
panel or below the figure); every line, reference lines included (bounds, closed forms,
y = γ), has a legend entry. Axis labels carry units: losses in nats (the softplus
margin loss is the logistic log-loss), parameters and inputs in the data's units.
Needs matplotlib (``pip install advlip[plots]``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # matplotlib is imported only when a picture is drawn
    from matplotlib.figure import Figure

__all__ = [
    "phase_diagram",
    "linear_training",
    "linear_summary",
    "mlp_training",
    "entropy_quadrature",
    "entropy_training",
    "flatness",
    "landscape_linear",
    "landscape_mlp",
    "plot_spectral_density",
    "plot_spectral_densities",
    "figure_problems",
]

L2_COLOR, LINF_COLOR = "tab:blue", "tab:orange"
DPI = 90
_OPT_STYLE = {"adam": "-", "sgd-momentum": "--", "sgd": ":"}


def _figure(figsize: tuple[float, float]):
    """A figure on matplotlib's Agg canvas, without pyplot: no global backend switch and no
    figure registry, so it is safe inside notebooks and threads."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError("the pictures need matplotlib: pip install 'advlip[plots]'") from None
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], squeeze=True):
    fig = _figure(figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def _save(fig, path: str | Path | None) -> None:
    """PNG with a 256-colour palette (line plots and contour fills need no more), a third of
    the size of a true-colour PNG. Nothing is written when ``path`` is None."""
    if path is None:
        return
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    buf.seek(0)
    with Image.open(buf) as img:
        img.convert("RGB").quantize(colors=256).save(path, format="PNG", optimize=True)


def _finish(fig, path: str | Path | None):
    """Give every line of a single finite point a marker (a lone point drawn as a line is
    invisible), lay the figure out once and keep that layout (constrained layout moves
    panels a little at every draw: frozen, the PNG and any later inspection of the figure
    see the same positions), save it when given a path, and return it."""
    for ax in fig.axes:
        for line in ax.lines:
            xy = np.asarray(line.get_xydata(), dtype=float)
            lone = xy.size and int(np.sum(np.all(np.isfinite(xy), axis=1))) == 1
            if lone and line.get_marker() in (None, "", " ", "None", "none"):
                line.set_marker("o")
    fig.canvas.draw()
    fig.set_layout_engine("none")
    _save(fig, path)
    return fig


def _num(x: Any) -> float:
    """A number of the JSON form or of memory (``float("inf")`` reads ``"inf"`` too)."""
    return float(x)


def _arr(x: Any, dtype: Any = float) -> np.ndarray:
    return np.asarray(x, dtype=dtype)


def _get(obj: Any, name: str, dtype: Any = float) -> np.ndarray:
    """Field ``name`` of a history: a dict (the JSON form) or an object with attributes."""
    return _arr(obj[name] if isinstance(obj, dict) else getattr(obj, name), dtype)


def _pname(p: Any) -> str:
    p = _num(p)
    return "L∞" if math.isinf(p) else f"L{p:g}"


def _color(p: Any) -> str:
    return L2_COLOR if _num(p) == 2.0 else LINF_COLOR


def _loss_curves(ax: Any, sel: list[tuple[str, dict]]) -> None:
    """Each run's loss history L(θ_t) on ``ax``: colour by p, line style by optimizer, the
    line tagged with its run's key (``run:KEY``)."""
    for k, r in sel:
        (line,) = ax.plot(
            _get(r["history"], "loss"),
            color=_color(r["p"]),
            ls=_OPT_STYLE.get(r["optimizer"], "-."),
            label=f"{_pname(r['p'])}, {r['optimizer']}",
        )
        line.set_gid(f"run:{k}")


def _handles(axes) -> tuple[list, list[str]]:
    """The legend entries of ``axes``, each label once (its first handle)."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def _legend_right(ax, fontsize: float = 8) -> None:
    """The legend of ``ax`` beside it, outside the data (constrained layout makes room)."""
    handles, labels = _handles([ax])
    if handles:
        ax.legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0.0,
            fontsize=fontsize,
        )


def _legend_below(fig, axes, ncols: int, fontsize: float = 8) -> None:
    """One legend for ``axes`` below the figure, outside every panel."""
    handles, labels = _handles(axes)
    if handles:
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=max(1, min(ncols, len(labels))),
            fontsize=fontsize,
        )


def _accuracy_axis(ax, label: str = "accuracy (fraction)") -> None:
    """Accuracies on their whole range [0, 1], so that panels compare at a glance."""
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel(label)


def _budget_axis(ax, budgets) -> None:
    """A logarithmic budget axis with a tick at every budget run, room around one budget."""
    from matplotlib.ticker import NullFormatter, NullLocator

    b = sorted({_num(e) for e in budgets})
    ax.set_xscale("log")
    ax.set_xlim(b[0] / 1.6, b[-1] * 1.6)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(b, [f"{e:g}" for e in b])


def _runs(runs) -> list[tuple[int, dict]]:
    """``runs`` with their index in the list (the index of the run in the JSON)."""
    return list(enumerate(runs))


# --------------------------------------------------------------------------- LIN-LP


def phase_diagram(
    points: list[dict], inv_p: Any, curve: Any, path: str | Path | None = None
) -> Figure:
    r"""Measured growth exponents of R at the kink against 1/p, on LIN-LP's curve.

    The theory (docs/theory/lin-lp.md): the gradient ratio across the kink w = 0 grows like
    :math:`t^s` with s = 0 for 1 < p ≤ 2, s = q − 2 for 2 < p < ∞ and s = −1 at p = ∞ and
    p = 1.

    Args:
        points: one dict per measured p: ``p`` (a number or ``"inf"``), ``exponent`` and
            its ``tolerance`` (the Richardson fit's).
        inv_p: the 1/p grid of the theory's curve.
        curve: the theory's exponent on that grid.
        path: where to write the PNG (nothing written if None).

    Returns:
        The figure.

    Example:
        >>> from advlip import plots
        >>> pts = [{"p": 2.0, "exponent": 0.0, "tolerance": 0.01},
        ...        {"p": "inf", "exponent": -1.0, "tolerance": 0.01}]
        >>> fig = plots.phase_diagram(pts, [0.1, 0.5, 0.9], [-0.9, 0.0, 0.0])
        >>> plots.figure_problems(fig)
        []
    """
    fig, ax = _subplots(figsize=(8.5, 6.0))
    inv_p, curve = _arr(inv_p), _arr(curve)
    ax.plot(inv_p, curve, color="0.3", lw=2, label="theory: 0 for 1 < p ≤ 2, q − 2 for 2 < p < ∞")
    ax.plot(
        [0.0, 1.0],
        [-1.0, -1.0],
        ls="none",
        marker="o",
        mfc="none",
        mec="0.3",
        ms=12,
        label="theory: −1 at p = ∞ (jump) and at p = 1 (tie)",
    )
    ps = [_num(pt["p"]) for pt in points]
    x = [0.0 if math.isinf(p) else 1.0 / p for p in ps]
    ax.errorbar(
        x,
        [_num(pt["exponent"]) for pt in points],
        yerr=[_num(pt["tolerance"]) for pt in points],
        fmt="s",
        color="tab:red",
        ms=6,
        capsize=4,
        label="measured (Richardson fit ± its tolerance)",
    )
    for xi, p, pt in zip(x, ps, points, strict=True):
        name = "∞" if math.isinf(p) else f"{p:g}"
        off = (-36, 8) if xi > 0.95 else (6, 6)  # keep p = 1's label inside the axes
        ax.annotate(
            f"p={name}",
            (xi, _num(pt["exponent"])),
            textcoords="offset points",
            xytext=off,
            fontsize=8,
        )
    ax.axvspan(0.5, 0.97, color="tab:green", alpha=0.06)  # p = 1 (a tie) is not smooth
    ax.text(0.735, 0.12, "smooth on ‖w‖ ≥ r", ha="center", fontsize=9)
    ax.text(0.25, 0.12, "Hölder, not Lipschitz", ha="center", fontsize=9)
    ax.set_xlim(-0.04, 1.04)
    ax.set_ylim(-1.25, 0.3)
    ax.set_xlabel("1/p  (attack norm; p = ∞ at 0, p = 1 at 1)")
    ax.set_ylabel("growth exponent s of R(t) ∝ t^s  (dimensionless)")
    ax.set_title(
        "LIN-LP (docs/theory/lin-lp.md): how the gradient ratio blows up at the kink, per p",
        fontsize=11,
    )
    ax.grid(alpha=0.3)
    _legend_below(fig, [ax], ncols=2)
    return _finish(fig, path)


# --------------------------------------------------------------------------- linear training


def _headline(runs: list[dict]) -> tuple[str, float]:
    data = runs[0]["data"]
    eps = sorted({_num(r["eps_l2"]) for r in runs if r["data"] == data})
    return data, eps[len(eps) // 2]


def _rows(runs: list[dict], by_data: bool = True) -> list[tuple[Any, float]]:
    """The (dataset, ε₂) pairs of ``runs``: datasets in order of appearance, budgets sorted."""
    datasets = list(dict.fromkeys(r.get("data") for r in runs)) if by_data else [None]
    out = []
    for d in datasets:
        eps = sorted({_num(r["eps_l2"]) for r in runs if not by_data or r.get("data") == d})
        out += [(d, e) for e in eps]
    return out


def _budget_name(runs: list[dict]) -> str:
    """``ε₂ = 0.5 (ε∞ = 0.0625)`` of runs sharing one L2 budget."""
    e2 = _num(runs[0]["eps_l2"])
    linf = [_num(r["eps"]) for r in runs if math.isinf(_num(r["p"]))]
    return f"ε₂ = {e2:g}" + (f" (ε∞ = {linf[0]:.3g})" if linf else "")


def linear_training(runs: list[dict], path: str | Path | None = None) -> Figure:
    r"""Linear adversarial training along the steps: one row per (dataset, L2 budget).

    Each row draws, for its runs: the adversarial loss (every run), the clean and robust
    accuracy (adam), the gradient ratio between consecutive iterates with LIN-L2's bound
    (L2) or the bound of the smooth pieces (L∞; steps crossing a kink marked), and the
    fraction of weights within one step of their kink (every run). Every run of ``runs``
    is plotted; its loss curve carries the gid ``run:i`` (i its index in ``runs``).

    Args:
        runs: the ``runs`` of the ``linear-l2-vs-linf`` JSON: ``data``, ``eps_l2``,
            ``eps``, ``p``, ``optimizer`` and ``history`` (a dict of the JSON form or a
            :class:`advlip.training.TrainingHistory`) with ``loss``, ``clean_acc``,
            ``robust_acc``, ``grad_ratio``, ``ratio_bound``, ``kink_crossed``, ``near_zero``.
        path: where to write the PNG (nothing written if None).

    Returns:
        The figure.

    Example:
        >>> from advlip import plots
        >>> h = {"loss": [0.7, 0.5, 0.4], "clean_acc": [0.5, 0.8, 0.9],
        ...      "robust_acc": [0.4, 0.7, 0.8], "grad_ratio": [0.3, 0.2],
        ...      "ratio_bound": [1.0, 1.0], "kink_crossed": [False, True],
        ...      "near_zero": ["nan", 0.1, 0.2]}
        >>> runs = [{"data": "toy", "eps_l2": 0.5, "eps": e, "p": p, "optimizer": "adam",
        ...          "history": h} for p, e in ((2.0, 0.5), ("inf", 0.25))]
        >>> fig = plots.linear_training(runs)
        >>> len(fig.axes), plots.figure_problems(fig)
        (4, [])
    """
    rows = _rows(runs)
    fig, axes = _subplots(len(rows), 4, figsize=(18, 3.5 * len(rows) + 1.6), squeeze=False)
    for i, (data, e2) in enumerate(rows):
        sel = [(k, r) for k, r in _runs(runs) if r["data"] == data and _num(r["eps_l2"]) == e2]
        where = f"{data}, {_budget_name([r for _, r in sel])}"
        ax = axes[i, 0]
        _loss_curves(ax, sel)
        ax.set_title(f"adversarial loss L(θ_t) (closed-form attack)\n{where}", fontsize=10)
        ax.set_ylabel("L (nats)")
        ax = axes[i, 1]
        for _, r in sel:
            if r["optimizer"] != "adam":
                continue
            h, c, pn = r["history"], _color(r["p"]), _pname(r["p"])
            ax.plot(_get(h, "clean_acc"), color=c, ls=":", label=f"{pn}-trained (adam): clean")
            ax.plot(
                _get(h, "robust_acc"), color=c, ls="-", label=f"{pn}-trained (adam): robust (exact)"
            )
        ax.set_title(f"accuracy on the training set (adam)\n{where}", fontsize=10)
        _accuracy_axis(ax)
        ax = axes[i, 2]
        for k, r in sel:
            if r["optimizer"] != "adam":
                continue
            h, p, c = r["history"], _num(r["p"]), _color(r["p"])
            R = _get(h, "grad_ratio")
            t = np.arange(R.size)
            (line,) = ax.semilogy(t, R, color=c, lw=1, label=f"{_pname(p)} (adam): R(θ_t, θ_t+1)")
            line.set_gid(f"run:{k}")
            bound = _get(h, "ratio_bound")
            finite = bound[np.isfinite(bound)]
            if p == 2.0:
                ax.semilogy(
                    t, bound, color=c, ls="--", lw=1.5, label="L2: LIN-L2's bound β(w_t, w_t+1)"
                )
            elif finite.size:  # constant; it applies to the steps that cross no kink
                ax.axhline(
                    float(finite.max()),
                    color=c,
                    ls="-.",
                    lw=1.5,
                    label=f"{_pname(p)}: bound of the smooth pieces (steps crossing no kink)",
                )
            kink = _get(h, "kink_crossed", bool)
            if math.isinf(p) and np.any(kink):
                ax.plot(
                    t[kink],
                    R[kink],
                    ".",
                    color="tab:red",
                    ms=3,
                    label=f"{_pname(p)}: a step crossing a kink w_i = 0",
                )
        ax.set_title(f"gradient ratio between consecutive iterates (adam)\n{where}", fontsize=10)
        ax.set_ylabel("R = ‖Δ∇L‖ / ‖Δθ‖ (nats per unit θ²)")
        ax = axes[i, 3]
        for _, r in sel:
            ax.plot(
                _get(r["history"], "near_zero"),
                color=_color(r["p"]),
                ls=_OPT_STYLE.get(r["optimizer"], "-."),
                label=f"{_pname(r['p'])}, {r['optimizer']}",
            )
        ax.set_title(
            f"weights within one step of their kink (|w_i| ≤ |Δw_i|)\n{where}", fontsize=10
        )
        ax.set_ylabel("fraction of weights")
        for ax in axes[i]:
            ax.set_xlabel("optimizer step t")
            ax.grid(alpha=0.3)
    _legend_below(fig, axes.ravel(), ncols=4)
    fig.suptitle("Linear adversarial training, L2 vs L∞ at matched budgets (ε∞ = ε₂/√d): every run")
    return _finish(fig, path)


def linear_summary(runs: list[dict], path: str | Path | None = None) -> Figure:
    r"""Accuracy across budgets, final |w_i|, R against the step length, λ_max total vs naive.

    The accuracy panel draws every adam run (one point per budget, a line per dataset and
    norm); the other three panels the headline runs (first dataset, middle budget), named
    in their titles.

    Args:
        runs: the ``runs`` of the ``linear-l2-vs-linf`` JSON (see :func:`linear_training`);
            also ``final_abs_w`` and, in ``history``, ``step_norm``, ``checkpoint_step``,
            ``lambda_max_total`` and ``lambda_max_naive``.
        path: where to write the PNG (nothing written if None).

    Returns:
        The figure.

    Example:
        >>> from advlip import plots
        >>> h = {"clean_acc": [0.5, 0.9], "robust_acc": [0.4, 0.8], "grad_ratio": [0.3],
        ...      "step_norm": [0.1], "kink_crossed": [True], "checkpoint_step": [0, 1],
        ...      "lambda_max_total": [0.3, 0.2], "lambda_max_naive": [0.3, 0.1]}
        >>> runs = [{"data": "toy", "eps_l2": 0.5, "eps": e, "p": p, "optimizer": "adam",
        ...          "final_abs_w": [0.01, 1.0], "history": h}
        ...         for p, e in ((2.0, 0.5), ("inf", 0.25))]
        >>> fig = plots.linear_summary(runs)
        >>> len(fig.axes), plots.figure_problems(fig)
        (4, [])
    """
    fig, axes = _subplots(2, 2, figsize=(16, 10))
    datasets = list(dict.fromkeys(r["data"] for r in runs))
    markers = ["o", "s", "^", "D"]
    ax = axes[0, 0]
    for di, data in enumerate(datasets):
        for p in (2.0, math.inf):
            sel = sorted(
                (
                    r
                    for r in runs
                    if r["data"] == data and _num(r["p"]) == p and r["optimizer"] == "adam"
                ),
                key=lambda r: _num(r["eps_l2"]),
            )
            if not sel:
                continue
            # L2 a little left of its budget, L∞ a little right: the two never hide each other
            e = [_num(r["eps_l2"]) * (0.97 if p == 2.0 else 1.03) for r in sel]
            ax.plot(
                e,
                [_get(r["history"], "clean_acc")[-1] for r in sel],
                marker=markers[di % len(markers)],
                ls=":",
                mfc="none",
                color=_color(p),
                label=f"{_pname(p)}-trained, {data}: clean",
            )
            ax.plot(
                e,
                [_get(r["history"], "robust_acc")[-1] for r in sel],
                marker=markers[di % len(markers)],
                color=_color(p),
                label=f"{_pname(p)}-trained, {data}: robust (exact)",
            )
    ax.set_title(
        "final accuracy on the training set (adam)\nevery budget and dataset run", fontsize=10
    )
    ax.set_xlabel("budget ε₂ (L2 radius; L∞ radius ε₂/√d), input units")
    _budget_axis(ax, [r["eps_l2"] for r in runs])
    _accuracy_axis(ax)
    data, e2 = _headline(runs)
    head = [r for r in runs if r["data"] == data and _num(r["eps_l2"]) == e2]
    where = f"{data}, {_budget_name(head)}"
    ax = axes[0, 1]
    for r in head:
        w = np.sort(_arr(r["final_abs_w"]))
        ax.semilogy(
            np.arange(1, w.size + 1),
            w,
            marker=".",
            ls=_OPT_STYLE.get(r["optimizer"], "-."),
            color=_color(r["p"]),
            label=f"{_pname(r['p'])}, {r['optimizer']}: final |w_i|",
        )
    ax.set_title(f"final |w_i| sorted: L∞ pins many near the kink 0\n{where}", fontsize=10)
    ax.set_xlabel("rank of |w_i| (1 = smallest)")
    ax.set_ylabel("|w_i| (per input unit)")
    ax = axes[1, 0]
    for r in head:
        h = r["history"]
        k = _get(h, "kink_crossed", bool)
        R, s = _get(h, "grad_ratio"), _get(h, "step_norm")
        mk = "o" if r["optimizer"] == "adam" else "^"
        if np.any(~k):
            ax.loglog(
                s[~k],
                R[~k],
                mk,
                ms=3,
                mfc="none",
                color=_color(r["p"]),
                label=f"{_pname(r['p'])}, {r['optimizer']}: no kink crossed",
            )
        if np.any(k):
            ax.loglog(
                s[k],
                R[k],
                mk,
                ms=3,
                color="tab:red",
                alpha=0.6,
                label=f"{_pname(r['p'])}, {r['optimizer']}: crosses w_i = 0",
            )
    ax.set_title(f"R against the step length: across a kink R ≈ jump / ‖Δθ‖\n{where}", fontsize=10)
    ax.set_xlabel("‖θ_t+1 − θ_t‖ (parameter units)")
    ax.set_ylabel("R(θ_t, θ_t+1) (nats per unit θ²)")
    ax = axes[1, 1]
    for r in head:
        if r["optimizer"] != "adam":
            continue
        h = r["history"]
        ax.plot(
            _get(h, "checkpoint_step"),
            _get(h, "lambda_max_total"),
            marker="o",
            color=_color(r["p"]),
            label=f"{_pname(r['p'])}: total Hessian (δ* moves with θ)",
        )
        ax.plot(
            _get(h, "checkpoint_step"),
            _get(h, "lambda_max_naive"),
            marker="x",
            ls="--",
            color=_color(r["p"]),
            label=f"{_pname(r['p'])}: naive Hessian (δ* held fixed)",
        )
    ax.set_yscale("log")
    ax.set_title(f"top Hessian eigenvalue along training (adam)\n{where}", fontsize=10)
    ax.set_xlabel("optimizer step t")
    ax.set_ylabel("λ_max (nats per unit θ²)")
    for ax in axes.ravel():
        ax.grid(alpha=0.3, which="both")
        _legend_right(ax, fontsize=7)
    fig.suptitle(
        "Linear adversarial training, L2 vs L∞ at matched budgets: accuracy, kinks, curvature"
    )
    return _finish(fig, path)


# --------------------------------------------------------------------------- MLP training


def mlp_training(
    runs: list[dict], path: str | Path | None = None, *, quick: bool = False
) -> Figure:
    r"""MLP adversarial training: one row per L2 budget, and λ_max where it was computed.

    Each row draws the adversarial loss under the training attack (every run), the
    accuracies of the adam runs (training set: clean and robust under the training attack,
    lines; test set at the checkpoints: clean and robust under the strong attack,
    markers) and their gradient ratio. The certified runs (full size) get a last row:
    λ_max of the total and naive Hessians at the checkpoints. Every run is plotted; its
    loss curve carries the gid ``run:i``.

    Args:
        runs: the ``runs`` of the ``mlp-l2-vs-linf`` JSON: ``eps_l2``, ``eps``, ``p``,
            ``optimizer``, ``certified`` and ``history`` (``loss``, ``clean_acc``,
            ``robust_acc``, ``grad_ratio``, ``checkpoint_step``, ``ck_clean_acc``,
            ``ck_strong_robust_acc``, ``lambda_max_total``, ``lambda_max_naive``).
        path: where to write the PNG (nothing written if None).
        quick: the runs are of the quick size (said in the title).

    Returns:
        The figure.

    Example:
        >>> from advlip import plots
        >>> h = {"loss": [0.7, 0.5, 0.4], "clean_acc": [0.5, 0.8, 0.9],
        ...      "robust_acc": [0.4, 0.7, 0.8], "grad_ratio": [0.3, 0.2],
        ...      "checkpoint_step": [0, 2], "ck_clean_acc": [0.5, 0.9],
        ...      "ck_strong_robust_acc": [0.3, 0.7]}
        >>> runs = [{"eps_l2": 0.5, "eps": e, "p": p, "optimizer": "adam",
        ...          "certified": False, "history": h} for p, e in ((2.0, 0.5), ("inf", 0.1))]
        >>> fig = plots.mlp_training(runs, quick=True)
        >>> len(fig.axes), plots.figure_problems(fig)
        (3, [])
    """
    rows = [e for _, e in _rows(runs, by_data=False)]
    cert = [(k, r) for k, r in _runs(runs) if r.get("certified")]
    n = len(rows) + (1 if cert else 0)
    fig = _figure(figsize=(17, 3.6 * n + 1.6))
    gs = fig.add_gridspec(n, 3)
    axes = []
    for i, e2 in enumerate(rows):
        sel = [(k, r) for k, r in _runs(runs) if _num(r["eps_l2"]) == e2]
        where = _budget_name([r for _, r in sel])
        ax0, ax1, ax2 = (fig.add_subplot(gs[i, j]) for j in range(3))
        axes += [ax0, ax1, ax2]
        _loss_curves(ax0, sel)
        ax0.set_title(f"adversarial loss under the training attack (PGD)\n{where}", fontsize=10)
        ax0.set_ylabel("L (nats)")
        for k, r in sel:
            if r["optimizer"] != "adam":
                continue
            h, c, pn = r["history"], _color(r["p"]), _pname(r["p"])
            ax1.plot(_get(h, "clean_acc"), color=c, ls=":", lw=1, label=f"{pn}: clean (train set)")
            ax1.plot(
                _get(h, "robust_acc"),
                color=c,
                lw=1,
                label=f"{pn}: robust, training attack (train set)",
            )
            ax1.plot(
                _get(h, "checkpoint_step"),
                _get(h, "ck_clean_acc"),
                "o",
                mfc="none",
                color=c,
                label=f"{pn}: clean (test)",
            )
            ax1.plot(
                _get(h, "checkpoint_step"),
                _get(h, "ck_strong_robust_acc"),
                "s",
                color=c,
                label=f"{pn}: robust, strong attack (test)",
            )
            (line,) = ax2.semilogy(
                _get(h, "grad_ratio"), color=c, lw=1, label=f"{pn} (adam): R(θ_t, θ_t+1)"
            )
            line.set_gid(f"run:{k}")
        ax1.set_title(f"accuracy (adam)\n{where}", fontsize=10)
        _accuracy_axis(ax1)
        ax2.set_title(f"gradient ratio between consecutive iterates (adam)\n{where}", fontsize=10)
        ax2.set_ylabel("R = ‖Δ∇L‖ / ‖Δθ‖ (nats per unit θ²)")
    if cert:
        ax = fig.add_subplot(gs[n - 1, :])
        axes.append(ax)
        for k, r in cert:
            h, c, pn = r["history"], _color(r["p"]), _pname(r["p"])
            (line,) = ax.plot(
                _get(h, "checkpoint_step"),
                _get(h, "lambda_max_total"),
                "o-",
                color=c,
                label=f"{pn}: total Hessian (implicit Dδ*)",
            )
            line.set_gid(f"run:{k}")
            ax.plot(
                _get(h, "checkpoint_step"),
                _get(h, "lambda_max_naive"),
                "x--",
                color=c,
                label=f"{pn}: naive Hessian (δ* held fixed)",
            )
        names = sorted({f"{_num(r['eps_l2']):g}" for _, r in cert})
        opts = sorted({r["optimizer"] for _, r in cert})
        ax.set_title(
            "top Hessian eigenvalue at checkpoints (training set; certified runs: "
            f"ε₂ = {', '.join(names)}, {', '.join(opts)})",
            fontsize=10,
        )
        ax.set_ylabel("λ_max (nats per unit θ²)")
    for ax in axes:
        ax.set_xlabel("optimizer step t")
        ax.grid(alpha=0.3)
    _legend_below(fig, axes, ncols=4)
    size = ""
    if quick:
        size = " — quick size" + (
            "" if cert else "; λ_max of the total vs naive Hessian: full size only (see the JSON)"
        )
    fig.suptitle(f"MLP adversarial training: L2 vs L∞ at matched budgets (ε∞ = ε₂/√d){size}")
    return _finish(fig, path)


# --------------------------------------------------------------------------- EntropySGD


def entropy_quadrature(rows: list[dict], raw_fit: dict, path: str | Path | None = None) -> Figure:
    r"""R of F_γ (quadrature) and of L across the L∞ kink, against the pair distance t.

    The theory (docs/theory/entropy-smooth.md): the local entropy :math:`F_\gamma` is
    γ-smooth, so its gradient ratio stays under y = γ (drawn), while the ratio of the raw
    adversarial loss grows like 1/t across the kink.

    Args:
        rows: one dict per γ: ``gamma``, ``kink_t``, ``kink_ratio_F``, ``kink_ratio_L``
            and ``max_ratio`` (the ``quadrature.cases`` of the ``entropy-sgd`` JSON).
        raw_fit: the growth fit of the raw loss (``t`` and ``R`` of its pairs).
        path: where to write the PNG (nothing written if None).

    Returns:
        The figure.

    Example:
        >>> from advlip import plots
        >>> rows = [{"gamma": 1.0, "kink_t": [1e-3, 1e-2], "kink_ratio_F": [0.3, 0.3],
        ...          "kink_ratio_L": [100.0, 10.0], "max_ratio": 0.3}]
        >>> fig = plots.entropy_quadrature(rows, {"t": [1e-4], "R": [1000.0]})
        >>> plots.figure_problems(fig)
        []
    """
    fig, ax = _subplots(figsize=(11, 5.4))
    t = _arr(rows[0]["kink_t"])
    ax.loglog(t, _arr(rows[0]["kink_ratio_L"]), "k.-", label="raw adversarial loss L: R ∝ 1/t")
    ax.loglog(
        _arr(raw_fit["t"]), _arr(raw_fit["R"]), "k.", ms=3, label="raw L: the pairs of the 1/t fit"
    )
    colors = ["tab:green", "tab:purple", "tab:brown", "tab:cyan", "tab:olive"]
    for c, r in zip(colors, rows, strict=False):
        g = _num(r["gamma"])
        ax.loglog(
            _arr(r["kink_t"]),
            _arr(r["kink_ratio_F"]),
            "o-",
            color=c,
            ms=4,
            label=f"local entropy F_γ, γ = {g:g} (max R = {_num(r['max_ratio']):.3g})",
        )
        ax.axhline(g, color=c, ls="--", lw=1, label=f"y = γ = {g:g}: the bound R(F_γ) ≤ γ")
    ax.set_xlabel("half-distance t of the pair w ± t e₁ across the kink w₁ = 0 (parameter units)")
    ax.set_ylabel("gradient ratio R (nats per unit θ²)")
    ax.set_title("EntropySGD smooths the L∞ kink: R(F_γ) ≤ γ (dashed), R(L) grows like 1/t")
    ax.grid(alpha=0.3, which="both")
    _legend_right(ax)
    return _finish(fig, path)


def entropy_training(plain: Any, esgd: list[dict], path: str | Path | None = None) -> Figure:
    r"""Plain adversarial training vs EntropySGD: loss, robust accuracy, gradient ratios.

    Every run is plotted (its loss curve carries the gid ``run:plain`` or ``run:i``, i its
    index in ``esgd``); the ratio panel draws y = γ, the bound on the ratio of the
    :math:`\nabla F_\gamma` EntropySGD follows.

    Args:
        plain: the history of plain training (a dict of the JSON form or a
            :class:`advlip.training.TrainingHistory`): ``loss``, ``robust_acc``,
            ``grad_ratio``.
        esgd: one dict per γ: ``gamma`` and ``history`` (also ``direction_ratio``).
        path: where to write the PNG (nothing written if None).

    Returns:
        The figure.

    Example:
        >>> from advlip import plots
        >>> h = {"loss": [0.7, 0.5, 0.4], "robust_acc": [0.4, 0.7, 0.8],
        ...      "grad_ratio": [0.3, 0.2], "direction_ratio": [0.25]}
        >>> fig = plots.entropy_training(h, [{"gamma": 1.0, "history": h}])
        >>> len(fig.axes), plots.figure_problems(fig)
        (3, [])
    """
    fig, axes = _subplots(1, 3, figsize=(16, 5.6))
    colors = ["tab:green", "tab:purple", "tab:brown"]
    (line,) = axes[0].plot(_get(plain, "loss"), color="k", label="plain (sgd-momentum)")
    line.set_gid("run:plain")
    axes[1].plot(_get(plain, "robust_acc"), color="k", label="plain (sgd-momentum)")
    axes[2].semilogy(
        _get(plain, "grad_ratio"), "o", color="k", ms=3, mfc="none", label="plain: R of ∇L"
    )
    for i, (c, r) in enumerate(zip(colors, esgd, strict=False)):
        h, g = r["history"], _num(r["gamma"])
        (line,) = axes[0].plot(_get(h, "loss"), color=c, label=f"EntropySGD, γ = {g:g}")
        line.set_gid(f"run:{i}")
        axes[1].plot(_get(h, "robust_acc"), color=c, label=f"EntropySGD, γ = {g:g}")
        axes[2].semilogy(
            _get(h, "grad_ratio"), "^", color=c, ms=3, label=f"EntropySGD γ = {g:g}: R of ∇L"
        )
        d = _get(h, "direction_ratio")
        if d.size:
            axes[2].semilogy(
                np.arange(d.size),
                d,
                color=c,
                lw=1.5,
                label=f"EntropySGD γ = {g:g}: R of the ∇F_γ it follows (SGLD)",
            )
        axes[2].axhline(g, color=c, ls="--", lw=1, label=f"y = γ = {g:g}: the bound on R of ∇F_γ")
    axes[0].set_title("adversarial loss L (exact)")
    axes[0].set_ylabel("L (nats)")
    axes[1].set_title("robust accuracy (exact, training set)")
    _accuracy_axis(axes[1], "robust accuracy (fraction)")
    axes[2].set_title("R between consecutive iterates (dashed: γ)")
    axes[2].set_ylabel("R (nats per unit θ²)")
    for ax in axes:
        ax.set_xlabel("optimizer step t")
        ax.grid(alpha=0.3)
    _legend_below(fig, axes, ncols=3)
    fig.suptitle(
        "Linear L∞ adversarial training: plain vs EntropySGD (same data, init and step size)"
    )
    return _finish(fig, path)


# --------------------------------------------------------------------------- flatness


def flatness(rows: list[dict], s_c: float, path: str | Path | None = None) -> Figure:
    r"""λ_max of the total and naive Hessians of ℓ_κ against the input curvature κ.

    Flatness in x against smoothness in θ (docs/theory/gen-flatness.md): where every
    maximiser is interior, λ_max of the total Hessian is the closed form
    :math:`\max(1/\kappa, s(c))`, drawn; where some lie on the L2 sphere (shaded) the
    sphere caps it (docs/theory/gen-l2-boundary.md).

    Args:
        rows: one dict per κ: ``kappa``, ``lambda_total``, ``lambda_naive`` and
            ``boundary`` (examples whose maximiser is on the sphere).
        s_c: the curvature s(c) of the bias term (the closed form's floor).
        path: where to write the PNG (nothing written if None).

    Returns:
        The figure.

    Example:
        >>> from advlip import plots
        >>> rows = [{"kappa": k, "lambda_total": max(1 / k, 0.2), "lambda_naive": 0.2,
        ...          "boundary": 0} for k in (0.5, 2.0, 8.0)]
        >>> plots.figure_problems(plots.flatness(rows, 0.2))
        []
    """
    fig, ax = _subplots(figsize=(11, 5.4))
    k = _arr([r["kappa"] for r in rows])
    kk = np.geomspace(k.min(), k.max(), 200)
    ax.loglog(
        kk,
        np.maximum(1.0 / kk, s_c),
        color="0.4",
        lw=2,
        label="closed form max(1/κ, s(c)): every maximiser interior",
    )
    ax.loglog(
        k,
        [_num(r["lambda_total"]) for r in rows],
        "o",
        color="tab:red",
        ms=7,
        label="total Hessian (advlip.adversarial, implicit Dδ*)",
    )
    ax.loglog(
        k,
        [_num(r["lambda_naive"]) for r in rows],
        "s",
        mfc="none",
        color="tab:blue",
        ms=7,
        label="naive Hessian (δ* held fixed)",
    )
    bnd = [i for i, r in enumerate(rows) if r["boundary"] > 0]
    if bnd:
        last = max(bnd)
        right = math.sqrt(k[last] * k[last + 1]) if last + 1 < k.size else k[last] * 1.1
        ax.axvspan(
            k.min() / 1.1,
            right,
            color="0.5",
            alpha=0.12,
            label="some maximisers on the L2 sphere (the sphere caps λ_max)",
        )
    ax.set_xlabel("input curvature κ of ℓ_κ (nats per input unit²)")
    ax.set_ylabel("λ_max (nats per unit θ²)")
    ax.set_title(
        "Flatness in x vs smoothness in θ: the flatter in the input (small κ), the larger λ_max"
    )
    ax.grid(alpha=0.3, which="both")
    _legend_right(ax)
    return _finish(fig, path)


# --------------------------------------------------------------------------- landscapes


def _contour(ax, fig, grid, Z, title, xlabel, ylabel):
    g = _arr(grid)
    Z = _arr(Z)
    cs = ax.contourf(g, g, Z, levels=20, cmap="viridis")
    ax.contour(g, g, Z, levels=20, colors="k", linewidths=0.3)
    fig.colorbar(cs, ax=ax, label="L (nats)")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_aspect("equal")


def landscape_linear(out: dict, path: str | Path | None = None) -> Figure:
    r"""Linear model: 1-D slice and ∂L/∂w_i through the kink, 2-D slices L2 beside L∞.

    Args:
        out: the ``linear`` part of the ``landscape`` JSON: ``coordinates`` (i, j),
            ``data``, ``eps_l2`` and per norm (``l2``, ``linf``) ``p``, ``eps``, ``t``,
            ``loss_1d``, ``centre_loss``, ``dloss_dwi_1d``, ``grid``, ``loss_2d``.
        path: where to write the PNG (nothing written if None).

    Returns:
        The figure.

    Example:
        >>> from advlip import plots
        >>> s = {"t": [-1.0, 0.0, 1.0], "loss_1d": [1.0, 0.0, 1.0], "centre_loss": 0.0,
        ...      "dloss_dwi_1d": [-1.0, 0.0, 1.0], "grid": [-1.0, 0.0, 1.0],
        ...      "loss_2d": [[2.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 2.0]]}
        >>> out = {"coordinates": [0, 1], "data": "toy", "eps_l2": 0.5,
        ...        "l2": {**s, "p": 2.0, "eps": 0.5}, "linf": {**s, "p": "inf", "eps": 0.25}}
        >>> plots.figure_problems(plots.landscape_linear(out))
        []
    """
    i, j = out["coordinates"]
    fig, axes = _subplots(2, 2, figsize=(13, 10.5))
    for key in ("l2", "linf"):
        s = out[key]
        c = _color(s["p"])
        lab = f"{_pname(s['p'])} (ε = {_num(s['eps']):.3g})"
        axes[0, 0].plot(s["t"], _arr(s["loss_1d"]) - _num(s["centre_loss"]), color=c, label=lab)
        axes[0, 1].plot(s["t"], _arr(s["dloss_dwi_1d"]), color=c, label=lab)
    axes[0, 0].set_title(f"1-D slice through the kink w_{i} = 0")
    axes[0, 0].set_xlabel(f"w_{i} (other weights at the trained values, w_{j} = 0)")
    axes[0, 0].set_ylabel("L − L(centre)  (nats)")
    axes[0, 1].set_title(f"∂L/∂w_{i} along the same line: L∞ jumps, L2 does not")
    axes[0, 1].set_xlabel(f"w_{i}")
    axes[0, 1].set_ylabel(f"∂L/∂w_{i}  (nats per unit w)")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        _legend_right(ax, fontsize=9)
    for ax, key in zip(axes[1], ("l2", "linf"), strict=True):
        s = out[key]
        _contour(
            ax,
            fig,
            s["grid"],
            s["loss_2d"],
            f"{_pname(s['p'])}-trained model, {_pname(s['p'])} adversarial loss "
            f"(ε = {_num(s['eps']):.3g})",
            f"w_{i}",
            f"w_{j}",
        )
    fig.suptitle(
        f"Adversarial loss of a linear model ({out['data'].split(':')[0]}), L2 beside L∞ "
        f"(matched budgets, ε₂ = {_num(out['eps_l2']):g}): the L∞ loss creases along w_i = 0"
    )
    return _finish(fig, path)


def landscape_mlp(out: dict, path: str | Path | None = None) -> Figure:
    r"""MLP: 1-D slices and 2-D slices along filter-normalised directions, L2 beside L∞.

    Args:
        out: the ``mlp`` part of the ``landscape`` JSON: ``data``, ``eps_l2`` and per norm
            (``l2``, ``linf``) ``p``, ``eps``, ``t``, ``loss_1d``, ``grid``, ``loss_2d``.
        path: where to write the PNG (nothing written if None).

    Returns:
        The figure.

    Example:
        >>> from advlip import plots
        >>> s = {"t": [-1.0, 0.0, 1.0], "loss_1d": [1.0, 0.5, 1.0], "grid": [-1.0, 0.0, 1.0],
        ...      "loss_2d": [[2.0, 1.0, 2.0], [1.0, 0.5, 1.0], [2.0, 1.0, 2.0]]}
        >>> out = {"data": "toy", "eps_l2": 0.5,
        ...        "l2": {**s, "p": 2.0, "eps": 0.5}, "linf": {**s, "p": "inf", "eps": 0.25}}
        >>> plots.figure_problems(plots.landscape_mlp(out))
        []
    """
    fig, axes = _subplots(1, 3, figsize=(18, 5.2))
    for key in ("l2", "linf"):
        s = out[key]
        axes[0].plot(
            s["t"],
            _arr(s["loss_1d"]),
            color=_color(s["p"]),
            marker=".",
            label=f"{_pname(s['p'])}-trained, {_pname(s['p'])} loss (ε = {_num(s['eps']):.3g})",
        )
    axes[0].set_title("1-D slice θ + α d₁ (d₁ filter-normalised)")
    axes[0].set_xlabel("α (units of the filter norms)")
    axes[0].set_ylabel("adversarial loss under PGD (nats)")
    axes[0].grid(alpha=0.3)
    _legend_right(axes[0])
    for ax, key in zip(axes[1:], ("l2", "linf"), strict=True):
        s = out[key]
        _contour(ax, fig, s["grid"], s["loss_2d"], f"{_pname(s['p'])}: θ + α d₁ + β d₂", "α", "β")
    fig.suptitle(
        f"Adversarial loss of an MLP ({out['data'].split(':')[0]}), L2 beside L∞ "
        f"(ε₂ = {_num(out['eps_l2']):g}, ε∞ = ε₂/√d), filter-normalised directions "
        "(Li et al. 2018)"
    )
    return _finish(fig, path)


# --------------------------------------------------------------------------- spectral density


def plot_spectral_density(
    density: Any, path: str | Path | None, *, title: str | None = None
) -> Figure:
    r"""The eigenvalue density of a Hessian by stochastic Lanczos quadrature, as a PNG.

    Draws the Gaussian-smoothed density on its grid with a logarithmic density axis (the
    bulk near 0 and the few outliers of a Hessian differ by orders of magnitude), and
    below it every quadrature node of every probe as a tick whose height is its weight.
    The default title names the Hessian, the probes, the Lanczos steps and σ.

    Args:
        density: an :class:`advlip.spectrum.SpectralDensity` (from
            :func:`advlip.spectrum.spectral_density` or a point's ``spectral_density``).
        path: where to write the PNG (nothing written if None).
        title: the title; default: what the density is of and how it was estimated.

    Returns:
        The figure.

    Raises:
        ValueError: ``density`` is not shaped like a ``SpectralDensity``.

    Example:
        >>> import os, tempfile, jax.numpy as jnp
        >>> from advlip import plots, spectrum
        >>> A = jnp.diag(jnp.array([0.0, 0.1, 0.2, 3.0]))
        >>> dens = spectrum.spectral_density(lambda v: A @ v, 4, A.dtype, num_probes=2)
        >>> path = os.path.join(tempfile.mkdtemp(), "density.png")
        >>> fig = plots.plot_spectral_density(dens, path)
        >>> os.path.getsize(path) > 0, plots.figure_problems(fig)
        (True, [])
    """
    grid = _arr(density.grid)
    dens = _arr(density.density)
    nodes, weights = _arr(density.nodes), _arr(density.weights)
    if grid.ndim != 1 or dens.shape != grid.shape or nodes.shape != weights.shape:
        raise ValueError(
            "density must be an advlip.spectrum.SpectralDensity: grid and density of one "
            f"shape, nodes and weights of one shape; got grid {grid.shape}, density "
            f"{dens.shape}, nodes {nodes.shape}, weights {weights.shape}"
        )
    fig, (ax, rug) = _subplots(2, 1, figsize=(9, 5.5))
    top = float(np.max(dens)) if dens.size and np.max(dens) > 0 else 1.0
    floor = 1e-6 * top  # the density spans orders of magnitude; below a millionth is noise
    sigma = float(density.sigma)
    ax.semilogy(
        grid,
        np.maximum(dens, floor),
        color="tab:red",
        lw=1.5,
        label=f"density, Gaussian-smoothed (σ = {sigma:.3g})",
    )
    ax.set_ylim(floor, 2.0 * top)
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylabel("density (per unit λ)")
    ax.grid(alpha=0.3, which="both")
    _legend_right(ax)
    used = weights > 0
    rug.vlines(
        nodes[used],
        0.0,
        weights[used],
        color="tab:blue",
        lw=1.0,
        alpha=0.6,
        label="quadrature nodes (height: Gauss weight)",
    )
    rug.set_xlim(grid[0], grid[-1])
    rug.set_ylim(0.0, 1.05 * float(np.max(weights[used])) if np.any(used) else 1.0)
    rug.set_xlabel("eigenvalue λ of the Hessian (nats per unit θ²)")
    rug.set_ylabel("Gauss weight per probe")
    rug.grid(alpha=0.3)
    _legend_right(rug)
    hessian = getattr(density, "hessian", None)
    what = f"the {hessian} Hessian" if hessian else "the operator"
    if title is None:
        steps = np.asarray(getattr(density, "steps", [nodes.shape[-1]]))
        dim = getattr(density, "dim", "?")
        size = (
            f"dimension {dim}"
            if getattr(density, "selection", None) is None
            else f"restricted to {dim} selected parameters"
        )
        title = (
            f"Spectral density of {what} ({size}): SLQ with {nodes.shape[0]} probes × "
            f"≤{int(np.max(steps))} Lanczos steps, σ = {sigma:.3g}"
        )
    ax.set_title(title, fontsize=10)
    return _finish(fig, path)


def plot_spectral_densities(
    densities: dict[str, Any], path: str | Path | None, *, title: str | None = None
) -> Figure:
    r"""Several SLQ densities on one axis — the total beside the naive Hessian.

    Each density is drawn on its own grid, logarithmic density axis, with its label.

    Args:
        densities: ``{label: SpectralDensity}`` (as :func:`advlip.curvature.measure`
            returns them).
        path: where to write the PNG (nothing written if None).
        title: the title; default "Spectral densities (stochastic Lanczos quadrature)".

    Returns:
        The figure.

    Raises:
        ValueError: ``densities`` is not a non-empty dict.

    Example:
        >>> import os, tempfile, jax.numpy as jnp
        >>> from advlip import plots, spectrum
        >>> A, B = jnp.diag(jnp.array([0.0, 0.1, 3.0])), jnp.diag(jnp.array([0.0, 0.2, 2.0]))
        >>> d = {"total": spectrum.spectral_density(lambda v: A @ v, 3, A.dtype, num_probes=2),
        ...      "naive": spectrum.spectral_density(lambda v: B @ v, 3, B.dtype, num_probes=2)}
        >>> path = os.path.join(tempfile.mkdtemp(), "densities.png")
        >>> fig = plots.plot_spectral_densities(d, path)
        >>> os.path.getsize(path) > 0, plots.figure_problems(fig)
        (True, [])
    """
    if not isinstance(densities, dict) or not densities:
        raise ValueError("densities must be a non-empty dict {label: SpectralDensity}")
    fig, ax = _subplots(1, 1, figsize=(9, 4.5))
    tops = [float(np.max(_arr(d.density))) for d in densities.values()]
    top = max([t for t in tops if t > 0] or [1.0])
    floor = 1e-6 * top  # below a millionth of the peak is noise
    colors = {"total": "tab:red", "naive": "tab:blue"}
    for label, d in densities.items():
        grid, dens = _arr(d.grid), _arr(d.density)
        ax.semilogy(grid, np.maximum(dens, floor), lw=1.5, label=label, color=colors.get(label))
    ax.set_ylim(floor, 2.0 * top)
    ax.set_xlabel("eigenvalue λ of the Hessian")
    ax.set_ylabel("density (per unit λ)")
    ax.grid(alpha=0.3, which="both")
    _legend_right(ax)
    ax.set_title(title or "Spectral densities (stochastic Lanczos quadrature)", fontsize=10)
    return _finish(fig, path)


# --------------------------------------------------------------------------- checking a figure

#: A case label G0–G4 not followed by its definition in parentheses ("G1 (interior …)").
_BARE_CASE = re.compile(r"\bG[0-4]\b(?!\s*\()")
_NO_LINE = (None, "", " ", "None", "none")


def _axes_name(ax) -> str:
    return repr(ax.get_title() or ax.get_ylabel() or "untitled")


def _finite_display(artist, xy) -> np.ndarray:
    pts = artist.get_transform().transform(np.asarray(xy, dtype=float))
    return pts[np.all(np.isfinite(pts), axis=1)]


def _data_artists(ax) -> list:
    """What ``ax`` draws from data: lines with a finite point, collections, patches, images."""
    out = []
    for line in ax.lines:
        xy = np.asarray(line.get_xydata(), dtype=float)
        if line.get_visible() and xy.size and np.any(np.all(np.isfinite(xy), axis=1)):
            out.append(line)
    out += [c for c in ax.collections if c.get_visible() and len(c.get_paths())]
    out += [p for p in ax.patches if p.get_visible()]
    out += [im for im in ax.images if im.get_visible()]
    return out


def _inside(points: np.ndarray, box, pad: float) -> bool:
    if not len(points):
        return False
    x, y = points[:, 0], points[:, 1]
    return bool(
        np.any(
            (x >= box.x0 - pad) & (x <= box.x1 + pad) & (y >= box.y0 - pad) & (y <= box.y1 + pad)
        )
    )


def _covers(artist, box, dpi: float) -> bool:
    """Whether ``artist`` draws anything inside ``box`` (display coordinates)."""
    from matplotlib.collections import LineCollection, PathCollection
    from matplotlib.lines import Line2D
    from matplotlib.path import Path as MplPath

    if isinstance(artist, Line2D):
        xy = artist.get_transform().transform(np.asarray(artist.get_xydata(), dtype=float))
        ok = np.all(np.isfinite(xy), axis=1)
        if artist.get_marker() not in _NO_LINE:
            if _inside(xy[ok], box, artist.get_markersize() * dpi / 72.0 / 2.0):
                return True
        if artist.get_linestyle() in _NO_LINE:
            return False
        # the drawn segments: runs of consecutive finite points
        breaks = np.flatnonzero(~ok)
        for seg in np.split(xy, breaks):
            seg = seg[np.all(np.isfinite(seg), axis=1)]
            if len(seg) >= 2 and MplPath(seg).intersects_bbox(box, filled=False):
                return True
            if len(seg) == 1 and _inside(seg, box, 0.0):
                return True
        return False
    if isinstance(artist, PathCollection):  # scatter: markers at the offsets
        pts = artist.get_offset_transform().transform(np.asarray(artist.get_offsets(), float))
        sizes = np.asarray(artist.get_sizes(), dtype=float)
        pad = float(np.sqrt(sizes.max())) * dpi / 72.0 / 2.0 if sizes.size else 0.0
        return _inside(pts[np.all(np.isfinite(pts), axis=1)], box, pad)
    if hasattr(artist, "get_paths"):  # line and polygon collections, contours
        filled = not isinstance(artist, LineCollection)
        tr = artist.get_transform()
        return any(
            p.transformed(tr).intersects_bbox(box, filled=filled) for p in artist.get_paths()
        )
    if hasattr(artist, "get_path"):  # patches: bars, spans
        return (
            artist.get_path().transformed(artist.get_transform()).intersects_bbox(box, filled=True)
        )
    return artist.get_window_extent().overlaps(box)  # images


def figure_problems(fig: Any) -> list[str]:
    r"""What keeps a figure from reading well, one sentence per problem (``[]``: none found).

    Draws ``fig`` (any matplotlib ``Figure``) and checks, in display coordinates:

    * every panel (colour bars aside) shows data: a line with a finite point, a
      collection, a patch or an image — not only a text;
    * every line has a label that a legend of the figure shows (an error bar: its
      container's label), so reference lines (bounds, closed forms, y = γ) are named;
    * a line with a single finite point has a marker (a lone point is invisible as a line);
    * no legend covers data: the part of a legend's window extent that falls inside a
      panel meets no point, segment, marker, bar or band drawn there, and every legend
      lies inside the figure;
    * every label of a general-model case (G0 to G4, defined in docs/theory/index.md)
      in a text is followed by its definition in parentheses, e.g.
      ``G1 (interior maximiser)``.

    Args:
        fig: the figure to check (a matplotlib ``Figure`` with a canvas, as every
            function of this module returns).

    Returns:
        One sentence per problem found, naming the panel by its title.

    Example:
        >>> from advlip import plots
        >>> fig, ax = plots._subplots(figsize=(4, 3))
        >>> _ = ax.plot([0.0, 1.0], [0.0, 1.0], label="data")
        >>> _ = ax.axhline(0.5)  # a reference line without a label
        >>> _ = ax.set_title("G1 only")
        >>> _ = ax.legend(loc="center")  # over the data
        >>> for problem in plots.figure_problems(fig):
        ...     print(problem)
        axes 'G1 only': line '_child1' has no legend entry
        the legend of 'G1 only' covers data of axes 'G1 only'
        text 'G1 only': the case label G0-G4 is not defined where it appears
    """
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems: list[str] = []
    axes = [ax for ax in fig.axes if ax.get_visible() and not hasattr(ax, "_colorbar")]
    legends = [(ax.get_legend(), _axes_name(ax)) for ax in fig.axes if ax.get_legend()]
    legends += [(leg, "the figure") for leg in fig.legends]
    shown = {t.get_text() for leg, _ in legends for t in leg.get_texts()}
    for ax in axes:
        name = _axes_name(ax)
        if not _data_artists(ax):
            problems.append(f"axes {name} shows no data")
        grouped: set[int] = set()
        for c in ax.containers:
            members = [a for a in c.get_children() if a is not None]
            if any(m in ax.lines for m in members):
                grouped.update(id(m) for m in members)
                if c.get_label().startswith("_") or c.get_label() not in shown:
                    problems.append(
                        f"axes {name}: error bars {c.get_label()!r} have no legend entry"
                    )
        for line in ax.lines:
            xy = np.asarray(line.get_xydata(), dtype=float)
            finite = int(np.sum(np.all(np.isfinite(xy), axis=1))) if xy.size else 0
            if finite == 1 and line.get_marker() in _NO_LINE:
                problems.append(f"axes {name}: line {line.get_label()!r} is one point, no marker")
            if id(line) in grouped:
                continue
            label = line.get_label()
            if label.startswith("_") or label not in shown:
                problems.append(f"axes {name}: line {label!r} has no legend entry")
    figure_box = fig.bbox
    for leg, owner in legends:
        box = leg.get_window_extent(renderer)
        if (
            box.x0 < figure_box.x0 - 1
            or box.y0 < figure_box.y0 - 1
            or box.x1 > figure_box.x1 + 1
            or box.y1 > figure_box.y1 + 1
        ):
            problems.append(f"the legend of {owner} is cut by the edge of the figure")
        for ax in axes:
            inter = Bbox.intersection(box, ax.get_window_extent(renderer))
            if inter is None or inter.width <= 0 or inter.height <= 0:
                continue
            if any(_covers(a, inter, fig.dpi) for a in _data_artists(ax)):
                problems.append(f"the legend of {owner} covers data of axes {_axes_name(ax)}")
    for text in fig.findobj(Text):
        s = text.get_text()
        if text.get_visible() and _BARE_CASE.search(s):
            problems.append(f"text {s!r}: the case label G0-G4 is not defined where it appears")
    return problems
