"""advlip.attacks: PGD on any per-example loss, its KKT certificate, and its errors.

Expected values come from the closed forms of docs/theory/closed-form.md (:mod:`advlip.linear`) or from
the definition of a maximiser (no feasible neighbour does better); tolerances are
float64 error bounds with k counted in the comment, or the attack's own certificate.
"""

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advlip import attacks, linear, models, norms, tolerance

PS = (1.0, 2.0, math.inf)
_EXAMPLES = max(5, settings.default.max_examples // 4)


@st.composite
def linear_problems(draw, *, d=4, n=8):
    """A linear model (w with distinct |w_i|, nonzero), data, labels ±1, ε and p."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    mags = rng.permutation(np.linspace(0.3, 2.0, d)) * rng.choice([-1.0, 1.0], d)
    params = {"w": jnp.asarray(mags), "b": jnp.asarray(rng.normal())}
    X = jnp.asarray(rng.standard_normal((n, d)))
    y = jnp.asarray(rng.choice([-1.0, 1.0], n))
    eps = draw(st.sampled_from([0.05, 0.3, 1.0]))
    p = draw(st.sampled_from(PS))
    return params, X, y, eps, p


@settings(max_examples=_EXAMPLES)
@given(linear_problems())
def test_linear_model_reproduces_the_closed_form(problem):
    """Exactness (docs/theory/closed-form.md): δ* = −yεu(w), L = ℓ(m − ε‖w‖_q), ∇L = Danskin closed form."""
    params, X, y, eps, p = problem
    res = attacks.pgd(models.LinearLoss(), params, X, y, eps=eps, p=p)
    assert res.all_converged
    ref = np.asarray(linear.optimal_perturbation(params["w"], y, eps=eps, p=p))
    d = X.shape[1]
    if p == 2.0:
        # L2: δ is the retraction ε(δ)/‖δ‖ of a Newton iterate; the distance to δ* is at
        # most residual/μ (μ = ‖g‖/ε the tangent curvature of a linear model) plus the
        # rounding of the normalisation, γ_{2d+8}·ε.
        mu = np.linalg.norm(np.asarray(res.grad_x), axis=1) / eps
        tol = np.asarray(res.kkt.residual) / mu + tolerance.gamma(2 * d + 8) * eps
        assert np.all(np.linalg.norm(np.asarray(res.delta) - ref, axis=1) <= tol)
    else:
        # vertices of the box / the L1 ball: exact up to the projection's rounding, γ_{4d+8}·ε
        assert np.allclose(
            np.asarray(res.delta), ref, atol=tolerance.gamma(4 * d + 8) * eps, rtol=0
        )
    L = float(jnp.mean(res.loss))
    L_ref = float(linear.adversarial_loss(params["w"], X, y, eps=eps, p=p, b=params["b"]))
    # the value at a point δ of distance e from δ* differs by ≤ |ℓ'| ‖w‖ e ≤ ‖w‖ e (softplus)
    assert L == pytest.approx(L_ref, abs=tolerance.gamma(4 * d + 16) * (abs(L_ref) + 1.0))
    gw, gb = linear.adversarial_grad(params["w"], X, y, eps=eps, p=p, b=params["b"])
    g = res.danskin_grad
    assert np.allclose(np.asarray(g["w"]), np.asarray(gw), atol=1e-13, rtol=0)
    assert float(g["b"]) == pytest.approx(float(gb), abs=1e-13)


def reference(activation="tanh"):
    """The shapes of the GEN checks (d = 4, width 5, skip, n = 8): compiled programs are shared."""
    params = models.init_mlp(jax.random.PRNGKey(3), 4, (5,), scale=1.5, skip=True)
    X = jnp.asarray(np.random.default_rng(0).standard_normal((8, 4)) / 2.0)
    y = jnp.array([1.0, -1.0] * 4)
    return models.MLPLoss(activation), params, X, y


@jax.jit
def _values(loss, params, X, y, delta):
    return jax.vmap(lambda x, yi, dl: loss(params, x + dl, yi))(X, y, delta)


@functools.partial(jax.jit, static_argnames=("p",))
def _project(delta, eps, p):
    return norms.project_ball(delta, eps=eps, p=p)


@pytest.mark.parametrize("activation", ["tanh", "softplus", "gelu"])
@pytest.mark.parametrize("p", PS, ids=["p1", "p2", "pinf"])
def test_mlp_attack_is_a_certified_local_maximiser(activation, p):
    loss, params, X, y = reference(activation)
    eps = 0.2
    res = attacks.pgd(loss, params, X, y, eps=eps, p=p)
    assert res.all_converged
    assert np.all(np.asarray(norms.lp_norm(res.delta, p)) <= eps * (1 + tolerance.gamma(4 * 4 + 8)))
    # no feasible point nearby does better (up to the rounding of the loss, 64u(1 + |ℓ|))
    rng = np.random.default_rng(1)
    base = np.asarray(_values(loss, params, X, y, res.delta))
    for _ in range(5):
        step = 1e-3 * eps * rng.standard_normal(X.shape)
        trial = _project(res.delta + step, eps, p)
        value = np.asarray(_values(loss, params, X, y, trial))
        assert np.all(value <= base + 64 * tolerance.UNIT_ROUNDOFF * (1 + np.abs(base)))
    # the certificate is not vacuous: at δ = 0 the same residual is large
    cert0 = attacks.kkt(jnp.zeros_like(res.delta), res.grad_x, eps=eps, p=p)
    assert np.all(np.asarray(cert0.residual) > 1e3 * np.asarray(res.kkt.residual) + 1e-12)


@st.composite
def certificates(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    p = draw(st.sampled_from(PS))
    rng = np.random.default_rng(seed)
    d = 5
    delta = _project(jnp.asarray(rng.standard_normal(d)), 1.0, p)
    return delta, jnp.asarray(rng.standard_normal(d)), p


@jax.jit
def _projector(c):
    return jax.vmap(lambda v: attacks.tangent_project(c, v))(jnp.eye(5)).T


@settings(max_examples=_EXAMPLES * 3)
@given(certificates())
def test_tangent_projector_is_an_orthogonal_projector(case):
    delta, g, p = case
    c = attacks.kkt(delta, g, eps=1.0, p=p)
    P = np.asarray(_projector(c))
    assert np.allclose(P, P.T, atol=1e-15)
    assert np.allclose(P @ P, P, atol=1e-14)
    assert int(round(np.trace(P))) == int(c.tangent_dim)
    # the residual is the norm of the projected gradient: never above ‖g‖, ≥ 0
    assert 0.0 <= float(c.residual) <= float(jnp.linalg.norm(g)) * (1 + 1e-14)
    # Hölder: the Frank–Wolfe gap is ≥ 0 up to rounding
    assert float(c.gap) >= -tolerance.gamma(4 * 5) * float(jnp.sum(jnp.abs(g)))


@pytest.mark.parametrize(
    "delta, g, p, kind, residual",
    [
        ([0.6, 0.8], [3.0, 4.0], 2.0, "l2_boundary", 0.0),  # g = μδ, μ = 5
        ([0.6, 0.8], [4.6, -2.2], 2.0, "l2_boundary", 5.0),  # μ = 1 and a tangent part of norm 5
        ([0.6, 0.8], [4.0, -3.0], 2.0, "interior", 5.0),  # no outward force: not a KKT point
        ([0.1, 0.2], [0.0, 0.0], 2.0, "interior", 0.0),
        ([0.1, 0.2], [1.0, 0.0], 2.0, "interior", 1.0),
        ([1.0, -1.0], [2.0, -3.0], math.inf, "linf_vertex", 0.0),
        ([1.0, 0.5], [2.0, 0.0], math.inf, "linf_face", 0.0),
        ([1.0, -1.0], [-2.0, -3.0], math.inf, "linf_face", 2.0),  # inward g: free coordinate
        ([1.0, 0.0], [2.0, 1.0], 1.0, "l1_vertex", 0.0),
        ([0.5, 0.5], [2.0, 2.0], 1.0, "l1_face", 0.0),
        ([1.0, 0.0], [1.0, 3.0], 1.0, "l1_vertex", 2.0),  # off-support |g| > μ
    ],
)
def test_kkt_cases_by_hand(delta, g, p, kind, residual):
    c = attacks.kkt(jnp.asarray(delta), jnp.asarray(g), eps=1.0, p=p)
    assert attacks.KINDS[int(c.kind)] == kind
    assert float(c.residual) == pytest.approx(residual, abs=1e-15)


def test_kkt_multiplier_and_slack():
    c = attacks.kkt(jnp.array([0.6, 0.8]), jnp.array([3.0, 4.0]), eps=1.0, p=2.0)
    assert float(c.mu) == pytest.approx(5.0) and float(c.multiplier) == pytest.approx(5.0)
    c = attacks.kkt(jnp.array([0.1, 0.2]), jnp.array([0.0, 0.0]), eps=1.0, p=2.0)
    assert float(c.slack) == pytest.approx(1.0 - np.hypot(0.1, 0.2))
    c = attacks.kkt(jnp.array([1.0, 0.5]), jnp.array([2.0, 0.0]), eps=1.0, p=math.inf)
    assert float(c.multiplier) == 2.0 and float(c.slack) == 0.5


def test_eps_zero_is_the_clean_loss():
    loss, params, X, y = reference()
    res = attacks.pgd(loss, params, X, y, eps=0.0, p=2.0)
    assert np.all(np.asarray(res.delta) == 0.0) and res.all_converged
    assert set(res.cases) == {"point"}


def test_restarts_warm_start_and_determinism():
    loss, params, X, y = reference()
    a = attacks.pgd(loss, params, X, y, eps=0.3, p=math.inf, restarts=2, key=jax.random.PRNGKey(5))
    b = attacks.pgd(loss, params, X, y, eps=0.3, p=math.inf, restarts=2, key=jax.random.PRNGKey(5))
    assert np.array_equal(np.asarray(a.delta), np.asarray(b.delta))
    # the winner is the best of the starts: never worse than a single start from 0
    single = attacks.pgd(loss, params, X, y, eps=0.3, p=math.inf)
    assert np.all(np.asarray(a.loss) >= np.asarray(single.loss) - 1e-15)
    # warm start at the answer, Newton only: stays there
    warm = attacks.pgd(
        loss, params, X, y, eps=0.3, p=math.inf, init=a.delta, steps=0, refine_steps=0
    )
    assert np.allclose(np.asarray(warm.delta), np.asarray(a.delta), atol=1e-15)


@pytest.mark.parametrize("p", PS, ids=["p1", "p2", "pinf"])
def test_sample_ball_is_feasible_and_replays(p):
    key = jax.random.PRNGKey(0)
    pts = attacks.sample_ball(key, (200, 3), eps=0.5, p=p)
    assert np.all(np.asarray(norms.lp_norm(jnp.asarray(pts), p)) <= 0.5 * (1 + 1e-15))
    assert np.array_equal(pts, attacks.sample_ball(key, (200, 3), eps=0.5, p=p))


def test_not_converged_is_reported_and_raised():
    loss, params, X, y = reference()
    res = attacks.pgd(loss, params, X, y, eps=0.5, p=2.0, steps=1, refine_steps=0, newton_steps=0)
    assert not res.all_converged
    with pytest.raises(attacks.AttackNotConvergedError, match="did not converge") as err:
        res.require_converged()
    assert "residual" in str(err.value) and "Likely causes" in str(err.value)
    assert isinstance(err.value, ValueError)


def _nonscalar(params, x, y):
    return x * params["w"]


def _crashes(params, x, y):
    return params["w"] @ jnp.ones(x.shape[0] + 1)


_GOOD = {"w": jnp.ones(3), "b": jnp.asarray(0.0)}
_X, _Y = jnp.ones((2, 3)), jnp.array([1.0, -1.0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(loss_fn=_nonscalar), "must return a scalar"),
        (dict(loss_fn=_crashes), "failed on one example"),
        (dict(loss_fn=3), "must be callable"),
        (
            dict(params={"w": jnp.ones(3, dtype=jnp.int32), "b": jnp.asarray(0.0)}),
            "params['w'] has dtype int32",
        ),
        (dict(params={}), "at least one array leaf"),
        (dict(params={"w": jnp.array([1.0, np.nan, 0.0]), "b": jnp.asarray(0.0)}), "non-finite"),
        (dict(p=3.0), "p=3 is not supported"),
        (dict(p=0.5), "not a valid norm exponent"),
        (dict(eps=-0.1), "eps=-0.1 is not allowed"),
        (dict(X=jnp.ones(3)), "X must have shape (n, d)"),
        (dict(y=jnp.ones(3)), "Shape mismatch"),
        (dict(X=jnp.array([[1.0, np.inf, 0.0], [0.0, 0.0, 0.0]])), "X contains 1 non-finite"),
        (dict(restarts=0), "restarts=0 is not allowed"),
        (dict(init=jnp.ones((3, 3))), "init must have the shape of X"),
        (dict(rtol=-1.0), "rtol=-1.0 is not allowed"),
        (dict(x_solver="lu"), "x_solver='lu' is not allowed"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_input_is_a_clear_value_error(kwargs, match):
    args = dict(loss_fn=models.LinearLoss(), params=_GOOD, X=_X, y=_Y, eps=0.1, p=2.0)
    args.update(kwargs)
    loss_fn, params, X, y = args.pop("loss_fn"), args.pop("params"), args.pop("X"), args.pop("y")
    with pytest.raises(ValueError, match=re.escape(match)):
        attacks.pgd(loss_fn, params, X, y, **args)


def test_matrix_free_and_dense_solvers_agree():
    _, params, X, y = reference()
    loss = models.MLPLoss("tanh", kappa=6.0)  # strictly concave in x: interior maximisers
    a = attacks.pgd(loss, params, 0.3 * X, y, eps=1.0, p=2.0, x_solver="dense")
    b = attacks.pgd(loss, params, 0.3 * X, y, eps=1.0, p=2.0, x_solver="cg")
    assert a.all_converged and b.all_converged and set(a.cases) == {"interior"}
    assert np.allclose(np.asarray(a.delta), np.asarray(b.delta), atol=1e-12)
    # the tangent spectrum by Lanczos equals the dense one (to the Lanczos bound)
    assert np.allclose(np.asarray(a.tangent_min), np.asarray(b.tangent_min), atol=1e-10)


def test_structured_starts_screen_and_refine():
    """The screen's best points are refined as extra starts and the winner is never below
    a single local start; ``beaten`` compares the winner with every screened value."""
    loss, params, X, y = reference()
    local = attacks.pgd(loss, params, X, y, eps=0.5, p=1.0, structured_starts=0)
    assert local.beaten is None and local.best_other is None
    full = attacks.pgd(loss, params, X, y, eps=0.5, p=1.0)
    # init + 2 refined screened points, and the winner is the best of them
    assert np.all(np.asarray(full.loss) >= np.asarray(local.loss) - np.asarray(full.value_error))
    assert full.beaten.shape == (8,) and full.beaten.dtype == bool
    # the screen saw every vertex ±ε e_j (d = 4 ≤ 64): none is above the winner
    vertices = 0.5 * np.concatenate([np.eye(4), -np.eye(4)])
    best_vertex = np.max(
        [np.asarray(_values(loss, params, X, y, jnp.broadcast_to(v, X.shape))) for v in vertices],
        axis=0,
    )
    assert np.all(np.asarray(full.best_other) >= best_vertex)
    assert np.all(best_vertex <= np.asarray(full.loss) + 2 * np.asarray(full.value_error))
    with pytest.raises(ValueError, match="structured_starts=-1 is not allowed"):
        attacks.pgd(loss, params, X, y, eps=0.5, p=1.0, structured_starts=-1)


def test_kkt_runs_in_the_dtype_of_its_inputs():
    c = attacks.kkt(
        jnp.array([0.6, 0.8], jnp.float32), jnp.array([3.0, 4.0], jnp.float32), eps=1.0, p=2
    )
    assert c.residual.dtype == jnp.float32 and attacks.KINDS[int(c.kind)] == "l2_boundary"
    # ‖g − (g·n̂)n̂‖ in float32: a few float32 ulps of ‖g‖ = 5, not a float64 residual
    assert float(c.residual) <= tolerance.gamma(2 * 2 + 8, np.float32) * 5.0


def test_count_ops_counts_loops_convolutions_and_cumulative_ops():
    # each count must cover the chain of roundings it stands for: a scan of 1000 steps
    # is 1000 times its body, a 3×3 convolution over 16 channels contracts 144 terms, a
    # cumsum of 500 terms chains 500 additions; a while loop cannot be counted and says so
    count = attacks.count_ops
    body = count(lambda c: c * 2.0 + 1.0, 1.0)
    looped = count(
        lambda x: jax.lax.scan(lambda c, _: (c * 2.0 + 1.0, None), x, None, length=1000)[0], 1.0
    )
    assert looped >= 1000 * body
    conv = count(
        lambda x: jax.lax.conv_general_dilated(x, jnp.ones((8, 16, 3, 3)), (1, 1), "SAME"),
        jnp.ones((1, 16, 6, 6)),
    )
    assert conv >= 16 * 3 * 3
    assert count(jnp.cumsum, jnp.ones(500)) >= 500
    with pytest.warns(UserWarning, match="while loop"):
        count(lambda x: jax.lax.while_loop(lambda c: c < 10.0, lambda c: c * 2.0, x), 1.0)
