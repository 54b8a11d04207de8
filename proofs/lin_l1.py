"""LIN-L1: under an L1 attack the loss is not smooth where the largest |w_i| ties.

Statement. p = 1 (q = ∞), ε > 0. If |w_i| = |w_j| = ‖w‖_∞ (i ≠ j) and s = sign(w), the pairs
w1 = w + t s_i e_i, w2 = w + t s_j e_j give

    R = ε |mean ℓ'(m̃(w2))| / t + O(1),   |O(1)| ≤ ℓ''_max (X + ε)²,

so R ~ 1/t (growth exponent −1): ∇L is not Lipschitz on any neighbourhood of a tie.

Assumptions. As LIN-L2 (proofs/lin_l2.py), with ‖w‖_∞ in the closed form; softplus in the
numerical check.

Proof. u(w) = sign(w_k) e_k, k = argmax |w_i|, is piecewise constant and jumps from s_i e_i to
s_j e_j when the argmax moves across the tie: a jump of size √2 over a pair √2 t apart.
"""

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from advlip import linear, losses, norms, symbolic, tolerance

jax.config.update("jax_enable_x64", True)  # the numerical check is in float64


def main() -> None:
    B = symbolic.bound_symbols()
    S = symbolic.symbols(3)
    t = B.t
    A = sp.Symbol("A", positive=True)  # the tied magnitude |w_1| = |w_2| = A > |w_3| = A/2

    print(
        "Step 1. ‖w‖_∞ = max_i |w_i| has gradient sign(w_k) e_k where the max is unique (u(w), q = "
        "∞)."
    )
    N = symbolic.dual_norm_expr(S.w, p=1)
    grad_n = sp.Matrix([sp.diff(N, wj) for wj in S.w])
    print(f"        SymPy's gradient of {N}: {list(grad_n)}")

    print(
        "Step 2. At the tie w = (s1 A, s2 A, A/2) the pairs w + t s1 e1 and w + t s2 e2 have the "
        "unique"
    )
    print(
        "        maxima 1 and 2: the gradient jumps from s1 e1 to s2 e2, for every t > 0 and sign "
        "pattern."
    )
    for s1 in (1, -1):
        for s2 in (1, -1):
            for s3 in (1, -1):
                wa = {S.w[0]: s1 * (A + t), S.w[1]: s2 * A, S.w[2]: s3 * A / 2}
                wb = {S.w[0]: s1 * A, S.w[1]: s2 * (A + t), S.w[2]: s3 * A / 2}
                assert symbolic.is_identity(grad_n.subs(wa), sp.Matrix([s1, 0, 0])), (s1, s2, s3)
                assert symbolic.is_identity(grad_n.subs(wb), sp.Matrix([0, s2, 0])), (s1, s2, s3)
                ua = sp.Matrix(symbolic.dual_direction_expr([wa[w] for w in S.w], p=1, k=0))
                ub = sp.Matrix(symbolic.dual_direction_expr([wb[w] for w in S.w], p=1, k=1))
                assert symbolic.is_identity(ua - ub, sp.Matrix([s1, -s2, 0]))
    print("   ✓ SymPy: ∇‖w1‖_∞ = s1 e1, ∇‖w2‖_∞ = s2 e2 = u(w1), u(w2) for all 8 sign patterns")

    print(
        "Step 3. ‖u1 − u2‖ = ‖s1 e1 − s2 e2‖ = √2 and ‖w1 − w2‖ = ‖t s1 e1 − t s2 e2‖ = √2 t. "
        "Splitting as"
    )
    print(
        "        in LIN-L2, R = J + O(1) with J = ε|c(t)|‖u1 − u2‖/‖w1 − w2‖, c(t) = mean "
        "ℓ'(m̃(w2)):"
    )
    c = B.mean_l1
    J = S.eps * sp.Abs(c) * sp.sqrt(2) / (sp.sqrt(2) * t)
    assert symbolic.is_identity(J, symbolic.witness_ratio_l1())
    print(f"   ✓ SymPy: J = {symbolic.pretty(symbolic.witness_ratio_l1())}")
    print("        For q = ∞, ‖u‖_2 = 1 and ‖·‖_∞ is 1-Lipschitz for ‖·‖_2, so K = X + ε:")
    rem = symbolic.witness_remainder_bound().subs(B.p, 1)
    assert symbolic.is_identity(rem, B.L2max * (B.X + B.eps) ** 2)
    print(f"   ✓ SymPy: |R − J| ≤ witness_remainder_bound() at p = 1 = {symbolic.pretty(rem)}")
    assert symbolic.is_identity(t * sp.diff(sp.log(J), t), symbolic.expected_exponent(1.0))
    print("   ✓ SymPy: t d/dt log J = −1 = expected_exponent(1)")

    print(
        "Numerical check (advlip.linear.LinearProblem, softplus, d = 3, tie |w_1| = |w_2| = 0.8)."
    )
    rng = np.random.default_rng(103)
    d, n, eps, b = 3, 6, 0.5, -0.2
    X = 0.4 * rng.normal(size=(n, d))
    y = rng.choice([-1.0, 1.0], n)
    lo = losses.get_loss("softplus")
    prob = linear.LinearProblem(X=X, y=y, eps=eps, p=1.0, b=b)
    w0 = np.array([0.8, -0.8, 0.3])
    sgn = np.sign(w0)
    ts = 1e-6 * 2.0 ** np.arange(14)
    wa = w0 + ts[:, None] * sgn[0] * np.eye(d)[0]
    wb = w0 + ts[:, None] * sgn[1] * np.eye(d)[1]
    grad = jax.jit(jax.vmap(prob.grad))
    dw = np.linalg.norm(wa - wb, axis=1)
    R = np.linalg.norm(np.asarray(grad(wa)) - np.asarray(grad(wb)), axis=1) / dw
    xmax = prob.x_norm_max
    K = xmax + eps
    c_t = np.asarray(lo.d1(jax.vmap(prob.margins)(wb))).mean(axis=1)
    c0 = float(np.mean(lo.d1(prob.margins(jnp.asarray(w0)))))
    jumps = np.asarray(norms.dual_direction(wa, q=np.inf) - norms.dual_direction(wb, q=np.inf))
    J = eps * np.abs(c_t) * np.linalg.norm(jumps, axis=1) / dw
    rem = symbolic.evaluate(rem, L2max=lo.d2_max, X=xmax, eps=eps)
    # float64 error of R: LIN-L2's count, γ_(8d+8) for m̃ (the ∞-norm takes d operations)
    s_m = float(np.abs(w0).sum() + 1) * K + abs(b)
    grad_err = (
        np.sqrt(d)
        * (K + 1)
        * (lo.d2_max * tolerance.gamma(8 * d + 8) * s_m + tolerance.gamma(2 * d + n + 12))
    )
    f_err = np.array([tolerance.ratio_error(grad_err, a, r) for a, r in zip(dw, R, strict=True)])
    assert np.all(np.abs(R - J) <= rem + f_err), np.max(np.abs(R - J) - rem)
    print(f"   ✓ |R − J| ≤ {rem:.3f} at every t (largest {np.max(np.abs(R - J)):.3f})")
    print(f"     t·R = {ts[0] * R[0]:.5f} at t = 1e-6 → ε|mean ℓ'(m̃(w))| = {eps * abs(c0):.5f}")
    # |log R − log J| ≤ −log(1 − (rem + f_err)/J); J = ε|c(t)|/t and |c(t) − c0| ≤ ℓ''_max K t
    dev = -np.log1p(-(rem + f_err) / J) - np.log1p(-lo.d2_max * K * ts / abs(c0))
    slope = float(np.polyfit(np.log(ts), np.log(R), 1)[0])
    tol = symbolic.slope_error_bound(np.log(ts), dev)
    expected = float(symbolic.expected_exponent(1.0))
    assert abs(slope - expected) <= tol, (slope, tol)
    print(
        f"   ✓ slope of log R on log t = {slope:.4f}, expected {expected:g} ± {tol:.4f} (derived "
        "bound)"
    )

    print("PROOF OK: LIN-L1")


if __name__ == "__main__":
    if not __debug__:
        raise SystemExit(f"{__file__}: every check here is an assert; run without python -O")
    main()
