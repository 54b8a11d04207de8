"""GEN-LINF-VERTEX (case G3, docs/theory/gen-linf-vertex.md): under L∞ the attack sits at a
vertex; there ∇²L = H_θθ, and across a switching surface ∇L jumps by H_θx Δδ.

Statement. Let ℓ(z, θ) be C², p = ∞.
  (a) If at θ0 every component of ∇_xℓ(x + δ*, θ0) is nonzero and δ* = ε sign(∇_xℓ) is the
      (unique) maximiser, then δ* is locally constant and near θ0: ∇L = ∇_θℓ(x + δ*, θ),
      ∇²L = H_θθ — the naive Hessian is the total one (the KKT projector is P = 0).
  (b) If along θ(t) = θ0 + t e the component ∂_{x_j}ℓ changes sign at t = 0, the vertex jumps,
      Δδ = δ*(0⁺) − δ*(0⁻) = ±2ε e_j per switched coordinate, and
          lim_{t→0⁺} ∇L(θ0 + t e) − ∇L(θ0 − t e) = ∇_θℓ(x + δ⁺, θ0) − ∇_θℓ(x + δ⁻, θ0),
      which equals H_θx Δδ exactly when ∇_θℓ is affine in x_j along the edge — in particular
      for every model whose output is affine in x_j (ℓ = ψ(v(θ)·x + c(θ)) with v_j(θ0) = 0, or
      a network with input j cut from its hidden layer and a linear skip weight s_j = 0). So
      R(θ0 + te, θ0 − te) = ‖H_θxΔδ‖/(2t) + O(1): growth exponent −1, not Lipschitz there.

Assumptions. (a) continuity of ∇_xℓ keeps its signs, hence the vertex, on a neighbourhood.
(b) on each side of the surface the maximiser is the vertex (as for convex-in-x models).

Proof. (a) L(θ) = ℓ(x + εs, θ) with s constant near θ0; differentiate twice. (b) Danskin on
each side gives the one-sided gradients; they differ by ∇_θℓ evaluated at two vertices that
differ in coordinate j only; if ∇_θℓ is affine on that edge the difference is its slope,
H_θx e_j, times Δδ_j = ±2ε.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jax.flatten_util import ravel_pytree

from advlip import adversarial, attacks, models, smoothness, symbolic, tolerance
from advlip.theorems import general

jax.config.update("jax_enable_x64", True)  # the numerical check is in float64


def main() -> None:
    eps = sp.Symbol("epsilon", positive=True)
    z = sp.Matrix(sp.symbols("z1 z2", real=True))
    th = sp.Matrix(sp.symbols("theta1 theta2", real=True))
    x = sp.Matrix(sp.symbols("x1 x2", real=True))

    print("Step 1 (a). A vertex is locally constant: L(θ) = ℓ(x + εs, θ), s = sign(∇_xℓ) fixed.")
    ell = sp.Function("ell")(*z, *th)
    s = sp.Matrix([1, -1])  # any fixed sign pattern
    vertex = {z[0]: x[0] + eps * s[0], z[1]: x[1] + eps * s[1]}
    L = ell.subs(vertex)
    HL = sp.hessian(L, th)
    Htt = sp.hessian(ell, th).subs(vertex)
    assert symbolic.is_identity(HL, Htt)
    print("   ✓ SymPy: ∇²L = H_θθ(x + εs, θ) for an arbitrary C² ℓ: Dδ* = 0, no implicit term")
    print("     (the KKT projector of a vertex is P = 0, so H_θθ − H_θxP(…)⁺PH_xθ = H_θθ too)")

    print("Step 2 (b). Output affine in x_1 with v_1(θ0) = 0: ℓ = ψ(v(θ)·x + c(θ)).")
    psi = sp.Function("psi")
    v = sp.Matrix([sp.Function("v1")(*th), sp.Function("v2")(*th)])
    c = sp.Function("c")(*th)
    ellv = psi((v.T * z)[0] + c)
    grad_t = sp.Matrix([sp.diff(ellv, t) for t in th])
    plus = {z[0]: x[0] + eps, z[1]: x[1]}
    minus = {z[0]: x[0] - eps, z[1]: x[1]}
    jump = grad_t.subs(plus) - grad_t.subs(minus)
    Htx_e1 = sp.Matrix([sp.diff(ellv, t, z[0]) for t in th])
    predicted = Htx_e1.subs({z[0]: x[0], z[1]: x[1]}) * 2 * eps  # H_θx Δδ, Δδ = 2ε e_1
    on_surface = {v[0]: 0}
    assert symbolic.is_identity(jump.subs(on_surface).doit(), predicted.subs(on_surface).doit())
    print(
        "   ✓ SymPy: ∇_θℓ(x + εe_1) − ∇_θℓ(x − εe_1) = H_θx (2εe_1) wherever v_1 = 0, any ψ, v, c"
    )
    # off the surface the two differ: a concrete member, ψ = exp, v = (θ1 + 1, θ2), c = 0
    off = (jump - predicted).replace(psi, sp.exp)
    for fn, body in ((v[0].func, th[0] + 1), (v[1].func, th[1]), (c.func, sp.Integer(0))):
        off = off.replace(fn, sp.Lambda(tuple(th), body))
    half, tenth = sp.Rational(1, 2), sp.Rational(1, 10)
    point = {th[0]: 3 * tenth, th[1]: 2 * tenth, x[0]: tenth, x[1]: 4 * tenth, eps: half}
    assert abs(float(off.doit().subs(point).evalf()[0])) > 1e-3
    print(
        "     (off the surface, e.g. ψ = exp, v_1 = θ1 + 1, the two differ: "
        "it needs the affine edge)"
    )

    print("Step 3. The ratio on witness pairs: R(t) = ‖J0 + O(t)‖/(2t), growth exponent −1.")
    t, J0 = sp.symbols("t J0", positive=True)
    R = J0 / (2 * t)
    assert symbolic.is_identity(t * sp.diff(sp.log(R), t), symbolic.expected_exponent(math.inf))
    print("   ✓ SymPy: t·d log R/dt = −1 = expected_exponent(∞)")

    print("Numerical check (advlip on the reference tanh MLP with a skip connection, d = 4).")
    params, X, y = general.reference_problem(0, 8)
    loss = models.MLPLoss("tanh")
    eps_n = general.EPS_LINF
    pt = adversarial.linearize(loss, params, X, y, eps=eps_n, p=math.inf)
    assert pt.all_determined and set(pt.cases) == {"linf_vertex"}, pt.summary()
    B = pt.blocks()
    assert np.array_equal(np.asarray(B.total), np.asarray(B.naive))
    print("   ✓ (a) every example at a vertex; the implicit total Hessian is H_θθ exactly")
    theta0, e = general.switching_surface(params, j=0)
    flat0, unravel = ravel_pytree(theta0)
    ts = smoothness.witness_ts(1e-6, 1e-2)
    att = lambda th_: attacks.pgd(loss, unravel(jnp.asarray(th_)), X, y, eps=eps_n, p=math.inf)  # noqa: E731
    ap = [att(np.asarray(flat0) + tk * e) for tk in ts]
    am = [att(np.asarray(flat0) - tk * e) for tk in ts]
    flat = lambda tree: np.asarray(ravel_pytree(tree)[0])  # noqa: E731
    J = np.stack([flat(a.danskin_grad) - flat(b.danskin_grad) for a, b in zip(ap, am, strict=True)])
    ddelta = np.asarray(ap[0].delta - am[0].delta)
    assert np.allclose(np.abs(ddelta[:, 0]), 2 * eps_n, rtol=tolerance.gamma(4), atol=0)
    assert np.all(ddelta[:, 1:] == 0)
    print(f"   ✓ (b) every example's δ*_1 jumps by 2ε = {2 * eps_n}, the others stay")
    pt0 = adversarial.linearize(loss, theta0, X, y, eps=eps_n, p=math.inf)
    Hxt = np.asarray(pt0.blocks().Hxt)
    predicted_n = np.einsum("nip,ni->p", Hxt, ddelta) / X.shape[0]
    # Richardson to t → 0 (one-sided gradients are smooth in t): J_R = 2J(t) − J(2t)
    JR0, JR1 = 2 * J[0] - J[1], 2 * J[1] - J[2]
    e_g = float(np.max(pt0.gradient_error(np.zeros(X.shape[0]))))
    tol = (
        np.abs(JR1 - JR0) / 3
        + 6 * e_g
        + tolerance.gamma(64) * np.abs(Hxt).sum(axis=(0, 1)) * 2 * eps_n
    )
    assert np.all(np.abs(JR0 - predicted_n) <= tol)
    print(
        f"   ✓ measured jump ‖ΔL'‖ = {np.linalg.norm(JR0):.5f} = ‖H_θxΔδ‖ = "
        f"{np.linalg.norm(predicted_n):.5f} "
        f"(max error {np.abs(JR0 - predicted_n).max():.1e} ≤ {tol.max():.1e})"
    )
    fit = smoothness.fit_growth_exponent(ts, J, 2 * ts, grad_abs_error=e_g)
    assert fit.resolved and fit.agrees_with(-1.0), fit.to_dict()
    print(
        f"   ✓ growth exponent of R on θ0 ± t e: {fit.exponent:+.4f} ± {fit.tolerance:.1e} "
        "(expected −1)"
    )
    print("PROOF OK: GEN-LINF-VERTEX")


if __name__ == "__main__":
    if not __debug__:
        raise SystemExit(f"{__file__}: every check here is an assert; run without python -O")
    main()
