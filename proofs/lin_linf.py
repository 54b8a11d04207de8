"""LIN-LINF: under an L∞ attack the loss is not smooth on any hyperplane w_i = 0.

An additive bound holds instead.

Statement. p = ∞ (q = 1), ε > 0, X = max_i ‖x_i‖.
  (a) Witness. If w_i = 0, the pairs w ± t e_i give
          R = ε |mean ℓ'(m̃(w − t e_i))| / t + O(1),   |O(1)| ≤ ℓ''_max (X + ε√d)²,
      so R ~ 1/t (growth exponent −1): no β bounds R on any neighbourhood of {w_i = 0}.
  (b) Additive (Liu-type) bound. For all w1, w2 (θ = (w, b) with bias = 1 if b is a parameter):
          ‖∇L(θ1) − ∇L(θ2)‖ ≤ ℓ''_max ((X + ε√d)² + bias) ‖θ1 − θ2‖ + 2ε√d |ℓ'|_max.

Assumptions. As LIN-L2 (proofs/lin_l2.py), with ‖w‖_1 in the closed form; softplus constants
ℓ''_max = 1/4, |ℓ'|_max = 1 in the numerical check.

Proof. u(w) = sign(w) is piecewise constant: it jumps by 2e_i across w_i = 0 and is constant
elsewhere, so the turning term of LIN-L2 becomes a jump of size ≤ 2ε√d|ℓ'|_max.
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

    print("Step 1. For q = 1, ∇‖w‖_1 = sign(w) where every w_j ≠ 0: u(w) = sign(w).")
    N = symbolic.dual_norm_expr(S.w, p=np.inf)
    u = symbolic.dual_direction_expr(S.w, p=np.inf)
    for wj, uj in zip(S.w, u, strict=True):
        assert symbolic.is_identity(sp.diff(N, wj), uj)
    print("   ✓ SymPy: d‖w‖_1/dw_j = sign(w_j) = u_j")

    print(
        "Step 2. Across w_1 = 0 the direction jumps: u(w + t e_1) − u(w − t e_1) = 2 e_1 for all t "
        "> 0."
    )
    w2, w3 = S.w[1], S.w[2]
    jump = sp.Matrix(symbolic.dual_direction_expr([t, w2, w3], p=np.inf)) - sp.Matrix(
        symbolic.dual_direction_expr([-t, w2, w3], p=np.inf)
    )
    assert symbolic.is_identity(jump, sp.Matrix([2, 0, 0]))
    print("   ✓ SymPy: sign(t) − sign(−t) = 2, the other entries cancel")

    print("Step 3. Constants: ‖u‖_2 = ‖sign(w)‖_2 ≤ √d, and ‖·‖_1 is √d-Lipschitz for ‖·‖_2:")
    print(
        "        |‖w1‖_1 − ‖w2‖_1| ≤ ‖w1 − w2‖_1 ≤ √d ‖w1 − w2‖_2, since d Σv_i² − (Σ|v_i|)² = "
        "Σ_{i<j}(|v_i| − |v_j|)²."
    )
    av = sp.symbols("s1:4", nonnegative=True)  # |v_i|
    lhs = 3 * sum(a**2 for a in av) - sum(av) ** 2
    rhs = sum((av[i] - av[j]) ** 2 for i in range(3) for j in range(i + 1, 3))
    assert symbolic.is_identity(lhs, rhs)
    pos = sp.symbols("p1:4", positive=True)
    assert sum(sp.sign(pi) ** 2 for pi in pos) == 3
    print("   ✓ SymPy: the identity (d = 3) and ‖sign(w)‖² = d for w without zeros")
    print(
        "        So m̃ is K-Lipschitz with K = X + ε√d, and ‖(a, y)‖² ≤ K² + bias (LIN-L2 steps "
        "3-4)."
    )

    print(
        "Step 4. Split as in LIN-L2: ∇L1 − ∇L2 = mean (ℓ'(m̃1) − ℓ'(m̃2))(a1, y) − ε mean ℓ'(m̃2) "
        "(u1 − u2, 0),"
    )
    print("        with ‖u1 − u2‖ ≤ 2√d (each entry of sign(w1) − sign(w2) is at most 2 in size).")
    K2 = (B.X + B.eps * sp.sqrt(B.d)) ** 2 + B.bias
    assembled = B.L2max * K2 * B.dtheta + B.eps * B.L1max * 2 * sp.sqrt(B.d)
    assert symbolic.is_identity(assembled, symbolic.lin_linf_bound())
    print(
        f"   ✓ SymPy: assembled = lin_linf_bound() = {symbolic.pretty(symbolic.lin_linf_bound())}"
    )

    print("Step 5. Witness: on w ± t e_1 (w_1 = 0) the second part is ε|c(t)|‖2e_1‖ over ‖2t e_1‖:")
    c = B.mean_l1
    J = S.eps * sp.Abs(c) * 2 / (2 * t)
    assert symbolic.is_identity(J, symbolic.witness_ratio_linf())
    rem = symbolic.witness_remainder_bound().subs(B.p, sp.oo)
    assert symbolic.is_identity(rem, B.L2max * (B.X + B.eps * sp.sqrt(B.d)) ** 2)
    assert symbolic.is_identity(t * sp.diff(sp.log(J), t), symbolic.expected_exponent(np.inf))
    print(
        f"   ✓ SymPy: J = {symbolic.pretty(J)}, |R − J| ≤ {symbolic.pretty(rem)}, log-slope −1 = "
        "expected_exponent(∞)"
    )

    print("Numerical check (advlip.linear.LinearProblem, softplus, d = 3).")
    rng = np.random.default_rng(1400)
    d, n, eps = 3, 6, 0.5
    X = 0.4 * rng.normal(size=(n, d))
    y = rng.choice([-1.0, 1.0], n)
    lo = losses.get_loss("softplus")
    consts = dict(L2max=lo.d2_max, L1max=lo.d1_abs_max)

    # (b) the additive bound on random pairs at every scale, many of them across hyperplanes
    for fit_bias in (False, True):
        prob = linear.LinearProblem(X=X, y=y, eps=eps, p=np.inf, b=0.1, fit_bias=fit_bias)
        dirs = rng.normal(size=(2, 3000, prob.dim))
        dirs /= np.linalg.norm(dirs, axis=2, keepdims=True)
        th1 = dirs[0] * np.exp(rng.uniform(np.log(0.01), np.log(10.0), (3000, 1)))
        rel = np.exp(rng.uniform(np.log(1e-5), np.log(2.0), (3000, 1)))
        th2 = th1 + rel * np.linalg.norm(th1, axis=1, keepdims=True) * dirs[1]
        grad = jax.jit(jax.vmap(prob.grad))
        dg = np.linalg.norm(
            np.asarray(grad(jnp.asarray(th1))) - np.asarray(grad(jnp.asarray(th2))), axis=1
        )
        dth = np.linalg.norm(th1 - th2, axis=1)
        xmax = prob.x_norm_max
        bound = symbolic.evaluate(
            symbolic.lin_linf_bound(),
            X=xmax,
            eps=eps,
            d=d,
            dtheta=dth,
            bias=float(fit_bias),
            **consts,
        )
        # float64 error of ‖Δg‖: two gradients (LIN-L2's count with the 1-norm, γ_(8d+8) for m̃),
        # plus γ_(2d+4) ‖Δg‖ for the difference and its norm
        K = xmax + eps * np.sqrt(d)
        s_m = 10.0 * 3 * (K + 1) + 0.1
        grad_err = (
            np.sqrt(d + 1)
            * (K + 1)
            * (lo.d2_max * tolerance.gamma(8 * d + 8) * s_m + tolerance.gamma(2 * d + n + 12))
        )
        tol = 2 * grad_err + tolerance.gamma(2 * d + 4) * dg
        assert np.all(dg <= bound + tol), float(np.max(dg - bound))
        small = dth < 1e-3
        print(
            f"   ✓ fit_bias={fit_bias}: 3000 pairs, ‖Δg‖ ≤ bound everywhere; worst ‖Δg‖/bound = "
            f"{np.max(dg / bound):.3f}; pairs closer than 1e-3 reach "
            f"{np.max(dg[small] / bound[small]):.3f}"
        )

    # (a) the witness at w_1 = 0
    prob = linear.LinearProblem(X=X, y=y, eps=eps, p=np.inf, b=0.1)
    w0 = np.array([0.0, 0.7, -0.4])
    e1 = np.eye(d)[0]
    ts = 1e-6 * 2.0 ** np.arange(14)
    wa, wb = w0 + ts[:, None] * e1, w0 - ts[:, None] * e1
    grad = jax.jit(jax.vmap(prob.grad))
    dw = np.linalg.norm(wa - wb, axis=1)
    R = np.linalg.norm(np.asarray(grad(wa)) - np.asarray(grad(wb)), axis=1) / dw
    xmax = prob.x_norm_max
    K = xmax + eps * np.sqrt(d)  # Lipschitz constant of m̃, bound on ‖a‖ (step 3)
    c_t = np.asarray(lo.d1(jax.vmap(prob.margins)(wb))).mean(axis=1)
    c0 = float(np.mean(lo.d1(prob.margins(jnp.asarray(w0)))))
    jumps = np.asarray(norms.dual_direction(wa, q=1.0) - norms.dual_direction(wb, q=1.0))
    J = eps * np.abs(c_t) * np.linalg.norm(jumps, axis=1) / dw
    rem = symbolic.evaluate(rem, L2max=lo.d2_max, X=xmax, eps=eps, d=d)
    s_m = float(np.abs(w0).sum() + 1) * K + 0.1
    grad_err = (
        np.sqrt(d)
        * (K + 1)
        * (lo.d2_max * tolerance.gamma(8 * d + 8) * s_m + tolerance.gamma(2 * d + n + 12))
    )
    f_err = np.array([tolerance.ratio_error(grad_err, a, r) for a, r in zip(dw, R, strict=True)])
    assert np.all(np.abs(R - J) <= rem + f_err), np.max(np.abs(R - J) - rem)
    print(
        f"   ✓ witness w ± t e_1, t = 1e-6 … 8e-3: |R − J| ≤ {rem:.3f} (largest "
        f"{np.max(np.abs(R - J)):.3f});"
    )
    print(f"     t·R = {ts[0] * R[0]:.5f} at t = 1e-6 → ε|mean ℓ'(m̃(w))| = {eps * abs(c0):.5f}")
    # Slope: |log R − log J| ≤ −log(1 − (rem + f_err)/J), and J = ε|c(t)|/t with
    # |c(t) − c0| ≤ ℓ''_max K t (the pair moves m̃ by at most K t), so
    # |log J − log(ε|c0|/t)| ≤ −log(1 − ℓ''_max K t/|c0|).
    dev = -np.log1p(-(rem + f_err) / J) - np.log1p(-lo.d2_max * K * ts / abs(c0))
    slope = float(np.polyfit(np.log(ts), np.log(R), 1)[0])
    tol = symbolic.slope_error_bound(np.log(ts), dev)
    expected = float(symbolic.expected_exponent(np.inf))
    assert abs(slope - expected) <= tol, (slope, tol)
    print(
        f"   ✓ slope of log R on log t = {slope:.4f}, expected {expected:g} ± {tol:.4f} (derived "
        "bound)"
    )

    print("PROOF OK: LIN-LINF")


if __name__ == "__main__":
    if not __debug__:
        raise SystemExit(f"{__file__}: every check here is an assert; run without python -O")
    main()
