"""CLOSED-FORM (docs/theory/closed-form.md): Hölder's closed form, the optimal attack, Danskin's
gradient, the Hessian.

Statement. Let ℓ be a non-increasing margin loss, y ∈ {-1, +1}, ε ≥ 0, p ∈ [1, ∞],
1/p + 1/q = 1, w ≠ 0, m = y(w·x + b) and m̃ = m − ε‖w‖_q. Then

  (a) max_{‖δ‖_p ≤ ε} ℓ(y(w·(x + δ) + b)) = ℓ(m̃), attained at δ* = −y ε u(w), where
      u_i = sign(w_i)|w_i|^{q-1}/‖w‖_q^{q-1} (1 < q < ∞), u = sign(w) (q = 1),
      u = sign(w_k) e_k with k = argmax |w_i| (q = ∞);
  (b) where ‖·‖_q is differentiable at w: ∇_w ℓ(m̃) = ℓ'(m̃) a with a = y x − ε u(w),
      and ∂_b ℓ(m̃) = ℓ'(m̃) y (the Danskin gradient);
  (c) where ℓ is twice differentiable at m̃: ∇²_(w,b) ℓ(m̃) = ℓ''(m̃) (a, y)(a, y)ᵀ
      − ε ℓ'(m̃) [∇²‖w‖_q ⊕ 0], with ∇²‖w‖_q = ((q−1)/N)[diag((|w_i|/N)^{q−2}) − u uᵀ],
      N = ‖w‖_q.

Assumptions. ℓ ∈ {softplus, exponential, squared hinge}; (b) away from w = 0, w_i = 0
(p = ∞) and ties of the largest |w_i| (p = 1); (c) also away from m̃ = 1 (squared hinge).

Proof. (a) is Hölder's inequality plus a point that attains it; (b) and (c) are the
chain rule, once ∇‖w‖_q = u and ∇²‖w‖_q are known. SymPy confirms every identity in
d = 2 for every sign pattern of w (a1, a2 > 0 below), for p ∈ {1, 3/2, 2, 3, 6, ∞}.
The numerical check compares advlip.linear with a brute-force maximum over the ball.
"""

import math

import jax
import numpy as np
import sympy as sp

from advlip import linear, losses, symbolic, tolerance

jax.config.update("jax_enable_x64", True)  # the numerical check is in float64

PS = [1.0, 1.5, 2.0, 3.0, 6.0, math.inf]
LOSSES = ["softplus", "exponential", "squared_hinge"]


def _chain_rule_losses(p):
    """The chain rule does not depend on ℓ or p: check every loss at one p, softplus at all."""
    return LOSSES if p == 3.0 else ["softplus"]


def _name(p):
    return "∞" if math.isinf(p) else f"{p:g}"


def _sign_patterns(S, a1, a2, p):
    """Substitutions w → (±a1, ±a2); for p = 1 make |w_1| the unique largest (k = 0)."""
    first = a2 + a1 if p == 1.0 else a1  # |w_1| = a1 + a2 > a2 = |w_2|
    return [{S.w[0]: s1 * first, S.w[1]: s2 * a2} for s1 in (1, -1) for s2 in (1, -1)]


def _drop_dirac(e):
    """Drop the DiracDelta terms, which live only on the kinks where no Hessian exists."""
    return e.replace(lambda z: isinstance(z, sp.DiracDelta), lambda z: sp.S.Zero)


def main() -> None:
    S = symbolic.symbols(2)
    a1, a2 = sp.symbols("a1 a2", positive=True)

    print("Step 1. ℓ is non-increasing: ℓ'(m) ≤ 0 for every loss.")
    for name in LOSSES:
        ell = losses.get_loss(name).sympy(S.m)
        d1 = sp.diff(ell, S.m)
        if name == "squared_hinge":
            # ℓ'(m) = −2 Heaviside(1 − m) Max(0, 1 − m): a product of a negative number and two
            # non-negative factors
            assert symbolic.is_identity(d1, -2 * sp.Heaviside(1 - S.m) * sp.Max(0, 1 - S.m))
        else:
            assert d1.is_nonpositive, (name, d1)
        print(f"   ✓ {name}: ℓ'(m) = {d1}")

    print("Step 2. Reduce the attack to a linear minimisation. ℓ(y(w·(x+δ)+b)) = ℓ(m + y w·δ)")
    print("        and ℓ is non-increasing, so the max over δ is ℓ(m + min_δ y w·δ). By Hölder,")
    print("        |w·δ| ≤ ‖w‖_q ‖δ‖_p ≤ ε‖w‖_q, so min_δ y w·δ ≥ −ε‖w‖_q: the max is ≤ ℓ(m̃).")
    delta = sp.Matrix(sp.symbols("delta1 delta2", real=True))
    lhs = S.y * (sum(wi * (xi + di) for wi, xi, di in zip(S.w, S.x, delta, strict=True)) + S.b)
    rhs = S.y * (sum(wi * xi for wi, xi in zip(S.w, S.x, strict=True)) + S.b) + S.y * (
        sp.Matrix(S.w).dot(delta)
    )
    assert symbolic.is_identity(lhs, rhs)
    print("   ✓ SymPy: y(w·(x+δ)+b) − [y(w·x+b) + y w·δ] = 0")

    print("Step 3. δ* = −yεu(w) attains the bound: u·w = ‖w‖_q and ‖u‖_p = 1 (so ‖δ*‖_p = ε,")
    print("        feasible), and y w·δ* = −ε y² ‖w‖_q = −ε‖w‖_q (y² = 1).")
    for p in PS:
        N = symbolic.dual_norm_expr(S.w, p=p)
        u = symbolic.dual_direction_expr(S.w, p=p, k=0)
        for sub in _sign_patterns(S, a1, a2, p):
            uw = sum(ui * wi for ui, wi in zip(u, S.w, strict=True))
            assert symbolic.is_identity(uw.subs(sub), N.subs(sub)), (p, sub)
            assert symbolic.is_identity(symbolic.lp_norm_expr(u, p=p).subs(sub), 1), (p, sub)
            dstar = [-S.y * S.eps * ui for ui in u]
            attained = S.y * sum(wi * di for wi, di in zip(S.w, dstar, strict=True)) + S.eps * N
            for yv in (1, -1):
                assert symbolic.is_identity(attained.subs(sub).subs(S.y, yv)), (p, sub, yv)
        print(
            f"   ✓ p = {_name(p)}: u·w = ‖w‖_q, ‖u‖_p = 1, y w·δ* = −ε‖w‖_q for all sign patterns"
        )
    print("        Hence max_δ ℓ(y(w·(x+δ)+b)) = ℓ(m̃): the closed form (a).")

    print(
        "Step 4. ∇‖w‖_q = u(w) wherever ‖·‖_q is differentiable, so ∇_(w,b) m̃ = (yx − εu, y) = "
        "(a, y);"
    )
    print("        the chain rule ∇ℓ(m̃) = ℓ'(m̃)∇m̃ then gives (b), Danskin's gradient ℓ'(m̃)(a, y).")
    for p in PS:
        N = symbolic.dual_norm_expr(S.w, p=p)
        u = symbolic.dual_direction_expr(S.w, p=p, k=0)
        mt = symbolic.adversarial_margin_expr(2, p=p)
        grad_m = sp.Matrix([sp.diff(mt, v) for v in S.theta])
        a_full = sp.Matrix([S.y * xi - S.eps * ui for xi, ui in zip(S.x, u, strict=True)] + [S.y])
        for sub in _sign_patterns(S, a1, a2, p):
            for wi, ui in zip(S.w, u, strict=True):
                assert symbolic.is_identity(sp.diff(N, wi).subs(sub), ui.subs(sub)), (p, sub)
            assert symbolic.is_identity(grad_m.subs(sub), a_full.subs(sub)), (p, sub)
        for name in _chain_rule_losses(p):
            d1 = sp.diff(losses.get_loss(name).sympy(S.m), S.m).subs(S.m, mt)
            G = symbolic.gradient_expr(2, p=p, loss=name)
            assert symbolic.is_identity(G, d1 * grad_m), (p, name)
        print(
            f"   ✓ p = {_name(p)}: ∇‖w‖_q = u, ∇m̃ = (a, y); gradient_expr = ℓ'(m̃)∇m̃ for "
            f"{', '.join(_chain_rule_losses(p))}"
        )

    print("Step 5. ∇²‖w‖_q = ((q−1)/N)[diag((|w_i|/N)^{q−2}) − uuᵀ] (0 for q ∈ {1, ∞}, where u is")
    print(
        "        locally constant); m̃ is linear in b, so ∇²m̃ = −ε(∇²‖w‖_q ⊕ 0), and the chain rule"
    )
    print(
        "        ∇²ℓ(m̃) = ℓ''(m̃)∇m̃∇m̃ᵀ + ℓ'(m̃)∇²m̃ gives (c). DiracDelta terms (at the kinks) "
        "dropped."
    )
    for p in PS:
        N = symbolic.dual_norm_expr(S.w, p=p)
        mt = symbolic.adversarial_margin_expr(2, p=p)
        grad_m = sp.Matrix([sp.diff(mt, v) for v in S.theta])
        NH = symbolic.norm_hessian_expr(S.w, p=p)
        hess_n = _drop_dirac(sp.hessian(N, S.w))
        hess_m = _drop_dirac(sp.hessian(mt, S.theta))
        for sub in _sign_patterns(S, a1, a2, p):
            assert symbolic.is_identity(hess_n.subs(sub), NH.subs(sub)), (p, sub)
        assert symbolic.is_identity(hess_m, -S.eps * sp.diag(hess_n, sp.zeros(1, 1))), p
        for name in _chain_rule_losses(p):
            ell = losses.get_loss(name).sympy(S.m)
            d1 = sp.diff(ell, S.m).subs(S.m, mt)
            d2 = _drop_dirac(sp.diff(ell, S.m, 2).subs(S.m, mt))
            H = symbolic.hessian_expr(2, p=p, loss=name)
            assert symbolic.is_identity(H, d2 * grad_m * grad_m.T + d1 * hess_m), (p, name)
        print(
            f"   ✓ p = {_name(p)}: ∇²‖w‖_q matches the theory's formula; "
            f"hessian_expr = ℓ''∇m̃∇m̃ᵀ + ℓ'∇²m̃ ({', '.join(_chain_rule_losses(p))})"
        )

    print(
        "Numerical check: advlip.linear against a brute-force maximum over B_p(ε) (softplus, d = "
        "3)."
    )
    rng = np.random.default_rng(20210302)
    d, n_dirs = 3, 4000
    for p in PS:
        for _ in range(3):
            w = rng.normal(size=d)
            x = rng.normal(size=d)
            y = float(rng.choice([-1.0, 1.0]))
            b, eps = float(rng.normal()), float(rng.uniform(0.1, 1.0))
            closed = float(linear.adversarial_loss(w, x, y, eps=eps, p=p, b=b))
            dstar = np.asarray(linear.optimal_perturbation(w, y, eps=eps, p=p))
            # random points of B_p(ε) (numpy, independent of advlip): heavy-tailed directions
            # scaled onto the p-sphere, radii in [0, ε] biased towards the sphere
            dirs = rng.normal(size=(n_dirs, d)) * rng.exponential(size=(n_dirs, d)) ** 2
            dirs /= np.linalg.norm(dirs, ord=p, axis=1, keepdims=True)
            deltas = dirs * eps * rng.uniform(0.0, 1.0, size=(n_dirs, 1)) ** 0.25
            values = np.logaddexp(
                0.0, -y * ((x + deltas) @ w + b)
            )  # softplus ℓ(m) = log(1 + e^{-m})
            at_star = float(np.logaddexp(0.0, -y * ((x + dstar) @ w + b)))
            # Error of ℓ(m) for m a sum of ≤ 6d + 12 operations (products, sums, the q-norm) on
            # terms summing to ≤ s_terms: |ℓ'| ≤ 1 times γ_k s_terms, plus the rounding of
            # softplus, γ_4 (|ℓ| + 1); doubled for the two sides compared.
            s_terms = float(np.abs(w) @ (np.abs(x) + eps) + abs(b) + eps * np.sum(np.abs(w)))
            tol = 2 * (tolerance.gamma(6 * d + 12) * s_terms + tolerance.gamma(4) * (closed + 1))
            assert values.max() <= closed + tol, (p, values.max() - closed, tol)
            assert abs(at_star - closed) <= tol, (p, at_star, closed, tol)
            # ‖δ*‖_p = ε: a p-norm of d entries, relative error γ_(6d+4) (tests/test_symbolic.py)
            dnorm = float(np.linalg.norm(dstar, ord=p))
            assert abs(dnorm - eps) <= tolerance.gamma(6 * d + 4) * eps, (p, dnorm, eps)
        print(
            f"   ✓ p = {_name(p)}: {n_dirs} random δ ∈ B_p(ε) never beat ℓ(m̃); δ* attains it; "
            "‖δ*‖_p = ε"
        )

    print("PROOF OK: CLOSED-FORM")


if __name__ == "__main__":
    if not __debug__:
        raise SystemExit(f"{__file__}: every check here is an assert; run without python -O")
    main()
