"""Local entropy F_γ by quadrature, EntropySGD's SGLD estimate, and ENTROPY-SMOOTH."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from advlip import data, entropy, falsify_smoothness, regions
from advlip.entropy_sgd import entropy_sgd, local_entropy_gradient, sgld_chain_means
from advlip.linear import LinearProblem
from advlip.theorems import smoothing
from advlip.theorems.base import CheckConfig

X, Y = data.synthetic(jax.random.PRNGKey(0), n=16, d=2)
LINF = LinearProblem(X=X, y=Y, eps=0.5, p=math.inf)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 4.0])
def test_quadrature_of_a_quadratic_is_exact(gamma):
    # L = ½ θᵀAθ: the Gibbs measure is Gaussian with precision A + γI, mean γ(A+γI)⁻¹θ, so
    # ∇F = γθ − γ²(A+γI)⁻¹θ and ∇²F = γI − γ²(A+γI)⁻¹ (closed form).
    A = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    q = entropy.Quadrature.build(
        lambda th: 0.5 * th @ A @ th,
        center=jnp.zeros(2),
        gamma=gamma,
        half_width=2 + entropy.gibbs_width(gamma),
        n=201,
    )
    th = jnp.array([0.7, -1.2])
    P = np.linalg.inv(np.asarray(A) + gamma * np.eye(2))
    np.testing.assert_allclose(
        np.asarray(q.grad(th)),
        gamma * np.asarray(th) - gamma**2 * P @ np.asarray(th),
        rtol=0,
        atol=1e-9,
    )
    np.testing.assert_allclose(
        np.asarray(q.hessian(th)), gamma * np.eye(2) - gamma**2 * P, rtol=0, atol=1e-9
    )
    # for a smooth integrand the trapezoid rule is spectrally accurate: Richardson sees ~0
    assert float(q.grad_error(th)) < 1e-9


def test_gradient_of_F_is_the_derivative_of_F():
    q = entropy.Quadrature.build(
        LINF.loss_value, center=jnp.zeros(2), gamma=1.0, half_width=9.0, n=201
    )
    th = jnp.array([0.3, 0.4])
    h = 1e-4  # central differences: truncation h²·F'''/6 ~ 1e-9, rounding u·|F|/h ~ 1e-12
    fd = np.array([(float(q.F(th + h * e)) - float(q.F(th - h * e))) / (2 * h) for e in jnp.eye(2)])
    np.testing.assert_allclose(np.asarray(q.grad(th)), fd, atol=1e-7)


def test_entropy_smooth_check_holds_and_matches_spec_figures():
    r = smoothing.check_entropy_smooth(CheckConfig(seed=0, quick=True))
    assert r.verdict == "holds", r.figure
    for case in r.figures["cases"]:
        assert case["max_ratio"] <= case["gamma"]  # γ-smooth across the kink...
        assert case["kink_ratio_L"][0] > 100 * case["gamma"]  # ...where L's ratio is huge
        assert -case["hessian_error_max"] <= case["hessian_eig_min"]  # 0 ⪯ ∇²F (Brascamp–Lieb)
    assert r.figures["raw_loss_fit"]["exponent"] == pytest.approx(-1.0, abs=1e-3)


def test_falsifier_refutes_too_small_gamma_for_F_and_spares_the_true_one():
    gamma = 4.0
    q = entropy.Quadrature.build(
        LINF.loss_value,
        center=jnp.zeros(2),
        gamma=gamma,
        half_width=2 + entropy.gibbs_width(gamma),
        n=201,
    )
    region = regions.Box([-1.0, -1.0], [1.0, 1.0])
    # quadrature error of one gradient: the Richardson estimate, maximised over a sample
    pts = jnp.asarray(region.sample(np.random.default_rng(0), 64))
    err = 3.0 * float(jnp.max(q.grad_error(pts)))
    grad = jax.jit(q.grad)
    assert not falsify_smoothness(
        grad, beta=gamma, region=region, budget=800, seed=0, grad_error=err
    ).refuted
    max_r = smoothing.entropy_ratios(LINF, gamma, key=jax.random.PRNGKey(0), n_grid=201)[
        "max_ratio"
    ]
    v = falsify_smoothness(
        grad, beta=0.5 * max_r, region=region, budget=1500, seed=0, grad_error=err
    )
    assert v.refuted


def test_sgld_mean_of_a_gaussian_is_unbiased():
    # quadratic L: SGLD's drift is linear, its stationary mean is exactly the Gibbs mean
    A = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    th = jnp.array([1.0, -2.0])
    gamma = 1.0
    means = sgld_chain_means(
        lambda x: A @ x,
        th,
        jax.random.PRNGKey(0),
        gamma=gamma,
        steps=600,
        step_size=0.05,
        burn_in=100,
        chains=512,
    )
    exact = gamma * np.linalg.solve(np.asarray(A) + gamma * np.eye(2), np.asarray(th))
    se = np.asarray(means.std(0)) / math.sqrt(512)
    assert np.all(np.abs(np.asarray(means.mean(0)) - exact) <= 4 * se)  # 4 standard errors
    assert np.all(se < 0.02)  # and the test has power: the error bar is small


def test_entropy_sgd_gradient_matches_quadrature_across_the_kink():
    gamma = 1.0
    th = jnp.array([0.0, 4.0])  # on the kink w_1 = 0, far from the minimiser: a large ∇F
    q = entropy.Quadrature.build(
        LINF.loss_value,
        center=jnp.zeros(2),
        gamma=gamma,
        half_width=5 + entropy.gibbs_width(gamma),
        n=401,
    )
    exact = np.asarray(q.grad(th))
    est = {}
    for eta in (0.04, 0.02):
        m = sgld_chain_means(
            LINF.grad,
            th,
            jax.random.PRNGKey(1),
            gamma=gamma,
            steps=int(25 / eta),
            step_size=eta,
            burn_in=int(5 / eta),
            chains=1024,
        )
        est[eta] = (
            gamma * (np.asarray(th) - np.asarray(m.mean(0))),
            gamma * np.asarray(m.std(0)) / math.sqrt(1024),
        )
    g, se = est[0.02]
    bias = np.abs(est[0.02][0] - est[0.04][0])  # SGLD bias is O(η): the η vs 2η change bounds it
    tol = 4 * np.sqrt(se**2 + est[0.04][1] ** 2) + bias
    assert np.all(np.abs(g - exact) <= tol), (g, exact, tol)
    # power: an estimate of the wrong sign, or of zero, would lie outside the tolerance
    assert np.linalg.norm(exact) > 2 * np.linalg.norm(tol)


def test_entropy_sgd_trains_with_optax_and_gamma_schedule():
    sched = optax.linear_schedule(0.5, 2.0, 20)
    opt = entropy_sgd(
        LINF.grad, learning_rate=0.2, gamma=sched, steps=20, chains=4, key=jax.random.PRNGKey(0)
    )
    params = jnp.array([2.0, -2.0])
    state = opt.init(params)
    start = float(LINF.loss_value(params))
    step = jax.jit(lambda p, s: opt.update(jnp.zeros(2), s, p))
    for _ in range(30):
        upd, state = step(params, state)
        params = optax.apply_updates(params, upd)
    assert float(LINF.loss_value(params)) < start


def test_the_langevin_noise_replays_from_its_key():
    def run(key):
        tx = local_entropy_gradient(LINF.grad, gamma=1.0, steps=5, temperature=1.0, key=key)
        params = jnp.array([0.5, -0.5])
        return np.asarray(tx.update(jnp.zeros(2), tx.init(params), params)[0])

    a, b = run(jax.random.PRNGKey(3)), run(jax.random.PRNGKey(3))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, run(jax.random.PRNGKey(4)))
    with pytest.raises(ValueError, match=r"key=3 is an integer; allowed: a JAX PRNG key"):
        local_entropy_gradient(LINF.grad, gamma=1.0, key=3)


def test_minibatches_reach_grad_fn():
    seen = []

    def grad_fn(p, xb):
        seen.append(xb.shape)
        return p * jnp.mean(xb)

    tx = local_entropy_gradient(grad_fn, gamma=1.0, steps=3)
    tx.update(jnp.zeros(2), tx.init(jnp.ones(2)), jnp.ones(2), batch=(jnp.ones((5, 2)),))
    assert seen and seen[0] == (5, 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(gamma=0.0), "gamma=0.0"),
        (dict(gamma=1.0, steps=0), "steps=0"),
        (dict(gamma=1.0, step_size=-1.0), "step_size=-1.0"),
        (dict(gamma=1.0, steps=4, burn_in=4), "burn_in=4"),
        (dict(gamma=1.0, averaging=1.5), "averaging=1.5"),
        (dict(gamma=1.0, chains=0), "chains=0"),
    ],
    ids=["gamma", "steps", "step-size", "burn-in", "averaging", "chains"],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        local_entropy_gradient(lambda p: p, **kwargs)


def test_quadrature_bad_arguments():
    with pytest.raises(ValueError, match="d <= 2"):
        entropy.Quadrature.build(
            lambda t: jnp.sum(t), center=jnp.zeros(3), gamma=1.0, half_width=1.0, n=11
        )
    with pytest.raises(ValueError, match="gamma=-1"):
        entropy.Quadrature.build(
            lambda t: jnp.sum(t), center=jnp.zeros(2), gamma=-1.0, half_width=1.0, n=11
        )
    with pytest.raises(ValueError, match="must be odd"):
        entropy.Quadrature.build(
            lambda t: jnp.sum(t), center=jnp.zeros(2), gamma=1.0, half_width=1.0, n=10
        )
