r"""Projected steepest ascent (PGD) on any per-example loss, with a KKT certificate per example.

The inner problem of SPEC §3 is, for every example :math:`(x_i, y_i)`,

.. math:: \delta_i^* \in \arg\max_{\|\delta\|_p \le \varepsilon} \ell(x_i + \delta, y_i; \theta),

for a ``loss_fn(params, x, y)`` of **one** example (``x`` of shape (d,), ``y`` a
scalar, ``params`` any pytree of float arrays: pure functions, flax or equinox
models alike). :func:`pgd` solves all examples at once (``vmap``), from several
starts, in three phases:

1. *steepest ascent* — ``steps`` projected steps along the steepest-ascent direction
   of the norm, :math:`\delta \leftarrow \Pi(\delta + \alpha\, u(g))`,
   :math:`u(g) \in \partial\|g\|_q`
   (``sign(g)`` for p = ∞, :math:`g/\|g\|` for p = 2, the largest coordinate for p = 1);
2. *projected gradient* — ``refine_steps`` steps :math:`\delta \leftarrow \Pi(\delta + s g)` with a
   backtracking step :math:`s` (sufficient increase), to converge rather than oscillate;
3. *Newton on the active face* — ``newton_steps`` Newton steps on the manifold the
   constraint defines at the current point (the interior, the L2 sphere, a face of the
   L∞ box or of the L1 ball), solved matrix-free by conjugate gradients with
   Hessian-vector products in x; a step is kept only if it lowers the KKT residual.

Projections are Euclidean (:func:`advlip.norms.project_ball`: the L1 ball by the
sort-based projection, not a rescaling). p ∈ {1, 2, ∞}.

**Certificate** (:func:`kkt`). At the returned δ with :math:`g = \nabla_x\ell(x+\delta)`,
the stationarity residual is the distance from :math:`g` to the normal cone of the
ball at δ (the norm of the projected gradient): :math:`\|g\|` in the interior,
:math:`\|g - (g\cdot\hat\delta)\hat\delta\|` on the L2 sphere, the free coordinates of
:math:`g` (and the clamped ones that point inward) for L∞, and
:math:`\|g - \mu\,\partial\|\delta\|_1\|` with μ fitted on the support for L1. It is 0
exactly at a KKT point. The Frank–Wolfe gap :math:`\varepsilon\|g\|_q - g\cdot\delta \ge 0`
bounds the suboptimality where the loss is concave in δ. Each example also
reports which constraints are active, the smallest multiplier (strict
complementarity), the distance to the nearest inactive constraint, and the case
of SPEC §3 it falls in (``interior`` G1, ``l2_boundary`` G2, ``linf_vertex`` G3, and the
faces ``linf_face``, ``l1_face``, ``l1_vertex``).

Exactness: for the linear model of SPEC §2 the attack returns the closed-form
:math:`\delta^* = -y\,\varepsilon\,u(w)` of :func:`advlip.linear.optimal_perturbation`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from advlip import attacks, models
    >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.0)}
    >>> X, y = jnp.array([[0.5, 1.0], [1.0, -1.0]]), jnp.array([1.0, -1.0])
    >>> res = attacks.pgd(models.LinearLoss(), params, X, y, eps=0.1, p=2)
    >>> bool(res.all_converged), res.cases
    (True, ('l2_boundary', 'l2_boundary'))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from advlip import norms, spectral, tolerance
from advlip._validate import check_eps, check_finite, check_p, check_positive_int

__all__ = [
    "KINDS",
    "SUPPORTED_P",
    "KKT",
    "kkt",
    "tangent_project",
    "AttackResult",
    "AttackNotConvergedError",
    "pgd",
    "sample_ball",
]

#: Norms the attack supports (a Euclidean projection onto the ball exists in closed form).
SUPPORTED_P: tuple[float, ...] = (1.0, 2.0, math.inf)

#: Case names, indexed by :attr:`KKT.kind` (SPEC §3: G1 interior, G2 L2 boundary, G3
#: L∞ vertex; faces are G1 restricted to the face; ``point`` is ε = 0).
KINDS: tuple[str, ...] = (
    "interior",
    "l2_boundary",
    "linf_vertex",
    "linf_face",
    "l1_vertex",
    "l1_face",
    "point",
)

LossFn = Callable[[Any, jax.Array, jax.Array], jax.Array]


class AttackNotConvergedError(ValueError):
    """The inner maximisation was not solved to the requested KKT residual."""


# --------------------------------------------------------------------------- jit with callables


class _Static:
    """The non-array part of a (possibly pytree) callable: hashable, compared by value."""

    __slots__ = ("treedef", "leaves")

    def __init__(self, treedef, leaves):
        self.treedef = treedef
        self.leaves = leaves

    def __hash__(self):
        return hash((self.treedef, self.leaves))

    def __eq__(self, other):
        return (
            isinstance(other, _Static)
            and self.treedef == other.treedef
            and self.leaves == other.leaves
        )


def _is_array(x: Any) -> bool:
    return isinstance(x, jax.Array | np.ndarray | np.generic)


def _partition(fn: Any) -> tuple[list, _Static]:
    """Split a callable into array leaves (traced under jit) and the rest (static), as
    ``equinox.filter_jit`` does: a pytree loss with an array field (say κ) is then
    compiled once for every value of that field."""
    leaves, treedef = jax.tree.flatten(fn)
    dyn = [leaf if _is_array(leaf) else None for leaf in leaves]
    static = tuple(None if _is_array(leaf) else leaf for leaf in leaves)
    try:
        hash(static)
    except TypeError:
        raise ValueError(
            "loss_fn must be hashable (a function, a frozen dataclass, or a pytree whose "
            "non-array leaves are hashable); got an unhashable part in "
            f"{type(fn).__name__}"
        ) from None
    return dyn, _Static(treedef, static)


def _combine(dyn: list, static: _Static) -> Any:
    leaves = [s if d is None else d for d, s in zip(dyn, static.leaves, strict=True)]
    return jax.tree.unflatten(static.treedef, leaves)


# --------------------------------------------------------------------------- validation


def _check_p_supported(p: Any) -> float:
    p = check_p(p)
    if p not in SUPPORTED_P:
        raise ValueError(
            f"p={p:g} is not supported; allowed: 1, 2 or inf (math.inf). The attack needs "
            "a Euclidean projection onto the Lp ball, which has a closed form only for these"
        )
    return p


def _check_params(params: Any) -> None:
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    if not leaves:
        raise ValueError("params must hold at least one array leaf (a pytree of float arrays)")
    for path, leaf in leaves:
        name = "params" + jax.tree_util.keystr(path)
        dtype = np.asarray(leaf).dtype if not hasattr(leaf, "dtype") else leaf.dtype
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(
                f"{name} has dtype {dtype}; allowed: floating dtypes (float64 under advlip). "
                "Integer or boolean parameters have no derivative: cast them with "
                "jax.tree.map(lambda a: a.astype(float), params), or close over them "
                "in loss_fn if they are not meant to be trained"
            )
        check_finite(name, leaf)


def _check_data(X: Any, y: Any) -> tuple[jax.Array, jax.Array]:
    X = jnp.asarray(X)
    y = jnp.asarray(y)
    if X.ndim != 2:
        raise ValueError(
            f"X must have shape (n, d) (a batch of examples), got shape {X.shape}; "
            "for one example use X[None, :] and y[None]"
        )
    n, d = X.shape
    if n == 0 or d == 0:
        raise ValueError(f"X must have n >= 1 examples of d >= 1 inputs, got shape {X.shape}")
    if y.shape != (n,):
        raise ValueError(
            f"Shape mismatch: X has shape {X.shape} but y has shape {y.shape}; expected ({n},) "
            "(one scalar label or target per example)"
        )
    check_finite("X", X)
    check_finite("y", y)
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(float)
    return X, y


def _check_loss_fn(loss_fn: Any, params: Any, X: jax.Array, y: jax.Array) -> None:
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable as loss_fn(params, x, y), got {type(loss_fn)}")
    try:
        out = jax.eval_shape(loss_fn, params, X[0], y[0])
    except Exception as err:  # noqa: BLE001 - re-raised with the calling convention
        raise ValueError(
            f"loss_fn(params, x, y) failed on one example (x of shape {X.shape[1:]}, "
            f"y of shape {y.shape[1:]}): {type(err).__name__}: {err}. advlip calls loss_fn "
            "on ONE example at a time and vmaps it over the batch"
        ) from err
    shape = getattr(out, "shape", None)
    if shape != ():
        raise ValueError(
            f"loss_fn must return a scalar (the loss of one example), got shape {shape}; "
            "allowed: shape (). If it returns per-class losses, reduce them; if it returns "
            "a batch, write it for one example — advlip vmaps over the batch itself"
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"loss_fn must return a floating scalar, got dtype {out.dtype}")


def _strong(tree: Any) -> Any:
    """Drop weak types (``jnp.asarray(2.0)`` is weakly typed, an unravelled vector is
    not): the abstract signature, hence the compiled program, is then the same."""
    return jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.asarray(a).dtype), tree)


def _check_problem(loss_fn, params, X, y, eps, p):
    """Validate a problem; returns ``(params, X, y, p)`` in canonical form."""
    p = _check_p_supported(p)
    check_eps(eps)
    X, y = _check_data(X, y)
    _check_params(params)
    params = _strong(params)
    _check_loss_fn(loss_fn, params, X, y)
    return params, _strong(X), _strong(y), p


# --------------------------------------------------------------------------- KKT certificate


class KKT(NamedTuple):
    """First-order optimality of δ for the inner maximisation, per example.

    Attributes:
      residual: stationarity residual, the 2-norm of the projected gradient (0 at KKT).
      gap: Frank–Wolfe gap :math:`\\varepsilon\\|g\\|_q - g\\cdot\\delta` (≥ 0).
      active: whether the ball constraint is active (with an outward gradient).
      n_active: active constraints (L∞: clamped coordinates; L1: support size; L2: 0/1).
      tangent_dim: dimension of the face δ can move on while staying optimal.
      mask, normal: the tangent projector :math:`P v = m\\odot v - \\nu(\\nu\\cdot(m\\odot v))`.
      mu: curvature of the constraint, the L2 multiplier
        :math:`\\mu = g\\cdot\\delta/\\|\\delta\\|^2`
        (0 for the flat faces of L1/L∞).
      multiplier: the smallest multiplier of an active constraint (``inf`` if none):
        strict complementarity needs it > 0.
      slack: Euclidean distance to the nearest inactive constraint (``inf`` if none).
      kind: index into :data:`KINDS`.
    """

    residual: jax.Array
    gap: jax.Array
    active: jax.Array
    n_active: jax.Array
    tangent_dim: jax.Array
    mask: jax.Array
    normal: jax.Array
    mu: jax.Array
    multiplier: jax.Array
    slack: jax.Array
    kind: jax.Array


def _kkt_one(delta: jax.Array, g: jax.Array, eps: jax.Array, p: float) -> KKT:
    d = delta.shape[0]
    dt = delta.dtype
    inf = jnp.asarray(jnp.inf, dtype=dt)
    q = norms.dual_exponent(p)
    gap = eps * norms.lp_norm(g, q) - g @ delta
    ones = jnp.ones(d, dtype=dt)
    zeros = jnp.zeros(d, dtype=dt)
    if p == 2.0:
        nrm = jnp.linalg.norm(delta)
        # the projection rescales by eps/‖v‖: ‖δ‖ = eps to γ_{2d+8}
        # (the norm: 2d ops, a sqrt, a divide and the scaling)
        on = nrm >= eps * (1.0 - tolerance.gamma(2 * d + 8))
        gd = g @ delta
        active = on & (gd > 0)
        nhat = delta / jnp.where(nrm > 0, nrm, 1.0)
        gn = g @ nhat
        tang = g - gn * nhat
        residual = jnp.where(active, jnp.linalg.norm(tang), jnp.linalg.norm(g))
        mu = jnp.where(active, gd / jnp.where(nrm > 0, nrm * nrm, 1.0), 0.0)
        mask = ones
        normal = jnp.where(active, nhat, zeros)
        multiplier = jnp.where(active, gn, inf)
        slack = jnp.where(active, inf, eps - nrm)
        n_active = active.astype(jnp.int32)
        tangent_dim = jnp.where(active, d - 1, d)
        kind = jnp.where(active, 1, 0)
    elif math.isinf(p):
        at_bound = jnp.abs(delta) >= eps * (
            1.0 - tolerance.gamma(2)
        )  # clip is exact; 2 ops of slack
        outward = jnp.sign(delta) * g
        clamped = at_bound & (outward > 0)
        free = ~clamped
        residual = jnp.linalg.norm(jnp.where(clamped, 0.0, g))
        mask = free.astype(dt)
        normal = zeros
        mu = jnp.asarray(0.0, dtype=dt)
        multiplier = jnp.min(jnp.where(clamped, outward, inf))
        slack = jnp.min(jnp.where(free, eps - jnp.abs(delta), inf))
        n_active = jnp.sum(clamped).astype(jnp.int32)
        active = n_active > 0
        tangent_dim = d - n_active
        kind = jnp.where(n_active == 0, 0, jnp.where(n_active == d, 2, 3))
    else:  # p == 1
        l1 = jnp.sum(jnp.abs(delta))
        # sort-based projection: a cumulative sum of d terms and a threshold, γ_{4d+8}
        on = l1 >= eps * (1.0 - tolerance.gamma(4 * d + 8))
        S = delta != 0
        s = jnp.sign(delta)
        nS = jnp.sum(S)
        mu_fit = jnp.sum(jnp.where(S, s * g, 0.0)) / jnp.maximum(nS, 1)
        active = on & (mu_fit > 0)
        off_max = jnp.max(jnp.where(S, 0.0, jnp.abs(g)))
        on_dev = jnp.where(S, g - mu_fit * s, 0.0)
        off_excess = jnp.where(S, 0.0, jnp.maximum(0.0, jnp.abs(g) - mu_fit))
        residual = jnp.where(
            active, jnp.sqrt(on_dev @ on_dev + off_excess @ off_excess), jnp.linalg.norm(g)
        )
        mask = jnp.where(active, S.astype(dt), ones)
        normal = jnp.where(active, jnp.where(S, s, 0.0) / jnp.sqrt(jnp.maximum(nS, 1)), zeros)
        mu = jnp.asarray(0.0, dtype=dt)
        multiplier = jnp.where(active, jnp.minimum(mu_fit, mu_fit - off_max), inf)
        slack = jnp.where(
            active, jnp.min(jnp.where(S, jnp.abs(delta), inf)), (eps - l1) / np.sqrt(d)
        )
        n_active = jnp.where(active, nS, 0).astype(jnp.int32)
        tangent_dim = jnp.where(active, nS - 1, d)
        kind = jnp.where(active, jnp.where(nS == 1, 4, 5), 0)
    point = eps <= 0
    return KKT(
        residual=jnp.where(point, 0.0, residual),
        gap=jnp.where(point, 0.0, gap),
        active=jnp.where(point, True, active),
        n_active=jnp.where(point, d, n_active).astype(jnp.int32),
        tangent_dim=jnp.where(point, 0, tangent_dim).astype(jnp.int32),
        mask=jnp.where(point, zeros, mask),
        normal=jnp.where(point, zeros, normal),
        mu=jnp.where(point, 0.0, mu),
        multiplier=jnp.where(point, inf, multiplier),
        slack=jnp.where(point, inf, slack),
        kind=jnp.where(point, 6, kind).astype(jnp.int32),
    )


def kkt(delta: ArrayLike, grad_x: ArrayLike, *, eps: ArrayLike, p: float) -> KKT:
    r"""The KKT certificate of perturbations ``delta`` given :math:`g = \nabla_x\ell(x+\delta)`.

    ``delta`` and ``grad_x`` have shape (d,) or (n, d); every field of the result has
    the leading shape. See :class:`KKT` and the module docstring for the formulas.

    Example:
        >>> import jax.numpy as jnp
        >>> from advlip import attacks
        >>> c = attacks.kkt(jnp.array([0.6, 0.8]), jnp.array([3.0, 4.0]), eps=1.0, p=2)
        >>> float(c.residual), attacks.KINDS[int(c.kind)]
        (0.0, 'l2_boundary')
    """
    p = _check_p_supported(p)
    check_eps(eps)
    delta = jnp.asarray(delta, dtype=float)
    grad_x = jnp.asarray(grad_x, dtype=float)
    if delta.shape != grad_x.shape or delta.ndim not in (1, 2):
        raise ValueError(
            f"delta and grad_x must have the same shape (d,) or (n, d), got {delta.shape} "
            f"and {grad_x.shape}"
        )
    eps = np.float64(eps)
    if delta.ndim == 1:
        return _kkt_jit(delta, grad_x, eps, p=p)
    return _kkt_batch_jit(delta, grad_x, eps, p)


_kkt_jit = jax.jit(_kkt_one, static_argnames=("p",))
_kkt_batch_jit = jax.jit(jax.vmap(_kkt_one, in_axes=(0, 0, None, None)), static_argnums=(3,))


def tangent_project(c: KKT, v: jax.Array) -> jax.Array:
    """Apply the tangent projector of a (one-example) certificate to ``v`` (d,)."""
    mv = c.mask * v
    return mv - c.normal * (c.normal @ mv)


# --------------------------------------------------------------------------- the attack


def _project(v: jax.Array, eps: jax.Array, p: float) -> jax.Array:
    out = norms.project_ball(v, eps=eps, p=p)
    if p == 1.0:
        # The sort-based L1 projection rounds relative to ‖v‖₁, which may exceed ε by
        # orders of magnitude after a long step: the result can miss the sphere by
        # ~1e-13·ε either way. Where the constraint is active (‖v‖₁ > ε) a radial rescale
        # puts it back on ‖δ‖₁ = ε to a few ulps, so the KKT certificate sees the face.
        l1 = jnp.sum(jnp.abs(out))
        active = jnp.sum(jnp.abs(v)) > eps
        out = jnp.where(active, out * (eps / jnp.where(l1 > 0, l1, 1.0)), out)
    # B_p(0) = {0}; the projections divide by ‖v‖ and would give 0/0 there
    return jnp.where(eps > 0, out, jnp.zeros_like(out))


def _steepest(g: jax.Array, p: float) -> jax.Array:
    return norms.dual_direction(g, q=norms.dual_exponent(p))


# Inside the compiled attack, p is a traced branch index (0: p=1, 1: p=2, 2: p=∞) so
# that one program serves every norm; the index is the same for every example, so under
# vmap lax.switch stays a real conditional and runs one branch.
_P_ORDER: tuple[float, ...] = (1.0, 2.0, math.inf)


def _p_index(p: float) -> int:
    return _P_ORDER.index(p)


def _kkt_any(delta, g, eps, pidx) -> KKT:
    branches = [lambda a, b, e, q=q: _kkt_one(a, b, e, q) for q in _P_ORDER]
    return lax.switch(pidx, branches, delta, g, eps)


def _project_any(v, eps, pidx) -> jax.Array:
    return lax.switch(pidx, [lambda a, e, q=q: _project(a, e, q) for q in _P_ORDER], v, eps)


def _steepest_any(g, pidx) -> jax.Array:
    return lax.switch(pidx, [lambda a, q=q: _steepest(a, q) for q in _P_ORDER], g)


def sample_ball(key: jax.Array, shape: tuple[int, ...], *, eps: ArrayLike, p: float) -> np.ndarray:
    r"""Points drawn uniformly from :math:`B_p(\varepsilon) \subset \mathbb{R}^d`, p ∈ {1, 2, ∞}.

    One point per leading index: ``shape = (..., d)``.

    Drawn with NumPy from a generator seeded by the bits of the JAX ``key``, so the
    draw replays from the key and costs no compilation (a threefry sampler inside the
    attack's compiled program doubles its compile time).
    """
    p = _check_p_supported(p)
    eps = float(check_eps(eps))
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    d = shape[-1]
    if math.isinf(p):
        return eps * rng.uniform(-1.0, 1.0, size=shape)
    if p == 2.0:
        u = rng.standard_normal(size=shape)
        r = rng.uniform(size=(*shape[:-1], 1)) ** (1.0 / d)
        return eps * r * u / np.linalg.norm(u, axis=-1, keepdims=True)
    # uniform in the L1 ball: d+1 exponential spacings, random signs
    e = rng.exponential(size=(*shape[:-1], d + 1))
    sgn = rng.choice([-1.0, 1.0], size=shape)
    return eps * sgn * e[..., :d] / e.sum(axis=-1, keepdims=True)


class _Config(NamedTuple):
    """Static (shape-determining) options of the compiled attack; the phase lengths are
    traced, so one compiled program serves every ``steps``/``refine_steps``/``newton_steps``."""

    cg_maxiter: int
    restarts: int
    random_start: bool
    lanczos_steps: int
    dense: bool  # solve the d×d systems in x densely (small d) rather than by CG/Lanczos


def _newton_direction(hvp, c: KKT, g: jax.Array, cg_maxiter: int) -> jax.Array:
    r"""Solve :math:`P(\mu I - H)P\,s = P g` on the tangent space (CG on the SPD operator
    :math:`P(\mu I - H)P + (I - P)`); the ascent step of Newton's method on the face."""

    def op(w):
        pw = tangent_project(c, w)
        return c.mu * pw - tangent_project(c, hvp(pw)) + (w - pw)

    s, _ = spectral.cg(op, tangent_project(c, g), maxiter=cg_maxiter)
    return tangent_project(c, s)


def _dense_tangent(H: jax.Array, c: KKT) -> tuple[jax.Array, jax.Array]:
    r"""``(A + I - P, P)`` with :math:`A = P(\mu I - H)P` (symmetrised), dense."""
    d = H.shape[0]
    eye = jnp.eye(d, dtype=H.dtype)
    P = jnp.diag(c.mask) - jnp.outer(c.normal, c.normal)
    A = P @ (c.mu * eye - 0.5 * (H + H.T)) @ P
    return A + eye - P, P


def _solve_one(loss_fn, params, x, y, delta0, eps, pidx, alpha, counts, cfg: _Config):
    """All three phases from one start, for one example; ``counts`` = (steps, refine, newton),
    ``pidx`` the index of p in ``(1, 2, ∞)``.

    One loop: each iteration projects the proposed point onto the ball and evaluates it
    (value, gradient, KKT and — dense mode — the d×d Hessian in x), accepts or rejects
    it by the rule of the phase that proposed it, and proposes the next one by the rule
    of the current phase. The model's derivatives and the projection appear once in the
    compiled program, which keeps it small. Returns ``(delta, value, grad_x, kkt, H_xx)``
    (``H_xx`` is a 0×0 array in CG mode).
    """

    def f(dl):
        return loss_fn(params, x + dl, y)

    grad = jax.grad(f)
    vg = jax.value_and_grad(f)
    n1, n2, n3 = counts[0], counts[1], counts[2]

    def evaluate(dl):
        v, g = vg(dl)
        H = jax.jacfwd(grad)(dl) if cfg.dense else jnp.zeros((0, 0), dtype=dl.dtype)
        return v, g, H, _kkt_any(dl, g, eps, pidx)

    def phase_of(k):
        return jnp.where(k < n1, 0, jnp.where(k < n1 + n2, 1, 2)).astype(jnp.int32)

    def steepest(ops):
        dl, g, H, c, s = ops
        return dl + alpha * _steepest_any(g, pidx)

    def projected_gradient(ops):
        dl, g, H, c, s = ops
        return dl + s * g

    def newton(ops):
        dl, g, H, c, s = ops
        if cfg.dense:
            M, P = _dense_tangent(H, c)
            step = P @ jnp.linalg.solve(M, P @ g)
        else:
            hvp = lambda w: jax.jvp(grad, (dl,), (w,))[1]  # noqa: E731
            step = _newton_direction(hvp, c, g, cfg.cg_maxiter)
        new = dl + step
        # on the L2 sphere, retract radially (the projection does exactly that)
        return new

    def body(k, state):
        cur, raw, last = state
        dl, v, g, H, c, s = cur
        cand = _project_any(raw, eps, pidx)
        vn, gn, Hn, cn = evaluate(cand)
        step = cand - dl
        # Phase 1 (steepest ascent) keeps every step. Phase 2 keeps a step on sufficient
        # increase f(new) >= f(δ) + ‖step‖²/(2s); the slack of a few ulps of |f| keeps the
        # test from rejecting every step once the increase is below the rounding of f (an
        # algorithmic choice: it affects speed, not the certificate). Phase 3 (Newton)
        # keeps a step only if it lowers the KKT residual.
        slack = 16.0 * tolerance.UNIT_ROUNDOFF * (jnp.abs(v) + jnp.abs(vn))
        increase = vn >= v + (step @ step) / (2.0 * jnp.maximum(s, 1e-300)) - slack
        finite = jnp.isfinite(vn) & jnp.all(jnp.isfinite(gn))
        ok = finite & jnp.where(
            last <= 0, True, jnp.where(last == 1, increase, cn.residual < c.residual)
        )
        keep = lambda a, b: jnp.where(ok, a, b)  # noqa: E731
        gnorm = jnp.linalg.norm(gn)
        s = jnp.where(
            last < 0,
            eps / jnp.where(gnorm > 0, gnorm, 1.0),
            jnp.where(last == 1, jnp.where(ok, 1.5 * s, 0.5 * s), s),
        )
        cur = (
            keep(cand, dl),
            keep(vn, v),
            keep(gn, g),
            keep(Hn, H),
            jax.tree.map(keep, cn, c),
            s,
        )
        phase = phase_of(k)
        ops = (cur[0], cur[2], cur[3], cur[4], cur[5])
        nxt = lax.switch(phase, (steepest, projected_gradient, newton), ops)
        return cur, nxt, phase

    shapes = jax.eval_shape(evaluate, delta0)
    zeros = lambda sd: jnp.zeros(sd.shape, sd.dtype)  # noqa: E731
    v0, g0, H0, c0 = jax.tree.map(zeros, shapes)
    cur0 = (delta0, v0, g0, H0, c0, jnp.asarray(1.0, dtype=delta0.dtype))
    cur, _, _ = lax.fori_loop(
        0, n1 + n2 + n3 + 1, body, (cur0, delta0, jnp.asarray(-1, dtype=jnp.int32))
    )
    dl, v, g, H, c, _ = cur
    return dl, v, g, c, H


def _tangent_spectrum(hvp, c: KKT, start: jax.Array, num_steps: int):
    r"""Extreme eigenvalues of :math:`A = P(\mu I - H_{xx})P` on the tangent space, by
    Lanczos from :math:`P\cdot` ``start`` limited to the tangent dimension; (inf, 0, 0)
    when the tangent space is {0} (a vertex)."""

    def A(w):
        pw = tangent_project(c, w)
        return c.mu * pw - tangent_project(c, hvp(pw))

    q0 = tangent_project(c, start)
    q0 = jnp.where(jnp.linalg.norm(q0) > 0, q0, start)
    res = spectral.lanczos(A, q0, num_steps=num_steps, max_steps=c.tangent_dim)
    none = c.tangent_dim == 0
    return (
        jnp.where(none, jnp.inf, res.smallest),
        jnp.where(none, 0.0, res.largest),
        jnp.where(none, 0.0, jnp.maximum(res.smallest_bound, res.largest_bound)),
    )


def _tangent_spectrum_dense(H: jax.Array, c: KKT):
    r"""Dense variant of :func:`_tangent_spectrum`: eigenvalues of :math:`A + \sigma(I - P)` with
    σ above the spectrum of A, so the tangent eigenvalues come first in ascending order.
    The bound is the backward error of the symmetric eigensolver, :math:`\gamma_{d^2}\|A\|_F`."""
    d = H.shape[0]
    eye = jnp.eye(d, dtype=H.dtype)
    P = jnp.diag(c.mask) - jnp.outer(c.normal, c.normal)
    A = P @ (c.mu * eye - 0.5 * (H + H.T)) @ P
    fro = jnp.sqrt(jnp.sum(A * A))
    sigma = 2.0 * fro + 1.0
    vals = jnp.linalg.eigvalsh(A + sigma * (eye - P))
    none = c.tangent_dim == 0
    top = vals[jnp.maximum(c.tangent_dim - 1, 0)]
    return (
        jnp.where(none, jnp.inf, vals[0]),
        jnp.where(none, 0.0, top),
        jnp.where(none, 0.0, tolerance.gamma(d * d + 8) * fro),
    )


def _pgd_batch(
    static, dyn, params, X, y, starts, eps, alpha, counts, start_vec, pidx, rtol, atol, cfg
):
    loss_fn = _combine(dyn, static)
    n, d = X.shape
    R = cfg.restarts
    # every (example, start) pair is one row of a single batch: no nested vmap
    rows_x = jnp.repeat(X, R, axis=0)
    rows_y = jnp.repeat(y, R, axis=0)
    run = jax.vmap(
        lambda x, yi, s: _solve_one(loss_fn, params, x, yi, s, eps, pidx, alpha, counts, cfg)
    )
    deltas, vals, grads, cs, Hs = run(rows_x, rows_y, starts.reshape(n * R, d))
    vals = vals.reshape(n, R)
    vals_ok = jnp.where(jnp.isfinite(vals), vals, -jnp.inf)
    best = jnp.argmax(vals_ok, axis=1)
    spread = jnp.max(vals_ok, axis=1) - jnp.min(vals_ok, axis=1)
    rows = jnp.arange(n) * R + best
    pick = lambda a: a[rows]  # noqa: E731
    delta, val, g, c = pick(deltas), pick(vals.reshape(-1)), pick(grads), jax.tree.map(pick, cs)
    H = pick(Hs)

    def analyse(x, yi, dl, ci, Hi):
        z = x + dl
        gx = lambda zz: jax.grad(loss_fn, argnums=1)(params, zz, yi)  # noqa: E731
        if cfg.dense:
            lo, hi, bound = _tangent_spectrum_dense(Hi, ci)
        else:
            hvp = lambda w: jax.jvp(gx, (z,), (w,))[1]  # noqa: E731
            lo, hi, bound = _tangent_spectrum(hvp, ci, start_vec, cfg.lanczos_steps)
        g_clean = jax.grad(loss_fn, argnums=1)(params, x, yi)
        g_theta = jax.grad(loss_fn)(params, z, yi)
        return lo, hi, bound, jnp.linalg.norm(g_clean), g_theta

    lo, hi, bound, g0, gth = jax.vmap(analyse)(X, y, delta, c, H)
    gth = jax.tree.map(lambda a: jnp.mean(a, axis=0), gth)
    tol = atol + rtol * g0
    return delta, val, g, best, spread, c, tol, c.residual <= tol, lo, hi, bound, gth


_pgd_jit = jax.jit(_pgd_batch, static_argnames=("static", "cfg"))


def _start_vector(d: int) -> np.ndarray:
    # A fixed generic start for the tangent-space Lanczos (no PRNG in the compiled code).
    return np.random.default_rng(20210301).standard_normal(d)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AttackResult:
    """The attack on every example and its certificate.

    Attributes (leading axis n, one row per example):
      delta: the perturbations, (n, d).
      loss: :math:`\\ell(x_i + \\delta_i)`, (n,).
      grad_x: :math:`\\nabla_x\\ell(x_i+\\delta_i)`, (n, d).
      kkt: the :class:`KKT` certificate (residual, gap, active set, case…).
      tol: the residual each example had to reach to count as converged, (n,):
        ``atol + rtol * ‖∇_x ℓ(x_i)‖`` (the clean input gradient sets the scale).
      converged: ``kkt.residual <= tol``.
      restart: which start won; spread: best minus worst final loss over the starts
        (a large spread means several local maxima: the global one is not certain).
      tangent_min, tangent_max, tangent_bound: extreme eigenvalues of
        :math:`P(\\mu I - H_{xx})P` on the tangent space of the active face (Lanczos,
        exact to rounding for tangent dimension ≤ 64; ``inf``/0 at a vertex) and
        their error bound: the second-order condition is ``tangent_min > 0``.
      danskin_grad: :math:`\\operatorname{mean}_i \\nabla_\\theta \\ell(x_i + \\delta_i)`, a pytree
        like ``params`` (SPEC G0 where the maximisers are unique).
      eps, p: the threat model.
    """

    delta: jax.Array
    loss: jax.Array
    grad_x: jax.Array
    kkt: KKT
    tol: jax.Array
    converged: jax.Array
    restart: jax.Array
    spread: jax.Array
    tangent_min: jax.Array
    tangent_max: jax.Array
    tangent_bound: jax.Array
    danskin_grad: Any
    eps: jax.Array
    p: float = dataclasses.field(metadata=dict(static=True))

    @property
    def residual(self) -> jax.Array:
        return self.kkt.residual

    @property
    def all_converged(self) -> bool:
        return bool(np.all(np.asarray(self.converged)))

    @property
    def cases(self) -> tuple[str, ...]:
        """The SPEC §3 case of every example (see :data:`KINDS`)."""
        return tuple(KINDS[int(k)] for k in np.asarray(self.kkt.kind))

    def summary(self) -> dict[str, Any]:
        """Plain numbers for a report: worst residual, counts per case, convergence."""
        res = np.asarray(self.kkt.residual)
        counts: dict[str, int] = {}
        for case in self.cases:
            counts[case] = counts.get(case, 0) + 1
        return {
            "n": int(res.size),
            "converged": int(np.sum(np.asarray(self.converged))),
            "max_residual": float(res.max()),
            "max_gap": float(np.asarray(self.kkt.gap).max()),
            "max_spread": float(np.asarray(self.spread).max()),
            "min_tangent_curvature": float(np.asarray(self.tangent_min).min()),
            "cases": counts,
        }

    def require_converged(self) -> None:
        """Raise :class:`AttackNotConvergedError` unless every example converged."""
        conv = np.asarray(self.converged)
        if conv.all():
            return
        bad = np.flatnonzero(~conv)
        res, tol = np.asarray(self.kkt.residual), np.asarray(self.tol)
        rows = ", ".join(f"#{i}: residual {res[i]:.3g} > tol {tol[i]:.3g}" for i in bad[:5])
        raise AttackNotConvergedError(
            f"the attack did not converge on {bad.size} of {conv.size} example(s) ({rows}"
            f"{', …' if bad.size > 5 else ''}); the KKT residual is the norm of the projected "
            "gradient at the returned δ and must be ~0 at a maximiser. Likely causes: "
            "(a) too few steps (raise steps/refine_steps/newton_steps); "
            "(b) the loss is not twice differentiable in x near δ (ReLU-like kinks), so "
            "Newton cannot finish; (c) the maximiser is not isolated (a flat direction, "
            "or several maxima: see `spread`). Fix the cause or pass a looser rtol/atol "
            "if you accept the error it brings."
        )


def _run(loss_fn, params, X, y, starts, eps_arr, alpha, counts, p, cfg, rtol, atol) -> AttackResult:
    """The compiled attack without validation (callers have validated). Host-side
    arguments go in as NumPy values, so no small eager program is compiled here."""
    n, d = X.shape
    dyn, static = _partition(loss_fn)
    f64 = np.float64
    out = _pgd_jit(
        static,
        dyn,
        params,
        X,
        y,
        np.asarray(starts, dtype=f64),
        eps_arr,
        np.asarray(alpha, f64),
        np.asarray(counts, dtype=np.int32),
        _start_vector(d),
        np.int32(_p_index(p)),
        np.asarray(rtol, f64),
        np.asarray(atol, f64),
        cfg=cfg,
    )
    delta, val, g, best, spread, c, tol, conv, lo, hi, bound, gth = out
    return AttackResult(
        delta=delta,
        loss=val,
        grad_x=g,
        kkt=c,
        tol=tol,
        converged=conv,
        restart=best,
        spread=spread,
        tangent_min=lo,
        tangent_max=hi,
        tangent_bound=bound,
        danskin_grad=gth,
        eps=eps_arr,
        p=p,
    )


#: Largest input dimension for which ``x_solver="auto"`` solves densely.
DENSE_MAX_D = 64


def _dense_choice(x_solver: str, d: int) -> bool:
    if x_solver not in ("auto", "dense", "cg"):
        raise ValueError(f"x_solver={x_solver!r} is not allowed; allowed: 'auto', 'dense', 'cg'")
    return x_solver == "dense" or (x_solver == "auto" and d <= DENSE_MAX_D)


def pgd(
    loss_fn: LossFn,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    steps: int = 40,
    refine_steps: int = 60,
    newton_steps: int = 6,
    step_size: float | None = None,
    restarts: int = 1,
    random_start: bool = False,
    key: jax.Array | None = None,
    init: ArrayLike | None = None,
    cg_maxiter: int | None = None,
    x_solver: str = "auto",
    rtol: float = 1e-6,
    atol: float = 1e-12,
) -> AttackResult:
    r"""Solve the inner maximisation for every row of ``X``: the PGD attack of SPEC §3.

    :math:`\max_{\|\delta_i\|_p \le \varepsilon} \ell(x_i + \delta_i, y_i; \theta)`, each example
    with its own maximiser.

    Args:
      loss_fn: ``loss_fn(params, x, y) -> scalar`` for ONE example (hashable callable).
      params: pytree of float arrays (held fixed here).
      X, y: examples (n, d) and their labels or targets (n,).
      eps, p: the threat model :math:`B_p(\varepsilon)`, p ∈ {1, 2, ∞}.
      steps: steepest-ascent steps (phase 1), of size ``step_size``
        (default :math:`2.5\varepsilon/\text{steps}`, Madry et al.).
      refine_steps: projected-gradient steps with backtracking (phase 2).
      newton_steps: Newton steps on the active face (phase 3), each a CG solve of at
        most ``cg_maxiter`` (default ``2d + 5``) Hessian-vector products in x.
      restarts: starts per example; the first is ``init`` (default 0) unless
        ``random_start``, the others uniform in the ball. The best final loss wins.
      key: PRNG key of the random starts (default ``PRNGKey(0)``: deterministic).
      init: warm start (n, d), e.g. the δ* of a nearby θ.
      x_solver: how the d×d systems in x (Newton steps, the tangent spectrum) are
        solved: ``"dense"`` (``jax.jacfwd`` of the input gradient, LAPACK), ``"cg"``
        (matrix-free: CG and Lanczos on Hessian-vector products), or ``"auto"``:
        dense for d ≤ 64 (it compiles faster), matrix-free above.
      rtol, atol: converged iff KKT residual ≤ ``atol + rtol * ‖∇_x ℓ(x_i)‖``.

    The phase lengths are traced: changing them does not recompile. Returns an
    :class:`AttackResult`; check ``all_converged`` or call
    :meth:`AttackResult.require_converged` before trusting δ. SPEC §3 (the δ* of G0–G3).
    """
    params, X, y, p = _check_problem(loss_fn, params, X, y, eps, p)
    n, d = X.shape
    counts = [
        check_positive_int("steps", steps, minimum=0),
        check_positive_int("refine_steps", refine_steps, minimum=0),
        check_positive_int("newton_steps", newton_steps, minimum=0),
    ]
    cfg = _Config(
        cg_maxiter=check_positive_int(
            "cg_maxiter", 2 * d + 5 if cg_maxiter is None else cg_maxiter
        ),
        restarts=check_positive_int("restarts", restarts),
        random_start=bool(random_start),
        lanczos_steps=min(d, 64),
        dense=_dense_choice(x_solver, d),
    )
    for name, val in (("rtol", rtol), ("atol", atol)):
        if isinstance(val, bool) or not (
            isinstance(val, int | float) and math.isfinite(val) and val >= 0
        ):
            raise ValueError(f"{name}={val!r} is not allowed; allowed: a finite real >= 0")
    if init is None:
        init = np.zeros((n, d))
    else:
        init = np.asarray(init, dtype=float)
        if init.shape != (n, d):
            raise ValueError(f"init must have the shape of X, {(n, d)}, got {init.shape}")
        check_finite("init", init)
    eps_arr = np.float64(eps)
    if step_size is None:
        alpha = 2.5 * float(eps) / max(counts[0], 1)
    else:
        check_eps(step_size, "step_size")
        alpha = float(step_size)
    starts = init[:, None, :]
    if cfg.restarts > 1 or cfg.random_start:
        key = jax.random.PRNGKey(0) if key is None else key
        rnd = sample_ball(key, (n, cfg.restarts, d), eps=eps, p=p)
        starts = rnd if cfg.random_start else np.concatenate([starts, rnd[:, 1:]], axis=1)
    return _run(loss_fn, params, X, y, starts, eps_arr, alpha, counts, p, cfg, rtol, atol)
