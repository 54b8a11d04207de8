r"""Does EntropySGD improve adversarial training? Measured on a small CNN, with APGD.

Kanai et al. (arXiv 2103.01400) argue that the adversarial loss is not smooth (under L∞
it has kinks), that EntropySGD — which descends the local entropy :math:`F_\gamma`, a
smoothed loss (:mod:`advlip.entropy_sgd`) — helps, and report better robust accuracy
with it at equal epochs. This experiment repeats the comparison and reports the
verdict whichever way it falls.

**Set-up.** The reference CNN (:func:`advlip.networks.cnn`: two 3×3 conv + average-pool
blocks of 8 and 16 channels, a dense layer of 32, 10 logits; tanh activations —
smooth, and with tanh the net leaves its initial plateau within the first epoch, which
softplus's all-positive features do not) on scikit-learn's 10-class 8×8 digits, pixels
in [0, 1] (``data="digits"``, the default; ``"mnist:PATH"`` and ``"cifar10:PATH"`` read
local files). The train/test split is drawn once from the key, so every seed is
evaluated on the same held-out test set; seed s (key ``fold_in(key, s)``) draws the
initial weights, the minibatch order and the attack's random starts, the same for
every optimiser (a paired design).

**Threat models.** L∞ and L2 balls matched by :func:`advlip.training.matched_eps`: the
L∞ radius is that of the largest L∞ ball inside the L2 ball,
:math:`\varepsilon_\infty = \varepsilon_2/\sqrt d` (digits: :math:`\varepsilon_2 = 0.8`,
:math:`\varepsilon_\infty = 0.1` on [0, 1] pixels, 1.6 of the 16 grey levels; MNIST
:math:`\varepsilon_2 = 2`; CIFAR-10 :math:`\varepsilon_2 = 0.5`). Every attack keeps
x + δ in the pixel box [0, 1].

**Training.** Adversarial training (Madry et al.): each minibatch is attacked by PGD,
k steps of size :math:`2.5\varepsilon/k` (sign of the gradient for L∞, normalised
gradient for L2) from a uniform random start in the ball, best iterate kept
(:func:`advlip.apgd.pgd_delta`), and the cross-entropy at the attacked inputs is
descended with Danskin's gradient (δ held fixed). Two optimisers, equal epochs as in
the paper:

* ``sgd`` — ``optax.sgd`` with momentum 0.9, learning rate ``LR`` with cosine decay;
* ``entropy-sgd`` — :func:`advlip.entropy_sgd.entropy_sgd`, whose SGLD inner loop
  (``sgld_steps`` steps of size ``LR``, coupling γ = 0.03, temperature 1e-8 — the
  thermal noise 1e-4·√η of Chaudhari et al. —, exponential averaging 0.75) evaluates the
  adversarial minibatch loss at each θ′: every SGLD step re-attacks the minibatch at θ′.
  The outer step is :math:`\mathrm{lr}\cdot\gamma(\theta - \mu)` with lr = 1/γ (Chaudhari
  et al.'s unit step on :math:`\theta - \mu`), momentum 0.9, the same cosine decay.

At equal epochs EntropySGD spends ``sgld_steps`` times the gradient evaluations of SGD,
so a third arm, ``sgd-equal-gradients`` (SGD for ``sgld_steps`` times the epochs),
separates "better optimiser" from "more compute". Every run reports its epochs and its
gradient evaluations (backward passes per training example: PGD's k + 1 input
gradients and one parameter gradient per loss gradient).

**Evaluation.** Held-out clean accuracy and robust accuracy under the worst of APGD-CE,
APGD-DLR and PGD-CE per example (:func:`advlip.apgd.robust_accuracy`). Per optimiser
and norm: mean over seeds and the 95% t-interval (:func:`t_interval`; the t quantile
is computed here, :func:`t_quantile`, so scipy is not needed at run time).

**Verdict** (one claim per norm and comparison): "EntropySGD improves adversarial
training" holds iff EntropySGD's mean robust accuracy exceeds SGD's **and** the 95%
t-interval of the paired differences (EntropySGD − SGD, same seed) lies above 0. A
second claim: APGD is at least as strong as PGD on every run (APGD's robust accuracy ≤
PGD's).

**Smoothness along training.** For the first ``curvature_seeds`` seeds, at
``curvature_checkpoints`` epochs (the first at initialisation, the last at the end),
the top eigenvalue of the total and of the naive Hessian (δ held fixed) of the
adversarial loss on a probe batch of training examples
(:func:`advlip.adversarial.linearize` then ``top_eigenvalue``, Lanczos), with the
fraction of examples whose total Hessian is undetermined. This runs in float64 (the
weights cast up), on the ball without the pixel box (the theory's feasible set);
training and evaluation run in float32 for speed (their tolerances are not used for
any claim).

Sizes: :data:`FULL` (about 15 min on 2 CPU cores: 895 s measured on two busy cores) and
:data:`QUICK` (≲ 1 min: two seeds, no equal-gradient arm, no curvature — the certified
attack and the total Hessian compile for about two minutes).

Example:
    >>> from advlip.robust_training import t_quantile, t_interval
    >>> round(t_quantile(0.975, 4), 3)
    2.776
    >>> iv = t_interval([0.5, 0.6, 0.7])
    >>> round(iv["mean"], 6), iv["low"] < 0.6 < iv["high"]
    (0.6, True)
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from advlip import apgd, attacks, data, keys, training

__all__ = [
    "Sizes",
    "FULL",
    "QUICK",
    "LR",
    "GAMMA",
    "TEMPERATURE",
    "AVERAGING",
    "MOMENTUM",
    "EPS_L2",
    "OPTIMIZERS",
    "t_quantile",
    "t_interval",
    "experiment",
]

#: Learning rate of SGD and step of the SGLD inner loop.
LR: float = 0.1
#: Momentum of SGD and of EntropySGD's outer step.
MOMENTUM: float = 0.9
#: EntropySGD's coupling γ (Chaudhari et al.'s γ₀ = 0.03), temperature, averaging weight.
GAMMA: float = 0.03
TEMPERATURE: float = 1e-8
AVERAGING: float = 0.75
#: The L2 budget per dataset; the L∞ one is ``training.matched_eps(EPS_L2, d, inf)``.
EPS_L2: dict[str, float] = {"digits": 0.8, "mnist": 2.0, "cifar10": 0.5}
#: The optimisers (arms) compared.
OPTIMIZERS: tuple[str, ...] = ("sgd", "entropy-sgd", "sgd-equal-gradients")
_COLORS = {"sgd": "tab:blue", "entropy-sgd": "tab:red", "sgd-equal-gradients": "tab:green"}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big a run is (:data:`FULL`, :data:`QUICK`; tests pass smaller ones).

    Attributes:
        seeds: training seeds per optimiser and norm.
        n_train: training examples.
        n_test: held-out test examples.
        epochs: epochs of SGD and EntropySGD.
        batch_size: the minibatch size (the last partial minibatch of an epoch is dropped).
        attack_steps: k, PGD steps of the training attack.
        sgld_steps: EntropySGD's SGLD steps per outer step (≥ 2).
        equal_gradients: also run SGD for ``sgld_steps × epochs`` epochs.
        eval_steps: APGD iterations of the evaluation.
        eval_restarts: APGD restarts of the evaluation.
        eval_pgd_steps: PGD steps of the evaluation.
        probe: training examples in the curvature probe (0: no curvature measured).
        curvature_checkpoints: epochs at which λ_max is measured (≥ 2: first and last).
        curvature_seeds: seeds on which it is measured.
        lanczos_steps: Lanczos iterations of each λ_max.

    Example:
        >>> import dataclasses
        >>> from advlip import robust_training
        >>> tiny = dataclasses.replace(robust_training.QUICK, seeds=2, epochs=1)
        >>> tiny.seeds, tiny.epochs, tiny.probe
        (2, 1, 0)
    """

    seeds: int = 5
    n_train: int = 1024
    n_test: int = 500
    epochs: int = 15
    batch_size: int = 32
    attack_steps: int = 5
    sgld_steps: int = 5
    equal_gradients: bool = True
    eval_steps: int = 100
    eval_restarts: int = 1
    eval_pgd_steps: int = 100
    probe: int = 8
    curvature_checkpoints: int = 4
    curvature_seeds: int = 1
    lanczos_steps: int = 30


#: The full experiment (about 15 min on 2 CPU cores).
FULL = Sizes()
#: The quick experiment (≲ 1 min): two seeds, small sets, no equal-gradient arm, no curvature.
QUICK = Sizes(
    seeds=2,
    n_train=256,
    n_test=100,
    epochs=8,
    batch_size=16,
    attack_steps=3,
    sgld_steps=2,
    equal_gradients=False,
    eval_steps=20,
    eval_restarts=1,
    eval_pgd_steps=20,
    probe=0,
    curvature_checkpoints=2,
    curvature_seeds=0,
    lanczos_steps=20,
)


# --------------------------------------------------------------------------- statistics


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    r"""The regularised incomplete beta function :math:`I_x(a, b)`."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_quantile(q: float, df: int) -> float:
    r"""The q-quantile of Student's t with ``df`` degrees of freedom, for 0.5 ≤ q < 1.

    From the two-sided tail :math:`P(|T| > t) = I_{\nu/(\nu + t^2)}(\nu/2, 1/2)` (the
    regularised incomplete beta function, by its continued fraction, as in *Numerical
    Recipes* §6.4), inverted by bisection to a relative width of 1e-14. ``df`` ≥ 1.

    Example:
        >>> from advlip.robust_training import t_quantile
        >>> round(t_quantile(0.975, 1), 3), round(t_quantile(0.975, 30), 3)
        (12.706, 2.042)
    """
    if isinstance(df, bool) or not isinstance(df, int | np.integer) or df < 1:
        raise ValueError(f"df={df!r} is not allowed; allowed: an integer >= 1")
    if not (isinstance(q, int | float) and 0.5 <= q < 1.0):
        raise ValueError(f"q={q!r} is not allowed; allowed: a real number in [0.5, 1)")
    if q == 0.5:
        return 0.0
    target = 2.0 * (1.0 - q)  # the two-sided tail mass beyond t
    nu = float(df)

    def tail(t: float) -> float:
        return _betainc(nu / 2.0, 0.5, nu / (nu + t * t))

    lo, hi = 0.0, 1.0
    while tail(hi) > target:
        lo, hi = hi, 2.0 * hi
    while hi - lo > 1e-14 * hi:
        mid = 0.5 * (lo + hi)
        if tail(mid) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def t_interval(values: Any, level: float = 0.95) -> dict[str, Any]:
    r"""Mean and the ``level`` t-interval :math:`\bar v \pm t_{(1+\text{level})/2,\,n-1}\, s/\sqrt n`.

    Args:
        values: the sample (finite numbers, at least one).
        level: the confidence level of the interval.

    Returns:
        ``{"mean", "low", "high", "half_width", "sd", "n", "df", "t", "level",
        "values"}``; with one value the interval is (−inf, inf) (no spread to estimate).

    Raises:
        ValueError: ``values`` is empty or holds a non-finite number.

    Example:
        >>> from advlip.robust_training import t_interval
        >>> iv = t_interval([1.0, 2.0, 3.0])
        >>> iv["mean"], round(iv["low"], 3), round(iv["high"], 3)
        (2.0, -0.484, 4.484)
    """
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"values must be a non-empty list of finite numbers, got {v.tolist()}")
    n = int(v.size)
    mean = float(np.mean(v))
    if n == 1:
        return {
            "mean": mean,
            "low": -math.inf,
            "high": math.inf,
            "half_width": math.inf,
            "sd": math.nan,
            "n": 1,
            "df": 0,
            "t": math.inf,
            "level": level,
            "values": v.tolist(),
        }
    sd = float(np.std(v, ddof=1))
    t = t_quantile(0.5 + level / 2.0, n - 1)
    half = t * sd / math.sqrt(n)
    return {
        "mean": mean,
        "low": mean - half,
        "high": mean + half,
        "half_width": half,
        "sd": sd,
        "n": n,
        "df": n - 1,
        "t": t,
        "level": level,
        "values": v.tolist(),
    }


# --------------------------------------------------------------------------- data


def _dataset(ctx: Any, sizes: Sizes) -> dict[str, Any]:
    name = str(ctx.options.get("data", "digits"))
    kind = name.split(":", 1)[0].strip().lower()
    if kind == "digits":
        X, y = data.digits_images(dtype=np.float32)
        n_train = min(sizes.n_train, X.shape[0] - 1)
        n_test = min(sizes.n_test, X.shape[0] - n_train)
        perm = keys.numpy_rng(ctx.key, 1).permutation(X.shape[0])
        tr, te = perm[:n_train], perm[n_train : n_train + n_test]
        Xtr, ytr, Xte, yte = X[tr], y[tr], X[te], y[te]
        desc = (
            f"scikit-learn digits, 10 classes, 8x8 pixels in [0, 1]; {n_train} train / "
            f"{n_test} held-out test examples drawn from the key"
        )
    elif kind in ("mnist", "cifar10"):
        Xtr, ytr, d1 = data.images(
            name, split="train", n=sizes.n_train, key=ctx.key, dtype=np.float32
        )
        Xte, yte, d2 = data.images(
            name, split="test", n=sizes.n_test, key=ctx.key, dtype=np.float32
        )
        desc = f"{d1}; {d2}"
    else:
        raise ValueError(
            f"data={name!r} is not allowed; allowed: 'digits', 'mnist:PATH', 'cifar10:PATH'"
        )
    d = int(np.prod(Xtr.shape[1:]))
    e2 = EPS_L2[kind]
    return {
        "name": name,
        "kind": kind,
        "description": desc,
        "Xtr": np.asarray(Xtr, np.float32),
        "ytr": np.asarray(ytr, np.int32),
        "Xte": np.asarray(Xte, np.float32),
        "yte": np.asarray(yte, np.int32),
        "d": d,
        "eps_l2": e2,
        "eps": {p: training.matched_eps(e2, d, p) for p in (math.inf, 2.0)},
    }


# --------------------------------------------------------------------------- training


def _f32_schedule(peak: float, total: int):
    base = optax.cosine_decay_schedule(peak, max(total, 1))
    return lambda count: jnp.asarray(base(count), jnp.float32)


class _Arm:
    """One optimiser under one norm: the compiled epoch, built once and reused by every seed."""

    def __init__(self, name, apply, p, eps, sizes: Sizes, steps_per_epoch: int):
        from advlip import entropy_sgd
        from advlip.losses import get_logit_loss

        self.name, self.p, self.eps = name, p, eps
        k = sizes.attack_steps
        ce = get_logit_loss("cross_entropy")

        def adv_loss(params, Xb, yb, d0b):
            delta = apgd.pgd_delta(
                apply, params, Xb, yb, d0b, eps=eps, p=p, steps=k, clip=(0.0, 1.0)
            )
            z = jax.vmap(lambda x: apply(params, x))(Xb + delta)
            return jnp.mean(jax.vmap(ce)(z, yb))

        self.epochs = sizes.epochs * (sizes.sgld_steps if name == "sgd-equal-gradients" else 1)
        total = self.epochs * steps_per_epoch
        if name == "entropy-sgd":
            # the SGLD noise key is replaced per seed (see init)
            self.opt = entropy_sgd.entropy_sgd(
                jax.grad(adv_loss),
                _f32_schedule(1.0 / GAMMA, total),
                gamma=GAMMA,
                momentum=MOMENTUM,
                steps=sizes.sgld_steps,
                step_size=LR,
                temperature=TEMPERATURE,
                averaging=AVERAGING,
                key=jax.random.PRNGKey(0),
            )
            self.grads_per_step = sizes.sgld_steps
        else:
            self.opt = optax.sgd(_f32_schedule(LR, total), momentum=MOMENTUM)
            self.grads_per_step = 1
        # backward passes per example and loss gradient: PGD's k + 1 input gradients + 1
        self.grads_per_example = (k + 2) * self.grads_per_step
        opt, entropy = self.opt, name == "entropy-sgd"

        def epoch(params, state, Xs, ys, ds):
            def body(carry, batch):
                params, state = carry
                if entropy:
                    zeros = jax.tree.map(jnp.zeros_like, params)
                    updates, state = opt.update(zeros, state, params, batch=batch)
                else:
                    updates, state = opt.update(jax.grad(adv_loss)(params, *batch), state, params)
                updates = jax.tree.map(lambda u, w: u.astype(w.dtype), updates, params)
                return (optax.apply_updates(params, updates), state), None

            (params, state), _ = jax.lax.scan(body, (params, state), (Xs, ys, ds))
            return params, state

        self.epoch = jax.jit(epoch, compiler_options=apgd.COMPILER_OPTIONS)
        self.adv_loss = jax.jit(adv_loss, compiler_options=apgd.COMPILER_OPTIONS)

    def init(self, params, key):
        state = self.opt.init(params)
        if self.name == "entropy-sgd":
            state = (state[0]._replace(key=jax.random.fold_in(key, 99)), *state[1:])
        return state


def _curvature(loss64, params, Xp, yp, eps, p, key, lanczos_steps) -> dict[str, Any]:
    from advlip import adversarial

    params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    pt = adversarial.linearize(
        loss64, params64, jnp.asarray(Xp, jnp.float64), jnp.asarray(yp), eps=eps, p=p, key=key
    )
    out: dict[str, Any] = {}
    for h in ("total", "naive"):
        est = pt.top_eigenvalue(hessian=h, key=key, num_steps=lanczos_steps)
        out[f"lambda_{h}"] = float(est.value)
        out[f"bound_{h}"] = float(est.bound)
    out["undetermined"] = float(1.0 - np.mean(pt.determined))
    out["adversarial_loss"] = float(pt.loss())
    out["cases"] = pt.summary()["cases"]
    return out


def _train_run(arm: _Arm, ds: dict, sizes: Sizes, seed: int, ctx, loss_fn, params0, curv: dict):
    """Train one seed with one arm; evaluate; λ_max at the curvature epochs."""
    key = jax.random.fold_in(ctx.key, seed)
    p, eps = arm.p, arm.eps
    Xtr, ytr = ds["Xtr"], ds["ytr"]
    n, B = Xtr.shape[0], sizes.batch_size
    nb = n // B
    shape = Xtr.shape[1:]
    d = int(np.prod(shape))
    params, state = params0, arm.init(params0, key)
    ck_epochs = curv.get("epochs", []) if seed < sizes.curvature_seeds else []
    scale = arm.epochs // sizes.epochs  # the long SGD arm measures at the same fractions
    ck_epochs = [e * scale for e in ck_epochs]
    curvature, monitor = [], []
    mon_n = min(256, n)
    mon_d0 = attacks.sample_ball(jax.random.fold_in(key, 77), (mon_n, d), eps=eps, p=p)
    mon_d0 = mon_d0.astype(np.float32).reshape(mon_n, *shape)
    t0 = time.perf_counter()

    def measure(e):
        if e in ck_epochs:
            c = _curvature(
                curv["loss64"],
                params,
                curv["X"],
                curv["y"],
                eps,
                p,
                jax.random.fold_in(key, 1000 + e),
                sizes.lanczos_steps,
            )
            c["epoch"] = e / scale  # in SGD/EntropySGD epochs, comparable across arms
            c["gradient_evaluations"] = e * nb * B * arm.grads_per_example
            curvature.append(c)
            ctx.progress(
                f"    epoch {e}: lambda_max total {c['lambda_total']:.4g}, naive "
                f"{c['lambda_naive']:.4g}, undetermined {c['undetermined']:.2f}"
            )

    measure(0)
    for e in range(1, arm.epochs + 1):
        rng = keys.numpy_rng(key, 2, e)  # the same order and starts for every arm
        perm = rng.permutation(n)[: nb * B]
        d0 = attacks.sample_ball(jax.random.fold_in(key, e), (nb * B, d), eps=eps, p=p)
        params, state = arm.epoch(
            params,
            state,
            jnp.asarray(Xtr[perm].reshape(nb, B, *shape)),
            jnp.asarray(ytr[perm].reshape(nb, B)),
            jnp.asarray(d0.astype(np.float32).reshape(nb, B, *shape)),
        )
        monitor.append(float(arm.adv_loss(params, Xtr[:mon_n], ytr[:mon_n], mon_d0)))
        measure(e)
    train_s = time.perf_counter() - t0
    r = apgd.robust_accuracy(
        loss_fn,
        params,
        ds["Xte"],
        ds["yte"],
        eps=eps,
        p=p,
        key=jax.random.fold_in(key, 5),
        steps=sizes.eval_steps,
        restarts=sizes.eval_restarts,
        pgd_steps=sizes.eval_pgd_steps,
        clip=(0.0, 1.0),
    )
    return {
        "seed": seed,
        "norm": _norm_name(p),
        "p": p,
        "eps": eps,
        "optimizer": arm.name,
        "epochs": arm.epochs,
        "steps": arm.epochs * nb,
        "gradient_evaluations": arm.epochs * nb * B * arm.grads_per_example,
        "gradient_evaluations_per_example_epoch": nb * B * arm.grads_per_example / n,
        "clean_acc": r.clean,
        "robust_acc": r.robust,
        "apgd_acc": r.apgd,
        "pgd_acc": r.pgd,
        "per_attack": r.per_attack,
        "train_adversarial_loss": monitor,
        "curvature": curvature,
        "train_seconds": train_s,
        "eval_seconds": time.perf_counter() - t0 - train_s,
    }


def _norm_name(p: float) -> str:
    return "linf" if math.isinf(p) else "l2"


# --------------------------------------------------------------------------- the experiment


def experiment(ctx: Any, *, sizes: Sizes | None = None) -> dict[str, Any]:
    """Run the comparison; returns the JSON body (``runs``, ``summary``, ``claims``, ``pngs``).

    Run it with ``advlip experiment entropy-sgd-robust`` (:func:`advlip.experiments.run`),
    which passes ``ctx``; :data:`FULL` takes about 15 minutes, :data:`QUICK` about one.

    Args:
        ctx: the context of :mod:`advlip.experiments` (``quick``, ``key``, ``progress``,
            ``options`` — ``"data"`` —, ``png(suffix)``).
        sizes: overrides :data:`FULL` / :data:`QUICK` (tests use a smaller one).

    Returns:
        The JSON body: the set-up, ``runs`` (one per norm, optimiser and seed),
        ``summary`` (means and 95% t-intervals), ``claims``, ``findings`` and ``pngs``
        (drawn from the body, :func:`advlip.experiments.figures`).

    Raises:
        ValueError: ``sizes`` is not a :class:`Sizes`, or its ``sgld_steps`` is below 2,
            or the data option is not allowed.

    Example:
        >>> import tempfile
        >>> from advlip import experiments
        >>> experiments.run("entropy-sgd-robust", out_dir=tempfile.mkdtemp(), quick=True,
        ...                 progress=None, data="svhn")
        Traceback (most recent call last):
        ...
        ValueError: data='svhn' is not allowed; allowed: 'digits', 'mnist:PATH', 'cifar10:PATH'
    """
    from advlip import networks
    from advlip.models import ClassifierLoss

    sizes = (QUICK if ctx.quick else FULL) if sizes is None else sizes
    if not isinstance(sizes, Sizes):
        raise ValueError(f"sizes={sizes!r} is not allowed; allowed: a robust_training.Sizes")
    if sizes.sgld_steps < 2:
        raise ValueError(f"sizes.sgld_steps={sizes.sgld_steps} is not allowed; allowed: >= 2")
    if sizes.curvature_checkpoints < 2 and sizes.probe > 0:
        raise ValueError("sizes.curvature_checkpoints must be >= 2 (the first and last epoch)")
    start = time.perf_counter()
    ds = _dataset(ctx, sizes)
    shape = tuple(ds["Xtr"].shape[1:])
    nb = ds["Xtr"].shape[0] // sizes.batch_size
    if nb < 1:
        raise ValueError(
            f"sizes.batch_size={sizes.batch_size} exceeds the {ds['Xtr'].shape[0]} training "
            "examples"
        )
    ctx.progress(
        f"[{ds['name']}] CNN adversarial training, {sizes.seeds} seeds x "
        f"{len(OPTIMIZERS) if sizes.equal_gradients else 2} optimisers x 2 norms; "
        f"eps_inf={ds['eps'][math.inf]:.4g}, eps_2={ds['eps'][2.0]:.4g}"
    )
    curv: dict[str, Any] = {}
    if sizes.probe > 0 and sizes.curvature_seeds > 0:
        probe_idx = keys.numpy_rng(ctx.key, 3).permutation(ds["Xtr"].shape[0])[: sizes.probe]
        _, loss64 = networks.cnn(
            ctx.key, shape, 10, activation="tanh", dtype=jnp.float64
        )  # the float64 twin of the network (same apply), for the curvature
        curv = {
            "loss64": ClassifierLoss(loss64.apply, "cross_entropy"),
            "X": ds["Xtr"][probe_idx].astype(np.float64),
            "y": ds["ytr"][probe_idx],
            "epochs": sorted(
                {int(round(e)) for e in np.linspace(0, sizes.epochs, sizes.curvature_checkpoints)}
            ),
        }
    arms = ["sgd", "entropy-sgd"] + (["sgd-equal-gradients"] if sizes.equal_gradients else [])
    runs = []
    for p in (math.inf, 2.0):
        eps = ds["eps"][p]
        for name in arms:
            _, loss_fn = networks.cnn(ctx.key, shape, 10, activation="tanh", dtype=jnp.float32)
            arm = _Arm(name, loss_fn.apply, p, eps, sizes, nb)
            for s in range(sizes.seeds):
                params0, _ = networks.cnn(
                    jax.random.fold_in(ctx.key, s),
                    shape,
                    10,
                    activation="tanh",
                    dtype=jnp.float32,
                )
                ctx.progress(
                    f"  {_norm_name(p)} eps={eps:.4g}, {name}, seed {s}: {arm.epochs} epochs "
                    f"({time.perf_counter() - start:.0f} s so far)"
                )
                run = _train_run(arm, ds, sizes, s, ctx, loss_fn, params0, curv)
                ctx.progress(
                    f"    clean {run['clean_acc']:.3f}, robust {run['robust_acc']:.3f} "
                    f"(APGD {run['apgd_acc']:.3f}, PGD {run['pgd_acc']:.3f}); "
                    f"train {run['train_seconds']:.1f} s, eval {run['eval_seconds']:.1f} s"
                )
                runs.append(run)
    summary = _summary(runs, arms)
    claims = _claims(runs, summary, arms)
    body = {
        "data": ds["description"],
        "model": "advlip.networks.cnn: [conv3x3 -> tanh -> avg-pool 2] x (8, 16) channels -> "
        "dense 32 -> tanh -> 10 logits; float32 for training and evaluation, float64 for "
        "the curvature",
        "eps": {"linf": ds["eps"][math.inf], "l2": ds["eps"][2.0], "d": ds["d"]},
        "matching": training.MATCHING,
        "box": "every attack keeps x + delta in [0, 1] (the curvature probe: the ball only)",
        "training": {
            "attack": f"PGD, {sizes.attack_steps} steps of 2.5 eps/{sizes.attack_steps} (sign "
            "gradient for Linf, normalised gradient for L2) from a uniform random start in the "
            "ball, best iterate; Danskin gradient of the mean cross-entropy",
            "sgd": f"optax.sgd(cosine decay from {LR}, momentum={MOMENTUM}), batch "
            f"{sizes.batch_size}, {sizes.epochs} epochs",
            "entropy-sgd": f"advlip.entropy_sgd.entropy_sgd: {sizes.sgld_steps} SGLD steps of "
            f"{LR} on the adversarial minibatch loss (re-attacked at every theta'), "
            f"gamma={GAMMA}, temperature={TEMPERATURE}, averaging={AVERAGING}; outer "
            f"lr 1/gamma (cosine decay), momentum {MOMENTUM}; {sizes.epochs} epochs",
            "sgd-equal-gradients": f"sgd for {sizes.sgld_steps} x {sizes.epochs} epochs: "
            "the gradient evaluations of entropy-sgd"
            if sizes.equal_gradients
            else "not run",
            "comparison": "equal epochs (the paper's protocol) between sgd and entropy-sgd; "
            "sgd-equal-gradients matches entropy-sgd's gradient evaluations",
            "gradient_evaluations": "backward passes per training example: per loss gradient, "
            "PGD's k + 1 input gradients and one parameter gradient",
        },
        "evaluation": {
            "attacks": f"APGD-CE and APGD-DLR ({sizes.eval_steps} iterations, "
            f"{sizes.eval_restarts} restart(s)) and PGD-CE ({sizes.eval_pgd_steps} steps of "
            f"2.5 eps/{sizes.eval_pgd_steps}); robust = clean-correct and fooled by none",
            "interval": "mean and 95% Student t-interval over seeds",
        },
        "curvature": {
            "measured": bool(curv),
            "probe": sizes.probe,
            "epochs": curv.get("epochs", []),
            "seeds": sizes.curvature_seeds if curv else 0,
            "how": "advlip.adversarial.linearize on the probe batch (float64, ball without the "
            "box), top_eigenvalue(hessian='total' / 'naive') by Lanczos; undetermined = "
            "1 - mean(point.determined)"
            if curv
            else "not measured at this size, and not drawn (the certified attack and the "
            "total Hessian compile for about two minutes)",
        },
        "sizes": dataclasses.asdict(sizes),
        "runs": runs,
        "summary": summary,
        "claims": claims,
        "findings": _findings(runs, arms),
        "seconds": time.perf_counter() - start,
    }
    from advlip.plots import _save

    png = ctx.png()
    for _, fig in _figures(training.json_safe(body)):
        _save(fig, png)
    return {**body, "pngs": [png]}


def _by(runs, norm, opt):
    return sorted(
        (r for r in runs if r["norm"] == norm and r["optimizer"] == opt), key=lambda r: r["seed"]
    )


def _summary(runs: list[dict], arms: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for norm in ("linf", "l2"):
        block: dict[str, Any] = {}
        for opt in arms:
            rs = _by(runs, norm, opt)
            block[opt] = {
                "epochs": rs[0]["epochs"],
                "gradient_evaluations": rs[0]["gradient_evaluations"],
                **{
                    k: t_interval([r[f"{k}_acc"] for r in rs])
                    for k in ("robust", "clean", "apgd", "pgd")
                },
            }
        e = _by(runs, norm, "entropy-sgd")
        paired = {}
        for base in [a for a in arms if a != "entropy-sgd"]:
            b = _by(runs, norm, base)
            paired[f"entropy-sgd - {base}"] = t_interval(
                [x["robust_acc"] - z["robust_acc"] for x, z in zip(e, b, strict=True)]
            )
        block["paired_robust_difference"] = paired
        out[norm] = block
    return out


def _claims(runs: list[dict], summary: dict, arms: list[str]) -> list[dict]:
    claims = []
    for norm in ("linf", "l2"):
        s = summary[norm]
        for base in [a for a in arms if a != "entropy-sgd"]:
            diff = s["paired_robust_difference"][f"entropy-sgd - {base}"]
            m_e, m_b = s["entropy-sgd"]["robust"]["mean"], s[base]["robust"]["mean"]
            how = "equal epochs" if base == "sgd" else "equal gradient evaluations"
            claims.append(
                {
                    "claim": f"EntropySGD improves adversarial training ({norm}, {how}, vs "
                    f"{base}): its mean held-out robust accuracy exceeds {base}'s and the 95% "
                    "t-interval of the paired differences (same seed) lies above 0",
                    "holds": bool(m_e > m_b and diff["low"] > 0),
                    "norm": norm,
                    "baseline": base,
                    "entropy_sgd_mean": m_e,
                    "baseline_mean": m_b,
                    "difference_mean": diff["mean"],
                    "difference_low": diff["low"],
                    "difference_high": diff["high"],
                    "seeds": diff["n"],
                    "entropy_sgd_gradient_evaluations": s["entropy-sgd"]["gradient_evaluations"],
                    "baseline_gradient_evaluations": s[base]["gradient_evaluations"],
                }
            )
    viol = [
        {"norm": r["norm"], "optimizer": r["optimizer"], "seed": r["seed"]}
        for r in runs
        if not r["apgd_acc"] <= r["pgd_acc"]
    ]
    claims.append(
        {
            "claim": "APGD (CE and DLR) is at least as strong as PGD-CE on every run: APGD's "
            "robust accuracy <= PGD's",
            "holds": not viol,
            "runs": len(runs),
            "violations": viol,
            "largest_pgd_minus_apgd": max(r["pgd_acc"] - r["apgd_acc"] for r in runs),
        }
    )
    return claims


def _findings(runs: list[dict], arms: list[str]) -> list[dict]:
    rows = []
    for r in runs:
        if r["curvature"]:
            first, last = r["curvature"][0], r["curvature"][-1]
            rows.append(
                {
                    "norm": r["norm"],
                    "optimizer": r["optimizer"],
                    "seed": r["seed"],
                    "lambda_total_first": first["lambda_total"],
                    "lambda_total_last": last["lambda_total"],
                    "lambda_naive_last": last["lambda_naive"],
                    "undetermined_last": last["undetermined"],
                }
            )
    if not rows:
        return []
    return [
        {
            "finding": "lambda_max of the total Hessian of the adversarial loss on the probe batch "
            "at the first and last curvature checkpoint, per run measured (is EntropySGD's end "
            "point flatter?)",
            "rows": rows,
        }
    ]


# --------------------------------------------------------------------------- figure


def _figures(doc: dict) -> list:
    """The experiment's figure, drawn from its JSON document: ``[("", Figure)]``.

    Held-out robust accuracy per norm and optimiser (mean, 95% t-interval, and a dot per
    run: every run is plotted, its dot carrying the gid ``run:i``); where the curvature
    was measured, λ_max of the total and naive Hessian along training, one panel per norm.
    """
    from advlip.plots import _figure, _finish, _legend_right

    runs, summary = doc["runs"], doc["summary"]
    arms = [a for a in OPTIMIZERS if a in summary["linf"]]
    measured = bool(doc["curvature"]["measured"])
    fig = _figure(figsize=(16.0, 4.8) if measured else (9.0, 4.8))
    axes = fig.subplots(1, 3 if measured else 1, squeeze=False)[0]
    ax = axes[0]
    width = 0.8 / len(arms)
    norms = ("linf", "l2")
    for j, opt in enumerate(arms):
        for i, norm in enumerate(norms):
            iv = summary[norm][opt]["robust"]
            x = i + (j - (len(arms) - 1) / 2) * width
            mean, low, high = (float(iv[k]) for k in ("mean", "low", "high"))
            lo = mean - low if math.isfinite(low) else 0.0
            hi = high - mean if math.isfinite(high) else 0.0
            ax.errorbar(
                x,
                mean,
                yerr=[[lo], [hi]],
                fmt="o",
                color=_COLORS[opt],
                capsize=4,
                label=f"{opt}: mean and 95% t-interval",
            )
            for k, r in enumerate(runs):
                if r["norm"] == norm and r["optimizer"] == opt:
                    (dot,) = ax.plot(
                        [x + width / 4],
                        [float(r["robust_acc"])],
                        "o",
                        ms=3,
                        color=_COLORS[opt],
                        alpha=0.5,
                        label=f"{opt}: one seed",
                    )
                    dot.set_gid(f"run:{k}")
    ax.set_xticks([0, 1])
    eps = doc["eps"]
    ax.set_xticklabels([f"L∞, ε = {float(eps['linf']):.3g}", f"L2, ε = {float(eps['l2']):.3g}"])
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("held-out robust accuracy (fraction)")
    ax.set_title("robust accuracy under APGD + PGD: mean, 95% t-interval, seeds")
    ax.grid(alpha=0.3, axis="y")
    _legend_right(ax)
    for k, norm in enumerate(norms if measured else ()):
        ax = axes[k + 1]
        for r in runs:
            if r["norm"] != norm or not r["curvature"]:
                continue
            ep = [float(c["epoch"]) for c in r["curvature"]]
            ax.plot(
                ep,
                [float(c["lambda_total"]) for c in r["curvature"]],
                "-o",
                color=_COLORS[r["optimizer"]],
                label=f"{r['optimizer']}, seed {r['seed']}: total Hessian",
            )
            ax.plot(
                ep,
                [float(c["lambda_naive"]) for c in r["curvature"]],
                "--x",
                color=_COLORS[r["optimizer"]],
                label=f"{r['optimizer']}, seed {r['seed']}: naive Hessian (δ held fixed)",
            )
        ax.set_xlabel("training progress (epochs of sgd and entropy-sgd)")
        ax.set_ylabel("λ_max of the adversarial loss's Hessian")
        ax.set_title(f"{'L∞' if norm == 'linf' else 'L2'}: curvature along training (probe)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        _legend_right(ax, fontsize=7)
    note = "" if measured else " (curvature along training: not measured at this size)"
    fig.suptitle(f"EntropySGD vs SGD for adversarial training of a CNN{note}", fontsize=11)
    return [("", _finish(fig, None))]
