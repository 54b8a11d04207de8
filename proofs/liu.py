"""LIU: the bound of Liu et al. (NeurIPS 2020), valid but with a term that does not vanish.

Statement. If ∇_θ ℓ(x, θ) is L_θθ-Lipschitz in θ and L_θx-Lipschitz in x (on the sets the
arguments range over), then for the adversarial loss L(θ) = mean_i max_{δ ∈ B_p(ε)} ℓ(x_i + δ, θ)

    ‖∇L(θ1) − ∇L(θ2)‖ ≤ L_θθ ‖θ1 − θ2‖ + L_θx · diam_2 B_p(ε),
    diam_2 B_p(ε) = 2ε d^{max(0, 1/2 − 1/p)}.

For the linear model ℓ(x, θ) = ℓ(y(w·x + b)) on {‖w‖ ≤ W}, with r = d^{max(0, 1/2 − 1/p)}:
L_θθ = ℓ''_max ((X + εr)² + bias), L_θx = ℓ''_max √((X + εr)² + bias) W + |ℓ'|_max.

Assumptions. Danskin's gradient (proofs/closed_form.py); y_i ∈ {−1, +1}; the θ-segment stays in
{‖w‖ ≤ W} (a ball: convex) and the x-segment in x_i + B_p(ε) (convex).

Proof. Add and subtract ∇_θ ℓ(x + δ1*, θ2). The additive term bounds ‖δ1* − δ2*‖ by the
diameter of the ball: it ignores that δ*(θ) moves continuously with θ (for p = 2 it moves by
O(‖θ1 − θ2‖/‖w‖), which is what LIN-L2 uses), so it does not vanish as θ1 → θ2.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from advlip import linear, losses, norms, symbolic, tolerance

jax.config.update("jax_enable_x64", True)  # the numerical check is in float64


def main() -> None:
    B = symbolic.bound_symbols()
    S = symbolic.symbols(2)

    print(
        "Step 1. Add and subtract: G(x1, θ1) − G(x2, θ2) = [G(x1, θ1) − G(x1, θ2)] + [G(x1, θ2) − "
        "G(x2, θ2)]"
    )
    print(
        "        for G = ∇_θ ℓ and x_j = x + δ_j*: the first is ≤ L_θθ‖Δθ‖, the second ≤ L_θx‖δ1* "
        "− δ2*‖."
    )
    G = sp.Function("G")
    x1, x2, th1, th2 = sp.symbols("x1 x2 theta1 theta2")
    assert symbolic.is_identity(
        G(x1, th1) - G(x2, th2), (G(x1, th1) - G(x1, th2)) + (G(x1, th2) - G(x2, th2))
    )
    print("   ✓ SymPy: the telescoping identity")

    print(
        "Step 2. Linear model: ∇_θ ℓ = ℓ'(m) y (x, 1), m = y(w·x + b); its Jacobians (y² = 1) are"
    )
    print("        ∂_θ = ℓ''(m) (x, 1)(x, 1)ᵀ and ∂_x = ℓ''(m) (x, 1) wᵀ + ℓ'(m) y [I; 0].")
    ell = sp.Function("ell")
    m = S.y * (S.w[0] * S.x[0] + S.w[1] * S.x[1] + S.b)
    g = sp.Matrix([sp.diff(ell(m), v) for v in S.theta])
    xt = sp.Matrix([*S.x, 1])
    d1 = sp.Subs(sp.Derivative(ell(S.m), S.m), S.m, m).doit()
    d2 = sp.Subs(sp.Derivative(ell(S.m), S.m, 2), S.m, m).doit()
    assert symbolic.is_identity(g, d1 * S.y * xt)
    J_theta = g.jacobian(S.theta).subs(S.y**2, 1)
    J_x = g.jacobian(S.x).subs(S.y**2, 1)
    assert symbolic.is_identity(J_theta, d2 * xt * xt.T)
    expected_x = d2 * xt * sp.Matrix(S.w).T + d1 * S.y * sp.Matrix([[1, 0], [0, 1], [0, 0]])
    assert symbolic.is_identity(J_x, expected_x)
    print("   ✓ SymPy: both Jacobians (d = 2, ℓ an arbitrary function)")

    print(
        "Step 3. ‖v vᵀ‖ = ‖v‖² (rank one: (v vᵀ) v = ‖v‖² v), and ‖x + δ‖ ≤ X + εr on x_i + "
        "B_p(ε), so"
    )
    print(
        "        L_θθ = ℓ''_max((X + εr)² + bias) and L_θx = ℓ''_max √((X + εr)² + bias) W + "
        "|ℓ'|_max."
    )
    assert symbolic.is_identity((xt * xt.T) * xt, xt.dot(xt) * xt)
    print("   ✓ SymPy: (v vᵀ) v = ‖v‖² v")

    print(
        "Step 4. ‖δ1* − δ2*‖_2 ≤ diam_2 B_p(ε) = 2ε sup_{‖u‖_p ≤ 1} ‖u‖_2 = 2ε "
        "d^{max(0, 1/2 − 1/p)}:"
    )
    diam = symbolic.l2_diameter()
    for pe, radius in [
        (1, 1),
        (2, 1),
        (sp.Rational(3, 2), 1),
        (4, B.d ** sp.Rational(1, 4)),
        (sp.oo, sp.sqrt(B.d)),
    ]:
        assert symbolic.is_identity(diam.subs(B.p, pe), 2 * B.eps * radius), pe
    pp = B.p
    assert symbolic.is_identity(
        sp.sqrt(B.d * (B.d ** (-1 / pp)) ** 2), B.d ** (sp.Rational(1, 2) - 1 / pp)
    )
    for p in (1.0, 2.0, 3.0, math.inf):
        assert abs(
            symbolic.evaluate(diam, eps=0.5, d=7, p=p) - 2 * 0.5 * norms.l2_radius(7, p)
        ) <= tolerance.gamma(12) * 2 * 0.5 * norms.l2_radius(7, p)
    print(f"   ✓ SymPy: l2_diameter() = {symbolic.pretty(diam)} at p = 1, 3/2, 2, 4, ∞; the vertex")
    print(
        "            d^(−1/p)(1, …, 1) has 2-norm d^(1/2 − 1/p); agrees with advlip.norms.l2_radius"
    )

    print("Step 5. Assemble: liu_bound() = L_θθ‖Δθ‖ + L_θx diam_2 B_p(ε).")
    assert symbolic.is_identity(symbolic.liu_bound(), B.Ltt * B.dtheta + B.Ltx * diam)
    print(f"   ✓ SymPy: {symbolic.pretty(symbolic.liu_bound())}")

    print("Step 6. The additive term does not vanish as θ1 → θ2, unlike LIN-L2's bound × ‖Δθ‖:")
    lim_liu = sp.limit(symbolic.liu_bound(), B.dtheta, 0)
    lim_l2 = sp.limit(symbolic.lin_l2_bound() * B.dtheta, B.dtheta, 0)
    assert symbolic.is_identity(lim_liu, B.Ltx * diam) and lim_l2 == 0
    print(f"   ✓ SymPy: lim_(Δθ→0) liu_bound = {symbolic.pretty(lim_liu)}; lim LIN-L2 bound·Δθ = 0")

    print(
        "Numerical check: ‖Δg‖ ≤ liu_bound on random pairs in {‖w‖ ≤ W} (advlip.linear, softplus, "
        "d = 3)."
    )
    rng = np.random.default_rng(2020)
    d, n, eps, W = 3, 6, 0.3, 3.0
    X = 0.5 * rng.normal(size=(n, d))
    y = rng.choice([-1.0, 1.0], n)
    lo = losses.get_loss("softplus")
    for p in (1.0, 2.0, math.inf):
        for fit_bias in (False, True):
            prob = linear.LinearProblem(X=X, y=y, eps=eps, p=p, b=0.2, fit_bias=fit_bias)
            xr = prob.x_norm_max + eps * norms.l2_radius(d, p)
            bias = float(fit_bias)
            Ltt = lo.d2_max * (xr**2 + bias)
            Ltx = lo.d2_max * math.sqrt(xr**2 + bias) * W + lo.d1_abs_max
            # pairs: θ1 uniform-ish in the ball ‖w‖ ≤ W, partners at distances 1e-5 … 1, w clipped
            #   to the ball
            th1 = rng.normal(size=(2000, prob.dim))
            th1 *= (
                W * rng.uniform(0.01, 1.0, (2000, 1)) / np.linalg.norm(th1, axis=1, keepdims=True)
            )
            step = rng.normal(size=(2000, prob.dim))
            step *= np.exp(rng.uniform(np.log(1e-5), 0.0, (2000, 1))) / np.linalg.norm(
                step, axis=1, keepdims=True
            )
            th2 = th1 + step
            wn = np.linalg.norm(th2[:, :d], axis=1, keepdims=True)
            th2[:, :d] *= np.minimum(1.0, W / wn)
            grad = jax.jit(jax.vmap(prob.grad))
            dg = np.linalg.norm(
                np.asarray(grad(jnp.asarray(th1))) - np.asarray(grad(jnp.asarray(th2))), axis=1
            )
            dth = np.linalg.norm(th1 - th2, axis=1)
            bound = symbolic.evaluate(
                symbolic.liu_bound(), Ltt=Ltt, Ltx=Ltx, dtheta=dth, eps=eps, d=d, p=p
            )
            # float64 error of ‖Δg‖: two gradients (LIN-L2's count, γ_(8d+8) for m̃) and
            #   γ_(2d+4)‖Δg‖
            K = xr + 1
            s_m = (W + 2) * K
            grad_err = (
                np.sqrt(d + 1)
                * (K + 1)
                * (lo.d2_max * tolerance.gamma(8 * d + 8) * s_m + tolerance.gamma(2 * d + n + 12))
            )
            assert np.all(dg <= bound + 2 * grad_err + tolerance.gamma(2 * d + 4) * dg), (
                p,
                fit_bias,
            )
            close = dth < 1e-4
            print(
                f"   ✓ p = {'∞' if math.isinf(p) else f'{p:g}'}, fit_bias={fit_bias}: 2000 pairs "
                "hold;"
                f" worst ‖Δg‖/bound = {np.max(dg / bound):.3f}, for ‖Δθ‖ < 1e-4 at most "
                f"{np.max(dg[close] / bound[close]):.1e}"
            )

    print("PROOF OK: LIU")


if __name__ == "__main__":
    if not __debug__:
        raise SystemExit(f"{__file__}: every check here is an assert; run without python -O")
    main()
