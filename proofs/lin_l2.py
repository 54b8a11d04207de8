"""LIN-L2: under an L2 attack the adversarial loss of a linear model is smooth away from w = 0.

Statement. p = 2. For all w1, w2 ≠ 0, with X = max_i ‖x_i‖,

    R(w1, w2) = ‖∇L(w1) − ∇L(w2)‖ / ‖w1 − w2‖ ≤ ℓ''_max (X + ε)² + ε |ℓ'|_max / √(‖w1‖ ‖w2‖),

and with the bias as a parameter too, θ = (w, b), (X + ε)² becomes (X + ε)² + 1. Hence L is
β-smooth on {‖w‖ ≥ r} with β = ℓ''_max((X + ε)² [+ 1]) + ε|ℓ'|_max / r; for softplus
ℓ''_max = 1/4 and |ℓ'|_max = 1.

Assumptions. ℓ is C² with |ℓ''| ≤ ℓ''_max and |ℓ'| ≤ |ℓ'|_max; ε ≥ 0; y_i ∈ {−1, +1};
L = mean_i ℓ(m̃_i), m̃_i = y_i(w·x_i + b) − ε‖w‖ (proofs/closed_form.py).

Proof sketch. Danskin: ∇L(w) = mean_i ℓ'(m̃_i) a_i, a_i = y_i x_i − ε ŵ. Split the difference
into a part where ℓ' changes (bounded through the Lipschitz constant of m̃) and a part where
the attack direction ŵ turns (bounded by the unit-vector identity of step 6).
"""

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from advlip import linear, losses, symbolic, tolerance

jax.config.update("jax_enable_x64", True)  # the numerical check is in float64


def main() -> None:
    B = symbolic.bound_symbols()
    S = symbolic.symbols(3)

    print("Step 1. Danskin (proofs/closed_form.py): for p = 2, u(w) = ŵ = w/‖w‖ and")
    print("        ∇_w ℓ(m̃) = ℓ'(m̃) a with a = y x − ε ŵ.")
    sol = symbolic.gradient_expr(3, p=2)
    mt = symbolic.adversarial_margin_expr(3, p=2)
    nw = sp.sqrt(sum(wi**2 for wi in S.w))
    d1 = sp.diff(losses.get_loss("softplus").sympy(S.m), S.m).subs(S.m, mt)
    a = sp.Matrix([S.y * xi - S.eps * wi / nw for xi, wi in zip(S.x, S.w, strict=True)] + [S.y])
    assert symbolic.is_identity(sol, d1 * a)
    print("   ✓ SymPy: gradient_expr(3, p=2) − ℓ'(m̃)(y x − ε w/‖w‖, y) = 0")

    print(
        "Step 2. Split: ∇L(w1) − ∇L(w2) = mean_i [(ℓ'(m̃1) − ℓ'(m̃2)) a1] + mean_i [ℓ'(m̃2)(a1 − a2)]."
    )
    l1, l2 = sp.symbols("lp1 lp2", real=True)
    A1 = sp.Matrix(sp.symbols("a1_1:4", real=True))
    A2 = sp.Matrix(sp.symbols("a2_1:4", real=True))
    assert symbolic.is_identity(l1 * A1 - l2 * A2, (l1 - l2) * A1 + l2 * (A1 - A2))
    print("   ✓ SymPy: ℓ'1 a1 − ℓ'2 a2 − [(ℓ'1 − ℓ'2) a1 + ℓ'2 (a1 − a2)] = 0")

    print("Step 3. m̃ is (‖x‖ + ε)-Lipschitz in w: m̃1 − m̃2 = y x·(w1 − w2) − ε(‖w1‖ − ‖w2‖).")
    w1 = sp.Matrix(sp.symbols("v1_1:4", real=True))
    w2 = sp.Matrix(sp.symbols("v2_1:4", real=True))
    m_diff = mt.subs(dict(zip(S.w, w1, strict=True))) - mt.subs(dict(zip(S.w, w2, strict=True)))
    n1, n2 = sp.sqrt(w1.dot(w1)), sp.sqrt(w2.dot(w2))
    xv = sp.Matrix(S.x)
    assert symbolic.is_identity(m_diff, S.y * xv.dot(w1 - w2) - S.eps * (n1 - n2))
    print("   ✓ SymPy: m̃(w1) − m̃(w2) = y x·(w1 − w2) − ε(‖w1‖ − ‖w2‖)")
    print(
        "        Cauchy–Schwarz |x·v| ≤ ‖x‖‖v‖ by Lagrange's identity ‖x‖²‖v‖² − (x·v)² = "
        "Σ_{i<j}(x_i v_j − x_j v_i)²:"
    )
    v = w1 - w2
    lagrange = sum((xv[i] * v[j] - xv[j] * v[i]) ** 2 for i in range(3) for j in range(i + 1, 3))
    assert symbolic.is_identity(xv.dot(xv) * v.dot(v) - xv.dot(v) ** 2, lagrange)
    print("   ✓ SymPy: Lagrange's identity (d = 3)")
    print(
        "        reverse triangle |‖w1‖ − ‖w2‖| ≤ ‖w1 − w2‖: the gap is 2(‖w1‖‖w2‖ − w1·w2) ≥ 0 "
        "(C–S):"
    )
    assert symbolic.is_identity(v.dot(v) - (n1 - n2) ** 2, 2 * (n1 * n2 - w1.dot(w2)))
    print("   ✓ SymPy: ‖w1 − w2‖² − (‖w1‖ − ‖w2‖)² = 2(‖w1‖‖w2‖ − w1·w2)")
    print(
        "        With the bias: |m̃1 − m̃2| ≤ (‖x‖+ε)‖Δw‖ + |Δb| ≤ √((‖x‖+ε)² + 1) ‖Δθ‖ (C–S in R²):"
    )
    al, be, s, t = sp.symbols("alpha beta s t", real=True)
    assert symbolic.is_identity(
        (al**2 + be**2) * (s**2 + t**2) - (al * s + be * t) ** 2, (al * t - be * s) ** 2
    )
    print("   ✓ SymPy: (α² + β²)(s² + t²) − (αs + βt)² = (αt − βs)²")

    print("Step 4. ‖a‖ ≤ ‖x‖ + ε because ‖ŵ‖ = 1; with the bias ‖(a, y)‖² ≤ (‖x‖ + ε)² + 1.")
    assert symbolic.is_identity((w1 / n1).dot(w1 / n1), 1)
    print("   ✓ SymPy: ‖w/‖w‖‖² = 1")

    print("Step 5. Softplus constants: ℓ'(m) = −σ(−m), ℓ''(m) = σ(m)σ(−m) ≤ 1/4, |ℓ'| < 1.")
    m = S.m
    ell = losses.get_loss("softplus").sympy(m)
    sig = lambda z: 1 / (1 + sp.exp(-z))  # noqa: E731
    assert symbolic.is_identity(sp.diff(ell, m), -sig(-m))
    assert symbolic.is_identity(sp.diff(ell, m, 2), sig(m) * sig(-m))
    crit = sp.solve(sp.diff(sig(m) * sig(-m), m), m)
    assert crit == [0], crit
    assert sig(m).subs(m, 0) * sig(-m).subs(m, 0) == sp.Rational(1, 4)
    assert sp.limit(sig(m) * sig(-m), m, sp.oo) == 0 and sp.limit(sig(m) * sig(-m), m, -sp.oo) == 0
    # and directly: σ(m)σ(−m) = (1 − tanh²(m/2))/4 ≤ 1/4
    assert symbolic.is_identity(
        (sig(m) * sig(-m)).rewrite(sp.exp), ((1 - sp.tanh(m / 2) ** 2) / 4).rewrite(sp.exp)
    )
    assert sp.limit(sig(-m), m, -sp.oo) == 1 and sp.diff(sig(-m), m).is_negative
    lo = losses.get_loss("softplus")
    assert lo.d2_max == 0.25 and lo.d1_abs_max == 1.0
    print(
        "   ✓ SymPy: (σ(m)σ(−m))' = 0 only at m = 0, value 1/4, → 0 at ±∞; σ(m)σ(−m) = (1 − "
        "tanh²(m/2))/4;"
    )
    print(
        "            |ℓ'| = σ(−m) decreases from 1; advlip.losses says d2_max = 1/4, d1_abs_max = 1"
    )

    print(
        "Step 6. The attack direction turns slowly: ‖ŵ1 − ŵ2‖² = (‖w1 − w2‖² − (‖w1‖ − "
        "‖w2‖)²)/(‖w1‖‖w2‖),"
    )
    print("        hence ‖ŵ1 − ŵ2‖ ≤ ‖w1 − w2‖ / √(‖w1‖‖w2‖).")
    lhs = (w1 / n1 - w2 / n2).dot(w1 / n1 - w2 / n2)
    rhs = (v.dot(v) - (n1 - n2) ** 2) / (n1 * n2)
    assert symbolic.is_identity(lhs, rhs)
    print("   ✓ SymPy: the identity holds for symbolic w1, w2 ∈ R³")

    print(
        "Step 7. Assemble. mean |ℓ'(m̃1) − ℓ'(m̃2)| ‖a1‖ ≤ ℓ''_max ((X+ε)² + bias) ‖Δθ‖ (steps "
        "3-4, mean"
    )
    print(
        "        value theorem) and ‖mean ℓ'(m̃2)(a1 − a2)‖ = ε|mean ℓ'(m̃2)| ‖ŵ1 − ŵ2‖ ≤ "
        "ε|ℓ'|_max ‖Δw‖/√(n1 n2)."
    )
    lip = sp.sqrt((B.X + B.eps) ** 2 + B.bias)  # Lipschitz constant of m̃ and bound on ‖(a, y)‖
    assembled = B.L2max * lip * lip + B.eps * B.L1max / sp.sqrt(B.n1 * B.n2)
    assert symbolic.is_identity(assembled, symbolic.lin_l2_bound())
    print(
        f"   ✓ SymPy: assembled bound = lin_l2_bound() = {symbolic.pretty(symbolic.lin_l2_bound())}"
    )
    assert symbolic.is_identity(
        symbolic.lin_l2_bound().subs({B.n1: B.r, B.n2: B.r}), symbolic.lin_l2_beta()
    )
    assert sp.diff(symbolic.lin_l2_bound(), B.n1).is_nonpositive
    print(
        "   ✓ SymPy: the bound decreases in ‖w1‖, ‖w2‖, and at ‖w1‖ = ‖w2‖ = r it is lin_l2_beta():"
    )
    print(f"            β = {symbolic.pretty(symbolic.lin_l2_beta())}")

    print(
        "Numerical check: gradient ratios of advlip.linear.LinearProblem.grad ≤ the bound "
        "(softplus)."
    )
    rng = np.random.default_rng(2103)
    d, n, eps = 3, 8, 0.3
    X = rng.normal(size=(n, d))
    y = rng.choice([-1.0, 1.0], n)
    consts = dict(L2max=lo.d2_max, L1max=lo.d1_abs_max)

    def check(prob, th1, th2, label):
        grad = jax.jit(jax.vmap(prob.grad))
        dth = np.linalg.norm(np.asarray(th1) - np.asarray(th2), axis=1)
        R = np.linalg.norm(np.asarray(grad(th1)) - np.asarray(grad(th2)), axis=1) / dth
        wn1 = np.linalg.norm(np.asarray(th1)[:, :d], axis=1)
        wn2 = np.linalg.norm(np.asarray(th2)[:, :d], axis=1)
        xmax = prob.x_norm_max
        bound = symbolic.evaluate(
            symbolic.lin_l2_bound(),
            X=xmax,
            eps=eps,
            n1=wn1,
            n2=wn2,
            bias=float(prob.fit_bias),
            **consts,
        )
        # Float64 error of one gradient (2-norm over d+1 entries): m̃ takes 4d + 4 operations on
        # terms of size ≤ ‖w‖(X + ε) + |b|, its error passes to ℓ' with factor ℓ''_max; ℓ'
        # itself (σ) adds γ_4, and the assembly (u = w/‖w‖: 2d + 2, products, the mean over n,
        # the subtraction) γ_(2d + n + 8), all times |a_j| ≤ X + ε + 1.
        wmax = float(
            np.max(np.concatenate([np.linalg.norm(th1, axis=1), np.linalg.norm(th2, axis=1)]))
        )
        s_m = wmax * (xmax + eps) + abs(prob.b) + wmax
        grad_err = (
            np.sqrt(d + 1)
            * (xmax + eps + 1)
            * (lo.d2_max * tolerance.gamma(4 * d + 4) * s_m + tolerance.gamma(2 * d + n + 12))
        )
        tol = np.array(
            [tolerance.ratio_error(grad_err, dt, r) for dt, r in zip(dth, R, strict=True)]
        )
        assert np.all(R <= bound + tol), (label, float(np.max(R - bound)))
        worst = float(np.max(R / bound))
        print(f"   ✓ {label}: {R.size} pairs, R ≤ bound everywhere; worst R/bound = {worst:.3f}")
        return worst

    for fit_bias in (False, True):
        prob = linear.LinearProblem(X=X, y=y, eps=eps, p=2.0, b=0.2, fit_bias=fit_bias)
        # pairs at every scale: ‖θ1‖ log-uniform in [0.01, 10], ‖θ2 − θ1‖/‖θ1‖ in [1e-4, 2]
        dirs = rng.normal(size=(2, 3000, prob.dim))
        dirs /= np.linalg.norm(dirs, axis=2, keepdims=True)
        th1 = dirs[0] * np.exp(rng.uniform(np.log(0.01), np.log(10.0), (3000, 1)))
        rel = np.exp(rng.uniform(np.log(1e-4), np.log(2.0), (3000, 1)))
        th2 = th1 + rel * np.linalg.norm(th1, axis=1, keepdims=True) * dirs[1]
        check(prob, jnp.asarray(th1), jnp.asarray(th2), f"random pairs, fit_bias={fit_bias}")

    # Near-tight pairs: on a small sphere ‖w1‖ = ‖w2‖ = ρ the turning term ε|mean ℓ'|/ρ dominates,
    # and with every margin very negative (y = +1, b = −6) |ℓ'(m̃)| = σ(−m̃) ≈ 1 = |ℓ'|_max.
    Xs = 0.1 * rng.normal(size=(n, d))
    prob = linear.LinearProblem(X=Xs, y=np.ones(n), eps=eps, p=2.0, b=-6.0)
    rho = 1e-3
    u1 = rng.normal(size=(500, d))
    u2 = u1 + 0.3 * rng.normal(size=(500, d))
    th1 = jnp.asarray(rho * u1 / np.linalg.norm(u1, axis=1, keepdims=True))
    th2 = jnp.asarray(rho * u2 / np.linalg.norm(u2, axis=1, keepdims=True))
    worst = check(prob, th1, th2, "pairs on the sphere ‖w‖ = 1e-3 with margins ≈ −6")
    # There R ≥ ε|mean ℓ'| ‖ŵ1 − ŵ2‖/‖Δw‖ − ℓ''_max(X+ε)² = ε σ(6 − O(ρ))/ρ − O(1), and the bound is
    # ε/ρ + O(1): the ratio must be within 1% of 1 (σ(6) = 0.9975; the O(1) terms are < 0.1% of
    #   ε/ρ).
    assert worst > 0.99, worst
    print("   ✓ the constant ε|ℓ'|_max/√(‖w1‖‖w2‖) is attained to within 1%: the bound is tight")

    print("PROOF OK: LIN-L2")


if __name__ == "__main__":
    if not __debug__:
        raise SystemExit(f"{__file__}: every check here is an assert; run without python -O")
    main()
