"""ENTROPY-SMOOTH (docs/theory/entropy-smooth.md): EntropySGD's local entropy F_γ is γ-smooth,
even where the adversarial loss L has a kink.

Statement. For L bounded below and γ > 0 let

    F_γ(θ) = −log ∫ exp(−L(θ') − (γ/2)‖θ − θ'‖²) dθ'

and let E, Cov be taken under the Gibbs density p(θ' | θ) ∝ exp(−L(θ') − (γ/2)‖θ − θ'‖²).
Then F_γ is C^∞ and
  (a) ∇F_γ = γ(θ − E[θ']);
  (b) ∇²F_γ = γI − γ² Cov[θ'], hence ∇²F_γ ⪯ γI for every L;
  (c) if L is convex, Cov[θ'] ⪯ I/γ (Brascamp–Lieb: the Gibbs potential
      V = L + (γ/2)‖θ − ·‖² has ∇²V ⪰ γI), so 0 ⪯ ∇²F_γ ⪯ γI and R(F_γ)(θ1, θ2) ≤ γ for all
      pairs;
  (d) both ends are sharp: for L(t) = a t²/2 + b t, ∇²F_γ = γa/(a + γ), which is 0 at a = 0
      and tends to γ as a → ∞.
The adversarial loss of a linear model under an L∞ (here 1-D) attack is convex with a kink at
w = 0 (LIN-LINF, docs/theory/lin-linf.md), where R(L) on ±t grows like 1/t; F_γ of the same L
keeps R ≤ γ.

Assumptions. L measurable and bounded below with ∫ e^(−L) Gaussian-integrable (so
differentiation under the integral is dominated convergence); for (c) L convex.

Proof. (a), (b): differentiate under the integral; SymPy confirms the pointwise identities of
the integrand and the chain rule for −log Z in d = 2, and the full closed form in the Gaussian
case (d). (c) is the Brascamp–Lieb inequality, cited; SymPy confirms ∇²V = ∇²L + γI and that
the Gaussian case attains it. The numerical check computes E and Var by quadrature
(composite Gauss–Legendre, independent of advlip) on the 1-D L∞ adversarial loss, checks
(a)–(c) there, and that advlip.entropy's grid quadrature agrees.
"""

import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from advlip import entropy, losses, smoothness, symbolic, tolerance
from advlip.linear import LinearProblem

jax.config.update("jax_enable_x64", True)  # the numerical check is in float64

#: ``--plant sign``: claim ∇²F_γ = γI + γ²Cov (a sign error); tests/test_proofs.py asserts
#: that the script then fails.
PLANTS = ("sign",)

GAMMAS = (0.5, 1.0, 4.0)
EPS = 0.5
#: Composite Gauss–Legendre: nodes per panel, panels on each side of the kink.
GL_NODES, PANELS = 20, 32


def main(planted: str | None = None) -> None:
    gam = sp.Symbol("gamma", positive=True)
    th = sp.Matrix(sp.symbols("theta1 theta2", real=True))
    tp = sp.Matrix(sp.symbols("t1 t2", real=True))  # θ'

    print("Step 1. The integrand g = exp(−L(θ') − (γ/2)‖θ − θ'‖²), any L: ∂_i g = −γ(θ − θ')_i g,")
    print("        ∂_i∂_j g = (γ²(θ − θ')_i(θ − θ')_j − γδ_ij) g.")
    Lf = sp.Function("L")(*tp)
    g = sp.exp(-Lf - gam / 2 * ((th - tp).T * (th - tp))[0])
    u = th - tp
    for i in range(2):
        assert symbolic.is_identity(g.diff(th[i]), -gam * u[i] * g)
        for j in range(2):
            rhs = (gam**2 * u[i] * u[j] - gam * (1 if i == j else 0)) * g
            assert symbolic.is_identity(g.diff(th[i], th[j]), rhs)
    print("   ✓ SymPy (d = 2)")

    print(
        "Step 2 (a), (b). Under the integral, with Z = ∫g, A = ∫(θ − θ')g, B = ∫(θ − θ')(θ − θ')ᵀg:"
    )
    print("        ∂_iZ = −γA_i, ∂_i∂_jZ = γ²B_ij − γδ_ijZ. Then F = −log Z has")
    print("        ∇F = γA/Z = γ(θ − E[θ']) and ∇²F = γI − γ²(B/Z − AAᵀ/Z²) = γI − γ²Cov[θ'].")
    Z = sp.Function("Z")(*th)
    A = sp.Matrix([sp.Symbol(f"A{i}") for i in range(2)])
    Bm = sp.Matrix(2, 2, lambda i, j: sp.Symbol(f"B{min(i, j)}{max(i, j)}"))
    Zs = sp.Symbol("Zs", positive=True)
    rules = {}
    for i in range(2):
        for j in range(2):
            rules[Z.diff(th[i], th[j])] = gam**2 * Bm[i, j] - gam * (1 if i == j else 0) * Zs
    for i in range(2):
        rules[Z.diff(th[i])] = -gam * A[i]
    F = -sp.log(Z)
    gradF = sp.Matrix([F.diff(v) for v in th]).subs(rules).subs(Z, Zs)
    hessF = sp.hessian(F, th).subs(rules).subs(Z, Zs)
    assert symbolic.is_identity(gradF, gam * A / Zs)
    cov = Bm / Zs - A * A.T / Zs**2  # Cov of θ − θ' = Cov of θ'
    assert symbolic.is_identity(hessF, gam * sp.eye(2) - gam**2 * cov)
    print("   ✓ SymPy: the chain rule for −log Z with those derivatives gives (a) and (b)")
    print("        vᵀCov v = E[(v·(θ' − E θ'))²] ≥ 0, so ∇²F ⪯ γI for every L.")

    print("Step 3 (c). Brascamp–Lieb: for a density ∝ e^(−V) with ∇²V ⪰ γI, Cov ⪯ I/γ. Here")
    print("        V(θ') = L(θ') + (γ/2)‖θ − θ'‖²:")
    Vq = gam / 2 * ((th - tp).T * (th - tp))[0]
    assert sp.hessian(Vq, tp) == gam * sp.eye(2)
    print("   ✓ SymPy: ∇²V = ∇²L + γI ⪰ γI for convex L; then γ²Cov ⪯ γI, i.e. ∇²F ⪰ 0")

    print("Step 4 (d). The Gaussian case L(t) = at²/2 + bt in 1-D, integrated in closed form")
    print("        after completing the square in t.")
    a = sp.Symbol("a", positive=True)
    theta, b, t, sv = sp.symbols("theta b t s", real=True)
    expo = -a * t**2 / 2 - b * t - gam * (theta - t) ** 2 / 2
    mu = (gam * theta - b) / (a + gam)
    C = sp.expand(expo.subs(t, mu))  # completing the square: expo = C − (a + γ)(t − μ)²/2
    assert sp.cancel(sp.together(expo - (C - (a + gam) * (t - mu) ** 2 / 2))) == 0
    kern = sp.exp(-(a + gam) * sv**2 / 2)  # t = μ + s
    I0, I1, I2 = (sp.integrate(sv**k * kern, (sv, -sp.oo, sp.oo)) for k in range(3))
    assert sp.simplify(I0 - sp.sqrt(2 * sp.pi / (a + gam))) == 0 and I1 == 0
    E1, var = mu + I1 / I0, sp.simplify(I2 / I0 - (I1 / I0) ** 2)  # E[t], Var[t]
    F1 = -(C + sp.log(I0))  # −log ∫ e^expo dt = −log(e^C · I0)
    assert symbolic.is_identity(sp.diff(F1, theta), gam * (theta - E1))
    assert symbolic.is_identity(sp.diff(F1, theta, 2), gam - gam**2 * var)
    assert symbolic.is_identity(var, 1 / (a + gam))  # Brascamp–Lieb with equality: 1/V''
    hess = sp.factor(sp.diff(F1, theta, 2))
    assert symbolic.is_identity(hess, gam * a / (a + gam))
    assert sp.limit(hess, a, sp.oo) == gam and hess.subs(a, 0) == 0
    print("   ✓ SymPy: F'' = γa/(a + γ) = γ − γ²Var, Var = 1/(a + γ) = 1/V'' (equality in")
    print("     Brascamp–Lieb); F'' = 0 at a = 0 and → γ as a → ∞: both bounds are sharp")

    print("Step 5. The 1-D L∞ adversarial loss L(w) = mean ψ(y x w − ε|w|) (ψ = softplus margin")
    print("        loss) is convex: on each side L'' = mean ψ''(m̃)(yx ∓ ε)² ≥ 0, and the slope")
    print("        jumps up at w = 0 by L'(0⁺) − L'(0⁻) = −2ε mean ψ'(y x·0) = −2εψ'(0) > 0.")
    m = sp.Symbol("m", real=True)
    psi = losses.get_loss("softplus").sympy(m)
    psi1_0 = sp.diff(psi, m).subs(m, 0)
    assert psi1_0 == sp.Rational(-1, 2)
    print(f"   ✓ SymPy: ψ'(0) = {psi1_0}, so the jump is ε > 0; ψ'' ≥ 0 (proofs/gen_danskin.py)")

    _numerical(planted)
    print("PROOF OK: ENTROPY-SMOOTH")


def _numerical(planted: str | None) -> None:
    print("Numerical check (float64): 1-D, n = 16, ε = 1/2; E and Var by composite Gauss–Legendre")
    print(
        "        quadrature with a panel edge at the kink (numpy, independent of advlip.entropy)."
    )
    rng = np.random.default_rng(2103)
    n = 16
    x = rng.standard_normal(n)
    y = rng.choice([-1.0, 1.0], n)
    gl_t, gl_w = np.polynomial.legendre.leggauss(GL_NODES)

    def L_np(w):  # mean softplus margin loss at the worst-case margin m̃ = y x w − ε|w|
        mt = y[:, None, None] * x[:, None, None] * w[None] - EPS * np.abs(w)[None]
        return np.mean(np.logaddexp(0.0, -mt), axis=0)

    def raw(thetas, gamma, panels):
        """∫ g·(1, u, u²) dθ', u = θ' − θ, on [θ − H, 0] ∪ [0, θ + H] (each `panels` panels)."""
        half = 12.0 / math.sqrt(gamma) + 1.0  # the Gaussian factor is < e^(−72) beyond
        th = thetas[:, None]
        edges = np.concatenate(
            [
                np.linspace(th - half, 0.0 * th, panels + 1),
                np.linspace(0.0 * th, th + half, panels + 1)[1:],
            ]
        )[..., 0].T  # (k, 2 panels + 1): 0 is an edge, the integrand is smooth on each panel
        lo, hi = edges[:, :-1, None], edges[:, 1:, None]
        tt = (0.5 * (hi - lo) * gl_t + 0.5 * (hi + lo)).reshape(len(thetas), -1)
        ww = (0.5 * (hi - lo) * gl_w).reshape(len(thetas), -1)
        uu = tt - th
        f = ww * np.exp(-L_np(tt) - 0.5 * gamma * uu * uu)
        terms = np.stack([f, f * uu, f * uu * uu])
        # summing N = 2·panels·GL_NODES terms: rounding ≤ γ_(N+8) Σ|term| (nodes, weights,
        # exp, L: a few operations each)
        return terms.sum(-1), tolerance.gamma(terms.shape[-1] + 8) * np.abs(terms).sum(-1)

    def moments(thetas, gamma):
        """F'(θ), F''(θ) (as claimed) and their error bounds, for every θ in ``thetas``."""
        thetas = np.atleast_1d(np.asarray(thetas, dtype=float))
        fine, rnd = raw(thetas, gamma, PANELS)
        coarse, _ = raw(thetas, gamma, PANELS // 2)
        err = np.abs(fine - coarse) + rnd  # halving the panels: the estimate of the rule's error
        Zq, M1, M2 = fine
        e1, e2 = M1 / Zq, M2 / Zq  # E[θ' − θ], E[(θ' − θ)²]
        # the quotients inherit the moments' errors relative to Z; the variance's subtraction
        # adds 2|e1| err(e1); divisions and products γ_4
        err_e1 = (err[1] + np.abs(e1) * err[0]) / Zq + tolerance.gamma(4) * np.abs(e1)
        err_e2 = (err[2] + np.abs(e2) * err[0]) / Zq + tolerance.gamma(4) * np.abs(e2)
        var = e2 - e1 * e1
        err_var = err_e2 + 2 * np.abs(e1) * err_e1 + tolerance.gamma(4) * (e2 + e1 * e1)
        grad = -gamma * e1  # γ(θ − E[θ'])
        hess = gamma + gamma**2 * var if planted == "sign" else gamma - gamma**2 * var
        return grad, hess, gamma * err_e1, gamma**2 * err_var

    prob = LinearProblem(X=x[:, None], y=y, eps=EPS, p=math.inf)
    ts = smoothness.witness_ts(1e-4, 1e-1)
    for gamma in GAMMAS:
        _, H, _, eH = moments(np.linspace(-1.0, 1.0, 201), gamma)
        assert np.all(H + eH >= 0.0) and np.all(H - eH <= gamma), (gamma, H.min(), H.max())
        # (b) against Richardson differences of (a) at step h
        h = 1e-2
        th = np.array([-0.6, 0.0, 0.35])
        g, ge = {}, {}
        for k in (-2, -1, 1, 2):
            g[k], _, ge[k], _ = moments(th + k * h, gamma)
        D1, D2 = (g[1] - g[-1]) / (2 * h), (g[2] - g[-2]) / (4 * h)
        DR = (4 * D1 - D2) / 3
        eg = np.max([ge[k] for k in ge], axis=0)
        # D1 = F'' + ch² + O(h⁴), D2 = F'' + 4ch² + O(h⁴): DR = F'' + O(h⁴), and |D1 − D2|/3
        # = |c|h² (D1's own error) bounds that for h this small; plus the quadrature error
        # of the four gradients, weighted 4/3 and 1/3
        tol = np.abs(D1 - D2) / 3 + 4 / 3 * eg / h + 1 / 3 * eg / (2 * h)
        _, Hth, _, eHth = moments(th, gamma)
        assert np.all(np.abs(DR - Hth) <= tol + eHth), (gamma, DR, Hth, tol)
        # witness pairs across the kink, and random pairs in [−1, 1]
        gp, _, egp, _ = moments(ts, gamma)
        gm, _, egm, _ = moments(-ts, gamma)
        pairs = rng.uniform(-1.0, 1.0, (64, 2))
        g1, _, e1_, _ = moments(pairs[:, 0], gamma)
        g2, _, e2_, _ = moments(pairs[:, 1], gamma)
        RF = np.concatenate(
            [
                (np.abs(gp - gm) - egp - egm) / (2 * ts),
                (np.abs(g1 - g2) - e1_ - e2_) / np.abs(pairs[:, 0] - pairs[:, 1]),
            ]
        )
        assert RF.max() <= gamma * (1 + tolerance.gamma(8)), (gamma, RF.max())
        print(
            f"   ✓ γ = {gamma:g}: 0 ≤ F'' ≤ γ on 201 points "
            f"(F'' in [{H.min():.3f}, {H.max():.3f}]),"
        )
        print(
            f"     F'' = Richardson differences of F' at 3 points, max R(F_γ) = {RF.max():.3f} ≤ γ"
        )

    # R(L) across the same kink: the raw loss, advlip's closed-form gradient
    wts = smoothness.witness_ts()
    dg, dt = smoothness.witness_differences(
        jax.jit(prob.grad), jnp.zeros(1), jnp.ones(1), -jnp.ones(1), wts
    )
    e_g = float(prob.grad_error_bound(jnp.zeros(1)))
    fit = smoothness.fit_growth_exponent(wts, dg, dt, grad_abs_error=e_g)
    assert fit.resolved and fit.agrees_with(-1.0), fit.to_dict()
    R_L = np.linalg.norm(dg, axis=1) / dt
    print(
        f"   ✓ R(L) on ±t: {R_L[0]:.3g} at t = 1e-6, growth exponent {fit.exponent:+.4f} ± "
        f"{fit.tolerance:.1e} (expected −1), while R(F_γ) ≤ γ"
    )

    # advlip.entropy (the grid quadrature ENTROPY-SMOOTH uses) against this one
    gamma = 1.0
    q = entropy.Quadrature.build(
        prob.loss_value,
        center=jnp.zeros(1),
        gamma=gamma,
        half_width=1.5 + entropy.gibbs_width(gamma),
        n=2001,
    )
    pts = jnp.array([[-0.7], [-1e-3], [0.0], [0.4]])
    gq, Hq = np.asarray(q.grad(pts))[:, 0], np.asarray(q.hessian(pts))[:, 0, 0]
    egq, eHq = np.asarray(q.grad_error(pts)), np.asarray(q.hessian_error(pts))
    gr, He, eg, eH = moments(np.asarray(pts)[:, 0], gamma)
    assert np.all(np.abs(gq - gr) <= egq + eg + tolerance.gamma(16) * np.abs(gr)), (gq, gr)
    assert np.all(np.abs(Hq - He) <= eHq + eH + tolerance.gamma(16) * np.abs(He)), (Hq, He)
    print(
        "   ✓ advlip.entropy.Quadrature (trapezoid, 2001 nodes) = this quadrature within "
        f"their error estimates (max |ΔF''| = {np.abs(Hq - He).max():.1e})"
    )


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
