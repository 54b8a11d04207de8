"""advlip.streaming: a dataset attacked batch by batch is the one-batch point.

The streamed point and the one-batch point compute the same per-example quantities
(the attack of an example does not see the rest of its batch) and differ only in the
order of the sums, so they must agree within the rounding of the two routes. Every
comparison is against the error bounds the two routes report (γ_k in the working
dtype times the sum of absolute values of the terms, plus the attack's error), never
a tolerance picked to pass; and each test checks that its tolerance is small beside
the values compared, so that the comparison has teeth.

n = 6 rows in batches of 4 (a last batch of 2, smaller than batch_size): every test
shares the three compiled shapes (6, 4, 2).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from advlip import adversarial, models, streaming, tolerance

N, D, BATCH = 6, 4, 4
EPS, P_NORM = 0.1, 2.0


def _problem(seed=0):
    rng0 = np.random.default_rng(seed + 100)
    params = {"w": jnp.asarray(rng0.standard_normal(D)), "b": jnp.asarray(0.1)}
    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.standard_normal((N, D)) / 2.0)
    y = jnp.asarray(np.resize([1.0, -1.0], N))
    return models.LinearLoss(), params, X, y


@pytest.fixture(scope="module")
def points():
    loss, params, X, y = _problem()
    pt = adversarial.linearize(loss, params, X, y, eps=EPS, p=P_NORM)
    sp = streaming.linearize_batches(
        loss, params, X, y, eps=EPS, p=P_NORM, batch_size=BATCH, progress=False
    )
    assert pt.all_determined and sp.all_determined
    return pt, sp


def _flat(tree):
    return np.asarray(ravel_pytree(tree)[0], dtype=np.float64)


def test_layout(points):
    pt, sp = points
    assert (sp.n, sp.batch_size, sp.num_batches) == (N, BATCH, 2)
    assert sp.batch_slices == (slice(0, 4), slice(4, 6))  # the last batch is smaller
    assert (sp.dim, sp.dtype) == (pt.dim, pt.dtype)
    assert sp.delta.shape == (N, D) and sp.kkt.residual.shape == (N,)
    assert sp.cases == pt.cases
    s, s1 = sp.summary(), pt.summary()
    assert s["n"] == N and s["cases"] == s1["cases"] and s["num_batches"] == 2
    assert s["max_residual"] == pytest.approx(s1["max_residual"], abs=1e-12)
    assert "num_batches=2" in repr(sp)


def test_loss_and_gradient_equal_the_one_batch_values(points):
    pt, sp = points
    ell = np.asarray(pt.attack.loss, dtype=np.float64)
    # Both routes evaluate the same n per-example losses (each at a δ its attack solved to
    # rounding, within the value's float error `value_error`) and average them in a
    # different order: n additions in one route, per-batch means then B weighted terms
    # in the other (+2: the weight's rounding and its product). Each is within
    # γ_{n+B+2}·mean|ℓ_i| + mean(value_error) of the exact mean, so they agree within twice that.
    k = N + sp.num_batches + 2
    value_err = float(np.mean(np.asarray(pt.attack.value_error, dtype=np.float64)))
    tol = 2 * (tolerance.gamma(k, pt.dtype) * float(np.mean(np.abs(ell))) + value_err)
    assert abs(float(sp.loss()) - float(pt.loss())) <= tol
    assert tol <= 1e-12 * abs(float(pt.loss()))
    # Each gradient is within its gradient_error — γ_k·mean|∇θℓ_i| (k: one example's
    # gradient chain, counted on its jaxpr, plus the sums) and the attack's error — of
    # the exact Danskin gradient; so the two agree within the sum of the two bounds.
    g_s, g_1 = _flat(sp.grad()), _flat(pt.grad())
    tol = sp.gradient_error() + pt.gradient_error()
    assert np.all(np.abs(g_s - g_1) <= tol)
    assert np.max(tol) <= 1e-10 * np.max(np.abs(g_1))
    assert jax.tree.structure(sp.grad()) == jax.tree.structure(pt.params)


@pytest.mark.parametrize("hessian", ["total", "naive"])
def test_products_equal_the_one_batch_products(points, hessian):
    pt, sp = points
    v = jnp.asarray(np.random.default_rng(1).standard_normal(pt.dim))
    one = pt.total_hvp if hessian == "total" else pt.naive_hvp
    streamed = sp.total_hvp if hessian == "total" else sp.naive_hvp
    h1, hs = np.asarray(one(v)), np.asarray(streamed(v))
    # each product is within its hvp_error — the rounding of the products (γ_k·‖H_i‖_F‖v‖,
    # k counted on one example's Hessian chain, plus the sums), of the CG solves, and
    # the attack's error — of the exact product: they agree within the sum of the bounds
    tol = sp.hvp_error(v, hessian=hessian) + pt.hvp_error(v, hessian=hessian)
    assert np.all(np.abs(hs - h1) <= tol)
    assert np.max(tol) <= 1e-9 * np.max(np.abs(h1))
    # the compiled streamed matvec is the same sum (batches in a lax.scan), to rounding
    mv = sp.matvec(hessian=hessian)
    assert np.all(np.abs(np.asarray(mv(v)) - hs) <= tol)
    # a pytree v gives a pytree in params' structure, the same numbers
    tree = streamed(pt.params)
    assert jax.tree.structure(tree) == jax.tree.structure(pt.params)
    np.testing.assert_array_equal(_flat(tree), np.asarray(streamed(ravel_pytree(pt.params)[0])))


def test_dense_solver_matvec_agrees(points):
    pt, sp = points
    v = jnp.asarray(np.random.default_rng(2).standard_normal(pt.dim))
    hs = np.asarray(sp.total_hvp(v))
    tol = 2 * sp.hvp_error(v)  # CG and the factorised solve: each within the bound
    assert np.all(np.abs(np.asarray(sp.matvec(solver="dense")(v)) - hs) <= tol)


def test_top_eigenvalue_agrees_within_the_two_bounds(points):
    pt, sp = points
    e1 = pt.top_eigenvalue()
    es = sp.top_eigenvalue()
    assert (es.method, es.hessian, es.steps) == ("lanczos", "total", e1.steps)
    assert es.exact_scale and e1.exact_scale
    assert es.bound == pytest.approx(es.krylov + es.rounding + es.operator + es.attack)
    assert es.operator > 0 and es.rounding > 0
    # an eigenvalue of the exact Hessian lies within each estimate's bound
    assert abs(float(es.value) - float(e1.value)) <= float(es.bound) + float(e1.bound)
    # P = 5 ≤ 40 steps: the Krylov space is all of R^P and the bounds are rounding-sized
    assert float(es.bound) + float(e1.bound) <= 1e-9 * abs(float(e1.value))
    # the adversarial loss of a linear model with a convex margin loss is convex in θ, so
    # the eigenvalue of largest magnitude (power iteration) is the largest one
    ep = sp.top_eigenvalue(method="power", num_steps=200)
    assert ep.method == "power"
    assert abs(float(ep.value) - float(e1.value)) <= float(ep.bound) + float(e1.bound)


def test_status_and_reasons_map_to_global_rows():
    loss, params, X, y = _problem()
    # rows 1 and 5 (in the first and the last batch) are attacked at the centre of the
    # ball with a loss that is flat in x (label 0 for a margin loss): no maximiser is
    # determined there
    y = y.at[1].set(0.0).at[5].set(0.0)
    pt = adversarial.linearize(loss, params, X, y, eps=EPS, p=P_NORM)
    sp = streaming.linearize_batches(
        loss, params, X, y, eps=EPS, p=P_NORM, batch_size=BATCH, progress=False
    )
    bad = np.flatnonzero(pt.status != 0)
    assert set(bad) == {1, 5}
    np.testing.assert_array_equal(sp.status, pt.status)
    assert sp.reasons[1] == pt.reasons[1] and sp.reasons[5] == pt.reasons[5]
    assert not sp.all_determined
    np.testing.assert_array_equal(sp.determined, pt.determined)
    with pytest.raises(
        adversarial.UndeterminedError, match=r"2 of 6 example.*example 1: .*example 5: "
    ) as err:
        sp.require_determined()
    # the streamed message carries the one-batch explanation of the hypotheses (found by
    # its opening words: if that marker stopped matching, the explanation would vanish)
    assert adversarial.HYPOTHESES_START in str(err.value)
    assert str(err.value).count(adversarial.HYPOTHESES_START) == 1


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4", None])
def test_bad_batch_size_is_refused_by_name(bad):
    loss, params, X, y = _problem()
    with pytest.raises(ValueError, match=r"batch_size=.* allowed: an integer >= 1"):
        streaming.linearize_batches(loss, params, X, y, eps=EPS, p=P_NORM, batch_size=bad)


def test_other_bad_arguments_are_refused():
    loss, params, X, y = _problem()
    kw = dict(eps=EPS, p=P_NORM, batch_size=BATCH)
    with pytest.raises(ValueError, match="progress="):
        streaming.linearize_batches(loss, params, X, y, progress="yes", **kw)
    with pytest.raises(ValueError, match="one entry per row"):
        streaming.linearize_batches(loss, params, X, y[:-1], **kw)
    with pytest.raises(ValueError, match="init must have the shape of X"):
        streaming.linearize_batches(loss, params, X, y, init=X[:2], **kw)


def test_progress_goes_to_stderr_only_when_on(capsys):
    loss, params, X, y = _problem()
    kw = dict(eps=EPS, p=P_NORM, batch_size=BATCH)
    streaming.linearize_batches(loss, params, X, y, progress=True, **kw)
    out, err = capsys.readouterr()
    assert out == "" and "advlip linearize" in err and "2/2" in err
    streaming.linearize_batches(loss, params, X, y, progress=False, **kw)
    # 2 batches, stderr not a terminal: the default is off as well
    streaming.linearize_batches(loss, params, X, y, **kw)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_keys_are_folded_per_batch(monkeypatch):
    """A key reaches batch b as fold_in(key, b); ``init`` is split with the rows."""
    seen = []
    real = adversarial.linearize

    def spy(loss_fn, params, X, y, **kw):
        seen.append((kw.get("key"), None if kw.get("init") is None else np.asarray(kw["init"])))
        return real(loss_fn, params, X, y, **kw)

    monkeypatch.setattr(adversarial, "linearize", spy)
    loss, params, X, y = _problem()
    key = jax.random.PRNGKey(3)
    init = np.full((N, D), 0.01)
    init[4:] = 0.02
    streaming.linearize_batches(
        loss, params, X, y, eps=EPS, p=P_NORM, batch_size=BATCH, progress=False, key=key, init=init
    )
    assert len(seen) == 2
    for b, (k, _) in enumerate(seen):
        np.testing.assert_array_equal(np.asarray(k), np.asarray(jax.random.fold_in(key, b)))
    np.testing.assert_array_equal(seen[0][1], init[:4])
    np.testing.assert_array_equal(seen[1][1], init[4:])


def test_one_batch_is_the_one_batch_point(points):
    """batch_size ≥ n: one batch, and the point's own numbers (no reordering at all)."""
    pt, _ = points
    loss, params, X, y = _problem()
    sp = streaming.linearize_batches(
        loss, params, X[:BATCH], y[:BATCH], eps=EPS, p=P_NORM, batch_size=10, progress=False
    )
    one = adversarial.linearize(loss, params, X[:BATCH], y[:BATCH], eps=EPS, p=P_NORM)
    assert sp.num_batches == 1 and sp.batch_slices == (slice(0, BATCH),)
    # weight 1.0 is exact and 1.0·x = x: bit for bit
    assert float(sp.loss()) == float(one.loss())
    np.testing.assert_array_equal(_flat(sp.grad()), _flat(one.grad()))
    v = jnp.ones(one.dim)
    np.testing.assert_array_equal(np.asarray(sp.total_hvp(v)), np.asarray(one.total_hvp(v)))
