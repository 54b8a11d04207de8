r"""Projected steepest ascent (PGD) on any per-example loss, with a KKT certificate per example.

The inner problem of the adversarial loss (docs/theory/general-models.md) is, for every
example :math:`(x_i, y_i)`,

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
it falls in (docs/theory/general-models.md): ``interior`` (G1, an interior maximiser),
``l2_boundary`` (G2, on the L2 sphere), ``linf_vertex`` (G3, a vertex of the L∞ box), and
the faces ``linf_face``, ``l1_face``, ``l1_vertex``.

**What is certified, and what is not.** ``converged`` certifies a *KKT point*: a
first-order, **local** certificate. The loss is not concave in δ in general, so a KKT
point can be a local maximum below the global one, and no finite search proves
global optimality. :func:`pgd` therefore also *screens* structured points — the
vertices :math:`\pm\varepsilon e_j` for L1 (all 2d when d ≤ 64, else those of the largest
:math:`|\partial_j\ell|`), the sign patterns :math:`\varepsilon\,\mathrm{sign}\,\nabla_x\ell` at x
and at random points for L∞ (every vertex when d ≤ 6), the gradient directions
:math:`\varepsilon\nabla_x\ell/\|\nabla_x\ell\|` for L2, and random points of the ball — by
their loss value after a short steepest ascent (:data:`SCREEN_STEPS` steps of value
and gradient only, all points at once), refines the best ``structured_starts`` of them
like any other start, keeps the best final value, and flags an example as
``beaten`` when some start or screened point is higher than the returned maximiser
by more than the float error of the two values (:func:`loss_error`). A ``beaten``
example has a certified KKT point that is certainly *not* the maximiser;
:func:`advlip.adversarial.linearize` marks it undetermined.

**Precision.** The attack runs in the working dtype of the problem, the least precise
of ``params`` and ``X`` (:func:`advlip.tolerance.working_dtype`): float32 parameters stay
float32 (X, floating labels and the loss's own array fields are cast to it), and
every tolerance here — the on-sphere and on-face tests, the slack of the line
search, the eigensolver's error — uses the unit roundoff of that dtype. float32 and
float64 are supported; anything less precise is refused.

Example (float32 or float64 alike: the tolerances follow the dtype):
    >>> import jax, jax.numpy as jnp
    >>> from advlip import attacks, models
    >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.0)}
    >>> X, y = jnp.array([[0.5, 1.0], [1.0, -1.0]]), jnp.array([1.0, -1.0])
    >>> res = attacks.pgd(models.LinearLoss(), params, X, y, eps=0.1, p=2)
    >>> bool(res.all_converged), bool(res.beaten.any()), res.cases
    (True, False, ('l2_boundary', 'l2_boundary'))
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from advlip import norms, tolerance
from advlip._validate import check_eps, check_finite, check_p, check_positive_int, is_traced
from advlip.keys import check_key
from advlip.tangent import TangentOperator, project

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
    "loss_error",
    "count_ops",
    "SUPPORTED_DTYPES",
]

#: Working dtypes the attack and the curvature computations accept.
SUPPORTED_DTYPES: tuple[str, ...] = ("float32", "float64")

#: Norms the attack supports (a Euclidean projection onto the ball exists in closed form).
SUPPORTED_P: tuple[float, ...] = (1.0, 2.0, math.inf)

#: Case names, indexed by :attr:`KKT.kind` (docs/theory/general-models.md: G1 interior,
#: G2 L2 boundary, G3 L∞ vertex; faces are G1 restricted to the face; ``point`` is ε = 0).
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
    r"""The inner maximisation was not solved to the requested KKT residual.

    Example:
        An attack with no steps ends at the best screened start, a KKT point only up to
        the screen's accuracy; asked for a residual of exactly 0 (``rtol=0``,
        ``atol=0``) it refuses to call that converged:

        >>> import jax.numpy as jnp
        >>> from advlip import attacks, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> res = attacks.pgd(models.LinearLoss(), params, X, y, eps=2.0, p=2, steps=0,
        ...                   refine_steps=0, newton_steps=0, rtol=0.0, atol=0.0)
        >>> res.require_converged()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advlip.attacks.AttackNotConvergedError: the attack did not converge on 2 of 2 example(s) ...
    """


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


def partition(fn: Any) -> tuple[list, _Static]:
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


def combine(dyn: list, static: _Static) -> Any:
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
                f"{name} has dtype {dtype}; allowed: floating dtypes (float32 or float64). "
                "Integer or boolean parameters have no derivative: cast them with "
                "jax.tree.map(lambda a: a.astype(float), params), or close over them "
                "in loss_fn if they are not meant to be trained"
            )
        _refuse_dtype(name, dtype)
        check_finite(name, leaf)


def _refuse_dtype(name: str, dtype: Any) -> None:
    """Floating dtypes other than float32/float64 have no supported error model."""
    dt = np.dtype(dtype)
    if jnp.issubdtype(dt, jnp.floating) and dt.name not in SUPPORTED_DTYPES:
        raise ValueError(
            f"{name} has dtype {dt.name}, so the working dtype (the least precise of params "
            f"and X) is {dt.name}; allowed: {', '.join(SUPPORTED_DTYPES)}. advlip derives "
            f"its tolerances from the unit roundoff of the dtype, and {dt.name} is too "
            "coarse for the attack's certificate and the Hessian solves: cast with "
            "jax.tree.map(lambda a: a.astype(jnp.float32), params) and X.astype(jnp.float32) "
            "(or jnp.float64 after jax.config.update('jax_enable_x64', True))"
        )


def _check_data(X: Any, y: Any) -> tuple[jax.Array, jax.Array]:
    X = jnp.asarray(X)
    y = jnp.asarray(y)
    if X.ndim < 2:
        raise ValueError(
            f"X must have shape (n, d) or (n, *input_shape) (a batch of examples, say images "
            f"(n, H, W, C)), got shape {X.shape}; for one example use X[None] and y[None]"
        )
    n, d = X.shape[0], math.prod(X.shape[1:])
    if n == 0 or d == 0:
        raise ValueError(f"X must have n >= 1 examples of d >= 1 inputs, got shape {X.shape}")
    if y.shape != (n,):
        raise ValueError(
            f"Shape mismatch: X has shape {X.shape} but y has shape {y.shape}; expected ({n},) "
            "(one scalar label or target per example)"
        )
    _refuse_dtype("X", X.dtype)
    check_finite("X", X)
    if jnp.issubdtype(y.dtype, jnp.floating):
        _refuse_dtype("y", y.dtype)
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
    check = getattr(loss_fn, "check_labels", None)  # classifiers: classes 0..K-1 or ±1
    if check is not None and not is_traced(y):
        check(params, X[0], y)


def _strong(tree: Any) -> Any:
    """Drop weak types (``jnp.asarray(2.0)`` is weakly typed, an unravelled vector is
    not): the abstract signature, hence the compiled program, is then the same."""
    return jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.asarray(a).dtype), tree)


def _is_float_array(a: Any) -> bool:
    return _is_array(a) and jnp.issubdtype(
        np.asarray(a).dtype if not hasattr(a, "dtype") else a.dtype, jnp.floating
    )


def _cast_tree(tree: Any, dtype: np.dtype) -> Any:
    """Cast every floating array leaf of ``tree`` to ``dtype`` (other leaves unchanged).

    A pytree callable (a loss with an array field such as κ) is cast too: a float64 κ
    would otherwise promote every float32 product it meets to float64."""
    return jax.tree.map(lambda a: jnp.asarray(a).astype(dtype) if _is_float_array(a) else a, tree)


def _working_dtype(params: Any, X: jax.Array) -> np.dtype:
    """The dtype every computation runs in: the least precise of ``params`` and ``X``
    (read after conversion to JAX arrays, so it is what JAX computes in: float32 when
    float64 is off). Refuses dtypes without a supported error model."""
    dt = tolerance.working_dtype(params, X)
    if dt.name not in SUPPORTED_DTYPES:
        raise ValueError(
            f"the working dtype (the least precise of params and X) is {dt.name}; allowed: "
            f"{', '.join(SUPPORTED_DTYPES)}. advlip derives its tolerances from the unit "
            f"roundoff of the dtype, and {dt.name} is too coarse for the attack's certificate "
            "and the Hessian solves: cast with jax.tree.map(lambda a: a.astype(jnp.float32), "
            "params) and X.astype(jnp.float32) (or jnp.float64 after "
            "jax.config.update('jax_enable_x64', True))"
        )
    return dt


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class InputShaped:
    r"""A per-example loss of shaped inputs (say images (H, W, C)) as a loss of flat ``x``.

    The engine works on ``x`` of shape (d,), d the product of ``shape``; this wrapper
    reshapes before calling ``base``, so a network written for images is attacked and
    differentiated as it is. ``base`` is a pytree child: its array fields stay traced.

    Example:
        A loss written for 2 × 2 inputs, :math:`y\operatorname{tr}(W^\top x)`, called
        on the flat x = (1, 2, 3, 4): with W = I it reads the diagonal 1 + 4.

        >>> import jax.numpy as jnp
        >>> from advlip import attacks
        >>> loss_fn = attacks.InputShaped(lambda W, x, y: y * jnp.sum(W * x), (2, 2))
        >>> float(loss_fn(jnp.eye(2), jnp.array([1.0, 2.0, 3.0, 4.0]), 1.0))
        5.0
    """

    base: Any
    shape: tuple[int, ...] = dataclasses.field(metadata=dict(static=True))

    def __call__(self, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return self.base(params, x.reshape(self.shape), y)

    def check_labels(self, params: Any, x: jax.Array, y: Any) -> None:
        """The base loss's label check (if it has one) on one shaped input."""
        check = getattr(self.base, "check_labels", None)
        if check is not None:
            check(params, jnp.reshape(x, self.shape), y)


def flat_shape(X: Any) -> tuple[int, int]:
    """``(n, d)``: the shape the engine gives X (and every δ) — inputs flattened per example.

    Example:
        >>> import numpy as np
        >>> from advlip import attacks
        >>> attacks.flat_shape(np.zeros((5, 8, 8, 1))), attacks.flat_shape(np.zeros((5, 3)))
        ((5, 64), (5, 3))
    """
    shape = np.shape(X)
    return (shape[0], math.prod(shape[1:])) if len(shape) >= 2 else tuple(shape)


def prepare_problem(loss_fn, params, X, y, eps, p):
    """Validate a problem; returns ``(loss_fn, params, X, y, p, dtype)`` in canonical form:
    every floating array (the loss's own fields included) in the working dtype, and X of
    shape (n, d): inputs of shape (n, *input_shape) are flattened and ``loss_fn`` wrapped in
    :class:`InputShaped`, so every δ the engine returns has shape (n, d)."""
    p = _check_p_supported(p)
    check_eps(eps)
    X, y = _check_data(X, y)
    if X.ndim > 2:  # images and other shaped inputs: the engine works on flat x
        loss_fn = InputShaped(loss_fn, tuple(X.shape[1:]))
        X = X.reshape(X.shape[0], -1)
    _check_params(params)
    params = _strong(params)
    dt = _working_dtype(params, X)
    params = _cast_tree(params, dt)
    X = X.astype(dt)
    if jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(dt)
    loss_fn = _cast_tree(loss_fn, dt)
    _check_loss_fn(loss_fn, params, X, y)
    return loss_fn, params, _strong(X), _strong(y), p, dt


def check_problem(loss_fn, params, X, y, eps, p):
    """Validate a problem; returns ``(params, X, y, p)`` in canonical form (see :func:`prepare_problem`)."""
    _, params, X, y, p, _ = prepare_problem(loss_fn, params, X, y, eps, p)
    return params, X, y, p


# --------------------------------------------------------------------------- KKT certificate


class KKT(NamedTuple):
    r"""First-order optimality of δ for the inner maximisation, per example.

    Attributes:
      residual: stationarity residual, the 2-norm of the projected gradient (0 at KKT).
      gap: Frank–Wolfe gap :math:`\varepsilon\|g\|_q - g\cdot\delta` (≥ 0).
      active: whether the ball constraint is active (with an outward gradient).
      n_active: active constraints (L∞: clamped coordinates; L1: support size; L2: 0/1).
      tangent_dim: dimension of the face δ can move on while staying optimal.
      mask, normal: the tangent projector :math:`P v = m\odot v - \nu(\nu\cdot(m\odot v))`.
      mu: curvature of the constraint, the L2 multiplier
        :math:`\mu = g\cdot\delta/\|\delta\|^2`
        (0 for the flat faces of L1/L∞).
      multiplier: the smallest multiplier of an active constraint (``inf`` if none):
        strict complementarity needs it > 0.
      slack: Euclidean distance to the nearest inactive constraint (``inf`` if none).
      kind: index into :data:`KINDS`.

    Example:
        δ = (0.5, −0.5) at a vertex of the L∞ box of radius 0.5, with
        g = (1, −2) pointing out of both faces: two active constraints, no tangent space,
        smallest multiplier :math:`\min_j \operatorname{sign}(\delta_j) g_j = 1`.

        >>> import math, jax.numpy as jnp
        >>> from advlip import attacks
        >>> c = attacks.kkt(jnp.array([0.5, -0.5]), jnp.array([1.0, -2.0]), eps=0.5, p=math.inf)
        >>> attacks.KINDS[int(c.kind)], int(c.n_active), int(c.tangent_dim), float(c.multiplier)
        ('linf_vertex', 2, 0, 1.0)
        >>> float(c.residual), float(c.gap)
        (0.0, 0.0)
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


def face_certificate(delta: jax.Array, g: jax.Array, eps: jax.Array, p: float) -> KKT:
    d = delta.shape[0]
    dt = delta.dtype
    inf = jnp.asarray(jnp.inf, dtype=dt)
    q = norms.dual_exponent(p)
    gap = eps * norms.lp_norm(g, q) - g @ delta
    ones = jnp.ones(d, dtype=dt)
    zeros = jnp.zeros(d, dtype=dt)
    if p == 2.0:
        nrm = jnp.linalg.norm(delta)
        # the projection rescales by eps/‖v‖: ‖δ‖ = eps to γ_{2d+8} in the working dtype
        # (the norm: 2d ops, a sqrt, a divide and the scaling)
        on = nrm >= eps * (1.0 - tolerance.gamma(2 * d + 8, dt))
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
        # clip is exact; 2 ops of slack in the working dtype
        at_bound = jnp.abs(delta) >= eps * (1.0 - tolerance.gamma(2, dt))
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
        on = l1 >= eps * (1.0 - tolerance.gamma(4 * d + 8, dt))
        S = delta != 0
        s = jnp.sign(delta)
        nS = jnp.sum(S)
        mu_fit = jnp.sum(jnp.where(S, s * g, 0.0)) / jnp.maximum(nS, 1).astype(dt)
        active = on & (mu_fit > 0)
        off_max = jnp.max(jnp.where(S, 0.0, jnp.abs(g)))
        on_dev = jnp.where(S, g - mu_fit * s, 0.0)
        off_excess = jnp.where(S, 0.0, jnp.maximum(0.0, jnp.abs(g) - mu_fit))
        residual = jnp.where(
            active, jnp.sqrt(on_dev @ on_dev + off_excess @ off_excess), jnp.linalg.norm(g)
        )
        mask = jnp.where(active, S.astype(dt), ones)
        normal = jnp.where(
            active, jnp.where(S, s, 0.0) / jnp.sqrt(jnp.maximum(nS, 1).astype(dt)), zeros
        )
        mu = jnp.asarray(0.0, dtype=dt)
        multiplier = jnp.where(active, jnp.minimum(mu_fit, mu_fit - off_max), inf)
        slack = jnp.where(
            active, jnp.min(jnp.where(S, jnp.abs(delta), inf)), (eps - l1) / math.sqrt(d)
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

    The certificate is computed in the working dtype of ``delta`` and ``grad_x`` (the
    less precise of the two), with that dtype's tolerances.

    Example (g = 5δ on the unit sphere: a KKT point; the residual is 0 up to rounding,
    which depends on the dtype and the compiler, so it is printed rounded):
        >>> import jax.numpy as jnp
        >>> from advlip import attacks
        >>> c = attacks.kkt(jnp.array([0.6, 0.8]), jnp.array([3.0, 4.0]), eps=1.0, p=2)
        >>> round(float(c.residual), 5), attacks.KINDS[int(c.kind)]
        (0.0, 'l2_boundary')
    """
    p = _check_p_supported(p)
    check_eps(eps)
    delta = jnp.asarray(delta)
    grad_x = jnp.asarray(grad_x)
    if delta.shape != grad_x.shape or delta.ndim not in (1, 2):
        raise ValueError(
            f"delta and grad_x must have the same shape (d,) or (n, d), got {delta.shape} "
            f"and {grad_x.shape}"
        )
    if not jnp.issubdtype(delta.dtype, jnp.floating):
        delta = delta.astype(float)
    if not jnp.issubdtype(grad_x.dtype, jnp.floating):
        grad_x = grad_x.astype(float)
    dt = _working_dtype(delta, grad_x)
    delta, grad_x = delta.astype(dt), grad_x.astype(dt)
    eps = np.asarray(eps, dtype=dt)
    if delta.ndim == 1:
        return _kkt_jit(delta, grad_x, eps, p=p)
    return _kkt_batch_jit(delta, grad_x, eps, p)


_kkt_jit = jax.jit(face_certificate, static_argnames=("p",))
_kkt_batch_jit = jax.jit(
    jax.vmap(face_certificate, in_axes=(0, 0, None, None)), static_argnums=(3,)
)


def tangent_project(c: KKT, v: jax.Array) -> jax.Array:
    """Apply the tangent projector of a (one-example) certificate to ``v`` (d,)
    (:func:`advlip.tangent.project`).

    Example:
        On a face of the L∞ box where the first coordinate is clamped (δ₁ = ε, g₁ > 0),
        the tangent space is the second coordinate:

        >>> import math, jax.numpy as jnp
        >>> from advlip import attacks
        >>> c = attacks.kkt(jnp.array([0.5, 0.1]), jnp.array([1.0, 0.0]), eps=0.5, p=math.inf)
        >>> attacks.KINDS[int(c.kind)], attacks.tangent_project(c, jnp.array([3.0, 4.0])).tolist()
        ('linf_face', [0.0, 4.0])
    """
    return project(c, v)


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
    branches = [lambda a, b, e, q=q: face_certificate(a, b, e, q) for q in _P_ORDER]
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

    Example:
        Five points of the L∞ ball of radius 0.5 in three dimensions, a NumPy array that
        the same key draws again:

        >>> import math, jax, numpy as np
        >>> from advlip import attacks
        >>> key = jax.random.PRNGKey(0)
        >>> pts = attacks.sample_ball(key, (5, 3), eps=0.5, p=math.inf)
        >>> pts.shape, bool(np.all(np.abs(pts) <= 0.5))
        ((5, 3), True)
        >>> bool(np.all(attacks.sample_ball(key, (5, 3), eps=0.5, p=math.inf) == pts))
        True
    """
    p = _check_p_supported(p)
    eps = float(check_eps(eps))
    return _sample(_np_rng(key), shape, eps, p)


def _np_rng(key: jax.Array | None, *tags: int) -> np.random.Generator:
    """A NumPy generator seeded by the bits of a JAX key (and optional tags); ``None``
    stands for ``PRNGKey(0)`` (bits [0, 0]) without making one — under ``jit`` a key
    made inside the traced function would be a tracer, with no bits to read."""
    if key is None:
        return np.random.default_rng([0, 0, *tags])
    check_key(key)  # a clear error for an integer, a batch of keys or a traced key
    with jax.ensure_compile_time_eval():  # a concrete key closed over by a jitted caller
        bits = np.asarray(jax.random.key_data(key)).ravel().tolist()
    return np.random.default_rng([*bits, *tags])


def _sample(rng: np.random.Generator, shape: tuple[int, ...], eps: float, p: float) -> np.ndarray:
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


class AttackConfig(NamedTuple):
    """Static (shape-determining) options of the compiled attack; the phase lengths are
    traced, so one compiled program serves every ``steps``/``refine_steps``/``newton_steps``."""

    cg_maxiter: int
    restarts: int
    random_start: bool
    lanczos_steps: int
    dense: bool  # solve the d×d systems in x densely (small d) rather than by CG/Lanczos


def _solve_one(loss_fn, params, x, y, delta0, eps, pidx, alpha, counts, cfg: AttackConfig):
    """All three phases from one start, for one example; ``counts`` = (steps, refine, newton),
    ``pidx`` the index of p in ``(1, 2, ∞)``.

    One loop: each iteration projects the proposed point onto the ball and evaluates it
    (value, gradient, KKT), accepts or rejects it by the rule of the phase that proposed
    it, and proposes the next one by the rule of the current phase (the phase is the same
    for every example, so under ``vmap`` only that phase's branch runs: the d×d Hessian
    of a dense Newton step is formed in the Newton phase only). The model's derivatives
    and the projection appear once in the compiled program, which keeps it small.
    Returns ``(delta, value, grad_x, kkt, H)`` (``H`` a 0×0 placeholder).
    """

    def f(dl):
        return loss_fn(params, x + dl, y)

    grad = jax.grad(f)
    vg = jax.value_and_grad(f)
    n1, n2, n3 = counts[0], counts[1], counts[2]
    u = tolerance.unit_roundoff(delta0.dtype)
    tiny = float(jnp.finfo(delta0.dtype).tiny)

    def evaluate(dl):
        # value, gradient and certificate; the d×d Hessian is formed only where a Newton
        # step needs it (inside that phase's branch), not at every evaluated point
        v, g = vg(dl)
        H = jnp.zeros((0, 0), dtype=dl.dtype)
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
        # the Newton step on the face, s = A⁺Pg with A = P(μI − H)P
        if cfg.dense:
            op = TangentOperator(c, H=jax.jacfwd(grad)(dl))
            step = op.solve(g, solver="dense")
        else:
            op = TangentOperator(c, hvp=lambda w: jax.jvp(grad, (dl,), (w,))[1])
            step = op.solve(g, solver="cg", maxiter=cfg.cg_maxiter)
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
        # increase f(new) >= f(δ) + ‖step‖²/(2s); the slack of a few ulps (of the working
        # dtype) of |f| keeps the test from rejecting every step once the increase is below
        # the rounding of f (an algorithmic choice: it affects speed, not the certificate).
        # Phase 3 (Newton) keeps a step only if it lowers the KKT residual.
        slack = 16.0 * u * (jnp.abs(v) + jnp.abs(vn))
        increase = vn >= v + (step @ step) / (2.0 * jnp.maximum(s, tiny)) - slack
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


def _pgd_batch(
    static, dyn, params, X, y, starts, eps, alpha, counts, start_vec, pidx, rtol, atol, cfg
):
    loss_fn = combine(dyn, static)
    n, d = X.shape
    R = cfg.restarts
    # every (example, start) pair is one row of a single batch: no nested vmap
    rows_x = jnp.repeat(X, R, axis=0)
    rows_y = jnp.repeat(y, R, axis=0)
    run = jax.vmap(
        lambda x, yi, s: _solve_one(loss_fn, params, x, yi, s, eps, pidx, alpha, counts, cfg)
    )
    deltas, vals, grads, cs, _ = run(rows_x, rows_y, starts.reshape(n * R, d))
    vals = vals.reshape(n, R)
    vals_ok = jnp.where(jnp.isfinite(vals), vals, -jnp.inf)
    best = jnp.argmax(vals_ok, axis=1)
    spread = jnp.max(vals_ok, axis=1) - jnp.min(vals_ok, axis=1)
    rows = jnp.arange(n) * R + best
    pick = lambda a: a[rows]  # noqa: E731
    delta, val, g, c = pick(deltas), pick(vals.reshape(-1)), pick(grads), jax.tree.map(pick, cs)

    def analyse(x, yi, dl, ci):
        z = x + dl
        gx = lambda zz: jax.grad(loss_fn, argnums=1)(params, zz, yi)  # noqa: E731
        if cfg.dense:
            op = TangentOperator(ci, H=jax.jacfwd(gx)(z))
        else:
            op = TangentOperator(ci, hvp=lambda w: jax.jvp(gx, (z,), (w,))[1])
        lo, hi, bound = op.spectrum(start=start_vec, num_steps=cfg.lanczos_steps)
        g_clean = jax.grad(loss_fn, argnums=1)(params, x, yi)
        return lo, hi, bound, jnp.linalg.norm(g_clean)

    lo, hi, bound, g0 = jax.vmap(analyse)(X, y, delta, c)
    # the Danskin gradient: one batch reverse pass (no per-example θ-space gradients)
    Z = X + delta
    gth = jax.grad(lambda th: jnp.mean(jax.vmap(lambda z, yi: loss_fn(th, z, yi))(Z, y)))(params)
    tol = atol + rtol * g0
    return delta, val, g, best, spread, c, tol, c.residual <= tol, lo, hi, bound, gth


_pgd_jit = jax.jit(_pgd_batch, static_argnames=("static", "cfg"))


def _start_vector(d: int, dtype: Any = np.float64) -> np.ndarray:
    # A fixed generic start for the tangent-space Lanczos (no PRNG in the compiled code).
    return np.random.default_rng(20210301).standard_normal(d).astype(dtype)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AttackResult:
    r"""The attack on every example and its certificate.

    Attributes (leading axis n, one row per example):
      delta: the perturbations, (n, d).
      loss: :math:`\ell(x_i + \delta_i)`, (n,).
      grad_x: :math:`\nabla_x\ell(x_i+\delta_i)`, (n, d).
      kkt: the :class:`KKT` certificate (residual, gap, active set, case…).
      tol: the residual each example had to reach to count as converged, (n,):
        ``atol + rtol * ‖∇_x ℓ(x_i)‖`` (the clean input gradient sets the scale).
      converged: ``kkt.residual <= tol``: δ is a certified **KKT point** of the inner
        problem — a first-order, *local* certificate. It does not prove that δ is the
        global maximiser (see ``beaten``).
      restart: which start won (0 the init or first random start, then the random
        restarts, then the refined screened points); spread: best minus worst final
        loss over the starts (a large spread means several local maxima).
      tangent_min, tangent_max, tangent_bound: extreme eigenvalues of
        :math:`P(\mu I - H_{xx})P` on the tangent space of the active face (Lanczos,
        exact to rounding for tangent dimension ≤ 64; ``inf``/0 at a vertex) and
        their error bound: the second-order condition is ``tangent_min > 0``.
      danskin_grad: :math:`\operatorname{mean}_i \nabla_\theta \ell(x_i + \delta_i)`, a pytree
        like ``params`` (the gradient of the adversarial loss by Danskin's theorem where the
        maximisers are unique, docs/theory/gen-danskin.md).
      eps, p: the threat model.
      value_error: float error bound of ``loss`` (:func:`loss_error`), (n,).
      best_other: the highest loss found at any start or screened point, (n,) (``-inf``
        if none was screened); ``None`` when the attack screened nothing.
      beaten: ``best_other - loss > `` the float error of the two values: another start
        found a higher value, so δ — a KKT point, perhaps — is certainly not the global
        maximiser, (n,) bool; ``None`` when nothing was screened.

    Example:
        w = (0.3, 0.4) has ‖w‖ = 0.5: in the L2 ball of radius 2 each maximiser is
        :math:`\delta^* = -y\varepsilon w/\|w\| = \mp(1.2, 1.6)`, where both margins
        drop from 1 to 0 and the softplus loss is log 2 (docs/theory/closed-form.md):

        >>> import numpy as np
        >>> import jax.numpy as jnp
        >>> from advlip import attacks, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> res = attacks.pgd(models.LinearLoss(), params, X, y, eps=2.0, p=2)
        >>> np.round(np.asarray(res.delta, float), 4).tolist()
        [[-1.2, -1.6], [1.2, 1.6]]
        >>> tuple(round(float(v), 4) for v in res.loss), res.summary()["cases"]
        ((0.6931, 0.6931), {'l2_boundary': 2})
        >>> bool(res.all_converged), bool(res.beaten.any())
        (True, False)
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
    value_error: Any = None
    best_other: Any = None
    beaten: Any = None

    @property
    def residual(self) -> jax.Array:
        return self.kkt.residual

    @property
    def kkt_point(self) -> jax.Array:
        """``converged`` under the name of what it certifies: δ is a KKT point (local)."""
        return self.converged

    @property
    def all_converged(self) -> bool:
        """Every example is a certified KKT point (a local certificate; see ``beaten``)."""
        return bool(np.all(np.asarray(self.converged)))

    @property
    def cases(self) -> tuple[str, ...]:
        """The case of every example (docs/theory/general-models.md; see :data:`KINDS`)."""
        return tuple(KINDS[int(k)] for k in np.asarray(self.kkt.kind))

    def summary(self) -> dict[str, Any]:
        """Plain numbers for a report: worst residual, counts per case, convergence."""
        res = np.asarray(self.kkt.residual)
        counts: dict[str, int] = {}
        for case in self.cases:
            counts[case] = counts.get(case, 0) + 1
        out = {
            "n": int(res.size),
            "converged": int(np.sum(np.asarray(self.converged))),
            "max_residual": float(res.max()),
            "max_gap": float(np.asarray(self.kkt.gap).max()),
            "max_spread": float(np.asarray(self.spread).max()),
            "min_tangent_curvature": float(np.asarray(self.tangent_min).min()),
            "cases": counts,
        }
        if self.beaten is not None:
            out["beaten"] = int(np.sum(np.asarray(self.beaten)))
        return out

    def require_converged(self) -> None:
        """Raise :class:`AttackNotConvergedError` unless every example is a certified KKT point."""
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
            "or several maxima: see `spread`); (d) the gradient in x vanishes (labels "
            "outside the loss's convention, e.g. 0/1 labels for a ±1 margin loss). Fix the "
            "cause or pass a looser rtol/atol if you accept the error it brings."
        )

    def require_maximiser(self) -> None:
        """:meth:`require_converged`, and no start or screened point beat the returned δ.

        Raises :class:`AttackNotConvergedError` naming the beaten examples: their δ is a
        KKT point below another point of the ball, so neither the loss value nor the
        Danskin gradient taken there is that of the maximum."""
        self.require_converged()
        if self.beaten is None:
            return
        beaten = np.asarray(self.beaten)
        if not beaten.any():
            return
        bad = np.flatnonzero(beaten)
        loss, other = np.asarray(self.loss), np.asarray(self.best_other)
        rows = ", ".join(f"#{i}: {loss[i]:.6g} < {other[i]:.6g}" for i in bad[:5])
        raise AttackNotConvergedError(
            f"another start found a higher value on {bad.size} of {beaten.size} example(s) "
            f"({rows}{', …' if bad.size > 5 else ''}): the returned δ is a KKT point (a local "
            "certificate) but not the maximiser. Raise restarts= or structured_starts= so the "
            "attack refines the better start, or pass a stronger attack= of your own."
        )


def run_attack(
    loss_fn, params, X, y, starts, eps_arr, alpha, counts, p, cfg, rtol, atol
) -> AttackResult:
    """The compiled attack without validation (callers have validated). Host-side
    arguments go in as NumPy values of the working dtype (that of ``X``), so no small
    eager program is compiled here and nothing is promoted to float64."""
    n, d = X.shape
    dt = np.dtype(X.dtype)
    dyn, static = partition(loss_fn)
    out = _pgd_jit(
        static,
        dyn,
        params,
        X,
        y,
        _as_dtype(starts, dt),
        np.asarray(eps_arr, dtype=dt),
        np.asarray(alpha, dtype=dt),
        np.asarray(counts, dtype=np.int32),
        _start_vector(d, dt),
        np.int32(_p_index(p)),
        np.asarray(rtol, dtype=dt),
        np.asarray(atol, dtype=dt),
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
#: Largest d·P for which ``x_solver="auto"`` solves densely (see :func:`dense_choice`).
DENSE_MAX_DP = 1 << 24

#: Random points of the ball screened per example; for L∞ and L2 the gradient's sign
#: pattern / direction is also read at each of them (and at x).
SCREEN_RANDOM = 16
#: L∞: every vertex of the box is screened when d ≤ this (2^d ≤ 64 points).
SCREEN_ALL_VERTICES_D = 6
#: L1 with d > DENSE_MAX_D: the vertices ±ε e_j of the coordinates with the largest |∂_j ℓ(x)|.
SCREEN_L1_TOP = 32
#: Steepest-ascent steps every screened point takes (value and gradient only) before
#: the points are ranked by value.
SCREEN_STEPS = 32


def dense_choice(x_solver: str, d: int, P: int | None = None) -> bool:
    """Whether the attack solves its d×d systems densely: ``x_solver="dense"``, or
    ``"auto"`` with d ≤ :data:`DENSE_MAX_D` and d·P ≤ :data:`DENSE_MAX_DP` (the d forward
    passes of a dense x-Hessian hold d × the model's activations for every example at
    once; for a large model CG's few x-space products are cheaper and leaner)."""
    if x_solver not in ("auto", "dense", "cg"):
        raise ValueError(f"x_solver={x_solver!r} is not allowed; allowed: 'auto', 'dense', 'cg'")
    small = d <= DENSE_MAX_D and (P is None or d * P <= DENSE_MAX_DP)
    return x_solver == "dense" or (x_solver == "auto" and small)


def num_params(params: Any) -> int:
    """P, the number of parameters of a pytree (the length of its ``ravel_pytree``)."""
    return int(sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params)))


# --------------------------------------------------------------------------- screening


def _screen_batch(static, dyn, params, X, y, extra, rand, eps, p):
    """Candidate perturbations per example after a short ascent, and the loss at each,
    ``(n, C, d)`` and ``(n, C)``: ``extra`` (the starts), then the structured points of
    the norm, then ``rand`` (random points of the ball)."""
    loss_fn = combine(dyn, static)
    n, d = X.shape
    dt = X.dtype
    gx = jax.grad(loss_fn, argnums=1)
    if p == 1.0:
        if d <= DENSE_MAX_D:
            eye = jnp.eye(d, dtype=dt)
            cands = jnp.broadcast_to(eps * jnp.concatenate([eye, -eye]), (n, 2 * d, d))
        else:
            g0 = jax.vmap(lambda x, yi: gx(params, x, yi))(X, y)
            idx = lax.top_k(jnp.abs(g0), min(SCREEN_L1_TOP, d))[1]
            onehot = jax.nn.one_hot(idx, d, dtype=dt)
            cands = eps * jnp.concatenate([onehot, -onehot], axis=1)
    else:
        pts = jnp.concatenate([jnp.zeros((n, 1, d), dtype=dt), rand], axis=1)
        G = jax.vmap(lambda x, yi, P: jax.vmap(lambda dl: gx(params, x + dl, yi))(P))(X, y, pts)
        if math.isinf(p):
            cands = eps * jnp.where(G >= 0, 1.0, -1.0).astype(dt)
            if d <= SCREEN_ALL_VERTICES_D:
                V = np.array(list(itertools.product([-1.0, 1.0], repeat=d)))
                V = eps * jnp.asarray(V, dtype=dt)
                cands = jnp.concatenate([cands, jnp.broadcast_to(V, (n, *V.shape))], axis=1)
        else:
            nrm = jnp.linalg.norm(G, axis=-1, keepdims=True)
            cands = eps * G / jnp.where(nrm > 0, nrm, 1.0)
    cands = jnp.concatenate([extra, cands, rand], axis=1)

    def ascend(x, yi, dl0):
        # SCREEN_STEPS steepest-ascent steps of geometrically shrinking size from ε/4,
        # keeping the best point met: which basin a start leads to, at the cost of a few
        # gradients (no Hessian), so that the few refined starts are the promising ones
        vg = jax.value_and_grad(lambda dl: loss_fn(params, x + dl, yi))

        def body(k, state):
            dl, best, best_v = state
            v, g = vg(dl)
            up = v > best_v
            best, best_v = jnp.where(up, dl, best), jnp.where(up, v, best_v)
            size = 0.25 * eps * 0.5 ** (k.astype(dt) / 4.0)
            return _project(dl + size * _steepest(g, p), eps, p), best, best_v

        v0 = jnp.asarray(-jnp.inf, dtype=dt)
        dl, best, best_v = lax.fori_loop(0, SCREEN_STEPS, body, (dl0, dl0, v0))
        v = loss_fn(params, x + dl, yi)
        return jnp.where(v > best_v, dl, best), jnp.maximum(v, best_v)

    return jax.vmap(lambda x, yi, P: jax.vmap(lambda dl: ascend(x, yi, dl))(P))(X, y, cands)


_screen_jit = jax.jit(_screen_batch, static_argnames=("static", "p"))


def screen(loss_fn, params, X, y, eps_arr, p, key, extra) -> tuple[jax.Array, jax.Array]:
    """``(candidates (n, C, d), values (n, C))``: ``extra`` (n, R, d) first. Runs under
    ``jit`` too (``key`` and ``eps`` must be concrete: the random points are drawn on the host)."""
    n, d = X.shape
    dt = np.dtype(X.dtype)
    rand = _sample(_np_rng(key, 7), (n, SCREEN_RANDOM, d), float(eps_arr), p).astype(dt)
    dyn, static = partition(loss_fn)
    return _screen_jit(
        static, dyn, params, X, y, _as_dtype(extra, dt), rand, np.asarray(eps_arr, dtype=dt), p=p
    )


def _as_dtype(a: Any, dt: np.dtype) -> Any:
    """``a`` in dtype ``dt``: a NumPy array for host values (no eager program), else cast."""
    return a.astype(dt) if is_traced(a) else np.asarray(a, dtype=dt)


def _pick(cands: jax.Array, vals: jax.Array, starts: jax.Array, m: int) -> jax.Array:
    """Per example the ``m`` highest-valued screened candidates (those after the first
    ``R = starts.shape[1]``, which are the starts after the ascent), distinct from each
    other and from the starts (repeated when fewer are distinct), (n, m, d). jnp only."""
    n, C, d = cands.shape
    R = starts.shape[1]
    finite = jnp.where(jnp.isfinite(vals), vals, -jnp.inf)
    order = jnp.argsort(-finite, axis=1, stable=True)
    ranked = jnp.take_along_axis(cands, order[..., None], axis=1)
    # duplicates by a fixed random projection: equal points give bitwise-equal keys, and
    # distinct ones collide with probability ~0 (a collision only skips a candidate)
    r = jnp.asarray(np.random.default_rng(20210302).standard_normal(d), dtype=cands.dtype)
    key, key_starts = ranked @ r, starts @ r
    earlier = jnp.tril(jnp.ones((C, C), dtype=bool), k=-1)
    dup = jnp.any((key[:, :, None] == key[:, None, :]) & earlier[None], axis=2)
    dup |= jnp.any(key[:, :, None] == key_starts[:, None, :], axis=2)
    skip = (order < R) | dup
    rank = jnp.where(skip, C, 0) + jnp.arange(C)[None, :]
    sel = jnp.argsort(rank, axis=1)[:, :m]
    return jnp.take_along_axis(ranked, sel[..., None], axis=1)


def mark_beaten(loss_fn, params, X, y, att: AttackResult, cands, vals) -> AttackResult:
    """Attach ``value_error``, ``best_other`` and ``beaten`` to an attack (jnp only)."""
    finite = jnp.where(jnp.isfinite(vals), vals, -jnp.inf)
    j = jnp.argmax(finite, axis=1)
    best_v = jnp.take_along_axis(finite, j[:, None], axis=1)[:, 0]
    best_d = jnp.take_along_axis(cands, j[:, None, None], axis=1)[:, 0]
    err_win = _loss_error(loss_fn, params, X, y, att.delta)
    err_other = _loss_error(loss_fn, params, X, y, best_d)
    # another start is higher than the maximiser by more than the float error of both
    # values (each computed in the working dtype and bounded by loss_error)
    beaten = (best_v - att.loss) > (err_win + err_other)
    return dataclasses.replace(att, value_error=err_win, best_other=best_v, beaten=beaten)


# --------------------------------------------------------------------------- float error of ℓ


def count_ops(fn: Callable, *args: Any) -> int:
    """Floating-point operations in the jaxpr of ``fn(*args)``: an upper bound on the
    length of any chain of roundings, the ``k`` of :func:`advlip.tolerance.gamma`.

    A ``dot_general`` counts its contraction length, a convolution its kernel's
    contraction (input channels × kernel size), a reduction or cumulative op its reduced
    size, every other primitive 1; sub-jaxprs (jit, custom derivatives) are counted
    recursively, a ``scan`` body ``length`` times. A ``while`` loop's trip count is not
    known from the jaxpr: its body is counted once and a :class:`UserWarning` says the
    count (and every bound derived from it) may be too small.

    Example:
        A dot product of length 3 counts 3; a tanh and a sum over 4 entries, 1 + 4:

        >>> import jax.numpy as jnp
        >>> from advlip import attacks
        >>> attacks.count_ops(lambda x: x @ x, jnp.ones(3))
        3
        >>> attacks.count_ops(lambda x: jnp.sum(jnp.tanh(x)), jnp.ones(4))
        5
    """
    closed = jax.make_jaxpr(fn)(*args)
    return _count_jaxpr(closed.jaxpr)


def _count_jaxpr(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        subs = [
            getattr(v, "jaxpr", v)
            for v in eqn.params.values()
            if hasattr(v, "eqns") or hasattr(getattr(v, "jaxpr", None), "eqns")
        ]
        for v in eqn.params.values():
            if isinstance(v, tuple | list):
                subs += [
                    getattr(s, "jaxpr", s)
                    for s in v
                    if hasattr(s, "eqns") or hasattr(getattr(s, "jaxpr", None), "eqns")
                ]
        if subs:
            body = sum(_count_jaxpr(s) for s in subs)
            if name == "scan":
                body *= int(eqn.params.get("length", 1))
            elif name == "while":
                warnings.warn(
                    "count_ops: a while loop's trip count is unknown; its body is counted "
                    "once, so the rounding-error bounds derived from this count may be too "
                    "small (write the loop as a lax.scan or fori_loop with static bounds)",
                    UserWarning,
                    stacklevel=3,
                )
            total += body
            continue
        shape = eqn.invars[0].aval.shape if eqn.invars else ()
        if name == "dot_general":
            (lc, _), _ = eqn.params["dimension_numbers"]
            total += int(np.prod([shape[i] for i in lc])) if lc else 1
        elif name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, *spatial)
            total += int(np.prod([rhs[i] for i in rhs_spec[1:]]))
        elif name.startswith("reduce_") or name in ("argmax", "argmin"):
            axes = eqn.params.get("axes", ())
            total += int(np.prod([shape[i] for i in axes])) if axes else 1
        elif name.startswith("cum"):  # cumsum, cumprod, cummax, cumlogsumexp
            total += int(shape[eqn.params["axis"]]) if shape else 1
        else:
            total += 1
    return max(total, 1)


_OPS: dict[Any, int] = {}


def cached_ops(kind: str, loss_fn, params, x, y) -> int:
    """:func:`count_ops` of one example's gradient / Hessian / value, cached by structure."""
    _, static = partition(loss_fn)
    leaves, treedef = jax.tree.flatten(params)
    spec = (treedef, tuple((tuple(np.shape(a)), str(jnp.asarray(a).dtype)) for a in leaves))
    key = (kind, static, spec, tuple(np.shape(x)), tuple(np.shape(y)))
    if key not in _OPS:
        fn = {"grad": _grad_ops, "hessian": _hessian_ops, "value": _value_ops}[kind]
        _OPS[key] = fn(loss_fn, params, x, y)
    return _OPS[key]


def _value_ops(loss_fn, params, x, y) -> int:
    return count_ops(lambda th, z: loss_fn(th, z, y), params, x)


def _hessian_ops(loss_fn, params, x, y) -> int:
    def hess_entry(th, z):
        return jax.hessian(lambda a, b: loss_fn(a, b, y), argnums=(0, 1))(th, z)

    return count_ops(hess_entry, params, x)


def _grad_ops(loss_fn, params, x, y) -> int:
    return count_ops(lambda th, z: jax.grad(loss_fn)(th, z, y), params, x)


def _value_scale(static, dyn, params, X, y, delta):
    r"""Per example :math:`|\ell| + \sum|\partial_\theta\ell||\theta| + \sum|\partial_z\ell||z|`."""
    loss_fn = combine(dyn, static)

    def one(x, yi, dl):
        z = x + dl
        v, (gth, gz) = jax.value_and_grad(loss_fn, argnums=(0, 1))(params, z, yi)
        th = sum(
            jnp.sum(jnp.abs(g) * jnp.abs(t))
            for g, t in zip(jax.tree.leaves(gth), jax.tree.leaves(params), strict=True)
        )
        return jnp.abs(v) + th + jnp.abs(gz) @ jnp.abs(z)

    return jax.vmap(one)(X, y, delta)


_value_scale_jit = jax.jit(_value_scale, static_argnames=("static",))


def _loss_error(loss_fn, params, X, y, delta) -> jax.Array:
    dyn, static = partition(loss_fn)
    scale = _value_scale_jit(static, dyn, params, X, y, _as_dtype(delta, np.dtype(X.dtype)))
    # k: the ops of one evaluation of ℓ, plus the sum z = x + δ
    k = cached_ops("value", loss_fn, params, X[0], y[0]) + 1
    return tolerance.gamma(k, X.dtype) * scale


def loss_error(
    loss_fn: LossFn, params: Any, X: ArrayLike, y: ArrayLike, delta: ArrayLike
) -> jax.Array:
    r"""Bound on the rounding error of :math:`\ell(x_i + \delta_i)` as computed, per example (n,).

    :math:`\gamma_k\big(|\ell| + \sum_j|\partial_{\theta_j}\ell|\,|\theta_j|
    + \sum_j|\partial_{z_j}\ell|\,|z_j|\big)` at :math:`z = x_i + \delta_i`, in the unit
    roundoff of the working dtype, ``k`` the operations of one evaluation
    (:func:`count_ops`) plus the sum :math:`x + \delta`. Each operation perturbs its
    result by a relative :math:`u`; to first order the value moves by the sensitivity to
    each intermediate times its size, and for the affine layers of a network those
    terms are dominated by the parameter and input terms above, so their sum times
    :math:`\gamma_k` (k counts every operation) bounds the error. Two values differ
    significantly only when they differ by more than the sum of their bounds.

    Example:
        At δ = 0 both margins are 1, and the loss computed in the working dtype is within
        its bound of the exact :math:`\log(1 + e^{-1})`:

        >>> import math, jax
        >>> import jax.numpy as jnp
        >>> from advlip import attacks, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> err = attacks.loss_error(models.LinearLoss(), params, X, y, jnp.zeros((2, 2)))
        >>> loss = jax.vmap(lambda x, yi: models.LinearLoss()(params, x, yi))(X, y)
        >>> err.shape, bool(jnp.all(jnp.abs(loss - math.log1p(math.exp(-1.0))) <= err))
        ((2,), True)
    """
    loss_fn, params, X, y, _, dt = prepare_problem(loss_fn, params, X, y, 0.0, 2.0)
    delta = jnp.asarray(delta)
    if delta.shape != X.shape:
        raise ValueError(f"delta must have the shape of X, {X.shape}, got {delta.shape}")
    return _loss_error(loss_fn, params, X, y, delta.astype(dt))


# --------------------------------------------------------------------------- the public attack


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
    structured_starts: int = 2,
    mode: str = "certified",
) -> AttackResult | LightResult:
    r"""Solve the inner maximisation for every row of ``X``: the PGD attack.

    The maximisers δ* of the adversarial loss (docs/theory/general-models.md).

    :math:`\max_{\|\delta_i\|_p \le \varepsilon} \ell(x_i + \delta_i, y_i; \theta)`, each example
    with its own maximiser. Each returned δ comes with a KKT certificate (``converged``:
    a *local*, first-order certificate) and, with ``structured_starts`` ≥ 1, with a
    screen for higher values elsewhere in the ball (``beaten``); no finite search
    certifies the global maximum of a non-concave loss.

    Args:
      loss_fn: ``loss_fn(params, x, y) -> scalar`` for ONE example (hashable callable).
      params: pytree of float arrays (held fixed here).
      X: examples (n, d).
      y: their labels or targets (n,).
      eps: the radius ε of the threat model :math:`B_p(\varepsilon)`.
      p: its norm, p ∈ {1, 2, ∞}.
      steps: steepest-ascent steps (phase 1), of size ``step_size``
        (default :math:`2.5\varepsilon/\text{steps}`, Madry et al.).
      refine_steps: projected-gradient steps with backtracking (phase 2).
      newton_steps: Newton steps on the active face (phase 3), each a CG solve of at
        most ``cg_maxiter`` (default ``2d + 5``) Hessian-vector products in x.
      restarts: starts per example; the first is ``init`` (default 0) unless
        ``random_start``, the others uniform in the ball. The best final loss wins.
      key: PRNG key of the random starts and screened points (default ``PRNGKey(0)``:
        deterministic).
      init: warm start (n, d), e.g. the δ* of a nearby θ.
      x_solver: how the d×d systems in x (Newton steps, the tangent spectrum) are
        solved: ``"dense"`` (``jax.jacfwd`` of the input gradient, LAPACK), ``"cg"``
        (matrix-free: CG and Lanczos on Hessian-vector products), or ``"auto"``:
        dense for d ≤ 64 (it compiles faster), matrix-free above.
      rtol: converged iff KKT residual ≤ ``atol + rtol * ‖∇_x ℓ(x_i)‖``: the accuracy
        asked of the attack (1e-6 ≈ 17 float32 unit roundoffs is attainable in float32 and float64
        alike). It is a request, not an error bound: the residual's own rounding enters
        the δ error bound of :func:`advlip.adversarial.linearize` separately.
      atol: the absolute part of that tolerance.
      structured_starts: screen the structured points of the norm and random points of
        the ball by value (see the module docstring), refine the best this many of them
        as extra starts, and flag ``beaten`` examples. 0 turns screening off: a purely
        local attack from the given starts (``beaten`` is then ``None``).
      mode: ``"certified"`` (default) runs the three phases above and returns an
        :class:`AttackResult`. ``"light"`` runs phase 1 only — ``steps`` steepest-ascent
        steps from ``init`` (default 0) of size ``step_size`` (default
        :math:`2.5\varepsilon/\text{steps}`), keeping the best iterate met — and returns a
        :class:`LightResult` ``(delta, loss)``: no certificate, no screening, no random
        starts; the attack adversarial training runs every step. It is traceable: call
        it inside ``jax.jit`` with traced ``params``, ``X``, ``y``, ``eps``, ``steps``
        (an integer array) and ``init`` (``p`` static), and one compiled program serves
        every ``steps`` and ε. The options of the certified phases (``refine_steps``,
        ``newton_steps``, ``restarts``, ``random_start``, ``key``, ``cg_maxiter``,
        ``x_solver``, ``rtol``, ``atol``, ``structured_starts``) are refused with
        ``mode="light"`` unless left at their defaults.

    The phase lengths are traced: changing them does not recompile. Returns an
    :class:`AttackResult`; check ``all_converged`` or call
    :meth:`AttackResult.require_converged` before trusting δ, and ``beaten`` before
    calling it the maximiser.

    Example:
        One compiled program serves every norm: in the L∞ ball of radius 2 the maximiser
        is the vertex :math:`-y\varepsilon\operatorname{sign}(w) = \mp(2, 2)`, where the
        margin is :math:`1 - \varepsilon\|w\|_1 = -0.4` and the softplus loss
        :math:`\log(1 + e^{0.4}) = 0.9130` (docs/theory/lin-linf.md).

        >>> import math
        >>> import jax.numpy as jnp
        >>> from advlip import attacks, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> res = attacks.pgd(models.LinearLoss(), params, X, y, eps=2.0, p=math.inf)
        >>> res.delta.tolist(), res.cases
        ([[-2.0, -2.0], [2.0, 2.0]], ('linf_vertex', 'linf_vertex'))
        >>> tuple(round(float(v), 4) for v in res.loss), bool(res.all_converged)
        ((0.913, 0.913), True)
    """
    if mode != "certified":  # "light", or a bad mode (named with the allowed values there)
        return _pgd_light(
            loss_fn,
            params,
            X,
            y,
            eps=eps,
            p=p,
            mode=mode,
            steps=steps,
            step_size=step_size,
            init=init,
            certified_only={
                "refine_steps": refine_steps,
                "newton_steps": newton_steps,
                "restarts": restarts,
                "random_start": random_start,
                "key": key,
                "cg_maxiter": cg_maxiter,
                "x_solver": x_solver,
                "rtol": rtol,
                "atol": atol,
                "structured_starts": structured_starts,
            },
        )
    loss_fn, params, X, y, p, dt = prepare_problem(loss_fn, params, X, y, eps, p)
    n, d = X.shape
    counts = [
        check_positive_int("steps", steps, minimum=0),
        check_positive_int("refine_steps", refine_steps, minimum=0),
        check_positive_int("newton_steps", newton_steps, minimum=0),
    ]
    restarts = check_positive_int("restarts", restarts)
    structured = check_positive_int("structured_starts", structured_starts, minimum=0)
    for name, val in (("rtol", rtol), ("atol", atol)):
        if isinstance(val, bool) or not (
            isinstance(val, int | float) and math.isfinite(val) and val >= 0
        ):
            raise ValueError(f"{name}={val!r} is not allowed; allowed: a finite real >= 0")
    if init is None:
        init = np.zeros((n, d), dtype=dt)
    else:
        init = np.asarray(init)
        if init.ndim > 2 and init.shape[0] == n and init.size == n * d:
            init = init.reshape(n, d)  # a δ in the shape of the images
        if init.shape != (n, d):
            raise ValueError(f"init must have the shape of X, {(n, d)}, got {init.shape}")
        check_finite("init", init)
        init = init.astype(dt)
    eps_arr = np.asarray(eps, dtype=dt)
    if step_size is None:
        alpha = 2.5 * float(eps) / max(counts[0], 1)
    else:
        check_eps(step_size, "step_size")
        alpha = float(step_size)
    starts = init[:, None, :]
    if restarts > 1 or random_start:
        rnd = _sample(_np_rng(key), (n, restarts, d), float(eps), p).astype(dt)
        starts = rnd if random_start else np.concatenate([starts, rnd[:, 1:]], axis=1)
    screened = None
    if structured > 0 and float(eps_arr) > 0:
        cands, vals = screen(loss_fn, params, X, y, eps_arr, p, key, starts)
        extra = _pick(cands, vals, _as_dtype(starts, dt), structured)
        starts = jnp.concatenate([jnp.asarray(starts), extra], axis=1)
        screened = (cands, vals)
    cfg = AttackConfig(
        cg_maxiter=check_positive_int(
            "cg_maxiter", 2 * d + 5 if cg_maxiter is None else cg_maxiter
        ),
        restarts=starts.shape[1],
        random_start=bool(random_start),
        lanczos_steps=min(d, 64),
        dense=dense_choice(x_solver, d, num_params(params)),
    )
    att = run_attack(loss_fn, params, X, y, starts, eps_arr, alpha, counts, p, cfg, rtol, atol)
    if screened is not None:
        return mark_beaten(loss_fn, params, X, y, att, *screened)
    if structured > 0:  # ε = 0: the ball is a point, nothing can be higher
        return dataclasses.replace(
            att,
            value_error=_loss_error(loss_fn, params, X, y, att.delta),
            best_other=att.loss,
            beaten=jnp.zeros(n, dtype=bool),
        )
    return att


# --------------------------------------------------------------------------- the light mode

__all__ += ["PGD_MODES", "LightResult", "InputShaped", "flat_shape"]

#: The modes of :func:`pgd`: ``"certified"`` (three phases, KKT certificate, screening)
#: and ``"light"`` (phase 1 only: fixed-size steepest ascent, best iterate kept).
PGD_MODES: tuple[str, ...] = ("certified", "light")


class LightResult(NamedTuple):
    r"""What :func:`pgd` returns with ``mode="light"``: the best iterate and its loss.

    The fields have the names, shapes and meaning of :class:`AttackResult`'s ``delta``
    and ``loss``; nothing is certified (no KKT residual, no screen for higher values).
    A tuple: ``delta, loss = pgd(..., mode="light")``.

    Example:
        For a linear model every steepest-ascent step points along :math:`-yw/\|w\|`, so
        ten steps of 2.5ε/10 reach the maximiser ∓(1.2, 1.6) on the sphere of radius 2,
        where the softplus loss is log 2 (docs/theory/closed-form.md):

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import attacks, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> delta, loss = attacks.pgd(models.LinearLoss(), params, X, y, eps=2.0, p=2, steps=10,
        ...                           mode="light")
        >>> np.round(np.asarray(delta, float), 4).tolist(), tuple(round(float(v), 4) for v in loss)
        ([[-1.2, -1.6], [1.2, 1.6]], (0.6931, 0.6931))
    """

    delta: jax.Array  # (n, d), in the ball
    loss: jax.Array  # (n,), the loss at x + delta: >= the loss at the (projected) start


def _light_one(loss_fn, params, x, y, delta0, eps, alpha, steps, p):
    r"""Phase 1 of :func:`pgd` on one example from ``delta0``, keeping the best iterate:
    :math:`\delta \leftarrow \Pi(\delta + \alpha u(g))` ``steps`` times (a traced count)."""
    vg = jax.value_and_grad(lambda dl: loss_fn(params, x + dl, y))

    def body(_, carry):
        dl, best, best_val = carry
        val, g = vg(dl)
        better = val > best_val
        best = jnp.where(better, dl, best)
        best_val = jnp.where(better, val, best_val)
        return _project(dl + alpha * _steepest(g, p), eps, p), best, best_val

    d0 = _project(delta0, eps, p)
    dl, best, best_val = lax.fori_loop(0, steps, body, (d0, d0, jnp.asarray(-jnp.inf, d0.dtype)))
    val = loss_fn(params, x + dl, y)
    better = val > best_val
    return jnp.where(better, dl, best), jnp.where(better, val, best_val)


def _light_batch(dyn, params, X, y, delta0, eps, step_size, steps, *, static, p):
    loss_fn = combine(dyn, static)
    # Madry et al.'s step 2.5ε/steps, computed in the program so steps and ε stay traced
    alpha = 2.5 * eps / jnp.maximum(steps, 1) if step_size is None else step_size
    run = jax.vmap(lambda x, yi, d0: _light_one(loss_fn, params, x, yi, d0, eps, alpha, steps, p))
    return run(X, y, delta0)


_light_jit = jax.jit(_light_batch, static_argnames=("static", "p"))


def _is_default(value: Any, default: Any) -> bool:
    if value is None or default is None:
        return value is default
    return (
        isinstance(value, bool | int | float | str)
        and type(value) is type(default)
        and value == default
    )


def _pgd_light(loss_fn, params, X, y, *, eps, p, mode, steps, step_size, init, certified_only):
    """``pgd(..., mode="light")``: validated (statically under ``jit``), then compiled once."""
    if mode not in PGD_MODES:
        raise ValueError(
            f"mode={mode!r} is not allowed; allowed: {', '.join(repr(m) for m in PGD_MODES)}"
        )
    import inspect

    defaults = {k: v.default for k, v in inspect.signature(pgd).parameters.items()}
    given = [f"{k}={v!r}" for k, v in certified_only.items() if not _is_default(v, defaults[k])]
    if given:
        raise ValueError(
            f"{', '.join(given)}: not allowed with mode='light', which takes steps, step_size "
            "and init only (the other options belong to the certified phases); allowed: "
            "leave them at their defaults, or use mode='certified'"
        )
    loss_fn, params, X, y, p, dt = prepare_problem(loss_fn, params, X, y, eps, p)
    if is_traced(steps):
        if np.shape(steps) != () or not jnp.issubdtype(jnp.result_type(steps), jnp.integer):
            raise ValueError(f"steps must be an integer scalar, got a traced {steps}")
    else:
        steps = check_positive_int("steps", steps, minimum=0)
    if step_size is not None:
        check_eps(step_size, "step_size")
        step_size = jnp.asarray(step_size, dtype=dt)
    if init is None:
        delta0 = jnp.zeros(X.shape, dtype=dt)
    else:
        delta0 = jnp.asarray(init)
        if delta0.ndim > 2 and delta0.size == X.size:
            delta0 = delta0.reshape(X.shape)  # a δ in the shape of the images
        if delta0.shape != X.shape:
            raise ValueError(f"init must have the shape of X, {X.shape}, got {delta0.shape}")
        check_finite("init", delta0)
        delta0 = delta0.astype(dt)
    dyn, static = partition(loss_fn)
    delta, loss = _light_jit(
        dyn,
        params,
        X,
        y,
        delta0,
        jnp.asarray(eps, dtype=dt),
        step_size,
        jnp.asarray(steps, dtype=jnp.int32),
        static=static,
        p=p,
    )
    return LightResult(delta, loss)
