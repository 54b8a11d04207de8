"""LIN-LP: the phase diagram in p of the smoothness of the linear adversarial loss.

Statement. Witness pairs w ± t e_i at a point with w_i = 0 (for p = 1: the tie pairs of
proofs/lin_l1.py). As t → 0, R(t) ~ t^s with

    s = 0       for 1 < p ≤ 2  (q ≥ 2): ∇L is Lipschitz there,
                R ≤ β_q = ℓ''_max K² + ε|ℓ'|_max (q−1)/N;
    s = q − 2   for 2 < p < ∞  (1 < q < 2): ∇L is only (q−1)-Hölder across w_i = 0;
    s = −1      for p = ∞ (jump across w_i = 0) and p = 1 (jump at ties),

where N = ‖w‖_q and K = X + ε d^{max(0, 1/2 − 1/p)}.

Assumptions. As LIN-L2 (proofs/lin_l2.py); ε > 0; softplus in the numerical check.

Proof. Splitting as in LIN-L2, R = J + O(1) with |O(1)| ≤ ℓ''_max K² and J the turning part
ε|mean ℓ'| ‖u(w + t e_i) − u(w − t e_i)‖ / (2t). For 1 < q < ∞ the local expansion of u at
w_i = 0 gives J = ε|mean ℓ'| t^{q−2} / N(t)^{q−1}: unbounded iff q < 2.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from advlip import linear, losses, norms, smoothness, symbolic, tolerance

jax.config.update("jax_enable_x64", True)  # the numerical check is in float64

P_HOLDER = [3.0, 4.0, 6.0]
P_SMOOTH = [1.5, 2.0]


def _name(p):
    return "∞" if math.isinf(p) else f"{p:g}"


def main() -> None:
    B = symbolic.bound_symbols()
    t = B.t
    a = sp.Symbol("a", positive=True)  # |w_2|, the coordinate that is not 0

    print("Step 1. Local expansion at w_1 = 0 (d = 2, w = (±t, a)): for 1 < q < ∞,")
    print(
        "        u_1(t) − u_1(−t) = 2 t^{q−1}/N(t)^{q−1}, u_2(t) = u_2(−t), N(t) = (a^q + "
        "t^q)^{1/q}."
    )
    for p in P_SMOOTH + P_HOLDER:
        q = symbolic.exact_dual_exponent(p)
        up = symbolic.dual_direction_expr([t, a], p=p)
        um = symbolic.dual_direction_expr([-t, a], p=p)
        Nt = symbolic.dual_norm_expr([t, a], p=p)
        assert symbolic.is_identity(Nt, (a**q + t**q) ** (1 / q)), p
        assert symbolic.is_identity(symbolic.dual_norm_expr([-t, a], p=p), Nt), p
        assert symbolic.is_identity(up[0] - um[0], 2 * t ** (q - 1) / Nt ** (q - 1)), p
        assert symbolic.is_identity(up[1], um[1]), p
        print(f"   ✓ SymPy: p = {_name(p)}, q = {q}")

    print(
        "Step 2. So J = ε|c| · 2t^{q−1}/N^{q−1} / (2t) = witness_ratio_lp(), whose log-slope → q − "
        "2;"
    )
    print("        for q ≥ 2 J stays bounded (exponent 0), for q < 2 it grows like t^{q−2}.")
    J = B.eps * sp.Abs(B.mean_l1) * (2 * t ** (B.q - 1) / B.N ** (B.q - 1)) / (2 * t)
    assert symbolic.is_identity(J, symbolic.witness_ratio_lp())
    for p in P_SMOOTH + P_HOLDER:
        q = symbolic.exact_dual_exponent(p)
        Jp = J.subs(B.q, q).subs(B.N, (a**q + t**q) ** (1 / q))
        slope = sp.limit(t * sp.diff(sp.log(Jp), t), t, 0)
        assert slope == q - 2, (p, slope)
        bounded = sp.limit(Jp, t, 0, "+").is_finite
        expected = symbolic.expected_exponent(p)
        assert (expected == 0) == bool(bounded), (p, bounded)
        assert expected == (0 if bounded else q - 2), (p, expected)
        print(
            f"   ✓ SymPy: p = {_name(p)}: lim t·(log J)' = {slope}; J bounded: {bool(bounded)};"
            f" expected_exponent = {expected}"
        )
    assert symbolic.is_identity(
        symbolic.witness_ratio_lp().subs(B.q, 1), symbolic.witness_ratio_linf()
    )
    assert symbolic.expected_exponent(math.inf) == -1 and symbolic.expected_exponent(1) == -1
    print(
        "   ✓ SymPy: at q = 1 J is the LIN-LINF jump (exponent −1); p = 1 is LIN-L1 (exponent −1)"
    )

    print("Step 3. The O(1) part: m̃ is K-Lipschitz with K = X + ε sup_{‖u‖_p ≤ 1} ‖u‖_2, and")
    print(
        "        sup ‖u‖_2 = d^{max(0, 1/2 − 1/p)}: for p ≥ 2 at u = d^{−1/p}(1, …, 1), for p ≤ 2 "
        "at e_1."
    )
    dd, pp = B.d, sp.Symbol("p", positive=True)
    vertex = sp.sqrt(dd * (dd ** (-1 / pp)) ** 2)
    assert symbolic.is_identity(vertex, dd ** (sp.Rational(1, 2) - 1 / pp))
    for p in [1.0, 1.5, 2.0, 3.0, 6.0, math.inf]:
        pe = sp.oo if math.isinf(p) else sp.nsimplify(p)  # p exactly
        radius = (symbolic.witness_remainder_bound() / B.L2max).subs(B.p, pe)
        expected_radius = sp.sqrt(dd) if math.isinf(p) else dd ** max(0, sp.Rational(1, 2) - 1 / pe)
        assert symbolic.is_identity(radius, (B.X + B.eps * expected_radius) ** 2), p
    print(
        "   ✓ SymPy: ‖d^(−1/p)(1,…,1)‖_2 = d^(1/2 − 1/p); |R − J| ≤ "
        f"{symbolic.pretty(symbolic.witness_remainder_bound())}"
    )

    print(
        "Step 4. Smooth side (q ≥ 2): ∇²‖w‖_q = ((q−1)/N)[D − uuᵀ] with 0 ≤ D_ii = (|w_i|/N)^{q−2} "
        "≤ 1"
    )
    print(
        "        (since Σ_i (|w_i|/N)^q = 1) and ∇²‖w‖_q ⪰ 0 (a norm is convex), so ‖∇²‖w‖_q‖ ≤ "
        "(q−1)/N;"
    )
    print(
        "        on the segment w ± s e_1 (w_1 = 0) N ≥ N0, hence R ≤ β_q = ℓ''_max K² + ε|ℓ'|_max "
        "(q−1)/N0."
    )
    b1, b2 = sp.symbols("b1 b2", positive=True)
    for p in P_SMOOTH:
        q = symbolic.exact_dual_exponent(p)
        N = symbolic.dual_norm_expr([b1, b2], p=p)
        assert symbolic.is_identity((b1 / N) ** q + (b2 / N) ** q, 1), p
    print("   ✓ SymPy: Σ_i (|w_i|/N)^q = 1 for p = 1.5, 2")
    rng = np.random.default_rng(6)
    for p in P_SMOOTH:
        q = norms.dual_exponent(p)
        ws = rng.normal(size=(50, 3))
        ns = np.sum(np.abs(ws) ** q, axis=1) ** (1 / q)
        us = np.sign(ws) * (np.abs(ws) / ns[:, None]) ** (q - 1)
        # the theory's formula (docs/theory/closed-form.md), evaluated in numpy:
        # ((q−1)/N)[diag((|w_i|/N)^{q−2}) − u uᵀ]
        H = (
            (q - 1)
            / ns[:, None, None]
            * (
                np.eye(3) * ((np.abs(ws) / ns[:, None]) ** (q - 2))[:, None, :]
                - us[:, :, None] * us[:, None, :]
            )
        )
        ev = np.linalg.eigvalsh(H)
        # eigenvalues of a 3×3 symmetric matrix: backward error γ_(27) ‖H‖ (Higham), ‖H‖ ≤ (q−1)/N
        slack = tolerance.gamma(27) * 3 * (q - 1) / ns
        assert np.all(ev.min(axis=1) >= -slack), p
        assert np.all(ev.max(axis=1) <= (q - 1) / ns + slack), p
    print("   ✓ numerically: the eigenvalues of ∇²‖w‖_q lie in [0, (q−1)/N] (50 random w each)")

    print("Numerical check: the phase diagram on advlip.linear.LinearProblem (softplus, d = 3).")
    rng = np.random.default_rng(2020)
    d, n, eps, b = 3, 6, 1.0, 0.3
    X = 0.3 * rng.normal(size=(n, d))
    y = rng.choice([-1.0, 1.0], n)
    lo = losses.get_loss("softplus")
    ts = smoothness.witness_ts(1e-6, 1e-2)
    e = np.eye(d)
    print("     p    q      expected  fitted slope  tolerance")
    for p in P_SMOOTH + P_HOLDER + [math.inf, 1.0]:
        prob = linear.LinearProblem(X=X, y=y, eps=eps, p=p, b=b)
        q = prob.q
        if p == 1.0:  # the tie of LIN-L1
            w0 = np.array([0.8, -0.8, 0.3])
            d1, d2 = e[0] * np.sign(w0[0]), e[1] * np.sign(w0[1])
        else:  # w_1 = 0
            w0 = np.array([0.0, 0.7, -0.4])
            d1, d2 = e[0], -e[0]
        wa, wb = w0 + ts[:, None] * d1, w0 + ts[:, None] * d2

        @jax.jit
        def pieces(wa, wb, prob=prob, q=q, w0=w0):
            """Δg, c(t) = mean ℓ'(m̃(w_b)), c0 = mean ℓ'(m̃(w0)) and u(w_a) − u(w_b)."""
            dg = jax.vmap(prob.grad)(wa) - jax.vmap(prob.grad)(wb)
            c_t = jnp.mean(lo.d1(jax.vmap(prob.margins)(wb)), axis=1)
            c0 = jnp.mean(lo.d1(prob.margins(jnp.asarray(w0))))
            du = norms.dual_direction(wa, q=q) - norms.dual_direction(wb, q=q)
            return dg, c_t, c0, du

        dg, c_t, c0, du = (np.asarray(v) for v in pieces(wa, wb))
        c0 = float(c0)
        dw = np.linalg.norm(wa - wb, axis=1)
        R = np.linalg.norm(dg, axis=1) / dw
        xmax = prob.x_norm_max
        K = xmax + eps * norms.l2_radius(d, p)
        N0 = float(norms.lp_norm(jnp.asarray(w0), q))
        rem = symbolic.evaluate(
            symbolic.witness_remainder_bound(), L2max=lo.d2_max, X=xmax, eps=eps, d=d, p=p
        )
        # float64 error of one gradient (LIN-L2's count; γ_(8d+8) covers every q-norm)
        s_m = float(np.abs(w0).sum() + 1) * K + abs(b)
        grad_err = (
            np.sqrt(d)
            * (K + 1)
            * (lo.d2_max * tolerance.gamma(8 * d + 8) * s_m + tolerance.gamma(2 * d + n + 12))
        )
        f_err = np.array(
            [tolerance.ratio_error(grad_err, a_, r) for a_, r in zip(dw, R, strict=True)]
        )
        expected = float(symbolic.expected_exponent(p))
        slope = float(np.polyfit(np.log(ts), np.log(R), 1)[0])
        if p in P_SMOOTH:
            beta = lo.d2_max * K**2 + eps * lo.d1_abs_max * (q - 1) / N0
            assert np.all(R <= beta + f_err), (p, R.max(), beta)
            # R is bounded, so the exponent is 0; the least-squares slope is biased by the
            # bounded part (it is not a power law), so the exponent comes from the package's
            # Richardson fit, whose tolerance advlip.smoothness documents.
            fit = smoothness.fit_growth_exponent(ts, dg, dw, grad_abs_error=grad_err)
            assert fit.bounded and fit.agrees_with(expected), (p, fit.exponent, fit.tolerance)
            print(
                f"     {_name(p):<4} {q:<6.3g} {expected:>8g}  {slope:>12.4f}  R ≤ β_q = {beta:.3f}"
                f" at every t; Richardson exponent {fit.exponent:g} ± {fit.tolerance:.3f}"
            )
            continue
        # The singular side: log R = s log t + log A + δ_k, A = ε|c0|/N0^{q−1}, with
        #   |log R − log J| ≤ −log(1 − (rem + f_err)/J)                      (R = J ± rem)
        #   |log|c(t)| − log|c0|| ≤ −log(1 − ℓ''_max K t ‖d2‖/|c0|)            (m̃ moves ≤ K t)
        #   |log N(t)^{q−1} − log N0^{q−1}| ≤ ((q−1)/q) log(1 + (t/N0)^q)     (N(t)^q = N0^q + t^q)
        J = eps * np.abs(c_t) * np.linalg.norm(du, axis=1) / dw
        assert np.all(np.abs(R - J) <= rem + f_err), (p, np.max(np.abs(R - J) - rem))
        power = (q - 1) / q * np.log1p((ts / N0) ** q) if 1.0 < q < math.inf else 0.0
        dev = -np.log1p(-(rem + f_err) / J) - np.log1p(-lo.d2_max * K * ts / abs(c0)) + power
        tol = symbolic.slope_error_bound(np.log(ts), dev)
        assert abs(slope - expected) <= tol, (p, slope, expected, tol)
        print(
            f"     {_name(p):<4} {q:<6.3g} {expected:>8.4g}  {slope:>12.4f}  ± {tol:.4f} (derived; "
            f"|R − J| ≤ {rem:.3f})"
        )

    print("PROOF OK: LIN-LP")


if __name__ == "__main__":
    if not __debug__:
        raise SystemExit(f"{__file__}: every check here is an assert; run without python -O")
    main()
