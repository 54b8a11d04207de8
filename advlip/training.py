r"""Adversarial training with optax, and the smoothness it meets on the way (SPEC §1–§5).

Adversarial training minimises

.. math:: L(\theta) = \operatorname{mean}_i \max_{\|\delta\|_p\le\varepsilon}
          \ell(x_i+\delta, y_i; \theta)

with the Danskin gradient (SPEC G0)
:math:`\nabla L(\theta) = \operatorname{mean}_i \nabla_\theta \ell(x_i + \delta_i^*, y_i; \theta)`,
fed to any optax optimiser: :math:`\theta_{t+1} = \theta_t + \mathrm{update}(\nabla L(\theta_t))`.
Full batch, so every step sees the same objective and the gradient ratio between
consecutive iterates (SPEC §1)

.. math:: R_t = \frac{\|\nabla L(\theta_{t+1}) - \nabla L(\theta_t)\|}{\|\theta_{t+1} - \theta_t\|}

is a lower bound on any smoothness constant of :math:`L` on the path. Two kinds of problem:

* :class:`advlip.linear.LinearProblem` — the attack is the closed form of SPEC §2,
  :math:`\delta^* = -y\varepsilon u(w)`; the loss, gradient, Hessian and robust accuracy
  (:math:`\tilde m_i = m_i - \varepsilon\|w\|_q > 0`) are exact. Along an L2 run every
  :math:`R_t` must stay under LIN-L2's :math:`\beta(w_t, w_{t+1})`; along an L∞ run
  :math:`R_t` stays under :math:`\ell''_{\max}((\max\|x\| + \varepsilon\sqrt d)^2 + [\text{bias}])`
  on every step whose segment crosses no kink hyperplane :math:`w_i = 0` (there
  :math:`\|w\|_1` is linear), and jumps by up to
  :math:`2\varepsilon|\overline{\ell'}|/\|\Delta\theta\|` on the steps that cross one
  (LIN-LINF). Both are recorded step by step.
* :class:`MLPProblem` — a small MLP (:class:`advlip.models.MLPLoss`); the training attack is
  PGD with steepest-ascent steps
  :math:`\delta \leftarrow \Pi_{B_p(\varepsilon)}(\delta + \alpha\,u(\nabla_x\ell))`,
  :math:`\alpha = 2.5\varepsilon/k` (Madry et al. 2018; the update of phase 1 of
  :func:`advlip.attacks.pgd`), compiled into the training step and keeping the best
  iterate. The *strong* evaluation attack (:func:`strong_attack`) runs more steps from
  zero, from random starts in the ball, and from the training attack's δ, and keeps the
  worst case per example, so its robust accuracy can never exceed the training
  attack's. With ``certify=True`` each checkpoint also runs the certified
  :func:`advlip.attacks.pgd` from that δ and reads the top eigenvalue of the total and of
  the naive Hessian (δ held fixed) from :mod:`advlip.adversarial` (SPEC G1–G3).

Budgets of different norms are matched by :func:`matched_eps`:
:math:`\varepsilon_p = \varepsilon_2 / d^{\max(0, 1/2 - 1/p)}`, the radius of the largest
:math:`L_p` ball inside the L2 ball of radius :math:`\varepsilon_2` (for p = ∞:
:math:`\varepsilon_\infty = \varepsilon_2/\sqrt d`, whose corners lie on the L2 sphere).

Example:
    >>> import jax.numpy as jnp
    >>> from advlip import data, training
    >>> from advlip.linear import LinearProblem
    >>> X, y = data.synthetic(0, n=32, d=3)
    >>> prob = LinearProblem(X=X, y=y, eps=0.2, p=2.0, fit_bias=True)
    >>> hist = training.train(prob, optimizer="adam", learning_rate=0.1, steps=20, seed=0)
    >>> bool(hist.loss[-1] < hist.loss[0]), bool(all(hist.robust_acc <= hist.clean_acc))
    (True, True)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from advlip import models, norms, tolerance
from advlip._validate import check_data, check_eps, check_p, check_positive_int
from advlip.attacks import _combine as _join
from advlip.attacks import _partition as _split
from advlip.linear import LinearProblem
from advlip.losses import get_loss

__all__ = [
    "OPTIMIZERS",
    "MATCHING",
    "matched_eps",
    "make_optimizer",
    "MLPProblem",
    "pgd_light",
    "strong_attack",
    "danskin_grad_fn",
    "adversarial_loss",
    "adversarial_loss_many",
    "ravel",
    "unravel_mlp",
    "TrainingHistory",
    "train",
    "json_safe",
]

#: Named optimisers of :func:`make_optimizer` (all from optax).
OPTIMIZERS: tuple[str, ...] = ("sgd", "sgd-momentum", "adam")

#: How :func:`matched_eps` matches budgets, as written into every JSON.
MATCHING = (
    "eps_p = eps_2 / d^max(0, 1/2 - 1/p): the largest Lp ball inside the L2 ball of radius "
    "eps_2 (for p = inf: eps_inf = eps_2 / sqrt(d))"
)

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- budgets, optimisers


def matched_eps(eps_l2: float, d: int, p: float) -> float:
    r"""The Lp radius of the same budget as an L2 radius ``eps_l2`` in :math:`\mathbb{R}^d`.

    :math:`\varepsilon_p = \varepsilon_2 / d^{\max(0,\,1/2-1/p)}`
    (:func:`advlip.norms.l2_radius`): :math:`B_p(\varepsilon_p)` is the largest Lp ball
    inside :math:`B_2(\varepsilon_2)`. p = 2 gives ``eps_l2``; p = ∞ gives
    :math:`\varepsilon_2/\sqrt d`; for p ≤ 2 the ball :math:`B_p(\varepsilon_2)` lies inside.
    """
    p = check_p(p)
    check_eps(eps_l2, "eps_l2")
    d = check_positive_int("d", d)
    return float(eps_l2) / norms.l2_radius(d, p)


@functools.lru_cache(maxsize=64)
def make_optimizer(name: str, learning_rate: float, *, momentum: float = 0.9):
    """An optax optimiser by name: ``sgd``, ``sgd-momentum`` (heavy ball, ``momentum``) or ``adam``.

    Cached: the same ``(name, learning_rate)`` returns the same object, so the
    compiled training step is reused across runs.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r} is not known; allowed: {list(OPTIMIZERS)}")
    if not (
        isinstance(learning_rate, int | float)
        and math.isfinite(learning_rate)
        and learning_rate > 0
    ):
        raise ValueError(
            f"learning_rate={learning_rate!r} is not allowed; allowed: a finite real > 0"
        )
    if name == "sgd":
        opt = optax.sgd(learning_rate)
    elif name == "sgd-momentum":
        opt = optax.sgd(learning_rate, momentum=momentum)
    else:
        opt = optax.adam(learning_rate)
    return optax.with_extra_args_support(opt)


# --------------------------------------------------------------------------- the MLP problem


@dataclasses.dataclass(frozen=True, eq=False)
class MLPProblem:
    r"""A binary dataset, a threat model and a small MLP: the adversarial loss of SPEC §3.

    ``loss_fn`` is :class:`advlip.models.MLPLoss` ``(activation, loss)``; the network is
    ``d → widths… → 1`` (:func:`advlip.models.init_mlp`). ``attack_steps`` is the number
    of PGD steps of the training attack. ``p`` ∈ {1, 2, ∞} (the attack projects onto the ball).
    """

    X: Any
    y: Any
    eps: float
    p: float
    widths: tuple[int, ...] = (16,)
    activation: str = "tanh"
    loss: str = "softplus"
    attack_steps: int = 10

    def __post_init__(self):
        p = check_p(self.p)
        if p not in (1.0, 2.0, math.inf):
            raise ValueError(f"p={self.p!r} is not allowed for an MLP attack; allowed: 1, 2, inf")
        object.__setattr__(self, "p", p)
        check_eps(self.eps)
        X = jnp.asarray(self.X)
        y = jnp.asarray(self.y)
        if X.ndim != 2:
            raise ValueError(f"X must have shape (n, d), got shape {X.shape}")
        check_data(jnp.zeros(X.shape[1]), X, y)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        widths = tuple(check_positive_int("widths[i]", int(w)) for w in self.widths)
        object.__setattr__(self, "widths", widths)
        check_positive_int("attack_steps", self.attack_steps)
        models.MLPLoss(self.activation, self.loss)  # validates both names

    @property
    def loss_fn(self) -> models.MLPLoss:
        """The per-example loss for :mod:`advlip.attacks` and :mod:`advlip.adversarial`."""
        return models.MLPLoss(self.activation, self.loss)

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    def init(self, seed: int) -> list[dict[str, jax.Array]]:
        """Initial parameters from ``seed`` (:func:`advlip.models.init_mlp`)."""
        return models.init_mlp(jax.random.PRNGKey(seed), self.d, self.widths)


# --------------------------------------------------------------------------- the attacks


def _pgd_one(loss_fn, params, x, y, delta0, eps, steps, p):
    """Steepest-ascent PGD on one example from ``delta0``; returns the best iterate and its loss."""
    q = norms.dual_exponent(p)
    alpha = 2.5 * eps / jnp.maximum(steps, 1)
    vg = jax.value_and_grad(lambda dl: loss_fn(params, x + dl, y))

    def body(_, carry):
        dl, best, best_val = carry
        val, g = vg(dl)
        better = val > best_val
        best = jnp.where(better, dl, best)
        best_val = jnp.where(better, val, best_val)
        dl = norms.project_ball(dl + alpha * norms.dual_direction(g, q=q), eps=eps, p=p)
        return dl, best, best_val

    d0 = norms.project_ball(delta0, eps=eps, p=p)
    dl, best, best_val = lax.fori_loop(0, steps, body, (d0, d0, jnp.asarray(-jnp.inf, d0.dtype)))
    val = loss_fn(params, x + dl, y)
    better = val > best_val
    return jnp.where(better, dl, best), jnp.where(better, val, best_val)


@functools.partial(jax.jit, static_argnames=("static", "p"))
def _pgd_jit(dyn, params, X, y, delta0, eps, steps, *, static, p):
    loss_fn = _join(dyn, static)
    run = jax.vmap(lambda x, yi, d0: _pgd_one(loss_fn, params, x, yi, d0, eps, steps, p))
    return run(X, y, delta0)


@functools.partial(jax.jit, static_argnames=("static",))
def _batch_loss(dyn, params, X, y, delta, *, static):
    loss_fn = _join(dyn, static)
    return jax.vmap(lambda x, yi, dl: loss_fn(params, x + dl, yi))(X, y, delta)


def _pgd_batch(params, X, y, delta0, eps, steps, *, loss_fn, p):
    dyn, static = _split(loss_fn)
    return _pgd_jit(dyn, params, X, y, delta0, eps, steps, static=static, p=p)


def pgd_light(
    loss_fn: Callable,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    steps: int,
    init: ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array]:
    r"""The training attack: ``steps`` steepest-ascent PGD steps per example, best iterate kept.

    :math:`\delta \leftarrow \Pi_{B_p(\varepsilon)}(\delta + \alpha\, u(\nabla_x \ell))`,
    :math:`u \in \partial\|\nabla_x\ell\|_q` (sign for p = ∞, the unit vector for p = 2),
    :math:`\alpha = 2.5\varepsilon/\text{steps}`; from ``init`` (default 0). Because the start
    is among the iterates, :math:`\ell(x+\delta) \ge \ell(x+\delta_0)`. Returns
    ``(delta (n, d), loss (n,))``. One compiled program for every ``steps`` and ε.
    Not certified: :func:`advlip.attacks.pgd` is the attack with a KKT certificate.
    """
    p = check_p(p)
    X = jnp.asarray(X)
    delta0 = jnp.zeros_like(X) if init is None else jnp.asarray(init, dtype=X.dtype)
    if delta0.shape != X.shape:
        raise ValueError(f"init must have the shape of X, {X.shape}, got {delta0.shape}")
    steps = check_positive_int("steps", steps, minimum=0)
    return _pgd_batch(
        params,
        X,
        jnp.asarray(y, dtype=X.dtype),
        delta0,
        jnp.asarray(eps, dtype=X.dtype),
        jnp.asarray(steps),
        loss_fn=loss_fn,
        p=p,
    )


class StrongResult(NamedTuple):
    """The strong attack's worst case per example and how it was found."""

    delta: jax.Array  # (n, d)
    loss: np.ndarray  # (n,)
    source: np.ndarray  # (n,) index of the winning start: 0 init, 1 zero, 2.. random, -1 certified


def strong_attack(
    loss_fn: Callable,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: float,
    p: float,
    steps: int = 50,
    restarts: int = 4,
    seed: int = 0,
    init: ArrayLike | None = None,
) -> StrongResult:
    r"""A stronger attack than the training one: more steps and random restarts, worst case kept.

    Candidates per example: ``init`` as given (the training attack's δ, not re-run), a
    ``steps``-step PGD from 0, and ``restarts`` runs of ``steps`` steps from points drawn
    uniformly in the ball (:func:`advlip.attacks.sample_ball`, seeded). The candidate of
    largest loss wins, so the strong attack's loss is ≥ the training attack's on every
    example: for a decreasing margin loss its margin is ≤, and its robust accuracy ≤.
    """
    from advlip import attacks

    X = jnp.asarray(X)
    y = jnp.asarray(y, dtype=X.dtype)
    cands, losses = [], []
    if init is not None:
        d0 = jnp.asarray(init, dtype=X.dtype)
        cands.append(d0)
        dyn, static = _split(loss_fn)
        losses.append(_batch_loss(dyn, params, X, y, d0, static=static))
    dl, val = pgd_light(loss_fn, params, X, y, eps=eps, p=p, steps=steps)
    cands.append(dl)
    losses.append(val)
    if restarts:
        starts = attacks.sample_ball(jax.random.PRNGKey(seed), (restarts, *X.shape), eps=eps, p=p)
        for r in range(restarts):
            dl, val = pgd_light(loss_fn, params, X, y, eps=eps, p=p, steps=steps, init=starts[r])
            cands.append(dl)
            losses.append(val)
    L = np.stack([np.asarray(v) for v in losses])  # (C, n)
    best = np.argmax(L, axis=0)
    D = jnp.stack(cands)  # (C, n, d)
    delta = D[jnp.asarray(best), jnp.arange(X.shape[0])]
    source = best if init is not None else best + 1
    return StrongResult(delta, L[best, np.arange(X.shape[0])], source)


# --------------------------------------------------------------------------- problem specs


class _LinearSpec(NamedTuple):
    p: float
    loss: str
    fit_bias: bool
    b: float


@dataclasses.dataclass(frozen=True)
class _MarginMLP:
    r""":math:`\ell(y f_\theta(x))` for :func:`advlip.models.mlp`: hashable, no array fields."""

    activation: str
    loss: str

    def __call__(self, params, x, y):
        return get_loss(self.loss).value(y * models.mlp(params, x, activation=self.activation))


class _MLPSpec(NamedTuple):
    activation: str
    loss: str
    p: float

    @property
    def loss_fn(self) -> _MarginMLP:
        return _MarginMLP(self.activation, self.loss)


def _spec(problem) -> _LinearSpec | _MLPSpec:
    if isinstance(problem, LinearProblem):
        return _LinearSpec(
            problem.p, str(get_loss(problem.loss).name), problem.fit_bias, float(problem.b)
        )
    if isinstance(problem, MLPProblem):
        return _MLPSpec(problem.activation, problem.loss, problem.p)
    raise ValueError(
        f"problem must be an advlip.linear.LinearProblem or an advlip.training.MLPProblem, "
        f"got {type(problem).__name__}"
    )


def _linear_parts(spec: _LinearSpec, theta, X, y, eps):
    d = X.shape[1]
    w = theta[:d]
    b = theta[d] if spec.fit_bias else jnp.asarray(spec.b, dtype=theta.dtype)
    q = norms.dual_exponent(spec.p)
    m = y * (X @ w + b)
    mt = m - eps * norms.lp_norm(w, q)
    return w, b, q, m, mt


def _linear_grad(spec: _LinearSpec, theta, X, y, eps):
    w, b, q, _, mt = _linear_parts(spec, theta, X, y, eps)
    lo = get_loss(spec.loss)
    g1 = lo.d1(mt)
    u = norms.dual_direction(w, q=q)
    gw = jnp.mean(g1[:, None] * y[:, None] * X, axis=0) - eps * jnp.mean(g1) * u
    if spec.fit_bias:
        return jnp.concatenate([gw, jnp.mean(g1 * y)[None]])
    return gw


@functools.partial(jax.jit, static_argnames=("spec",))
def _linear_eval(theta, X, y, eps, *, spec: _LinearSpec):
    _, _, _, m, mt = _linear_parts(spec, theta, X, y, eps)
    loss = jnp.mean(get_loss(spec.loss).value(mt))
    g = _linear_grad(spec, theta, X, y, eps)
    return loss, g, jnp.mean(m > 0), jnp.mean(mt > 0)


@functools.partial(jax.jit, static_argnames=("spec",))
def _linear_eval_many(thetas, X, y, eps, *, spec: _LinearSpec):
    """(L, ∇L) at every row of ``thetas`` (closed form), one compiled program per shape."""
    return jax.vmap(lambda th: _linear_eval(th, X, y, eps, spec=spec)[:2])(thetas)


@functools.partial(jax.jit, static_argnames=("spec",))
def _linear_hessians(theta, X, y, eps, *, spec: _LinearSpec):
    r"""Total Hessian (SPEC §2), and the naive one :math:`\operatorname{mean}\,\ell'' a a^\top`
    (δ* held fixed)."""
    w, _, q, _, mt = _linear_parts(spec, theta, X, y, eps)
    lo = get_loss(spec.loss)
    u = norms.dual_direction(w, q=q)
    a = y[:, None] * X - eps * u[None, :]
    if spec.fit_bias:
        a = jnp.concatenate([a, y[:, None]], axis=1)
    naive = jnp.einsum("n,ni,nj->ij", lo.d2(mt), a, a) / X.shape[0]
    d = X.shape[1]
    curv = -eps * jnp.mean(lo.d1(mt)) * norms.norm_hessian(w, q=q)
    total = naive.at[:d, :d].add(curv)
    return total, naive


def _mlp_margins(activation, params, X, y, delta):
    f = jax.vmap(lambda x: models.mlp(params, x, activation=activation))
    return y * f(X + delta)


_mlp_margins_jit = jax.jit(_mlp_margins, static_argnums=0)


@functools.partial(jax.jit, static_argnames=("spec",))
def _mlp_eval(params, X, y, eps, steps, *, spec: _MLPSpec):
    delta, _ = _pgd_batch(
        params, X, y, jnp.zeros_like(X), eps, steps, loss_fn=spec.loss_fn, p=spec.p
    )
    delta = lax.stop_gradient(delta)

    def mean_loss(pr):
        return jnp.mean(jax.vmap(lambda x, yi: spec.loss_fn(pr, x, yi))(X + delta, y))

    loss, g = jax.value_and_grad(mean_loss)(params)
    clean = jnp.mean(_mlp_margins(spec.activation, params, X, y, jnp.zeros_like(X)) > 0)
    robust = jnp.mean(_mlp_margins(spec.activation, params, X, y, delta) > 0)
    return loss, g, clean, robust


@functools.partial(jax.jit, static_argnames=("opt",))
def _update(theta, state, g, X, y, *, opt):
    updates, state = opt.update(g, state, theta, batch=(X, y))
    return optax.apply_updates(theta, updates), state


@functools.partial(jax.jit, static_argnames=("spec",))
def _mlp_loss(params, X, y, eps, steps, *, spec: _MLPSpec):
    _, val = _pgd_batch(params, X, y, jnp.zeros_like(X), eps, steps, loss_fn=spec.loss_fn, p=spec.p)
    return jnp.mean(val)


def adversarial_loss(problem: LinearProblem | MLPProblem, params: Any) -> jax.Array:
    r""":math:`L(\theta)` with the problem's training attack: the closed form (linear, exact)
    or :func:`pgd_light` with ``problem.attack_steps`` steps (MLP, a lower bound on the max)."""
    spec = _spec(problem)
    eps = jnp.asarray(float(problem.eps))
    if isinstance(spec, _LinearSpec):
        return _linear_eval(jnp.asarray(params), problem.X, problem.y, eps, spec=spec)[0]
    return _mlp_loss(
        params, problem.X, problem.y, eps, jnp.asarray(int(problem.attack_steps)), spec=spec
    )


def ravel(params: Any) -> np.ndarray:
    """The parameters as one flat NumPy vector (``jax.flatten_util.ravel_pytree`` order)."""
    return np.concatenate([np.ravel(np.asarray(leaf)) for leaf in jax.tree.leaves(params)])


def unravel_mlp(flat: ArrayLike, d: int, widths: tuple[int, ...]) -> list[dict[str, Any]]:
    """Inverse of :func:`ravel` for :func:`advlip.models.init_mlp`'s pytree ``d → widths → 1``:
    layer by layer, ``W`` (out, in) then ``b`` (out,) (dict keys in sorted order). Traceable."""
    sizes = [d, *widths, 1]
    out, k = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        W = flat[k : k + fan_in * fan_out].reshape(fan_out, fan_in)
        k += fan_in * fan_out
        out.append({"W": W, "b": flat[k : k + fan_out]})
        k += fan_out
    if k != np.shape(flat)[-1]:
        raise ValueError(f"flat has {np.shape(flat)[-1]} entries; an MLP {sizes} has {k}")
    return out


@functools.partial(jax.jit, static_argnames=("spec", "d", "widths"))
def _mlp_loss_many(thetas, X, y, eps, steps, *, spec: _MLPSpec, d: int, widths: tuple[int, ...]):
    def one(flat):
        params = unravel_mlp(flat, d, widths)
        _, val = _pgd_one_batch(spec, params, X, y, eps, steps)
        return jnp.mean(val)

    return jax.lax.map(one, thetas)


def _pgd_one_batch(spec, params, X, y, eps, steps):
    run = jax.vmap(
        lambda x, yi: _pgd_one(spec.loss_fn, params, x, yi, jnp.zeros_like(x), eps, steps, spec.p)
    )
    return run(X, y)


def adversarial_loss_many(problem: LinearProblem | MLPProblem, thetas: ArrayLike) -> jax.Array:
    """:func:`adversarial_loss` at every row of ``thetas`` (K, P), flat parameters
    (:func:`ravel` order), in one compiled program: for loss-landscape slices."""
    spec = _spec(problem)
    thetas = jnp.asarray(thetas)
    eps = jnp.asarray(float(problem.eps))
    if isinstance(spec, _LinearSpec):
        return _linear_eval_many(thetas, problem.X, problem.y, eps, spec=spec)[0]
    steps = jnp.asarray(int(problem.attack_steps))
    return _mlp_loss_many(
        thetas, problem.X, problem.y, eps, steps, spec=spec, d=problem.d, widths=problem.widths
    )


def danskin_grad_fn(problem: LinearProblem | MLPProblem) -> Callable[..., Any]:
    r"""``grad_fn(theta, X, y)`` → the Danskin gradient of ``problem``'s adversarial loss on (X, y).

    For optimisers that evaluate the gradient themselves, such as
    :func:`advlip.entropy_sgd.entropy_sgd` (its SGLD inner loop): :func:`train` passes
    ``batch=(X, y)`` to every ``update``, so the data are arguments, not constants
    baked into the compiled step. Linear: closed form (SPEC §2); MLP: Danskin's
    gradient at the training attack's δ (SPEC G0).
    """
    spec = _spec(problem)
    eps = float(problem.eps)
    if isinstance(spec, _LinearSpec):
        return lambda theta, X, y: _linear_grad(spec, theta, X, y, eps)
    steps = int(problem.attack_steps)
    return lambda params, X, y: _mlp_eval(params, X, y, eps, steps, spec=spec)[1]


# --------------------------------------------------------------------------- history


def json_safe(x: Any) -> Any:
    """Plain JSON values: arrays to lists, non-finite floats to ``"nan"``, ``"inf"``, ``"-inf"``."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray | jax.Array):
        return json_safe(np.asarray(x).tolist())
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        v = float(x)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    return x


@dataclasses.dataclass
class TrainingHistory:
    r"""Everything measured along one adversarial training run (NumPy arrays).

    Per iterate :math:`t = 0..T` (length T+1): ``loss`` :math:`L(\theta_t)` under the
    training attack (exact for linear models), ``clean_acc``, ``robust_acc`` (the same
    attack), ``grad_norm``; for linear models ``near_zero`` — the fraction of weights
    within one step of their kink hyperplane, :math:`|w_{t,i}| \le |w_{t,i} - w_{t-1,i}|`
    (NaN at t = 0): a weight that one more step of the same size could carry across
    :math:`w_i = 0`.

    Per step :math:`t = 0..T-1` (length T): ``grad_ratio`` :math:`R(\theta_t, \theta_{t+1})`,
    ``step_norm`` :math:`\|\theta_{t+1}-\theta_t\|`; for linear models ``kink_crossed``
    (the segment crosses a kink of :math:`\|w\|_q`: a sign change of some :math:`w_i` for
    p > 2, a change of the largest :math:`|w_i|` for p = 1), ``ratio_bound`` (LIN-L2's
    β for p = 2; for other p the bound of the smooth pieces,
    :math:`\ell''_{\max}((\max\|x\| + \varepsilon\, d^{\max(0,1/2-1/p)})^2 + [\text{bias}])`, valid
    on steps that cross no kink; ``inf`` where none applies) and ``ratio_error`` (the
    float64 error of :math:`R_t`, :func:`advlip.tolerance.ratio_error`).

    Per checkpoint (``checkpoint_step``, length K): ``ck_clean_acc``, ``ck_robust_acc``
    (training attack) and ``ck_strong_robust_acc`` (strong attack; the exact closed form
    for linear models) on the evaluation set; ``lambda_max_total`` / ``lambda_max_naive``
    (top eigenvalue of the total Hessian and of the Hessian with δ held fixed, on the
    training set; NaN where not computed) and ``lambda_error`` (eigenvalue error bound).

    ``direction_ratio`` (length T − 1, when :func:`train` got a ``direction_fn``): the
    ratio of the directions the optimiser followed at consecutive iterates.
    """

    kind: str
    p: float
    eps: float
    optimizer: str
    learning_rate: float | None
    seed: int
    loss: np.ndarray
    clean_acc: np.ndarray
    robust_acc: np.ndarray
    grad_norm: np.ndarray
    grad_ratio: np.ndarray
    step_norm: np.ndarray
    kink_crossed: np.ndarray
    ratio_bound: np.ndarray
    ratio_error: np.ndarray
    near_zero: np.ndarray
    checkpoint_step: np.ndarray
    ck_clean_acc: np.ndarray
    ck_robust_acc: np.ndarray
    ck_strong_robust_acc: np.ndarray
    lambda_max_total: np.ndarray
    lambda_max_naive: np.ndarray
    lambda_error: np.ndarray
    final_params: np.ndarray
    direction_ratio: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def steps(self) -> int:
        return int(self.grad_ratio.size)

    def to_dict(self) -> dict:
        """Every field as strict-JSON values (non-finite floats as strings)."""
        out = {f.name: json_safe(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["p"] = json_safe(self.p)
        return out


# --------------------------------------------------------------------------- train


def _kinks_crossed(p: float, w0: np.ndarray, w1: np.ndarray) -> bool:
    if p == 1.0:
        return int(np.argmax(np.abs(w0))) != int(np.argmax(np.abs(w1)))
    if p > 2.0:
        return bool(np.any(np.sign(w0) != np.sign(w1)) or np.any(w0 == 0) or np.any(w1 == 0))
    return bool(not np.any(w0) or not np.any(w1))


def _checkpoints(steps: int, track_every: int | None) -> list[int]:
    if track_every == 0:
        return []
    every = (
        max(1, steps // 4)
        if track_every is None
        else check_positive_int("track_every", track_every)
    )
    pts = list(range(0, steps + 1, every))
    if pts[-1] != steps:
        pts.append(steps)
    return pts


def train(
    problem: LinearProblem | MLPProblem,
    *,
    optimizer: str | optax.GradientTransformation = "adam",
    learning_rate: float = 0.05,
    steps: int = 100,
    seed: int = 0,
    params: Any = None,
    track_every: int | None = None,
    eval_data: tuple[ArrayLike, ArrayLike] | None = None,
    strong_steps: int = 50,
    strong_restarts: int = 4,
    certify: bool = False,
    optimizer_name: str | None = None,
    direction_fn: Callable[[Any, Any], Any] | None = None,
    progress: Progress | None = None,
    label: str = "",
) -> TrainingHistory:
    r"""Full-batch adversarial training of ``problem`` with an optax optimiser; returns the history.

    Args:
      problem: a :class:`advlip.linear.LinearProblem` (closed-form attack) or an
        :class:`MLPProblem` (PGD training attack, :func:`pgd_light`).
      optimizer: a name in :data:`OPTIMIZERS` (with ``learning_rate``) or any optax
        ``GradientTransformation``; it is called as ``update(g, state, params,
        batch=(X, y))`` so transformations that need the data (EntropySGD with
        :func:`danskin_grad_fn`) get it.
      steps: optimiser steps T; seed: initial parameters (when ``params`` is None:
        linear :math:`w \sim \mathcal N(0, 0.1^2/d)`, MLP :func:`advlip.models.init_mlp`)
        and the strong attack's restarts.
      track_every: checkpoint spacing (default T/4; the first and last iterate always;
        0: no checkpoints).
      eval_data: (X, y) for the checkpoint accuracies (default the training set).
      strong_steps, strong_restarts: the strong attack of MLP checkpoints (:func:`strong_attack`).
      certify: MLP only — at every checkpoint run the certified :func:`advlip.attacks.pgd`
        from the strong δ and compute the top eigenvalue of the total and naive Hessians
        (:meth:`advlip.adversarial.AdversarialPoint.top_eigenvalue`, Lanczos).
      direction_fn: ``direction_fn(opt_state, params)`` → the gradient the optimiser
        actually followed at ``params`` (read after the update from there): e.g.
        :math:`\hat\nabla F_\gamma = \gamma(\theta - \hat E[\theta'])` of EntropySGD. Its ratios
        between consecutive iterates go to ``direction_ratio`` (length T − 1).
      progress: called with a line of text about ten times per run.

    The gradient ratio of step t needs :math:`\nabla L(\theta_{t+1})`, the gradient the
    next step uses anyway, so tracking costs one extra gradient per run.
    """
    spec = _spec(problem)
    steps = check_positive_int("steps", steps)
    if isinstance(optimizer, str):
        opt = make_optimizer(optimizer, float(learning_rate))
        opt_name, lr = optimizer, float(learning_rate)
    else:
        if not hasattr(optimizer, "init") or not hasattr(optimizer, "update"):
            raise ValueError(
                "optimizer must be a name in "
                f"{list(OPTIMIZERS)} or an optax GradientTransformation, "
                f"got {type(optimizer).__name__}"
            )
        opt = optax.with_extra_args_support(optimizer)
        opt_name, lr = optimizer_name or "custom", None
    X, y = problem.X, problem.y
    Xe, ye = (X, y) if eval_data is None else (jnp.asarray(eval_data[0]), jnp.asarray(eval_data[1]))
    if eval_data is not None:
        check_data(jnp.zeros(X.shape[1]), Xe, ye)
    eps = jnp.asarray(float(problem.eps))
    linear_kind = isinstance(spec, _LinearSpec)
    d = int(X.shape[1])

    if params is None:
        if linear_kind:
            rng = np.random.default_rng([seed, 17])
            params = jnp.asarray(0.1 * rng.standard_normal(problem.dim) / math.sqrt(d))
        else:
            params = problem.init(seed)
    elif linear_kind and np.shape(params) != (problem.dim,):
        raise ValueError(
            f"params must have shape ({problem.dim},) (w, then b when fit_bias), "
            f"got {np.shape(params)}"
        )
    theta = params
    state = opt.init(theta)
    k_attack = jnp.asarray(0 if linear_kind else int(problem.attack_steps))

    def evaluate(th):
        if linear_kind:
            return _linear_eval(th, X, y, eps, spec=spec)
        return _mlp_eval(th, X, y, eps, k_attack, spec=spec)

    lo = get_loss(spec.loss if linear_kind else problem.loss)
    n_ck = _checkpoints(steps, track_every)
    rec: dict[str, list] = {
        k: [] for k in ("loss", "clean", "robust", "gnorm", "ratio", "dt", "kink", "near")
    }
    ck: dict[str, list] = {k: [] for k in ("clean", "robust", "strong", "lt", "ln", "lerr", "info")}
    prev_flat = prev_g = None
    x_max = float(jnp.max(jnp.linalg.norm(X, axis=1)))
    bounds: list[float] = []
    flats: list[np.ndarray] = []
    dirs: list[np.ndarray] = []
    dir_thetas: list[np.ndarray] = []
    t0 = time.perf_counter()
    report_every = max(1, steps // 10)
    for t in range(steps + 1):
        loss, g, clean, robust = evaluate(theta)
        flat = np.asarray(ravel_pytree(theta)[0])
        gflat = np.asarray(ravel_pytree(g)[0])
        if linear_kind:
            flats.append(flat)
        rec["loss"].append(float(loss))
        rec["clean"].append(float(clean))
        rec["robust"].append(float(robust))
        rec["gnorm"].append(float(np.linalg.norm(gflat)))
        if prev_flat is not None:
            dt = float(np.linalg.norm(flat - prev_flat))
            ratio = float(np.linalg.norm(gflat - prev_g)) / dt if dt > 0 else math.nan
            rec["ratio"].append(ratio)
            rec["dt"].append(dt)
            if linear_kind:
                w0, w1 = prev_flat[:d], flat[:d]
                rec["kink"].append(_kinks_crossed(spec.p, w0, w1))
                rec["near"].append(float(np.mean(np.abs(w1) <= np.abs(w1 - w0))))
                bounds.append(_linear_ratio_bound(problem, lo, x_max, prev_flat, flat))
            else:
                rec["kink"].append(False)
                bounds.append(math.inf)
        if t in n_ck:
            _checkpoint(
                problem,
                spec,
                theta,
                Xe,
                ye,
                eps,
                k_attack,
                ck,
                seed=seed + 1000 * t,
                strong_steps=strong_steps,
                strong_restarts=strong_restarts,
                certify=certify,
            )
        if progress is not None and (t % report_every == 0 or t == steps):
            progress(
                f"  {label}step {t}/{steps}: L={float(loss):.4f} clean={float(clean):.3f} "
                f"robust={float(robust):.3f} ({time.perf_counter() - t0:.1f} s)"
            )
        if t == steps:
            break
        prev_flat, prev_g = flat, gflat
        theta_before = theta
        theta, state = _update(theta, state, g, X, y, opt=opt)
        if direction_fn is not None:
            dirs.append(np.asarray(ravel_pytree(direction_fn(state, theta_before))[0]))
            dir_thetas.append(flat)

    dir_ratio = [
        float(
            np.linalg.norm(dirs[t + 1] - dirs[t])
            / np.linalg.norm(dir_thetas[t + 1] - dir_thetas[t])
        )
        for t in range(len(dirs) - 1)
    ]
    nan_first = [math.nan] + rec["near"] if linear_kind else [math.nan] * (steps + 1)
    ratios, dts = np.asarray(rec["ratio"]), np.asarray(rec["dt"])
    if linear_kind:
        # rounding error of each R_t: both gradients' error bounds (advlip.linear), then the
        # norms and the division (advlip.tolerance.ratio_error) in the dtype used
        work = tolerance.working_dtype(flats, X)
        eg = np.asarray(_grad_errors(jnp.asarray(np.stack(flats)), X, y, eps, spec=spec))
        errors = [
            tolerance.ratio_error((eg[t] + eg[t + 1]) / 2.0, dts[t], ratios[t], dtype=work)
            if math.isfinite(ratios[t])
            else math.nan
            for t in range(steps)
        ]
    else:
        errors = [math.nan] * steps
    return TrainingHistory(
        kind="linear" if linear_kind else "mlp",
        p=spec.p,
        eps=float(problem.eps),
        optimizer=opt_name,
        learning_rate=lr,
        seed=int(seed),
        loss=np.asarray(rec["loss"]),
        clean_acc=np.asarray(rec["clean"]),
        robust_acc=np.asarray(rec["robust"]),
        grad_norm=np.asarray(rec["gnorm"]),
        grad_ratio=ratios,
        step_norm=dts,
        kink_crossed=np.asarray(rec["kink"], dtype=bool),
        ratio_bound=np.asarray(bounds),
        ratio_error=np.asarray(errors),
        near_zero=np.asarray(nan_first),
        checkpoint_step=np.asarray(n_ck),
        ck_clean_acc=np.asarray(ck["clean"]),
        ck_robust_acc=np.asarray(ck["robust"]),
        ck_strong_robust_acc=np.asarray(ck["strong"]),
        lambda_max_total=np.asarray(ck["lt"]),
        lambda_max_naive=np.asarray(ck["ln"]),
        lambda_error=np.asarray(ck["lerr"]),
        final_params=np.asarray(ravel_pytree(theta)[0]),
        direction_ratio=np.asarray(dir_ratio),
        info={
            "checkpoints": ck["info"],
            "train_attack_steps": int(k_attack),
            "d": d,
            "n_train": int(X.shape[0]),
            "n_eval": int(Xe.shape[0]),
        },
    )


@functools.partial(jax.jit, static_argnames=("spec",))
def _grad_errors(thetas, X, y, eps, *, spec: _LinearSpec):
    """:meth:`advlip.linear.LinearProblem.grad_error_bound` at every row of ``thetas``."""
    prob = LinearProblem(
        X=X, y=y, eps=eps, p=spec.p, loss=spec.loss, b=spec.b, fit_bias=spec.fit_bias
    )
    return jax.vmap(prob.grad_error_bound)(thetas)


def _linear_ratio_bound(problem: LinearProblem, lo, x_max, th0, th1):
    """The bound on R valid for the step θ0 → θ1 of a linear problem (SPEC §2), or inf."""
    d = problem.d
    bias = 1.0 if problem.fit_bias else 0.0
    eps = float(problem.eps)
    if problem.p == 2.0:  # LIN-L2: β(w1, w2), every pair with w1, w2 ≠ 0
        n0, n1 = float(np.linalg.norm(th0[:d])), float(np.linalg.norm(th1[:d]))
        if n0 == 0 or n1 == 0:
            return math.inf
        return lo.d2_max * ((x_max + eps) ** 2 + bias) + eps * lo.d1_abs_max / math.sqrt(n0 * n1)
    if problem.p in (1.0, math.inf) and not _kinks_crossed(problem.p, th0[:d], th1[:d]):
        # ‖w‖_q is linear on the segment (q ∈ {1, ∞}, no kink crossed): the Hessian is
        # mean ℓ'' a aᵀ with ‖a‖ ≤ ‖x‖ + ε‖u‖₂, ‖u‖₂ ≤ d^max(0, 1/2 - 1/p)
        return lo.d2_max * ((x_max + eps * norms.l2_radius(d, problem.p)) ** 2 + bias)
    return math.inf  # a kink crossed, or 1 < p < ∞, p ≠ 2: no bound used here


def _checkpoint(
    problem, spec, theta, Xe, ye, eps, k_attack, ck, *, seed, strong_steps, strong_restarts, certify
):
    if isinstance(spec, _LinearSpec):
        _, _, clean, robust = _linear_eval(theta, Xe, ye, eps, spec=spec)
        total, naive = _linear_hessians(theta, problem.X, problem.y, eps, spec=spec)
        ev_t = np.linalg.eigvalsh(np.asarray(total))
        ev_n = np.linalg.eigvalsh(np.asarray(naive))
        P = total.shape[0]
        # eigvalsh is backward stable: the error is γ_{P²}·‖H‖_F plus the formula's own
        # rounding (k ≈ 4d + n ops per entry on terms bounded by |H|)
        work = tolerance.working_dtype(theta, problem.X)
        err = tolerance.gamma(P * P + 4 * P + problem.X.shape[0], work) * float(
            np.linalg.norm(np.asarray(total)) + np.linalg.norm(np.asarray(naive))
        )
        ck["clean"].append(float(clean))
        ck["robust"].append(float(robust))
        ck["strong"].append(float(robust))  # the closed form is the exact worst case
        ck["lt"].append(float(ev_t[-1]))
        ck["ln"].append(float(ev_n[-1]))
        ck["lerr"].append(err)
        ck["info"].append({"attack": "closed form (exact)"})
        return
    loss_fn = spec.loss_fn
    delta, _ = _pgd_batch(
        theta, Xe, ye, jnp.zeros_like(Xe), eps, k_attack, loss_fn=loss_fn, p=spec.p
    )
    clean = np.mean(
        np.asarray(_mlp_margins_jit(spec.activation, theta, Xe, ye, jnp.zeros_like(Xe))) > 0
    )
    m_train = np.asarray(_mlp_margins_jit(spec.activation, theta, Xe, ye, delta))
    strong = strong_attack(
        loss_fn,
        theta,
        Xe,
        ye,
        eps=float(eps),
        p=spec.p,
        steps=strong_steps,
        restarts=strong_restarts,
        seed=seed,
        init=delta,
    )
    m_strong = np.asarray(_mlp_margins_jit(spec.activation, theta, Xe, ye, strong.delta))
    info: dict[str, Any] = {
        "attack": f"strong: {strong_steps} PGD steps from 0 and from {strong_restarts} random "
        "starts, plus the training attack's delta; worst case per example",
        "strong_beats_train": int(np.sum(m_strong < m_train)),
    }
    lt = ln = lerr = math.nan
    if certify:
        from advlip import adversarial, attacks

        Xt, yt = problem.X, problem.y
        d_tr, _ = _pgd_batch(
            theta, Xt, yt, jnp.zeros_like(Xt), eps, k_attack, loss_fn=loss_fn, p=spec.p
        )
        st = strong_attack(
            loss_fn,
            theta,
            Xt,
            yt,
            eps=float(eps),
            p=spec.p,
            steps=strong_steps,
            restarts=0,
            seed=seed,
            init=d_tr,
        )
        mlp_loss = problem.loss_fn
        att = attacks.pgd(
            mlp_loss,
            theta,
            Xt,
            yt,
            eps=float(eps),
            p=spec.p,
            init=st.delta,
            steps=0,
            refine_steps=60,
            newton_steps=6,
        )
        pt = adversarial.linearize(mlp_loss, theta, Xt, yt, eps=float(eps), p=spec.p, attack=att)
        et = pt.top_eigenvalue(hessian="total")
        en = pt.top_eigenvalue(hessian="naive")
        lt, ln = float(et.value), float(en.value)
        lerr = float(max(et.bound, en.bound))
        info.update(
            certified_converged=int(np.sum(np.asarray(att.converged))),
            determined=int(np.sum(pt.determined)),
            n=int(Xt.shape[0]),
            cases=pt.summary()["cases"],
        )
    ck["clean"].append(float(clean))
    ck["robust"].append(float(np.mean(m_train > 0)))
    ck["strong"].append(float(np.mean(m_strong > 0)))
    ck["lt"].append(lt)
    ck["ln"].append(ln)
    ck["lerr"].append(lerr)
    ck["info"].append(info)
