"""GEN-DANSKIN (case G0, docs/theory/gen-danskin.md): the gradient of the adversarial loss is
the gradient of ℓ at the attacked input; the motion of the attack does not enter.

Statement. Let ℓ(z, θ) be C¹, B = B_p(ε) compact, and L(θ) = max_{δ∈B} ℓ(x + δ, θ). If the
maximiser δ*(θ0) is unique, L is differentiable at θ0 with

    ∇L(θ0) = ∇_θ ℓ(x + δ*(θ0), θ0)                                    (Danskin),

for a mean over examples term by term. Where δ* is itself differentiable the chain rule gives
∇L = ∇_θℓ + Dδ*ᵀ ∇_xℓ, and the envelope term Dδ*ᵀ∇_xℓ vanishes in each KKT case:
  (a) interior optimum (case G1): ∇_xℓ = 0;
  (b) on a smooth boundary {g(δ) = 0}, e.g. the L2 sphere (case G2): ∇_xℓ = μ∇g(δ*), and
      g(δ*(θ)) ≡ 0 gives ∇g(δ*)ᵀDδ* = 0; on the sphere ∇_xℓ ∥ δ* and δ*ᵀDδ* = 0;
  (c) at an L∞ vertex (case G3): δ* is locally constant, Dδ* = 0.
The gradient at the clean input, ∇_θℓ(x, θ), is a different vector: for the linear model with
softplus its bias component differs for every ε‖w‖_q > 0.

Assumptions. Uniqueness matters: at w = 0 under L2 every δ in the ball is a maximiser and L
has only directional derivatives (LIN-L2-ZERO, docs/theory/lin-l2-zero.md). The linear model
below is ℓ = ψ(y(w·z + b)), y ∈ {−1, +1}, with the closed form of proofs/closed_form.py
(δ* = −yεu(w), L = ψ(m − ε‖w‖_q)); steps 4–5 hold away from its kinks (w ≠ 0; w_i ≠ 0 for
p = ∞).

Proof. SymPy differentiates the closed forms and compares with ∇_θℓ frozen at x + δ*; the
numerical check differentiates L (the closed form, whose value is the maximum at every θ) by
autodiff in float64 and compares with ∇_θℓ at x + δ* with δ* held fixed.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from advlip import linear, losses, symbolic, tolerance

jax.config.update("jax_enable_x64", True)  # the numerical check is in float64

#: ``--plant clean``: claim the clean-input gradient ∇_θℓ(x, θ) is ∇L (tests/test_proofs.py
#: asserts that the script then fails).
PLANTS = ("clean",)


def main(planted: str | None = None) -> None:
    t1, t2 = sp.symbols("theta1 theta2", real=True)
    th = sp.Matrix([t1, t2])
    z = sp.Matrix(sp.symbols("z1 z2", real=True))
    x = sp.Matrix(sp.symbols("x1 x2", real=True))

    print("Step 1. Chain rule: d/dθ ℓ(x + δ*(θ), θ) = ∇_θℓ + Dδ*ᵀ ∇_xℓ, for any ℓ and δ*(θ).")
    dstar = sp.Matrix([sp.Function("d1")(t1, t2), sp.Function("d2")(t1, t2)])
    ell = sp.Function("ell")(x[0] + dstar[0], x[1] + dstar[1], t1, t2)  # ℓ(x + δ*(θ), θ)
    total = sp.Matrix([sp.diff(ell, t) for t in th])
    partial = [ell.fdiff(i) for i in range(1, 5)]  # ∂ℓ/∂(z1, z2, θ1, θ2) at (x + δ*, θ)
    grad_x, grad_t = sp.Matrix(partial[:2]), sp.Matrix(partial[2:])
    envelope = dstar.jacobian(th).T * grad_x
    assert symbolic.is_identity(total, grad_t + envelope)
    print("   ✓ SymPy: the total derivative = ∇_θℓ(x + δ*) + Dδ*ᵀ∇_xℓ(x + δ*), ℓ and δ* arbitrary")
    print("     Danskin's claim is that the envelope term Dδ*ᵀ∇_xℓ vanishes at the maximiser.")

    print("Step 2 (a). Interior: ℓ = c(θ) + b(θ)ᵀz − ½zᵀKz, K ≻ 0 constant, z* = K⁻¹b(θ).")
    b = sp.Matrix([sp.Function("b1")(t1, t2), sp.Function("b2")(t1, t2)])
    c = sp.Function("c")(t1, t2)
    k11, k12, k22 = sp.symbols("k11 k12 k22", real=True)
    K = sp.Matrix([[k11, k12], [k12, k22]])
    ell_q = c + (b.T * z)[0] - (z.T * K * z)[0] / 2
    zstar = K.adjugate() * b / K.det()
    at_q = {z[0]: zstar[0], z[1]: zstar[1]}
    gx = sp.Matrix([sp.diff(ell_q, v) for v in z]).subs(at_q)
    assert symbolic.is_identity(gx, sp.zeros(2, 1))
    L_q = ell_q.subs(at_q)
    dL = sp.Matrix([sp.diff(L_q, t) for t in th])
    dan = sp.Matrix([sp.diff(ell_q, t) for t in th]).subs(at_q)
    assert symbolic.is_identity(dL, dan)
    print("   ✓ SymPy: ∇_xℓ(z*) = 0, so ∇L = ∇_θℓ(z*, θ) although z* moves with θ")

    print("Step 3 (b). A smooth boundary {g = 0}: KKT gives ∇_xℓ = μ∇g(δ*), and g(δ*(θ)) ≡ 0.")
    G = sp.Function("g")(dstar[0], dstar[1])  # g(δ*(θ)), any g
    grad_g = sp.Matrix([G.fdiff(i) for i in (1, 2)])
    mu_s = sp.Symbol("mu", nonnegative=True)
    dG = sp.Matrix([sp.diff(G, t) for t in th])
    assert symbolic.is_identity(dstar.jacobian(th).T * (mu_s * grad_g), mu_s * dG)
    print(
        "   ✓ SymPy: Dδ*ᵀ(μ∇g) = μ ∇_θ[g(δ*(θ))], which is 0 because g(δ*(θ)) ≡ 0 on the boundary"
    )

    print("Step 4 (b). L2 sphere, linear model ℓ = ψ(M), M = y(w·z + b), d = 3: δ* = −yεŵ.")
    print("        ∇_θψ(M) = ψ'(M)∇_θM for every ψ, so Danskin's gradient ψ'(M*)∇_θM|_δ* equals")
    print("        ∇ψ(m̃) = ψ'(m̃)∇m̃ once M(θ, δ*) = m̃ and ∇_θM|_δ* = ∇m̃ (δ* frozen on the")
    print("        left).")
    eps = sp.Symbol("epsilon", positive=True)
    w = sp.Matrix(sp.symbols("w1:4", real=True))
    xs = sp.Matrix(sp.symbols("x1:4", real=True))
    dl = sp.Matrix(sp.symbols("delta1:4", real=True))
    bb, y = sp.symbols("b y", real=True)
    theta = sp.Matrix([*w, bb])
    nw = sp.sqrt((w.T * w)[0])
    M = y * ((w.T * (xs + dl))[0] + bb)  # the margin at the perturbed input x + δ
    mt2 = y * ((w.T * xs)[0] + bb) - eps * nw  # the closed form's margin m̃ (p = 2)
    ds2 = -y * eps * w / nw
    for yv in (1, -1):
        at_s = {**dict(zip(dl, ds2.subs(y, yv), strict=True)), y: yv}
        assert symbolic.is_identity(M.subs(at_s), mt2.subs(y, yv)), yv
        frozen = sp.Matrix([M.diff(v) for v in theta]).subs(at_s)
        assert symbolic.is_identity(frozen, sp.Matrix([mt2.subs(y, yv).diff(v) for v in theta]))
        # ∇_xℓ = ψ'(M)∇_zM = ψ'(m̃) y w, and y w = −(‖w‖/ε) δ*: parallel to δ*
        gradz = sp.Matrix([M.diff(v) for v in dl]).subs(at_s)
        assert symbolic.is_identity(gradz, -(nw / eps) * ds2.subs(y, yv)), yv
    Dd = ds2.jacobian(w)
    assert symbolic.is_identity(ds2.T * Dd, sp.zeros(1, 3))
    assert not symbolic.is_identity(Dd, sp.zeros(3, 3))
    print("   ✓ SymPy: M(θ, δ*) = m − ε‖w‖ and ∇_θM with δ* frozen = ∇m̃, for y = ±1")
    print("   ✓ SymPy: ∇_xℓ = μδ* with μ = −ψ'(m̃)‖w‖/ε (≥ 0 for decreasing ψ), and δ*ᵀDδ* = 0:")
    print("     the envelope term Dδ*ᵀ∇_xℓ = μ Dδ*ᵀδ* vanishes although Dδ* = −yε(I − ŵŵᵀ)/‖w‖ ≠ 0")

    print("Step 5 (c). L∞ vertex, away from w_i = 0: δ* = −yε sign(w) is locally constant.")
    s = (1, -1, 1)  # one orthant; every orthant is the same computation with other signs
    mtinf = y * ((w.T * xs)[0] + bb) - eps * sum(si * wi for si, wi in zip(s, w, strict=True))
    dsinf = sp.Matrix([-y * eps * si for si in s])
    assert dsinf.jacobian(w) == sp.zeros(3, 3)
    for yv in (1, -1):
        at_v = {**dict(zip(dl, dsinf.subs(y, yv), strict=True)), y: yv}
        assert symbolic.is_identity(M.subs(at_v), mtinf.subs(y, yv)), yv
        frozen = sp.Matrix([M.diff(v) for v in theta]).subs(at_v)
        assert symbolic.is_identity(frozen, sp.Matrix([mtinf.subs(y, yv).diff(v) for v in theta]))
    print("   ✓ SymPy: Dδ* = 0 on the orthant, M(θ, δ*) = m − ε‖w‖_1 and ∇_θM|_δ* = ∇m̃, y = ±1")

    print("Step 6. The clean-input gradient differs: its bias component is ψ'(m)y, Danskin's")
    print("        ψ'(m̃)y with m̃ = m − ε‖w‖_q < m; softplus has ψ'' > 0, so ψ'(m̃) < ψ'(m).")
    m = sp.Symbol("m", real=True)
    sp_loss = losses.get_loss("softplus").sympy(m)
    d2 = sp.diff(sp_loss, m, 2)
    pos = sp.exp(-m) / (1 + sp.exp(-m)) ** 2  # a positive quotient: exp > 0
    assert symbolic.is_identity(d2, pos) and pos.is_positive, d2
    print(
        "   ✓ SymPy: softplus ψ''(m) = e^(−m)/(1 + e^(−m))² > 0: the two differ whenever ε‖w‖_q > 0"
    )

    print("Numerical check (float64): linear model, softplus, d = 3, n = 8, p ∈ {2, ∞}.")
    rng = np.random.default_rng(2103)
    d, n, e = 3, 8, 0.3
    X = jnp.asarray(rng.standard_normal((n, d)))
    Y = jnp.asarray(rng.choice([-1.0, 1.0], n))
    sp_fn = losses.get_loss("softplus").value
    for p, q in ((2.0, 2.0), (np.inf, 1.0)):
        th0 = jnp.asarray(np.r_[rng.standard_normal(d), 0.3])  # no w_i = 0: no kink

        def closed(theta, q=q):  # L(θ): the maximum, at every θ (proofs/closed_form.py)
            wv, bv = theta[:d], theta[d]
            return jnp.mean(sp_fn(Y * (X @ wv + bv) - e * jnp.linalg.norm(wv, ord=q)))

        def at_input(theta, Z):  # mean ℓ(y(w·z + b)) at inputs Z held fixed
            return jnp.mean(sp_fn(Y * (Z @ theta[:d] + theta[d])))

        w0 = th0[:d]
        u = w0 / jnp.linalg.norm(w0) if p == 2.0 else jnp.sign(w0)
        Zstar = X - e * Y[:, None] * u[None, :]  # x + δ*, δ* = −yεu(w), frozen
        g_total = np.asarray(jax.grad(closed)(th0))
        g_danskin = np.asarray(jax.grad(at_input)(th0, Zstar))
        g_clean = np.asarray(jax.grad(at_input)(th0, X))
        gw, gb = linear.adversarial_grad(w0, X, Y, eps=e, p=p, b=th0[d])
        g_lib = np.r_[np.asarray(gw), float(gb)]
        claimed = g_clean if planted == "clean" else g_danskin
        # Float64 error of one gradient entry (as in proofs/lin_l2.py): the margin takes
        # 4d + 4 operations on terms of size ≤ s_m, its error passes to ψ' with factor
        # ψ''_max = 1/4; ψ' (σ) adds γ_4, the assembly (u, products, the mean over n) γ_(2d+n+8),
        # all times |a_j| ≤ ‖x‖ + ε‖u‖ + 1. Two gradients are compared: twice that.
        xmax = float(np.max(np.linalg.norm(np.asarray(X), axis=1)))
        s_m = float(np.linalg.norm(w0)) * (xmax + e * np.sqrt(d)) + abs(float(th0[d]))
        a_max = xmax + e * np.sqrt(d) + 1.0
        e_g = a_max * (0.25 * tolerance.gamma(4 * d + 4) * s_m + tolerance.gamma(2 * d + n + 12))
        tol = 2.0 * e_g
        err = np.abs(claimed - g_total).max()
        assert err <= tol, (p, err, tol)
        assert np.abs(g_lib - g_total).max() <= tol, (p, np.abs(g_lib - g_total).max(), tol)
        off = np.abs(g_clean - g_total).max()
        assert off > 1e6 * tol, (p, off, tol)
        name = "2" if p == 2.0 else "∞"
        print(
            f"   ✓ p = {name}: ∇_θℓ(x + δ*) = ∇L (autodiff of the maximum) to {err:.1e} "
            f"(bound {tol:.1e});"
        )
        print(
            "     advlip.linear.adversarial_grad agrees; the clean-input gradient is off by "
            f"{off:.3f}"
        )

    print("Numerical check (float64): the interior case, K = [[2, ½], [½, 3]], b = (sin θ1 + θ2,")
    print("        θ1θ2), c = θ2² + cos θ1, at θ = (0.4, −0.7).")
    Kn = jnp.array([[2.0, 0.5], [0.5, 3.0]])

    def parts(theta):
        bv = jnp.array([jnp.sin(theta[0]) + theta[1], theta[0] * theta[1]])
        return bv, theta[1] ** 2 + jnp.cos(theta[0])

    def ell_n(zv, theta):
        bv, cv = parts(theta)
        return cv + bv @ zv - 0.5 * zv @ Kn @ zv

    def L_n(theta):  # the maximum over z (interior: no constraint active), z* = K⁻¹b
        return ell_n(jnp.linalg.solve(Kn, parts(theta)[0]), theta)

    t0 = jnp.array([0.4, -0.7])
    zs = jnp.linalg.solve(Kn, parts(t0)[0])
    g_total = np.asarray(jax.grad(L_n)(t0))
    g_dan = np.asarray(jax.grad(ell_n, argnums=1)(zs, t0))
    g_clean = np.asarray(jax.grad(ell_n, argnums=1)(jnp.zeros(2), t0))
    claimed = g_clean if planted == "clean" else g_dan
    # Both routes sum ∇c + (∇b)ᵀz* (≤ 8 operations per entry, γ_8 of the terms' absolute sum);
    # autodiff through the solve adds (Dz*)ᵀ(b − Kz*) with Dz* = K⁻¹∇b and the solve's residual
    # |b − Kz*| ≤ γ_8(|b| + |K||z*|) (2×2, backward stable): twice their sum.
    Jb = np.asarray(jax.jacobian(lambda t: parts(t)[0])(t0))
    gc = np.asarray(jax.grad(lambda t: parts(t)[1])(t0))
    zs_n, Kn_n, b_n = np.asarray(zs), np.asarray(Kn), np.asarray(parts(t0)[0])
    terms = np.abs(gc) + np.abs(Jb).T @ np.abs(zs_n)
    resid = tolerance.gamma(8) * (np.abs(b_n) + np.abs(Kn_n) @ np.abs(zs_n))
    through = np.abs(np.linalg.solve(Kn_n, Jb)).T @ resid
    tol = 2.0 * (tolerance.gamma(8) * terms + through)
    err = np.abs(claimed - g_total)
    off = np.abs(g_clean - g_total).max()
    assert np.all(err <= tol), (err, tol)
    assert off > 1e6 * tol.max()
    print(
        f"   ✓ ∇_θℓ(z*, θ) = ∇L to {err.max():.1e} (bound {tol.max():.1e}); "
        f"at z = 0 off by {off:.3f}"
    )
    print("   (the tanh MLP against re-solved differences: advlip verify --only GEN-DANSKIN)")
    print("PROOF OK: GEN-DANSKIN")


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
