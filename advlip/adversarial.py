r"""The adversarial loss of any JAX model and its total curvature (docs/theory/general-models.md).

For a per-example ``loss_fn(params, x, y)`` (scalar), a batch ``X`` (n, d), ``y`` (n,)
and the threat model :math:`B_p(\varepsilon)`,

.. math:: L(\theta) = \operatorname{mean}_i\
          \max_{\|\delta\|_p\le\varepsilon} \ell(x_i+\delta, y_i; \theta),

every example with its own maximiser :math:`\delta_i^*(\theta)` (:func:`advlip.attacks.pgd`).
Write :math:`H_{\theta\theta}, H_{x\theta}, H_{xx}` for the blocks of the Hessian of
:math:`\ell` at :math:`(x_i + \delta_i^*, \theta)`.

* **G0 (Danskin).**
  :math:`\nabla L = \operatorname{mean}_i \nabla_\theta \ell(x_i+\delta_i^*, \theta)`.
* **Total Hessian by implicit differentiation.** At a KKT point with strict
  complementarity the active constraints define a face (the interior, the L2
  sphere, a face of the L∞ box or of the L1 ball) with orthogonal tangent projector
  :math:`P` and constraint curvature :math:`\mu` (the L2 multiplier
  :math:`\|\nabla_x\ell\|/\varepsilon`; 0 on the flat faces of L1 and L∞). If
  :math:`A = P(\mu I - H_{xx})P` is positive definite on the tangent space
  (the second-order condition),

  .. math:: D\delta^* = A^{+} P H_{x\theta}, \qquad
            \nabla^2 L = H_{\theta\theta} + H_{\theta x}\, A^{+} P H_{x\theta}
                      = H_{\theta\theta}
                        - H_{\theta x} P \big(P(H_{xx}-\mu I)P\big)^{+} P H_{x\theta},

  which is **G1** for :math:`P = I, \mu = 0` (interior:
  :math:`H_{\theta\theta} - H_{\theta x}H_{xx}^{-1}H_{x\theta}`),
  **G2** for :math:`P = I - \delta^*\delta^{*\top}/\varepsilon^2` (the bordered KKT
  system reduced to the tangent space), and **G3** for :math:`P = 0` (an L∞ vertex:
  :math:`\nabla^2 L = H_{\theta\theta}`). The *naive* Hessian, what a Hessian tool that
  holds δ fixed computes, is :math:`H_{\theta\theta}` alone.

:func:`total_hvp` computes :math:`\nabla^2 L\, v` matrix-free and at the cost of a few
batch gradients: one batch forward-over-reverse pass gives every example's
:math:`r_i = H^i_{x\theta}v` (the Z-gradient of :math:`\sum_i\ell_i` along θ), the tangent
solves :math:`u_i = A_i^+P_ir_i` run in x (CG with x-space Hessian-vector products, or a
factorisation made once per point, :meth:`AdversarialPoint.matvec`), and one more batch
pass along :math:`(v, U)` gives :math:`\operatorname{mean}_i H^i_{\theta\theta}v +
H^i_{\theta x}u_i`. Per-example work lives in x (size d) only: no n × P intermediate
is formed. The tangent operator is :class:`advlip.tangent.TangentOperator`, the same one
the attack's Newton steps use. :func:`total_hessian` builds the dense matrix from
per-example blocks (small models). :func:`linearize` does the attack and the case
analysis once and returns an :class:`AdversarialPoint` (a pytree) whose methods reuse it;
with ``batch_size`` it streams over batches (:mod:`advlip.streaming`). To differentiate
through the attack with JAX's own transformations (``jax.hessian`` of the adversarial
loss), see :mod:`advlip.implicit`; the hand-written products here are the fast path and
its cross-check.

Where the hypotheses fail the total Hessian does not exist, and advlip says so
instead of returning a number (:class:`UndeterminedError`): an unconverged attack,
an attack whose δ is beaten by another start (a KKT point, not the maximiser: the
curvature there is not that of L), a multiplier that vanishes (an L∞ switching
surface, an L1 tie: the gradient jumps, docs/theory/gen-linf-vertex.md), an inactive
constraint closer than
the attack's error, or a tangent curvature that is not positive (the second-order
condition). With ``strict=False`` the public functions return the number anyway and
warn (:class:`UndeterminedWarning`) with the count and the most common reason.

**Precision.** Everything runs in the working dtype, the least precise of ``params``
and ``X`` (float32 parameters from flax or equinox stay float32), and every error
bound — :attr:`EigenEstimate.bound`, :attr:`Blocks.error`,
:meth:`AdversarialPoint.gradient_error`, :meth:`AdversarialPoint.hvp_error`,
:attr:`FDHessian.value_error`, the case-analysis thresholds — uses that dtype's unit
roundoff and covers both the rounding of the computation and the attack's error.

Example (in float32 or float64 alike: the matrix-free top eigenvalue agrees with the
dense Hessian's within the sum of their error bounds, ‖E‖₂ ≤ Σ|E_ij| for the dense one):
    >>> import jax.numpy as jnp, numpy as np
    >>> from advlip import adversarial, models
    >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.0)}
    >>> X, y = jnp.array([[0.5, 1.0], [1.0, -1.0]]), jnp.array([1.0, -1.0])
    >>> pt = adversarial.linearize(models.LinearLoss(), params, X, y, eps=0.1, p=2)
    >>> B, est = pt.blocks(), pt.top_eigenvalue()
    >>> B.total.shape  # over (b, w): ravel_pytree order
    (3, 3)
    >>> top = np.linalg.eigvalsh(np.asarray(B.total, dtype=np.float64))[-1]
    >>> bool(abs(float(est.value) - top) <= float(est.bound) + float(np.sum(B.error)))
    True
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from advlip import spectral, tolerance
from advlip._validate import is_traced
from advlip.attacks import (  # noqa: F401  (count_ops, cached_ops: re-exported)
    DENSE_MAX_D,
    KKT,
    AttackConfig,
    AttackNotConvergedError,
    AttackResult,
    cached_ops,
    combine,
    count_ops,
    dense_choice,
    face_certificate,
    flat_shape,
    mark_beaten,
    num_params,
    partition,
    pgd,
    prepare_problem,
    run_attack,
    screen,
    tangent_project,
)
from advlip.keys import check_key
from advlip.tangent import TangentOperator, delta_error

__all__ = [
    "STATUS",
    "Status",
    "UndeterminedError",
    "UndeterminedWarning",
    "AdversarialPoint",
    "linearize",
    "adversarial_loss",
    "danskin_grad",
    "total_hvp",
    "naive_hvp",
    "total_hessian",
    "naive_hessian",
    "top_eigenvalue",
    "EigenEstimate",
    "Blocks",
    "FDHessian",
    "fd_hessian",
    "resolve_grads",
    "count_ops",
]

#: Status of each example's total Hessian, indexed by :attr:`AdversarialPoint.status`.
STATUS: tuple[str, ...] = (
    "determined",
    "attack not converged",
    "degenerate multiplier (switching surface / tie)",
    "inactive constraint within the attack error",
    "second-order condition fails",
    "another start found a higher value",
)


#: How the message of :class:`UndeterminedError` introduces the hypotheses of the total
#: Hessian (:mod:`advlip.streaming` appends the text from here on to its own message).
HYPOTHESES_START = "The total Hessian (docs/theory/general-models.md) needs, per example,"


class Status(enum.IntEnum):
    """The values of :attr:`AdversarialPoint.status`; ``Status(k).message`` is ``STATUS[k]``.

    Example:
        >>> from advlip.adversarial import Status
        >>> Status(0).message, Status.SECOND_ORDER_FAILS.message
        ('determined', 'second-order condition fails')
    """

    DETERMINED = 0
    NOT_CONVERGED = 1
    DEGENERATE_MULTIPLIER = 2
    INACTIVE_NEAR = 3
    SECOND_ORDER_FAILS = 4
    BEATEN = 5

    @property
    def message(self) -> str:
        return STATUS[self.value]


class UndeterminedError(ValueError):
    """The total Hessian of the adversarial loss is not determined at this point.

    Example:
        Labels 0 for a margin loss make ℓ constant in x: the attack stays in the interior
        with :math:`H_{xx} = 0`, where the second-order condition fails, and the message
        names the likely cause.

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> pt = adversarial.linearize(models.LinearLoss(), params, X, jnp.zeros(2), eps=2.0, p=2)
        >>> pt.require_determined()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advlip.adversarial.UndeterminedError: the total Hessian of the adversarial loss is not determined at this θ for 2 of 2 example(s): example 0: second-order condition fails ... Likely cause: the labels y are in {0, 1}, ...
    """


class UndeterminedWarning(UserWarning):
    """``strict=False`` returned a number although some examples are undetermined.

    Example:
        :class:`UndeterminedError`'s labels-0 problem with ``strict=False``: a warning and
        a matrix of the right shape, not to be trusted (read ``status``):

        >>> import warnings
        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     H = adversarial.total_hessian(models.LinearLoss(), params, X, jnp.zeros(2),
        ...                                   eps=2.0, p=2, strict=False)
        >>> any(w.category is adversarial.UndeterminedWarning for w in caught), H.shape
        (True, (3, 3))
    """


# --------------------------------------------------------------------------- flat parameters


class _RavelSpec(NamedTuple):
    """Hashable description of a params pytree: ``ravel_pytree`` order without a closure."""

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]

    @property
    def size(self) -> int:
        return int(sum(int(np.prod(s)) for s in self.shapes))


def _ravel_spec(params: Any) -> _RavelSpec:
    leaves, treedef = jax.tree.flatten(params)
    return _RavelSpec(
        treedef,
        tuple(tuple(np.shape(leaf)) for leaf in leaves),
        tuple(str(jnp.asarray(leaf).dtype) for leaf in leaves),
    )


def _ravel(params: Any) -> jax.Array:
    leaves = jax.tree.leaves(params)
    return jnp.concatenate([jnp.ravel(jnp.asarray(leaf)) for leaf in leaves])


def _unravel(spec: _RavelSpec, flat: jax.Array) -> Any:
    out, start = [], 0
    for shape, dtype in zip(spec.shapes, spec.dtypes, strict=True):
        size = int(np.prod(shape))
        out.append(flat[start : start + size].reshape(shape).astype(dtype))
        start += size
    return jax.tree.unflatten(spec.treedef, out)


# --------------------------------------------------------------------------- x-space kernels
#
# Per-example work happens in x only (size d): the x-gradient, x-space Hessian-vector
# products, the tangent operator and its solve. θ-space quantities are formed for the
# batch at once by one forward-over-reverse pass (never an n × P intermediate); the
# per-example θ-space route below is kept for small P (the exact Frobenius norms behind
# the error bounds) and as the independent cross-check of the batch route.


def _hxx_matvec(loss_fn, params, z, y):
    gx = lambda zz: jax.grad(loss_fn, argnums=1)(params, zz, y)  # noqa: E731
    return lambda w: jax.jvp(gx, (z,), (w,))[1]


def _x_hessian(loss_fn, params, z, y) -> jax.Array:
    """The dense (d, d) Hessian of one example's loss in x (d forward passes)."""
    return jax.jacfwd(jax.grad(loss_fn, argnums=1), argnums=1)(params, z, y)


def _operator(loss_fn, params, z, y, face: KKT, dense: bool) -> TangentOperator:
    """One example's :class:`~advlip.tangent.TangentOperator` at ``z = x + δ``."""
    if dense:
        return TangentOperator(face, H=_x_hessian(loss_fn, params, z, y))
    return TangentOperator(face, hvp=_hxx_matvec(loss_fn, params, z, y))


def faces_at(loss_fn, params, X, y, delta, eps, p) -> KKT:
    """Every example's certificate re-derived from its δ (n,): what a derivative in δ
    (or in θ through δ*) must see move with δ."""
    G = jax.vmap(lambda z, yi: jax.grad(loss_fn, argnums=1)(params, z, yi))(X + delta, y)
    return jax.vmap(lambda dl, g: face_certificate(dl, g, eps, p))(delta, G)


def tangent_solves(loss_fn, params, Z, y, faces, R, *, dense: bool, cg_maxiter: int):
    """Per example :math:`u_i = A_i^+P_i r_i` (n, d), dense LAPACK or CG in x; both are
    ``lax.custom_linear_solve``, so JAX differentiates and transposes them implicitly."""

    def one(z, yi, face, r):
        op = _operator(loss_fn, params, z, yi, face, dense)
        return op.solve(r, solver="dense" if dense else "cg", maxiter=cg_maxiter)

    return jax.vmap(one)(Z, y, faces, R)


def _tangent_inverse(static, dyn, params, X, y, delta, c):
    """Per example :math:`A^+ P = P(A + I - P)^{-1}P`, (n, d, d), from the dense x-Hessian."""
    loss_fn = combine(dyn, static)

    def one(args):
        z, yi, ci = args
        return _operator(loss_fn, params, z, yi, ci, dense=True).pinv()

    # examples in chunks: a dense x-Hessian holds d × the model's activations per example
    n, d = X.shape
    P = num_params(params)
    return lax.map(one, (X + delta, y, c), batch_size=_chunk(n, d * P, budget=1 << 25))


_tangent_inverse_jit = jax.jit(_tangent_inverse, static_argnames=("static",))


def _solve_batch(loss_fn, params, Z, y, c, R, cg_maxiter, Minv):
    """Per example :math:`u_i = A_i^+ P_i r_i` (n, d) and the CG iterations (n,): by the
    factorised ``Minv`` (n, d, d) when given, else CG with x-space Hessian-vector products."""
    if Minv is not None:
        return jnp.einsum("nij,nj->ni", Minv, R), jnp.zeros(R.shape[0], jnp.int32)

    def one(z, yi, ci, r):
        # linearised once per solve: every CG iteration evaluates only the tangent map of
        # the x-gradient (its forward activations are shared across the iterations)
        gx = lambda zz: jax.grad(loss_fn, argnums=1)(params, zz, yi)  # noqa: E731
        op = TangentOperator(ci, hvp=jax.linearize(gx, z)[1])
        u, iters, _ = op.solve(r, solver="cg", maxiter=cg_maxiter, with_info=True)
        return u, iters

    return jax.vmap(one)(Z, y, c, R)


# --------------------------------------------------------------------------- batch θ passes


def summed_loss(loss_fn, y):
    """:math:`(\\theta, Z) \\mapsto \\sum_i \\ell(\\theta, z_i, y_i)`: its Z-gradient's row i is
    example i's x-gradient, so one reverse pass gives every example's."""

    def total(th, Z):
        return jnp.sum(jax.vmap(lambda z, yi: loss_fn(th, z, yi))(Z, y))

    return total


def _x_pass(loss_fn, params, Z, y, v_tree):
    r"""R with row i = :math:`H^i_{x\theta}v`: one batch forward-over-reverse pass of the
    Z-gradient along θ."""
    grad_z = jax.grad(summed_loss(loss_fn, y), argnums=1)
    return jax.jvp(lambda th: grad_z(th, Z), (params,), (v_tree,))[1]


def _theta_pass(loss_fn, params, Z, y, v_tree, U):
    r""":math:`\sum_i H^i_{\theta\theta}v + H^i_{\theta x}u_i`: one batch forward-over-reverse
    pass of the θ-gradient along (v, U) (U = 0: the naive product)."""
    grad = jax.grad(summed_loss(loss_fn, y))
    return jax.jvp(grad, (params, Z), (v_tree, U))[1]


def _naive_pass(loss_fn, params, Z, y, v_tree):
    r""":math:`\sum_i H^i_{\theta\theta}v`: one batch forward-over-reverse pass of the θ-gradient."""
    grad = jax.grad(summed_loss(loss_fn, y))
    return jax.jvp(lambda th: grad(th, Z), (params,), (v_tree,))[1]


def _batch_products(loss_fn, params, X, y, delta, c, v_tree, cg_maxiter, Minv, hessian):
    r"""The mean total (or naive) Hessian-vector product of the batch, :math:`D\delta^*v`
    (n, d) and the CG iterations (n,). Total: one batch pass for
    :math:`R = H_{x\theta}v`, n tangent solves in x, one batch pass along
    (v, U); naive: one batch pass (U and the iterations are then ``None``)."""
    Z = X + delta
    n = X.shape[0]
    mean = lambda t: jax.tree.map(lambda a: a / n, t)  # noqa: E731
    if hessian == "naive":
        return mean(_naive_pass(loss_fn, params, Z, y, v_tree)), None, None
    R = _x_pass(loss_fn, params, Z, y, v_tree)
    U, iters = _solve_batch(loss_fn, params, Z, y, c, R, cg_maxiter, Minv)
    return mean(_theta_pass(loss_fn, params, Z, y, v_tree, U)), U, iters


def _hvp(static, dyn, params, X, y, delta, c, v_tree, Minv, hessian, cg_maxiter):
    loss_fn = combine(dyn, static)
    return _batch_products(loss_fn, params, X, y, delta, c, v_tree, cg_maxiter, Minv, hessian)


_hvp_jit = jax.jit(_hvp, static_argnames=("static", "hessian", "cg_maxiter"))


def _cg_residuals(static, dyn, params, X, y, delta, c, v_tree, cg_maxiter):
    r"""Per example the true residual :math:`\|P r_i - M_i u_i\|` of the CG tangent solve
    in the total product at ``v`` and its iterations (one more x-space product each)."""
    loss_fn = combine(dyn, static)
    Z = X + delta
    R = _x_pass(loss_fn, params, Z, y, v_tree)

    def one(z, yi, ci, r):
        gx = lambda zz: jax.grad(loss_fn, argnums=1)(params, zz, yi)  # noqa: E731
        op = TangentOperator(ci, hvp=jax.linearize(gx, z)[1])
        u, iters, _ = op.solve(r, solver="cg", maxiter=cg_maxiter, with_info=True)
        return jnp.linalg.norm(op.project(r) - op.mv(u)), iters

    return jax.vmap(one)(Z, y, c, R)


_cg_residuals_jit = jax.jit(_cg_residuals, static_argnames=("static", "cg_maxiter"))


def _flat_hvp(static, dyn, spec, params, X, y, delta, c, cg_maxiter, hessian, Minv=None):
    """Flat :math:`v \\mapsto \\nabla^2 L\\,v` (``hessian="total"``) or
    :math:`\\operatorname{mean}_i H^i_{\\theta\\theta}v` (``"naive"``: one batch pass)."""
    loss_fn = combine(dyn, static)

    def mv(v):
        vt = _unravel(spec, v)
        return _ravel(
            _batch_products(loss_fn, params, X, y, delta, c, vt, cg_maxiter, Minv, hessian)[0]
        )

    return mv


def _eig(
    static, dyn, spec, params, X, y, delta, c, v0, Minv, hessian, cg_maxiter, method, num_steps
):
    mv = _flat_hvp(static, dyn, spec, params, X, y, delta, c, cg_maxiter, hessian, Minv)
    if method == "lanczos":
        return spectral.lanczos(mv, v0, num_steps=num_steps)
    return spectral.power_iteration(mv, v0, num_steps=num_steps)


_eig_jit = jax.jit(
    _eig, static_argnames=("static", "spec", "hessian", "cg_maxiter", "method", "num_steps")
)


# --------------------------------------------------------------------------- per-example θ route


def _example_products(loss_fn, params, z, y, c: KKT, v_tree, cg_maxiter: int):
    """One example's (total, naive) θ-space products, flat: the per-example route (small P,
    exact Frobenius norms; the cross-check of the batch route)."""
    grads = jax.grad(loss_fn, argnums=(0, 1))
    naive_t, r = jax.jvp(lambda th: grads(th, z, y), (params,), (v_tree,))[1]
    u = _operator(loss_fn, params, z, y, c, dense=False).solve(r, maxiter=cg_maxiter)
    gth = lambda zz: jax.grad(loss_fn)(params, zz, y)  # noqa: E731
    corr_t = jax.jvp(gth, (z,), (u,))[1]
    return _ravel(jax.tree.map(jnp.add, naive_t, corr_t)), _ravel(naive_t)


def _chunk(n: int, per_row: int, budget: int = 1 << 24) -> int:
    """Rows of a ``lax.map`` batch so that rows × per_row floats stay within ``budget``."""
    return int(max(1, min(n, budget // max(per_row, 1))))


def _frobenius(static, dyn, spec, params, X, y, delta, c, hessian, cg_maxiter):
    """Per example :math:`\\|H_i\\|_F` of the flat per-example operator (total or naive),
    exactly, from its P columns: P per-example products, no P×P matrix (small P)."""
    loss_fn = combine(dyn, static)
    n = X.shape[0]
    pick = 0 if hessian == "total" else 1

    def col(j, acc):
        vt = _unravel(spec, jax.nn.one_hot(j, spec.size, dtype=X.dtype))
        fn = lambda z, yi, ci: _example_products(  # noqa: E731
            loss_fn, params, z, yi, ci, vt, cg_maxiter
        )[pick]
        h = jax.vmap(fn)(X + delta, y, c)
        return acc + jnp.sum(h * h, axis=1)

    return jnp.sqrt(lax.fori_loop(0, spec.size, col, jnp.zeros(n, dtype=X.dtype)))


_frobenius_jit = jax.jit(_frobenius, static_argnames=("static", "spec", "hessian", "cg_maxiter"))


def _frobenius_probe(static, dyn, spec, params, X, y, delta, c, probes, hessian, cg_maxiter):
    """Per example a Hutchinson estimate of :math:`\\|H_i\\|_F`,
    :math:`\\sqrt{\\operatorname{mean}_k \\|H_i z_k\\|^2}` over Rademacher ``probes`` (m, P)
    (:math:`E\\|H z\\|^2 = \\|H\\|_F^2`). Examples in ``lax.map`` chunks: memory O(chunk × P)."""
    loss_fn = combine(dyn, static)
    pick = 0 if hessian == "total" else 1

    def one(args):
        z, yi, ci = args

        def sq(pr):
            h = _example_products(loss_fn, params, z, yi, ci, _unravel(spec, pr), cg_maxiter)
            return jnp.sum(h[pick] ** 2)

        return jnp.sqrt(jnp.mean(lax.map(sq, probes)))

    n = X.shape[0]
    return lax.map(one, (X + delta, y, c), batch_size=_chunk(n, 4 * spec.size))


_frobenius_probe_jit = jax.jit(
    _frobenius_probe, static_argnames=("static", "spec", "hessian", "cg_maxiter")
)


def _example_op(loss_fn, params, x, yi, dl, eps, p, v_tree, hessian):
    """One example's flat product :math:`h_i(v)` as a function of its δ, with the
    certificate (P, μ) re-derived from δ: its derivative in δ says how far the product
    moves when δ is off by a little. The tangent solve is dense: differentiated in δ."""
    g = jax.grad(loss_fn, argnums=1)(params, x + dl, yi)
    c = face_certificate(dl, g, eps, p)
    z = x + dl
    grads = jax.grad(loss_fn, argnums=(0, 1))
    nai, r = jax.jvp(lambda th: grads(th, z, yi), (params,), (v_tree,))[1]
    if hessian == "naive":
        return _ravel(nai)
    u = _operator(loss_fn, params, z, yi, c, dense=True).solve(r, solver="dense")
    corr = jax.jvp(lambda zz: jax.grad(loss_fn)(params, zz, yi), (z,), (u,))[1]
    return _ravel(jax.tree.map(jnp.add, nai, corr))


def _op_sensitivity(static, dyn, spec, params, X, y, delta, c, eps, v, hessian, p):
    """Per example the tangent-projected derivative in δ_i of :math:`h_i(v)`, row norms
    (n, P): d forward-mode passes per example, examples in ``lax.map`` chunks (memory
    O(chunk × d × P))."""
    loss_fn = combine(dyn, static)
    vt = _unravel(spec, v)
    d = X.shape[1]

    def one(args):
        x, yi, dl, ci = args
        f = lambda dd: _example_op(loss_fn, params, x, yi, dd, eps, p, vt, hessian)  # noqa: E731
        J = jax.jacfwd(f)(dl)
        return jnp.linalg.norm(jax.vmap(lambda row: tangent_project(ci, row))(J), axis=1)

    return lax.map(one, (X, y, delta, c), batch_size=_chunk(X.shape[0], d * spec.size))


_op_sensitivity_jit = jax.jit(_op_sensitivity, static_argnames=("static", "spec", "hessian", "p"))


def _quad_sensitivity(
    static, dyn, spec, params, X, y, delta, c, eps, v, hessian, p, dense, cg_maxiter
):
    r"""Per example the norm of the tangent-projected derivative in δ_i of
    :math:`q_i = v^\top h_i(v) = v^\top H^i_{\theta\theta}v + r_i^\top A_i^+P_i r_i`
    (:math:`r_i = H^i_{x\theta}v`), the certificate re-derived from δ, (n,).

    Batch-level: :math:`\sum_i q_i(\delta_i)` is separable, so one reverse pass over the
    batch products gives every example's derivative (the tangent solves differentiate
    implicitly, :func:`lax.custom_linear_solve`)."""
    loss_fn = combine(dyn, static)
    vt = _unravel(spec, v)

    def Q(D):
        Z = X + D
        if hessian == "naive":
            return _vdot(vt, _naive_pass(loss_fn, params, Z, y, vt))
        hv = _naive_pass(loss_fn, params, Z, y, vt)
        R = _x_pass(loss_fn, params, Z, y, vt)
        faces = faces_at(loss_fn, params, X, y, D, eps, p)
        U = tangent_solves(loss_fn, params, Z, y, faces, R, dense=dense, cg_maxiter=cg_maxiter)
        return _vdot(vt, hv) + jnp.sum(R * U)

    J = jax.grad(Q)(delta)
    return jnp.linalg.norm(jax.vmap(tangent_project)(c, J), axis=1)


_quad_sensitivity_jit = jax.jit(
    _quad_sensitivity, static_argnames=("static", "spec", "hessian", "p", "dense", "cg_maxiter")
)


def _vdot(a: Any, b: Any) -> jax.Array:
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _example_blocks(loss_fn, spec, theta, x, y, delta, c: KKT):
    """Dense per-example blocks and the example's total and naive Hessians."""
    z = x + delta

    def ell(th, zz):
        return loss_fn(_unravel(spec, th), zz, y)

    (Htt, Htx), (Hxt, Hxx) = jax.hessian(ell, argnums=(0, 1))(theta, z)
    U = TangentOperator(c, H=Hxx).pinv() @ Hxt  # Dδ*, (d, P)
    total = Htt + Hxt.T @ U
    # |terms| of the formula, for its rounding-error bound in the working dtype
    abs_terms = jnp.abs(Htt) + jnp.abs(Hxt.T) @ jnp.abs(U)
    return Htt, Hxt, Hxx, U, total, abs_terms


def _blocks(static, dyn, spec, theta, X, y, delta, c):
    loss_fn = combine(dyn, static)
    fn = lambda x, yi, dl, ci: _example_blocks(loss_fn, spec, theta, x, yi, dl, ci)  # noqa: E731
    return jax.vmap(fn)(X, y, delta, c)


_blocks_jit = jax.jit(_blocks, static_argnames=("static", "spec"))


def _blocks_sensitivity(static, dyn, spec, theta, X, y, delta, c, eps, p):
    """Per example, entrywise, the norm of the tangent-projected derivative in δ_i of the
    example's dense total Hessian (the certificate re-derived from δ), (n, P, P)."""
    loss_fn = combine(dyn, static)

    def one(x, yi, dl, ci):
        def total(dd):
            g = jax.grad(loss_fn, argnums=1)(_unravel(spec, theta), x + dd, yi)
            cc = face_certificate(dd, g, eps, p)
            return _example_blocks(loss_fn, spec, theta, x, yi, dd, cc)[4]

        J = jax.jacfwd(total)(dl)  # (P, P, d)
        JP = jax.vmap(jax.vmap(lambda row: tangent_project(ci, row)))(J)
        return jnp.linalg.norm(JP, axis=-1)

    return jax.vmap(one)(X, y, delta, c)


_blocks_sensitivity_jit = jax.jit(_blocks_sensitivity, static_argnames=("static", "spec", "p"))


# --------------------------------------------------------------------------- the linearisation


class Blocks(NamedTuple):
    """Dense per-example blocks at the attack (leading axis n) and the dense Hessians.

    ``Htt`` (n, P, P), ``Hxt`` (n, d, P), ``Hxx`` (n, d, d), ``Ddelta`` (n, d, P) the
    implicit Jacobian :math:`D\\delta^*_i`; ``total`` and ``naive`` (P, P) the means;
    ``error`` (P, P) the error bound of ``total``: rounding, :math:`\\gamma_k` in the unit
    roundoff of the working dtype times the sum of absolute terms (k counted by
    :func:`count_ops` on one example's Hessian, the d×d solve and the mean), plus the
    attack's error, :math:`\\operatorname{mean}_i \\|P_i\\partial_{\\delta_i} H_i\\|
    \\,\\|\\hat\\delta_i - \\delta_i^*\\|` entrywise (to first order).

    Example:
        w = (0.3, 0.4) has ‖w‖ = 0.5; in the L2 ball of radius ε = 2 both margins
        :math:`y\\,w\\cdot x = 1` drop by ε‖w‖ = 1 to 0, where the softplus loss has
        ℓ = log 2, ℓ' = −1/2 and ℓ'' = 1/4 (docs/theory/closed-form.md).
        By docs/theory/closed-form.md, with v = (0.8, −0.6) ⊥ w, the total Hessian over
        (b, w) is diag(ℓ'', (ℓ'' + |ℓ'|ε/‖w‖) vvᵀ) = diag(0.25, 2.25 vvᵀ); the naive one,
        δ held fixed, misses the second term: diag(0.25, 0.25 vvᵀ).

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> B = adversarial.linearize(models.LinearLoss(), params, X, y, eps=2.0, p=2).blocks()
        >>> B.Htt.shape, B.Hxt.shape, B.Hxx.shape, B.Ddelta.shape
        ((2, 3, 3), (2, 2, 3), (2, 2, 2), (2, 2, 3))
        >>> (np.round(np.asarray(B.total, float), 4) + 0.0).tolist()
        [[0.25, 0.0, 0.0], [0.0, 1.44, -1.08], [0.0, -1.08, 0.81]]
        >>> (np.round(np.asarray(B.naive, float), 4) + 0.0).tolist()
        [[0.25, 0.0, 0.0], [0.0, 0.16, -0.12], [0.0, -0.12, 0.09]]
        >>> exact = np.array([[0.25, 0.0, 0.0], [0.0, 1.44, -1.08], [0.0, -1.08, 0.81]])
        >>> bool(np.all(np.abs(np.asarray(B.total, float) - exact) <= B.error))
        True
    """

    Htt: jax.Array
    Hxt: jax.Array
    Hxx: jax.Array
    Ddelta: jax.Array
    total: jax.Array
    naive: jax.Array
    error: jax.Array


class EigenEstimate(NamedTuple):
    """An extreme eigenvalue of a Hessian and the distance within which an eigenvalue lies.

    ``bound`` is the sum of four parts, each also reported: ``krylov`` (the a-posteriori
    Lanczos bound :math:`|\\beta s|` or the power residual, exact arithmetic on the
    computed operator), ``rounding`` (of the eigensolver itself), ``operator`` (the
    rounding of the Hessian-vector products, :math:`\\|E\\|_2 \\le \\gamma_k
    \\operatorname{mean}_i\\|H_i\\|_F` plus the CG solves' error, in the working dtype)
    and ``attack`` (the eigenvalue's first-order sensitivity to the attack's error,
    :math:`\\operatorname{mean}_i \\|P_i\\nabla_{\\delta_i}(v^\\top H_i v)\\|\\,
    \\|\\hat\\delta_i - \\delta_i^*\\|`). ``exact_scale`` says whether the
    :math:`\\|H_i\\|_F` behind ``operator`` are exact (all P columns, P ≤
    :data:`FROBENIUS_MAX_P`) or Hutchinson estimates from the key (above it), and, for the
    total Hessian, whether every CG solve at the eigenvector stopped on its tolerance
    (:meth:`AdversarialPoint.cg_error`); when False, ``bound`` is an estimate.

    Example:
        The top eigenvalue of :class:`Blocks`' total Hessian is 2.25, within ``bound``,
        the sum of the four parts:

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> pt = adversarial.linearize(models.LinearLoss(), params, X, y, eps=2.0, p=2)
        >>> est = pt.top_eigenvalue()
        >>> round(float(est.value), 4), est.method, est.hessian, est.exact_scale
        (2.25, 'lanczos', 'total', True)
        >>> bool(abs(float(est.value) - 2.25) <= est.bound)
        True
        >>> bool(est.bound == est.krylov + est.rounding + est.operator + est.attack)
        True
    """

    value: jax.Array
    bound: Any
    method: str
    hessian: str
    steps: int
    krylov: float = 0.0
    rounding: float = 0.0
    operator: float = 0.0
    attack: float = 0.0
    exact_scale: bool = True


class EigenError(NamedTuple):
    """The error parts of an eigen-estimate (:meth:`AdversarialPoint.eigen_error`)."""

    operator: float
    attack: float
    exact: bool
    scale: float


#: Largest P for which the per-example Frobenius norms behind an error bound are computed
#: exactly from all P columns; above it they are Hutchinson estimates.
FROBENIUS_MAX_P = 256
#: Rademacher probes of the Hutchinson estimates of per-example Frobenius norms (large P).
FROBENIUS_PROBES = 4
#: Columns per batch pass when a dense Hessian is built from products
#: (:meth:`AdversarialPoint.total_hessian`): bounds the memory to this many products.
DENSE_COLUMNS_CHUNK = 32
#: Largest n·d·P for which the per-example :math:`\|H_{\theta x}\|_F` are computed exactly.
HXT_EXACT_MAX = 1 << 26


@dataclasses.dataclass(frozen=True, eq=False)
class AdversarialPoint:
    r"""The attack at θ, the case of every example, and the total curvature there.

    Built by :func:`linearize`. Per example (leading axis n):

    * ``attack``: the :class:`advlip.attacks.AttackResult` (δ*, KKT certificate);
    * ``tangent_min``, ``tangent_max``: extreme eigenvalues of
      :math:`A = P(\mu I - H_{xx})P` on the tangent space (``inf``/0 when it is {0}),
      with Lanczos error ``tangent_bound``; the second-order condition is
      ``tangent_min > 0``;
    * ``delta_error``: first-order bound :math:`(r + e_g)/(\lambda_{\min}(A) - e_\lambda)`
      on :math:`\|\hat\delta - \delta^*\|` from the KKT residual r, the rounding
      :math:`e_g` of the gradient it was computed from and the error
      :math:`e_\lambda` of the tangent curvature (all in the working dtype);
    * ``status``: index into :data:`STATUS` (0 = the total Hessian is determined),
      ``reasons``: one sentence per example.

    Everything is computed in the working dtype (:attr:`dtype`, the least precise of
    ``params`` and ``X``) and every error bound uses its unit roundoff.

    Example:
        w = (0.3, 0.4) has ‖w‖ = 0.5; in the L2 ball of radius ε = 2 both margins
        :math:`y\,w\cdot x = 1` drop by ε‖w‖ = 1 to 0, where the softplus loss has
        ℓ = log 2, ℓ' = −1/2 and ℓ'' = 1/4 (docs/theory/closed-form.md).
        The Danskin gradient over (b, w) is
        :math:`\operatorname{mean}_i \ell'\,(y_i, y_ix_i - \varepsilon w/\|w\|) = (0, -0.4, 0.3)`,
        and along v = (0, 0.8, −0.6) the total Hessian multiplies by 2.25.

        >>> from jax.flatten_util import ravel_pytree
        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> pt = adversarial.linearize(models.LinearLoss(), params, X, y, eps=2.0, p=2)
        >>> pt.cases, pt.all_determined, pt.dim, round(float(pt.loss()), 4)
        (('l2_boundary', 'l2_boundary'), True, 3, 0.6931)
        >>> (np.round(np.asarray(ravel_pytree(pt.grad())[0], float), 4) + 0.0).tolist()
        [0.0, -0.4, 0.3]
        >>> hv = pt.total_hvp(jnp.array([0.0, 0.8, -0.6]))  # flat, (b, w) order
        >>> (np.round(np.asarray(hv, float), 4) + 0.0).tolist()
        [0.0, 1.8, -1.35]
    """

    loss_fn: Any
    params: Any
    X: jax.Array
    y: jax.Array
    eps: jax.Array
    p: float
    attack: AttackResult
    tangent_min: jax.Array
    tangent_max: jax.Array
    tangent_bound: jax.Array
    delta_error: jax.Array
    status: np.ndarray
    reasons: tuple[str, ...]
    cg_maxiter: int
    dense: bool
    grad_rounding: Any = 0.0
    tangent_lower: Any = None
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    # -- case analysis ------------------------------------------------------
    @property
    def kkt(self) -> KKT:
        return self.attack.kkt

    @property
    def delta(self) -> jax.Array:
        return self.attack.delta

    @property
    def cases(self) -> tuple[str, ...]:
        return self.attack.cases

    @property
    def determined(self) -> np.ndarray:
        return np.asarray(self.status) == 0

    @property
    def all_determined(self) -> bool:
        return bool(np.all(self.determined))

    @property
    def spec(self) -> _RavelSpec:
        return _ravel_spec(self.params)

    @property
    def dim(self) -> int:
        """Number of parameters P (length of the flattened θ)."""
        return self.spec.size

    @property
    def dtype(self) -> np.dtype:
        """The working dtype: every computation ran in it, every error bound uses its roundoff."""
        return np.dtype(self.X.dtype)

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for case, st in zip(self.cases, self.status, strict=True):
            key = case if st == 0 else f"undetermined: {STATUS[int(st)]}"
            counts[key] = counts.get(key, 0) + 1
        return {
            **self.attack.summary(),
            "cases": counts,
            "min_tangent_curvature": float(np.min(np.asarray(self.tangent_min))),
            "max_delta_error": float(np.max(np.asarray(self.delta_error))),
        }

    def require_determined(self) -> None:
        """Raise :class:`UndeterminedError` (a ValueError) unless every example is determined."""
        if self.all_determined:
            return
        bad = np.flatnonzero(~self.determined)
        lines = "; ".join(f"example {i}: {self.reasons[i]}" for i in bad[:4])
        more = f" (and {bad.size - 4} more)" if bad.size > 4 else ""
        raise UndeterminedError(
            f"the total Hessian of the adversarial loss is not determined at this θ for "
            f"{bad.size} of {self.status.size} example(s): {lines}{more}. {HYPOTHESES_START}"
            " (a) a converged attack whose δ is the maximiser (no other start "
            "higher), (b) strict complementarity (every active "
            "constraint with a positive multiplier; a zero one is an L∞ switching surface or "
            "an L1 tie, where ∇L jumps), (c) inactive constraints farther than the attack's "
            "error, and (d) the second-order condition P(μI − H_xx)P ≻ 0 on the tangent "
            "space. Move θ or ε off the degenerate set, run the attack longer, or pass "
            "strict=False and read `status` / `reasons`." + _likely_cause(self.loss_fn, self.y)
        )

    # -- first order --------------------------------------------------------
    def loss(self) -> jax.Array:
        """:math:`L(\\theta)`, the mean attacked loss (G0)."""
        return jnp.mean(self.attack.loss)

    def grad(self) -> Any:
        """Danskin gradient (G0), a pytree like ``params``.

        :math:`\\operatorname{mean}_i \\nabla_\\theta\\ell(x_i+\\delta_i^*)`."""
        return self.attack.danskin_grad

    # -- second order -------------------------------------------------------
    def _products(self, v: Any, hessian: str):
        v_tree, flat = _as_tree(v, self.params)
        dyn, static = partition(self.loss_fn)
        hv, u, _ = _hvp_jit(
            static,
            dyn,
            self.params,
            self.X,
            self.y,
            self.delta,
            self.kkt,
            v_tree,
            None,
            hessian=hessian,
            cg_maxiter=self.cg_maxiter,
        )
        return (_ravel(hv) if flat else hv), u

    def total_hvp(self, v: Any) -> Any:
        r""":math:`\nabla^2 L\, v` (implicit differentiation, CG in x; see :meth:`matvec`);
        ``v`` a pytree like ``params`` or a flat vector of length :attr:`dim` (the result
        has the same form)."""
        return self._products(v, "total")[0]

    def naive_hvp(self, v: Any) -> Any:
        r""":math:`H_{\theta\theta} v` with δ held at δ* (what a plain Hessian tool computes)."""
        return self._products(v, "naive")[0]

    def delta_jvp(self, v: Any) -> jax.Array:
        r""":math:`D\delta_i^*\, v` for every example, shape (n, d): how the attack moves."""
        return self._products(v, "total")[1]

    def blocks(self) -> Blocks:
        """Dense per-example blocks and the dense total / naive Hessians (small models)."""
        if "blocks" not in self._cache:
            self._cache["blocks"] = self._blocks()
        return self._cache["blocks"]

    def delta_errors(self, residual: ArrayLike | None = None) -> np.ndarray:
        r"""Per example the bound on :math:`\|\hat\delta - \delta^*\|`: this point's
        ``delta_error`` (residual, gradient rounding and curvature error included), or
        :math:`r/(\lambda_{\min} - e_\lambda)` for given residuals r — the caller says
        what r covers (0 means no attack error); 0 where the tangent space is {0} (a
        vertex does not move), ``inf`` where a positive r meets no positive curvature."""
        if residual is None:
            return np.asarray(self.delta_error, dtype=np.float64)
        lam = self.tangent_min if self.tangent_lower is None else self.tangent_lower
        return delta_error(
            np.asarray(residual, dtype=np.float64),
            np.asarray(lam, dtype=np.float64),
            np.asarray(self.kkt.tangent_dim),
        )

    def _hxt(self) -> np.ndarray:
        r"""Per example :math:`\|H_{\theta x}\|_F` (cached): exact (d forward passes per
        example, in chunks of bounded memory) while n·d·P ≤ :data:`HXT_EXACT_MAX`, else a
        Hutchinson estimate from :data:`FROBENIUS_PROBES` batch θ passes
        (:math:`E\|H_{x\theta}z\|^2 = \|H_{x\theta}\|_F^2`); :meth:`_hxt_exact` says which."""
        if "hxt" not in self._cache:
            dyn, static = partition(self.loss_fn)
            n, d = self.X.shape
            if self._hxt_exact():
                out = _hxt_norms_jit(static, dyn, self.params, self.X, self.y, self.delta)
            else:
                probes = jax.random.rademacher(
                    jax.random.PRNGKey(1), (FROBENIUS_PROBES, self.dim), dtype=self.dtype
                )
                out = _hxt_probe_jit(
                    static, dyn, self.spec, self.params, self.X, self.y, self.delta, probes
                )
            self._cache["hxt"] = np.asarray(out, dtype=np.float64)
        return self._cache["hxt"]

    def _hxt_exact(self) -> bool:
        n, d = self.X.shape
        return n * d * self.dim <= HXT_EXACT_MAX

    def gradient_error(self, residual: ArrayLike | None = None) -> np.ndarray:
        r"""Bound on the error of one Danskin gradient evaluation near θ, per component (P,).

        Rounding in the working dtype, :math:`\gamma_k\,\operatorname{mean}_i|\nabla_\theta\ell_i|`
        (k: the ops of one example's gradient, counted by :func:`count_ops`, plus the
        mean over n), plus the attack's error
        :math:`\operatorname{mean}_i \|H_{\theta x}^i\|_F\, \|\hat\delta_i - \delta_i^*\|`,
        the distance bounded by :attr:`delta_error` — or, for given KKT residuals
        ``residual`` (n,), by :math:`r_i/(\lambda_{\min} - e_\lambda)` (pass
        ``residual + point.grad_rounding`` to include the gradient's rounding; zeros give
        the rounding part alone). Costs d forward-mode passes per example (no P×P matrix).
        """
        n, d = self.X.shape
        dyn, static = partition(self.loss_fn)
        abs_g = np.asarray(
            _abs_grads_jit(static, dyn, self.params, self.X, self.y, self.delta),
            dtype=np.float64,
        )
        k = cached_ops("grad", self.loss_fn, self.params, self.X[0], self.y[0]) + n
        derr = self.delta_errors(residual)
        attack = mean_product(self._hxt(), derr)
        return tolerance.gamma(k, self.dtype) * abs_g + attack

    def _blocks(self) -> Blocks:
        dyn, static = partition(self.loss_fn)
        spec = self.spec
        theta = _ravel(self.params)
        Htt, Hxt, Hxx, U, tot, abs_terms = _blocks_jit(
            static, dyn, spec, theta, self.X, self.y, self.delta, self.kkt
        )
        n, d = self.X.shape
        # k: the ops of one example's Hessian entry chain (counted on its jaxpr), a
        # d×d solve (d² ops per entry of U) and the mean over n examples, in the working dtype
        k = cached_ops("hessian", self.loss_fn, self.params, self.X[0], self.y[0]) + d * d + n
        error = tolerance.gamma(k, self.dtype) * np.mean(np.asarray(abs_terms, np.float64), axis=0)
        derr = self.delta_errors()
        if np.any(derr > 0):
            sens = np.asarray(
                _blocks_sensitivity_jit(
                    static,
                    dyn,
                    spec,
                    theta,
                    self.X,
                    self.y,
                    self.delta,
                    self.kkt,
                    self.eps,
                    p=self.p,
                ),
                dtype=np.float64,
            )
            error = error + mean_product(sens, derr)
        return Blocks(
            Htt=Htt,
            Hxt=Hxt,
            Hxx=Hxx,
            Ddelta=U,
            total=jnp.mean(tot, axis=0),
            naive=jnp.mean(Htt, axis=0),
            error=error,
        )

    def _frobenius(self, hessian: str) -> np.ndarray:
        """Per example :math:`\\|H_i\\|_F` of the total or naive operator (cached; P HVPs)."""
        key = ("frobenius", hessian)
        if key not in self._cache:
            dyn, static = partition(self.loss_fn)
            self._cache[key] = np.asarray(
                _frobenius_jit(
                    static,
                    dyn,
                    self.spec,
                    self.params,
                    self.X,
                    self.y,
                    self.delta,
                    self.kkt,
                    hessian=hessian,
                    cg_maxiter=self.cg_maxiter,
                ),
                dtype=np.float64,
            )
        return self._cache[key]

    def _scales(self, hessian: str, key: jax.Array) -> tuple[np.ndarray, bool]:
        """Per example :math:`\\|H_i\\|_F` and whether exact: all P columns for
        P ≤ :data:`FROBENIUS_MAX_P`, else Hutchinson estimates from ``key``."""
        if self.dim <= FROBENIUS_MAX_P:
            return self._frobenius(hessian), True
        return self._frobenius_estimate(hessian, key), False

    def _frobenius_estimate(self, hessian: str, key: jax.Array) -> np.ndarray:
        r"""Per example a Hutchinson estimate of :math:`\|H_i\|_F` from
        :data:`FROBENIUS_PROBES` Rademacher probes drawn from ``key`` (large P; cached)."""
        ck = ("frobenius_estimate", hessian)
        if ck not in self._cache:
            dyn, static = partition(self.loss_fn)
            probes = jax.random.rademacher(key, (FROBENIUS_PROBES, self.dim), dtype=self.dtype)
            self._cache[ck] = np.asarray(
                _frobenius_probe_jit(
                    static,
                    dyn,
                    self.spec,
                    self.params,
                    self.X,
                    self.y,
                    self.delta,
                    self.kkt,
                    probes,
                    hessian=hessian,
                    cg_maxiter=self.cg_maxiter,
                ),
                dtype=np.float64,
            )
        return self._cache[ck]

    def _minv(self) -> jax.Array:
        r"""Per example the factorised tangent solve :math:`A_i^+P_i`, (n, d, d) (cached)."""
        if "minv" not in self._cache:
            dyn, static = partition(self.loss_fn)
            self._cache["minv"] = _tangent_inverse_jit(
                static, dyn, self.params, self.X, self.y, self.delta, self.kkt
            )
        return self._cache["minv"]

    def _operator_error(self, hessian: str, frobenius: np.ndarray) -> float:
        r"""Bound on :math:`\|E\|_2` for the computed operator :math:`v \mapsto \hat H v`.

        Rounding: an example's product errs by at most :math:`\gamma_k\||H_i||v|\|
        \le \gamma_k\|H_i\|_F\|v\|` (:math:`\||A|\|_2 \le \|A\|_F`), k the ops of one
        example's Hessian chain (counted on its jaxpr) plus the mean over n, in the
        working dtype. Total Hessian only: CG stops at relative residual
        :math:`\rho = \gamma_{2d+4}` and accumulates :math:`\gamma_{c(2d+4)}` over its at most c
        iterations, so :math:`\|\Delta u_i\| \le \kappa(A_i)\rho'\|u_i\|` and
        :math:`\|H_{\theta x}\Delta u_i\| \le \kappa(A_i)\rho'\|H_{\theta x}^i\|_F^2\|v\|/\lambda_{\min}(A_i)`.
        The factorised route (``solver="dense"``) is covered by the same term: LU with
        partial pivoting has backward error :math:`\gamma_{3d}` times its growth factor,
        below :math:`\rho' \ge \gamma_{c(2d+4)}`, c = 2d + 5, for any growth below d.
        The batch route sums the n examples' θ-space terms inside one pass instead of
        averaging n per-example products: the same operations in another order, within
        the same :math:`\gamma_k`.
        """
        n, d = self.X.shape
        dt = self.dtype
        k = cached_ops("hessian", self.loss_fn, self.params, self.X[0], self.y[0]) + n
        err = tolerance.gamma(k, dt) * float(np.mean(frobenius))
        if hessian == "total":
            lam = np.asarray(self.tangent_min, dtype=np.float64)
            hi = np.asarray(self.tangent_max, dtype=np.float64)
            tdim = np.asarray(self.kkt.tangent_dim)
            rho = tolerance.gamma(2 * d + 4, dt) + tolerance.gamma(
                self.cg_maxiter * (2 * d + 4), dt
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                cg = np.where(
                    tdim > 0,
                    np.where(lam > 0, (hi / lam) * rho * self._hxt() ** 2 / lam, np.inf),
                    0.0,
                )
            err += float(np.mean(cg))
        return err

    def hvp_error(self, v: Any, *, hessian: str = "total") -> Any:
        r"""Componentwise bound on the error of :meth:`total_hvp` (or :meth:`naive_hvp`) at ``v``.

        The operator's rounding (:meth:`_operator_error`, with the per-example
        :math:`\|H_i\|_F` from P Hessian-vector products, cached) times :math:`\|v\|`, for
        every component, plus, for the total product, what the CG solves' true residuals
        at ``v`` add (:meth:`cg_error`: an early stop is covered), plus the attack's error
        to first order,
        :math:`\operatorname{mean}_i \|P_i\,\partial_{\delta_i} (H_i v)_j\|\,\|\hat\delta_i - \delta_i^*\|`
        (d forward-mode passes per example, in chunks). Same form as ``v`` (pytree or flat).

        A bound while P ≤ :data:`FROBENIUS_MAX_P` and n·d·P ≤ :data:`HXT_EXACT_MAX`; above,
        the per-example scales are Hutchinson estimates and so is this (as for
        :attr:`EigenEstimate.exact_scale`).
        """
        if hessian not in ("total", "naive"):
            raise ValueError(f"hessian={hessian!r} is not allowed; allowed: 'total', 'naive'")
        v_tree, flat = _as_tree(v, self.params)
        vflat = _ravel(v_tree)
        frob, _ = self._scales(hessian, jax.random.PRNGKey(0))
        vnorm = float(np.linalg.norm(np.asarray(vflat, dtype=np.float64)))
        rounding = self._operator_error(hessian, frob) * vnorm
        if hessian == "total":
            rounding += self.cg_error(v_tree)[0]
        err = np.full(self.dim, rounding)
        derr = self.delta_errors()
        if np.any(derr > 0):
            sens = self._sensitivity(vflat, hessian, quadratic=False)
            err = err + mean_product(sens, derr)
        return err if flat else _unravel_np(self.spec, err)

    def _sensitivity(self, vflat: jax.Array, hessian: str, *, quadratic: bool) -> np.ndarray:
        dyn, static = partition(self.loss_fn)
        args = (
            static,
            dyn,
            self.spec,
            self.params,
            self.X,
            self.y,
            self.delta,
            self.kkt,
            self.eps,
            jnp.asarray(vflat, dtype=self.dtype),
        )
        if quadratic:
            out = _quad_sensitivity_jit(
                *args,
                hessian=hessian,
                p=self.p,
                dense=self.dense,
                cg_maxiter=self.cg_maxiter,
            )
        else:
            out = _op_sensitivity_jit(*args, hessian=hessian, p=self.p)
        return np.asarray(out, dtype=np.float64)

    def total_hessian(self, *, method: str = "products") -> jax.Array:
        r"""Dense :math:`\nabla^2 L`, (P, P) in ``ravel_pytree`` order.

        ``method="products"`` (default): P total Hessian-vector products, the columns
        :math:`\nabla^2 L\, e_j`, through :meth:`matvec` with the tangent solves
        factorised once (``solver="dense"`` for small d, else CG), a chunk of columns
        per batch pass — no per-example P×P block is formed (at P = 329, 50 times faster
        than the blocks; benchmarks/RESULTS.md). ``"blocks"``: the mean of the
        per-example dense blocks of :meth:`blocks`, which also carry per-example error
        bounds. The two agree to rounding.
        """
        if method == "blocks":
            return self.blocks().total
        return self._dense("total", method)

    def naive_hessian(self, *, method: str = "products") -> jax.Array:
        r"""Dense :math:`\operatorname{mean}_i H_{\theta\theta}` at the fixed δ*; ``method``
        as in :meth:`total_hessian`."""
        if method == "blocks":
            return self.blocks().naive
        return self._dense("naive", method)

    def _dense(self, hessian: str, method: str) -> jax.Array:
        """The (P, P) Hessian from P products e_j ↦ H e_j, in chunks of columns."""
        if method != "products":
            raise ValueError(f"method={method!r} is not allowed; allowed: 'products', 'blocks'")
        key = f"dense_{hessian}"
        if key not in self._cache:
            solver = tangent_solver("auto", self.X.shape[1])
            mv = self.matvec(hessian=hessian, solver=solver)
            P = self.dim
            eye = jnp.eye(P, dtype=self.dtype)
            chunk = max(1, min(P, DENSE_COLUMNS_CHUNK))
            cols = jax.jit(lambda E: lax.map(mv, E, batch_size=chunk))(eye)
            self._cache[key] = cols.T  # row j of cols is H e_j, column j of H
        return self._cache[key]

    def matvec(self, *, hessian: str = "total", solver: str = "cg") -> Callable:
        r"""A compiled flat Hessian-vector product, total or naive.

        :math:`v \mapsto \nabla^2 L\, v` (``hessian="total"``) or
        :math:`v \mapsto \operatorname{mean}_i H^i_{\theta\theta}v` (``"naive"``: one batch
        forward-over-reverse pass, δ fixed).

        The total product is two batch passes in θ — :math:`(H_{\theta\theta}v, R)`
        with row i of R = :math:`H^i_{x\theta}v`, then
        :math:`H_{\theta\theta}v + \operatorname{mean}_i H^i_{\theta x}u_i` — and, between
        them, n tangent solves :math:`u_i = A_i^+P_i r_i` in x. ``solver="cg"``: each
        solve is CG with x-space Hessian-vector products (at most :attr:`cg_maxiter`
        per example, all examples in one batch pass per iteration). ``solver="dense"``:
        every example's solve is factorised once here (:math:`A_i^+P_i`, d×d, from d
        x-space products), after which a product costs the two θ passes and a d×d
        matrix-vector product per example — for small d and many products (Lanczos,
        power iteration). No n × P intermediate is formed.
        """
        if hessian not in ("total", "naive"):
            raise ValueError(f"hessian={hessian!r} is not allowed; allowed: 'total', 'naive'")
        if solver not in ("cg", "dense"):
            raise ValueError(f"solver={solver!r} is not allowed; allowed: 'cg', 'dense'")
        dyn, static = partition(self.loss_fn)
        Minv = self._minv() if (hessian == "total" and solver == "dense") else None
        args = (static, dyn, self.spec, self.params, self.X, self.y, self.delta, self.kkt, Minv)
        cg_maxiter = self.cg_maxiter

        def mv(v):
            return apply_matvec_jit(*args, v, hessian=hessian, cg_maxiter=cg_maxiter)

        return mv

    def eigen_error(
        self,
        vec: Any,
        *,
        hessian: str = "total",
        key: jax.Array | None = None,
        solver: str = "cg",
    ) -> EigenError:
        r"""The error parts of an eigen-estimate whose eigenvector is ``vec`` (flat, (P,)):
        an :class:`EigenError` ``(operator, attack, exact, scale)``.

        ``operator``: the rounding of the Hessian-vector products, :math:`\|E\|_2`
        (:meth:`_operator_error`) from the per-example :math:`\|H_i\|_F` — exact from all
        P columns for P ≤ :data:`FROBENIUS_MAX_P`, else Hutchinson estimates from
        ``key``; ``attack``: the eigenvalue's first-order sensitivity to the attack's
        error, :math:`\operatorname{mean}_i \|P_i\nabla_{\delta_i}(v^\top H_i v)\|\,
        \|\hat\delta_i - \delta_i^*\|` (one batch reverse pass); ``exact``: whether the
        scales behind ``operator`` are exact (see :class:`EigenEstimate`); ``scale``: the
        mean per-example :math:`\|H_i\|_F` (≥ :math:`\|\nabla^2 L\|_2`)."""
        key = jax.random.PRNGKey(0) if key is None else key
        frob, exact = self._scales(hessian, key)
        operator = float(self._operator_error(hessian, frob))
        if hessian == "total":
            exact = exact and self._hxt_exact()
            if solver == "cg":
                # CG solves that stopped early (cg_maxiter) perturb the operator: their
                # true residuals at the eigenvector are added, and the bound becomes an
                # estimate (the other products of the run are not measured)
                cg_term, converged = self.cg_error(jnp.asarray(vec))
                operator += cg_term
                exact = exact and converged
        derr = self.delta_errors()
        attack = 0.0
        if np.any(derr > 0):
            sens = self._sensitivity(jnp.asarray(vec), hessian, quadratic=True)
            attack = float(mean_product(sens, derr))
        return EigenError(operator, attack, bool(exact), float(np.mean(frob)))

    def cg_error(self, v: Any) -> tuple[float, bool]:
        r"""The error the CG tangent solves add to the total product at ``v`` beyond the
        rounding model of :meth:`_operator_error`, from their true residuals:
        :math:`\operatorname{mean}_i \|H^i_{\theta x}\|_F\,\|r_i\|/\min(\lambda_i, 1)`
        (:math:`\|M_i^{-1}\| = 1/\min(\lambda_{\min}(A_i), 1)`, λ the curvature's lower
        bound), and whether every solve stopped on its tolerance before ``cg_maxiter`` (if
        not, e.g. a small ``cg_maxiter``, this term is what covers it)."""
        v_tree, _ = _as_tree(v, self.params)
        dyn, static = partition(self.loss_fn)
        res, iters = _cg_residuals_jit(
            static,
            dyn,
            self.params,
            self.X,
            self.y,
            self.delta,
            self.kkt,
            v_tree,
            cg_maxiter=self.cg_maxiter,
        )
        lam = self.tangent_min if self.tangent_lower is None else self.tangent_lower
        lam = np.minimum(np.asarray(lam, dtype=np.float64), 1.0)
        res = np.asarray(res, dtype=np.float64)
        tdim = np.asarray(self.kkt.tangent_dim)
        with np.errstate(divide="ignore", invalid="ignore"):
            per = np.where(
                (tdim > 0) & (res > 0), np.where(lam > 0, self._hxt() * res / lam, np.inf), 0.0
            )
        return float(np.mean(per)), bool(np.all(np.asarray(iters) < self.cg_maxiter))

    def uncached(self) -> AdversarialPoint:
        """This point with an empty cache of derived quantities (what is computed on the
        copy is dropped with it)."""
        return dataclasses.replace(self, _cache={})

    def factorisation(self) -> jax.Array:
        """The per-example factorised tangent solves :math:`A_i^+P_i`, (n, d, d) (cached):
        what ``matvec(solver="dense")`` multiplies by."""
        return self._minv()

    def _solver(self, solver: str) -> str:
        return tangent_solver(solver, self.X.shape[1])

    def top_eigenvalue(
        self,
        *,
        hessian: str = "total",
        method: str = "lanczos",
        num_steps: int | None = None,
        key: jax.Array | None = None,
        solver: str = "auto",
    ) -> EigenEstimate:
        r"""The top eigenvalue of the total (or naive) Hessian from Hessian-vector products.

        ``method="lanczos"``: the largest algebraic eigenvalue :math:`\lambda_{\max}`;
        ``method="power"``: the eigenvalue of largest magnitude (the local constant
        :math:`\lambda_{\max}(|\nabla^2 L|)`, with its sign). ``bound``: the Lanczos
        residual bound / power residual, plus the eigensolver's rounding, the rounding of
        the Hessian-vector products and the attack's first-order error (see
        :class:`EigenEstimate`), in the working dtype. It is a bound (an eigenvalue of the
        exact Hessian at the exact maximisers lies within it, to first order in the
        attack's error) when ``exact_scale`` is True: P ≤ :data:`FROBENIUS_MAX_P` (all P
        columns of every example's operator are used for the products' rounding). Above
        that the per-example scales behind the products' rounding are Hutchinson
        estimates (:data:`FROBENIUS_PROBES` probes from ``key``) and ``exact_scale`` is
        False: treat the bound as an estimate there.

        ``key`` (default ``PRNGKey(0)``) draws the start vector and the probes.
        ``solver`` (``"auto"``: factorised for d ≤ 64, in chunks of examples; else CG): how the tangent
        solves of the total products run (see :meth:`matvec`). The attack part costs one
        batch reverse pass over the products. See docs/theory/measuring.md.
        """
        if hessian not in ("total", "naive"):
            raise ValueError(f"hessian={hessian!r} is not allowed; allowed: 'total', 'naive'")
        if method not in ("lanczos", "power"):
            raise ValueError(f"method={method!r} is not allowed; allowed: 'lanczos', 'power'")
        solver = self._solver(solver)
        P = self.dim
        if num_steps is None:
            num_steps = min(P, 40) if method == "lanczos" else 100
        key = jax.random.PRNGKey(0) if key is None else check_key(key)
        k_start, k_probe = jax.random.split(key)
        v0 = jax.random.normal(k_start, (P,), dtype=self.dtype)
        dyn, static = partition(self.loss_fn)
        Minv = self._minv() if (hessian == "total" and solver == "dense") else None
        res = _eig_jit(
            static,
            dyn,
            self.spec,
            self.params,
            self.X,
            self.y,
            self.delta,
            self.kkt,
            v0,
            Minv,
            hessian=hessian,
            cg_maxiter=self.cg_maxiter,
            method=method,
            num_steps=int(num_steps),
        )
        value, krylov, vec, steps = eigen_result(res, method, num_steps)
        operator, attack, exact, _ = self.eigen_error(
            vec, hessian=hessian, key=k_probe, solver=solver
        )
        rounding = float(res.rounding)
        krylov = float(krylov)
        bound = krylov + rounding + operator + attack
        return EigenEstimate(
            value,
            np.float64(bound),
            method,
            hessian,
            int(steps),
            krylov=krylov,
            rounding=rounding,
            operator=operator,
            attack=attack,
            exact_scale=bool(exact),
        )

    # -- spectrum (advlip.spectrum) -------------------------------------------
    def top_eigenvalues(
        self,
        k: int,
        *,
        hessian: str = "total",
        num_steps: int | None = None,
        key: jax.Array | None = None,
        params: Any = None,
        solver: str = "auto",
        return_vectors: bool = True,
    ) -> Any:
        r"""The ``k`` largest eigenvalues of the total (or naive) Hessian, each with a bound.

        Lanczos with full reorthogonalisation on :meth:`matvec` (restarted in the
        orthogonal complement after an exact breakdown), ``num_steps`` products (default
        ``min(P, max(40, 4k))``; ``num_steps ≥ P`` makes the top k exact to rounding), then
        one product per pair for its true residual :math:`\|Hv - \theta v\|`. Returns an
        :class:`advlip.spectrum.TopEigenvalues`: ``values`` (descending), ``vectors``
        (k, P), ``residuals`` and ``bounds`` = residual + its rounding + the operator's
        rounding + the attack's error at that vector (:meth:`eigen_error`, as
        :class:`EigenEstimate` combines them): an eigenvalue of the exact Hessian at the
        exact maximisers lies within ``bounds[j]`` of ``values[j]`` (to first order in
        the attack's error; an estimate when ``exact_scale`` is False). ``k = 1`` repeats
        :meth:`top_eigenvalue`'s run (same start vector and probes from ``key``, default
        ``PRNGKey(0)``). ``params`` restricts the operator to a subset of the parameters
        (a key-path prefix such as ``"['w']"``, a callable ``path -> bool`` or a pytree of
        booleans; see :func:`advlip.spectrum.parameter_indices`): the principal submatrix
        :math:`H_{SS}`, whose vectors come back embedded in P (zeros off S). ``solver`` as
        in :meth:`top_eigenvalue`. Example: :mod:`advlip.spectrum`.
        """
        from advlip import spectrum

        return spectrum._point_top_eigenvalues(
            self,
            k,
            hessian=hessian,
            num_steps=num_steps,
            key=key,
            params=params,
            solver=solver,
            return_vectors=return_vectors,
        )

    def trace(
        self,
        *,
        hessian: str = "total",
        num_samples: int = 30,
        key: jax.Array | None = None,
        method: str = "hutch++",
        params: Any = None,
        solver: str = "auto",
    ) -> Any:
        r"""Stochastic estimate of :math:`\operatorname{tr}\nabla^2 L` (or of the naive
        Hessian, or of :math:`H_{SS}` with ``params``) from ``num_samples`` Hessian-vector
        products with Rademacher probes from ``key``: Hutch++ (default) or Hutchinson.
        Returns an :class:`advlip.spectrum.TraceEstimate` (``estimate``,
        ``standard_error``, ``num_matvecs``); see :func:`advlip.spectrum.trace`."""
        from advlip import spectrum

        return spectrum._point_trace(
            self,
            hessian=hessian,
            num_samples=num_samples,
            key=key,
            method=method,
            params=params,
            solver=solver,
        )

    def spectral_density(
        self,
        *,
        hessian: str = "total",
        num_probes: int = 8,
        num_steps: int | None = None,
        key: jax.Array | None = None,
        grid: Any = None,
        sigma: float | None = None,
        params: Any = None,
        solver: str = "auto",
    ) -> Any:
        r"""The eigenvalue density of the total (or naive) Hessian by stochastic Lanczos
        quadrature: per Rademacher probe (from ``key``) the Ritz values and Gauss weights
        of ``num_steps`` Lanczos steps (default ``min(P, 40)``), and their average
        smoothed by Gaussians of width ``sigma`` on ``grid``. Returns an
        :class:`advlip.spectrum.SpectralDensity`; see
        :func:`advlip.spectrum.spectral_density` and
        :func:`advlip.plots.plot_spectral_density`."""
        from advlip import spectrum

        return spectrum._point_spectral_density(
            self,
            hessian=hessian,
            num_probes=num_probes,
            num_steps=num_steps,
            key=key,
            grid=grid,
            sigma=sigma,
            params=params,
            solver=solver,
        )


def tangent_solver(solver: str, d: int) -> str:
    """The tangent solve of the total products: ``"auto"`` factorises whenever
    d ≤ :data:`~advlip.attacks.DENSE_MAX_D` (the factorisation runs in chunks of examples,
    so its memory is bounded for any model, whatever the attack chose), else CG."""
    if solver not in ("auto", "cg", "dense"):
        raise ValueError(f"solver={solver!r} is not allowed; allowed: 'auto', 'cg', 'dense'")
    return ("dense" if d <= DENSE_MAX_D else "cg") if solver == "auto" else solver


def eigen_result(res: Any, method: str, num_steps: int) -> tuple[Any, Any, jax.Array, int]:
    """``(value, krylov bound, eigenvector, steps)`` of a Lanczos or power-iteration result."""
    if method == "lanczos":
        return res.largest, res.largest_bound, res.ritz_vectors[-1], res.steps
    return res.eigenvalue, res.residual, res.vector, num_steps


def apply_matvec(static, dyn, spec, params, X, y, delta, c, Minv, v, hessian, cg_maxiter):
    mv = _flat_hvp(static, dyn, spec, params, X, y, delta, c, cg_maxiter, hessian, Minv)
    return mv(v)


# the point's arrays enter as arguments (never as constants baked into the program)
apply_matvec_jit = jax.jit(
    apply_matvec, static_argnames=("static", "spec", "hessian", "cg_maxiter")
)


_POINT_ARRAYS = (
    "params",
    "X",
    "y",
    "eps",
    "attack",
    "tangent_min",
    "tangent_max",
    "tangent_bound",
    "delta_error",
    "status",
    "grad_rounding",
    "tangent_lower",
)


def _point_flatten(pt: AdversarialPoint):
    dyn, static = partition(pt.loss_fn)
    children = (dyn, *(getattr(pt, f) for f in _POINT_ARRAYS))
    return children, (static, pt.p, pt.reasons, pt.cg_maxiter, pt.dense)


def _point_unflatten(aux, children) -> AdversarialPoint:
    static, p, reasons, cg_maxiter, dense = aux
    dyn, *arrays = children
    return AdversarialPoint(
        loss_fn=combine(dyn, static),
        p=p,
        reasons=reasons,
        cg_maxiter=cg_maxiter,
        dense=dense,
        **dict(zip(_POINT_ARRAYS, arrays, strict=True)),
    )


# A pytree: a point can be passed to (and returned from) jitted functions. Its arrays
# (and the loss's array fields) are the leaves; p, the reasons and the solver options
# are static. The cache of derived quantities is not carried across.
jax.tree_util.register_pytree_node(AdversarialPoint, _point_flatten, _point_unflatten)


def _as_tree(v: Any, params: Any) -> tuple[Any, bool]:
    """``v`` as a pytree like ``params`` in the params' dtypes (no float64 promotion of a
    float32 problem), and whether it came flat."""
    spec = _ravel_spec(params)
    if jax.tree.structure(v) == spec.treedef and all(
        np.shape(a) == s for a, s in zip(jax.tree.leaves(v), spec.shapes, strict=True)
    ):
        leaves = [
            jnp.asarray(a).astype(dt) for a, dt in zip(jax.tree.leaves(v), spec.dtypes, strict=True)
        ]
        return jax.tree.unflatten(spec.treedef, leaves), False
    arr = jnp.asarray(v)
    if arr.shape == (spec.size,):
        return _unravel(spec, arr), True
    raise ValueError(
        f"v must be a pytree shaped like params or a flat vector of shape ({spec.size},) "
        f"(jax.flatten_util.ravel_pytree order), got {jax.tree.structure(v)} / {np.shape(v)}"
    )


def _unravel_np(spec: _RavelSpec, flat: np.ndarray) -> Any:
    """A flat float64 NumPy vector as a pytree like params (NumPy leaves, float64)."""
    out, start = [], 0
    for shape in spec.shapes:
        size = int(np.prod(shape))
        out.append(np.asarray(flat[start : start + size]).reshape(shape))
        start += size
    return jax.tree.unflatten(spec.treedef, out)


def mean_product(sens: np.ndarray, derr: np.ndarray) -> np.ndarray:
    """:math:`\\operatorname{mean}_i s_i e_i` over the leading axis, with 0·∞ = 0 (a vertex or
    an insensitive entry does not move however large the δ error)."""
    derr = np.asarray(derr, dtype=np.float64).reshape((-1,) + (1,) * (np.ndim(sens) - 1))
    with np.errstate(invalid="ignore"):
        prod = np.where(np.asarray(sens) == 0, 0.0, np.asarray(sens) * derr)
    return np.mean(prod, axis=0)


def solve_attack(loss_fn, params, X, y, eps, p, attack, attack_options) -> AttackResult:
    if attack is not None:
        if not isinstance(attack, AttackResult):
            raise ValueError(f"attack must be an advlip.attacks.AttackResult, got {type(attack)}")
        if attack.delta.shape != flat_shape(X):
            raise ValueError(
                f"attack was computed for X of shape {attack.delta.shape}, not {flat_shape(X)}"
            )
        # ε as the attack stored it: rounded to its working dtype
        if attack.p != p or np.asarray(eps, dtype=np.asarray(attack.eps).dtype) != attack.eps:
            raise ValueError(
                f"attack was computed for eps={float(attack.eps):g}, p={attack.p:g}; "
                f"asked for eps={float(eps):g}, p={p:g}"
            )
        att = attack
    else:
        att = pgd(loss_fn, params, X, y, eps=eps, p=p, **attack_options)
    if att.beaten is None and float(eps) > 0:
        # an attack that screened nothing (structured_starts=0, or the user's own): screen
        # the ball for a higher value than its maximisers now
        eps_arr = jnp.asarray(np.asarray(eps, dtype=np.asarray(att.eps).dtype))
        key = attack_options.get("key")
        cands, vals = screen(loss_fn, params, X, y, eps_arr, p, key, att.delta[:, None, :])
        att = mark_beaten(loss_fn, params, X, y, att, cands, vals)
    return att


def linearize(
    loss_fn: Callable,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    attack: AttackResult | None = None,
    cg_maxiter: int | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
    **attack_options: Any,
) -> AdversarialPoint:
    r"""Attack every example, classify its case and check the hypotheses.

    The cases are those of docs/theory/general-models.md: G1 (an interior maximiser),
    G2 (on the L2 sphere), G3 (a vertex of the L∞ box), and the faces of the L∞ box and
    the L1 ball.

    With ``batch_size`` the data stream in batches of at most that many rows
    (:func:`advlip.streaming.linearize_batches`: attacks per batch, products and
    gradients summed over batches, memory bounded by one batch, a tqdm progress bar on
    stderr — ``progress``) and the result is an :class:`advlip.streaming.StreamedPoint`
    with the same methods.

    Runs :func:`advlip.attacks.pgd` (or takes ``attack``), then, per example: the
    tangent projector P and constraint curvature μ from the KKT certificate; the
    extreme eigenvalues of :math:`A = P(\mu I - H_{xx})P` on the tangent space (a dense
    eigensolver for d ≤ 64, else Lanczos: exact to rounding when the tangent dimension
    is ≤ 64); and a status:

    * *attack not converged*: KKT residual above the attack's tolerance;
    * *another start found a higher value*: some start or screened point of the
      attack (:func:`advlip.attacks.pgd`, ``structured_starts``) is higher than the
      returned δ by more than the float error of the two values — δ is a KKT point
      but not the maximiser. An attack that screened nothing is screened here;
    * *degenerate multiplier*: an active constraint's multiplier within its error
      (residual + :math:`\gamma_{2d+8}\|g\|`, the rounding of the 2d-op dot product
      that measures it, + twice the gradient's rounding :math:`e_g = \gamma_k\|g\|`) of 0 —
      an L∞ switching surface or an L1 tie;
    * *inactive constraint within the attack error*: slack ≤ ``delta_error``;
    * *second-order condition fails*: :math:`\lambda_{\min}(A) \le` its error
      :math:`\gamma_{4d+8}(|\mu| + \|A\|) +` the eigensolver's bound (k = 4d + 8: an HVP
      row and two projections).

    Every γ is in the unit roundoff of the working dtype (the least precise of
    ``params`` and ``X``; inputs, labels and the loss's array fields are cast to it).

    Returns an :class:`AdversarialPoint`; nothing raises here (see
    :meth:`AdversarialPoint.require_determined`). Under ``jax.jit`` the status is a
    traced array and ``reasons`` is empty (the strict public functions return NaN
    instead of raising there).

    Example:
        w = (0.3, 0.4) has ‖w‖ = 0.5; in the L2 ball of radius ε = 2 both margins
        :math:`y\,w\cdot x = 1` drop by ε‖w‖ = 1 to 0, where the softplus loss has
        ℓ = log 2, ℓ' = −1/2 and ℓ'' = 1/4 (docs/theory/closed-form.md).
        The maximisers :math:`\delta^* = -y\varepsilon w/\|w\| = \mp(1.2, 1.6)` lie
        on the sphere, with tangent curvature :math:`\mu = \|\nabla_x\ell\|/\varepsilon
        = |\ell'|\,\|w\|/\varepsilon = 0.125`.

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> pt = adversarial.linearize(models.LinearLoss(), params, X, y, eps=2.0, p=2)
        >>> pt.reasons
        ('l2_boundary: determined', 'l2_boundary: determined')
        >>> (np.round(np.asarray(pt.delta, float), 4) + 0.0).tolist()
        [[-1.2, -1.6], [1.2, 1.6]]
        >>> (np.round(np.asarray(pt.tangent_min, float), 4) + 0.0).tolist()
        [0.125, 0.125]
    """
    if batch_size is not None:
        from advlip.streaming import linearize_batches

        if attack is not None:
            raise ValueError("attack= cannot be combined with batch_size= (each batch is attacked)")
        if cg_maxiter is not None:
            attack_options["cg_maxiter"] = cg_maxiter
        return linearize_batches(
            loss_fn,
            params,
            X,
            y,
            eps=eps,
            p=p,
            batch_size=batch_size,
            progress=progress,
            **attack_options,
        )
    loss_fn, params, X, y, p, dt = prepare_problem(loss_fn, params, X, y, eps, p)
    att = solve_attack(loss_fn, params, X, y, eps, p, attack, attack_options)
    n, d = X.shape
    eps_arr = jnp.asarray(np.asarray(eps, dtype=dt))
    lo, hi, bound = att.tangent_min, att.tangent_max, att.tangent_bound
    k_grad = cached_ops("grad", loss_fn, params, X[0], y[0])
    status, derr, mult_tol, so_tol, e_g, lam_lo = example_status(att, d, k_grad)
    reasons: tuple[str, ...] = ()
    if not is_traced(status):
        status, derr = np.asarray(status), np.asarray(derr)
        reasons = _reasons(att, status, derr, np.asarray(mult_tol), np.asarray(so_tol))
    cg_maxiter = 2 * d + 5 if cg_maxiter is None else int(cg_maxiter)
    return AdversarialPoint(
        loss_fn=loss_fn,
        params=params,
        X=X,
        y=y,
        eps=eps_arr,
        p=p,
        attack=att,
        tangent_min=lo,
        tangent_max=hi,
        tangent_bound=bound,
        delta_error=derr,
        status=status,
        reasons=reasons,
        cg_maxiter=cg_maxiter,
        dense=dense_choice(attack_options.get("x_solver", "auto"), d, num_params(params)),
        grad_rounding=e_g,
        tangent_lower=lam_lo,
    )


def example_status(att: AttackResult, d: int, k_grad: int):
    """Per-example status (index into :data:`STATUS`), the δ error bound, the two
    thresholds, the gradient's rounding and the curvature's lower bound; jnp throughout,
    so it also runs under ``jit`` (see :func:`linearize`). Every γ is in the working dtype."""
    c = att.kkt
    dt = att.delta.dtype
    res = c.residual
    lo, hi, bound = att.tangent_min, att.tangent_max, att.tangent_bound
    gnorm = jnp.linalg.norm(att.grad_x, axis=1)
    # rounding of the computed input gradient, γ_k‖g‖ (k: the ops of one example's
    # gradient): the true residual, and every multiplier, may be off by that much
    e_g = tolerance.gamma(k_grad, dt) * gnorm
    # the multiplier is a 2d-op dot product of g (γ_{2d+8}), moves by the residual and by
    # the gradient's rounding (twice for L1: μ and the largest off-support |g_j|)
    mult_tol = res + tolerance.gamma(2 * d + 8, dt) * gnorm + 2.0 * e_g
    # an x-HVP row and two projections (γ_{4d+8}) on |μ| + ‖A‖, plus the eigensolver's bound
    so_tol = tolerance.gamma(4 * d + 8, dt) * (jnp.abs(c.mu) + jnp.abs(hi)) + bound
    lam_lo = lo - so_tol
    # ‖δ̂ − δ*‖ ≤ (r + e_g)/(λ_min − its error) to first order; 0 at a vertex
    derr = delta_error(res + e_g, lam_lo, c.tangent_dim)
    second_order_fails = (c.tangent_dim > 0) & ~(lo > so_tol)
    degenerate = jnp.isfinite(c.multiplier) & ~(c.multiplier > mult_tol)
    near = jnp.isfinite(c.slack) & ~(c.slack > derr)
    beaten = jnp.zeros(res.shape, dtype=bool) if att.beaten is None else att.beaten
    S = Status
    status = jnp.where(
        ~att.converged,
        S.NOT_CONVERGED,
        jnp.where(
            beaten,
            S.BEATEN,
            jnp.where(
                second_order_fails,
                S.SECOND_ORDER_FAILS,
                jnp.where(
                    degenerate,
                    S.DEGENERATE_MULTIPLIER,
                    jnp.where(near, S.INACTIVE_NEAR, S.DETERMINED),
                ),
            ),
        ),
    ).astype(jnp.int32)
    return status, derr, mult_tol, so_tol, e_g, lam_lo


def _reasons(att, status, derr, mult_tol, so_tol) -> tuple[str, ...]:
    c, cases = att.kkt, att.cases
    res, lo = np.asarray(c.residual), np.asarray(att.tangent_min)
    mult, slack, tol = np.asarray(c.multiplier), np.asarray(c.slack), np.asarray(att.tol)
    dt = np.dtype(att.delta.dtype).name
    out = []
    for i, st in enumerate(status):
        if st == 1:
            out.append(f"attack not converged (KKT residual {res[i]:.3g} > tol {tol[i]:.3g})")
        elif st == 5:
            out.append(
                f"another start found a higher value: {float(att.best_other[i]):.6g} > "
                f"{float(att.loss[i]):.6g} (more than the float error of the two, "
                f"{float(att.value_error[i]):.3g} at δ): the attack's δ is a KKT point, "
                "not the maximiser, and the curvature there is not that of the adversarial "
                "loss (raise structured_starts or restarts)"
            )
        elif st == 4:
            out.append(
                f"second-order condition fails on the tangent space of the {cases[i]} case: "
                f"λ_min(P(μI − H_xx)P) = {lo[i]:.3g} ≤ {so_tol[i]:.3g} (its {dt} error): "
                "the Hessian in x is singular or indefinite there, δ* is not an isolated "
                "maximiser and Dδ* does not exist"
            )
        elif st == 2:
            out.append(
                f"degenerate multiplier {mult[i]:.3g} ≤ {mult_tol[i]:.3g} in the {cases[i]} "
                "case: a constraint is active with zero force (an L∞ switching surface, an L1 "
                "tie, or an L2 maximiser exactly on the sphere); the gradient of L is not "
                "differentiable here (docs/theory/gen-linf-vertex.md)"
            )
        elif st == 3:
            out.append(
                f"an inactive constraint is {slack[i]:.3g} away, within the attack's error "
                f"{derr[i]:.3g}: the active set is not determined"
            )
        else:
            out.append(f"{cases[i]}: determined")
    return tuple(out)


def _likely_cause(loss_fn: Any, y: Any) -> str:
    """A sentence naming a likely cause visible in the inputs, or ''."""
    if is_traced(y):
        return ""
    from advlip import models

    base = getattr(loss_fn, "base", loss_fn)
    margin = isinstance(base, models.MLPLoss | models.LinearLoss)
    labels = np.unique(np.asarray(y))
    if margin and labels.size and np.all(np.isin(labels, [0.0, 1.0])) and np.any(labels == 0):
        return (
            f" Likely cause: the labels y are in {{0, 1}}, but {type(base).__name__} is a "
            "margin loss ℓ(y·f(x)) that expects y ∈ {-1, +1}: at y = 0 the loss is constant "
            "in x, so ∇_x ℓ = 0 and the attack has nothing to climb. Convert the labels "
            "with y = 2 * y - 1."
        )
    return ""


def _point(loss_fn, params, X, y, eps, p, attack, strict, attack_options) -> AdversarialPoint:
    pt = linearize(loss_fn, params, X, y, eps=eps, p=p, attack=attack, **attack_options)
    if is_traced(pt.status):
        return pt
    if strict:
        try:
            pt.attack.require_converged()
        except AttackNotConvergedError as err:
            hint = _likely_cause(pt.loss_fn, pt.y)
            if not hint:
                raise
            raise AttackNotConvergedError(str(err) + hint) from None
        pt.require_determined()
    elif not pt.all_determined:
        status = np.asarray(pt.status)
        bad = np.flatnonzero(status != 0)
        code, count = collections.Counter(status[bad].tolist()).most_common(1)[0]
        first = int(bad[status[bad] == code][0])
        warnings.warn(
            f"strict=False: {bad.size} of {status.size} example(s) are undetermined and the "
            f"returned value includes them; most common reason ({count} example(s)): "
            f"{STATUS[code]} — e.g. example {first}: {pt.reasons[first]}. Read "
            "linearize(...).status / .reasons, or pass strict=True to raise."
            + _likely_cause(pt.loss_fn, pt.y),
            UndeterminedWarning,
            stacklevel=3,
        )
    return pt


def _guard(pt: AdversarialPoint, strict: bool, value: Any) -> Any:
    """Under ``jit`` nothing can be raised: a strict result is NaN where not determined."""
    if not (strict and is_traced(pt.status)):
        return value
    ok = jnp.all(pt.status == 0)
    return jax.tree.map(lambda a: jnp.where(ok, a, jnp.nan), value)


def adversarial_loss(
    loss_fn: Callable,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    attack: AttackResult | None = None,
    strict: bool = True,
    **attack_options: Any,
) -> jax.Array:
    r""":math:`L(\theta) = \operatorname{mean}_i \ell(x_i + \delta_i^*, y_i; \theta)`.

    The adversarial loss of docs/theory/general-models.md.

    Called on concrete arrays it runs the attack (or takes ``attack``) and, with
    ``strict``, raises :class:`advlip.attacks.AttackNotConvergedError` unless every δ is
    a certified maximiser. Under JAX transformations — ``jit``, ``grad``, ``hessian``,
    ``jvp``, ``vmap`` of ``params`` or ``X`` — it is :func:`advlip.implicit.adversarial_loss`:
    the attack runs inside the traced program and δ*(θ) carries the implicit-function
    JVP, so ``jax.grad`` gives the Danskin gradient and ``jax.hessian`` the total
    Hessian; there, ``strict`` raises at run time (``equinox.error_if``) where the value
    or the derivative does not exist. ``attack`` is only used on concrete arrays.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from advlip import adversarial, linear, models, tolerance
        >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[0.5, 1.0], [1.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> L = adversarial.adversarial_loss(models.LinearLoss(), params, X, y, eps=0.1, p=2)
        >>> closed = linear.adversarial_loss(params["w"], X, y, eps=0.1, p=2)
        >>> # two evaluations of a 2-d linear model: 64 operations is a generous count
        >>> bool(abs(L - closed) <= tolerance.gamma(64, L.dtype) * abs(closed))
        True
        >>> f = lambda th: adversarial.adversarial_loss(models.LinearLoss(), th, X, y, eps=0.1, p=2)
        >>> g = jax.flatten_util.ravel_pytree(jax.grad(f)(params))[0]  # through the attack
        >>> pt = adversarial.linearize(models.LinearLoss(), params, X, y, eps=0.1, p=2)
        >>> danskin = jax.flatten_util.ravel_pytree(pt.grad())[0]
        >>> # both are the Danskin gradient, each within its error bound
        >>> bool(jnp.all(abs(g - danskin) <= 2 * pt.gradient_error()))
        True
    """
    if any(is_traced(a) for a in (*jax.tree.leaves(params), X)):
        from advlip import implicit

        return implicit.adversarial_loss(
            loss_fn, params, X, y, eps=eps, p=p, strict=strict, **attack_options
        )
    loss_fn, params, X, y, p, _ = prepare_problem(loss_fn, params, X, y, eps, p)
    att = solve_attack(loss_fn, params, X, y, eps, p, attack, attack_options)
    if strict:
        att.require_maximiser()
    return jnp.mean(att.loss)


def danskin_grad(
    loss_fn: Callable,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    attack: AttackResult | None = None,
    **attack_options: Any,
) -> Any:
    r"""G0 (Danskin): the gradient of the adversarial loss, a pytree like ``params``.

    :math:`\nabla L(\theta) = \operatorname{mean}_i
    \nabla_\theta\ell(x_i+\delta_i^*(\theta), y_i; \theta)`.

    Valid where the maximiser is unique (Danskin's theorem, docs/theory/gen-danskin.md);
    raises if the attack did not converge or another start beat its maximiser.

    Example:
        w = (0.3, 0.4) has ‖w‖ = 0.5; in the L2 ball of radius ε = 2 both margins
        :math:`y\,w\cdot x = 1` drop by ε‖w‖ = 1 to 0, where the softplus loss has
        ℓ = log 2, ℓ' = −1/2 and ℓ'' = 1/4 (docs/theory/closed-form.md).
        The gradient is :math:`\operatorname{mean}_i \ell'\,(y_i, y_ix_i - \varepsilon
        w/\|w\|)`: 0 for b, :math:`-\tfrac12(0.8, -0.6)` for w.

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> g = adversarial.danskin_grad(models.LinearLoss(), params, X, y, eps=2.0, p=2)
        >>> sorted(g), (np.round(np.asarray(g["w"], float), 4) + 0.0).tolist()
        (['b', 'w'], [-0.4, 0.3])
    """
    loss_fn, params, X, y, p, _ = prepare_problem(loss_fn, params, X, y, eps, p)
    att = solve_attack(loss_fn, params, X, y, eps, p, attack, attack_options)
    att.require_maximiser()
    return att.danskin_grad


def total_hvp(
    loss_fn: Callable,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    v: Any,
    *,
    eps: ArrayLike,
    p: float,
    attack: AttackResult | None = None,
    strict: bool = True,
    **attack_options: Any,
) -> Any:
    r"""Total Hessian-vector product :math:`\nabla^2 L(\theta)\, v` by implicit differentiation.

    :math:`\nabla^2 L\,v = \operatorname{mean}_i [H_{\theta\theta}v + H_{\theta x}u_i]`,
    :math:`u_i = A_i^{+}P_i H_{x\theta}v` solved by CG on the tangent space. ``v`` is a
    pytree like ``params`` or a flat vector (``ravel_pytree`` order); the result has
    the same form. With ``strict`` (default) raises :class:`UndeterminedError` where
    the total Hessian is not determined (see :func:`linearize`); under ``jax.jit``,
    where nothing can be raised, the result is NaN there instead.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[0.5, 1.0], [1.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> hv = adversarial.total_hvp(models.LinearLoss(), params, X, y, params, eps=0.1, p=2)
        >>> jax.tree.structure(hv) == jax.tree.structure(params)
        True
    """
    pt = _point(loss_fn, params, X, y, eps, p, attack, strict, attack_options)
    return _guard(pt, strict, pt.total_hvp(v))


def naive_hvp(
    loss_fn: Callable,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    v: Any,
    *,
    eps: ArrayLike,
    p: float,
    attack: AttackResult | None = None,
    strict: bool = True,
    **attack_options: Any,
) -> Any:
    r""":math:`\operatorname{mean}_i H_{\theta\theta} v` at the fixed δ*.

    The Hessian a plain tool computes, which ignores that δ* moves with θ.

    Example:
        By docs/theory/closed-form.md, with v = (0.8, −0.6) ⊥ w, the total Hessian over
        (b, w) is diag(ℓ'', (ℓ'' + |ℓ'|ε/‖w‖) vvᵀ) = diag(0.25, 2.25 vvᵀ); the naive one,
        δ held fixed, misses the second term: diag(0.25, 0.25 vvᵀ).
        Along v = (0, 0.8, −0.6) the naive product is 0.25 v (the total one, 2.25 v).

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> v = jnp.array([0.0, 0.8, -0.6])  # flat, (b, w) order
        >>> hv = adversarial.naive_hvp(models.LinearLoss(), params, X, y, v, eps=2.0, p=2)
        >>> (np.round(np.asarray(hv, float), 4) + 0.0).tolist()
        [0.0, 0.2, -0.15]
    """
    pt = _point(loss_fn, params, X, y, eps, p, attack, strict, attack_options)
    return _guard(pt, strict, pt.naive_hvp(v))


def total_hessian(
    loss_fn: Callable,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    attack: AttackResult | None = None,
    strict: bool = True,
    **attack_options: Any,
) -> jax.Array:
    r"""Dense total Hessian :math:`\nabla^2 L(\theta)`, (P, P) over ``ravel_pytree(params)`` order.

    The mean over examples of
    :math:`H_{\theta\theta} + H_{x\theta}^\top P (P(\mu I - H_{xx})P + I - P)^{-1} P H_{x\theta}`,
    built column by column from P total Hessian-vector products
    (:meth:`AdversarialPoint.total_hessian`; the per-example dense blocks, with their
    error bounds, are :meth:`AdversarialPoint.blocks`): for models small enough that a
    P×P matrix fits.

    Example:
        By docs/theory/closed-form.md, with v = (0.8, −0.6) ⊥ w, the total Hessian over
        (b, w) is diag(ℓ'', (ℓ'' + |ℓ'|ε/‖w‖) vvᵀ) = diag(0.25, 2.25 vvᵀ); the naive one,
        δ held fixed, misses the second term: diag(0.25, 0.25 vvᵀ).

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> H = adversarial.total_hessian(models.LinearLoss(), params, X, y, eps=2.0, p=2)
        >>> (np.round(np.asarray(H, float), 4) + 0.0).tolist()
        [[0.25, 0.0, 0.0], [0.0, 1.44, -1.08], [0.0, -1.08, 0.81]]
    """
    return _point(loss_fn, params, X, y, eps, p, attack, strict, attack_options).total_hessian()


def naive_hessian(
    loss_fn: Callable,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    attack: AttackResult | None = None,
    strict: bool = True,
    **attack_options: Any,
) -> jax.Array:
    r"""Dense :math:`\operatorname{mean}_i H_{\theta\theta}` at the fixed δ*, (P, P).

    Example:
        By docs/theory/closed-form.md, with v = (0.8, −0.6) ⊥ w, the total Hessian over
        (b, w) is diag(ℓ'', (ℓ'' + |ℓ'|ε/‖w‖) vvᵀ) = diag(0.25, 2.25 vvᵀ); the naive one,
        δ held fixed, misses the second term: diag(0.25, 0.25 vvᵀ).

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> H = adversarial.naive_hessian(models.LinearLoss(), params, X, y, eps=2.0, p=2)
        >>> (np.round(np.asarray(H, float), 4) + 0.0).tolist()
        [[0.25, 0.0, 0.0], [0.0, 0.16, -0.12], [0.0, -0.12, 0.09]]
    """
    return _point(loss_fn, params, X, y, eps, p, attack, strict, attack_options).naive_hessian()


def top_eigenvalue(
    loss_fn: Callable,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    hessian: str = "total",
    method: str = "lanczos",
    num_steps: int | None = None,
    key: jax.Array | None = None,
    attack: AttackResult | None = None,
    strict: bool = True,
    **attack_options: Any,
) -> EigenEstimate:
    """Top eigenvalue of the total or naive Hessian (Lanczos or power iteration on HVPs).

    Example:
        By docs/theory/closed-form.md, with v = (0.8, −0.6) ⊥ w, the total Hessian over
        (b, w) is diag(ℓ'', (ℓ'' + |ℓ'|ε/‖w‖) vvᵀ) = diag(0.25, 2.25 vvᵀ); the naive one,
        δ held fixed, misses the second term: diag(0.25, 0.25 vvᵀ).
        The top eigenvalues are 2.25 and 0.25: the naive Hessian understates the
        curvature ninefold here.

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> args = (models.LinearLoss(), params, X, y)
        >>> total = adversarial.top_eigenvalue(*args, eps=2.0, p=2)
        >>> naive = adversarial.top_eigenvalue(*args, eps=2.0, p=2, hessian="naive")
        >>> round(float(total.value), 4), round(float(naive.value), 4)
        (2.25, 0.25)
    """
    pt = _point(loss_fn, params, X, y, eps, p, attack, strict, attack_options)
    return pt.top_eigenvalue(hessian=hessian, method=method, num_steps=num_steps, key=key)


# --------------------------------------------------------------------------- finite differences


@dataclasses.dataclass(frozen=True)
class FDHessian:
    r"""Central differences of the Danskin gradient with δ* re-solved at every θ ± h e_j, ± 2h e_j.

    ``fine`` :math:`D_h` and ``coarse`` :math:`D_{2h}` (P, P), column j the derivative
    along :math:`e_j`; ``estimate`` the Richardson extrapolation
    :math:`D_R = (4D_h - D_{2h})/3`. Likewise for L itself: ``grad_fine``,
    ``grad_coarse``, ``grad_estimate`` (P,).

    Error model. :math:`D_h = \nabla^2 L + c h^2 + O(h^4) + \text{noise}_h` with
    :math:`|\text{noise}_h| \le e/h` for a gradient error e per evaluation, so
    :math:`D_R = \nabla^2 L + O(h^4) + \text{noise}`,
    :math:`|\text{noise}| \le (4e/h + e/(2h))/3 = 1.5\,e/h`.
    The size of the correction, :math:`|D_R - D_h| = |D_h - D_{2h}|/3 \approx |c| h^2`, bounds
    the :math:`O(h^4)` remainder wherever the expansion is in its asymptotic range
    (:math:`h^2 |\text{next coefficient}| < |c|`), so :meth:`tolerance` is
    :math:`|D_h - D_{2h}|/3 + 1.5\,e/h`.

    ``grad_error`` (P,) is e per component: float64 rounding (:math:`\gamma_k` × mean
    :math:`|\nabla_\theta\ell_i|`, k counted by :func:`count_ops` on one example's gradient,
    plus the mean) plus the attack's error :math:`\|H_{\theta x}\|_F\, r/\lambda_{\min}(A)`.
    ``value_error``: the same for one evaluation of L, the attack part being
    :math:`\max(0, \text{gap}) + r^2/(2\lambda_{\min}(A))`. ``active_set_changed``: some
    re-solve landed in another case than at θ (a kink inside the stencil).

    Example:
        Under the L∞ ball of radius 2 the maximisers are the vertices
        :math:`-y\varepsilon\operatorname{sign}(w)`, the margins
        :math:`1 - \varepsilon\|w\|_1 = -0.4`, and away from the kinks
        :math:`w_j = 0` the total Hessian is
        :math:`\operatorname{mean}_i \ell''(-0.4)\,(y_i, g_i)(y_i, g_i)^\top`,
        :math:`g_i = y_ix_i - \varepsilon\operatorname{sign}(w) = (0, -1)`:
        diag(ℓ''(−0.4), 0, ℓ''(−0.4)), ℓ''(−0.4) = σ(0.4)σ(−0.4) = 0.2403
        (docs/theory/lin-linf.md). The differences agree within their tolerance.

        >>> import math
        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> pt = adversarial.linearize(models.LinearLoss(), params, X, y, eps=2.0, p=math.inf)
        >>> fd = adversarial.fd_hessian(pt)
        >>> exact = np.diag([1.0, 0.0, 1.0]) * (1 - math.tanh(0.2) ** 2) / 4  # σ(0.4)σ(-0.4)
        >>> (np.round(np.asarray(fd.estimate, float), 4) + 0.0).tolist()
        [[0.2403, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.2403]]
        >>> bool(np.all(np.abs(fd.estimate - exact) <= fd.tolerance())), fd.active_set_changed
        (True, False)
    """

    fine: np.ndarray
    coarse: np.ndarray
    grad_fine: np.ndarray
    grad_coarse: np.ndarray
    grad_error: np.ndarray
    value_error: float
    h: float
    max_residual: float
    active_set_changed: bool

    @property
    def estimate(self) -> np.ndarray:
        return (4.0 * self.fine - self.coarse) / 3.0

    @property
    def grad_estimate(self) -> np.ndarray:
        return (4.0 * self.grad_fine - self.grad_coarse) / 3.0

    def tolerance(self) -> np.ndarray:
        """Entrywise bound on :math:`|D_R - \\nabla^2 L|`, (P, P)."""
        return np.abs(self.fine - self.coarse) / 3.0 + 1.5 * self.grad_error[:, None] / self.h

    def grad_tolerance(self) -> np.ndarray:
        """Componentwise bound on the error of ``grad_estimate`` (same model, values of L)."""
        return np.abs(self.grad_fine - self.grad_coarse) / 3.0 + 1.5 * self.value_error / self.h

    def compare(self, H: ArrayLike, extra_error: ArrayLike = 0.0) -> dict[str, float]:
        """How far ``H`` is from the estimate, entrywise, against the tolerance.

        ``extra_error``: the error bound of ``H`` itself (e.g. :attr:`Blocks.error`).
        Returns ``max_error`` (max |H − D_R|), ``max_tolerance``, ``excess`` =
        max(|H − D_R| − tol) (≤ 0: agreement) and ``max_ratio`` = max |H − D_R| / tol.
        """
        return _compare(np.asarray(H), self.estimate, self.tolerance() + np.asarray(extra_error))

    def compare_grad(self, g: ArrayLike) -> dict[str, float]:
        """As :meth:`compare`, for a gradient against the differences of L."""
        return _compare(np.asarray(g), self.grad_estimate, self.grad_tolerance())


def _compare(value: np.ndarray, estimate: np.ndarray, tol: np.ndarray) -> dict[str, float]:
    err = np.abs(value - estimate)
    return {
        "max_error": float(err.max()),
        "max_tolerance": float(tol.max()),
        "excess": float((err - tol).max()),
        "max_ratio": float((err / np.maximum(tol, np.finfo(float).tiny)).max()),
    }


_unravel_jit = jax.jit(_unravel, static_argnums=0)
_ravel_jit = jax.jit(_ravel)


def _abs_grads(static, dyn, params, X, y, delta):
    r""":math:`\operatorname{mean}_i |\nabla_\theta\ell_i|` (P,): per-example gradients are
    needed for their absolute values, so they are summed chunk by chunk (``lax.scan``,
    memory O(chunk × P), never n × P)."""
    loss_fn = combine(dyn, static)
    n = X.shape[0]
    P = _ravel(params).shape[0]
    B = _chunk(n, P)
    m = -(-n // B)
    pad = lambda a: jnp.pad(a, [(0, m * B - n)] + [(0, 0)] * (a.ndim - 1), mode="edge")  # noqa: E731
    weight = (jnp.arange(m * B) < n).astype(X.dtype)
    chunks = [pad(a).reshape((m, B) + a.shape[1:]) for a in (X, y, delta)]

    def body(acc, args):
        x, yi, dl, w = args
        g = jax.vmap(lambda xx, yy, dd: _ravel(jax.grad(loss_fn)(params, xx + dd, yy)))(x, yi, dl)
        return acc + w @ jnp.abs(g), None

    acc, _ = lax.scan(body, jnp.zeros(P, X.dtype), (*chunks, weight.reshape(m, B)))
    return acc / n


_abs_grads_jit = jax.jit(_abs_grads, static_argnames=("static",))


def _hxt_norms(static, dyn, params, X, y, delta):
    """Per-example Frobenius norm of :math:`H_{\\theta x}`: d forward passes of the θ-gradient
    per example, one input direction at a time (O(P) memory). Sequential on purpose: a
    ``jacfwd``/``vmap`` over directions or examples turns a convolution's kernel gradient
    into a grouped convolution, which XLA:CPU runs ~200× slower (20 s against 0.1 s for
    a 3.7k-parameter CNN at n = 48); for MLPs the loop is as fast as the batched form."""
    loss_fn = combine(dyn, static)
    d = X.shape[1]
    eye = jnp.eye(d, dtype=X.dtype)

    def one(args):
        z, yi = args
        gth = lambda zz: _ravel(jax.grad(loss_fn)(params, zz, yi))  # noqa: E731
        sq = lax.map(lambda e: jnp.sum(jax.jvp(gth, (z,), (e,))[1] ** 2), eye)
        return jnp.sqrt(jnp.sum(sq))

    return lax.map(one, (X + delta, y))


_hxt_norms_jit = jax.jit(_hxt_norms, static_argnames=("static",))


def _hxt_probe(static, dyn, spec, params, X, y, delta, probes):
    """Per example a Hutchinson estimate of :math:`\\|H_{x\\theta}\\|_F` from Rademacher
    ``probes`` (m, P): one batch θ pass each (row i of R is :math:`H^i_{x\\theta}z`)."""
    loss_fn = combine(dyn, static)
    Z = X + delta

    def sq(pr):
        R = _x_pass(loss_fn, params, Z, y, _unravel(spec, pr))
        return jnp.sum(R * R, axis=1)

    return jnp.sqrt(jnp.mean(lax.map(sq, probes), axis=0))


_hxt_probe_jit = jax.jit(_hxt_probe, static_argnames=("static", "spec"))


def resolve_grads(
    point: AdversarialPoint,
    thetas: ArrayLike,
    *,
    refine_steps: int = 2,
    newton_steps: int = 4,
    init: ArrayLike | None = None,
) -> dict[str, np.ndarray]:
    r"""Re-solve the attack and take L and the Danskin gradient at many flat θ (B, P).

    Each re-solve is warm-started at ``init`` (default: the δ* of ``point``) and runs
    ``refine_steps`` projected-gradient and ``newton_steps`` Newton steps — the same
    compiled attack as :func:`advlip.attacks.pgd`, so no new compilation. Returns
    ``values`` (B,), ``grads`` (B, P), ``residual``, ``gap``, ``kind`` (B, n) and
    ``delta`` (B, n, d).

    Example:
        w = (0.3, 0.4) has ‖w‖ = 0.5; in the L2 ball of radius ε = 2 both margins
        :math:`y\,w\cdot x = 1` drop by ε‖w‖ = 1 to 0, where the softplus loss has
        ℓ = log 2, ℓ' = −1/2 and ℓ'' = 1/4 (docs/theory/closed-form.md).
        Scaling w scales the margin and ε‖w‖ alike and leaves δ* unchanged: at
        w = (0.6, 0.8) the loss is log 2 again.

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> pt = adversarial.linearize(models.LinearLoss(), params, X, y, eps=2.0, p=2)
        >>> r = adversarial.resolve_grads(pt, np.array([[0.0, 0.3, 0.4], [0.0, 0.6, 0.8]]))
        >>> tuple(round(float(v), 4) for v in r["values"]), r["grads"].shape, r["delta"].shape
        ((0.6931, 0.6931), (2, 3), (2, 2, 2))
    """
    thetas = np.asarray(thetas)
    if thetas.ndim != 2 or thetas.shape[1] != point.dim:
        raise ValueError(f"thetas must have shape (B, {point.dim}), got {thetas.shape}")
    n, d = point.X.shape
    cfg = AttackConfig(
        cg_maxiter=point.cg_maxiter,
        restarts=1,
        random_start=False,
        lanczos_steps=min(d, 64),
        dense=point.dense,
    )
    init = point.delta if init is None else jnp.asarray(init).astype(point.dtype)
    starts = init[:, None, :]
    alpha = np.asarray(0.0, dtype=point.dtype)
    out: dict[str, list] = {k: [] for k in ("values", "grads", "residual", "gap", "kind", "delta")}
    for theta in thetas:
        params = _unravel_jit(point.spec, np.asarray(theta, dtype=point.dtype))
        att = run_attack(
            point.loss_fn,
            params,
            point.X,
            point.y,
            starts,
            point.eps,
            alpha,
            [0, refine_steps, newton_steps],
            point.p,
            cfg,
            0.0,
            0.0,
        )
        out["values"].append(jnp.mean(att.loss))
        out["grads"].append(_ravel_jit(att.danskin_grad))
        out["residual"].append(att.kkt.residual)
        out["gap"].append(att.kkt.gap)
        out["kind"].append(att.kkt.kind)
        out["delta"].append(att.delta)
    return {k: np.asarray(jnp.stack(v)) for k, v in out.items()}


def _mean_terms(rmax: np.ndarray, derr: np.ndarray) -> np.ndarray:
    """Per example the value error r·e/2 of a δ off by e with residual r (0·∞ = 0)."""
    with np.errstate(invalid="ignore"):
        return np.where(rmax == 0, 0.0, rmax * derr / 2.0)


def fd_hessian(
    point: AdversarialPoint,
    *,
    h: float | None = None,
    refine_steps: int = 2,
    newton_steps: int = 4,
) -> FDHessian:
    r"""The total Hessian by finite differences, the slow independent route.

    For every coordinate j and :math:`s \in \{\pm h, \pm 2h\}` the attack is re-solved
    at :math:`\theta + s e_j` (warm-started at the δ* of θ, ``refine_steps`` projected
    gradient and ``newton_steps`` Newton steps, :func:`resolve_grads`; Newton converges
    quadratically from a start O(h) away, and each re-solve's KKT residual enters the
    tolerance) and the Danskin
    gradient taken: 4P attacked gradients. ``h`` defaults to
    :math:`2^{\lfloor(\log_2 u + 14)/3\rfloor} \max(1, \|\theta\|_\infty)` for the unit roundoff
    u of the working dtype — :math:`2^{-13}` in float64: truncation :math:`h^2 \approx 10^{-8}`
    above the rounding :math:`u/h \approx 10^{-12}` (the ratio :math:`h^3/u = 2^{14}` kept for
    other dtypes), so Richardson's estimate of the error is reliable. The shifted θ are
    rounded to the working dtype and the differences divided by the steps actually
    taken. Compare with :meth:`FDHessian.compare`.

    Example:
        :class:`FDHessian`'s L∞ problem: the differences agree with the dense total
        Hessian within the sum of both error bounds (``excess`` ≤ 0).

        >>> import math
        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import adversarial, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> pt = adversarial.linearize(models.LinearLoss(), params, X, y, eps=2.0, p=math.inf)
        >>> fd = adversarial.fd_hessian(pt)
        >>> B = pt.blocks()
        >>> fd.compare(B.total, B.error)["excess"] <= 0, 4 * pt.dim  # attacked gradients
        (True, 12)
    """
    loss_fn, params = point.loss_fn, point.params
    dt = point.dtype
    theta = np.asarray(_ravel(params), dtype=np.float64)
    P = theta.size
    if h is None:
        u = tolerance.unit_roundoff(dt)
        h = 2.0 ** math.floor((math.log2(u) + 14.0) / 3.0) * max(1.0, float(np.max(np.abs(theta))))
    eye = np.eye(P)
    offsets = np.concatenate([h * eye, -h * eye, 2 * h * eye, -2 * h * eye])
    thetas = (theta[None, :] + offsets).astype(dt)
    # the steps actually taken once θ ± s e_j is rounded to the working dtype
    taken = np.abs(
        np.diagonal((thetas.astype(np.float64) - theta[None, :]).reshape(4, P, P), axis1=1, axis2=2)
    )
    r = resolve_grads(point, thetas, refine_steps=refine_steps, newton_steps=newton_steps)
    vals, grads, res, gap, kind = r["values"], r["grads"], r["residual"], r["gap"], r["kind"]
    vals, grads = vals.astype(np.float64), grads.astype(np.float64)
    gp, gm, g2p, g2m = grads[:P], grads[P : 2 * P], grads[2 * P : 3 * P], grads[3 * P :]
    D_h = ((gp - gm) / (taken[0] + taken[1])[:, None]).T
    D_2h = ((g2p - g2m) / (taken[2] + taken[3])[:, None]).T
    vp, vm, v2p, v2m = vals[:P], vals[P : 2 * P], vals[2 * P : 3 * P], vals[3 * P :]
    n, d = point.X.shape
    rmax = res.max(axis=0)
    # the true residual of a re-solve is at most the computed one plus the rounding of
    # the gradient it was computed from
    r_true = rmax + np.asarray(point.grad_rounding, dtype=np.float64)
    grad_error = point.gradient_error(r_true)
    derr = point.delta_errors(r_true)
    # a δ off by e with true residual r loses at most r·e/2 of the value
    attack_v = float(np.mean(np.maximum(gap.max(axis=0), 0.0) + _mean_terms(r_true, derr)))
    k_val = cached_ops("value", loss_fn, params, point.X[0], point.y[0]) + n
    value_error = tolerance.gamma(k_val, dt) * float(np.abs(vals).max()) + attack_v
    changed = bool((kind != np.asarray(point.kkt.kind)[None, :]).any())
    return FDHessian(
        fine=D_h,
        coarse=D_2h,
        grad_fine=(vp - vm) / (taken[0] + taken[1]),
        grad_coarse=(v2p - v2m) / (taken[2] + taken[3]),
        grad_error=grad_error,
        value_error=value_error,
        h=float(h),
        max_residual=float(res.max()),
        active_set_changed=changed,
    )
