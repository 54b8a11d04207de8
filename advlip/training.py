r"""Adversarial training with optax, and the smoothness it meets on the way.

Adversarial training minimises

.. math:: L(\theta) = \operatorname{mean}_i \max_{\|\delta\|_p\le\varepsilon}
          \ell(x_i+\delta, y_i; \theta)

with the Danskin gradient (docs/theory/gen-danskin.md)
:math:`\nabla L(\theta) = \operatorname{mean}_i \nabla_\theta \ell(x_i + \delta_i^*, y_i; \theta)`,
fed to any optax optimiser: :math:`\theta_{t+1} = \theta_t + \mathrm{update}(\nabla L(\theta_t))`.
Full batch, so every step sees the same objective and the gradient ratio between
consecutive iterates (docs/theory/index.md)

.. math:: R_t = \frac{\|\nabla L(\theta_{t+1}) - \nabla L(\theta_t)\|}{\|\theta_{t+1} - \theta_t\|}

is a lower bound on any smoothness constant of :math:`L` on the path. :func:`train` takes
any problem with the members of :class:`TrainingProblem`; two are built in:

* :class:`advlip.linear.LinearProblem` — the attack is the closed form of
  docs/theory/closed-form.md,
  :math:`\delta^* = -y\varepsilon u(w)`; the loss, gradient, Hessian and robust accuracy
  (:math:`\tilde m_i = m_i - \varepsilon\|w\|_q > 0`) are exact. Along an L2 run every
  :math:`R_t` must stay under LIN-L2's :math:`\beta(w_t, w_{t+1})`
  (docs/theory/lin-l2.md); along an L∞ run
  :math:`R_t` stays under :math:`\ell''_{\max}((\max\|x\| + \varepsilon\sqrt d)^2 + [\text{bias}])`
  on every step whose segment crosses no kink hyperplane :math:`w_i = 0` (there
  :math:`\|w\|_1` is linear), and jumps by up to
  :math:`2\varepsilon|\overline{\ell'}|/\|\Delta\theta\|` on the steps that cross one
  (LIN-LINF, docs/theory/lin-linf.md). Both are recorded step by step
  (:meth:`advlip.linear.LinearProblem.path_bounds`).
* :class:`MLPProblem` — a small MLP (:class:`advlip.models.MLPLoss`); the training attack is
  :func:`advlip.attacks.pgd` with ``mode="light"``: steepest-ascent steps
  :math:`\delta \leftarrow \Pi_{B_p(\varepsilon)}(\delta + \alpha\,u(\nabla_x\ell))`,
  :math:`\alpha = 2.5\varepsilon/k` (Madry et al. 2018; phase 1 of the certified attack),
  compiled into the training step and keeping the best iterate. The *strong* evaluation
  attack (:func:`strong_attack`) runs more steps from zero, from random starts in the
  ball, and from the training attack's δ, and keeps the worst case per example, so its
  robust accuracy can never exceed the training attack's. With ``certify=True`` each
  checkpoint also runs the certified :func:`advlip.attacks.pgd` from that δ and reads the
  top eigenvalue of the total and of the naive Hessian (δ held fixed) from
  :mod:`advlip.adversarial` (docs/theory/general-models.md).

Budgets of different norms are matched by :func:`matched_eps`:
:math:`\varepsilon_p = \varepsilon_2 / d^{\max(0, 1/2 - 1/p)}`, the radius of the largest
:math:`L_p` ball inside the L2 ball of radius :math:`\varepsilon_2` (for p = ∞:
:math:`\varepsilon_\infty = \varepsilon_2/\sqrt d`, whose corners lie on the L2 sphere).

Randomness comes from explicit JAX keys (:mod:`advlip.keys`): the initial parameters are
``problem.init(key)`` and the strong attack of the checkpoint at step t draws from
``jax.random.fold_in(key, t)``.

Example:
    >>> import jax
    >>> from advlip import data, training
    >>> from advlip.linear import LinearProblem
    >>> key = jax.random.PRNGKey(0)
    >>> X, y = data.synthetic(key, n=32, d=3)
    >>> prob = LinearProblem(X=X, y=y, eps=0.2, p=2.0, fit_bias=True)
    >>> hist = training.train(prob, optimizer="adam", learning_rate=0.1, steps=20, key=key)
    >>> bool(hist.loss[-1] < hist.loss[0]), bool(all(hist.robust_acc <= hist.clean_acc))
    (True, True)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from advlip import attacks, keys, models, norms, tolerance
from advlip._validate import check_data, check_eps, check_p, check_positive_int

__all__ = [
    "OPTIMIZERS",
    "MATCHING",
    "matched_eps",
    "make_optimizer",
    "TrainingProblem",
    "MLPProblem",
    "StrongResult",
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

    Example:
        In :math:`\mathbb{R}^4` the L∞ ball inside the unit L2 ball has radius
        :math:`1/\sqrt 4`:

        >>> import math
        >>> from advlip import training
        >>> training.matched_eps(1.0, 4, math.inf), training.matched_eps(1.0, 4, 2)
        (0.5, 1.0)
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

    Example:
        One SGD step of size 0.1 from θ = 1 along the gradient 2:

        >>> import jax.numpy as jnp, optax
        >>> from advlip import training
        >>> opt = training.make_optimizer("sgd", 0.1)
        >>> opt is training.make_optimizer("sgd", 0.1)
        True
        >>> theta = jnp.array([1.0])
        >>> updates, _ = opt.update(jnp.array([2.0]), opt.init(theta), theta)
        >>> round(float(optax.apply_updates(theta, updates)[0]), 4)
        0.8
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


# --------------------------------------------------------------------------- the problem protocol


@runtime_checkable
class TrainingProblem(Protocol):
    r"""What :func:`train` needs of a problem: a structural type, any object with these members.

    :class:`advlip.linear.LinearProblem` (closed-form attack) and :class:`MLPProblem` (PGD)
    implement it. Register a problem as a JAX pytree, as both are, and the compiled
    functions of this module take it as an argument: one compilation per shape and
    static setting serves every dataset and ε. A problem that is not a pytree is closed
    over instead (one compilation per problem and run).

    Attributes:
      X: the training inputs, (n, d).
      y: their labels ±1, (n,).
      eps: the radius ε of the threat model :math:`B_p(\varepsilon)`.
      p: its norm.
      kind: a short name of the model family, written into the history (``"linear"``).
      attack_steps: steps of the training attack (0 for an exact one).

    Example:
        A structural check: the built-in problems qualify, an arbitrary object does not.

        >>> import jax.numpy as jnp
        >>> from advlip import training
        >>> from advlip.linear import LinearProblem
        >>> prob = LinearProblem(X=jnp.eye(2), y=jnp.array([1.0, -1.0]), eps=0.1, p=2.0)
        >>> Problem = training.TrainingProblem
        >>> isinstance(prob, Problem), isinstance(object(), Problem)
        (True, False)
    """

    X: Any
    y: Any
    eps: Any
    p: float
    kind: str
    attack_steps: int

    def init(self, key: jax.Array) -> Any:
        """Initial parameters (a pytree of float arrays) drawn from the JAX key ``key``."""
        ...

    def evaluate(self, params: Any, X: jax.Array, y: jax.Array) -> tuple[Any, Any, Any, Any]:
        r"""``(L, ∇L, clean accuracy, robust accuracy)`` on the data ``(X, y)``.

        :math:`L` is the mean adversarial loss under the problem's training attack,
        :math:`\nabla L` its Danskin gradient (a pytree like ``params``), the accuracies
        the fractions of examples classified correctly without and under that attack.
        Traceable: :func:`train` compiles it, and optimisers that evaluate gradients
        themselves (:func:`danskin_grad_fn`) call it on their own batches.
        """
        ...

    def checkpoint(
        self,
        params: Any,
        X: jax.Array,
        y: jax.Array,
        *,
        key: jax.Array,
        strong_steps: int,
        strong_restarts: int,
        certify: bool,
    ) -> dict[str, Any]:
        """What a checkpoint records on the evaluation data ``(X, y)``: a dict with
        ``clean_acc``, ``robust_acc`` (training attack), ``strong_robust_acc`` (a stronger
        attack, ``key`` its randomness), ``lambda_max_total``, ``lambda_max_naive``,
        ``lambda_error`` (top Hessian eigenvalues on the training data and their error;
        NaN where not computed) and ``info`` (a JSON-safe dict)."""
        ...

    def path_bounds(self, thetas: ArrayLike) -> dict[str, np.ndarray]:
        """Facts about the path of flat iterates ``thetas`` (T + 1, P): per step (length T)
        ``ratio_bound`` (a bound on :math:`R_t`, inf where none applies) and
        ``kink_crossed``; per iterate (length T + 1) ``near_zero`` (NaN where not defined)
        and ``grad_error`` (a bound on the rounding error of ∇L, NaN where none)."""
        ...


def _problem_error(problem: Any) -> ValueError:
    members = ("X", "y", "eps", "p", "kind", "attack_steps")
    methods = ("init", "evaluate", "checkpoint", "path_bounds")
    missing = [m for m in (*members, *methods) if not hasattr(problem, m)]
    return ValueError(
        "problem must be an advlip.linear.LinearProblem, an advlip.training.MLPProblem, or "
        "any object with the members of advlip.training.TrainingProblem; got "
        f"{type(problem).__name__}, which lacks {', '.join(missing)}"
    )


def _is_pytree(obj: Any) -> bool:
    return not jax.tree_util.treedef_is_leaf(jax.tree.structure(obj))


def _evaluate(problem, params, X, y):
    return tuple(problem.evaluate(params, X, y))


def _loss(problem, params, X, y):
    return problem.evaluate(params, X, y)[0]


def _loss_many(problem, thetas, template):
    unravel = ravel_pytree(template)[1]
    return lax.map(lambda th: problem.evaluate(unravel(th), problem.X, problem.y)[0], thetas)


_JITTED = {fn: jax.jit(fn) for fn in (_evaluate, _loss, _loss_many)}


def _compiled(problem: Any, fn: Callable) -> Callable:
    """``fn(problem, ...)`` compiled: a pytree problem is a traced argument (one program per
    shape and static setting); any other problem is closed over (one program per call here)."""
    if _is_pytree(problem):
        return functools.partial(_JITTED[fn], problem)
    return jax.jit(functools.partial(fn, problem))


# --------------------------------------------------------------------------- the MLP problem


def _mlp_margins(activation, params, X, y, delta):
    f = jax.vmap(lambda x: models.mlp(params, x, activation=activation))
    return y * f(X + delta)


_mlp_margins_jit = jax.jit(_mlp_margins, static_argnums=0)


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False)
class MLPProblem:
    r"""A binary dataset, a threat model and a small MLP: the adversarial loss of
    docs/theory/general-models.md.

    ``loss_fn`` is :class:`advlip.models.MLPLoss` ``(activation, loss)``; the network is
    ``d → widths… → 1`` (:func:`advlip.models.init_mlp`). ``attack_steps`` is the number
    of steps of the training attack, :func:`advlip.attacks.pgd` with ``mode="light"``.
    ``p`` ∈ {1, 2, ∞} (the attack projects onto the ball). Implements
    :class:`TrainingProblem`. A pytree: ``X``, ``y``, ``eps`` and ``attack_steps`` are its
    leaves (traced under ``jit``: one compilation serves every ε and step count), ``p``,
    ``widths``, ``activation`` and ``loss`` static.

    Example:
        A ``2 → 3 → 1`` tanh network; the training attack can only lower the accuracy:

        >>> import jax, jax.numpy as jnp
        >>> from advlip import training
        >>> X = jnp.array([[2.0, 1.0], [-2.0, -1.0], [0.5, -1.0], [-0.5, 1.0]])
        >>> y = jnp.array([1.0, -1.0, 1.0, -1.0])
        >>> prob = training.MLPProblem(X, y, eps=0.1, p=2.0, widths=(3,), attack_steps=5)
        >>> params = prob.init(jax.random.PRNGKey(0))
        >>> jax.tree.map(jnp.shape, params)
        [{'W': (3, 2), 'b': (3,)}, {'W': (1, 3), 'b': (1,)}]
        >>> L, grad, clean, robust = prob.evaluate(params, X, y)
        >>> bool(robust <= clean), jax.tree.structure(grad) == jax.tree.structure(params)
        (True, True)
    """

    X: Any
    y: Any
    eps: float
    p: float
    widths: tuple[int, ...] = (16,)
    activation: str = "tanh"
    loss: str = "softplus"
    attack_steps: int = 10

    #: The model family, as :func:`train` writes it into its history.
    kind: ClassVar[str] = "mlp"

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
        object.__setattr__(self, "eps", jnp.asarray(self.eps, dtype=X.dtype))
        widths = tuple(check_positive_int("widths[i]", int(w)) for w in self.widths)
        object.__setattr__(self, "widths", widths)
        check_positive_int("attack_steps", self.attack_steps)
        models.MLPLoss(self.activation, self.loss)  # validates both names

    def tree_flatten(self):
        return (self.X, self.y, self.eps, self.attack_steps), (
            self.p,
            self.widths,
            self.activation,
            self.loss,
        )

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)  # no validation: leaves may be tracers
        for name, value in zip(("X", "y", "eps", "attack_steps"), children, strict=True):
            object.__setattr__(obj, name, value)
        for name, value in zip(("p", "widths", "activation", "loss"), aux, strict=True):
            object.__setattr__(obj, name, value)
        return obj

    @property
    def loss_fn(self) -> models.MLPLoss:
        """The per-example loss for :mod:`advlip.attacks` and :mod:`advlip.adversarial`."""
        return models.MLPLoss(self.activation, self.loss)

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    def init(self, key: jax.Array) -> list[dict[str, jax.Array]]:
        """Initial parameters drawn from the JAX key ``key`` (:func:`advlip.models.init_mlp`)."""
        return models.init_mlp(keys.check_key(key), self.d, self.widths)

    def attack(self, params: Any, X: jax.Array, y: jax.Array) -> attacks.LightResult:
        """The training attack on ``(X, y)``: :func:`advlip.attacks.pgd`, ``mode="light"``,
        ``attack_steps`` steps from 0. Traceable."""
        return attacks.pgd(
            self.loss_fn,
            params,
            X,
            y,
            eps=self.eps,
            p=self.p,
            steps=self.attack_steps,
            mode="light",
        )

    def evaluate(self, params: Any, X: jax.Array, y: jax.Array):
        r"""``(L, ∇L, clean accuracy, robust accuracy)`` on ``(X, y)`` under the training attack.

        :math:`L` is the mean loss at the attack's δ (a lower bound on the max), :math:`\nabla L`
        Danskin's gradient there, δ held fixed (docs/theory/gen-danskin.md). Traceable.
        """
        lf = self.loss_fn
        delta = lax.stop_gradient(self.attack(params, X, y).delta)

        def mean_loss(pr):
            return jnp.mean(jax.vmap(lambda x, yi: lf(pr, x, yi))(X + delta, y))

        loss, g = jax.value_and_grad(mean_loss)(params)
        clean = _mlp_margins(self.activation, params, X, y, jnp.zeros_like(X)) > 0
        robust = _mlp_margins(self.activation, params, X, y, delta) > 0
        # fractions in the data's dtype (the mean of a bool array is float32 even under x64)
        return loss, g, jnp.mean(clean.astype(X.dtype)), jnp.mean(robust.astype(X.dtype))

    def checkpoint(
        self,
        params: Any,
        X: jax.Array,
        y: jax.Array,
        *,
        key: jax.Array,
        strong_steps: int = 50,
        strong_restarts: int = 4,
        certify: bool = False,
    ) -> dict[str, Any]:
        """Accuracies on ``(X, y)`` under the training attack and :func:`strong_attack`; with
        ``certify``, the certified :func:`advlip.attacks.pgd` on the training data from the
        strong δ and the top eigenvalues of the total and naive Hessians
        (:meth:`advlip.adversarial.AdversarialPoint.top_eigenvalue`, Lanczos)."""
        lf = self.loss_fn
        eps = float(self.eps)
        delta = self.attack(params, X, y).delta
        clean = np.mean(
            np.asarray(_mlp_margins_jit(self.activation, params, X, y, jnp.zeros_like(X))) > 0
        )
        m_train = np.asarray(_mlp_margins_jit(self.activation, params, X, y, delta))
        strong = strong_attack(
            lf,
            params,
            X,
            y,
            eps=eps,
            p=self.p,
            steps=strong_steps,
            restarts=strong_restarts,
            key=key,
            init=delta,
        )
        m_strong = np.asarray(_mlp_margins_jit(self.activation, params, X, y, strong.delta))
        info: dict[str, Any] = {
            "attack": f"strong: {strong_steps} PGD steps from 0 and from {strong_restarts} "
            "random starts, plus the training attack's delta; worst case per example",
            "strong_beats_train": int(np.sum(m_strong < m_train)),
        }
        lt = ln = lerr = math.nan
        if certify:
            from advlip import adversarial

            Xt, yt = self.X, self.y
            d_tr = self.attack(params, Xt, yt).delta
            st = strong_attack(
                lf, params, Xt, yt, eps=eps, p=self.p, steps=strong_steps, restarts=0, init=d_tr
            )
            att = attacks.pgd(
                lf,
                params,
                Xt,
                yt,
                eps=eps,
                p=self.p,
                init=st.delta,
                steps=0,
                refine_steps=60,
                newton_steps=6,
            )
            pt = adversarial.linearize(lf, params, Xt, yt, eps=eps, p=self.p, attack=att)
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
        return {
            "clean_acc": float(clean),
            "robust_acc": float(np.mean(m_train > 0)),
            "strong_robust_acc": float(np.mean(m_strong > 0)),
            "lambda_max_total": lt,
            "lambda_max_naive": ln,
            "lambda_error": lerr,
            "info": info,
        }

    def path_bounds(self, thetas: ArrayLike) -> dict[str, np.ndarray]:
        """No bound on the gradient ratio of an MLP is used: ``inf`` bounds, no kinks
        recorded, NaN ``near_zero`` and ``grad_error``."""
        T = int(np.shape(thetas)[0]) - 1
        return {
            "ratio_bound": np.full(T, math.inf),
            "kink_crossed": np.zeros(T, dtype=bool),
            "near_zero": np.full(T + 1, math.nan),
            "grad_error": np.full(T + 1, math.nan),
        }


# --------------------------------------------------------------------------- the strong attack


class StrongResult(NamedTuple):
    """The strong attack's worst case per example and how it was found.

    Example:
        ``delta`` (n, d), ``loss`` (n,) and ``source`` (n,), from :func:`strong_attack`:

        >>> import jax, jax.numpy as jnp
        >>> from advlip import models, training
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> res = training.strong_attack(models.LinearLoss(), params, X, y, eps=2.0, p=2.0,
        ...                              steps=10, restarts=2, key=jax.random.PRNGKey(0))
        >>> res.delta.shape, res.loss.shape, res.source.shape
        ((2, 2), (2,), (2,))
    """

    delta: jax.Array  # (n, d)
    loss: np.ndarray  # (n,)
    source: np.ndarray  # (n,) index of the winning start: 0 init, 1 zero, 2.. random


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
    key: jax.Array | None = None,
    init: ArrayLike | None = None,
) -> StrongResult:
    r"""A stronger attack than the training one: more steps and random restarts, worst case kept.

    Candidates per example, each an :func:`advlip.attacks.pgd` run with ``mode="light"``:
    ``init`` as given (the training attack's δ, projected onto the ball, not re-run), a
    ``steps``-step run from 0, and ``restarts`` runs of ``steps`` steps from points drawn
    uniformly in the ball (:func:`advlip.attacks.sample_ball` with ``key``, default
    ``PRNGKey(0)``). The candidate of largest loss wins, so the strong attack's loss is ≥
    the training attack's on every example: for a decreasing margin loss its margin is ≤,
    and its robust accuracy ≤.

    Example:
        For a linear model under the L2 ball every run ends at the maximiser
        :math:`\delta^* = -y\varepsilon w/\|w\| = \mp(1.2, 1.6)`, where both margins are 0
        and the softplus loss is log 2 (docs/theory/closed-form.md):

        >>> import jax, jax.numpy as jnp, numpy as np
        >>> from advlip import models, training
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> res = training.strong_attack(models.LinearLoss(), params, X, y, eps=2.0, p=2.0,
        ...                              steps=10, restarts=2, key=jax.random.PRNGKey(0))
        >>> np.round(np.asarray(res.delta, float), 4).tolist()
        [[-1.2, -1.6], [1.2, 1.6]]
        >>> tuple(round(float(v), 4) for v in res.loss)
        (0.6931, 0.6931)
    """
    key = jax.random.PRNGKey(0) if key is None else keys.check_key(key)
    restarts = check_positive_int("restarts", restarts, minimum=0)
    X = jnp.asarray(X)

    def run(steps, start=None):
        return attacks.pgd(
            loss_fn, params, X, y, eps=eps, p=p, steps=steps, init=start, mode="light"
        )

    runs = [] if init is None else [run(0, init)]  # 0 steps: the start and its loss
    runs.append(run(steps))
    if restarts:
        starts = attacks.sample_ball(key, (restarts, *X.shape), eps=eps, p=p)
        runs += [run(steps, starts[r]) for r in range(restarts)]
    L = np.stack([np.asarray(r.loss) for r in runs])  # (C, n)
    best = np.argmax(L, axis=0)
    D = jnp.stack([r.delta for r in runs])  # (C, n, d)
    delta = D[jnp.asarray(best), jnp.arange(X.shape[0])]
    source = best if init is not None else best + 1
    return StrongResult(delta, L[best, np.arange(X.shape[0])], source)


# --------------------------------------------------------------------------- losses of a problem


@functools.partial(jax.jit, static_argnames=("opt",))
def _update(theta, state, g, X, y, *, opt):
    updates, state = opt.update(g, state, theta, batch=(X, y))
    return optax.apply_updates(theta, updates), state


def _check_problem(problem: Any) -> None:
    if not isinstance(problem, TrainingProblem):
        raise _problem_error(problem)


def adversarial_loss(problem: TrainingProblem, params: Any) -> jax.Array:
    r""":math:`L(\theta)` with the problem's training attack on its own data: the closed form
    (linear, exact) or ``problem.attack_steps`` light PGD steps (MLP, a lower bound on the max).

    Example:
        A linear problem whose margins :math:`y\,w\cdot x` are both 1 at
        w = (0.3, 0.4), where ε‖w‖ = 2 · 0.5 = 1: under attack every margin is 0
        (docs/theory/closed-form.md).

        >>> import jax.numpy as jnp
        >>> from advlip import training
        >>> from advlip.linear import LinearProblem
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> prob = LinearProblem(X=X, y=y, eps=2.0, p=2.0)
        >>> round(float(training.adversarial_loss(prob, jnp.array([0.3, 0.4]))), 4)  # log 2
        0.6931
    """
    _check_problem(problem)
    params = jax.tree.map(jnp.asarray, params)
    return _compiled(problem, _loss)(params, problem.X, problem.y)


def ravel(params: Any) -> np.ndarray:
    """The parameters as one flat NumPy vector (``jax.flatten_util.ravel_pytree`` order).

    Example:
        Dict keys in sorted order: ``b`` before ``w``.

        >>> import jax.numpy as jnp
        >>> from advlip import training
        >>> training.ravel({"w": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)}).tolist()
        [3.0, 1.0, 2.0]
    """
    return np.concatenate([np.ravel(np.asarray(leaf)) for leaf in jax.tree.leaves(params)])


def unravel_mlp(flat: ArrayLike, d: int, widths: tuple[int, ...]) -> list[dict[str, Any]]:
    """Inverse of :func:`ravel` for :func:`advlip.models.init_mlp`'s pytree ``d → widths → 1``:
    layer by layer, ``W`` (out, in) then ``b`` (out,) (dict keys in sorted order). Traceable.

    Example:
        ``2 → 3 → 1`` has 2·3 + 3 + 3·1 + 1 = 13 parameters, and the round trip is exact:

        >>> import jax, jax.numpy as jnp
        >>> from advlip import models, training
        >>> params = models.init_mlp(jax.random.PRNGKey(0), 2, (3,))
        >>> flat = training.ravel(params)
        >>> back = training.unravel_mlp(flat, 2, (3,))
        >>> flat.shape, bool(jnp.all(training.ravel(back) == flat))
        ((13,), True)
    """
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


def adversarial_loss_many(problem: TrainingProblem, thetas: ArrayLike) -> jax.Array:
    r""":func:`adversarial_loss` at every row of ``thetas`` (K, P), flat parameters
    (:func:`ravel` order, that of ``problem.init``'s pytree), in one compiled program: for
    loss-landscape slices. The rows are evaluated one after another (``lax.map``), so
    memory stays that of one evaluation.

    Example:
        :func:`adversarial_loss`'s problem: w = (0.3, 0.4) gives log 2; the orthogonal
        w = (0.4, −0.3), also of norm 0.5, has margins 0.5, lowered to −0.5 by the
        attack: :math:`\log(1 + e^{0.5}) = 0.9741`.

        >>> import jax.numpy as jnp
        >>> from advlip import training
        >>> from advlip.linear import LinearProblem
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> prob = LinearProblem(X=X, y=y, eps=2.0, p=2.0)
        >>> L = training.adversarial_loss_many(prob, jnp.array([[0.3, 0.4], [0.4, -0.3]]))
        >>> tuple(round(float(v), 4) for v in L)
        (0.6931, 0.9741)
    """
    _check_problem(problem)
    template = problem.init(jax.random.PRNGKey(0))  # the pytree structure of the parameters
    size = int(ravel_pytree(template)[0].size)
    thetas = jnp.asarray(thetas)
    if thetas.ndim != 2 or thetas.shape[1] != size:
        raise ValueError(
            f"thetas must have shape (K, {size}) (K flat parameter vectors), got {thetas.shape}"
        )
    return _compiled(problem, _loss_many)(thetas, template)


def danskin_grad_fn(problem: TrainingProblem) -> Callable[..., Any]:
    r"""``grad_fn(params, X, y)`` → the Danskin gradient of ``problem``'s adversarial loss on (X, y).

    For optimisers that evaluate the gradient themselves, such as
    :func:`advlip.entropy_sgd.entropy_sgd` (its SGLD inner loop): :func:`train` passes
    ``batch=(X, y)`` to every ``update``, so the data are arguments, not constants
    baked into the compiled step. It is ``problem.evaluate(params, X, y)[1]``: the closed
    form for a linear problem (docs/theory/closed-form.md), Danskin's gradient at the
    training attack's δ for an MLP (docs/theory/gen-danskin.md).

    Example:
        A linear problem whose margins :math:`y\,w\cdot x` are both 1 at
        w = (0.3, 0.4), where ε‖w‖ = 2 · 0.5 = 1: under attack every margin is 0, where
        :math:`\ell' = -1/2`, so the gradient is
        :math:`-\tfrac12\operatorname{mean}_i(y_i x_i - \varepsilon w/\|w\|) = (-0.4, 0.3)`
        (docs/theory/closed-form.md).

        >>> import jax.numpy as jnp
        >>> from advlip import training
        >>> from advlip.linear import LinearProblem
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> prob = LinearProblem(X=X, y=y, eps=2.0, p=2.0)
        >>> grad_fn = training.danskin_grad_fn(prob)
        >>> tuple(round(float(g), 4) for g in grad_fn(jnp.array([0.3, 0.4]), X, y))
        (-0.4, 0.3)
    """
    _check_problem(problem)
    return lambda params, X, y: problem.evaluate(params, X, y)[1]


# --------------------------------------------------------------------------- history


def json_safe(x: Any) -> Any:
    """Plain JSON values: arrays to lists, non-finite floats to ``"nan"``, ``"inf"``, ``"-inf"``.

    Example:
        >>> import numpy as np
        >>> from advlip import training
        >>> training.json_safe({"a": np.array([1.0, np.nan]), "b": (np.inf, 2)})
        {'a': [1.0, 'nan'], 'b': ['inf', 2]}
    """
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
    ratio of the directions the optimiser followed at consecutive iterates. ``key``: the
    bits of the run's JAX key (``jax.random.key_data``; ``[0, N]`` for ``PRNGKey(N)``).

    Example:
        T = 5 steps: T + 1 iterates, T ratios, and checkpoints every ``T // 4`` steps:

        >>> import jax.numpy as jnp
        >>> from advlip import training
        >>> from advlip.linear import LinearProblem
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> prob = LinearProblem(X=X, y=y, eps=2.0, p=2.0)
        >>> hist = training.train(prob, optimizer="sgd", learning_rate=0.5, steps=5)
        >>> len(hist.loss), len(hist.grad_ratio), hist.steps, hist.checkpoint_step.tolist()
        (6, 5, 5, [0, 1, 2, 3, 4, 5])
        >>> import json  # to_dict is strict JSON: non-finite floats become strings
        >>> record = json.loads(json.dumps(hist.to_dict(), allow_nan=False))
        >>> near_zero = record["near_zero"]
        >>> near_zero[0]  # NaN at t = 0
        'nan'
    """

    kind: str
    p: float
    eps: float
    optimizer: str
    learning_rate: float | None
    key: list[int]
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


def _check_params_like(params: Any, template: Any) -> None:
    """``params`` has the pytree structure and leaf shapes of ``problem.init(key)``."""
    shapes = [np.shape(a) for a in jax.tree.leaves(template)]
    got = [np.shape(a) for a in jax.tree.leaves(params)]
    if jax.tree.structure(params) == jax.tree.structure(template) and got == shapes:
        return
    if len(shapes) == 1 and jax.tree_util.treedef_is_leaf(jax.tree.structure(template)):
        raise ValueError(
            f"params must have shape {shapes[0]} (that of problem.init(key); for a linear "
            f"problem w, then b when fit_bias), got {np.shape(params)}"
        )
    raise ValueError(
        f"params must have the structure and shapes of problem.init(key), {shapes}; got {got}"
    )


def train(
    problem: TrainingProblem,
    *,
    optimizer: str | optax.GradientTransformation = "adam",
    learning_rate: float = 0.05,
    steps: int = 100,
    key: jax.Array | None = None,
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
      problem: any :class:`TrainingProblem`: an :class:`advlip.linear.LinearProblem`
        (closed-form attack), an :class:`MLPProblem` (light PGD training attack), or your own.
      optimizer: a name in :data:`OPTIMIZERS` (with ``learning_rate``) or any optax
        ``GradientTransformation``; it is called as ``update(g, state, params,
        batch=(X, y))`` so transformations that need the data (EntropySGD with
        :func:`danskin_grad_fn`) get it.
      steps: optimiser steps T.
      key: the JAX PRNG key of the run (default ``PRNGKey(0)``): the initial parameters
        are ``problem.init(key)`` (when ``params`` is None; linear
        :math:`w \sim \mathcal N(0, 0.1^2/d)`, MLP :func:`advlip.models.init_mlp`), and the
        checkpoint at step t draws its strong attack from ``jax.random.fold_in(key, t)``.
      track_every: checkpoint spacing (default T/4; the first and last iterate always;
        0: no checkpoints).
      eval_data: (X, y) for the checkpoint accuracies (default the training set).
      strong_steps: steps of the strong attack of MLP checkpoints (:func:`strong_attack`).
      strong_restarts: its random restarts.
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

    Returns:
      The :class:`TrainingHistory` of the run.

    Example:
        Along an L2 run of a linear model every gradient ratio stays under LIN-L2's
        bound (docs/theory/lin-l2.md), up to the ratio's own rounding error:

        >>> import jax.numpy as jnp
        >>> from advlip import training
        >>> from advlip.linear import LinearProblem
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> prob = LinearProblem(X=X, y=y, eps=2.0, p=2.0)
        >>> hist = training.train(prob, optimizer="sgd", learning_rate=0.5, steps=5)
        >>> bool(jnp.all(hist.grad_ratio <= hist.ratio_bound + hist.ratio_error))
        True
    """
    _check_problem(problem)
    key = jax.random.PRNGKey(0) if key is None else keys.check_key(key)
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
    template = problem.init(key)
    if params is None:
        params = template
    else:
        _check_params_like(params, template)
        params = jax.tree.map(jnp.asarray, params)
    theta = params
    state = opt.init(theta)
    evaluate = _compiled(problem, _evaluate)

    n_ck = _checkpoints(steps, track_every)
    rec: dict[str, list] = {k: [] for k in ("loss", "clean", "robust", "gnorm", "ratio", "dt")}
    ck: dict[str, list] = {
        k: []
        for k in (
            "clean_acc",
            "robust_acc",
            "strong_robust_acc",
            "lambda_max_total",
            "lambda_max_naive",
            "lambda_error",
            "info",
        )
    }
    prev_flat = prev_g = None
    flats: list[np.ndarray] = []
    dirs: list[np.ndarray] = []
    dir_thetas: list[np.ndarray] = []
    t0 = time.perf_counter()
    report_every = max(1, steps // 10)
    for t in range(steps + 1):
        loss, g, clean, robust = evaluate(theta, X, y)
        flat = np.asarray(ravel_pytree(theta)[0])
        gflat = np.asarray(ravel_pytree(g)[0])
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
        if t in n_ck:
            point = problem.checkpoint(
                theta,
                Xe,
                ye,
                key=jax.random.fold_in(key, t),
                strong_steps=strong_steps,
                strong_restarts=strong_restarts,
                certify=certify,
            )
            for k, v in ck.items():
                v.append(point[k])
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
    ratios, dts = np.asarray(rec["ratio"]), np.asarray(rec["dt"])
    path = problem.path_bounds(np.stack(flats))
    # rounding error of each R_t: both gradients' error bounds (the problem's), then the
    # norms and the division (advlip.tolerance.ratio_error) in the dtype used
    work = tolerance.working_dtype(flats, X)
    eg = np.asarray(path["grad_error"], dtype=float)
    errors = [
        tolerance.ratio_error((eg[t] + eg[t + 1]) / 2.0, dts[t], ratios[t], dtype=work)
        if math.isfinite(ratios[t]) and math.isfinite(eg[t] + eg[t + 1])
        else math.nan
        for t in range(steps)
    ]
    return TrainingHistory(
        kind=str(problem.kind),
        p=float(problem.p),
        eps=float(problem.eps),
        optimizer=opt_name,
        learning_rate=lr,
        key=[int(b) for b in np.asarray(jax.random.key_data(key)).ravel()],
        loss=np.asarray(rec["loss"]),
        clean_acc=np.asarray(rec["clean"]),
        robust_acc=np.asarray(rec["robust"]),
        grad_norm=np.asarray(rec["gnorm"]),
        grad_ratio=ratios,
        step_norm=dts,
        kink_crossed=np.asarray(path["kink_crossed"], dtype=bool),
        ratio_bound=np.asarray(path["ratio_bound"], dtype=float),
        ratio_error=np.asarray(errors),
        near_zero=np.asarray(path["near_zero"], dtype=float),
        checkpoint_step=np.asarray(n_ck),
        ck_clean_acc=np.asarray(ck["clean_acc"]),
        ck_robust_acc=np.asarray(ck["robust_acc"]),
        ck_strong_robust_acc=np.asarray(ck["strong_robust_acc"]),
        lambda_max_total=np.asarray(ck["lambda_max_total"]),
        lambda_max_naive=np.asarray(ck["lambda_max_naive"]),
        lambda_error=np.asarray(ck["lambda_error"]),
        final_params=np.asarray(ravel_pytree(theta)[0]),
        direction_ratio=np.asarray(dir_ratio),
        info={
            "checkpoints": ck["info"],
            "train_attack_steps": int(problem.attack_steps),
            "d": int(X.shape[1]),
            "n_train": int(X.shape[0]),
            "n_eval": int(Xe.shape[0]),
        },
    )
