"""APGD and PGD (advlip.apgd): the exact worst case of a linear classifier, the schedule,
feasibility, replay, APGD against PGD, validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advlip import apgd, attacks, models, tolerance

U64 = tolerance.UNIT_ROUNDOFF


# module-level apply functions: the compiled attack is cached per function object
def _linear_apply(th, x):
    return th["W"] @ x.reshape(-1) + th["b"]


def _mlp_apply(th, x):
    return th["W2"] @ jnp.tanh(th["W1"] @ x.reshape(-1) + th["b1"]) + th["b2"]


def linear_loss():
    return models.ClassifierLoss(_linear_apply)


def linear_problem(seed, n=12, d=5, K=2):
    rng = np.random.default_rng(seed)
    th = {"W": jnp.asarray(rng.standard_normal((K, d))), "b": jnp.asarray(rng.standard_normal(K))}
    X = jnp.asarray(rng.standard_normal((n, d)))
    y = jnp.asarray(rng.integers(0, K, n))
    return th, X, y


def mlp_loss():
    return models.ClassifierLoss(_mlp_apply)


def mlp_problem(seed, n=16, d=6, K=3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    th = {
        "W1": 1.5 * rng.standard_normal((8, d)),
        "b1": rng.standard_normal(8),
        "W2": 1.5 * rng.standard_normal((K, 8)),
        "b2": np.zeros(K),
    }
    th = {k: jnp.asarray(v.astype(dtype)) for k, v in th.items()}
    X = jnp.asarray(rng.uniform(size=(n, 3, 2, 1)).astype(dtype))  # images, d = 6
    y = jnp.asarray(rng.integers(0, K, n))
    return th, X, y


STEPS = 15  # one step count for the MLP tests: one compiled program per attack


def test_checkpoints_match_the_formula():
    # independent exact computation in hundredths: p_0 = 0, p_1 = 22,
    # p_{j+1} = p_j + max(p_j - p_{j-1} - 3, 6), w_j = ceil(p_j N / 100) for p_j <= 100
    for N in (1, 2, 5, 10, 37, 100, 250, 1000):
        ps = [0, 22]
        while ps[-1] + max(ps[-1] - ps[-2] - 3, 6) <= 100:
            ps.append(ps[-1] + max(ps[-1] - ps[-2] - 3, 6))
        ws = []
        for pj in ps:
            w = -(-pj * N // 100)
            if w <= N and (not ws or w > ws[-1]):
                ws.append(w)
        assert apgd.checkpoints(N) == tuple(ws), N
    # the reference implementation's 100-step schedule (gaps 22, 19, 16, 13, 10, 7, 6, 6)
    assert np.diff(apgd.checkpoints(100)).tolist() == [22, 19, 16, 13, 10, 7, 6, 6]
    with pytest.raises(ValueError, match="steps"):
        apgd.checkpoints(0)


def test_halve_step_rule():
    window = 8
    for inc in range(window + 1):
        for reduced in (False, True):
            for best, last in ((1.0, 2.0), (1.0, 1.0), (2.0, 1.0)):
                want = inc < 0.75 * window or (not reduced and best <= last)
                got = bool(apgd.halve_step(inc, window, reduced, best, last))
                assert got == want, (inc, reduced, best, last)


@pytest.mark.parametrize("p", [math.inf, 2.0])
def test_two_class_linear_reaches_the_closed_form_maximum(p):
    # CE of 2 classes = softplus(a.(x + delta) + b_o - b_y), a = w_other - w_y, increasing in
    # a.delta: the max over the ball is softplus(m0 + eps ||a||_q), q the dual exponent
    th, X, y = linear_problem(0)
    eps = 0.3
    res = apgd.apgd(linear_loss(), th, X, y, eps=eps, p=p, steps=100, key=jax.random.PRNGKey(0))
    W, b = np.asarray(th["W"]), np.asarray(th["b"])
    yn, Xn = np.asarray(y), np.asarray(X)
    a = W[1 - yn] - W[yn]
    m0 = np.sum(a * Xn, axis=1) + b[1 - yn] - b[yn]
    q = 1 if math.isinf(p) else 2
    fstar = np.logaddexp(0.0, m0 + eps * np.linalg.norm(a, ord=q, axis=1))
    d = Xn.shape[1]
    # both values are a d-term dot product per logit plus a bias and a 2-term logsumexp:
    # rounding γ_{d+8} of the sum of |terms| each, on both sides; the attack stops where
    # a step no longer raises the computed loss, i.e. within that rounding of the max
    scale = np.abs(W) @ (np.abs(Xn).T + eps) + np.abs(b)[:, None]
    tol = 2 * tolerance.gamma(d + 8) * (scale.sum(axis=0) + fstar)
    assert np.all(np.abs(np.asarray(res.loss) - fstar) <= tol)
    if math.isinf(p):  # the maximiser itself: eps sign(a), exactly (a clip to the vertex)
        assert np.array_equal(np.asarray(res.delta), eps * np.sign(a))
    # never the zero perturbation where a better one exists
    assert np.all(np.linalg.norm(np.asarray(res.delta), axis=1) > 0)
    assert res.evaluations == 101


def test_step_halves_at_every_checkpoint_when_the_loss_stops_rising():
    # linear L∞: the first step (2 eps from a start inside the ball) lands on the vertex
    # eps sign(a) and every later iterate stays there, so no step raises the loss and rule
    # (a) halves eta at each checkpoint: eta = 2 eps / 2^(#checkpoints); powers of two are exact
    th, X, y = linear_problem(1)
    for steps in (10, 100):
        res = apgd.apgd(
            linear_loss(), th, X, y, eps=0.25, p=math.inf, steps=steps, key=jax.random.PRNGKey(3)
        )
        k = len(apgd.checkpoints(steps)) - 1
        assert np.all(np.asarray(res.step_size) == 0.5 / 2**k)


@pytest.mark.parametrize("p", [math.inf, 2.0])
def test_delta_stays_in_the_ball_and_the_box(p):
    th, X, y = mlp_problem(2)  # images: delta comes back in their shape
    eps = 0.4
    for attack in (apgd.apgd, apgd.pgd):
        res = attack(
            mlp_loss(), th, X, y, eps=eps, p=p, steps=STEPS, key=jax.random.PRNGKey(1), clip=(0, 1)
        )
        for delta in (np.asarray(res.delta), np.asarray(res.adversarial)):
            assert delta.shape == X.shape
            flat = delta.reshape(16, -1)
            d = flat.shape[1]
            if math.isinf(p):  # a clip: exact
                assert np.max(np.abs(flat)) <= eps
            else:
                # delta * (eps/||delta||): the norm (γ_{d+1}), the ratio and the product, then
                # this test's own norm (γ_{d+1})
                norms = np.linalg.norm(flat, axis=1)
                assert np.all(norms <= eps * (1 + tolerance.gamma(2 * d + 4)))
            z = np.asarray(X) + delta
            # delta = clip(v, 0 - x, 1 - x): 1 - x and x + delta each round once (u·max(1, |x|))
            assert np.all(z >= -2 * U64) and np.all(z <= 1 + 2 * U64)


def test_apgd_beats_pgd_on_a_tiny_mlp():
    # with the same number of gradient evaluations (31), APGD's best loss is higher than PGD's on
    # more examples than it is lower, for every key and norm (a regression check of the
    # adaptive schedule; PGD's fixed step 2.5 eps/steps cannot leave a local maximum)
    for seed in range(3):
        th, X, y = mlp_problem(seed)
        for p, eps in ((math.inf, 0.5), (2.0, 1.0)):
            key = jax.random.PRNGKey(seed)
            ra = apgd.apgd(mlp_loss(), th, X, y, eps=eps, p=p, steps=30, key=key)
            rp = apgd.pgd(mlp_loss(), th, X, y, eps=eps, p=p, steps=30, key=key)
            la, lp = np.asarray(ra.loss), np.asarray(rp.loss)
            assert np.sum(la > lp) > np.sum(la < lp), (seed, p)


def test_misclassified_flags_are_true():
    th, X, y = mlp_problem(4)
    res = apgd.apgd(
        mlp_loss(), th, X, y, eps=0.5, p=math.inf, steps=STEPS, key=jax.random.PRNGKey(0)
    )
    mis = np.asarray(res.misclassified)
    logits = mlp_loss().logits(th, X + res.adversarial)
    fooled = np.asarray(jnp.argmax(logits, axis=1)) != np.asarray(y)
    assert mis.any()
    assert np.all(fooled[mis])  # every flagged example has a misclassifying delta


def test_robust_accuracy_is_the_worst_case():
    th, X, y = mlp_problem(5)
    r = apgd.robust_accuracy(
        mlp_loss(),
        th,
        X,
        y,
        eps=0.3,
        p=2.0,
        key=jax.random.PRNGKey(0),
        steps=STEPS,
        pgd_steps=STEPS,
    )
    clean = np.mean(np.argmax(mlp_loss().logits(th, X), axis=1) == np.asarray(y))
    assert r.clean == clean
    assert set(r.per_attack) == {"apgd-ce", "apgd-dlr", "pgd-ce"}
    assert r.robust == np.mean(r.robust_mask)
    assert r.robust <= r.apgd <= min(r.per_attack["apgd-ce"], r.per_attack["apgd-dlr"])
    assert r.robust <= r.pgd == r.per_attack["pgd-ce"] <= r.clean
    assert r.apgd <= r.clean
    # each attack alone: a second call with the same key gives the same per-attack figures
    ce = apgd.apgd(
        mlp_loss(),
        th,
        X,
        y,
        eps=0.3,
        p=2.0,
        steps=STEPS,
        key=jax.random.fold_in(jax.random.PRNGKey(0), 0),
    )
    ok = (np.argmax(np.asarray(mlp_loss().logits(th, X)), axis=1) == np.asarray(y)) & ~np.asarray(
        ce.misclassified
    )
    assert r.per_attack["apgd-ce"] == np.mean(ok)


def test_replay_from_the_key():
    th, X, y = mlp_problem(6)
    kw = dict(eps=0.5, p=2.0, steps=STEPS, restarts=2)
    a = apgd.apgd(mlp_loss(), th, X, y, key=jax.random.PRNGKey(7), **kw)
    b = apgd.apgd(mlp_loss(), th, X, y, key=jax.random.PRNGKey(7), **kw)
    c = apgd.apgd(mlp_loss(), th, X, y, key=jax.random.PRNGKey(8), **kw)
    assert np.array_equal(np.asarray(a.delta), np.asarray(b.delta))
    assert np.array_equal(np.asarray(a.loss), np.asarray(b.loss))
    assert not np.array_equal(np.asarray(a.delta), np.asarray(c.delta))
    # pgd's start is sample_ball(fold_in(key, 0)); pgd_delta from that start is the same run
    key = jax.random.PRNGKey(9)
    res = apgd.pgd(mlp_loss(), th, X, y, eps=0.5, p=math.inf, steps=STEPS, key=key)
    d0 = attacks.sample_ball(jax.random.fold_in(key, 0), (16, 6), eps=0.5, p=math.inf)
    d0 = d0.reshape(X.shape)
    traced = jax.jit(
        lambda th: apgd.pgd_delta(
            mlp_loss().apply, th, X, y, jnp.asarray(d0), eps=0.5, p=math.inf, steps=STEPS
        )
    )(th)
    assert np.array_equal(np.asarray(traced), np.asarray(res.delta))


def test_float32_runs_in_float32():
    th, X, y = mlp_problem(7, dtype=np.float32)
    res = apgd.apgd(mlp_loss(), th, X, y, eps=0.5, p=2.0, steps=STEPS, key=jax.random.PRNGKey(0))
    assert res.delta.dtype == jnp.float32 and res.loss.dtype == jnp.float32
    d = 6
    norms = np.linalg.norm(np.asarray(res.delta, np.float64).reshape(16, d), axis=1)
    # the scaling's rounding in float32 (as in the float64 test; this norm is float64)
    assert np.all(norms <= 0.5 * (1 + tolerance.gamma(d + 4, np.float32)))


def test_bad_arguments_are_refused():
    th, X, y = mlp_problem(8)
    lf, key = mlp_loss(), jax.random.PRNGKey(0)
    good = dict(eps=0.5, p=2.0, key=key)
    cases = [
        (dict(good, eps=0.0), "eps"),
        (dict(good, eps=float("nan")), "eps"),
        (dict(good, p=1), "p="),
        (dict(good, steps=0), "steps"),
        (dict(good, restarts=0), "restarts"),
        (dict(good, loss="hinge"), "loss"),
        (dict(good, clip=(1.0, 0.0)), "clip"),
        (dict(good, clip=(0.2, 1.0)), "clip"),  # X has values below 0.2
        (dict(good, key=3), "key"),
    ]
    for kw, match in cases:
        with pytest.raises(ValueError, match=match):
            apgd.apgd(lf, th, X, y, **kw)
    with pytest.raises(ValueError, match="loss_fn"):
        apgd.apgd(lambda th, x, y: 0.0, th, X, y, **good)
    with pytest.raises(ValueError, match="step_size"):
        apgd.pgd(lf, th, X, y, step_size=-1.0, **good)
    with pytest.raises(ValueError, match="losses"):
        apgd.robust_accuracy(lf, th, X, y, losses=(), **good)


def test_dlr_needs_three_classes():
    th, X, y = linear_problem(9)  # two classes
    with pytest.raises(ValueError, match="dlr.*3 classes"):
        apgd.apgd(linear_loss(), th, X, y, eps=0.1, p=2.0, loss="dlr", key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="dlr.*3 classes"):
        apgd.robust_accuracy(linear_loss(), th, X, y, eps=0.1, p=2.0, key=jax.random.PRNGKey(0))
    # CE alone is fine for two classes
    r = apgd.robust_accuracy(
        linear_loss(),
        th,
        X,
        y,
        eps=0.1,
        p=2.0,
        losses=("ce",),
        key=jax.random.PRNGKey(0),
        steps=10,
        pgd_steps=10,
    )
    assert set(r.per_attack) == {"apgd-ce", "pgd-ce"}
