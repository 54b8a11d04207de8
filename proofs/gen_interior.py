"""GEN-INTERIOR (case G1, docs/theory/gen-interior.md): the total Hessian of the adversarial loss
at an interior maximiser.

Statement. Let ℓ(z, θ) be C² and, at θ0, let δ*(θ0) be an interior maximiser of
δ ↦ ℓ(x + δ, θ0) over B_p(ε) with ∇_zℓ = 0 and H_xx = ∇²_zz ℓ ≺ 0 there. Then near θ0:
  (a) δ*(θ) is C¹ with Dδ* = −H_xx⁻¹ H_xθ                     (implicit function theorem);
  (b) ∇L(θ) = ∇_θ ℓ(x + δ*(θ), θ)                              (Danskin, case G0);
  (c) ∇²L = H_θθ − H_θx H_xx⁻¹ H_xθ                            (case G1);
  (d) the correction −H_θx H_xx⁻¹ H_xθ is positive semidefinite, so ∇²L ⪰ H_θθ: a Hessian
      tool that holds δ fixed *under*-estimates the curvature;
  (e) ‖∇²L‖ ≤ ‖H_θθ‖ + ‖H_xθ‖² / λ_min(−H_xx).

Assumptions. All blocks at (x + δ*(θ), θ); every maximiser strict (H_xx ≺ 0), so by
continuity it stays interior for θ near θ0; L is the mean of such terms over the examples,
and every identity below is linear in the per-example terms.

Proof. Differentiate the stationarity ∇_zℓ(x + δ*(θ), θ) ≡ 0 in θ: H_xx Dδ* + H_xθ = 0,
which gives (a) since H_xx is invertible. The chain rule gives ∇L = ∇_θℓ + Dδ*ᵀ ∇_zℓ = ∇_θℓ
(b). Differentiating (b) once more: ∇²L = H_θθ + H_θx Dδ* (c). For (d),
vᵀ(−H_θx H_xx⁻¹ H_xθ)v = (H_xθ v)ᵀ(−H_xx)⁻¹(H_xθ v) ≥ 0. (e) is the triangle inequality with
‖H_θx H_xx⁻¹ H_xθ‖ ≤ ‖H_xθ‖²‖H_xx⁻¹‖. SymPy confirms (a)–(d) on the family
ℓ = c(θ) + b(θ)ᵀz − ½ zᵀK(θ)z with b, c, K *arbitrary* functions of θ (every derivative that
enters (c) is a free symbol), and advlip reproduces ∇²L numerically.
"""

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from advlip import adversarial, symbolic, tolerance

jax.config.update("jax_enable_x64", True)  # the numerical check is in float64


def same(a, b) -> bool:
    """Entrywise identity of rational expressions in the functions and their derivatives
    (``cancel`` after ``together``: exact, and faster here than ``simplify``)."""
    a, b = sp.Matrix(a), sp.Matrix(b)
    return all(sp.cancel(sp.together(x - y)) == 0 for x, y in zip(a, b, strict=True))


def main() -> None:
    t1, t2 = sp.symbols("theta1 theta2", real=True)
    th = sp.Matrix([t1, t2])
    z1, z2 = sp.symbols("z1 z2", real=True)
    z = sp.Matrix([z1, z2])

    print("Step 1. A model quadratic in z with arbitrary θ-dependence: ℓ = c + bᵀz − ½zᵀKz.")
    b = sp.Matrix([sp.Function("b1")(t1, t2), sp.Function("b2")(t1, t2)])
    c = sp.Function("c")(t1, t2)
    k11, k12, k22 = (sp.Function(n)(t1, t2) for n in ("k11", "k12", "k22"))
    K = sp.Matrix([[k11, k12], [k12, k22]])
    ell = c + (b.T * z)[0] - sp.Rational(1, 2) * (z.T * K * z)[0]
    Hxx = sp.hessian(ell, z)
    assert symbolic.is_identity(Hxx, -K)
    print("   ✓ SymPy: H_xx = −K (≺ 0 when K ≻ 0: the maximiser is strict)")

    print("Step 2. Stationarity ∇_zℓ = b − Kz = 0: z*(θ) = K⁻¹b (interior when ‖z* − x‖ < ε).")
    zstar = K.adjugate() * b / K.det()
    grad_z = sp.Matrix([sp.diff(ell, v) for v in z])
    assert same(grad_z.subs({z1: zstar[0], z2: zstar[1]}), sp.zeros(2, 1))
    print("   ✓ SymPy: ∇_zℓ(z*) = 0")

    at = {z1: zstar[0], z2: zstar[1]}
    Hxt = sp.Matrix([[sp.diff(ell, zi, ti) for ti in th] for zi in z]).subs(at)
    Htt = sp.hessian(ell, th).subs(at)

    print("Step 3 (a). Implicit function theorem: Dz* = −H_xx⁻¹ H_xθ.")
    Dz = zstar.jacobian(th)
    Kinv = K.adjugate() / K.det()  # H_xx⁻¹ = −K⁻¹
    assert same(Dz, Kinv * Hxt)
    print("   ✓ SymPy: the Jacobian of K⁻¹b equals −H_xx⁻¹H_xθ, with b, c, K arbitrary functions")

    print("Step 4 (b). Danskin: ∇L = ∇_θℓ(z*, θ) — the motion of z* does not enter.")
    L = ell.subs(at)
    gradL = sp.Matrix([sp.diff(L, ti) for ti in th])
    grad_t = sp.Matrix([sp.diff(ell, ti) for ti in th]).subs(at)
    assert same(gradL, grad_t)
    print("   ✓ SymPy: ∇L = ∇_θℓ at z*")

    print("Step 5 (c). ∇²L = H_θθ − H_θx H_xx⁻¹ H_xθ.")
    formula = Htt + Hxt.T * Kinv * Hxt  # = H_θθ − H_θx H_xx⁻¹ H_xθ
    upper = [(0, 0), (0, 1), (1, 1)]  # ∇²L is symmetric: three entries decide it
    HL = [sp.diff(L, th[i], th[j]) for i, j in upper]
    assert same(HL, [formula[i, j] for i, j in upper])
    print(
        "   ✓ SymPy: the Hessian of L(θ) = c + ½bᵀK⁻¹b equals the G1 (interior maximiser) formula"
    )

    print("Step 6 (d). The correction is PSD: vᵀ(−H_θxH_xx⁻¹H_xθ)v = (H_xθv)ᵀK⁻¹(H_xθv).")
    v = sp.Matrix(sp.symbols("v1 v2", real=True))
    corr = (v.T * (Hxt.T * Kinv * Hxt) * v)[0]
    w = Hxt * v
    assert same([corr], [(w.T * Kinv * w)[0]])
    print("   ✓ SymPy: a quadratic form in K⁻¹ ≻ 0, hence ≥ 0")

    print("Numerical check (advlip.adversarial on a concrete member, lambdified from SymPy).")
    concrete = {
        b[0]: sp.sin(t1) + t2,
        b[1]: t1 * t2,
        c: t2**2 + sp.cos(t1),
        k11: 2 + t1**2,
        k12: t2 / 2,
        k22: 3 + sp.Rational(1, 2) * sp.sin(t2),
    }
    ell_c = ell.subs(concrete).doit()
    f = sp.lambdify((z1, z2, t1, t2), ell_c, "jax")

    def loss_fn(params, x, y):  # one example; y unused (a regression-style loss)
        return f(x[0], x[1], params[0], params[1]) + 0.0 * y

    HL_c = sp.hessian(L.subs(concrete).doit(), th)  # the Hessian of the concrete L(θ)
    theta0 = np.array([0.4, -0.7])
    H_exact = np.array(sp.lambdify((t1, t2), HL_c, "numpy")(*theta0), dtype=float)
    Htt_c = np.array(
        sp.lambdify((t1, t2), Htt.subs(concrete).doit(), "numpy")(*theta0), dtype=float
    )
    rng = np.random.default_rng(1)
    X = 0.05 * rng.standard_normal((4, 2))
    y = np.zeros(4)
    pt = adversarial.linearize(
        loss_fn, jnp.asarray(theta0), jnp.asarray(X), jnp.asarray(y), eps=3.0, p=2.0
    )
    assert pt.all_determined and set(pt.cases) == {"interior"}, pt.reasons
    B = pt.blocks()
    # dense route's float64 error, plus the exact value's evaluation (γ_64 |H|)
    tol = np.asarray(B.error) + tolerance.gamma(64) * np.abs(H_exact)
    err = np.abs(np.asarray(B.total) - H_exact)
    assert np.all(err <= tol), (err, tol)
    print(f"   ✓ total_hessian = SymPy ∇²L to {err.max():.1e} (bound {tol.max():.1e}); H_θθ alone")
    print(f"     is off by {np.abs(Htt_c - H_exact).max():.3f}, and ∇²L − H_θθ has eigenvalues")
    gap = np.linalg.eigvalsh(H_exact - Htt_c)
    assert gap.min() >= -tolerance.gamma(64) * np.abs(H_exact).max()
    print(f"     {np.round(gap, 4)} ≥ 0 (d)")
    fd = adversarial.fd_hessian(pt)
    cmp = fd.compare(B.total, B.error)
    assert cmp["excess"] <= 0, cmp
    print(
        "   ✓ and central differences with re-solved attacks agree: "
        f"max ratio {cmp['max_ratio']:.2g}"
    )
    # (e) per example, then averaged
    Hxx_n, Hxt_n, Htt_n = (np.asarray(a) for a in (B.Hxx, B.Hxt, B.Htt))
    bound = np.mean(
        [
            np.linalg.norm(a, 2) + np.linalg.norm(bb, 2) ** 2 / np.linalg.eigvalsh(-h)[0]
            for a, bb, h in zip(Htt_n, Hxt_n, Hxx_n, strict=True)
        ]
    )
    assert np.linalg.norm(H_exact, 2) <= bound
    print(f"   ✓ (e): ‖∇²L‖ = {np.linalg.norm(H_exact, 2):.3f} ≤ {bound:.3f}")
    jax.block_until_ready(B.total)
    print("PROOF OK: GEN-INTERIOR")


if __name__ == "__main__":
    if not __debug__:
        raise SystemExit(f"{__file__}: every check here is an assert; run without python -O")
    main()
