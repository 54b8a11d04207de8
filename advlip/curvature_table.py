r"""The curvature table: total beside naive Hessian of a CNN's adversarial loss, L2 and L∞.

Liu et al. (2020) measured the curvature of adversarial training with the attack held
fixed: the *naive* Hessian :math:`H_{\theta\theta}` at the attack's δ. The adversarial loss
:math:`L(\theta) = \operatorname{mean}_i \max_{\|\delta\|_p\le\varepsilon}\ell(x_i+\delta;\theta)`
has the *total* Hessian :math:`H_{\theta\theta} + H_{\theta x}A^+PH_{x\theta}`, in which the
maximiser moves with θ (implicit differentiation, :mod:`advlip.adversarial`). This
experiment trains a small CNN (:func:`advlip.networks.cnn`, softplus, cross-entropy) on
scikit-learn's ten-class 8 × 8 digits with PGD adversarial training under L2 and under
L∞ at matched budgets, over several seeds, and tabulates on held-out probe examples,
in float64:

* λ_max of the total and of the naive Hessian, each with its error bound, and their
  traces (Hutch++, with a standard error), along training (checkpoints at the training
  budget) and across budgets (at the end of training);
* the fraction of examples whose total Hessian is undetermined, and why;
* how far each example is from a **switching surface**, where its active face changes.
  At an L∞ vertex the maximiser does not move to first order, so the total Hessian
  equals the naive one there; the non-smoothness of L∞ adversarial training lives on
  these surfaces instead. In x: the KKT slack (Euclidean distance to the nearest
  inactive constraint) and the smallest active multiplier (0 on a switching surface).
  In θ, to first order: for each constraint c (an active multiplier
  :math:`m = \hat n\cdot\nabla_x\ell`, or a slack :math:`s = \varepsilon - \hat n\cdot\delta`
  with :math:`\hat n` the constraint's outward normal), :math:`c/\|\nabla_\theta c\|`, with
  :math:`\nabla_\theta m = H_{\theta x}(\hat n + A^+PH_{xx}\hat n)` and
  :math:`\nabla_\theta s = -H_{\theta x}A^+P\hat n` (the total derivatives, δ* moving), the
  smallest over the constraints; compared with one optimiser step;
* at L∞, that a vertex maximiser does not move: the attack re-solved at θ ± h v leaves it
  in place (so :math:`D\delta^* = 0` and the total Hessian is the naive one there), while
  at the faces the central difference of δ* is compared with :math:`D\delta^* v`;
* crossings (seed 0, L∞, end of training): the example nearest a surface, and the nearest
  whose loss is convex along the constraint's normal (where the maximiser jumps across
  the box at a value tie instead of unclamping continuously), are moved across it along
  :math:`-\nabla_\theta c`, the crossing located by bisection with the attack re-solved at
  every θ (:func:`crossing`), and the change of
  :math:`\nabla_\theta\ell(x+\delta^*(\theta), \theta)` across it compared with
  :math:`H_{\theta x}\Delta\delta + H_{\theta\theta}\Delta\theta` at the midpoint.

The curvature is that of the mean over all probe examples, undetermined ones included
(their fraction and reasons are reported beside it). Budgets are matched by
:func:`advlip.training.matched_eps`: :math:`\varepsilon_\infty = \varepsilon_2/\sqrt d`
(d = 64), the largest L∞ ball inside the L2 ball. Everything random comes from the
experiment's key (seed s: ``jax.random.fold_in(key, s)``; the L2 and L∞ runs of a seed
start from the same network and see the same minibatches). Run it with ``advlip
experiment curvature-table``.

Example:
    >>> from advlip import curvature_table
    >>> curvature_table.SIZES["quick"].seeds
    2
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from advlip import adversarial, attacks, keys, tolerance, training
from advlip.plots import L2_COLOR, LINF_COLOR

__all__ = ["Sizes", "SIZES", "experiment", "format_table"]

INPUT_SHAPE = (8, 8, 1)
D = 64  # pixels of one digit


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big a run is. ``SIZES`` holds ``"full"``, ``"quick"`` and ``"tiny"`` (tests).

    Attributes:
        seeds: training seeds per norm.
        channels: the CNN's convolution channels (:func:`advlip.networks.cnn`).
        hidden: the width of its dense layer.
        n_train: training examples.
        n_probe: held-out probe examples the curvature is measured on.
        n_eval: held-out examples of the accuracies at the checkpoints.
        steps: adam steps of adversarial training.
        batch: the minibatch size.
        attack_steps: steps of the light PGD training attack.
        learning_rate: adam's learning rate.
        checkpoints: fractions of training measured at the training budget.
        eps_l2: the L2 budgets measured at the end of training (L∞: matched).
        eps_train: the training budget (one of ``eps_l2``).
        lanczos_steps: Lanczos steps of each λ_max.
        trace_samples: Hutch++ samples of each trace.
        bisect_steps: bisections that locate a crossing.

    Example:
        >>> import dataclasses
        >>> from advlip import curvature_table
        >>> small = dataclasses.replace(curvature_table.SIZES["tiny"], seeds=1)
        >>> small.seeds, small.eps_train in small.eps_l2
        (1, True)
    """

    seeds: int
    channels: tuple[int, ...]
    hidden: int
    n_train: int
    n_probe: int
    n_eval: int
    steps: int
    batch: int
    attack_steps: int
    learning_rate: float
    checkpoints: tuple[float, ...]
    eps_l2: tuple[float, ...]
    eps_train: float
    lanczos_steps: int
    trace_samples: int
    bisect_steps: int


SIZES: dict[str, Sizes] = {
    "full": Sizes(
        seeds=3,
        channels=(8, 16),
        hidden=32,
        n_train=1200,
        n_probe=48,
        n_eval=500,
        steps=400,
        batch=64,
        attack_steps=7,
        learning_rate=0.01,
        checkpoints=(0.0, 0.25, 0.5, 1.0),
        eps_l2=(0.25, 0.5, 1.0),
        eps_train=0.5,
        lanczos_steps=40,
        trace_samples=30,
        bisect_steps=16,
    ),
    "quick": Sizes(
        seeds=2,
        channels=(2, 4),
        hidden=8,
        n_train=400,
        n_probe=8,
        n_eval=200,
        steps=60,
        batch=32,
        attack_steps=3,
        learning_rate=0.03,
        checkpoints=(0.0, 1.0),
        eps_l2=(0.5, 1.0),
        eps_train=0.5,
        lanczos_steps=20,
        trace_samples=9,
        bisect_steps=12,
    ),
    "tiny": Sizes(
        seeds=2,
        channels=(2,),
        hidden=8,
        n_train=64,
        n_probe=4,
        n_eval=64,
        steps=4,
        batch=16,
        attack_steps=2,
        learning_rate=0.03,
        checkpoints=(0.0, 1.0),
        eps_l2=(0.5,),
        eps_train=0.5,
        lanczos_steps=12,
        trace_samples=6,
        bisect_steps=6,
    ),
}

P_VALUES = (2.0, math.inf)


def _p_name(p: float) -> str:
    return "inf" if math.isinf(p) else f"{p:g}"


def _claim(statement: str, holds: bool, **figures: Any) -> dict:
    return {"claim": statement, "holds": bool(holds), **figures}


# --------------------------------------------------------------------------- data, model


def _dataset(name: str) -> tuple[np.ndarray, np.ndarray, int, str]:
    """``(X (N, 64) in [0, 1], labels, classes, description)``."""
    from advlip import data

    key = str(name).strip().lower()
    images, labels = data.digits_images()
    X = np.asarray(images, dtype=np.float64).reshape(images.shape[0], -1)
    labels = np.asarray(labels)
    if key == "digits":
        return X, labels, 10, "scikit-learn digits, 10 classes, 8x8x1 pixels in [0, 1]"
    m = re.fullmatch(r"digits-(\d)-(\d)", key)
    if m and m.group(1) != m.group(2):
        a, b = int(m.group(1)), int(m.group(2))
        keep = (labels == a) | (labels == b)
        y = np.where(labels[keep] == a, 0, 1)
        return X[keep], y, 2, f"digits {a} (class 0) vs {b} (class 1), 8x8x1 pixels in [0, 1]"
    raise ValueError(
        f"data={name!r} is not allowed; allowed: 'digits' (ten classes) or 'digits-A-B' "
        "(two different digits 0-9, e.g. digits-3-8)"
    )


def _model(key: jax.Array, classes: int, sizes: Sizes):
    """``(params, loss_fn)``: the CNN, its loss taking flat inputs (64,)."""
    from advlip import networks

    params, base = networks.cnn(
        key,
        INPUT_SHAPE,
        classes,
        channels=sizes.channels,
        hidden=sizes.hidden,
        activation="softplus",
        loss="cross_entropy",
        dtype=jnp.float64,
    )
    return params, attacks.InputShaped(base, INPUT_SHAPE)


def _flat(tree: Any) -> jax.Array:
    return jnp.concatenate([jnp.ravel(a) for a in jax.tree.leaves(tree)])


def _unflat_like(template: Any, flat: jax.Array) -> Any:
    leaves, treedef = jax.tree.flatten(template)
    out, start = [], 0
    for leaf in leaves:
        out.append(flat[start : start + leaf.size].reshape(leaf.shape).astype(leaf.dtype))
        start += leaf.size
    return jax.tree.unflatten(treedef, out)


# --------------------------------------------------------------------------- training


@functools.partial(jax.jit, static_argnames=("static", "p", "opt"))
def _train_step(static, dyn, params, state, Xb, yb, eps, steps, *, p, opt):
    """One step of PGD adversarial training: light PGD (``steps``), Danskin gradient at its
    δ, optimiser update. Returns the new params and state, the loss, ‖∇L‖ and ‖Δθ‖."""
    lf = attacks.combine(dyn, static)
    delta = lax.stop_gradient(
        attacks.pgd(lf, params, Xb, yb, eps=eps, p=p, steps=steps, mode="light").delta
    )

    def mean_loss(th):
        return jnp.mean(jax.vmap(lambda x, yi: lf(th, x, yi))(Xb + delta, yb))

    loss, g = jax.value_and_grad(mean_loss)(params)
    updates, state = opt.update(g, state, params)
    return (
        optax.apply_updates(params, updates),
        state,
        loss,
        jnp.linalg.norm(_flat(g)),
        jnp.linalg.norm(_flat(updates)),
    )


@functools.partial(jax.jit, static_argnames=("static", "p"))
def _accuracy(static, dyn, params, X, y, eps, steps, *, p):
    """Clean and robust (light PGD of ``steps`` steps) accuracy on ``(X, y)``."""
    lf = attacks.combine(dyn, static)
    base = lf.base
    delta = attacks.pgd(lf, params, X, y, eps=eps, p=p, steps=steps, mode="light").delta

    def acc(Z):
        logits = base.logits(params, Z.reshape((Z.shape[0], *INPUT_SHAPE)))
        return jnp.mean((jnp.argmax(logits, axis=1) == y).astype(X.dtype))

    return acc(X), acc(X + delta)


def _train(lf, params, Xtr, ytr, Xho, yho, eps, p, sizes, rng) -> dict:
    """Adversarial training with adam; the parameters at the checkpoint steps, the step
    taken from each (‖Δθ‖, and ‖∇L‖ of its minibatch), the loss curve and accuracies."""
    opt = training.make_optimizer("adam", sizes.learning_rate)
    dyn, static = attacks.partition(lf)
    state = opt.init(params)
    ck_steps = sorted({round(f * sizes.steps) for f in sizes.checkpoints})
    n = Xtr.shape[0]
    order = [rng.choice(n, size=sizes.batch, replace=False) for _ in range(sizes.steps + 1)]
    eps_a = jnp.asarray(eps)
    saved, losses = {}, []
    for t in range(sizes.steps + 1):
        idx = order[t]
        new, new_state, loss, gnorm, unorm = _train_step(
            static,
            dyn,
            params,
            state,
            Xtr[idx],
            ytr[idx],
            eps_a,
            jnp.asarray(sizes.attack_steps, jnp.int32),
            p=p,
            opt=opt,
        )
        if t in ck_steps:
            clean, robust = _accuracy(
                static, dyn, params, Xho, yho, eps_a, jnp.asarray(10, jnp.int32), p=p
            )
            saved[t] = {
                "params": params,
                "step_norm": float(unorm),
                "grad_norm": float(gnorm),
                "lr_grad_norm": sizes.learning_rate * float(gnorm),
                "heldout_clean_acc": float(clean),
                "heldout_robust_acc": float(robust),
            }
        if t == sizes.steps:  # the last update is only measured (the step from the end)
            break
        params, state = new, new_state
        losses.append(float(loss))
    return {"checkpoints": saved, "loss": losses, "checkpoint_steps": ck_steps}


# --------------------------------------------------------------------------- switching surfaces


def _constraints_one(lf, params, x, yi, dl, M, eps, p):
    r"""One example's nearest switching surface, to first order in θ.

    Per constraint c: its value (a multiplier ``n·g`` if active, else the slack
    ``eps - n·δ``), the norm of its total θ-gradient, and the unit θ-direction along which
    it decreases. Returns ``(value, grad_norm, theta_distance, is_multiplier, curvature,
    index, direction)`` of the constraint with the smallest ``value / grad_norm``:
    ``curvature`` is :math:`\hat n^\top H_{xx}\hat n` along its normal, ``index`` its
    coordinate (L∞; 0 for the L2 sphere)."""
    z = x + dl
    dt = dl.dtype
    gx = lambda zz: jax.grad(lf, argnums=1)(params, zz, yi)  # noqa: E731
    gth = lambda zz: _flat(jax.grad(lf)(params, zz, yi))  # noqa: E731
    g = gx(z)
    Hxx = jax.jacfwd(gx)(z)  # (d, d)
    Hxt = jax.jacfwd(gth)(z).T  # (d, P): row j = ∂/∂θ of g_j
    Dd = M @ Hxt  # Dδ* = A⁺P H_xθ, (d, P)
    Jg = Hxt + Hxx @ Dd  # total θ-derivative of g(x + δ*(θ), θ), (d, P)
    inf = jnp.asarray(jnp.inf, dt)
    if math.isinf(p):
        s = jnp.where(dl != 0, jnp.sign(dl), jnp.where(g != 0, jnp.sign(g), 1.0))
        at_bound = jnp.abs(dl) >= eps * (1.0 - tolerance.gamma(2, dt))
        clamped = at_bound & (s * g > 0)
        vals = jnp.where(clamped, s * g, eps - jnp.abs(dl))
        rows = jnp.where(clamped[:, None], s[:, None] * Jg, -s[:, None] * Dd)
        curv = jnp.diagonal(Hxx)  # n̂ᵀ H_xx n̂ for n̂ = ±e_j
    else:
        nrm = jnp.linalg.norm(dl)
        gn = jnp.linalg.norm(g)
        nhat = jnp.where(nrm > 0, dl / jnp.where(nrm > 0, nrm, 1.0), g / jnp.where(gn > 0, gn, 1.0))
        on = nrm >= eps * (1.0 - tolerance.gamma(2 * dl.shape[0] + 8, dt))
        active = on & (g @ dl > 0)
        vals = jnp.where(active, g @ nhat, eps - nrm)[None]
        rows = jnp.where(active, nhat @ Jg, -(nhat @ Dd))[None, :]
        clamped = active[None]
        curv = (nhat @ Hxx @ nhat)[None]
    norms = jnp.linalg.norm(rows, axis=1)
    dist = jnp.where(norms > 0, jnp.maximum(vals, 0.0) / jnp.where(norms > 0, norms, 1.0), inf)
    j = jnp.argmin(dist)
    direction = -rows[j] / jnp.where(norms[j] > 0, norms[j], 1.0)
    return vals[j], norms[j], dist[j], clamped[j], curv[j], j, direction


@functools.partial(jax.jit, static_argnames=("static", "p"))
def _constraints(static, dyn, params, X, y, delta, Minv, eps, *, p):
    lf = attacks.combine(dyn, static)

    def one(args):
        x, yi, dl, M = args
        return _constraints_one(lf, params, x, yi, dl, M, eps, p)

    # one example at a time: a vmapped jacfwd of a conv net's gradient is far slower on CPU
    return lax.map(one, (X, y, delta, Minv))


def switching(pt: adversarial.AdversarialPoint) -> dict[str, np.ndarray]:
    r"""Per example of ``pt``, how far its maximiser is from a switching surface.

    In x (the KKT certificate, :class:`advlip.attacks.KKT`): ``slack`` (Euclidean distance
    to the nearest inactive constraint, ``inf`` if none) and ``multiplier`` (the smallest
    active multiplier, ``inf`` if none; 0 on a switching surface). In θ, to first order:
    for every constraint c — an active multiplier :math:`m = \hat n\cdot\nabla_x\ell` or an
    inactive slack :math:`s = \varepsilon - \hat n\cdot\delta` — the total derivative
    :math:`\nabla_\theta m = H_{\theta x}(\hat n + A^+PH_{xx}\hat n)`,
    :math:`\nabla_\theta s = -H_{\theta x}A^+P\hat n` (δ* moving with θ,
    :math:`D\delta^* = A^+PH_{x\theta}`), and ``theta_distance`` = the smallest
    :math:`c/\|\nabla_\theta c\|`; ``theta_value``, ``theta_grad_norm``, ``is_multiplier`` of
    that constraint, ``index`` (its coordinate at L∞, 0 for the L2 sphere), ``curvature``
    (:math:`\hat n^\top H_{xx}\hat n`: where it is positive the loss is convex along the
    normal, and an L∞ maximiser jumps across the box at a value tie rather than
    unclamping continuously) and ``direction`` (n, P), the unit
    θ-direction that decreases it.
    Costs d forward passes of the θ-gradient per example (:math:`H_{x\theta}` is formed,
    d × P).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from advlip import adversarial, curvature_table, models
        >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[0.5, 1.0], [1.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> pt = adversarial.linearize(models.LinearLoss(), params, X, y, eps=0.1, p=float("inf"))
        >>> sw = curvature_table.switching(pt)
        >>> sw["theta_distance"].shape, sw["direction"].shape
        ((2,), (2, 3))
    """
    dyn, static = attacks.partition(pt.loss_fn)
    val, gnorm, dist, is_mult, curv, index, direction = _constraints(
        static,
        dyn,
        pt.params,
        pt.X,
        pt.y,
        pt.delta,
        pt.factorisation(),
        pt.eps,
        p=pt.p,
    )
    return {
        "slack": np.asarray(pt.kkt.slack, dtype=np.float64),
        "multiplier": np.asarray(pt.kkt.multiplier, dtype=np.float64),
        "theta_value": np.asarray(val, dtype=np.float64),
        "theta_grad_norm": np.asarray(gnorm, dtype=np.float64),
        "theta_distance": np.asarray(dist, dtype=np.float64),
        "is_multiplier": np.asarray(is_mult, dtype=bool),
        "curvature": np.asarray(curv, dtype=np.float64),
        "index": np.asarray(index, dtype=np.int64),
        "direction": np.asarray(direction, dtype=np.float64),
    }


# --------------------------------------------------------------------------- one measurement


#: The re-solves near a known maximiser (θ ± h v, the crossing's bisection): warm-started
#: at its δ, no steepest-ascent phase; the structured screen still runs (the same
#: compiled attack: its phase lengths are traced).
RESOLVE = {"steps": 0, "refine_steps": 20, "newton_steps": 6}


def _attack(lf, params, X, y, eps, p, key, init=None):
    """The certified attack (:func:`advlip.attacks.pgd`, screened): from 0 with its
    default phases, or warm-started at ``init`` with the shorter :data:`RESOLVE`."""
    phases = {} if init is None else RESOLVE
    return attacks.pgd(lf, params, X, y, eps=eps, p=p, key=key, init=init, **phases)


def _vertex_fd(lf, params, X, y, eps, p, pt, sw, key, key_attack) -> dict:
    r"""Does a vertex maximiser move with θ? Re-solve the attack at θ ± h v (v a random
    unit direction, warm-started at δ*) and compare, per example, the central difference
    of δ* with :math:`D\delta^* v` (:meth:`~advlip.adversarial.AdversarialPoint.delta_jvp`):
    0 at a vertex (the total Hessian equals the naive one there). h is
    :math:`10^{-5}\max(1, \|\theta\|)`, or 1 % of the smallest first-order θ-distance of
    a determined example to a switching surface if that is smaller (so that the pair
    θ ± h v does not straddle one). The re-solves screen the same random points as
    the attack at θ (``key_attack``): a maximiser the screen missed at θ is not found at
    θ ± h v either, so the two sides follow the same maximiser."""
    theta = _flat(params)
    v = jax.random.normal(key, theta.shape, dtype=theta.dtype)
    v = v / jnp.linalg.norm(v)
    kinds = np.asarray(pt.kkt.kind)
    vertex = (kinds == 2) & pt.determined
    h = 1e-5 * max(1.0, float(jnp.linalg.norm(theta)))
    dist = sw["theta_distance"][pt.determined]
    dist = dist[np.isfinite(dist) & (dist > 0)]
    if dist.size:
        h = min(h, 0.01 * float(np.min(dist)))
    deltas = []
    for s in (h, -h):
        th = _unflat_like(params, theta + s * v)
        att = _attack(lf, th, X, y, eps, p, key_attack, init=pt.delta)
        deltas.append(np.asarray(att.delta, dtype=np.float64))
    fd = (deltas[0] - deltas[1]) / (2 * h)
    jvp = np.asarray(pt.delta_jvp(v), dtype=np.float64)
    moved = np.linalg.norm(deltas[0] - deltas[1], axis=1)
    face = (kinds == 3) & pt.determined
    jn = np.linalg.norm(jvp, axis=1)
    rel = np.linalg.norm(fd - jvp, axis=1)[face] / np.where(jn[face] > 0, jn[face], 1.0)
    return {
        "h": h,
        "vertex_examples": int(np.sum(vertex)),
        "vertex_max_moved": float(np.max(moved[vertex])) if vertex.any() else math.nan,
        "vertex_max_delta_jvp": float(np.max(np.linalg.norm(jvp[vertex], axis=1)))
        if vertex.any()
        else math.nan,
        "face_examples": int(np.sum(face)),
        # faces: the central difference of δ* against the implicit Dδ* v, relative (its
        # own error: O(h²) and the attack's δ error over h, ~ delta_error / h)
        "face_fd_vs_jvp_max_rel": float(np.max(rel)) if face.any() else math.nan,
        "face_delta_error_over_h": float(np.max(pt.delta_errors()[face]) / h)
        if face.any()
        else math.nan,
    }


def _measure(lf, params, Xp, yp, eps, p, key, sizes, step: dict):
    """One row of the table at ``params``: the certified attack on the probe batch, total
    and naive λ_max (with bounds) and traces (with standard errors), the examples' status
    and switching distances, compared with the optimiser's ``step``; at L∞ the vertex
    check (:func:`_vertex_fd`). Returns the row, the point and its switching distances."""
    k_att, k_eig, k_tr, k_fd = jax.random.split(key, 4)
    att = _attack(lf, params, Xp, yp, eps, p, k_att)
    pt = adversarial.linearize(lf, params, Xp, yp, eps=eps, p=p, attack=att)
    out: dict[str, Any] = {"eps": float(eps), "p": p, "n": int(Xp.shape[0])}
    for h in ("total", "naive"):
        e = pt.top_eigenvalue(hessian=h, key=k_eig, num_steps=sizes.lanczos_steps)
        tr = pt.trace(hessian=h, num_samples=sizes.trace_samples, key=k_tr)
        out[f"lambda_{h}"] = float(e.value)
        out[f"lambda_{h}_bound"] = float(e.bound)
        out[f"lambda_{h}_exact_scale"] = bool(e.exact_scale)
        out[f"trace_{h}"] = float(tr.estimate)
        out[f"trace_{h}_stderr"] = float(tr.standard_error)
    status = np.asarray(pt.status)
    out["determined"] = int(np.sum(status == 0))
    out["undetermined_fraction"] = float(np.mean(status != 0))
    out["status"] = status.tolist()
    out["reasons"] = dict(collections.Counter(adversarial.STATUS[int(s)] for s in status if s != 0))
    out["cases"] = dict(collections.Counter(pt.cases))
    out["max_delta_error"] = float(np.max(pt.delta_errors()))
    sw = switching(pt)
    out["switching"] = {k: v for k, v in sw.items() if k != "direction"}
    out["step_norm"] = step["step_norm"]
    out["lr_grad_norm"] = step["lr_grad_norm"]
    dist = sw["theta_distance"]
    out["within_one_step"] = float(np.mean(dist <= step["step_norm"]))
    out["within_lr_grad"] = float(np.mean(dist <= step["lr_grad_norm"]))
    if math.isinf(p):
        out["vertex_fd"] = _vertex_fd(lf, params, Xp, yp, eps, p, pt, sw, k_fd, k_att)
    return out, pt, sw


# --------------------------------------------------------------------------- the crossing


def _global(lf, params, X, y, eps, p, key, init):
    """The attack (:func:`_attack`); where another start beat its maximiser (``beaten``:
    the global maximiser has moved to another basin, as at a value tie), re-solved from
    the best screened point, and the higher of the two kept."""
    att = _attack(lf, params, X, y, eps, p, key, init=init)
    if not np.any(np.asarray(att.beaten)):
        return att
    dt = np.dtype(X.dtype)
    cands, vals = attacks.screen(
        lf, params, X, y, np.asarray(eps, dtype=dt), p, key, att.delta[:, None, :]
    )
    best = jnp.take_along_axis(cands, jnp.argmax(vals, axis=1)[:, None, None], axis=1)[:, 0]
    other = _attack(lf, params, X, y, eps, p, key, init=best)
    better = np.asarray(other.loss) > np.asarray(att.loss)
    return other if np.all(better) else att


def _signature(att, i: int, p: float) -> tuple:
    """Example ``i``'s active face: per coordinate ±1 clamped / 0 free (L∞); on the
    sphere or not (L2)."""
    c = att.kkt
    if math.isinf(p):
        free = np.asarray(c.mask[i]) > 0
        s = np.sign(np.asarray(att.delta[i]))
        return tuple(np.where(free, 0, s).astype(int).tolist())
    return (bool(np.asarray(c.active[i])),)


@functools.partial(jax.jit, static_argnames=("static",))
def _example_terms(static, dyn, theta_a, theta_b, template, x, yi, da, db):
    r"""One example across a crossing: its θ-gradients at both ends, and along the segment
    :math:`s \mapsto (\theta_a + s\Delta\theta, x + \delta_a + s\Delta\delta)` the
    integrand :math:`F(s) = H_{\theta\theta}\Delta\theta + H_{\theta x}\Delta\delta`
    (split in its two parts) at s = 0, ¼, ½, ¾, 1, whose integral is exactly the change
    of the gradient; and :math:`\|H_{\theta x}\|_F` at both ends."""
    lf = attacks.combine(dyn, static)

    def grad_t(th, z):
        return _flat(jax.grad(lf)(_unflat_like(template, th), z, yi))

    dth, ddl = theta_b - theta_a, db - da

    def parts(s):  # (H_θθ Δθ, H_θx Δδ) at the point s of the segment
        th, z = theta_a + s * dth, x + da + s * ddl
        mixed = jax.jvp(lambda zz: grad_t(th, zz), (z,), (ddl,))[1]
        pure = jax.jvp(lambda tt: grad_t(tt, z), (th,), (dth,))[1]
        return pure, mixed

    F = lax.map(parts, jnp.asarray([0.0, 0.25, 0.5, 0.75, 1.0], dtype=x.dtype))

    def hxt(th, z):
        return jnp.linalg.norm(jax.jacfwd(lambda zz: grad_t(th, zz))(z))

    ends = (grad_t(theta_a, x + da), grad_t(theta_b, x + db))
    return ends, F, hxt(theta_a, x + da), hxt(theta_b, x + db)


def crossing(
    lf: Any,
    params: Any,
    X: jax.Array,
    y: jax.Array,
    eps: float,
    p: float,
    i: int,
    direction: Any,
    t_est: float,
    key: jax.Array,
    *,
    bisect_steps: int,
) -> dict:
    r"""Move θ along ``direction`` until example ``i``'s active face changes; compare the
    change of its θ-gradient across the crossing with :math:`H_{\theta x}\Delta\delta`.

    The attack (:func:`advlip.attacks.pgd`, certified, screened) is re-solved on example
    i alone at every :math:`\theta + t\,u` (warm-started at the last δ on the start's side,
    :data:`RESOLVE`); the first t at which its face differs is bracketed (from
    ``1.5 t_est``, doubling up to 4 times) and bisected ``bisect_steps`` times; a step at
    which another start beats the maximiser (the global maximiser moved to another basin,
    a value tie) is re-solved from the best screened point. At the ends a, b of the
    bracket the change of the gradient
    :math:`J = \nabla_\theta\ell(x+\delta_b, \theta_b) - \nabla_\theta\ell(x+\delta_a,
    \theta_a)` is exactly the integral of :math:`F = H_{\theta\theta}\Delta\theta +
    H_{\theta x}\Delta\delta` along the segment between the two points; it is compared with
    the midpoint rule :math:`F(\tfrac12)`, whose mixed part :math:`H_{\theta x}\Delta\delta`
    at the crossing is the jump the theory predicts (``hxt_delta``; ``ratio`` =
    ‖J‖ / ‖H_θx Δδ‖). ``tolerance`` of ‖J − F(½)‖: the attack's error,
    :math:`2\max\|H_{\theta x}\|_F (e_a + e_b)` (a δ off by e moves a gradient by at most
    :math:`\|H_{\theta x}\|e`, at both ends and in Δδ; e the δ-error bounds of
    :meth:`~advlip.adversarial.AdversarialPoint.delta_errors`), plus the midpoint rule's
    error, :math:`\|S_2 - F(\tfrac12)\| + \|S_2 - S_1\|` (S₁ Simpson's rule, S₂ its
    two-panel composite, whose own error is about ‖S₂ − S₁‖/15), plus the float64
    rounding of the gradients and products (:math:`\gamma_k`, k the operations of one
    example's Hessian). ``delta_jumped``: δ* changed by more than it can move
    continuously over the bracket, twice the larger rate :math:`\|D\delta^* u\|` of the
    two sides times the bracket's width, plus the δ errors.

    Args:
        lf: the loss function (as :func:`advlip.adversarial.linearize` takes it).
        params: the parameters θ at the start.
        X: the probe inputs.
        y: their labels.
        eps: the budget.
        p: the norm (2 or ``inf``).
        i: the example whose crossing is located.
        direction: the unit θ-direction u to move along (e.g. :func:`switching`'s).
        t_est: the first-order distance along u to the crossing.
        key: the JAX PRNG key of the attack's screen.
        bisect_steps: bisections of the bracket.

    Returns:
        ``found`` and, where found, the bracket, ``delta_jump``, ``delta_jumped``,
        ``gradient_jump``, ``hxt_delta``, ``htt_dtheta``, ``ratio``, ``cosine``,
        ``residual``, ``tolerance`` (with its parts), the δ errors and statuses.

    Example:
        A linear model: across :math:`w_2 = 0` the L∞ maximiser jumps across the box,
        and the gradient jumps by :math:`H_{\theta x}\Delta\delta`.

        >>> import jax, jax.numpy as jnp
        >>> from advlip import adversarial, curvature_table, models
        >>> params = {"w": jnp.array([0.8, -0.05, 0.4]), "b": jnp.array(0.1)}
        >>> X, y = jnp.array([[0.5, 1.0, -0.2], [1.0, -1.0, 0.3]]), jnp.array([1.0, -1.0])
        >>> lf, inf = models.LinearLoss(), float("inf")
        >>> sw = curvature_table.switching(adversarial.linearize(lf, params, X, y, eps=0.1, p=inf))
        >>> i = int(sw["theta_distance"].argmin())
        >>> c = curvature_table.crossing(
        ...     lf, params, X, y, 0.1, inf, i, sw["direction"][i], float(sw["theta_distance"][i]),
        ...     jax.random.PRNGKey(0), bisect_steps=12)
        >>> c["found"], c["delta_jumped"], bool(c["residual"] <= c["tolerance"])
        (True, True, True)
    """
    theta = _flat(params)
    u = jnp.asarray(direction)
    dyn, static = attacks.partition(lf)
    example = int(i)
    X, y, i = jnp.asarray(X)[example : example + 1], jnp.asarray(y)[example : example + 1], 0

    def solve(t, init):
        return _global(lf, _unflat_like(params, theta + t * u), X, y, eps, p, key, init)

    att0 = _global(lf, params, X, y, eps, p, key, None)
    sig0 = _signature(att0, i, p)
    lo, hi = 0.0, 1.5 * t_est
    att_lo = att0
    found = False
    for _ in range(5):
        att_hi = solve(hi, att_lo.delta)
        if _signature(att_hi, i, p) != sig0:
            found = True
            break
        lo, att_lo, hi = hi, att_hi, 2.0 * hi
    out: dict[str, Any] = {"example": example, "t_estimate": float(t_est), "found": found}
    if not found:
        out["searched_up_to"] = float(lo)
        return out
    for _ in range(bisect_steps):
        mid = 0.5 * (lo + hi)
        att_mid = solve(mid, att_lo.delta)
        if _signature(att_mid, i, p) == sig0:
            lo, att_lo = mid, att_mid
        else:
            hi, att_hi = mid, att_mid
    th_a, th_b = theta + lo * u, theta + hi * u
    pa = adversarial.linearize(lf, _unflat_like(params, th_a), X, y, eps=eps, p=p, attack=att_lo)
    pb = adversarial.linearize(lf, _unflat_like(params, th_b), X, y, eps=eps, p=p, attack=att_hi)
    da, db = att_lo.delta[i], att_hi.delta[i]
    (ga, gb), (pure, mixed), hxt_a, hxt_b = _example_terms(
        static, dyn, th_a, th_b, params, X[i], y[i], da, db
    )
    F = np.asarray(pure + mixed)  # (5, P) at s = 0, 1/4, 1/2, 3/4, 1
    J = np.asarray(gb - ga)
    mid_rule = F[2]
    s1 = (F[0] + 4.0 * F[2] + F[4]) / 6.0
    s2 = (F[0] + 4.0 * F[1] + 2.0 * F[2] + 4.0 * F[3] + F[4]) / 12.0
    quad = float(np.linalg.norm(s2 - mid_rule) + np.linalg.norm(s2 - s1))
    ea, eb = float(pa.delta_errors()[i]), float(pb.delta_errors()[i])
    attack_tol = 2.0 * max(float(hxt_a), float(hxt_b)) * (ea + eb)
    k = attacks.cached_ops("hessian", lf, params, X[0], y[0])
    rounding = tolerance.gamma(k, pa.dtype) * float(
        np.linalg.norm(np.asarray(ga)) + np.linalg.norm(np.asarray(gb)) + np.linalg.norm(mid_rule)
    )
    mixed_mid = np.asarray(mixed[2])
    dd = np.asarray(db - da)
    rate = max(
        float(np.linalg.norm(np.asarray(pa.delta_jvp(u))[i])),
        float(np.linalg.norm(np.asarray(pb.delta_jvp(u))[i])),
    )
    width = hi - lo
    jn, mn = float(np.linalg.norm(J)), float(np.linalg.norm(mixed_mid))
    out.update(
        t_crossing=0.5 * (lo + hi),
        t_crossing_over_estimate=0.5 * (lo + hi) / t_est,
        bracket=[lo, hi],
        faces_changed=int(sum(a != b for a, b in zip(sig0, _signature(att_hi, i, p), strict=True))),
        delta_jump=float(np.linalg.norm(dd)),
        delta_rate=rate,
        delta_jumped=bool(np.linalg.norm(dd) > 2.0 * rate * width + ea + eb),
        gradient_jump=jn,
        hxt_delta=mn,
        htt_dtheta=float(np.linalg.norm(np.asarray(pure[2]))),
        ratio=jn / mn if mn > 0 else math.nan,
        cosine=float(J @ mixed_mid / (jn * mn)) if jn > 0 and mn > 0 else math.nan,
        residual=float(np.linalg.norm(J - mid_rule)),
        tolerance=attack_tol + quad + rounding,
        tolerance_parts={"attack": attack_tol, "midpoint_rule": quad, "rounding": rounding},
        delta_error=[ea, eb],
        status=[int(pa.status[i]), int(pb.status[i])],
    )
    return out


# --------------------------------------------------------------------------- aggregation


def _spread(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(np.mean(a)),
        "std": float(np.std(a)),
        "min": float(np.min(a)),
        "max": float(np.max(a)),
        "values": a.tolist(),
    }


_TABLE_FIELDS = (
    "lambda_total",
    "lambda_naive",
    "trace_total",
    "trace_naive",
    "undetermined_fraction",
    "within_one_step",
    "within_lr_grad",
)


def _table(points: list[dict]) -> list[dict]:
    """Across seeds: mean, std, min and max of every figure, per (p, eps, checkpoint)."""
    groups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for pt in points:
        groups[(pt["p"], pt["eps_l2"], pt["checkpoint"])].append(pt)
    rows = []
    for (p, e2, ck), pts in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        row = {"p": p, "eps_l2": e2, "eps": pts[0]["eps"], "checkpoint": ck, "seeds": len(pts)}
        for f in _TABLE_FIELDS:
            row[f] = _spread([q[f] for q in pts])
        row["lambda_ratio"] = _spread([q["lambda_total"] / q["lambda_naive"] for q in pts])
        row["trace_ratio"] = _spread([q["trace_total"] / q["trace_naive"] for q in pts])
        rows.append(row)
    return rows


def format_table(rows: list[dict], *, width: int | None = None) -> str:
    """The table as text that fits ``width`` columns without cutting a number.

    Two tables, the top eigenvalue and the trace, each ``mean ± std`` across seeds
    (min and max are in the JSON), laid out by :func:`advlip.report.text_table`: the
    columns of a norm, budget and checkpoint are printed whole, and a ``mean ± std`` cell
    that does not fit breaks between its numbers, onto a second line, never inside one.
    The captions wrap at spaces.

    Args:
        rows: the ``table`` of the experiment's document (one dict per norm, budget and
            checkpoint; each figure a dict with ``mean`` and ``std``).
        width: the most columns a line may take; None: the terminal's width
            (:func:`advlip.report.terminal_width`).

    Returns:
        The captions and the two tables, joined by newlines.

    Raises:
        ValueError: ``width`` is not an integer >= 1 or None.

    Example:
        >>> from advlip.curvature_table import format_table
        >>> row = {"p": 2.0, "eps_l2": 0.5, "eps": 0.5, "checkpoint": 1.0, "seeds": 2}
        >>> s = {"mean": 0.1209, "std": 2.5e-05}
        >>> row.update({f: s for f in ("lambda_total", "lambda_naive", "lambda_ratio",
        ...     "trace_total", "trace_naive", "trace_ratio", "undetermined_fraction",
        ...     "within_one_step", "within_lr_grad")})
        >>> text = format_table([row], width=60)
        >>> max(len(line) for line in text.splitlines()) <= 60, "2.5e-05" in text.split()
        (True, True)
    """
    import textwrap

    from advlip import report

    def cell(s: dict) -> str:
        return f"{s['mean']:.4g} ± {s['std']:.4g}"

    def key(r: dict) -> list[str]:
        return [
            "Linf" if math.isinf(float(r["p"])) else "L2",
            f"{r['eps']:.4f}",
            f"{r['checkpoint']:.2f}",
        ]

    lam = report.text_table(
        ("norm", "eps", "ckpt", "λ_max total", "λ_max naive", "total / naive", "undet."),
        [
            [
                *key(r),
                cell(r["lambda_total"]),
                cell(r["lambda_naive"]),
                cell(r["lambda_ratio"]),
                f"{r['undetermined_fraction']['mean']:.2f}",
            ]
            for r in rows
        ],
        wrap=(3, 4, 5),
        width=width,
    )
    tr = report.text_table(
        ("norm", "eps", "ckpt", "trace total", "trace naive", "total / naive", "<step", "<lr|g|"),
        [
            [
                *key(r),
                cell(r["trace_total"]),
                cell(r["trace_naive"]),
                cell(r["trace_ratio"]),
                f"{r['within_one_step']['mean']:.2f}",
                f"{r['within_lr_grad']['mean']:.2f}",
            ]
            for r in rows
        ],
        wrap=(3, 4, 5),
        width=width,
    )
    width = report.terminal_width() if width is None else width

    def fill(text: str) -> str:
        return textwrap.fill(text, width, break_long_words=False, break_on_hyphens=False)

    return "\n".join(
        [
            fill(
                "Curvature of the adversarial loss on the probe examples, mean ± std across "
                "seeds (min and max in the JSON). eps: the budget of the norm; ckpt: the "
                "fraction of training."
            ),
            "",
            fill("Top eigenvalue of the Hessian (Lanczos); undet.: fraction undetermined."),
            lam,
            "",
            fill(
                "Trace of the Hessian (Hutch++); <step, <lr|g|: fraction of examples within one "
                "adam step / lr·‖∇L‖ of a switching surface."
            ),
            tr,
        ]
    )


# --------------------------------------------------------------------------- claims


def _claims(points: list[dict], crossings: list[dict]) -> list[dict]:
    claims = []
    full = [q for q in points if q["undetermined_fraction"] == 0.0]

    def gap(q):
        return q["lambda_total"] - q["lambda_naive"]

    def bnd(q):
        return q["lambda_total_bound"] + q["lambda_naive_bound"]

    l2 = [q for q in full if q["p"] == 2.0]
    differs = [abs(gap(q)) > bnd(q) for q in l2]
    claims.append(
        _claim(
            "under L2 the total lambda_max differs from the naive one by more than the sum of "
            "their error bounds at every L2 point where every probe example is determined "
            "(the attack's theta-dependence matters)",
            bool(l2) and all(differs),
            points=len(l2),
            differ=int(sum(differs)),
            bounds_exact=all(q["lambda_total_exact_scale"] for q in l2),
            relative_difference=[gap(q) / abs(q["lambda_naive"]) for q in l2],
        )
    )
    psd = [gap(q) >= -bnd(q) for q in full]
    tr = [
        q["trace_total"] - q["trace_naive"]
        >= -3.0 * math.hypot(q["trace_total_stderr"], q["trace_naive_stderr"])
        for q in full
    ]
    claims.append(
        _claim(
            "where every probe example is determined the implicit correction "
            "H_theta_x A+ H_x_theta is PSD (docs/theory/general-models.md): lambda_max(total) >= lambda_max(naive) - "
            "the bounds, and trace(total) >= trace(naive) - 3 standard errors, at every point",
            bool(full) and all(psd) and all(tr),
            points=len(full),
            lambda_ok=int(sum(psd)),
            bounds_exact=all(q["lambda_total_exact_scale"] for q in full),
            trace_ok=int(sum(tr)),
        )
    )
    li = [q for q in points if math.isinf(q["p"])]
    fd = [q["vertex_fd"] for q in li]
    used = [f for f in fd if f["vertex_examples"] > 0]
    claims.append(
        _claim(
            "under Linf the total Hessian equals the naive one at vertex maximisers: "
            "re-solving the attack at theta +- h v leaves every determined vertex maximiser "
            "where it is (D delta* v = 0, so the correction H_theta_x D delta* v vanishes)",
            bool(used) and all(f["vertex_max_moved"] == 0.0 for f in used),
            points=len(used),
            vertex_examples=int(sum(f["vertex_examples"] for f in used)),
            max_moved=max((f["vertex_max_moved"] for f in used), default=math.nan),
        )
    )
    # both sides converged KKT points (a side may be beaten near a value tie: reported)
    found = [
        c
        for c in crossings
        if c.get("found")
        and adversarial.Status.NOT_CONVERGED not in c["status"]
        and math.isfinite(c["tolerance"])
    ]
    claims.append(
        _claim(
            "at every located crossing of a switching surface (both sides converged KKT "
            "points with a finite error bound) the change of the example's gradient equals H_theta_x Delta delta + "
            "H_theta_theta Delta theta at the crossing "
            "within the attack's error, the midpoint rule's error and float64 rounding; where "
            "delta* jumps, H_theta_x Delta delta carries the jump",
            bool(found) and all(c["residual"] <= c["tolerance"] for c in found),
            crossings=len(found),
            jumps=int(sum(c["delta_jumped"] for c in found)),
            statuses=[c["status"] for c in found],
            gradient_jump=[c["gradient_jump"] for c in found],
            hxt_delta=[c["hxt_delta"] for c in found],
            ratio=[c["ratio"] for c in found],
            residual=[c["residual"] for c in found],
            tolerance=[c["tolerance"] for c in found],
        )
    )
    return claims


def _findings(points: list[dict], sz: Sizes) -> list[dict]:
    """L2 vs L∞ at the end of training (training budget): how many probe examples lie
    within one optimiser step of a switching surface. A finding, reported either way."""
    end = max(sz.checkpoints)
    rows = []
    for p in P_VALUES:
        sel = [q for q in points if q["p"] == p and q["checkpoint"] == end]
        sel = [q for q in sel if q["eps_l2"] == sz.eps_train]
        dist = np.concatenate([q["switching"]["theta_distance"] for q in sel])
        rows.append(
            {
                "p": p,
                "within_one_step": _spread([q["within_one_step"] for q in sel]),
                "within_lr_grad": _spread([q["within_lr_grad"] for q in sel]),
                "median_theta_distance": float(np.median(dist)),
                "median_step_norm": float(np.median([q["step_norm"] for q in sel])),
            }
        )
    return [
        {
            "finding": "fraction of probe examples within one optimiser step of a switching "
            "surface (first-order theta-distance <= ||theta_t+1 - theta_t||), end of training, "
            "Linf vs L2 at the matched budget, mean over seeds",
            "rows": rows,
        }
    ]


# --------------------------------------------------------------------------- plots


def _series(points, sz: Sizes, p: float, mode: str, field) -> tuple[list, list, list, list]:
    """x values, and per x the mean, min and max over seeds of a point's ``field`` (a
    name, or a pair of names: their ratio): against
    the budget at the end of training (``mode="eps"``) or along training at the training
    budget (``"training"``). ``points`` in memory or in their JSON form (``"inf"``)."""
    end = max(sz.checkpoints)
    if mode == "eps":
        sel = [q for q in points if float(q["p"]) == p and q["checkpoint"] == end]
        along = "eps_l2"
    else:
        sel = [q for q in points if float(q["p"]) == p and q["eps_l2"] == sz.eps_train]
        along = "checkpoint"
    xs = sorted({q[along] for q in sel})

    def value(q):
        if isinstance(field, str):
            return float(q[field])
        return float(q[field[0]]) / float(q[field[1]])

    vals = [[value(q) for q in sel if q[along] == x] for x in xs]
    return xs, [float(np.mean(v)) for v in vals], [min(v) for v in vals], [max(v) for v in vals]


_NORMS = ((2.0, L2_COLOR, "L2"), (math.inf, LINF_COLOR, "L∞"))


def _plot_curvature(points: list[dict], sz: Sizes):
    """λ_max and trace, total beside naive, and their ratio: across budgets (end of training)
    and along training (training budget); mean over seeds, band min to max."""
    from advlip.plots import _finish, _legend_below, _subplots

    fig, axes = _subplots(3, 2, figsize=(13, 13.5))
    xlabels = {
        "eps": "L2 budget ε₂ (L∞: ε₂/8, matched), end of training",
        "training": f"fraction of training (ε₂ = {sz.eps_train:g})",
    }
    where = {
        "eps": "across budgets, end of training",
        "training": f"along training, ε₂ = {sz.eps_train:g}",
    }
    for col, mode in enumerate(("eps", "training")):
        for row, (key, label) in enumerate((("lambda", "λ_max"), ("trace", "trace"))):
            ax = axes[row, col]
            for p, color, name in _NORMS:
                for h, style, alpha in (("total", "-", 0.2), ("naive", "--", 0.08)):
                    xs, mean, lo, hi = _series(points, sz, p, mode, f"{key}_{h}")
                    ax.plot(xs, mean, style, marker="o", color=color, label=f"{name}: {h} Hessian")
                    ax.fill_between(xs, lo, hi, color=color, alpha=alpha)
            ax.set_ylabel(f"{label} (nats per unit θ²)")
            ax.set_title(f"{label} of the Hessian of the adversarial loss, {where[mode]}")
        ax = axes[2, col]
        for p, color, name in _NORMS:
            for key, style, label in (("lambda", "-", "λ_max"), ("trace", ":", "trace")):
                pair = (f"{key}_total", f"{key}_naive")
                xs, mean, lo, hi = _series(points, sz, p, mode, pair)
                ax.plot(
                    xs, mean, style, marker="o", color=color, label=f"{name}: {label} total / naive"
                )
                ax.fill_between(xs, lo, hi, color=color, alpha=0.12)
        ax.axhline(1.0, color="0.4", lw=1, label="total = naive (ratio 1)")
        ax.set_ylabel("total / naive")
        ax.set_title(f"what holding δ* fixed misses: total / naive, {where[mode]}")
        for row in range(3):
            axes[row, col].set_xlabel(xlabels[mode])
            axes[row, col].grid(alpha=0.3)
    _legend_below(fig, axes.ravel(), ncols=5)
    fig.suptitle(
        "CNN on 8×8 digits, PGD adversarial training: total Hessian (δ* moves, solid) vs naive "
        "(δ* held, dashed); mean over seeds, band min–max",
        fontsize=10,
    )
    return _finish(fig, None)


def _positive_log10(values) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    return np.log10(a[np.isfinite(a) & (a > 0)])


def _plot_switching(points: list[dict], sizes: Sizes):
    """Histograms at the end of training (training budget): the first-order θ-distance to
    the nearest switching surface beside one optimiser step, and the smallest active KKT
    multiplier. A panel is drawn only where some value is finite and positive."""
    from advlip.plots import _figure, _finish, _legend_right

    end = max(sizes.checkpoints)
    sel = [q for q in points if q["checkpoint"] == end and q["eps_l2"] == sizes.eps_train]
    fields = {
        "theta_distance": (
            "log10 first-order θ-distance to the nearest switching surface",
            "how far θ is from a switching surface (end of training)",
        ),
        "multiplier": (
            "log10 smallest active KKT multiplier (x-space; 0 on a surface)",
            "the certificate's smallest multiplier (end of training)",
        ),
    }
    data = {
        field: {
            p: _positive_log10(
                np.concatenate(
                    [np.asarray(q["switching"][field], float) for q in sel if float(q["p"]) == p]
                )
            )
            for p, _, _ in _NORMS
        }
        for field in fields
    }
    shown = [f for f in fields if any(v.size for v in data[f].values())]
    fig = _figure(figsize=(14, 4.8))
    axes = fig.subplots(1, max(1, len(shown)), squeeze=False)[0]
    for ax, field in zip(axes, shown, strict=False):
        both = np.concatenate(list(data[field].values()))
        edges = np.histogram_bin_edges(both, bins=24)
        for p, color, name in _NORMS:
            if data[field][p].size:
                ax.hist(data[field][p], bins=edges, color=color, alpha=0.5, label=name)
        if field == "theta_distance":
            for p, color, name in _NORMS:
                qs = [q for q in sel if float(q["p"]) == p]
                step = float(np.median([q["step_norm"] for q in qs]))
                lrg = float(np.median([q["lr_grad_norm"] for q in qs]))
                ax.axvline(np.log10(step), color=color, ls="--", label=f"{name}: one adam step")
                ax.axvline(np.log10(lrg), color=color, ls=":", label=f"{name}: lr·‖∇L‖")
        ax.set_xlabel(fields[field][0])
        ax.set_title(fields[field][1])
        ax.set_ylabel("probe examples (all seeds)")
        ax.grid(alpha=0.3)
        _legend_right(ax)
    return _finish(fig, None)


def _figures(doc: dict) -> list:
    """The experiment's figures, drawn from its JSON document: ``[(suffix, Figure)]``."""
    sz = Sizes(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc["sizes"].items()})
    points = doc["points"]
    return [("curvature", _plot_curvature(points, sz)), ("switching", _plot_switching(points, sz))]


# --------------------------------------------------------------------------- the experiment


def _sizes_of(ctx, sizes: Sizes | str | None) -> Sizes:
    if sizes is None:
        return SIZES["quick" if ctx.quick else "full"]
    if isinstance(sizes, str):
        if sizes not in SIZES:
            raise ValueError(f"sizes={sizes!r} is not allowed; allowed: {sorted(SIZES)}")
        return SIZES[sizes]
    if not isinstance(sizes, Sizes):
        raise ValueError(f"sizes must be a curvature_table.Sizes or one of {sorted(SIZES)}")
    return sizes


def experiment(ctx: Any, *, sizes: Sizes | str | None = None) -> dict:
    r"""Run the curvature table; returns the experiment's document (see the module docstring).

    The full size takes minutes (:data:`SIZES`); run it with ``advlip experiment
    curvature-table`` (:func:`advlip.experiments.run`), which passes ``ctx``.

    Args:
        ctx: the context of :mod:`advlip.experiments` (``quick``, ``key``, ``progress``,
            ``options`` — ``data``: ``digits`` or ``digits-A-B`` —, ``png``).
        sizes: the size: a :data:`SIZES` name or a :class:`Sizes` (default ``"quick"`` or
            ``"full"`` from ``ctx.quick``).

    Returns:
        The document: ``runs`` (training curves and checkpoints per seed and norm),
        ``points`` (every measurement), ``table`` (mean, std, min and max across seeds),
        ``table_text`` (:func:`format_table`), ``crossings``, ``claims``, ``findings`` and
        ``pngs`` (drawn from the document, :func:`advlip.experiments.figures`).

    Raises:
        ValueError: an unknown ``sizes`` or ``data``, or sizes that do not fit the data.

    Example:
        >>> from advlip import curvature_table
        >>> sz = curvature_table.SIZES["full"]
        >>> sz.seeds, sz.eps_train in sz.eps_l2
        (3, True)
    """
    sz = _sizes_of(ctx, sizes)
    if sz.eps_train not in sz.eps_l2:
        raise ValueError(f"eps_train={sz.eps_train} must be one of eps_l2={sz.eps_l2}")
    name = ctx.options.get("data", "digits")
    X, labels, classes, desc = _dataset(name)
    if sz.n_train + sz.n_probe > X.shape[0]:
        raise ValueError(
            f"n_train + n_probe = {sz.n_train + sz.n_probe} exceeds the {X.shape[0]} examples"
        )
    perm = keys.numpy_rng(ctx.key, 1).permutation(X.shape[0])
    tr, rest = perm[: sz.n_train], perm[sz.n_train :]
    Xtr, ytr = jnp.asarray(X[tr]), jnp.asarray(labels[tr])
    Xho, yho = jnp.asarray(X[rest]), jnp.asarray(labels[rest])
    Xp, yp = Xho[: sz.n_probe], yho[: sz.n_probe]
    Xev, yev = Xho[sz.n_probe : sz.n_probe + sz.n_eval], yho[sz.n_probe : sz.n_probe + sz.n_eval]
    end = max(sz.checkpoints)
    runs, points = [], []
    cross_src = None
    for s in range(sz.seeds):
        skey = jax.random.fold_in(ctx.key, s)
        for p in P_VALUES:
            eps_tr = training.matched_eps(sz.eps_train, D, p)
            params0, lf = _model(skey, classes, sz)
            ctx.progress(
                f"[seed {s}] CNN {sz.channels}/{sz.hidden}, adversarial training p={_p_name(p)} "
                f"eps={eps_tr:.4g} (eps_2={sz.eps_train:g}), {sz.steps} adam steps"
            )
            run = _train(lf, params0, Xtr, ytr, Xev, yev, eps_tr, p, sz, keys.numpy_rng(skey, 3))
            ck_frac = {t: t / sz.steps if sz.steps else 0.0 for t in run["checkpoint_steps"]}
            todo = [(t, sz.eps_train) for t in run["checkpoint_steps"]]
            t_end = max(run["checkpoint_steps"])
            todo += [(t_end, e2) for e2 in sz.eps_l2 if e2 != sz.eps_train]
            for t, e2 in todo:
                ck = run["checkpoints"][t]
                eps = training.matched_eps(e2, D, p)
                # one key per (seed, norm, step, budget)
                mkey = jax.random.fold_in(
                    jax.random.fold_in(jax.random.fold_in(skey, P_VALUES.index(p)), t),
                    round(1e6 * e2),
                )
                q, pt, sw = _measure(lf, ck["params"], Xp, yp, eps, p, mkey, sz, ck)
                q.update(seed=s, eps_l2=e2, checkpoint=ck_frac[t] if sz.steps else end, step=t)
                points.append(q)
                ctx.progress(
                    f"  p={_p_name(p)} eps={eps:.4g} step {t}: lambda_max total "
                    f"{q['lambda_total']:.4g} naive {q['lambda_naive']:.4g}; trace total "
                    f"{q['trace_total']:.4g} naive {q['trace_naive']:.4g}; "
                    f"{q['determined']}/{q['n']} determined"
                )
                if s == 0 and math.isinf(p) and t == t_end and e2 == sz.eps_train:
                    cross_src = (lf, ck["params"], eps, p, q, pt, sw, mkey)
            runs.append(
                {
                    "seed": s,
                    "p": p,
                    "eps": eps_tr,
                    "eps_l2": sz.eps_train,
                    "loss": run["loss"],
                    "checkpoints": [
                        {k: v for k, v in run["checkpoints"][t].items() if k != "params"}
                        | {"step": t, "fraction": ck_frac[t]}
                        for t in run["checkpoint_steps"]
                    ],
                }
            )
    crossings = _crossings_from(cross_src, Xp, yp, sz, ctx)
    claims = _claims(points, crossings)
    findings = _findings(points, sz)
    table = _table(points)
    text = format_table(table)
    ctx.progress(text)
    body = {
        "data": desc,
        "n_train": int(Xtr.shape[0]),
        "n_probe": int(Xp.shape[0]),
        "sizes": dataclasses.asdict(sz),
        "model": f"CNN (advlip.networks.cnn): channels {sz.channels}, hidden {sz.hidden}, "
        "softplus, cross-entropy, float64",
        "matching": training.MATCHING,
        "training": f"adam({sz.learning_rate}), minibatches of {sz.batch}, {sz.steps} steps; "
        f"attack: light PGD, {sz.attack_steps} steps of 2.5 eps/steps from 0 "
        "(advlip.attacks.pgd mode='light')",
        "measurement": "certified advlip.attacks.pgd (screened) on the probe batch, then "
        "advlip.adversarial.linearize: top_eigenvalue (Lanczos, with bound) and trace "
        "(Hutch++, with standard error) of the total and naive Hessians; the mean over all "
        "probe examples, undetermined ones included (their fraction and reasons reported)",
        "step": "step_norm = ||theta_{t+1} - theta_t|| of the adam update taken from the "
        "checkpoint; lr_grad_norm = lr * ||grad L|| of its minibatch",
        "pairing": "per seed, the L2 and Linf runs start from the same network and see the "
        "same minibatches",
        "accuracy": f"heldout_clean_acc / heldout_robust_acc on {int(Xev.shape[0])} held-out "
        "examples (not the probe batch); robust: light PGD of 10 steps at the training budget",
        "switching_surfaces": "x-space: kkt.slack (distance to the nearest inactive "
        "constraint) and kkt.multiplier (smallest active multiplier); theta-space: first-order "
        "distance min_c c / ||grad_theta c|| over the constraints c, the maximiser moving "
        "(advlip.curvature_table.switching)",
        "runs": runs,
        "points": points,
        "table": table,
        "table_text": text,
        "crossings": crossings,
        "claims": claims,
        "findings": findings,
    }
    from advlip.plots import _save

    pngs = []
    for suffix, fig in _figures(training.json_safe(body)):
        pngs.append(ctx.png(suffix))
        _save(fig, pngs[-1])
    return {**body, "pngs": pngs}


def _crossings_from(src, Xp, yp, sz: Sizes, ctx) -> list[dict]:
    """Crossings at the end of seed 0's L∞ run (training budget): the example nearest a
    switching surface, and the nearest whose loss is convex along the constraint's normal
    (where the maximiser jumps across the box instead of unclamping continuously)."""
    if src is None:
        return []
    lf, params, eps, p, q, pt, sw, key = src
    dist = sw["theta_distance"]
    ok = pt.determined & np.isfinite(dist) & (dist > 0)
    cands: list[tuple[str, int]] = []
    if ok.any():
        cands.append(("nearest", int(np.flatnonzero(ok)[np.argmin(dist[ok])])))
    cvx = ok & sw["is_multiplier"] & (sw["curvature"] > 0)
    if cvx.any():
        i = int(np.flatnonzero(cvx)[np.argmin(dist[cvx])])
        if i not in [c[1] for c in cands]:
            cands.append(("nearest with a convex profile along the normal", i))
    out = []
    for why, i in cands:
        ctx.progress(
            f"  crossing ({why}): example {i}, first-order theta-distance {dist[i]:.3g} "
            f"({'multiplier' if sw['is_multiplier'][i] else 'slack'}, "
            f"curvature {sw['curvature'][i]:.3g})"
        )
        c = crossing(
            lf,
            params,
            Xp,
            yp,
            eps,
            p,
            i,
            sw["direction"][i],
            float(dist[i]),
            jax.random.fold_in(key, 99),
            bisect_steps=sz.bisect_steps,
        )
        c.update(
            chosen_as=why,
            p=p,
            eps=eps,
            constraint="multiplier" if sw["is_multiplier"][i] else "slack",
            curvature=float(sw["curvature"][i]),
        )
        out.append(c)
    return out
