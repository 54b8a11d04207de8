"""advlip.symbolic: the SymPy closed form against advlip.linear, and the bound expressions.

The SymPy route (``sympy.diff`` of the closed form, lambdified to JAX) and
:mod:`advlip.linear` (hand-written Danskin gradient and Hessian) share nothing but
the loss definitions, so agreement at random points checks both. Tolerances are
float64 error bounds, ``tolerance.gamma(k) * Σ|terms|`` with ``k`` counted below.
"""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from advlip import linear, losses, norms, symbolic, tolerance

D = 2
PS = [1.0, 1.5, 2.0, 3.0, math.inf]
LOSSES = ["softplus", "exponential", "squared_hinge"]
SYM = symbolic.symbols(D)


def _pid(p):
    return "inf" if math.isinf(p) else f"{p:g}"


@pytest.fixture(scope="module")
def compiled():
    """Value, gradient and Hessian of every (p, loss), lambdified once (eager JAX calls)."""
    out = {}
    for p in PS:
        for loss in LOSSES:
            out[p, loss] = tuple(
                symbolic.lambdify_jax(e, SYM)
                for e in (
                    symbolic.adversarial_loss_expr(D, p=p, loss=loss),
                    symbolic.gradient_expr(D, p=p, loss=loss),
                    symbolic.hessian_expr(D, p=p, loss=loss),
                )
            )
    return out


def _dual_norm_np(w, p):
    """‖w‖_q in numpy, from the definition (independent of advlip.norms)."""
    aw = np.abs(w)
    if p == 1.0:
        return aw.max()
    if math.isinf(p):
        return aw.sum()
    q = p / (p - 1.0)
    return (aw**q).sum() ** (1.0 / q)


def _random_point(rng, p, loss):
    """A point where the loss is twice differentiable, with margin of safety.

    |w_i| in [0.3, 1.5] (far from the p=∞ kinks w_i = 0), the two largest |w_i| at least
    0.1 apart (no p=1 tie), and for the squared hinge |1 - m̃| >= 0.05 (no kink of ℓ).
    """
    while True:
        w = rng.uniform(0.3, 1.5, D) * rng.choice([-1.0, 1.0], D)
        aw = np.sort(np.abs(w))
        if aw[-1] - aw[-2] < 0.1:
            continue
        x = rng.normal(size=D)
        y = float(rng.choice([-1.0, 1.0]))
        b = float(rng.normal(scale=0.5))
        eps = float(rng.uniform(0.05, 0.5))
        mt = y * (w @ x + b) - eps * _dual_norm_np(w, p)
        if loss == "squared_hinge" and abs(1.0 - mt) < 0.05:
            continue
        return w, x, y, b, eps


def _tolerances(w, x, y, b, eps, p, loss):
    """Absolute float64 error bounds of value, gradient (d+1,) and Hessian (d+1, d+1).

    First-order error propagation: each implementation computes m̃ from the terms
    y·w_i·x_i, y·b, ε‖w‖_q (sum of magnitudes S_m), then ℓ^{(k)}(m̃), whose error is
    |ℓ^{(k+1)}|·(error of m̃) plus the rounding of its own evaluation, bounded by
    γ·(|ℓ^{(k)}| + 1) (the 1: softplus evaluates 1 + e^{-m} inside its log). The
    gradient multiplies by a = (y x - ε u, y) (magnitudes A), the Hessian by a aᵀ and
    adds ε ℓ' ∇²‖w‖_q (magnitudes |(q-1)/N|·(diag + |u uᵀ|)). |ℓ'''| ≤ |ℓ''| for all three
    losses (softplus: ℓ''' = ℓ''·(σ(-m) - σ(m)); exponential: ℓ''' = -ℓ''; squared hinge: 0).

    Operation counts (d = D): the q-norm costs per entry an abs, a scaling and a power
    (whose rounding is amplified by at most q ≤ 3 from its input: 3 more), plus d - 1
    sums and the root with its scaling: k_N = d·6 + 4. The margin adds d products, d
    sums, the bias, the label product, ε·N and the subtraction: k_m = 2d + 4 + k_N.
    ℓ, ℓ', ℓ'' take at most 4, 6, 8 operations; assembling a gradient entry (u again:
    k_N) 2 more, a Hessian entry (u twice, the norm Hessian) 4 more. Both routes err,
    so each count is doubled.
    """
    lo = losses.get_loss(loss)
    q = norms.dual_exponent(p)
    n = _dual_norm_np(w, p)
    mt = y * (w @ x + b) - eps * n
    l0, l1, l2 = (abs(float(f(mt))) for f in (lo.value, lo.d1, lo.d2))
    l3 = l2
    s_m = float(np.sum(np.abs(w * x)) + abs(b) + eps * n)
    u = np.asarray(norms.dual_direction(jnp.asarray(w), q=q))
    A = np.concatenate([np.abs(x) + eps * np.abs(u), [1.0]])
    if q in (1.0, math.inf):
        nh = np.zeros((D, D))
    else:
        nh = (q - 1.0) / n * (np.diag((np.abs(w) / n) ** (q - 2.0)) + np.abs(np.outer(u, u)))
    nh_full = np.zeros((D + 1, D + 1))
    nh_full[:D, :D] = nh

    k_n = 6 * D + 4
    k_m = 2 * D + 4 + k_n
    tol_v = tolerance.gamma(2 * (k_m + 4)) * (l1 * s_m + l0 + 1.0)
    tol_g = tolerance.gamma(2 * (k_m + k_n + 6 + 2)) * (l2 * s_m + l1 + 1.0) * A
    tol_h = tolerance.gamma(2 * (k_m + 2 * k_n + 8 + 4)) * (
        (l3 * s_m + l2 + 1.0) * np.outer(A, A) + eps * (l2 * s_m + l1 + 1.0) * nh_full
    )
    return tol_v, tol_g, tol_h


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("p", PS, ids=_pid)
def test_lambdified_closed_form_matches_linear(compiled, p, loss):
    f_val, f_grad, f_hess = compiled[p, loss]
    rng = np.random.default_rng(1000 + PS.index(p) * 10 + LOSSES.index(loss))
    for _ in range(3):
        w, x, y, b, eps = _random_point(rng, p, loss)
        tol_v, tol_g, tol_h = _tolerances(w, x, y, b, eps, p, loss)

        v_sym = float(f_val(w, x, y, b, eps))
        v_lin = float(linear.adversarial_loss(w, x, y, eps=eps, p=p, b=b, loss=loss))
        assert abs(v_sym - v_lin) <= tol_v, (v_sym, v_lin, tol_v)

        g_sym = np.asarray(f_grad(w, x, y, b, eps))
        gw, gb = linear.adversarial_grad(w, x, y, eps=eps, p=p, b=b, loss=loss)
        g_lin = np.concatenate([np.asarray(gw), [float(gb)]])
        assert g_sym.shape == (D + 1,)
        assert np.all(np.abs(g_sym - g_lin) <= tol_g), (g_sym, g_lin, tol_g)

        h_sym = np.asarray(f_hess(w, x, y, b, eps))
        h_lin = np.asarray(linear.adversarial_hessian(w, x, y, eps=eps, p=p, b=b, loss=loss))
        assert h_sym.shape == (D + 1, D + 1)
        assert np.all(np.abs(h_sym - h_lin) <= tol_h), (h_sym - h_lin, tol_h)


def test_lambdified_works_under_jit_and_vmap(compiled):
    """jit gives the eager numbers; vmap over (x, y) gives per-example values whose mean is
    the dataset loss/gradient of advlip.linear (a mean of n terms: k grows by n)."""
    p, loss = 3.0, "softplus"
    f_val, f_grad, _ = compiled[p, loss]
    rng = np.random.default_rng(7)
    w, _, _, b, eps = _random_point(rng, p, loss)
    X = rng.normal(size=(5, D))
    y = rng.choice([-1.0, 1.0], 5)

    v_eager = f_val(w, X[0], y[0], b, eps)
    v_jit = jax.jit(f_val)(w, X[0], y[0], b, eps)
    tol0 = _tolerances(w, X[0], y[0], b, eps, p, loss)[0]
    assert abs(float(v_jit) - float(v_eager)) <= tol0

    batched_val = jax.jit(jax.vmap(f_val, in_axes=(None, 0, 0, None, None)))
    batched_grad = jax.jit(jax.vmap(f_grad, in_axes=(None, 0, 0, None, None)))
    vals = np.asarray(batched_val(w, X, y, b, eps))
    grads = np.asarray(batched_grad(w, X, y, b, eps))
    assert vals.shape == (5,) and grads.shape == (5, D + 1)

    tols = [_tolerances(w, X[i], y[i], b, eps, p, loss) for i in range(5)]
    # the mean of 5 values adds 5 operations on terms of the same size: γ_5 Σ|v_i|
    tol_mean = sum(t[0] for t in tols) + tolerance.gamma(5) * np.sum(np.abs(vals))
    v_lin = float(linear.adversarial_loss(w, X, y, eps=eps, p=p, b=b, loss=loss))
    assert abs(vals.mean() - v_lin) <= tol_mean

    gw, gb = linear.adversarial_grad(w, X, y, eps=eps, p=p, b=b, loss=loss)
    g_lin = np.concatenate([np.asarray(gw), [float(gb)]])
    tol_g = sum(t[1] for t in tols) + tolerance.gamma(5) * np.sum(np.abs(grads), axis=0)
    assert np.all(np.abs(grads.mean(axis=0) - g_lin) <= tol_g)


def test_closed_form_structure():
    """The expressions are built from the pieces the docstring names."""
    s = symbolic.symbols(2)
    assert s.theta == (*s.w, s.b)
    assert [str(v) for v in s.w] == ["w1", "w2"] and [str(v) for v in s.x] == ["x1", "x2"]
    assert s.eps.is_positive
    margin = symbolic.adversarial_margin_expr(2, p=2)
    expected = s.y * (s.w[0] * s.x[0] + s.w[1] * s.x[1] + s.b) - s.eps * sp.sqrt(
        s.w[0] ** 2 + s.w[1] ** 2
    )
    assert sp.simplify(margin - expected) == 0
    assert symbolic.dual_norm_expr(s.w, p=1) == sp.Max(sp.Abs(s.w[0]), sp.Abs(s.w[1]))
    assert symbolic.dual_norm_expr(s.w, p=math.inf) == sp.Abs(s.w[0]) + sp.Abs(s.w[1])
    n3 = symbolic.dual_norm_expr(s.w, p=1.5)  # q = 3 exactly
    assert n3 == (sp.Abs(s.w[0]) ** 3 + sp.Abs(s.w[1]) ** 3) ** sp.Rational(1, 3)
    ell = symbolic.adversarial_loss_expr(2, p=2, loss="exponential")
    assert sp.simplify(ell - sp.exp(-margin)) == 0
    assert symbolic.gradient_expr(2, p=2).shape == (3, 1)
    assert symbolic.hessian_expr(2, p=2).shape == (3, 3)
    assert not symbolic.hessian_expr(2, p=1).has(sp.DiracDelta)


@pytest.mark.parametrize("p", [1.0, 1.25, 1.5, 2.0, 3.0, 6.0, math.inf], ids=_pid)
def test_exact_dual_exponent(p):
    q = symbolic.exact_dual_exponent(p)
    expected = norms.dual_exponent(p)
    if math.isinf(expected):
        assert q == sp.oo
    else:
        assert q.is_Rational
        # q is exact; norms.dual_exponent divides once: γ_2 relative
        assert abs(float(q) - expected) <= tolerance.gamma(2) * expected


@pytest.mark.parametrize("p", [1.5, 2.0, 3.0, math.inf, 1.0], ids=_pid)
def test_dual_direction_and_norm_hessian_exprs_match_norms(p):
    s = symbolic.symbols(3)
    w = np.array([0.9, -0.4, 0.6])  # largest |w_i| unique, at index 0
    q = norms.dual_exponent(p)
    sub = dict(zip(s.w, w.tolist(), strict=True))
    n_sym = float(symbolic.dual_norm_expr(s.w, p=p).subs(sub))
    n_ref = float(norms.lp_norm(jnp.asarray(w), q))
    # a q-norm of 3 entries: k_N = 6·3 + 4 operations (see _tolerances), on terms ≤ N
    assert abs(n_sym - n_ref) <= tolerance.gamma(2 * 22) * n_ref
    u_sym = np.array([float(e.subs(sub)) for e in symbolic.dual_direction_expr(s.w, p=p, k=0)])
    u_ref = np.asarray(norms.dual_direction(jnp.asarray(w), q=q))
    assert np.all(np.abs(u_sym - u_ref) <= tolerance.gamma(2 * 30) * (np.abs(u_ref) + 1.0))
    h_sym = np.array(symbolic.norm_hessian_expr(s.w, p=p).subs(sub).evalf(), dtype=float)
    h_ref = np.asarray(norms.norm_hessian(jnp.asarray(w), q=q))
    assert np.all(np.abs(h_sym - h_ref) <= tolerance.gamma(2 * 40) * (np.abs(h_ref) + 1.0))


def test_is_identity():
    x, y = sp.symbols("x y", real=True)
    assert symbolic.is_identity((x + y) ** 2, x**2 + 2 * x * y + y**2)  # by expand
    assert symbolic.is_identity(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1)  # needs simplify
    assert symbolic.is_identity(sp.Matrix([x, 2 * x]), sp.Matrix([x, x + x]))
    assert not symbolic.is_identity(x, x + 1)
    assert not symbolic.is_identity(sp.Matrix([x, x]), sp.Matrix([x, y]))


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0, math.inf], ids=_pid)
def test_lp_norm_expr_matches_numpy(p):
    s = symbolic.symbols(3)
    v = np.array([0.3, -1.2, 0.7])
    got = float(symbolic.lp_norm_expr(s.w, p=p).subs(dict(zip(s.w, v.tolist(), strict=True))))
    ref = float(np.linalg.norm(v, ord=p))
    # a p-norm of 3 entries: ≤ 6·3 + 4 operations per side (see _tolerances)
    assert abs(got - ref) <= tolerance.gamma(2 * 22) * ref
    # ‖·‖_p of the dual exponent is the dual norm
    q = norms.dual_exponent(p)
    dual = symbolic.dual_norm_expr(s.w, p=p)
    assert symbolic.is_identity(dual, symbolic.lp_norm_expr(s.w, p=q))


# ----------------------------------------------------------------------------- bounds


def _close(a, b, k, *terms):
    """|a - b| ≤ γ_k Σ|terms| (both sides computed in float64 from the same formula)."""
    return abs(a - b) <= tolerance.gamma(k) * sum(abs(t) for t in terms)


def test_lin_l2_bound_values():
    vals = dict(X=2.0, eps=0.1, n1=1.0, n2=4.0, L2max=0.25, L1max=1.0, bias=1.0)
    got = symbolic.evaluate(symbolic.lin_l2_bound(), **vals)
    t1 = 0.25 * ((2.0 + 0.1) ** 2 + 1.0)
    t2 = 0.1 * 1.0 / math.sqrt(1.0 * 4.0)
    assert t1 + t2 == pytest.approx(1.4025, abs=1e-15)  # the hand value: 1.3525 + 0.05
    # ~8 operations per side, two sides
    assert _close(got, t1 + t2, 16, t1, t2)
    beta = symbolic.evaluate(
        symbolic.lin_l2_beta(), X=2.0, eps=0.1, r=2.0, L2max=0.25, L1max=1.0, bias=0.0
    )
    b1, b2 = 0.25 * 2.1**2, 0.1 / 2.0
    assert _close(beta, b1 + b2, 16, b1, b2)


def test_lin_l2_bound_vectorised():
    n1 = np.array([0.5, 1.0, 3.0])
    got = symbolic.evaluate(
        symbolic.lin_l2_bound(), X=1.0, eps=0.5, n1=n1, n2=2.0, L2max=0.25, L1max=1.0, bias=0.0
    )
    hand = 0.25 * 1.5**2 + 0.5 / np.sqrt(n1 * 2.0)
    assert got.shape == (3,)
    assert np.all(
        np.abs(got - hand) <= tolerance.gamma(16) * (0.25 * 1.5**2 + 0.5 / np.sqrt(n1 * 2.0))
    )


def test_lin_linf_bound_values():
    vals = dict(X=1.5, eps=0.2, d=4, L2max=2.0, L1max=3.0, bias=0.0, dtheta=0.7)
    got = symbolic.evaluate(symbolic.lin_linf_bound(), **vals)
    t1 = 2.0 * (1.5 + 0.2 * 2.0) ** 2 * 0.7  # √4 = 2
    t2 = 2 * 0.2 * 2.0 * 3.0
    assert _close(got, t1 + t2, 20, t1, t2)


@pytest.mark.parametrize(
    "p, radius",
    [(1.0, 1.0), (2.0, 1.0), (1.5, 1.0), (4.0, 9.0**0.25), (math.inf, 3.0)],
    ids=["p1", "p2", "p1.5", "p4", "pinf"],
)
def test_liu_bound_values(p, radius):
    """d = 9: the L2 radius of B_p(1) is 9^max(0, 1/2 - 1/p): 1, 1, 1, 9^(1/4), 3."""
    vals = dict(Ltt=0.5, Ltx=1.25, dtheta=0.3, eps=0.1, d=9, p=p)
    got = symbolic.evaluate(symbolic.liu_bound(), **vals)
    t1, t2 = 0.5 * 0.3, 1.25 * 2 * 0.1 * radius
    assert _close(got, t1 + t2, 20, t1, t2)
    diam = symbolic.evaluate(symbolic.l2_diameter(), eps=0.1, d=9, p=p)
    assert _close(diam, 2 * 0.1 * norms.l2_radius(9, p), 20, diam)


def test_witness_expressions():
    B = symbolic.bound_symbols()
    got = symbolic.evaluate(symbolic.witness_ratio_zero(), eps=0.3, mean_l1=-0.5, t=1e-3)
    assert _close(got, 0.3 * 0.5 / 1e-3, 6, got)
    for f in (symbolic.witness_ratio_linf, symbolic.witness_ratio_l1):
        assert f() == symbolic.witness_ratio_zero()
    lp = symbolic.witness_ratio_lp()
    # at q = 1 (p = ∞) the Hölder witness is the jump witness
    assert sp.simplify(lp.subs(B.q, 1) - symbolic.witness_ratio_linf()) == 0
    # its log-slope in t is q - 2 exactly
    assert sp.simplify(B.t * sp.diff(sp.log(lp), B.t) - (B.q - 2)) == 0
    got = symbolic.evaluate(lp, eps=1.0, mean_l1=0.5, t=0.01, q=1.5, N=4.0)
    hand = 0.5 * 0.01**-0.5 / 4.0**0.5
    assert _close(got, hand, 12, hand)
    rem = symbolic.evaluate(
        symbolic.witness_remainder_bound(), L2max=0.25, X=1.0, eps=0.5, d=4, p=math.inf
    )
    hand = 0.25 * (1.0 + 0.5 * 2.0) ** 2
    assert _close(rem, hand, 12, hand)


@pytest.mark.parametrize(
    "p, expected",
    [
        (2.0, sp.Integer(0)),
        (1.5, sp.Integer(0)),
        (3.0, sp.Rational(-1, 2)),
        (4.0, sp.Rational(-2, 3)),
        (6.0, sp.Rational(-4, 5)),
        (math.inf, sp.Integer(-1)),
        (1.0, sp.Integer(-1)),
    ],
    ids=lambda v: _pid(v) if isinstance(v, float) else str(v),
)
def test_expected_exponent(p, expected):
    got = symbolic.expected_exponent(p)
    assert got == expected  # exact SymPy numbers
    assert float(got) == float(expected)


def test_expected_exponent_float_values():
    assert [float(symbolic.expected_exponent(p)) for p in (2, 3, 6, math.inf)] == [
        0.0,
        -0.5,
        -0.8,
        -1.0,
    ]


def test_slope_error_bound_is_attained_and_respected():
    x = np.log(np.logspace(-6, -2, 9))
    dev = np.full(9, 0.2)
    bound = symbolic.slope_error_bound(x, dev)
    xc = x - x.mean()
    # worst case: δ_k = Δ·sign(x_k - x̄) moves the slope by exactly the bound
    worst = np.polyfit(x, -0.5 * x + 1.0 + 0.2 * np.sign(xc), 1)[0]
    assert abs(abs(worst + 0.5) - bound) <= tolerance.gamma(40) * (abs(worst) + bound)
    rng = np.random.default_rng(3)
    for _ in range(20):
        noise = rng.uniform(-1.0, 1.0, 9) * dev
        s = np.polyfit(x, -0.5 * x + 1.0 + noise, 1)[0]
        assert abs(s + 0.5) <= bound * (1 + tolerance.gamma(40)) + tolerance.gamma(40)
    with pytest.raises(ValueError, match="log_dev"):
        symbolic.slope_error_bound(x, -dev)


def test_evaluate_names_missing_and_unknown():
    with pytest.raises(ValueError, match=re.escape("missing values for ['n2']")):
        symbolic.evaluate(symbolic.lin_l2_bound(), X=1, eps=0.1, n1=1, L2max=0.25, L1max=1, bias=0)
    with pytest.raises(ValueError, match=re.escape("unknown names ['nn2']")):
        symbolic.evaluate(
            symbolic.lin_l2_bound(), X=1, eps=0.1, n1=1, n2=1, nn2=3, L2max=0.25, L1max=1, bias=0
        )


def test_pretty_is_one_readable_line():
    for expr in (symbolic.lin_l2_bound(), symbolic.lin_linf_bound(), symbolic.liu_bound()):
        s = symbolic.pretty(expr)
        assert "\n" not in s and "ε" in s and "**" not in s and "eps" not in s
    assert "√(" in symbolic.pretty(symbolic.lin_l2_bound())
    assert "max(0, 1/2 - 1/p)" in symbolic.pretty(symbolic.liu_bound())


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: symbolic.adversarial_loss_expr(2, p=0.5), "p=0.5"),
        (lambda: symbolic.gradient_expr(2, p=0.5), "p=0.5"),
        (lambda: symbolic.adversarial_loss_expr(2, p=2, loss="hinge"), "loss='hinge'"),
        (lambda: symbolic.hessian_expr(2, p=2, loss="hinge"), "loss='hinge'"),
        (lambda: symbolic.symbols(0), "d=0"),
        (lambda: symbolic.adversarial_loss_expr(0, p=2), "d=0"),
        (lambda: symbolic.gradient_expr(2.0, p=2), "d=2.0"),
        (lambda: symbolic.expected_exponent(0.5), "p=0.5"),
        (lambda: symbolic.dual_direction_expr(SYM.w, p=1), "k=None"),
        (lambda: symbolic.dual_norm_expr([], p=2), "w must hold at least one entry"),
        (lambda: symbolic.lambdify_jax(symbolic.lin_l2_bound(), SYM), "cannot take"),
        (lambda: symbolic.lambdify_jax(SYM.y, "not symbols"), "sym must be"),
    ],
    ids=[
        "p-loss",
        "p-grad",
        "loss-value",
        "loss-hessian",
        "d-symbols",
        "d-loss",
        "d-float",
        "p-exponent",
        "k-missing",
        "w-empty",
        "foreign-symbols",
        "sym-type",
    ],
)
def test_bad_arguments_raise_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        call()


def test_lambdified_rejects_wrong_shapes(compiled):
    f_val = compiled[2.0, "softplus"][0]
    with pytest.raises(ValueError, match=re.escape("Shape mismatch")):
        f_val(np.ones(D + 1), np.ones(D), 1.0, 0.0, 0.1)
