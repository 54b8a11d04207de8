r"""The attack's maximiser :math:`\delta^*(\theta, X)` as a function JAX can differentiate.

:func:`maximiser` runs the attack (:func:`advlip.attacks.pgd`) and returns δ* with a
custom JVP from the implicit function theorem on the active face of every example. At a
KKT point with strict complementarity the stationarity condition on the face,
:math:`P(\nabla_x\ell(x+\delta, \theta) - \mu\,\delta) = 0`, holds along the solution,
so differentiating it gives, with :math:`A = P(\mu I - H_{xx})P`,

.. math:: d\delta^* = A^{+}P\,(H_{x\theta}\,d\theta + H_{xx}\,dx),

the same tangent solve as the attack's Newton step and the total Hessian
(:class:`advlip.tangent.TangentOperator`; interior: P = I, μ = 0; L2 sphere:
:math:`P = I - \hat\delta\hat\delta^\top`; faces of the L∞ box and of the L1 ball:
their coordinate projectors; a vertex: P = 0, δ* does not move). The rule is linear in
the tangents and its solve is a ``lax.custom_linear_solve``, so JAX transposes it:
``jax.grad`` of :func:`adversarial_loss` is the Danskin gradient (the term
:math:`\nabla_x\ell\cdot D\delta^*` vanishes at a KKT point: the gradient is normal to
the face, :math:`D\delta^*` tangent to it), and ``jax.hessian`` or
``jax.jvp(jax.grad(...))`` give the total curvature
:math:`H_{\theta\theta} + H_{\theta x}D\delta^*` (docs/theory/general-models.md). The rule re-derives
P and μ from δ, so derivatives of every order see the face move with δ.

Where the derivative does not exist — an unconverged or beaten attack, an L∞ switching
surface or an L1 tie (a zero multiplier), an inactive constraint within the attack's
error, a failed second-order condition — the per-example status
(:data:`advlip.adversarial.STATUS`) travels with δ. With ``strict=True`` (default) a
derivative taken there raises inside ``jit`` (``equinox.error_if``: the error names the
status), and so does a value taken at an attack that is not a certified maximiser;
with ``strict=False`` nothing raises and the status says which numbers to trust.

The hand-written products of :mod:`advlip.adversarial` (:func:`~advlip.adversarial.total_hvp`)
stay the fast path (no attack is re-run per product) and the cross-check of this one.

Example (the total Hessian by JAX's own transformation, against advlip's formula):
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from advlip import adversarial, implicit, models, tolerance
    >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
    >>> X, y = jnp.array([[0.5, 1.0], [1.0, -1.0]]), jnp.array([1.0, -1.0])
    >>> theta, unravel = jax.flatten_util.ravel_pytree(params)  # (b, w) order
    >>> L = lambda t: implicit.adversarial_loss(models.LinearLoss(), unravel(t), X, y, eps=0.1, p=2)
    >>> H = jax.hessian(L)(theta)
    >>> B = adversarial.linearize(models.LinearLoss(), params, X, y, eps=0.1, p=2).blocks()
    >>> # agreement within the error bound of the dense formula (rounding and attack error),
    >>> # twice: the custom-JVP route errs by no more (the same formula, the same attack)
    >>> bool(np.all(np.abs(H - B.total) <= 2 * B.error))
    True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from advlip._validate import is_traced
from advlip.attacks import (
    cached_ops,
    dense_choice,
    num_params,
    prepare_problem,
)

__all__ = ["Maximiser", "maximiser", "adversarial_loss"]


class Maximiser(NamedTuple):
    r"""δ* of every example (n, d), differentiable in θ and X, and its status (n,): an
    index into :data:`advlip.adversarial.STATUS`, 0 where the derivative exists.

    Example:
        A linear model ``w = (0.3, 0.4)`` (‖w‖ = 0.5) under the L2 ball of radius 2: the
        maximiser is :math:`\delta^* = -y\varepsilon w/\|w\| = \mp(1.2, 1.6)`
        (docs/theory/closed-form.md), and both examples are determined (status 0).

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import implicit, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> m = implicit.maximiser(models.LinearLoss(), params, X, y, eps=2.0, p=2)
        >>> np.round(np.asarray(m.delta, float), 4).tolist(), m.status.tolist()
        ([[-1.2, -1.6], [1.2, 1.6]], [0, 0])
    """

    delta: jax.Array
    status: jax.Array


_MESSAGE = {
    "value": (
        "advlip.implicit: the attack's δ is not a certified maximiser for some example "
        "(not converged, or another start found a higher value): the adversarial loss "
        "there is not max ℓ. Run the attack longer / with more starts, or pass "
        "strict=False and read the status."
    ),
    "derivative": (
        "advlip.implicit: the derivative of the attack's maximiser does not exist for some "
        "example (an unconverged or beaten attack, an L∞ switching surface or L1 tie, an "
        "inactive constraint within the attack error, or a failed second-order condition): "
        "no total gradient/Hessian of the adversarial loss there. Pass strict=False and read "
        "the status (advlip.adversarial.STATUS), or move θ / ε off the degenerate set."
    ),
}


def maximiser(
    loss_fn: Any,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    strict: bool = True,
    cg_maxiter: int | None = None,
    **attack_options: Any,
) -> Maximiser:
    r"""δ* of every example, with the implicit-function-theorem JVP (see the module docstring).

    ``attack_options`` go to :func:`advlip.attacks.pgd` (``key=`` for its random starts:
    explicit JAX keys). ``y`` is not differentiated (labels). Traceable under ``jit``,
    ``grad``, ``jvp``, ``hessian`` and ``vmap``.

    Example:
        For a linear model under the L2 ball, :math:`\delta^* = -y\varepsilon w/\|w\|`
        turns with w: along the tangent direction v = (0.8, −0.6) it moves by
        :math:`-y\varepsilon v/\|w\| = \mp 4v` (ε = 2, ‖w‖ = 0.5); along w itself it
        does not move.

        >>> import jax, jax.numpy as jnp, numpy as np
        >>> from advlip import implicit, models
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> def delta(w):
        ...     params = {"w": w, "b": jnp.array(0.0)}
        ...     return implicit.maximiser(models.LinearLoss(), params, X, y, eps=2.0, p=2).delta
        >>> w = jnp.array([0.3, 0.4])
        >>> _, moved = jax.jvp(delta, (w,), (jnp.array([0.8, -0.6]),))
        >>> np.round(np.asarray(moved, float), 4).tolist()
        [[-3.2, 2.4], [3.2, -2.4]]
        >>> _, still = jax.jvp(delta, (w,), (w,))
        >>> float(jnp.max(jnp.abs(still)))
        0.0
    """
    loss_fn, params, X, y, p, dt = prepare_problem(loss_fn, params, X, y, eps, p)
    return _maximiser(loss_fn, params, X, y, eps, p, dt, strict, cg_maxiter, attack_options)


def _maximiser(loss_fn, params, X, y, eps, p, dt, strict, cg_maxiter, attack_options):
    """:func:`maximiser` on a validated problem (:func:`advlip.attacks.prepare_problem`)."""
    from advlip import adversarial  # the attack screen and the status live there

    n, d = X.shape
    eps_arr = eps if is_traced(eps) else jnp.asarray(np.asarray(eps, dtype=dt))
    dense = dense_choice(attack_options.get("x_solver", "auto"), d, num_params(params))
    cg_maxiter = 2 * d + 5 if cg_maxiter is None else int(cg_maxiter)
    k_grad = cached_ops("grad", loss_fn, params, X[0], y[0])

    @jax.custom_jvp
    def solve(theta, Xp):
        att = adversarial.solve_attack(loss_fn, theta, Xp, y, eps, p, None, attack_options)
        status = adversarial.example_status(att, d, k_grad)[0].astype(jnp.int32)
        delta = jax.lax.stop_gradient(att.delta)
        if strict:
            S = adversarial.Status
            bad = (status == S.NOT_CONVERGED) | (status == S.BEATEN)
            delta = eqx.error_if(delta, jnp.any(bad), _MESSAGE["value"])
        return delta, status

    @solve.defjvp
    def solve_jvp(primals, tangents):
        theta, Xp = primals
        dtheta, dX = tangents
        delta, status = solve(theta, Xp)
        if strict:
            determined = status == adversarial.Status.DETERMINED
            delta = eqx.error_if(delta, ~jnp.all(determined), _MESSAGE["derivative"])
        Z = Xp + delta
        # the face re-derived from δ (not read from the attack) so that every order of
        # derivative sees P and μ move with δ
        faces = adversarial.faces_at(loss_fn, theta, Xp, y, delta, eps_arr, p)
        # R = H_xθ dθ + H_xx dX: one batch forward-over-reverse pass of the Z-gradient
        grad_z = jax.grad(adversarial.summed_loss(loss_fn, y), argnums=1)
        R = jax.jvp(grad_z, (theta, Z), (dtheta, dX))[1]
        U = adversarial.tangent_solves(
            loss_fn, theta, Z, y, faces, R, dense=dense, cg_maxiter=cg_maxiter
        )
        return (delta, status), (U, np.zeros(status.shape, dtype=jax.dtypes.float0))

    delta, status = solve(params, X)
    return Maximiser(delta, status)


def adversarial_loss(
    loss_fn: Any,
    params: Any,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: ArrayLike,
    p: float,
    strict: bool = True,
    **attack_options: Any,
) -> jax.Array:
    r""":math:`L(\theta) = \operatorname{mean}_i \ell(x_i + \delta_i^*(\theta), y_i; \theta)`,
    differentiable by JAX to every order through the attack (:func:`maximiser`).

    Example:
        ``w = (0.3, 0.4)`` has ‖w‖ = 0.5, so ε‖w‖ = 1 at ε = 2: both margins
        :math:`y\,w\cdot x = 1` drop to 0 under attack and the softplus loss is
        :math:`\log 2 = 0.6931` (docs/theory/closed-form.md). ``jax.grad`` and
        ``jax.hessian`` of this function go through the attack (see the module example).

        >>> import jax.numpy as jnp
        >>> from advlip import implicit, models
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X, y = jnp.array([[2.0, 1.0], [-2.0, -1.0]]), jnp.array([1.0, -1.0])
        >>> L = implicit.adversarial_loss(models.LinearLoss(), params, X, y, eps=2.0, p=2)
        >>> round(float(L), 4)
        0.6931
    """
    loss_fn, params, X, y, p, dt = prepare_problem(loss_fn, params, X, y, eps, p)
    m = _maximiser(loss_fn, params, X, y, eps, p, dt, strict, None, attack_options)
    return jnp.mean(jax.vmap(lambda z, yi: loss_fn(params, z, yi))(X + m.delta, y))
