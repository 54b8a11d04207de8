r"""Lp norms, dual exponents, dual directions and Lp-ball projections.

The threat model is the ball :math:`B_p(\varepsilon) = \{\delta : \|\delta\|_p \le \varepsilon\}`
with dual exponent :math:`q`, :math:`1/p + 1/q = 1`. Hölder's inequality
:math:`|w\cdot\delta| \le \|w\|_q \|\delta\|_p` is attained by
:math:`\delta = \varepsilon\, u(w)` with :math:`u(w) \in \partial\|w\|_q`
(docs/theory/closed-form.md):

* :math:`1 < q < \infty`: :math:`u_i = \operatorname{sign}(w_i)\,(|w_i|/\|w\|_q)^{q-1}`;
* :math:`q = 1` (:math:`p = \infty`): :math:`u = \operatorname{sign}(w)`;
* :math:`q = \infty` (:math:`p = 1`): :math:`u = \operatorname{sign}(w_k) e_k`, :math:`k \in \arg\max_i |w_i|`.

``p``/``q`` are static Python floats (``math.inf`` for ∞); arrays may be traced.

Examples:
    >>> import jax.numpy as jnp
    >>> from advlip import norms
    >>> norms.dual_exponent(1.0), norms.dual_exponent(2.0), norms.dual_exponent(float("inf"))
    (inf, 2.0, 1.0)
    >>> float(norms.lp_norm(jnp.array([3.0, -4.0]), 2.0))
    5.0
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from advlip._validate import check_eps, check_p

__all__ = [
    "dual_exponent",
    "lp_norm",
    "dual_direction",
    "norm_hessian",
    "project_ball",
    "l2_radius",
]


def dual_exponent(p: float) -> float:
    """The Hölder conjugate ``q`` of ``p``: ``1/p + 1/q = 1`` (1 ↔ ∞, 2 ↔ 2).

    Examples:
        >>> from advlip.norms import dual_exponent
        >>> dual_exponent(1.0), dual_exponent(1.5), dual_exponent(2.0), dual_exponent(float("inf"))
        (inf, 3.0, 2.0, 1.0)
    """
    p = check_p(p)
    if p == 1.0:
        return math.inf
    if math.isinf(p):
        return 1.0
    return p / (p - 1.0)


def lp_norm(x: ArrayLike, p: float) -> jax.Array:
    r""":math:`\|x\|_p` over the last axis, scaled by :math:`\max_i |x_i|` so large ``p`` cannot overflow.

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.norms import lp_norm
        >>> x = jnp.array([3.0, -4.0])   # ‖x‖₁ = 7, ‖x‖₂ = 5, ‖x‖₃ = 91^(1/3), ‖x‖∞ = 4
        >>> [round(float(lp_norm(x, p)), 4) for p in (1.0, 2.0, 3.0, float("inf"))]
        [7.0, 5.0, 4.4979, 4.0]
        >>> lp_norm(jnp.ones((3, 4)), 2.0).tolist()   # one norm per row: √4
        [2.0, 2.0, 2.0]
    """
    p = check_p(p)
    x = jnp.asarray(x)
    ax = jnp.abs(x)
    if p == 1.0:
        return jnp.sum(ax, axis=-1)
    if math.isinf(p):
        return jnp.max(ax, axis=-1)
    scale = jnp.max(ax, axis=-1, keepdims=True)
    safe = jnp.where(scale > 0, scale, 1.0)
    if p == 2.0:
        r = x / safe
        return safe[..., 0] * jnp.sqrt(jnp.sum(r * r, axis=-1))
    return safe[..., 0] * jnp.sum((ax / safe) ** p, axis=-1) ** (1.0 / p)


def dual_direction(w: ArrayLike, *, q: float) -> jax.Array:
    r"""A unit-:math:`p` subgradient :math:`u(w) \in \partial \|w\|_q` (last axis).

    It satisfies :math:`u\cdot w = \|w\|_q` and :math:`\|u\|_p = 1` for :math:`w \ne 0`
    (docs/theory/closed-form.md). At :math:`w = 0` it returns 0, a valid subgradient;
    the gradient of :math:`\|w\|_q` does not exist there. For :math:`q = \infty` ties of
    the largest :math:`|w_i|` resolve to the first index.

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.norms import dual_direction
        >>> w = jnp.array([3.0, -4.0])
        >>> u = dual_direction(w, q=2.0)                 # w / ‖w‖₂
        >>> [round(float(v), 4) for v in u], round(float(u @ w), 4)   # u·w = ‖w‖₂
        ([0.6, -0.8], 5.0)
        >>> dual_direction(w, q=1.0).tolist()           # p = ∞: sign(w)
        [1.0, -1.0]
        >>> dual_direction(w, q=float("inf")).tolist()  # p = 1: the largest |w_i| only
        [0.0, -1.0]
    """
    q = check_p(q, "q")
    w = jnp.asarray(w)
    if q == 1.0:
        return jnp.sign(w)
    if math.isinf(q):
        k = jnp.argmax(jnp.abs(w), axis=-1)
        onehot = jax.nn.one_hot(k, w.shape[-1], dtype=w.dtype)
        return onehot * jnp.sign(w)
    n = lp_norm(w, q)[..., None]
    safe = jnp.where(n > 0, n, 1.0)
    if q == 2.0:  # w/‖w‖ exactly: a power with a float exponent costs an exp and a log
        return w / safe
    return jnp.sign(w) * (jnp.abs(w) / safe) ** (q - 1.0)


def norm_hessian(w: ArrayLike, *, q: float) -> jax.Array:
    r"""Hessian of :math:`\|w\|_q` (1-D ``w``), where it exists.

    .. math:: \nabla^2 \|w\|_q = \frac{q-1}{N}\Big[\operatorname{diag}\big((|w_i|/N)^{q-2}\big) - u u^\top\Big],
              \quad N = \|w\|_q,

    which is :math:`(I - \hat w \hat w^\top)/\|w\|_2` for :math:`q = 2`. For :math:`q \in \{1, \infty\}`
    it is 0 wherever :math:`\|w\|_q` is differentiable (``u`` is locally constant).
    Entries are ``inf`` where :math:`1 < q < 2` and some :math:`w_i = 0` (the
    Hessian does not exist there: docs/theory/lin-lp.md).

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.norms import norm_hessian
        >>> H = norm_hessian(jnp.array([3.0, 4.0]), q=2.0)   # (I - ŵŵᵀ)/5, ŵ = (0.6, 0.8)
        >>> [[round(float(v), 4) for v in row] for row in H]
        [[0.128, -0.096], [-0.096, 0.072]]
        >>> bool(jnp.isinf(norm_hessian(jnp.array([0.0, 1.0]), q=1.5)).any())
        True
    """
    q = check_p(q, "q")
    w = jnp.asarray(w)
    d = w.shape[-1]
    if q == 1.0 or math.isinf(q):
        return jnp.zeros((d, d), dtype=w.dtype)
    n = lp_norm(w, q)
    u = dual_direction(w, q=q)
    r = jnp.abs(w) / n
    if q == 2.0:
        diag = jnp.ones_like(w)
    else:
        # 0 ** negative = inf: the Hessian does not exist at w_i = 0 for q < 2.
        diag = r ** (q - 2.0)
    return (q - 1.0) / n * (jnp.diag(diag) - jnp.outer(u, u))


def _project_l1(v: jax.Array, eps: ArrayLike) -> jax.Array:
    """One vector onto the L1 ball (Duchi et al. 2008), every operation in ``v``'s dtype.

    B_1(0) = {0} is handled here (the sort-based method divides by eps)."""
    dt = v.dtype
    a = jnp.abs(v)
    inside = jnp.sum(a) <= eps
    scale = jnp.asarray(jnp.where(eps > 0, eps, 1.0), dtype=dt)
    w = a / scale
    u = jnp.sort(w)[::-1]
    css = jnp.cumsum(u)
    ind = jnp.arange(1, v.shape[0] + 1).astype(dt)
    idx = jnp.count_nonzero(1.0 / ind + (u - css / ind) > 0)
    k = idx.astype(dt)
    proj = jax.nn.relu(1.0 / k + (w - css[idx - 1] / k))
    out = jnp.where(inside, v, jnp.sign(v) * (scale * proj))
    return jnp.where(eps > 0, out, jnp.zeros_like(v))


def project_ball(delta: ArrayLike, *, eps: ArrayLike, p: float) -> jax.Array:
    r"""Euclidean projection of ``delta`` (last axis) onto :math:`B_p(\varepsilon)`.

    ``p`` ∈ {1, 2, ∞}; L1 by the sort-based method of Duchi et al. 2008 (a true Euclidean
    projection, not a rescaling), in the operation order of
    ``optax.projections.projection_l1_ball`` but with every division in ``delta``'s dtype:
    optax divides by an integer count, which JAX promotes to float64 when float64 is
    enabled, so a float32 vector fails its ``lax.cond`` (branches of different dtypes).
    The result keeps ``delta``'s dtype.

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.norms import project_ball
        >>> def show(v):
        ...     return [round(float(x), 4) for x in v]
        >>> show(project_ball(jnp.array([3.0, 4.0]), eps=1.0, p=2.0))     # rescaled to norm 1
        [0.6, 0.8]
        >>> show(project_ball(jnp.array([3.0, -0.5]), eps=1.0, p=float("inf")))   # clipped
        [1.0, -0.5]

        Under ``jax.jit`` (as the attacks call it) the L1 projection is one compiled program;
        it soft-thresholds by τ = 1.25, where (2 − τ) + (1.5 − τ) = 1:

        >>> import jax
        >>> proj_l1 = jax.jit(lambda d: project_ball(d, eps=1.0, p=1.0))
        >>> show(proj_l1(jnp.array([2.0, -1.5])))
        [0.75, -0.25]
    """
    p = check_p(p)
    eps = check_eps(eps)
    delta = jnp.asarray(delta)
    if p == 1.0:
        proj = partial(_project_l1, eps=eps)

    elif p == 2.0:
        # v·min(1, eps/‖v‖) with ‖v‖ scaled by max|v_i| (no 0/0 at v = 0, no underflow of eps²)
        def proj(v):
            n = lp_norm(v, 2.0)
            return v * jnp.where(n > eps, eps / jnp.where(n > 0, n, 1.0), 1.0)

    elif math.isinf(p):
        return jnp.clip(delta, -eps, eps)
    else:
        raise ValueError(
            f"project_ball: p={p} is not supported; allowed: 1, 2, inf "
            "(general p has no closed-form Euclidean projection)"
        )
    flat = delta.reshape(-1, delta.shape[-1])
    return jax.vmap(proj)(flat).reshape(delta.shape)


def l2_radius(d: int, p: float) -> float:
    r"""Largest :math:`\|\delta\|_2` over :math:`B_p(1)` in :math:`\mathbb{R}^d`: :math:`d^{\max(0,\,1/2 - 1/p)}`.

    So :math:`\operatorname{diam}_2 B_p(\varepsilon) = 2\varepsilon\, d^{\max(0, 1/2-1/p)}`
    (docs/theory/liu.md).

    Examples:
        >>> from advlip.norms import l2_radius
        >>> l2_radius(4, 1.0), l2_radius(4, 2.0), l2_radius(4, float("inf"))   # ∞: the corner (1,1,1,1)
        (1.0, 1.0, 2.0)
    """
    p = check_p(p)
    inv_p = 0.0 if math.isinf(p) else 1.0 / p
    return float(d) ** max(0.0, 0.5 - inv_p)
