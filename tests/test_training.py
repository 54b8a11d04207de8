"""Adversarial training with optax (advlip.training): attacks, histories, bounds along the path."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advlip import attacks, data, losses, models, tolerance, training
from advlip.entropy_sgd import entropy_sgd
from advlip.linear import LinearProblem

X, Y = data.synthetic(jax.random.PRNGKey(3), n=40, d=5)
KEY = jax.random.PRNGKey(0)


def _l2_beta(prob: LinearProblem, w1, w2) -> float:
    """LIN-L2 (docs/theory/closed-form.md) with the bias as a parameter: ¼((max‖x‖ + ε)² + 1) + ε/√(‖w1‖‖w2‖)."""
    return 0.25 * ((prob.x_norm_max + prob.eps) ** 2 + 1.0) + prob.eps / math.sqrt(
        float(np.linalg.norm(w1)) * float(np.linalg.norm(w2))
    )


# --------------------------------------------------------------------------- budgets, validation


@pytest.mark.parametrize("d", [1, 4, 64])
def test_matched_eps_is_the_largest_linf_ball_inside_the_l2_ball(d):
    e2 = 0.7
    e_inf = training.matched_eps(e2, d, math.inf)
    assert e_inf == pytest.approx(e2 / math.sqrt(d), rel=tolerance.gamma(4))
    # the corners of B∞(ε∞) lie on the L2 sphere of radius ε₂: ‖ε∞·1‖₂ = ε₂
    assert float(np.linalg.norm(np.full(d, e_inf))) == pytest.approx(e2, rel=tolerance.gamma(d + 4))
    assert training.matched_eps(e2, d, 2.0) == e2
    assert training.matched_eps(e2, d, 1.0) == e2  # B1(ε) ⊂ B2(ε) already


def test_make_optimizer_names_the_allowed_values():
    with pytest.raises(ValueError, match=r"optimizer='rmsprop' is not known; allowed: \['sgd'"):
        training.make_optimizer("rmsprop", 0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        training.make_optimizer("adam", -1.0)
    assert training.make_optimizer("adam", 0.1) is training.make_optimizer("adam", 0.1)  # reused


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"X": np.zeros(5), "y": np.ones(5)}, r"X must have shape \(n, d\)"),
        ({"X": np.zeros((4, 3)), "y": np.ones(5)}, "Shape mismatch"),
        ({"X": np.zeros((2, 3)), "y": np.array([0.0, 1.0])}, "y must hold labels -1 or \\+1"),
        ({"X": np.zeros((2, 3)), "y": np.array([1.0, -1.0]), "p": 3.0}, "allowed: 1, 2, inf"),
        ({"X": np.zeros((2, 3)), "y": np.array([1.0, -1.0]), "activation": "relu6"}, "activation"),
        ({"X": np.zeros((2, 3)), "y": np.array([1.0, -1.0]), "widths": (0,)}, r"widths\[i\]"),
    ],
    ids=["X-1d", "n-mismatch", "labels", "p", "activation", "width"],
)
def test_mlp_problem_rejects_bad_input(kwargs, match):
    args = {"eps": 0.1, "p": 2.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        training.MLPProblem(**args)


def test_train_rejects_what_it_cannot_train():
    with pytest.raises(ValueError, match="problem must be an advlip.linear.LinearProblem"):
        training.train((X, Y), steps=1)
    prob = LinearProblem(X=X, y=Y, eps=0.1, p=2.0)
    with pytest.raises(ValueError, match="optimizer must be a name"):
        training.train(prob, optimizer=42, steps=1)
    with pytest.raises(ValueError, match="Shape mismatch"):
        training.train(prob, steps=1, eval_data=(X[:, :3], Y))
    with pytest.raises(ValueError, match=r"params must have shape \(5,\)"):
        training.train(prob, steps=1, params=jnp.zeros(6))


# --------------------------------------------------------------------------- attacks


def _light(loss_fn, params, eps, p, steps, **kw):
    return attacks.pgd(loss_fn, params, X, Y, eps=eps, p=p, steps=steps, mode="light", **kw)


@pytest.mark.parametrize("p", [2.0, math.inf])
def test_light_pgd_reaches_the_closed_form_on_a_linear_model(p):
    # For ℓ(y(w·x+b)) the input gradient has a constant direction, so steepest ascent with
    # α = 2.5ε/k reaches δ* = −yε u(w) (docs/theory/closed-form.md) in ⌈1/2.5·k⌉ steps and stays (projection).
    w, b, eps = jnp.array([0.8, -1.3, 0.0001, 2.0, -0.4]), 0.2, 0.3
    params = {"w": w, "b": jnp.asarray(b)}
    delta, val = _light(models.LinearLoss(), params, eps, p, 5)
    from advlip import linear

    exact = linear.optimal_perturbation(w, Y, eps=eps, p=p)
    # δ: a projection (k ≈ 2d ops) of an exactly representable multiple of ε·u
    np.testing.assert_allclose(
        np.asarray(delta), np.asarray(exact), rtol=0, atol=tolerance.gamma(4 * 5 + 8) * eps
    )
    closed = np.asarray(
        losses.get_loss("softplus").value(linear.adversarial_margin(w, X, Y, eps=eps, p=p, b=b))
    )
    # the margin is a dot product of 2d + 4 operations on terms ≤ |x||w| + ε‖w‖_q + |b|; |ℓ'| ≤ 1
    terms = np.abs(np.asarray(X)) @ np.abs(np.asarray(w)) + eps * float(np.sum(np.abs(w))) + abs(b)
    # plus the rounding of ℓ itself (a few ops on a value of size |ℓ|)
    np.testing.assert_array_less(
        np.abs(np.asarray(val) - closed), tolerance.gamma(4 * 5 + 8) * (terms + np.abs(closed))
    )


def test_light_pgd_keeps_its_best_iterate_and_compiles_once_under_jit():
    params = models.init_mlp(jax.random.PRNGKey(1), 5, (4,))
    lf = models.MLPLoss("tanh")
    start = 0.1 * jnp.sign(X)  # a corner of the L∞ ball of radius 0.1
    d0, v0 = _light(lf, params, 0.2, math.inf, 0, init=start)  # 0 steps: the start, evaluated
    np.testing.assert_array_equal(np.asarray(d0), np.asarray(start))
    d3, v3 = _light(lf, params, 0.2, math.inf, 3, init=start)
    assert np.all(np.asarray(v3) >= np.asarray(v0))  # the start is among the iterates
    assert np.all(np.max(np.abs(np.asarray(d3)), axis=1) <= 0.2)  # in the ball

    @jax.jit
    def mean_loss(params, eps, steps):  # ε and the step count traced: one program for all
        return jnp.mean(attacks.pgd(lf, params, X, Y, eps=eps, p=2.0, steps=steps, mode="light")[1])

    a = mean_loss(params, 0.2, 3)
    mean_loss(params, 0.3, 7)
    assert mean_loss._cache_size() == 1
    # the traced run is the eager one: the same operations in one program (XLA may fuse them;
    # a chain of 3 × (forward + backward) passes of < 50 ops, then the mean of n)
    eager = float(jnp.mean(_light(lf, params, 0.2, 2.0, 3).loss))
    assert abs(float(a) - eager) <= tolerance.gamma(3 * 50 + X.shape[0]) * abs(eager)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "fast"}, r"mode='fast' is not allowed; allowed: 'certified', 'light'"),
        ({"mode": "light", "restarts": 3}, r"restarts=3: not allowed with mode='light'"),
        ({"mode": "light", "key": KEY}, r"key=.*: not allowed with mode='light'"),
        ({"mode": "light", "steps": -1}, r"steps=-1 is not allowed"),
        ({"mode": "light", "p": 3.0}, r"p=3 is not supported; allowed: 1, 2 or inf"),
        ({"mode": "light", "init": np.zeros((3, 5))}, r"init must have the shape of X"),
    ],
    ids=["mode", "restarts", "key", "steps", "p", "init"],
)
def test_light_pgd_names_what_it_refuses(kwargs, match):
    args = {"eps": 0.1, "p": 2.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        attacks.pgd(models.LinearLoss(), {"w": jnp.ones(5), "b": jnp.asarray(0.0)}, X, Y, **args)


def test_strong_attack_is_never_weaker_than_its_start():
    params = models.init_mlp(jax.random.PRNGKey(1), 5, (4,))
    lf = models.MLPLoss("tanh")
    d0, v0 = _light(lf, params, 0.2, math.inf, 2)
    res = training.strong_attack(
        lf, params, X, Y, eps=0.2, p=math.inf, steps=6, restarts=2, key=KEY, init=d0
    )
    assert np.all(res.loss >= np.asarray(v0))  # the start is one of the candidates
    assert set(np.unique(res.source)) <= {0, 1, 2, 3}
    assert np.all(np.max(np.abs(np.asarray(res.delta)), axis=1) <= 0.2)  # feasible
    with pytest.raises(ValueError, match=r"key=0 is an integer; allowed: a JAX PRNG key"):
        training.strong_attack(lf, params, X, Y, eps=0.2, p=math.inf, key=0)


# --------------------------------------------------------------------------- linear training


@pytest.fixture(scope="module")
def l2_run():
    prob = LinearProblem(X=X, y=Y, eps=0.3, p=2.0, fit_bias=True)
    return prob, training.train(
        prob, optimizer="sgd", learning_rate=0.5, steps=30, key=KEY, track_every=10
    )


def test_linear_training_lowers_the_loss_and_keeps_robust_below_clean(l2_run):
    _, h = l2_run
    assert h.loss[-1] < h.loss[0]
    assert np.all(h.robust_acc <= h.clean_acc)  # m̃ = m − ε‖w‖ ≤ m, exactly in float64 too
    assert (
        h.loss.shape == (31,)
        and h.grad_ratio.shape == (30,)
        and list(h.checkpoint_step) == [0, 10, 20, 30]
    )


def test_gradient_ratios_along_l2_training_obey_lin_l2(l2_run):
    prob, h = l2_run
    assert np.all(np.isfinite(h.ratio_bound))
    assert np.all(h.grad_ratio <= h.ratio_bound + h.ratio_error)


def test_first_gradient_ratio_matches_an_independent_recomputation(l2_run):
    # Rebuild θ0 and θ1 = θ0 − lr ∇L(θ0) with LinearProblem.grad (advlip.linear, an independent
    # implementation of the Danskin gradient) and compare R(θ0, θ1).
    prob, h = l2_run
    theta0 = jnp.asarray(
        0.1 * np.random.default_rng([0, 17]).standard_normal(prob.dim) / math.sqrt(prob.d)
    )
    g0 = prob.grad(theta0)
    theta1 = theta0 - 0.5 * g0
    R = float(jnp.linalg.norm(prob.grad(theta1) - g0) / jnp.linalg.norm(theta1 - theta0))
    err_g = float(prob.grad_error_bound(theta0))
    dt = float(jnp.linalg.norm(theta1 - theta0))
    # both routes' rounding (ratio_error, twice) + θ1 differing by ≤ lr·err_g, which moves ‖Δg‖ by
    # ≤ β·lr·err_g and ‖Δθ‖ by ≤ lr·err_g (relative change of R ≤ (β + R)·lr·err_g/‖Δθ‖)
    beta = _l2_beta(prob, theta0[: prob.d], theta1[: prob.d])
    tol = 2 * h.ratio_error[0] + (beta + R) * 0.5 * err_g / dt
    assert abs(h.grad_ratio[0] - R) <= tol
    assert h.grad_norm[0] == pytest.approx(float(jnp.linalg.norm(g0)), abs=2 * err_g)


def test_lambda_max_at_the_last_checkpoint_is_the_top_eigenvalue_of_the_closed_form_hessian(l2_run):
    prob, h = l2_run
    H = np.asarray(
        prob.hessian(jnp.asarray(h.final_params))
    )  # advlip.linear (docs/theory/closed-form.md)
    top = float(np.linalg.eigvalsh(H)[-1])
    assert abs(h.lambda_max_total[-1] - top) <= 2 * h.lambda_error[-1]
    # under L2 the curvature term −ε mean ℓ' (I − ŵŵᵀ)/‖w‖ is PSD: total ⪰ naive
    assert np.all(h.lambda_max_total >= h.lambda_max_naive - h.lambda_error)


def test_linf_training_records_kink_crossings_and_obeys_the_smooth_bound_off_them():
    prob = LinearProblem(
        X=X, y=Y, eps=training.matched_eps(0.3, 5, math.inf), p=math.inf, fit_bias=True
    )
    h = training.train(
        prob, optimizer="adam", learning_rate=0.05, steps=40, key=KEY, track_every=20
    )
    off = ~h.kink_crossed
    assert np.all(np.isinf(h.ratio_bound[h.kink_crossed]))
    assert np.all(h.grad_ratio[off] <= h.ratio_bound[off] + h.ratio_error[off])
    # ‖w‖₁ has no curvature: the total Hessian is the naive one
    assert np.all(np.abs(h.lambda_max_total - h.lambda_max_naive) <= h.lambda_error)
    assert np.isnan(h.near_zero[0]) and np.all((h.near_zero[1:] >= 0) & (h.near_zero[1:] <= 1))


def test_training_replays_from_its_key_and_history_is_strict_json(l2_run):
    prob, h = l2_run
    again = training.train(
        prob, optimizer="sgd", learning_rate=0.5, steps=30, key=KEY, track_every=10
    )
    assert json.dumps(h.to_dict()) == json.dumps(again.to_dict())
    other = training.train(
        prob,
        optimizer="sgd",
        learning_rate=0.5,
        steps=30,
        key=jax.random.PRNGKey(1),
        track_every=10,
    )
    assert other.loss[0] != h.loss[0]
    text = json.dumps(h.to_dict(), allow_nan=False)  # NaN (near_zero[0]) is written as a string
    assert '"nan"' in text


def test_entropy_sgd_trains_through_the_data_it_is_given():
    prob = LinearProblem(X=X, y=Y, eps=0.1, p=math.inf, fit_bias=True)
    opt = entropy_sgd(
        training.danskin_grad_fn(prob),
        0.3,
        gamma=1.0,
        steps=10,
        step_size=0.1,
        temperature=1e-4,
        key=KEY,
    )
    h = training.train(
        prob,
        optimizer=opt,
        optimizer_name="entropy-sgd",
        steps=15,
        key=KEY,
        track_every=0,
        direction_fn=lambda state, theta: 1.0 * (theta - state[0].last_mean),
    )
    assert h.loss[-1] < h.loss[0]
    assert h.direction_ratio.shape == (14,) and h.optimizer == "entropy-sgd"
    assert h.checkpoint_step.size == 0


class _Wrapped:
    """A TrainingProblem that is not a pytree: every member delegates to a LinearProblem."""

    def __init__(self, prob):
        self.inner, self.kind, self.attack_steps = prob, "wrapped", 0
        self.X, self.y, self.eps, self.p = prob.X, prob.y, prob.eps, prob.p

    def init(self, key):
        return self.inner.init(key)

    def evaluate(self, params, X, y):
        return self.inner.evaluate(params, X, y)

    def checkpoint(self, params, X, y, **kw):
        return self.inner.checkpoint(params, X, y, **kw)

    def path_bounds(self, thetas):
        return self.inner.path_bounds(thetas)


def test_train_takes_any_object_with_the_problem_protocol(l2_run):
    prob, h = l2_run
    wrapped = _Wrapped(prob)
    assert isinstance(wrapped, training.TrainingProblem)
    assert isinstance(prob, training.TrainingProblem)
    assert not isinstance((X, Y), training.TrainingProblem)
    w = training.train(
        wrapped, optimizer="sgd", learning_rate=0.5, steps=30, key=KEY, track_every=10
    )
    assert w.kind == "wrapped" and h.kind == "linear"
    # the same θ0 (init from the same key), L and ∇L compiled two ways (closed over vs traced):
    # each gradient is within LinearProblem.grad_error_bound of the exact one
    theta0 = prob.init(KEY)
    err_g = float(prob.grad_error_bound(theta0))
    assert abs(w.grad_norm[0] - h.grad_norm[0]) <= 2 * err_g
    # L = mean ℓ(m̃): each m̃ is 2d + 4 operations on terms ≤ |x||w| + |b| + ε‖w‖, |ℓ'| ≤ 1,
    # then ℓ and the mean (n + 4 more)
    w0, b0 = prob.split(theta0)
    scale = float(jnp.mean(jnp.abs(X) @ jnp.abs(w0) + abs(b0) + prob.eps * jnp.linalg.norm(w0)))
    k = 2 * prob.d + 4 + X.shape[0] + 4
    assert abs(w.loss[0] - h.loss[0]) <= 2 * tolerance.gamma(k) * (scale + h.loss[0])
    assert w.loss[-1] < w.loss[0] and np.all(w.grad_ratio <= w.ratio_bound + w.ratio_error)
    with pytest.raises(ValueError, match="which lacks X, y, eps, p, kind, attack_steps, init"):
        training.train((X, Y), steps=1)


def test_mlp_problems_of_any_eps_and_attack_steps_share_one_compiled_evaluation():
    f = jax.jit(lambda pr, th: pr.evaluate(th, pr.X, pr.y)[0])
    params = training.MLPProblem(X=X, y=Y, eps=0.1, p=2.0, widths=(3,)).init(KEY)
    for eps, k in [(0.1, 2), (0.3, 5)]:
        prob = training.MLPProblem(X=X, y=Y, eps=eps, p=2.0, widths=(3,), attack_steps=k)
        # traced ε and steps give what training.adversarial_loss gives (its own program):
        # the same chain of k × (forward + backward) passes of < 50 ops and a mean of n
        direct = float(training.adversarial_loss(prob, params))
        assert abs(float(f(prob, params)) - direct) <= tolerance.gamma(k * 50 + 40) * direct
    assert f._cache_size() == 1


# --------------------------------------------------------------------------- MLP pieces


def test_unravel_mlp_inverts_ravel():
    params = models.init_mlp(jax.random.PRNGKey(0), 5, (4, 3))
    flat = training.ravel(params)
    np.testing.assert_array_equal(flat, np.asarray(jax.flatten_util.ravel_pytree(params)[0]))
    back = training.unravel_mlp(flat, 5, (4, 3))
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="entries"):
        training.unravel_mlp(flat[:-1], 5, (4, 3))


def test_adversarial_loss_many_agrees_with_one_at_a_time():
    prob = training.MLPProblem(X=X, y=Y, eps=0.2, p=2.0, widths=(3,), attack_steps=3)
    flat = training.ravel(prob.init(KEY))
    thetas = np.stack([flat, 1.1 * flat])
    many = np.asarray(training.adversarial_loss_many(prob, thetas))
    one = [
        float(training.adversarial_loss(prob, training.unravel_mlp(jnp.asarray(t), 5, (3,))))
        for t in thetas
    ]
    # the same PGD in two compiled programs: identical operations, but XLA may reassociate
    # them. One example's loss is a chain of attack_steps × (forward + backward pass) ops; a
    # pass of this 5→3→1 network is < 50 ops (2 × 22 multiply-adds + 4 activations); the mean
    # adds n. So k = 3·50 + n, on values of size ≤ max loss.
    k = 3 * 50 + X.shape[0]
    np.testing.assert_allclose(many, one, rtol=0, atol=tolerance.gamma(k) * max(one))
    with pytest.raises(ValueError, match=r"thetas must have shape \(K, 22\)"):
        training.adversarial_loss_many(prob, thetas[:, :-1])
