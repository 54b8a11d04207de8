"""JAX's own transformations through the attack (advlip.implicit) against advlip's formulas.

`jax.hessian` of the adversarial loss goes through the custom JVP of δ*(θ) (implicit
function theorem on the active face); advlip's dense formula (`AdversarialPoint.blocks`)
and the finite differences of re-solved attacks (`fd_hessian`) are computed
independently. Tolerances: `Blocks.error` bounds the error of the dense formula — the
rounding of one example's Hessian chain, the d×d solve and the mean (γ_k in float64,
k counted on the jaxpr) plus the attack's first-order error. The transformed functions are jitted, as a user would (one compiled program, the attack
inside it). The JVP route evaluates
the same mathematical expression from the same δ with an operation count of the same
form (a forward-over-reverse Hessian chain, a d×d solve, a mean), so the same model
bounds its error too, and the two agree within the sum, 2·`Blocks.error`.
"""

from __future__ import annotations

import collections
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from advlip import adversarial, attacks, implicit, models, tolerance
from advlip.theorems import general


def _problem(case: str):
    params, X, y = general.reference_problem(0, 8)
    st = general.interior_setup(params, X, "tanh")
    curved = models.MLPLoss("tanh", kappa=st["kappa"])
    Xc = st["x_scale"] * X
    return {
        # κ makes ℓ strongly concave in x: the maximisers are inside the ball (G1) …
        "interior": (curved, params, Xc, y, st["eps"], 2.0),
        # … or, for smaller ε, on faces of the L∞ box / the L1 ball with free coordinates
        "linf_face": (curved, params, Xc, y, 0.05 * st["eps"], math.inf),
        "l1_face": (curved, params, Xc, y, 0.1 * st["eps"], 1.0),
        # without κ, small ε: the L2 sphere (G2) and the vertices of the L∞ box (G3)
        "l2_sphere": (models.MLPLoss("tanh"), params, X, y, general.EPS_L2, 2.0),
        "linf_vertex": (models.MLPLoss("tanh"), params, X, y, 0.01, math.inf),
    }[case]


def _flat_loss(loss, params, X, y, eps, p, **kw):
    theta, unravel = ravel_pytree(params)

    def L(t):
        # the public name: eager on concrete θ, advlip.implicit under transformations
        return adversarial.adversarial_loss(loss, unravel(t), X, y, eps=eps, p=p, **kw)

    return L, theta


@pytest.mark.parametrize("case", ["interior", "l2_sphere", "linf_face", "linf_vertex", "l1_face"])
def test_jax_hessian_equals_the_total_hessian(case):
    loss, params, X, y, eps, p = _problem(case)
    pt = adversarial.linearize(loss, params, X, y, eps=eps, p=p)
    assert pt.all_determined
    # the case this test is named for is present (the problem is built to produce it)
    assert case.replace("l2_sphere", "l2_boundary") in collections.Counter(pt.cases)
    L, theta = _flat_loss(loss, params, X, y, eps, p)
    H = np.asarray(jax.jit(jax.hessian(L))(theta))
    B = pt.blocks()
    err = np.asarray(B.error)
    total, naive = np.asarray(B.total), np.asarray(B.naive)
    assert np.all(np.abs(H - total) <= 2 * err), np.max(np.abs(H - total) - 2 * err)
    if case == "linf_vertex":
        return
    # power: where δ* moves, the naive Hessian (δ held fixed) is not what JAX gives
    assert np.any(np.abs(H - naive) > 2 * err)


@pytest.mark.parametrize("case", ["interior", "l2_sphere", "linf_face"])
def test_jax_hessian_equals_finite_differences_of_resolved_attacks(case):
    loss, params, X, y, eps, p = _problem(case)
    pt = adversarial.linearize(loss, params, X, y, eps=eps, p=p)
    fd = adversarial.fd_hessian(pt)
    assert not fd.active_set_changed
    L, theta = _flat_loss(loss, params, X, y, eps, p)
    H = np.asarray(jax.jit(jax.hessian(L))(theta))
    cmp = fd.compare(H, 2 * np.asarray(pt.blocks().error))
    assert cmp["excess"] <= 0.0, cmp


def test_grad_is_the_danskin_gradient_and_jvp_of_grad_the_total_hvp():
    loss, params, X, y, eps, p = _problem("l2_sphere")
    pt = adversarial.linearize(loss, params, X, y, eps=eps, p=p)
    L, theta = _flat_loss(loss, params, X, y, eps, p)
    g = np.asarray(jax.jit(jax.grad(L))(theta))
    danskin = np.asarray(ravel_pytree(pt.grad())[0])
    # ∇_xℓ·Dδ* vanishes at a KKT point up to the residual: both within the gradient's
    # error bound (rounding + attack error), each
    assert np.all(np.abs(g - danskin) <= 2 * pt.gradient_error())
    v = np.asarray(jax.random.normal(jax.random.PRNGKey(3), theta.shape))
    hvp = jax.jit(lambda t, w: jax.jvp(jax.grad(L), (t,), (w,))[1])
    hv = np.asarray(hvp(theta, jnp.asarray(v)))
    ref = np.asarray(pt.total_hvp(jnp.asarray(v)))
    tol = 2 * pt.hvp_error(jnp.asarray(v)) + 2 * np.asarray(pt.blocks().error) @ np.abs(v)
    assert np.all(np.abs(hv - ref) <= tol)


def test_jit_and_vmap_trace_through_the_attack():
    """Eager (the attack's own loss values), jitted and vmapped (the implicit route's loss
    at the attack's δ) agree: each is the mean of ℓ at the same δ, within the mean of the
    per-example value bounds (attacks.loss_error) plus the mean's rounding γ_n·mean|ℓ|;
    gradients: each is the Danskin gradient within gradient_error."""
    loss, params, X, y, eps, p = _problem("l2_sphere")
    L, theta = _flat_loss(loss, params, X, y, eps, p)
    thetas = jnp.stack([theta, 0.9 * theta])
    _, unravel = ravel_pytree(params)
    n = X.shape[0]
    eager = np.asarray([float(L(t)) for t in thetas])
    jitted = np.asarray([float(jax.jit(L)(t)) for t in thetas])
    batched = np.asarray(jax.jit(jax.vmap(L))(thetas))
    gb = np.asarray(jax.jit(jax.vmap(jax.grad(L)))(thetas))
    for k, t in enumerate(thetas):
        pt = adversarial.linearize(loss, unravel(t), X, y, eps=eps, p=p)
        ell = np.asarray(pt.attack.loss)
        err = np.asarray(attacks.loss_error(loss, unravel(t), X, y, pt.delta))
        tol = 2 * (float(np.mean(err)) + tolerance.gamma(n) * float(np.mean(np.abs(ell))))
        assert abs(jitted[k] - eager[k]) <= tol and abs(batched[k] - eager[k]) <= tol
        danskin = np.asarray(ravel_pytree(pt.grad())[0])
        assert np.all(np.abs(gb[k] - danskin) <= 2 * pt.gradient_error())


def test_a_derivative_where_none_exists_raises_inside_jit():
    """At an L∞ switching surface the second-order condition fails: strict raises even
    under jit; strict=False returns the numbers and the status says which to distrust."""
    loss, params, X, y = models.MLPLoss("tanh"), *general.reference_problem(0, 8)
    theta0, _ = general.switching_surface(params)
    kw = dict(eps=general.EPS_LINF, p=math.inf)
    L, t0 = _flat_loss(loss, theta0, X, y, **kw)
    # the value exists (the attack is a certified maximiser) …
    assert np.isfinite(float(jax.jit(L)(t0)))
    # … its derivative does not
    with pytest.raises(Exception, match="derivative of the attack's maximiser does not exist"):
        jax.block_until_ready(jax.jit(jax.grad(L))(t0))
    m = implicit.maximiser(loss, theta0, X, y, strict=False, **kw)
    assert list(np.asarray(m.status)) == [4] * 8  # STATUS[4]: second-order condition fails
    Lloose, _ = _flat_loss(loss, theta0, X, y, strict=False, **kw)
    assert np.asarray(jax.jit(jax.grad(Lloose))(t0)).shape == t0.shape


def test_a_key_closed_over_by_jit_seeds_the_attack_and_an_integer_is_refused():
    loss, params, X, y, eps, p = _problem("l2_sphere")
    K = jax.random.PRNGKey(3)
    L, theta = _flat_loss(loss, params, X, y, eps, p, key=K)
    g = np.asarray(jax.jit(jax.grad(L))(theta))  # the key's bits are read at trace time
    pt = adversarial.linearize(loss, params, X, y, eps=eps, p=p, key=K)
    assert np.all(np.abs(g - np.asarray(ravel_pytree(pt.grad())[0])) <= 2 * pt.gradient_error())
    with pytest.raises(ValueError, match=r"key=3 is an integer; allowed: a JAX PRNG key"):
        adversarial.linearize(loss, params, X, y, eps=eps, p=p, key=3)
