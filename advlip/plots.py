r"""Pictures of the experiments (matplotlib, Agg backend, PNG), readable without the code.

Each function takes the numbers an experiment also writes to its JSON
(:mod:`advlip.experiments`) and a path, and draws one figure with titles, axis labels
(with units: losses in nats — the softplus margin loss is the logistic log-loss —,
parameters and inputs in the data's units) and legends. Nothing here computes.
Needs matplotlib (``pip install advlip[plots]``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

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
]

L2_COLOR, LINF_COLOR = "tab:blue", "tab:orange"
DPI = 90


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float]):
    """A figure on matplotlib's Agg canvas, without pyplot: no global backend switch and no
    figure registry, so it is safe inside notebooks and threads."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError("the pictures need matplotlib: pip install 'advlip[plots]'") from None
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=True)


def _save(fig, path: str | Path) -> None:
    """PNG with a 256-colour palette (line plots and contour fills need no more), a third of
    the size of a true-colour PNG."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    buf.seek(0)
    with Image.open(buf) as img:
        img.convert("RGB").quantize(colors=256).save(path, format="PNG", optimize=True)


def _pname(p: float) -> str:
    return "L∞" if math.isinf(p) else f"L{p:g}"


def _color(p: float) -> str:
    return L2_COLOR if p == 2.0 else LINF_COLOR


def _arr(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=float)


# --------------------------------------------------------------------------- LIN-LP


def phase_diagram(points: list[dict], inv_p, curve, path: str | Path) -> None:
    """Measured growth exponents against 1/p, with SPEC LIN-LP's curve drawn over them."""
    fig, ax = _subplots(figsize=(8, 5))
    inv_p, curve = _arr(inv_p), _arr(curve)
    ax.plot(inv_p, curve, color="0.3", lw=2, label="SPEC: 0 (1<p≤2), q − 2 (2<p<∞)")
    ax.plot(
        [0.0, 1.0],
        [-1.0, -1.0],
        ls="none",
        marker="o",
        mfc="none",
        mec="0.3",
        ms=12,
        label="SPEC: −1 at p = ∞ (jump) and p = 1 (tie)",
    )
    x = [0.0 if math.isinf(pt["p"]) else 1.0 / pt["p"] for pt in points]
    ax.errorbar(
        x,
        [pt["exponent"] for pt in points],
        yerr=[pt["tolerance"] for pt in points],
        fmt="s",
        color="tab:red",
        ms=6,
        capsize=4,
        label="measured (Richardson fit ± its tolerance)",
    )
    for xi, pt in zip(x, points, strict=True):
        p = "∞" if math.isinf(pt["p"]) else f"{pt['p']:g}"
        off = (-36, 8) if xi > 0.95 else (6, 6)  # keep p = 1's label inside the axes
        ax.annotate(
            f"p={p}", (xi, pt["exponent"]), textcoords="offset points", xytext=off, fontsize=8
        )
    ax.axvspan(0.5, 0.97, color="tab:green", alpha=0.06)  # p = 1 (a tie) is not smooth
    ax.text(0.735, 0.12, "smooth on ‖w‖ ≥ r", ha="center", fontsize=9)
    ax.text(0.25, 0.12, "Hölder, not Lipschitz", ha="center", fontsize=9)
    ax.set_xlim(-0.04, 1.04)
    ax.set_ylim(-1.25, 0.3)
    ax.set_xlabel("1/p  (attack norm; p = ∞ at 0, p = 1 at 1)")
    ax.set_ylabel("growth exponent s of R(t) ∝ t^s  (dimensionless)")
    ax.set_title("LIN-LP: how the gradient ratio blows up at the kink, per threat model p")
    ax.legend(loc="lower center", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


# --------------------------------------------------------------------------- linear training


def _headline(runs: list[dict]) -> tuple[str, float]:
    data = runs[0]["data"]
    eps = sorted({r["eps_l2"] for r in runs if r["data"] == data})
    return data, eps[len(eps) // 2]


def linear_training(runs: list[dict], path: str | Path) -> None:
    """Four panels along the headline runs: loss, accuracy, gradient ratio, weights at kinks."""
    data, e2 = _headline(runs)
    sel = [r for r in runs if r["data"] == data and r["eps_l2"] == e2]
    fig, axes = _subplots(2, 2, figsize=(12, 8.5))
    ls = {"adam": "-", "sgd-momentum": "--", "sgd": ":"}
    ax = axes[0, 0]
    for r in sel:
        h = r["history"]
        ax.plot(
            h.loss,
            color=_color(r["p"]),
            ls=ls[r["optimizer"]],
            label=f"{_pname(r['p'])} (ε={r['eps']:.3g}), {r['optimizer']}",
        )
    ax.set_title("adversarial loss L(θ_t) (closed-form attack, exact)")
    ax.set_xlabel("optimizer step t")
    ax.set_ylabel("L (nats)")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    for r in sel:
        if r["optimizer"] != "adam":
            continue
        h = r["history"]
        ax.plot(h.clean_acc, color=_color(r["p"]), ls=":", label=f"{_pname(r['p'])}-trained: clean")
        ax.plot(
            h.robust_acc,
            color=_color(r["p"]),
            ls="-",
            label=f"{_pname(r['p'])}-trained: robust (exact)",
        )
    ax.set_title("accuracy on the training set (adam)")
    ax.set_xlabel("optimizer step t")
    ax.set_ylabel("accuracy (fraction)")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    for r in sel:
        if r["optimizer"] != "adam":
            continue
        h = r["history"]
        t = np.arange(h.grad_ratio.size)
        ax.semilogy(
            t, h.grad_ratio, color=_color(r["p"]), lw=1, label=f"{_pname(r['p'])}: R(θ_t, θ_t+1)"
        )
        finite = h.ratio_bound[np.isfinite(h.ratio_bound)]
        if r["p"] == 2.0:
            ax.semilogy(
                t,
                h.ratio_bound,
                color=_color(r["p"]),
                ls="--",
                lw=1.5,
                label="LIN-L2 bound β(w_t, w_t+1)",
            )
        elif finite.size:  # constant; it applies to the steps that cross no kink
            ax.axhline(
                float(finite.max()),
                color=_color(r["p"]),
                ls="-.",
                lw=1.5,
                label="L∞ bound, steps crossing no kink",
            )
        if not math.isinf(r["p"]):
            continue
        k = h.kink_crossed
        ax.plot(
            t[k],
            h.grad_ratio[k],
            ".",
            color="tab:red",
            ms=3,
            label="L∞ step crossing a kink w_i = 0",
        )
    ax.set_title("gradient ratio between consecutive iterates (adam)")
    ax.set_xlabel("optimizer step t")
    ax.set_ylabel("R = ‖Δ∇L‖ / ‖Δθ‖  (nats per unit θ²)")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    for r in sel:
        h = r["history"]
        ax.plot(
            h.near_zero,
            color=_color(r["p"]),
            ls=ls[r["optimizer"]],
            label=f"{_pname(r['p'])}, {r['optimizer']}",
        )
    ax.set_title("weights within one step of their kink (|w_i| ≤ |Δw_i|)")
    ax.set_xlabel("optimizer step t")
    ax.set_ylabel("fraction of weights")
    ax.legend(fontsize=8)
    fig.suptitle(
        f"Linear adversarial training on {data}: L2 (ε₂ = {e2:g}) vs L∞ (ε∞ = ε₂/√d, matched)"
    )
    _save(fig, path)


def linear_summary(runs: list[dict], path: str | Path) -> None:
    """Accuracy across budgets, final |w_i|, R against the step length, λ_max total vs naive."""
    fig, axes = _subplots(2, 2, figsize=(12, 9))
    datasets = list(dict.fromkeys(r["data"] for r in runs))
    markers = ["o", "s", "^", "D"]
    ax = axes[0, 0]
    for di, data in enumerate(datasets):
        for p in (2.0, math.inf):
            sel = sorted(
                (r for r in runs if r["data"] == data and r["p"] == p and r["optimizer"] == "adam"),
                key=lambda r: r["eps_l2"],
            )
            e = [r["eps_l2"] for r in sel]
            ax.plot(
                e,
                [r["history"].clean_acc[-1] for r in sel],
                marker=markers[di],
                ls=":",
                mfc="none",
                color=_color(p),
                label=f"{_pname(p)}-trained, {data}: clean",
            )
            ax.plot(
                e,
                [r["history"].robust_acc[-1] for r in sel],
                marker=markers[di],
                color=_color(p),
                label=f"{_pname(p)}-trained, {data}: robust (exact)",
            )
    ax.set_title("final accuracy on the training set (adam)")
    ax.set_xlabel("budget ε₂ (L2 radius; L∞ radius ε₂/√d), input units")
    ax.set_ylabel("accuracy (fraction)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    data, e2 = _headline(runs)
    head = [r for r in runs if r["data"] == data and r["eps_l2"] == e2]
    ls = {"adam": "-", "sgd-momentum": "--", "sgd": ":"}
    ax = axes[0, 1]
    for r in head:
        w = np.sort(_arr(r["final_abs_w"]))
        ax.semilogy(
            np.arange(1, w.size + 1),
            w,
            marker=".",
            ls=ls[r["optimizer"]],
            color=_color(r["p"]),
            label=f"{_pname(r['p'])}, {r['optimizer']}",
        )
    ax.set_title(f"final |w_i| sorted (ε₂ = {e2:g}): L∞ pins many near the kink 0")
    ax.set_xlabel("rank of |w_i| (1 = smallest)")
    ax.set_ylabel("|w_i| (per input unit)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax = axes[1, 0]
    for r in head:
        h = r["history"]
        k = h.kink_crossed
        mk = "o" if r["optimizer"] == "adam" else "^"
        ax.loglog(
            h.step_norm[~k],
            h.grad_ratio[~k],
            mk,
            ms=3,
            mfc="none",
            color=_color(r["p"]),
            label=f"{_pname(r['p'])}, {r['optimizer']}: no kink crossed",
        )
        if np.any(k):
            ax.loglog(
                h.step_norm[k],
                h.grad_ratio[k],
                mk,
                ms=3,
                color="tab:red",
                alpha=0.6,
                label=f"{_pname(r['p'])}, {r['optimizer']}: crosses w_i = 0",
            )
    ax.set_title("R against the step length: across a kink R ≈ jump / ‖Δθ‖")
    ax.set_xlabel("‖θ_t+1 − θ_t‖ (parameter units)")
    ax.set_ylabel("R(θ_t, θ_t+1) (nats per unit θ²)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    ax = axes[1, 1]
    for r in head:
        if r["optimizer"] != "adam":
            continue
        h = r["history"]
        ax.plot(
            h.checkpoint_step,
            h.lambda_max_total,
            marker="o",
            color=_color(r["p"]),
            label=f"{_pname(r['p'])}: total Hessian (δ* moves with θ)",
        )
        ax.plot(
            h.checkpoint_step,
            h.lambda_max_naive,
            marker="x",
            ls="--",
            color=_color(r["p"]),
            label=f"{_pname(r['p'])}: naive Hessian (δ* held fixed)",
        )
    ax.set_yscale("log")
    ax.set_title("top Hessian eigenvalue along training (adam)")
    ax.set_xlabel("optimizer step t")
    ax.set_ylabel("λ_max (nats per unit θ²)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.suptitle(
        "Linear adversarial training, L2 vs L∞ at matched budgets: accuracy, kinks, curvature"
    )
    _save(fig, path)


# --------------------------------------------------------------------------- MLP training


def mlp_training(runs: list[dict], path: str | Path, *, quick: bool) -> None:
    """Loss, accuracies (training / strong attack), gradient ratio and λ_max of an MLP."""
    eps = sorted({r["eps_l2"] for r in runs})
    e2 = eps[len(eps) // 2]
    sel = [r for r in runs if r["eps_l2"] == e2 and r["optimizer"] == "adam"]
    fig, axes = _subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0, 0]
    for r in [r for r in runs if r["eps_l2"] == e2]:
        h = r["history"]
        ax.plot(
            h.loss,
            color=_color(r["p"]),
            ls="-" if r["optimizer"] == "adam" else "--",
            label=f"{_pname(r['p'])} (ε={r['eps']:.3g}), {r['optimizer']}",
        )
    ax.set_title("adversarial loss under the training attack (PGD)")
    ax.set_xlabel("optimizer step t")
    ax.set_ylabel("L (nats)")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    for r in sel:
        h, c = r["history"], _color(r["p"])
        ax.plot(h.clean_acc, color=c, ls=":", lw=1, label=f"{_pname(r['p'])}: clean (train set)")
        ax.plot(
            h.robust_acc,
            color=c,
            lw=1,
            label=f"{_pname(r['p'])}: robust, training attack (train set)",
        )
        ax.plot(
            h.checkpoint_step,
            h.ck_clean_acc,
            "o",
            mfc="none",
            color=c,
            label=f"{_pname(r['p'])}: clean (test)",
        )
        ax.plot(
            h.checkpoint_step,
            h.ck_strong_robust_acc,
            "s",
            color=c,
            label=f"{_pname(r['p'])}: robust, strong attack (test)",
        )
    ax.set_title("accuracy (adam)")
    ax.set_xlabel("optimizer step t")
    ax.set_ylabel("accuracy (fraction)")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    for r in sel:
        h = r["history"]
        ax.semilogy(
            h.grad_ratio, color=_color(r["p"]), lw=1, label=f"{_pname(r['p'])}: R(θ_t, θ_t+1)"
        )
    ax.set_title("gradient ratio between consecutive iterates (adam)")
    ax.set_xlabel("optimizer step t")
    ax.set_ylabel("R = ‖Δ∇L‖ / ‖Δθ‖  (nats per unit θ²)")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    cert = [r for r in runs if r.get("certified")]
    if cert:
        for r in cert:
            h = r["history"]
            ax.plot(
                h.checkpoint_step,
                h.lambda_max_total,
                "o-",
                color=_color(r["p"]),
                label=f"{_pname(r['p'])}: total Hessian (implicit Dδ*)",
            )
            ax.plot(
                h.checkpoint_step,
                h.lambda_max_naive,
                "x--",
                color=_color(r["p"]),
                label=f"{_pname(r['p'])}: naive Hessian (δ* held fixed)",
            )
        ax.legend(fontsize=8)
    else:
        ax.text(
            0.5,
            0.5,
            "λ_max of total vs naive Hessian:\ncomputed at full size only\n(run without --quick)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.set_title("top Hessian eigenvalue at checkpoints (training set)")
    ax.set_xlabel("optimizer step t")
    ax.set_ylabel("λ_max (nats per unit θ²)")
    size = " (quick size)" if quick else ""
    fig.suptitle(f"MLP adversarial training: L2 (ε₂ = {e2:g}) vs L∞ (ε∞ = ε₂/√d){size}")
    _save(fig, path)


# --------------------------------------------------------------------------- EntropySGD


def entropy_quadrature(rows: list[dict], raw_fit: dict, path: str | Path) -> None:
    """R of F_γ (quadrature) and of L across the L∞ kink, against the pair distance t."""
    fig, ax = _subplots(figsize=(8, 5.2))
    t = _arr(rows[0]["kink_t"])
    ax.loglog(t, _arr(rows[0]["kink_ratio_L"]), "k.-", label="raw adversarial loss L: R ∝ 1/t")
    ax.loglog(_arr(raw_fit["t"]), _arr(raw_fit["R"]), "k.", ms=3)
    colors = ["tab:green", "tab:purple", "tab:brown", "tab:cyan", "tab:olive"]
    for c, r in zip(colors, rows, strict=False):
        ax.loglog(
            _arr(r["kink_t"]),
            _arr(r["kink_ratio_F"]),
            "o-",
            color=c,
            ms=4,
            label=f"local entropy F_γ, γ = {r['gamma']:g} (max R = {r['max_ratio']:.3g})",
        )
        ax.axhline(r["gamma"], color=c, ls="--", lw=1)
    ax.set_xlabel("half-distance t of the pair w ± t e₁ across the kink w₁ = 0 (parameter units)")
    ax.set_ylabel("gradient ratio R (nats per unit θ²)")
    ax.set_title("EntropySGD smooths the L∞ kink: R(F_γ) ≤ γ (dashed), R(L) grows like 1/t")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)


def entropy_training(plain, esgd: list[dict], path: str | Path) -> None:
    """Plain adversarial training vs EntropySGD: loss, robust accuracy, gradient ratios."""
    fig, axes = _subplots(1, 3, figsize=(15, 4.8))
    colors = ["tab:green", "tab:purple", "tab:brown"]
    axes[0].plot(plain.loss, color="k", label="plain (sgd-momentum)")
    axes[1].plot(plain.robust_acc, color="k", label="plain (sgd-momentum)")
    axes[2].semilogy(plain.grad_ratio, "o", color="k", ms=3, mfc="none", label="plain: R of ∇L")
    for c, r in zip(colors, esgd, strict=False):
        h, g = r["history"], r["gamma"]
        axes[0].plot(h.loss, color=c, label=f"EntropySGD, γ = {g:g}")
        axes[1].plot(h.robust_acc, color=c, label=f"EntropySGD, γ = {g:g}")
        axes[2].semilogy(h.grad_ratio, "^", color=c, ms=3, label=f"EntropySGD γ = {g:g}: R of ∇L")
        if h.direction_ratio.size:
            axes[2].semilogy(
                np.arange(h.direction_ratio.size),
                h.direction_ratio,
                color=c,
                lw=1.5,
                label=f"EntropySGD γ = {g:g}: R of the ∇F_γ it follows (SGLD)",
            )
        axes[2].axhline(g, color=c, ls="--", lw=1)
    axes[0].set_title("adversarial loss L (exact)")
    axes[0].set_ylabel("L (nats)")
    axes[1].set_title("robust accuracy (exact, training set)")
    axes[1].set_ylabel("robust accuracy (fraction)")
    axes[2].set_title("R between consecutive iterates (dashed: γ)")
    axes[2].set_ylabel("R (nats per unit θ²)")
    for ax in axes:
        ax.set_xlabel("optimizer step t")
        ax.legend(fontsize=8)
    fig.suptitle(
        "Linear L∞ adversarial training: plain vs EntropySGD (same data, init and step size)"
    )
    _save(fig, path)


# --------------------------------------------------------------------------- flatness


def flatness(rows: list[dict], s_c: float, path: str | Path) -> None:
    """λ_max of the total and naive Hessians of ℓ_κ against the input curvature κ (SPEC G4)."""
    fig, ax = _subplots(figsize=(8, 5.2))
    k = _arr([r["kappa"] for r in rows])
    kk = np.geomspace(k.min(), k.max(), 200)
    ax.loglog(
        kk,
        np.maximum(1.0 / kk, s_c),
        color="0.4",
        lw=2,
        label="closed form max(1/κ, s(c)) (interior maximisers, G1)",
    )
    ax.loglog(
        k,
        [r["lambda_total"] for r in rows],
        "o",
        color="tab:red",
        ms=7,
        label="total Hessian (advlip.adversarial, implicit Dδ*)",
    )
    ax.loglog(
        k,
        [r["lambda_naive"] for r in rows],
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
            label="some maximisers on the L2 sphere (G2: the sphere caps λ_max)",
        )
    ax.set_xlabel("input curvature κ of ℓ_κ (nats per input unit²)")
    ax.set_ylabel("λ_max (nats per unit θ²)")
    ax.set_title("G4: the flatter the loss in the input (small κ), the less smooth in θ")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)


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


def landscape_linear(out: dict, path: str | Path) -> None:
    """Linear model: 1-D slice and ∂L/∂w_i through the kink, 2-D slices L2 beside L∞."""
    i, j = out["coordinates"]
    fig, axes = _subplots(2, 2, figsize=(12, 10))
    for key in ("l2", "linf"):
        s = out[key]
        c = _color(s["p"])
        lab = f"{_pname(s['p'])} (ε = {s['eps']:.3g})"
        axes[0, 0].plot(s["t"], _arr(s["loss_1d"]) - s["centre_loss"], color=c, label=lab)
        axes[0, 1].plot(s["t"], s["dloss_dwi_1d"], color=c, label=lab)
    axes[0, 0].set_title(f"1-D slice through the kink w_{i} = 0")
    axes[0, 0].set_xlabel(f"w_{i} (other weights at the trained values, w_{j} = 0)")
    axes[0, 0].set_ylabel("L − L(centre)  (nats)")
    axes[0, 1].set_title(f"∂L/∂w_{i} along the same line: L∞ jumps, L2 does not")
    axes[0, 1].set_xlabel(f"w_{i}")
    axes[0, 1].set_ylabel(f"∂L/∂w_{i}  (nats per unit w)")
    for ax in axes[0]:
        ax.legend(fontsize=9)
        ax.grid(alpha=0.3)
    for ax, key in zip(axes[1], ("l2", "linf"), strict=True):
        s = out[key]
        _contour(
            ax,
            fig,
            s["grid"],
            s["loss_2d"],
            f"{_pname(s['p'])}-trained model, {_pname(s['p'])} adversarial loss "
            f"(ε = {s['eps']:.3g})",
            f"w_{i}",
            f"w_{j}",
        )
    fig.suptitle(
        f"Adversarial loss of a linear model ({out['data'].split(':')[0]}), L2 beside L∞ "
        f"(matched budgets, ε₂ = {out['eps_l2']:g}): the L∞ loss creases along w_i = 0"
    )
    _save(fig, path)


def landscape_mlp(out: dict, path: str | Path) -> None:
    """MLP: 1-D slices and 2-D slices along filter-normalised directions, L2 beside L∞."""
    fig, axes = _subplots(1, 3, figsize=(16, 5))
    for key in ("l2", "linf"):
        s = out[key]
        axes[0].plot(
            s["t"],
            s["loss_1d"],
            color=_color(s["p"]),
            marker=".",
            label=f"{_pname(s['p'])}-trained, {_pname(s['p'])} loss (ε = {s['eps']:.3g})",
        )
    axes[0].set_title("1-D slice θ + α d₁ (d₁ filter-normalised)")
    axes[0].set_xlabel("α (units of the filter norms)")
    axes[0].set_ylabel("adversarial loss under PGD (nats)")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    for ax, key in zip(axes[1:], ("l2", "linf"), strict=True):
        s = out[key]
        _contour(ax, fig, s["grid"], s["loss_2d"], f"{_pname(s['p'])}: θ + α d₁ + β d₂", "α", "β")
    fig.suptitle(
        f"Adversarial loss of an MLP ({out['data'].split(':')[0]}), L2 beside L∞ "
        f"(ε₂ = {out['eps_l2']:g}, ε∞ = ε₂/√d), filter-normalised directions (Li et al. 2018)"
    )
    _save(fig, path)


# --------------------------------------------------------------------------- spectral density


def plot_spectral_density(density: Any, path: str | Path, *, title: str | None = None) -> None:
    r"""The eigenvalue density of a Hessian by stochastic Lanczos quadrature, as a PNG.

    ``density``: an :class:`advlip.spectrum.SpectralDensity` (from
    :func:`advlip.spectrum.spectral_density` or a point's ``spectral_density``). Draws
    the Gaussian-smoothed density on its grid with a logarithmic density axis (the bulk
    near 0 and the few outliers of a Hessian differ by orders of magnitude), and below
    it every quadrature node of every probe as a tick whose height is its weight. The
    default title names the Hessian, the probes, the Lanczos steps and σ.

    Example:
        >>> import os, tempfile, jax.numpy as jnp
        >>> from advlip import plots, spectrum
        >>> A = jnp.diag(jnp.array([0.0, 0.1, 0.2, 3.0]))
        >>> dens = spectrum.spectral_density(lambda v: A @ v, 4, A.dtype, num_probes=2)
        >>> path = os.path.join(tempfile.mkdtemp(), "density.png")
        >>> plots.plot_spectral_density(dens, path)
        >>> os.path.getsize(path) > 0
        True
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
    fig, (ax, rug) = _subplots(2, 1, figsize=(8, 5.5))
    top = float(np.max(dens)) if dens.size and np.max(dens) > 0 else 1.0
    floor = 1e-6 * top  # the density spans orders of magnitude; below a millionth is noise
    ax.semilogy(grid, np.maximum(dens, floor), color="tab:red", lw=1.5)
    ax.set_ylim(floor, 2.0 * top)
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylabel("density (per unit λ)")
    ax.grid(alpha=0.3, which="both")
    used = weights > 0
    rug.vlines(nodes[used], 0.0, weights[used], color="tab:blue", lw=1.0, alpha=0.6)
    rug.set_xlim(grid[0], grid[-1])
    rug.set_ylim(0.0, 1.05 * float(np.max(weights[used])) if np.any(used) else 1.0)
    rug.set_xlabel("eigenvalue λ of the Hessian (nats per unit θ²)")
    rug.set_ylabel("Gauss weight per probe")
    rug.grid(alpha=0.3)
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
            f"≤{int(np.max(steps))} Lanczos steps, σ = {float(density.sigma):.3g}"
        )
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def plot_spectral_densities(
    densities: dict[str, Any], path: str | Path, *, title: str | None = None
) -> None:
    r"""Several SLQ densities on one axis — the total beside the naive Hessian.

    ``densities``: ``{label: SpectralDensity}`` (as :func:`advlip.curvature.measure` returns
    them). Each is drawn on its own grid, log density axis, with its label.

    Example:
        >>> import os, tempfile, jax.numpy as jnp
        >>> from advlip import plots, spectrum
        >>> A, B = jnp.diag(jnp.array([0.0, 0.1, 3.0])), jnp.diag(jnp.array([0.0, 0.2, 2.0]))
        >>> d = {"total": spectrum.spectral_density(lambda v: A @ v, 3, A.dtype, num_probes=2),
        ...      "naive": spectrum.spectral_density(lambda v: B @ v, 3, B.dtype, num_probes=2)}
        >>> path = os.path.join(tempfile.mkdtemp(), "densities.png")
        >>> plots.plot_spectral_densities(d, path)
        >>> os.path.getsize(path) > 0
        True
    """
    if not isinstance(densities, dict) or not densities:
        raise ValueError("densities must be a non-empty dict {label: SpectralDensity}")
    fig, ax = _subplots(1, 1, figsize=(8, 4.5))
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
    ax.legend()
    ax.set_title(title or "Spectral densities (stochastic Lanczos quadrature)", fontsize=10)
    _save(fig, path)
