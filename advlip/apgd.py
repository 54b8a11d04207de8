r"""APGD (Croce & Hein, ICML 2020) and plain PGD on the logits of a classifier, for L∞ and L2.

Robust accuracy is only as trustworthy as the attack that measures it. APGD ("Reliable
evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks", Croce & Hein 2020) is projected gradient ascent with momentum and a step size
that adapts itself, so nothing needs tuning per model:

* **steps** — the steepest-ascent direction of the norm: :math:`\operatorname{sign}(g)` for
  L∞, :math:`g/\|g\|_2` for L2; the first step from the start :math:`x^{(0)}` is
  :math:`x^{(1)} = \Pi(x^{(0)} + \eta\,u(g))`, every later one takes momentum α = 0.75:

  .. math:: z = \Pi\big(x^{(k)} + \eta\,u(\nabla f(x^{(k)}))\big),\qquad
            x^{(k+1)} = \Pi\big(x^{(k)} + \alpha(z - x^{(k)}) + (1-\alpha)(x^{(k)} - x^{(k-1)})\big);

* **step size** — :math:`\eta = 2\varepsilon` at first, halved at checkpoints
  :math:`w_j = \lceil p_j N\rceil` (N the number of steps; :math:`p_0 = 0`,
  :math:`p_1 = 0.22`, :math:`p_{j+1} = p_j + \max(p_j - p_{j-1} - 0.03,\, 0.06)`) when

  (a) fewer than ρ = 0.75 of the :math:`w_j - w_{j-1}` steps since the last checkpoint
      increased the loss, or
  (b) the step was not halved at the last checkpoint and the best loss has not improved
      since;

  halving also moves the iterate back to the best point found so far
  (:func:`halve_step` is the rule, :func:`checkpoints` the schedule);
* **losses** — cross-entropy (``"ce"``) or the difference of logits ratio
  :math:`\mathrm{DLR}(z, y) = -(z_y - \max_{j\ne y} z_j)/(z_{\pi_1} - z_{\pi_3})`
  (``"dlr"``, :func:`advlip.losses.get_logit_loss`; it needs ≥ 3 classes). DLR is
  invariant to shifting and scaling the logits, so a model cannot hide behind
  saturated softmax outputs;
* **restarts** — each restart starts uniformly at random in the ball, drawn from the JAX
  key (:func:`advlip.attacks.sample_ball`, NumPy seeded by the key's bits); per example
  the highest loss over every iterate of every restart wins.

The feasible set is the ball :math:`B_p(x, \varepsilon)`, intersected with the box of
valid inputs when ``clip=(lo, hi)`` is given (say ``(0.0, 1.0)`` for pixels; default
None: no box). L∞: Π clips δ to :math:`[-\varepsilon, \varepsilon]` and then x + δ to the
box, the exact Euclidean projection onto the intersection of the two boxes. L2: Π
scales δ onto the ball and then clips x + δ to the box, as the reference implementation
does; that is not the Euclidean projection onto the intersection, but it is feasible:
x lies in the box, so clipping only shrinks every :math:`|\delta_i|`. The L1 ball is not
supported (APGD-L1, Croce & Hein 2021, needs a sparse step of its own).

Plain PGD (:func:`pgd`) is here too, for comparison: a random start in the ball, then a
fixed step :math:`\delta \leftarrow \Pi(\delta + \alpha\,u(g))` (default
:math:`\alpha = 2.5\varepsilon/\text{steps}`, Madry et al. 2018), the same bookkeeping.
:func:`robust_accuracy` runs APGD-CE, APGD-DLR and PGD-CE and counts an example robust
only if it is classified correctly and no attack fools it; it also reports each
attack's own accuracy, so "APGD is at least as strong as PGD" can be checked.

Everything runs in the working dtype of ``params`` and ``X`` (float32 or float64,
:func:`advlip.tolerance.working_dtype`), batched (``vmap`` over examples) and compiled
once per input shape, number of classes and number of steps (the norm and the loss are
traced branch indices, so one program serves L∞ and L2, CE and DLR).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from advlip import apgd, models
    >>> loss_fn = models.ClassifierLoss(lambda W, x: W @ x)
    >>> W = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    >>> X, y = jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([0, 1])
    >>> res = apgd.apgd(loss_fn, W, X, y, eps=0.1, p=jnp.inf, steps=10,
    ...                 key=jax.random.PRNGKey(0))
    >>> res.delta.shape, bool(jnp.all(jnp.abs(res.delta) <= 0.1))
    ((2, 2), True)
    >>> apgd.checkpoints(100)
    (0, 22, 41, 57, 70, 80, 87, 93, 99)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from advlip import attacks, keys
from advlip._validate import check_p, check_positive_int, check_real
from advlip.losses import LOGIT_LOSSES, get_logit_loss

__all__ = [
    "RHO",
    "MOMENTUM",
    "SUPPORTED_P",
    "LOSS_NAMES",
    "checkpoints",
    "halve_step",
    "APGDResult",
    "RobustAccuracy",
    "apgd",
    "pgd",
    "robust_accuracy",
    "pgd_delta",
    "COMPILER_OPTIONS",
]

#: Fraction of the steps between two checkpoints that must raise the loss to keep η (ρ).
RHO: float = 0.75
#: Weight α of the new step against the last one (the momentum of APGD).
MOMENTUM: float = 0.75
#: Norms supported: p = 2 and p = ∞.
SUPPORTED_P: tuple[float, ...] = (2.0, math.inf)
#: Loss names accepted, with their aliases (``"ce"`` is cross-entropy).
LOSS_NAMES: dict[str, str] = {
    "ce": "cross_entropy",
    "cross_entropy": "cross_entropy",
    "dlr": "dlr",
    "cw": "cw",
}

_P1, _DECR, _MIN = Fraction(22, 100), Fraction(3, 100), Fraction(6, 100)


def checkpoints(steps: int) -> tuple[int, ...]:
    r"""The checkpoints :math:`0 = w_0 < w_1 < \dots \le N` of APGD's step-size schedule.

    :math:`w_j = \lceil p_j N \rceil` for the :math:`p_j \le 1` of :math:`p_0 = 0`,
    :math:`p_1 = 0.22`, :math:`p_{j+1} = p_j + \max(p_j - p_{j-1} - 0.03, 0.06)`, computed
    in exact rational arithmetic (so 0.22·100 is 22, not 22.000000000000004), repeats
    dropped (for small N two :math:`p_j` can round up to the same step).

    Example:
        >>> from advlip.apgd import checkpoints
        >>> checkpoints(10)
        (0, 3, 5, 6, 7, 8, 9, 10)
    """
    n = check_positive_int("steps", steps)
    ps = [Fraction(0), _P1]
    while True:
        nxt = ps[-1] + max(ps[-1] - ps[-2] - _DECR, _MIN)
        if nxt > 1:
            break
        ps.append(nxt)
    out: list[int] = []
    for pj in ps:
        w = math.ceil(pj * n)
        if w <= n and (not out or w > out[-1]):
            out.append(w)
    return tuple(out)


def halve_step(
    increases: Any, window: Any, reduced_last: Any, best: Any, best_last: Any
) -> jax.Array:
    r"""APGD's rule at a checkpoint :math:`w_j`: halve the step (and restart from the best point)?

    True iff (a) ``increases`` :math:`< \rho\,` ``window``: fewer than ρ = 0.75 of the
    ``window`` :math:`= w_j - w_{j-1}` steps since the last checkpoint raised the loss, or
    (b) ``not reduced_last`` (η was not halved at :math:`w_{j-1}`) and ``best <= best_last``
    (the best loss has not improved since :math:`w_{j-1}`). Elementwise, traceable.

    Example:
        >>> from advlip.apgd import halve_step
        >>> bool(halve_step(10, 22, True, 1.0, 0.5)), bool(halve_step(17, 22, True, 1.0, 0.5))
        (True, False)
        >>> bool(halve_step(17, 22, False, 1.0, 1.0))
        True
    """
    cond_a = jnp.asarray(increases) < RHO * jnp.asarray(window)
    cond_b = jnp.logical_not(reduced_last) & (jnp.asarray(best) <= jnp.asarray(best_last))
    return cond_a | cond_b


class APGDResult(NamedTuple):
    r"""What :func:`apgd` and :func:`pgd` return, per example (arrays of the working dtype).

    Attributes:
      delta: (n, *input_shape) — the perturbation of highest loss found (every iterate of
        every restart), in the ball (and the box, with ``clip``).
      loss: (n,) — the attack's loss (CE, DLR, ...) at ``x + delta``.
      misclassified: (n,) bool — some evaluated point ``x + δ`` was misclassified
        (argmax of the logits ≠ y; for one binary logit, ``y·z <= 0``).
      adversarial: (n, *input_shape) — a δ that misclassifies, where one was found (the
        first); elsewhere ``delta``.
      step_size: (n,) — APGD's final step η of the restart that gave ``delta`` (PGD: its
        fixed step).
      evaluations: gradient evaluations per example, all restarts: ``restarts·(steps + 1)``.

    Example:
        Logits ``z = x + δ`` of class 0 against class 1: the margin
        :math:`x_1 + \delta_1 - \delta_2` is lowest at the vertex (−ε, ε) of the L∞ box,
        0.5 for the first example (still correct) and −0.25 for the second (fooled), with
        cross-entropy :math:`\log(1 + e^{-m})`:

        >>> import jax, jax.numpy as jnp
        >>> from advlip import apgd, models
        >>> loss_fn = models.ClassifierLoss(jnp.matmul)  # logits W @ x
        >>> W, X, y = jnp.eye(2), jnp.array([[1.0, 0.0], [0.25, 0.0]]), jnp.array([0, 0])
        >>> res = apgd.apgd(loss_fn, W, X, y, eps=0.25, p=jnp.inf, steps=10,
        ...                 key=jax.random.PRNGKey(0))
        >>> res.delta.tolist(), res.misclassified.tolist(), res.evaluations
        ([[-0.25, 0.25], [-0.25, 0.25]], [False, True], 11)
        >>> tuple(round(float(v), 4) for v in res.loss)
        (0.4741, 0.8259)
    """

    delta: jax.Array
    loss: jax.Array
    misclassified: jax.Array
    adversarial: jax.Array
    step_size: jax.Array
    evaluations: int


class RobustAccuracy(NamedTuple):
    """What :func:`robust_accuracy` returns.

    Attributes:
      robust: accuracy under the worst of all attacks per example (clean-correct and
        fooled by none).
      clean: accuracy on the unperturbed inputs.
      apgd: accuracy under the worst of the APGD losses per example.
      pgd: accuracy under PGD-CE.
      per_attack: ``{"apgd-ce": acc, "apgd-dlr": acc, "pgd-ce": acc}`` — each attack alone
        (clean-correct and not fooled by that attack).
      robust_mask: (n,) bool NumPy array — which examples stayed robust.
      n: examples.
      evaluations: gradient evaluations per example over all attacks.

    Example:
        The two examples of :class:`APGDResult`'s example: the first stays correct under
        every attack, the second is fooled.

        >>> import jax, jax.numpy as jnp
        >>> from advlip import apgd, models
        >>> loss_fn = models.ClassifierLoss(jnp.matmul)  # logits W @ x
        >>> W, X, y = jnp.eye(2), jnp.array([[1.0, 0.0], [0.25, 0.0]]), jnp.array([0, 0])
        >>> r = apgd.robust_accuracy(loss_fn, W, X, y, eps=0.25, p=jnp.inf, steps=10,
        ...                          losses=("ce",), pgd_steps=10, key=jax.random.PRNGKey(0))
        >>> r.clean, r.robust, r.robust_mask.tolist(), r.per_attack
        (1.0, 0.5, [True, False], {'apgd-ce': 0.5, 'pgd-ce': 0.5})
        >>> r.to_dict()["evaluations"]  # 11 for APGD-CE and 11 for PGD-CE
        22
    """

    robust: float
    clean: float
    apgd: float
    pgd: float
    per_attack: dict
    robust_mask: np.ndarray
    n: int
    evaluations: int

    def to_dict(self) -> dict:
        """Plain JSON values (the mask as a list of bools)."""
        return {
            "robust": self.robust,
            "clean": self.clean,
            "apgd": self.apgd,
            "pgd": self.pgd,
            "per_attack": dict(self.per_attack),
            "robust_mask": [bool(b) for b in self.robust_mask],
            "n": self.n,
            "evaluations": self.evaluations,
        }


# --------------------------------------------------------------------------- per-example pieces
# x and δ are flat (d,) inside; ``apply_flat`` reshapes to the input shape.


def _fooled(z: jax.Array, y: jax.Array) -> jax.Array:
    if z.ndim == 0 or z.shape == (1,):
        return jnp.asarray(y, z.dtype) * z.reshape(()) <= 0
    return jnp.argmax(z) != jnp.asarray(y).astype(jnp.int32)


def _direction(g: jax.Array, pidx: jax.Array) -> jax.Array:
    """Steepest ascent of the norm: g/‖g‖₂ (index 0) or sign(g) (index 1); 0 at g = 0."""

    def l2(v):
        n = jnp.linalg.norm(v)
        return v / jnp.where(n > 0, n, 1.0)

    return lax.switch(pidx, [l2, jnp.sign], g)


def _project(x: jax.Array, v: jax.Array, eps, lo, hi, pidx) -> jax.Array:
    """Onto the ball (index 0: L2 by scaling; 1: L∞ by clipping), then x + δ into [lo, hi]."""

    def l2(v):
        n = jnp.linalg.norm(v)
        return v * jnp.where(n > eps, eps / jnp.where(n > 0, n, 1.0), 1.0)

    def linf(v):
        return jnp.clip(v, -eps, eps)

    v = lax.switch(pidx, [l2, linf], v)
    # lo - x <= 0 <= hi - x for x in the box, so the clip only shrinks every |δ_i|
    return jnp.clip(v, lo - x, hi - x)


def _value_grad(apply_flat, losses, params, x, y, lidx):
    def f(dl):
        z = apply_flat(params, x + dl)
        val = lax.switch(lidx, [lambda z, L=L: L(z, y) for L in losses], z)
        return val, z

    def vg(dl):
        (val, z), g = jax.value_and_grad(f, has_aux=True)(dl)
        return val, _fooled(z, y), g

    return vg


def _apgd_one(vg, x, delta0, eps, lo, hi, pidx, ck_mask, ck_window):
    project = lambda v: _project(x, v, eps, lo, hi, pidx)  # noqa: E731
    d0 = project(delta0)
    f0, m0, g0 = vg(d0)
    dt = d0.dtype
    steps = ck_mask.shape[0] - 1
    init = {
        "cur": d0,
        "prev": d0,
        "g": g0,
        "f": f0,
        "best": d0,
        "gbest": g0,
        "fbest": f0,
        "eta": jnp.asarray(2.0, dt) * eps,
        "inc": jnp.zeros((), jnp.int32),
        "reduced": jnp.zeros((), bool),
        "flast": f0,
        "mis": m0,
        "adv": d0,
    }

    def body(k, s):
        a = jnp.asarray(MOMENTUM, dt)
        z = project(s["cur"] + s["eta"] * _direction(s["g"], pidx))
        new = project(s["cur"] + a * (z - s["cur"]) + (1 - a) * (s["cur"] - s["prev"]))
        new = jnp.where(k == 1, z, new)  # the first step has no momentum: x1 = z exactly
        f, m, g = vg(new)
        inc = s["inc"] + (f > s["f"]).astype(jnp.int32)
        better = f > s["fbest"]
        best = jnp.where(better, new, s["best"])
        gbest = jnp.where(better, g, s["gbest"])
        fbest = jnp.where(better, f, s["fbest"])
        adv = jnp.where(m & ~s["mis"], new, s["adv"])
        mis = s["mis"] | m
        # a checkpoint: halve η and go back to the best point (rule (a) or (b))
        at_ck = ck_mask[k]
        halve = at_ck & halve_step(inc, ck_window[k], s["reduced"], fbest, s["flast"])
        cur = jnp.where(halve, best, new)
        return {
            "cur": cur,
            "prev": s["cur"],
            "g": jnp.where(halve, gbest, g),
            "f": jnp.where(halve, fbest, f),
            "best": best,
            "gbest": gbest,
            "fbest": fbest,
            "eta": jnp.where(halve, s["eta"] / 2, s["eta"]),
            "inc": jnp.where(at_ck, 0, inc),
            "reduced": jnp.where(at_ck, halve, s["reduced"]),
            "flast": jnp.where(at_ck, fbest, s["flast"]),
            "mis": mis,
            "adv": adv,
        }

    s = lax.fori_loop(1, steps + 1, body, init)
    adv = jnp.where(s["mis"], s["adv"], s["best"])
    return s["best"], s["fbest"], s["mis"], adv, s["eta"]


def _pgd_one(vg, x, delta0, eps, alpha, lo, hi, pidx, steps: int):
    project = lambda v: _project(x, v, eps, lo, hi, pidx)  # noqa: E731
    d0 = project(delta0)
    f0, m0, g0 = vg(d0)

    def body(_, s):
        cur, g, best, fbest, mis, adv = s
        new = project(cur + alpha * _direction(g, pidx))
        f, m, g = vg(new)
        better = f > fbest
        adv = jnp.where(m & ~mis, new, adv)
        return (
            new,
            g,
            jnp.where(better, new, best),
            jnp.where(better, f, fbest),
            mis | m,
            adv,
        )

    _, _, best, fbest, mis, adv = lax.fori_loop(0, steps, body, (d0, g0, d0, f0, m0, d0))
    return best, fbest, mis, jnp.where(mis, adv, best), alpha


def _batch(
    dyn, params, X, y, delta0, eps, alpha, lo, hi, pidx, lidx, ck_mask, ck_window, *, static, meta
):
    method, shape, loss_names, steps = meta
    apply = attacks.combine(dyn, static)
    apply_flat = lambda th, x: apply(th, x.reshape(shape))  # noqa: E731
    losses = [get_logit_loss(n) for n in loss_names]

    def one(x, yi, d0):
        vg = _value_grad(apply_flat, losses, params, x, yi, lidx)
        if method == "apgd":
            return _apgd_one(vg, x, d0, eps, lo, hi, pidx, ck_mask, ck_window)
        return _pgd_one(vg, x, d0, eps, alpha, lo, hi, pidx, steps)

    return jax.vmap(one)(X, y, delta0)


#: Compiler options of the attack loops: XLA's full backend optimisation, whatever
#: ``XLA_FLAGS`` says (the command line and the tests ask for level 0, the quickest code
#: generation, which suits programs that run once; an attack runs its network hundreds of
#: times, and unoptimised code runs it about ten times slower). Changes no formula.
COMPILER_OPTIONS: dict[str, Any] = {"xla_backend_optimization_level": 3}

_batch_jit = jax.jit(_batch, static_argnames=("static", "meta"), compiler_options=COMPILER_OPTIONS)


def _fooled_batch(dyn, params, X, y, *, static, shape):
    apply = attacks.combine(dyn, static)
    return jax.vmap(lambda x, yi: _fooled(apply(params, x.reshape(shape)), yi))(X, y)


_fooled_jit = jax.jit(
    _fooled_batch, static_argnames=("static", "shape"), compiler_options=COMPILER_OPTIONS
)


# --------------------------------------------------------------------------- validation


class _Problem(NamedTuple):
    apply: Any
    params: Any
    X: jax.Array  # (n, d), working dtype
    y: jax.Array
    shape: tuple[int, ...]
    num_classes: int
    p: float
    eps: float
    lo: float
    hi: float
    dtype: np.dtype


def _loss_name(loss: Any) -> str:
    if not isinstance(loss, str) or loss.strip().lower() not in LOSS_NAMES:
        raise ValueError(f"loss={loss!r} is not allowed; allowed: {sorted(LOSS_NAMES)}")
    return LOSS_NAMES[loss.strip().lower()]


def _check_clip(clip: Any) -> tuple[float, float]:
    if clip is None:
        return -math.inf, math.inf
    try:
        lo, hi = (float(c) for c in clip)
    except (TypeError, ValueError):
        raise ValueError(
            f"clip={clip!r} is not allowed; allowed: None or a pair (lo, hi) of finite reals "
            "with lo < hi, e.g. (0.0, 1.0) for pixels"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(
            f"clip={clip!r} is not allowed; allowed: None or a pair (lo, hi) of finite reals "
            "with lo < hi, e.g. (0.0, 1.0) for pixels"
        )
    return lo, hi


def _prepare(loss_fn, params, X, y, eps, p, clip, losses: tuple[str, ...]) -> _Problem:
    apply = getattr(loss_fn, "apply", None)
    if not callable(apply):
        raise ValueError(
            "loss_fn must be a classifier loss with an apply(params, x) giving the logits of "
            f"one input (advlip.models.ClassifierLoss); got {type(loss_fn).__name__}"
        )
    pf = check_p(p)
    if pf not in SUPPORTED_P:
        raise ValueError(
            f"p={p!r} is not supported by APGD here; allowed: 2 or inf (math.inf). APGD-L1 "
            "(Croce & Hein 2021) needs a sparse step of its own and is not implemented"
        )
    e = check_real("eps", eps, minimum=0.0, strict=True)
    lo, hi = _check_clip(clip)
    X = jnp.asarray(X)
    if X.ndim < 2:
        raise ValueError(
            f"X must have shape (n, *input_shape), a batch of examples, got shape {X.shape}"
        )
    shape = tuple(int(s) for s in X.shape[1:])
    loss_fn, params, Xf, y, _, dt = attacks.prepare_problem(loss_fn, params, X, y, e, pf)
    if isinstance(loss_fn, attacks.InputShaped):
        loss_fn = loss_fn.base
    apply = loss_fn.apply
    K = loss_fn.num_classes(params, Xf[0].reshape(shape))
    for name in losses:
        need = get_logit_loss(name).min_classes
        if K < need:
            raise ValueError(
                f"loss={name!r} needs at least {need} classes, the classifier has "
                f"{'a single binary logit' if K == 1 else K}; allowed: 'ce' (or 'cw')"
            )
    if jnp.issubdtype(y.dtype, jnp.floating) and K > 1:
        y = y.astype(jnp.int32)
    if math.isfinite(lo):
        Xn = np.asarray(Xf)
        out = (Xn < lo) | (Xn > hi)
        if out.any():
            raise ValueError(
                f"X has {int(out.sum())} value(s) outside clip=({lo:g}, {hi:g}) (range "
                f"[{Xn.min():g}, {Xn.max():g}]); allowed: inputs inside the box, or clip=None"
            )
    return _Problem(apply, params, Xf, y, shape, K, pf, e, lo, hi, dt)


def _run(
    prob: _Problem,
    method: str,
    loss: str,
    steps: int,
    restarts: int,
    key: jax.Array,
    step_size: float | None,
    batch_size: int | None,
) -> APGDResult:
    n, d = prob.X.shape
    dt = prob.dtype
    names = tuple(
        k for k in ("cross_entropy", "dlr", "cw") if LOGIT_LOSSES[k].min_classes <= prob.num_classes
    )
    lidx = jnp.asarray(names.index(loss), jnp.int32)
    pidx = jnp.asarray(SUPPORTED_P.index(prob.p), jnp.int32)
    ws = checkpoints(steps)
    mask = np.zeros(steps + 1, bool)
    window = np.zeros(steps + 1, np.int32)
    for a, b in zip(ws[:-1], ws[1:], strict=True):
        mask[b], window[b] = True, b - a
    eps = jnp.asarray(prob.eps, dt)
    alpha = jnp.asarray(2.5 * prob.eps / steps if step_size is None else step_size, dt)
    lo, hi = jnp.asarray(prob.lo, dt), jnp.asarray(prob.hi, dt)
    dyn, static = attacks.partition(prob.apply)
    meta = (method, prob.shape, names, steps)
    # a fixed chunk size (the last chunk padded by repeating examples): one program for any n
    bs = n if batch_size is None else check_positive_int("batch_size", batch_size)
    best = None
    for r in range(restarts):
        kr = jax.random.fold_in(key, r)
        delta0 = attacks.sample_ball(kr, (n, d), eps=prob.eps, p=prob.p).astype(dt)
        parts = []
        for start in range(0, n, bs):
            stop = min(start + bs, n)
            idx = np.arange(start, start + bs) % n  # the last chunk padded: one program
            out = _batch_jit(
                dyn,
                prob.params,
                prob.X[idx],
                prob.y[idx],
                jnp.asarray(delta0[idx]),
                eps,
                alpha,
                lo,
                hi,
                pidx,
                lidx,
                jnp.asarray(mask),
                jnp.asarray(window),
                static=static,
                meta=meta,
            )
            parts.append([o[: stop - start] for o in out])
        res = [jnp.concatenate([p[i] for p in parts]) for i in range(5)]
        if best is None:
            best = res
            continue
        delta, f, mis, adv, eta = res
        better = f > best[1]
        new_adv = jnp.where((mis & ~best[2])[:, None], adv, best[3])
        best = [
            jnp.where(better[:, None], delta, best[0]),
            jnp.where(better, f, best[1]),
            best[2] | mis,
            new_adv,
            jnp.where(better, eta, best[4]),
        ]
    delta, f, mis, adv, eta = best
    # where no restart misclassified, the adversarial δ is the best-loss one
    adv = jnp.where(mis[:, None], adv, delta)
    full = (n, *prob.shape)
    return APGDResult(
        delta.reshape(full),
        f,
        mis,
        adv.reshape(full),
        jnp.broadcast_to(eta, (n,)),
        restarts * (steps + 1),
    )


# --------------------------------------------------------------------------- public attacks


def apgd(
    loss_fn: Any,
    params: Any,
    X: Any,
    y: Any,
    *,
    eps: float,
    p: float,
    steps: int = 100,
    restarts: int = 1,
    loss: str = "ce",
    key: jax.Array,
    clip: tuple[float, float] | None = None,
    batch_size: int | None = None,
) -> APGDResult:
    r"""APGD on every example of ``X``: maximise ``loss`` of the logits over :math:`B_p(x_i, \varepsilon)`.

    Args:
      loss_fn: a classifier loss with ``apply(params, x)`` → logits of ONE input
        (:class:`advlip.models.ClassifierLoss`); its own ``loss`` is not used — the
        attack maximises ``loss``.
      params: the model's parameters (held fixed).
      X: inputs (n, *input_shape) — vectors or images (n, H, W, C).
      y: int labels (n,) (±1 for a single binary logit).
      eps: the radius of the ball, ε > 0.
      p: the norm of the ball, p ∈ {2, ∞}.
      steps: iterations N per restart (N + 1 gradient evaluations).
      restarts: random starts.
      loss: ``"ce"`` (cross-entropy), ``"dlr"`` (needs ≥ 3 classes) or ``"cw"``.
      key: the JAX PRNG key of the random starts (restart r uses ``fold_in(key, r)``).
      clip: None, or ``(lo, hi)``: the box of valid inputs (``(0.0, 1.0)`` for pixels);
        X must lie inside it, and every x + δ stays inside.
      batch_size: examples per compiled call (default all at once); the last chunk is
        padded so one program serves every chunk.

    Returns:
      An :class:`APGDResult`; the δ have the shape of X.

    Example:
        The L2 ball of radius 0.5 around x = (1, 0) and (0.25, 0), both of class 0, logits
        ``z = x + δ``: the margin :math:`z_0 - z_1` falls fastest along (−1, 1)/√2, so
        the least margin in the ball is :math:`x_1 - 0.5\sqrt 2`: 0.2929 for the first
        example (still correct), below 0 for the second (fooled). The attack ends on the
        sphere.

        >>> import jax, jax.numpy as jnp
        >>> from advlip import apgd, models
        >>> loss_fn = models.ClassifierLoss(jnp.matmul)  # logits W @ x
        >>> W, X, y = jnp.eye(2), jnp.array([[1.0, 0.0], [0.25, 0.0]]), jnp.array([0, 0])
        >>> res = apgd.apgd(loss_fn, W, X, y, eps=0.5, p=2, steps=10, key=jax.random.PRNGKey(0))
        >>> norms = jnp.linalg.norm(res.delta, axis=1)
        >>> res.misclassified.tolist(), tuple(round(float(r), 4) for r in norms)
        ([False, True], (0.5, 0.5))
        >>> z = X + res.delta
        >>> round(float(z[0, 0] - z[0, 1]), 4)
        0.2929
    """
    name = _loss_name(loss)
    steps = check_positive_int("steps", steps)
    restarts = check_positive_int("restarts", restarts)
    keys.check_key(key)
    prob = _prepare(loss_fn, params, X, y, eps, p, clip, (name,))
    return _run(prob, "apgd", name, steps, restarts, key, None, batch_size)


def pgd(
    loss_fn: Any,
    params: Any,
    X: Any,
    y: Any,
    *,
    eps: float,
    p: float,
    steps: int = 100,
    step_size: float | None = None,
    restarts: int = 1,
    loss: str = "ce",
    key: jax.Array,
    clip: tuple[float, float] | None = None,
    batch_size: int | None = None,
) -> APGDResult:
    r"""Plain PGD with a fixed step, for comparison with :func:`apgd` (same arguments and result).

    From a uniform random start in the ball, ``steps`` steps
    :math:`\delta \leftarrow \Pi(\delta + \alpha\,u(\nabla_\delta\ell))` with
    :math:`u = \operatorname{sign}` (L∞) or :math:`g/\|g\|_2` (L2) and
    :math:`\alpha` = ``step_size`` (default :math:`2.5\varepsilon/\text{steps}`, Madry et al.
    2018); the highest-loss iterate is kept. ``step_size`` must be a finite real > 0.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from advlip import apgd, models
        >>> loss_fn = models.ClassifierLoss(lambda W, x: W @ x)
        >>> W, X, y = jnp.eye(2), jnp.array([[1.0, 0.0]]), jnp.array([0])
        >>> res = apgd.pgd(loss_fn, W, X, y, eps=0.5, p=2, steps=20, key=jax.random.PRNGKey(1))
        >>> bool(jnp.linalg.norm(res.delta) <= 0.5 * (1 + 1e-6)), res.evaluations  # float32 too
        (True, 21)
    """
    name = _loss_name(loss)
    steps = check_positive_int("steps", steps)
    restarts = check_positive_int("restarts", restarts)
    if step_size is not None:
        check_real("step_size", step_size, minimum=0.0, strict=True)
    keys.check_key(key)
    prob = _prepare(loss_fn, params, X, y, eps, p, clip, (name,))
    return _run(prob, "pgd", name, steps, restarts, key, step_size, batch_size)


def robust_accuracy(
    loss_fn: Any,
    params: Any,
    X: Any,
    y: Any,
    *,
    eps: float,
    p: float,
    key: jax.Array,
    steps: int = 100,
    restarts: int = 1,
    losses: tuple[str, ...] = ("ce", "dlr"),
    pgd_steps: int = 100,
    pgd_step_size: float | None = None,
    clip: tuple[float, float] | None = None,
    batch_size: int | None = None,
) -> RobustAccuracy:
    r"""Accuracy under the worst of APGD (each loss in ``losses``) and PGD-CE, per example.

    An example counts as robust iff it is classified correctly at x and no attack found
    a misclassified point in the ball. Keys: APGD with the i-th loss draws from
    ``fold_in(key, i)``, PGD from ``fold_in(key, len(losses))``. ``pgd_steps`` (0: no
    PGD) and ``pgd_step_size`` set the PGD baseline; the other arguments are
    :func:`apgd`'s. Each attack's own accuracy is in ``per_attack`` (``"apgd-ce"``,
    ``"apgd-dlr"``, ``"pgd-ce"``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from advlip import apgd, models
        >>> loss_fn = models.ClassifierLoss(lambda W, x: W @ x)
        >>> W = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
        >>> X, y = jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([0, 1])
        >>> r = apgd.robust_accuracy(loss_fn, W, X, y, eps=0.1, p=jnp.inf, steps=10,
        ...                          pgd_steps=10, key=jax.random.PRNGKey(0))
        >>> r.clean, r.robust, sorted(r.per_attack)
        (1.0, 1.0, ['apgd-ce', 'apgd-dlr', 'pgd-ce'])
    """
    if isinstance(losses, str) or not losses:
        raise ValueError(
            f"losses={losses!r} is not allowed; allowed: a non-empty tuple of names from "
            f"{sorted(LOSS_NAMES)}"
        )
    names = tuple(_loss_name(name) for name in losses)
    steps = check_positive_int("steps", steps)
    restarts = check_positive_int("restarts", restarts)
    pgd_steps = check_positive_int("pgd_steps", pgd_steps, minimum=0)
    keys.check_key(key)
    prob = _prepare(loss_fn, params, X, y, eps, p, clip, names)
    dyn, static = attacks.partition(prob.apply)
    correct = ~np.asarray(
        _fooled_jit(dyn, prob.params, prob.X, prob.y, static=static, shape=prob.shape)
    )
    per_attack: dict[str, float] = {}
    robust = correct.copy()
    apgd_ok = correct.copy()
    evaluations = 0
    short = {"cross_entropy": "ce", "dlr": "dlr", "cw": "cw"}
    for i, name in enumerate(names):
        res = _run(
            prob, "apgd", name, steps, restarts, jax.random.fold_in(key, i), None, batch_size
        )
        ok = correct & ~np.asarray(res.misclassified)
        per_attack[f"apgd-{short[name]}"] = float(ok.mean())
        apgd_ok &= ok
        evaluations += res.evaluations
    robust &= apgd_ok
    pgd_acc = math.nan
    if pgd_steps > 0:
        res = _run(
            prob,
            "pgd",
            "cross_entropy",
            pgd_steps,
            1,
            jax.random.fold_in(key, len(names)),
            pgd_step_size,
            batch_size,
        )
        ok = correct & ~np.asarray(res.misclassified)
        per_attack["pgd-ce"] = pgd_acc = float(ok.mean())
        robust &= ok
        evaluations += res.evaluations
    return RobustAccuracy(
        robust=float(robust.mean()),
        clean=float(correct.mean()),
        apgd=float(apgd_ok.mean()),
        pgd=pgd_acc,
        per_attack=per_attack,
        robust_mask=robust,
        n=int(correct.size),
        evaluations=evaluations,
    )


# --------------------------------------------------------------------------- inside training


def pgd_delta(
    apply: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    X: jax.Array,
    y: jax.Array,
    delta0: jax.Array,
    *,
    eps: Any,
    p: float,
    steps: int,
    step_size: Any = None,
    loss: str = "ce",
    clip: tuple[float, float] | None = None,
) -> jax.Array:
    r"""The PGD of :func:`pgd` as a traceable function, for training steps: the best δ per example.

    No validation and no random draw (``delta0`` (n, *input_shape) is the start, e.g.
    uniform in the ball; it is projected first): for use inside ``jit``, where ``params``
    are traced. ``apply(params, x)`` gives the logits of one input of shape
    ``X.shape[1:]``; ``p`` ∈ {2, ∞} and ``steps`` are static, ``eps`` and ``step_size``
    (default :math:`2.5\varepsilon/\text{steps}`) may be traced. The result carries no
    gradient to ``params`` (Danskin: the attack's δ is held fixed).

    Example:
        >>> import jax.numpy as jnp
        >>> from advlip.apgd import pgd_delta
        >>> W, X, y = jnp.eye(2), jnp.array([[1.0, 0.0]]), jnp.array([0])
        >>> d = pgd_delta(lambda W, x: W @ x, W, X, y, jnp.zeros((1, 2)), eps=0.25, p=jnp.inf,
        ...               steps=10)
        >>> d.tolist()
        [[-0.25, 0.25]]
    """
    pf = check_p(p)
    if pf not in SUPPORTED_P:
        raise ValueError(f"p={p!r} is not supported; allowed: 2 or inf")
    name = _loss_name(loss)
    lo, hi = _check_clip(clip)
    shape = tuple(X.shape[1:])
    n = X.shape[0]
    dt = X.dtype
    Xf = X.reshape(n, -1)
    eps = jnp.asarray(eps, dt)
    alpha = 2.5 * eps / steps if step_size is None else jnp.asarray(step_size, dt)
    pidx = SUPPORTED_P.index(pf)
    apply_flat = lambda th, x: apply(th, x.reshape(shape))  # noqa: E731
    L = get_logit_loss(name)
    lo_a, hi_a = jnp.asarray(lo, dt), jnp.asarray(hi, dt)

    def one(x, yi, d0):
        vg = _value_grad(apply_flat, [L], lax.stop_gradient(params), x, yi, 0)
        return _pgd_one(vg, x, d0, eps, alpha, lo_a, hi_a, pidx, steps)[0]

    delta = jax.vmap(one)(Xf, y, delta0.reshape(n, -1).astype(dt))
    return lax.stop_gradient(delta.reshape(X.shape))
