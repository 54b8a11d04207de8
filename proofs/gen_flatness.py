"""GEN-FLATNESS (case G4, docs/theory/gen-flatness.md): flatness in x is not smoothness in θ —
on the family ℓ_κ the adversarial loss gets smoother in θ as the loss gets sharper in x.

Statement. Let ℓ_κ(x, y; w, c) = y w·x − (κ/2)‖x‖² + softplus(−yc), κ > 0, y ∈ {−1, +1},
θ = (c, w) (c first: the ravel order of advlip), and let every example satisfy
‖y_i w/κ − x_i‖₂ < ε. Then, with σ the logistic function and s(c) = σ(c)σ(−c):
  (a) H_xx = −κI: the maximiser of x ↦ ℓ_κ is unique, z* = x + δ* = y w/κ, interior;
  (b) L(θ) = ‖w‖²/(2κ) + mean_i softplus(−y_i c);
  (c) ∇²L = diag(s(c), I/κ), which is the G1 formula H_θθ − H_θx H_xx⁻¹ H_xθ
      (docs/theory/gen-interior.md) with H_θθ = diag(s(c), 0), H_xθ = [0 | yI];
  (d) λ_max(∇²L) = max(1/κ, s(c)), non-increasing in κ, and strictly decreasing while
      κ < 1/s(c) = 2 + e^c + e^(−c); the naive Hessian H_θθ has λ_max = s(c) for every κ;
  (e) the G1 bound ‖H_θθ‖ + ‖H_xθ‖²/λ_min(−H_xx) = s(c) + 1/κ holds; Liu et al.'s constants
      are L_θθ = sup s = 1/4 and L_θx = ‖∂_x∇_θℓ‖ = 1, neither depends on κ.
So the sharper the loss in x (‖H_xx‖ = κ), the smoother L in θ, and a Hessian tool that holds
δ fixed reports s(c), missing the w-block entirely.

Assumptions. The interior condition (so no constraint is active); y² = 1 throughout.

Proof. SymPy derives (a)–(e) for d = 3 and y = ±1; the numerical check compares the derived
Hessian and λ_max with advlip's dense G1 Hessian, its Lanczos top eigenvalue on implicit
Hessian-vector products, and the closed forms in advlip.models.FlatnessLoss, in float64, on
the settings of advlip verify's GEN-FLATNESS check.
"""

import sys

import jax
import numpy as np
import sympy as sp

from advlip import adversarial, data, models, symbolic, tolerance
from advlip.theorems import general

jax.config.update("jax_enable_x64", True)  # the numerical check is in float64

#: ``--plant naive``: claim ∇²L is the naive H_θθ (the G1 correction dropped);
#: tests/test_proofs.py asserts that the script then fails.
PLANTS = ("naive",)


def main(planted: str | None = None) -> None:
    d = 3
    kappa = sp.Symbol("kappa", positive=True)
    c, y = sp.symbols("c y", real=True)
    w = sp.Matrix(sp.symbols(f"w1:{d + 1}", real=True))
    z = sp.Matrix(sp.symbols(f"z1:{d + 1}", real=True))
    theta = sp.Matrix([c, *w])
    softplus = lambda u: sp.log(1 + sp.exp(u))  # noqa: E731
    sig = lambda u: 1 / (1 + sp.exp(-u))  # noqa: E731
    ell = y * (w.T * z)[0] - kappa / 2 * (z.T * z)[0] + softplus(-y * c)
    s_c = sig(c) * sig(-c)

    print("Step 1 (a). H_xx = −κI ≺ 0: x ↦ ℓ_κ is strictly concave, its maximiser unique.")
    Hxx = sp.hessian(ell, z)
    assert Hxx == -kappa * sp.eye(d)
    zstar = sp.Matrix([sp.solve(ell.diff(v), v)[0] for v in z])
    assert symbolic.is_identity(zstar, y * w / kappa)
    print("   ✓ SymPy: ∇_xℓ = yw − κz = 0 at z* = yw/κ (interior when ‖yw/κ − x‖ < ε)")

    at = dict(zip(z, zstar, strict=True))
    Htt = sp.hessian(ell, theta).subs(at)
    Hxt = sp.Matrix([[ell.diff(zi, t) for t in theta] for zi in z]).subs(at)
    for yv in (1, -1):
        print(f"Step 2 (b), y = {yv:+d}. L(θ) = ℓ_κ(z*) = ‖w‖²/(2κ) + softplus(−yc).")
        L = ell.subs(at).subs(y, yv)
        assert symbolic.is_identity(L, (w.T * w)[0] / (2 * kappa) + softplus(-yv * c))
        print("   ✓ SymPy")

        print(f"Step 3 (c), y = {yv:+d}. ∇²L = diag(s(c), I/κ) = H_θθ − H_θx H_xx⁻¹ H_xθ.")
        HL = sp.hessian(L, theta)
        derived = sp.diag(s_c, *([1 / kappa] * d))
        assert symbolic.is_identity(HL, derived)
        assert symbolic.is_identity(Htt.subs(y, yv), sp.diag(s_c, *([0] * d)))
        assert Hxt.subs(y, yv) == sp.Matrix.hstack(sp.zeros(d, 1), yv * sp.eye(d))
        g1 = (Htt - Hxt.T * Hxx.inv() * Hxt).subs(y, yv)
        assert symbolic.is_identity(g1, derived)
        print(
            "   ✓ SymPy: the Hessian of L, and the G1 (interior maximiser) formula from the blocks"
        )
        print(
            "     at z*, are both diag(σ(c)σ(−c), I/κ) (y² = 1 removes y); "
            "naive H_θθ = diag(s(c), 0)"
        )

    print("Step 4 (d). λ_max = max(1/κ, s(c)) (a diagonal matrix); 1/κ falls, s(c) is κ-free.")
    assert sp.diff(1 / kappa, kappa).is_negative
    assert symbolic.is_identity(1 / s_c, 2 + sp.exp(c) + sp.exp(-c))
    assert symbolic.is_identity(s_c, ((1 - sp.tanh(c / 2) ** 2) / 4).rewrite(sp.exp))
    print("   ✓ SymPy: d(1/κ)/dκ = −1/κ² < 0; 1/s(c) = 2 + e^c + e^(−c), so 1/κ > s(c) exactly for")
    print("     κ < 2 + 2cosh c; s(c) = (1 − tanh²(c/2))/4 ≤ 1/4, with equality at c = 0")

    print(
        "Step 5 (e). Bounds: G1 (interior)'s ‖H_θθ‖ + ‖H_xθ‖²/λ_min(−H_xx) = s + 1/κ, which exceeds"
    )
    print("        λ_max by min(s, 1/κ) > 0; Liu's L_θθ = sup_c s(c) = 1/4 and L_θx = 1, κ-free.")
    for yv in (1, -1):
        Hxt_y = Hxt.subs(y, yv)
        assert (Hxt_y.T * Hxt_y).eigenvals() == {0: 1, 1: d}  # ‖H_xθ‖₂ = 1
        # H_θθ = diag(s(c), 0) (step 3): ‖H_θθ‖₂ = s(c)
        assert (-Hxx).eigenvals() == {kappa: d}  # λ_min(−H_xx) = κ
        grad_t = sp.Matrix([ell.diff(t) for t in theta]).subs(y, yv)
        mixed = sp.Matrix([[gi.diff(zi) for zi in z] for gi in grad_t])
        assert mixed == sp.Matrix.vstack(sp.zeros(1, d), yv * sp.eye(d))  # L_θx = 1 everywhere
    print(
        "   ✓ SymPy: ‖H_xθ‖ = 1, ‖H_θθ‖ = s(c) ≤ 1/4, λ_min(−H_xx) = κ; ∂_x∇_θℓ = [0; yI] for all x"
    )

    print("Numerical check: advlip on GEN-FLATNESS's settings (d = 4, n = 8, ‖w‖ = 1/4, c = 2).")
    n, dn = 8, general.D
    key = jax.random.PRNGKey(0)
    X, Y = data.synthetic(key, n=n, d=dn)
    X = general.FLAT_X * X
    params = models.init_flatness(key, dn, w_norm=general.FLAT_W, c=general.FLAT_C)
    kap, cc = sp.Symbol("kappa"), sp.Symbol("c")
    derived_fn = sp.lambdify((kap, cc), sp.diag(s_c, *([1 / kappa] * dn)).subs({kappa: kap}))
    lam_fn = sp.lambdify((kap, cc), sp.Max(1 / kap, s_c))
    crossing = float(2 + 2 * sp.cosh(general.FLAT_C))
    rows = []
    for k in (0.5, 2.0, 8.0, 16.0, 32.0):
        loss = models.FlatnessLoss(k)
        pt = adversarial.linearize(loss, params, X, Y, eps=general.FLAT_EPS, p=2.0)
        assert pt.all_determined and set(pt.cases) == {"interior"}, pt.summary()
        # the interior hypothesis, and the attack found z* = yw/κ to its own error bound
        wv = np.asarray(params["w"])
        z_exact = np.asarray(Y)[:, None] * wv[None, :] / k
        assert np.all(np.linalg.norm(z_exact - np.asarray(X), axis=1) < general.FLAT_EPS)
        z_found = np.asarray(pt.attack.delta) + np.asarray(X)
        z_err = np.linalg.norm(z_found - z_exact, axis=1)
        assert np.all(z_err <= pt.delta_errors() + tolerance.gamma(4) * np.abs(z_exact).sum(1))
        H = np.asarray(derived_fn(k, general.FLAT_C), dtype=float)
        B = pt.blocks()
        Htt_n, Hxt_n, Hxx_n = (np.asarray(a) for a in (B.Htt, B.Hxt, B.Hxx))
        g1 = np.mean(
            [a - b.T @ np.linalg.solve(h, b) for a, b, h in zip(Htt_n, Hxt_n, Hxx_n, strict=True)],
            axis=0,
        )
        claimed = np.mean(Htt_n, axis=0) if planted == "naive" else H
        # advlip's blocks carry the error bound B.error of its dense total; the numpy G1 from
        # them adds the rounding of a d×d solve and a product per entry (γ_4d of the terms'
        # size, |H_θθ| + |H_θx||H_xx⁻¹||H_xθ| ≤ |H| + |g1|), the exact value's evaluation γ_8|H|.
        tol = np.asarray(B.error) + tolerance.gamma(4 * dn + 8) * (np.abs(H) + np.abs(g1))
        assert np.all(np.abs(g1 - claimed) <= tol), (k, np.abs(g1 - claimed).max())
        assert np.all(np.abs(np.asarray(B.total) - claimed) <= tol), k
        lam = float(lam_fn(k, general.FLAT_C))
        s_val = float(s_c.subs(c, general.FLAT_C))
        assert lam <= s_val + 1.0 / k  # G1's bound (step 5)
        top = pt.top_eigenvalue(hessian="total")
        naive = pt.top_eigenvalue(hessian="naive")
        # Lanczos: the a-posteriori bound it reports, plus the exact value's rounding γ_16
        lam_claimed = float(np.linalg.eigvalsh(claimed)[-1])
        err_top = float(top.bound) + tolerance.gamma(16) * lam
        assert abs(float(top.value) - lam_claimed) <= err_top, (k, float(top.value), lam_claimed)
        assert abs(float(naive.value) - s_val) <= float(naive.bound) + tolerance.gamma(16) * s_val
        # the code's closed forms (advlip.models.FlatnessLoss), against this derivation
        code_lam = float(loss.lambda_max(params, Y))
        code_H = np.asarray(loss.total_hessian(params, Y))
        assert abs(code_lam - lam) <= tolerance.gamma(16) * lam, (k, code_lam, lam)
        assert np.all(np.abs(code_H - H) <= tolerance.gamma(16) * np.abs(H)), k
        rows.append((k, float(top.value), err_top, lam))
        print(
            f"   ✓ κ = {k:>4g}: G1 (interior) from advlip's blocks = diag(s, I/κ) to "
            f"{np.abs(g1 - H).max():.1e}; Lanczos λ_max = {float(top.value):.6f} = "
            f"max(1/κ, s) = {lam:.6f}; naive {float(naive.value):.6f} = s"
        )
    # where max(1/κ, s) falls the measured values fall by more than both error bounds;
    # where it is flat (κ ≥ 2 + 2cosh c) they agree within them
    for (k1, v1, e1, l1), (_, v2, e2, l2) in zip(rows, rows[1:], strict=False):
        if l2 < l1:
            assert v1 - v2 > e1 + e2, (k1, v1, v2)
        else:
            assert k1 >= crossing and abs(v1 - v2) <= e1 + e2, (k1, v1, v2)
    assert rows[-2][0] > crossing > rows[-3][0]  # both regimes are visited
    print(
        f"   ✓ λ_max falls with κ until 1/κ = s at κ = 2 + 2cosh 2 = {crossing:.3f}, "
        "then stays at s;"
    )
    print("     advlip.models.FlatnessLoss.lambda_max and total_hessian agree with the derivation")
    print("PROOF OK: GEN-FLATNESS")


if __name__ == "__main__":
    if not __debug__:
        raise SystemExit(f"{__file__}: every check here is an assert; run without python -O")
    args = sys.argv[1:]
    plant = None
    if args:
        if len(args) != 2 or args[0] != "--plant" or args[1] not in PLANTS:
            raise SystemExit(f"usage: {sys.argv[0]} [--plant {{{','.join(PLANTS)}}}]")
        plant = args[1]
    main(plant)
