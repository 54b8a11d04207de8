"""GEN-L2-BOUNDARY (case G2, docs/theory/gen-l2-boundary.md): the total Hessian when the L2
attack sits on the sphere.

Statement. Let ℓ(z, θ) be C², p = 2, and at θ0 let δ* maximise ℓ(x + δ, θ0) over ‖δ‖ ≤ ε
with ‖δ*‖ = ε, ∇_xℓ = μδ*, μ = ‖∇_xℓ‖/ε > 0 (the attack pushes outward), and the
second-order condition P(μI − H_xx)P ≻ 0 on the tangent space, P = I − δ*δ*ᵀ/ε². Then
δ*(θ) is C¹, it solves the bordered KKT system

    [[H_xx − μI, −δ*], [δ*ᵀ, 0]] [Dδ*; Dμ] = −[H_xθ; 0],

and ∇²L = H_θθ + H_θx Dδ* = H_θθ − H_θx P (P(H_xx − μI)P)⁺ P H_xθ: L is locally smooth.
For the linear model ℓ = ψ(y(w·z + b)) this is Dδ* = −yε(I − ŵŵᵀ)/‖w‖, the curvature term
of LIN-L2.

Assumptions. d = 2 for the chart argument (the sphere is a circle; in higher d the same
computation runs in any chart of the sphere); the identities involve second derivatives of
ℓ at the point only, so ℓ is represented by its second-order jet there, with every
coefficient a free symbol. W.l.o.g. δ* points along e₁ (φ0 = 0): a rotation of the input
coordinates maps a jet with free coefficients to another one.

Proof. Chart the circle, δ = εn(φ), n = (cos φ, sin φ), t = n′ = (−sin φ, cos φ). The
maximum over the sphere is an interior maximum of h(φ, θ) = ℓ(x + εn(φ), θ) in φ, so G1
(proofs/gen_interior.py) applies in the chart: L'' = h_θθ − h_θφ h_φθ / h_φφ. The chain rule
turns h's derivatives into those of ℓ, and with g = ∇_xℓ = μεn the chart formula becomes the
KKT formula; solving the bordered system gives the same Dδ*.
"""

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from advlip import adversarial, linear, models, tolerance

jax.config.update("jax_enable_x64", True)  # the numerical check is in float64


def same(a, b) -> bool:
    """Entrywise identity of rational expressions (exact cancellation)."""
    a, b = sp.Matrix(a), sp.Matrix(b)
    return all(sp.cancel(sp.together(x - y)) == 0 for x, y in zip(a, b, strict=True))


def main() -> None:
    m = 2  # parameters
    eps, mu = sp.symbols("epsilon mu", positive=True)
    phi0 = sp.Integer(0)  # w.l.o.g. (see Assumptions)
    phi = sp.Symbol("phi", real=True)
    th = sp.Matrix(sp.symbols("theta1:3", real=True))
    th0 = sp.Matrix(sp.symbols("vartheta1 vartheta2", real=True))
    h11, h12, h22 = sp.symbols("H11 H12 H22", real=True)
    H = sp.Matrix([[h11, h12], [h12, h22]])
    C = sp.Matrix(2, m, sp.symbols("C11 C12 C21 C22", real=True))  # H_xθ
    t11, t12, t22 = sp.symbols("T11 T12 T22", real=True)
    T = sp.Matrix([[t11, t12], [t12, t22]])  # H_θθ

    print("Step 1. ℓ's second-order jet at (z0, θ0), with ∇_xℓ = g = μ ε n(φ0) (outward, KKT).")
    n = lambda a: sp.Matrix([sp.cos(a), sp.sin(a)])  # noqa: E731
    tvec = lambda a: sp.Matrix([-sp.sin(a), sp.cos(a)])  # noqa: E731
    g = mu * eps * n(phi0)
    z0 = sp.Matrix(sp.symbols("z01 z02", real=True))
    x = z0 - eps * n(phi0)

    def ell(z, theta):
        dz, dt = z - z0, theta - th0
        return (g.T * dz + dz.T * H * dz / 2 + dz.T * C * dt + dt.T * T * dt / 2)[0]

    h = ell(x + eps * n(phi), th)
    at = {phi: phi0, **dict(zip(th, th0, strict=True))}
    h_phi = sp.diff(h, phi).subs(at)
    assert same([h_phi], [0])
    print("   ✓ SymPy: ∂_φ h = ε tᵀg = 0 at φ0: φ0 is stationary in the chart")

    print("Step 2. Chain rule: h_φφ = ε²(tᵀHt − μ), h_θφ = ε Cᵀt, h_θθ = T.")
    h_pp = sp.diff(h, phi, 2).subs(at)
    h_tp = sp.Matrix([sp.diff(h, phi, v) for v in th]).subs(at)
    h_tt = sp.hessian(h, th).subs(at)
    t0 = tvec(phi0)
    assert same([h_pp], [eps**2 * ((t0.T * H * t0)[0] - mu)])
    assert same(h_tp, eps * C.T * t0)
    assert same(h_tt, T)
    print(
        "   ✓ SymPy: the tangent curvature is tᵀ(H − μI)t; "
        "the second-order condition is tᵀ(μI − H)t > 0"
    )

    print("Step 3. G1 (interior maximiser) in the chart vs the KKT form with P = ttᵀ,")
    print("        (P(H − μI)P)⁺ = ttᵀ/tᵀ(H − μI)t.")
    chart = h_tt - h_tp * h_tp.T / h_pp
    P = t0 * t0.T
    assert same(P, sp.eye(2) - n(phi0) * n(phi0).T)
    pinv = t0 * t0.T / (t0.T * (H - mu * sp.eye(2)) * t0)[0]
    M = P * (H - mu * sp.eye(2)) * P
    assert same(M * pinv * M, M) and same(pinv * M * pinv, pinv)  # Moore–Penrose (symmetric)
    kkt = T - C.T * P * pinv * P * C
    assert same(chart, kkt)
    print("   ✓ SymPy: h_θθ − h_θφ h_φθ/h_φφ = H_θθ − H_θx P(P(H_xx − μI)P)⁺P H_xθ")

    print("Step 4. The bordered KKT system gives the same Dδ* (tangent: δ*ᵀDδ* = 0).")
    delta = eps * n(phi0)
    border = sp.zeros(3, 3)
    border[:2, :2] = H - mu * sp.eye(2)
    border[:2, 2] = -delta
    border[2, :2] = delta.T
    sol = border.LUsolve(-sp.Matrix.vstack(C, sp.zeros(1, m)))
    Ddelta = sol[:2, :]
    assert same(delta.T * Ddelta, sp.zeros(1, m))
    assert same(T + C.T * Ddelta, kkt)
    print("   ✓ SymPy: H_θθ + H_θx Dδ* (bordered system) = the KKT form")

    print("Step 5. Linear model ℓ = ψ(y(w·z + b)), d = 3: Dδ* = −yε(I − ŵŵᵀ)/‖w‖.")
    w = sp.Matrix(sp.symbols("w1:4", real=True))
    zz = sp.Matrix(sp.symbols("x1:4", real=True))
    y = sp.Symbol("y", real=True)
    psi1 = sp.Symbol("psi1", negative=True)  # ψ' < 0: a decreasing margin loss
    psi2 = sp.Symbol("psi2", real=True)
    Nw = sp.sqrt((w.T * w)[0])
    what = w / Nw
    delta_star = -y * eps * what
    direct = delta_star.jacobian(w)
    I3 = sp.eye(3)
    Pw = I3 - what * what.T
    Hx = psi2 * y**2 * w * w.T
    Hxw = psi2 * y**2 * w * zz.T + psi1 * y * I3  # ∂_w ∇_zℓ at z (any z on the optimum)
    mu_w = sp.Abs(psi1 * y) * Nw / eps  # ‖∇_zℓ‖/ε with ∇_zℓ = ψ' y w
    assert same(Pw * w, sp.zeros(3, 1))
    A = Pw * (mu_w * I3 - Hx) * Pw
    assert same(A, mu_w * Pw)  # PwwᵀP = 0: only μ remains on the tangent space
    kkt_D = (Pw / mu_w) * Pw * Hxw  # A⁺ P H_xθ with A⁺ = P/μ
    expected = -y * eps * Pw / Nw
    ysq = {sp.Abs(psi1 * y): -psi1 * sp.Abs(y)}
    for yv in (1, -1):
        assert same(kkt_D.subs(ysq).subs(y, yv), expected.subs(y, yv))
        assert same(direct.subs(y, yv), expected.subs(y, yv))
    print("   ✓ SymPy: KKT solution = Jacobian of −yεŵ = −yε(I − ŵŵᵀ)/‖w‖, for y = ±1")

    print("Numerical check (advlip on the linear model, against advlip.linear's closed form).")
    rng = np.random.default_rng(2)
    d, nx, e = 3, 6, 0.4
    wv = rng.standard_normal(d)
    params = {"w": jnp.asarray(wv), "b": jnp.asarray(0.3)}
    X, yv = jnp.asarray(rng.standard_normal((nx, d))), jnp.asarray(rng.choice([-1.0, 1.0], nx))
    pt = adversarial.linearize(models.LinearLoss(), params, X, yv, eps=e, p=2.0)
    assert pt.all_determined and set(pt.cases) == {"l2_boundary"}
    Hg = np.asarray(pt.total_hessian())
    Hc = np.asarray(linear.adversarial_hessian(params["w"], X, yv, eps=e, p=2, b=0.3))
    perm = np.r_[d, np.arange(d)]  # ravel order {"b", "w"}
    Hc = Hc[np.ix_(perm, perm)]
    B = pt.blocks()
    tol = np.asarray(B.error) + tolerance.gamma(4 * d + 16) * (np.abs(Hc) + np.abs(Hg))
    assert np.all(np.abs(Hg - Hc) <= tol)
    print(
        "   ✓ implicit total Hessian = the closed-form Hessian (docs/theory/closed-form.md) to "
        f"{np.abs(Hg - Hc).max():.1e}"
    )

    v = rng.standard_normal(d + 1)
    jvp = np.asarray(pt.delta_jvp(jnp.asarray(v)))
    wn = np.linalg.norm(wv)
    Dv = (np.eye(d) - np.outer(wv, wv) / wn**2) @ v[1:] / wn
    expect = -np.asarray(yv)[:, None] * e * Dv[None, :]
    # CG on the tangent space (condition 1: A = μP) to γ_{2d+4}, times |D| |v|
    assert np.allclose(
        jvp, expect, rtol=0, atol=tolerance.gamma(8 * d + 16) * e * np.abs(v).sum() / wn
    )
    print(
        "   ✓ Dδ*·v by the matrix-free KKT solve = −yε(I − ŵŵᵀ)v/‖w‖ to "
        f"{np.abs(jvp - expect).max():.1e}"
    )
    print("   (the tanh MLP against re-solved differences: advlip verify --only GEN-L2-BOUNDARY)")
    print("PROOF OK: GEN-L2-BOUNDARY")


if __name__ == "__main__":
    if not __debug__:
        raise SystemExit(f"{__file__}: every check here is an assert; run without python -O")
    main()
