"""LIN-L2-ZERO: under an L2 attack the adversarial loss is not smooth at w = 0.

Statement. p = 2, ε > 0, mean_i ℓ'(y_i b) ≠ 0 (always so for softplus, where ℓ' < 0). On the
witness pairs w± = ±t v, ‖v‖ = 1,

    R(w+, w−) = ε |mean_i ℓ'(m̃_i(w−))| / t + O(1)  →  ε |mean_i ℓ'(y_i b)| / t  → ∞ as t → 0,

with |O(1)| ≤ ℓ''_max (X + ε)²: the growth exponent of R in t is −1, so no β bounds R near 0.

Assumptions. As LIN-L2 (proofs/lin_l2.py); the bias b is fixed.

Proof. At ±t v the attack direction is u(±t v) = ±v, a jump of 2v across w = 0 however
small t is, while the pair is only 2t apart.
"""

import jax
import numpy as np
import sympy as sp

from advlip import linear, losses, norms, symbolic, tolerance

jax.config.update("jax_enable_x64", True)  # the numerical check is in float64


def main() -> None:
    B = symbolic.bound_symbols()
    S = symbolic.symbols(2)
    t = B.t
    v = sp.Matrix(sp.symbols("v1 v2", real=True))
    nv = sp.sqrt(v.dot(v))

    print(
        "Step 1. The attack direction jumps: u(±t v) = ±v/‖v‖ for every t > 0 (p = 2, u(w) = "
        "w/‖w‖)."
    )
    u_plus = symbolic.dual_direction_expr(list(t * v), p=2)
    u_minus = symbolic.dual_direction_expr(list(-t * v), p=2)
    assert symbolic.is_identity(sp.Matrix(u_plus), v / nv)
    assert symbolic.is_identity(sp.Matrix(u_minus), -v / nv)
    print("   ✓ SymPy: u(t v) = v/‖v‖, u(−t v) = −v/‖v‖ (t > 0)")

    print("Step 2. The margins tend to y b: m̃(±t v) = y b + t(±y v·x − ε‖v‖) → y b.")
    mt = symbolic.adversarial_margin_expr(2, p=2)
    for sgn in (1, -1):
        m_t = mt.subs(dict(zip(S.w, sgn * t * v, strict=True)))
        expected = S.y * S.b + t * (sgn * S.y * v.dot(sp.Matrix(S.x)) - S.eps * nv)
        assert symbolic.is_identity(m_t, expected)
        assert sp.limit(m_t, t, 0) == S.y * S.b
    print("   ✓ SymPy: m̃(±t v) = y b + t(±y v·x − ε‖v‖), limit y b")

    print(
        "Step 3. Split as in LIN-L2: g(w+) − g(w−) = mean (ℓ'(m̃+) − ℓ'(m̃−)) a+ − ε mean ℓ'(m̃−) "
        "(u+ − u−)."
    )
    print(
        "        The first part is at most ℓ''_max (X + ε)² ‖w+ − w−‖ (LIN-L2 steps 3-4); the "
        "second is"
    )
    print(
        "        ε|c(t)| ‖2v‖ with c(t) = mean ℓ'(m̃(w−)), over ‖w+ − w−‖ = 2t. So R = J + O(1) with"
    )
    c = B.mean_l1
    J = S.eps * sp.Abs(c) * sp.sqrt((2 * v).dot(2 * v)) / sp.sqrt((2 * t * v).dot(2 * t * v))
    assert symbolic.is_identity(J, symbolic.witness_ratio_zero())
    print(f"   ✓ SymPy: J = ε|c|‖2v‖/‖2tv‖ = {symbolic.pretty(symbolic.witness_ratio_zero())}")
    rem = symbolic.witness_remainder_bound().subs(B.p, 2)
    assert symbolic.is_identity(rem, B.L2max * (B.X + B.eps) ** 2)
    print(f"   ✓ SymPy: |R − J| ≤ witness_remainder_bound() at p = 2 = {symbolic.pretty(rem)}")

    print(
        "Step 4. Hence t R → ε|mean ℓ'(y b)| ≠ 0 and log R has slope −1 in log t: not Lipschitz at "
        "0."
    )
    Jw = symbolic.witness_ratio_zero()
    assert sp.limit(t * Jw, t, 0) == S.eps * sp.Abs(c)
    assert symbolic.is_identity(t * sp.diff(sp.log(Jw), t), -1)
    print("   ✓ SymPy: lim t·J = ε|c|; t d/dt log J = −1")
    print("        (softplus: ℓ'(m) = −σ(−m) < 0, so c ≠ 0 for every dataset and bias)")

    print(
        "Numerical check: witness pairs ±t v of advlip.linear.LinearProblem (softplus, t = 1e-6 … "
        "8e-3)."
    )
    rng = np.random.default_rng(2021)
    d, n, eps, b = 3, 6, 0.5, 0.5
    X = 0.3 * rng.normal(size=(n, d))
    y = rng.choice([-1.0, 1.0], n)
    prob = linear.LinearProblem(X=X, y=y, eps=eps, p=2.0, b=b)
    lo = losses.get_loss("softplus")
    vv = rng.normal(size=d)
    vv /= np.linalg.norm(vv)
    ts = 1e-6 * 2.0 ** np.arange(14)
    w_plus, w_minus = ts[:, None] * vv, -ts[:, None] * vv
    grad = jax.jit(jax.vmap(prob.grad))
    dw = np.linalg.norm(w_plus - w_minus, axis=1)
    R = np.linalg.norm(np.asarray(grad(w_plus)) - np.asarray(grad(w_minus)), axis=1) / dw

    xmax = prob.x_norm_max
    K = xmax + eps  # Lipschitz constant of m̃ in w and bound on ‖a‖ (p = 2)
    c_t = np.asarray(lo.d1(jax.vmap(prob.margins)(w_minus))).mean(axis=1)
    u_jump = np.asarray(norms.dual_direction(w_plus, q=2.0) - norms.dual_direction(w_minus, q=2.0))
    J = eps * np.abs(c_t) * np.linalg.norm(u_jump, axis=1) / dw
    c0 = float(np.mean(lo.d1(y * b)))
    rem = symbolic.evaluate(rem, L2max=lo.d2_max, X=xmax, eps=eps)
    # float64 error of R (LIN-L2's count): each gradient off by grad_err, R by 2 grad_err/‖Δw‖ +
    #   γ_8 R
    s_m = float(ts.max()) * K + abs(b)
    grad_err = (
        np.sqrt(d)
        * (K + 1)
        * (lo.d2_max * tolerance.gamma(8 * d + 8) * s_m + tolerance.gamma(2 * d + n + 12))
    )
    f_err = np.array([tolerance.ratio_error(grad_err, a, r) for a, r in zip(dw, R, strict=True)])

    assert np.all(np.abs(R - J) <= rem + f_err), np.max(np.abs(R - J) - rem)
    print(
        f"   ✓ |R − J| ≤ ℓ''_max(X + ε)² = {rem:.3f} at every t (largest |R − J| = "
        f"{np.max(np.abs(R - J)):.3f})"
    )
    # t R → ε|c0|: |tR − ε|c0|| ≤ t·rem + ε|c(t) − c0| + t·f_err, and |c(t) − c0| ≤ ℓ''_max K t
    lim_err = ts * rem + eps * lo.d2_max * K * ts + ts * f_err
    assert np.all(np.abs(ts * R - eps * abs(c0)) <= lim_err)
    print(f"   ✓ t·R → ε|mean ℓ'(y b)| = {eps * abs(c0):.4f} (t·R at t = 1e-6: {ts[0] * R[0]:.6f})")

    # Slope. log R = −log t + log(ε|c0|) + δ_k with |δ_k| ≤ Δ_k:
    #   |log R − log J| ≤ −log(1 − (rem + f_err)/J)       (R = J ± (rem + f_err))
    #   |log J − log(ε|c0|/t)| ≤ −log(1 − ℓ''_max K t/|c0|)  (|c(t) − c0| ≤ ℓ''_max K t, J =
    #   ε|c(t)|/t)
    dev = -np.log1p(-(rem + f_err) / J) - np.log1p(-lo.d2_max * K * ts / abs(c0))
    slope = float(np.polyfit(np.log(ts), np.log(R), 1)[0])
    tol = symbolic.slope_error_bound(np.log(ts), dev)
    # u jumps at w = 0 for every p: exponent −1 (away from 0, p = 2 is smooth: expected_exponent =
    #   0)
    expected = -1.0
    assert abs(slope - expected) <= tol, (slope, tol)
    print(f"   ✓ slope of log R on log t = {slope:.4f}, expected −1 ± {tol:.4f} (derived bound)")

    print("PROOF OK: LIN-L2-ZERO")


if __name__ == "__main__":
    if not __debug__:
        raise SystemExit(f"{__file__}: every check here is an assert; run without python -O")
    main()
