"""advlip.spectrum: top-k eigenpairs, traces and spectral densities of the total and naive Hessians.

Every expected value comes from an independent route: ``numpy.linalg.eigvalsh`` / the trace
of the dense Hessians that :meth:`AdversarialPoint.blocks` builds from per-example blocks
(not from Hessian-vector products), or dense matrices with a known spectrum for the bare
functions. Tolerances are the bounds the functions return plus the dense route's own
error bound ``Blocks.error`` (entrywise, so its sum bounds the 2-norm and the trace of
the dense error), or the float64 rounding of what is compared with the operation count
stated where it is used. Statistical checks use deterministic keys and state the
distributional argument behind their factor.

The problem: a tanh MLP 4 → 5 → 1 (P = 31 parameters) on 6 synthetic examples, attacked
in L2 (every maximiser on the sphere, G2) and in L∞ (vertices and faces, so the total
Hessian differs from the naive one).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advlip import adversarial, data, models, plots, spectrum, streaming, tolerance

N, D, WIDTH = 6, 4, 5
EPS = {2.0: 0.1, math.inf: 0.1}
EPS64 = tolerance.UNIT_ROUNDOFF


def _problem():
    X, y = data.synthetic(jax.random.PRNGKey(0), n=N, d=D)
    params = models.init_mlp(jax.random.PRNGKey(1), D, (WIDTH,), scale=1.5)
    return models.MLPLoss("tanh"), params, X, y


@functools.lru_cache(maxsize=2)
def _point(p):
    """One point per threat model, shared by the fixtures (its dense blocks and error
    scales are cached on it)."""
    loss, params, X, y = _problem()
    pt = adversarial.linearize(loss, params, X, y, eps=EPS[p], p=p)
    assert pt.all_determined, pt.reasons
    if p == math.inf:  # some maximisers on faces: δ* moves, total ≠ naive
        assert "linf_face" in pt.cases and "linf_vertex" in pt.cases
    return pt


@pytest.fixture(scope="module", params=[2.0, math.inf], ids=["L2", "Linf"])
def point(request):
    return _point(request.param)


@pytest.fixture(scope="module")
def l2_point():
    return _point(2.0)


def _dense(pt, hessian):
    """The dense Hessian (float64) and a bound on its 2-norm error: Σ|E_ij| ≥ ‖E‖_F ≥ ‖E‖₂
    (the same sum bounds |tr E|)."""
    B = pt.blocks()
    H = np.asarray(B.total if hessian == "total" else B.naive, dtype=np.float64)
    return H, float(np.sum(np.asarray(B.error, dtype=np.float64)))


def _op_error(pt, hessian):
    """Bound on ‖Ĥ − H‖₂ of the matrix-free operator (its rounding and CG; the attack part
    is not a difference between two computations at the same δ̂)."""
    e = np.zeros(pt.dim)
    e[0] = 1.0
    return pt.eigen_error(jnp.asarray(e), hessian=hessian).operator


# --------------------------------------------------------------------------- top-k on a point


@pytest.mark.parametrize("hessian", ["total", "naive"])
def test_top_k_equals_dense_eigenvalues_within_bounds(point, hessian):
    P = point.dim
    H, dense_err = _dense(point, hessian)
    ev = np.linalg.eigvalsh(H)[::-1]
    k = 4
    top = point.top_eigenvalues(k, hessian=hessian, num_steps=P)  # the whole space: exact
    assert top.values.shape == (k,) and top.vectors.shape == (k, P) and top.hessian == hessian
    assert np.all(np.diff(top.values) <= 0)  # descending
    err = np.abs(top.values - ev[:k])
    assert np.all(err <= top.bounds + dense_err), (err, top.bounds, dense_err)
    # the comparison has teeth: neighbouring eigenvalues are farther apart than the
    # tolerance, so a value matched to the wrong eigenvalue (or a missed one) fails
    gaps = np.abs(np.diff(ev[: k + 1]))
    assert np.all(gaps > 2 * (np.max(top.bounds) + dense_err))
    # not vacuous: with every step taken the Ritz pairs are eigenpairs to rounding, so the
    # bound is the float64 error of the operator (γ_k · mean‖H_i‖_F, k a few hundred
    # operations: ~1e-13 relative) — a millionth of |λ|max would mean an unconverged pair
    # or an error term that does not shrink with the unit roundoff
    assert np.all(top.bounds < 1e-6 * np.max(np.abs(ev)))
    assert np.all(top.bounds == top.residuals + top.rounding + top.operator + top.attack)
    # orthonormal Ritz vectors: full reorthogonalisation keeps QᵀQ = I within the rounding
    # of two Gram–Schmidt passes per step, steps · γ_{4P+8}
    gram = top.vectors @ top.vectors.T
    assert np.max(np.abs(gram - np.eye(k))) <= P * tolerance.gamma(4 * P + 8)


def test_residuals_are_true_residuals(l2_point):
    """Few steps (unconverged pairs, large residuals): each reported residual is
    ‖Hv − θv‖ recomputed with the dense Hessian, and an eigenvalue of the dense Hessian
    lies within each bound (the residual theorem for symmetric matrices)."""
    pt = l2_point
    H, dense_err = _dense(pt, "total")
    ev = np.linalg.eigvalsh(H)
    top = pt.top_eigenvalues(3, num_steps=6, key=jax.random.PRNGKey(5))
    assert top.steps == 6
    for lam, v, r, rnd, op in zip(
        top.values, top.vectors, top.residuals, top.rounding, top.operator, strict=True
    ):
        dense_r = np.linalg.norm(H @ v - lam * v)
        # the two routes differ by the two operators' errors on a unit vector, plus the
        # rounding of the residual itself (rnd, an n-term norm of the difference)
        assert abs(dense_r - r) <= op + dense_err + rnd, (dense_r, r)
    # teeth: these pairs are not converged, so the residuals are far above that tolerance
    assert np.min(top.residuals) > 100 * (np.max(top.operator) + dense_err)
    dist = np.min(np.abs(ev[None, :] - top.values[:, None]), axis=1)
    assert np.all(dist <= top.bounds + dense_err)


def test_top1_agrees_with_top_eigenvalue(l2_point):
    key = jax.random.PRNGKey(3)
    one = l2_point.top_eigenvalue(key=key)
    top = l2_point.top_eigenvalues(1, key=key)
    # the same start vector and steps: both bound their distance to the top eigenvalue
    assert abs(float(one.value) - top.values[0]) <= float(one.bound) + top.bounds[0]
    # the same error parts at (to rounding) the same vector
    assert top.operator[0] == pytest.approx(one.operator, rel=1e-6)
    assert top.steps == one.steps


# --------------------------------------------------------------------------- bare operators


def _sym(eigs, seed=0):
    n = len(eigs)
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    A = (Q * np.asarray(eigs, dtype=float)) @ Q.T
    return 0.5 * (A + A.T)


def _mv(A):
    A = jnp.asarray(A)
    return lambda v: A @ v


@pytest.mark.parametrize(
    "eigs",
    [
        # multiplicities: the copies lie outside the first Krylov space (5 distinct values)
        [5.0, 5.0, 5.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0, -1.0],
        [0.0] * 6,  # the zero operator: every run breaks down at once
        [3.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # rank two
    ],
    ids=["repeated", "zero", "rank2"],
)
def test_bare_top_k_finds_multiplicities(eigs):
    A = _sym(eigs)
    n = len(eigs)
    top = spectrum.top_eigenvalues(_mv(A), n, np.float64, n, num_steps=n)
    expected = np.sort(np.linalg.eigvalsh(A))[::-1]
    # Kahan: orthonormal Ritz vectors and their residuals bound the distance of the k
    # values to k eigenvalues; here all of them, so sorted matches sorted. The reference
    # eigvalsh of the float64 A (formed by two products) is backward stable: within
    # γ_{cn}‖A‖₂, c small — 8n·u·‖A‖ (with an absolute floor of 8n·u for the zero operator)
    ref_err = 8 * n * EPS64 * (np.max(np.abs(eigs)) + 1.0)
    assert np.all(np.abs(top.values - expected) <= top.bounds + ref_err)
    # orthonormal across restarts: each run is reorthogonalised against the earlier bases
    # (two projections), steps · γ_{4n+8} as in one run
    assert np.max(np.abs(top.vectors @ top.vectors.T - np.eye(n))) <= n * tolerance.gamma(4 * n + 8)
    assert top.steps <= n


def test_bare_top_k_in_float32():
    """A float32 operator: the bounds use float32's unit roundoff and still hold against
    the float64 eigenvalues."""
    eigs = np.array([4.0, 2.5, 1.0, 0.5, -0.5, -3.0])
    A = _sym(eigs, seed=1)
    A32 = jnp.asarray(A, dtype=jnp.float32)
    top = spectrum.top_eigenvalues(_mv(A32), 6, np.float32, 3, num_steps=6)
    # the float32 matrix itself is off by u32·|A_ij| entrywise: ‖δA‖₂ ≤ ‖δA‖_F ≤ 6·u32·max|A_ij|
    rounding_of_A = 6 * tolerance.unit_roundoff(np.float32) * np.max(np.abs(A))
    assert np.all(np.abs(top.values - eigs[:3]) <= top.bounds + rounding_of_A)
    assert np.all(top.bounds < 1e-4 * np.max(np.abs(eigs)))  # float32-sized, not vacuous


# --------------------------------------------------------------------------- trace


def test_hutch_pp_with_3p_products_is_exact(l2_point):
    pt = l2_point
    P = pt.dim
    H, dense_err = _dense(pt, "total")
    est = pt.trace(num_samples=3 * P, method="hutch++", key=jax.random.PRNGKey(2))
    assert est.num_matvecs == 3 * P and est.method == "hutch++"
    # the sketch spans the whole space: tr(QᵀÂQ) = tr Â to rounding. |tr(Qᵀ(Â − H)Q)| ≤
    # P‖Â − H‖₂; the dense trace is off by at most Σ|E_ij|; the orthonormality of Q and
    # the P-term sums add γ_{8P+16} · P‖H‖₂
    norm = np.max(np.abs(np.linalg.eigvalsh(H)))
    tol = P * _op_error(pt, "total") + dense_err + tolerance.gamma(8 * P + 16) * P * norm
    assert abs(est.estimate - np.trace(H)) <= tol
    assert est.standard_error <= tol  # the deflated part is rounding noise
    # teeth: plain Hutchinson with the same products is far from exact
    h = pt.trace(num_samples=3 * P, method="hutchinson", key=jax.random.PRNGKey(2))
    assert abs(h.estimate - np.trace(H)) > 1e3 * tol


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_trace_within_five_standard_errors(point, method):
    H, dense_err = _dense(point, "total")
    tr = np.trace(H)
    for seed in range(4):
        est = point.trace(num_samples=12, method=method, key=jax.random.PRNGKey(seed))
        assert est.num_matvecs == 12 and np.isfinite(est.standard_error)
        # unbiased, so |error| ≤ 5 SE unless a (deterministic) draw is a 5σ outlier;
        # the operator errors (≤ 1e-12) do not matter at this scale
        assert abs(est.estimate - tr) <= 5 * est.standard_error + dense_err


@pytest.mark.parametrize("method,m", [("hutchinson", 8), ("hutch++", 24)])
def test_standard_error_matches_the_spread(method, m):
    """Over 50 keys the spread of the estimates matches the reported standard errors.

    For Hutch++ the estimate is unbiased given the sketch, so its variance is the mean
    of the conditional variance of the deflated part, which SE² estimates without bias
    (ddof 1); likewise for Hutchinson. With 50 draws the sample standard deviation is
    within about ±30 % of the true one (2σ, moderately heavy tails), so a factor 2 holds;
    a wrong formula (no 1/√g, the whole sample instead of the deflated part) is off by
    √g ≥ √8 ≈ 2.8 or more."""
    A = _sym(np.linspace(-1.0, 3.0, 24) ** 3, seed=2)
    mv = _mv(A)
    ests, ses = [], []
    for seed in range(50):
        e = spectrum.trace(
            mv, 24, np.float64, num_samples=m, method=method, key=jax.random.PRNGKey(seed)
        )
        ests.append(e.estimate)
        ses.append(e.standard_error)
    spread = np.std(ests, ddof=1)
    reported = math.sqrt(np.mean(np.square(ses)))
    assert 0.5 <= spread / reported <= 2.0, (spread, reported)
    # the mean over 50 keys is within 5 standard errors of the mean (its own SE: /√50)
    assert abs(np.mean(ests) - np.trace(A)) <= 5 * spread / math.sqrt(50)


# --------------------------------------------------------------------------- density


def test_slq_nodes_weights_and_first_moment(l2_point):
    point = l2_point
    P = point.dim
    H, dense_err = _dense(point, "total")
    ev = np.linalg.eigvalsh(H)
    probes = 6
    dens = point.spectral_density(num_probes=probes, num_steps=P, key=jax.random.PRNGKey(4))
    assert dens.nodes.shape == (probes, P) and dens.weights.shape == (probes, P)
    # Gauss weights are squared first components of an orthogonal matrix: they sum to 1
    # within the eigensolver's orthogonality, γ_{P²+8} (the count of spectral.lanczos)
    assert np.all(np.abs(dens.weights.sum(axis=1) - 1.0) <= tolerance.gamma(P * P + 8))
    assert np.all(dens.weights >= 0)
    # every step taken: each probe's Krylov space is invariant, so every weighted node is
    # an eigenvalue of the operator, within the Lanczos rounding (√P γ_{6P+12} + γ_{P²+8})‖H‖
    # plus the two operators' errors
    norm = np.max(np.abs(ev))
    tol = (
        (math.sqrt(P) * tolerance.gamma(6 * P + 12) + tolerance.gamma(P * P + 8)) * norm
        + _op_error(point, "total")
        + dense_err
    )
    weighted = dens.nodes[dens.weights > 1e-12]
    assert np.all(np.min(np.abs(weighted[:, None] - ev[None, :]), axis=1) <= tol)
    # first moment Σ w θ = qᵀHq per probe: the mean is Hutchinson's tr H / P
    m1 = np.sum(dens.weights * dens.nodes, axis=1)
    se = np.std(m1, ddof=1) / math.sqrt(probes)
    assert abs(np.mean(m1) - np.trace(H) / P) <= 5 * se + dense_err / P
    assert se > 0  # different probes see different weights (the check is not 0 ≤ 0)
    # the smoothed density integrates to 1: the default grid reaches 4σ past the extreme
    # nodes (tails ≤ Φ(−4) ≈ 3e-5 each) with ≈ 3.7 points per σ (trapezoid error negligible)
    assert abs(np.trapezoid(dens.density, dens.grid) - 1.0) <= 1e-3


def test_plot_spectral_density(l2_point, tmp_path):
    P = l2_point.dim  # the configuration of the tests above: its program is compiled
    dens = l2_point.spectral_density(num_probes=6, num_steps=P, key=jax.random.PRNGKey(4))
    path = tmp_path / "density.png"
    plots.plot_spectral_density(dens, path)
    head = path.read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="density"):
        plots.plot_spectral_density(dens._replace(density=dens.density[:-1]), tmp_path / "x.png")


# --------------------------------------------------------------------------- restriction


def test_restriction_is_the_principal_submatrix(l2_point):
    pt = l2_point
    H, dense_err = _dense(pt, "total")
    idx = spectrum.parameter_indices(pt.params, "[0]['W']")  # the first layer's weights
    assert idx.size == D * WIDTH
    # the other spellings select the same set
    by_path = spectrum.parameter_indices(
        pt.params, lambda path: jax.tree_util.keystr(path) == "[0]['W']"
    )
    mask = jax.tree.map(lambda a: False, pt.params)
    mask[0]["W"] = True
    assert np.array_equal(idx, by_path) and np.array_equal(
        idx, spectrum.parameter_indices(pt.params, mask)
    )
    Hs = H[np.ix_(idx, idx)]
    ev = np.linalg.eigvalsh(Hs)[::-1]
    top = pt.top_eigenvalues(3, params="[0]['W']", num_steps=idx.size)
    assert np.array_equal(top.selection, idx)
    assert np.all(np.abs(top.values - ev[:3]) <= top.bounds + dense_err)
    # teeth: the block's top eigenvalues are not the whole Hessian's
    assert np.abs(ev[0] - np.linalg.eigvalsh(H)[-1]) > 10 * (top.bounds[0] + dense_err)
    off = np.setdiff1d(np.arange(pt.dim), idx)
    assert np.all(top.vectors[:, off] == 0.0)
    # Hutch++ with 3|S| products: the block's trace, exactly
    est = pt.trace(num_samples=3 * idx.size, params="[0]['W']")
    norm = np.max(np.abs(ev))
    tol = (
        idx.size * _op_error(pt, "total")
        + dense_err
        + tolerance.gamma(8 * idx.size + 16) * idx.size * norm
    )
    assert abs(est.estimate - np.trace(Hs)) <= tol


def test_parameter_indices_entrywise():
    theta = {"b": jnp.zeros(2), "w": jnp.zeros((2, 2))}
    sel = {"b": np.array([True, False]), "w": np.array([[False, True], [True, False]])}
    # ravel order: b (0, 1), then w row-major (2..5)
    assert spectrum.parameter_indices(theta, sel).tolist() == [0, 3, 4]
    assert spectrum.parameter_indices(theta, None) is None


# --------------------------------------------------------------------------- streaming


def test_streamed_point_agrees_with_one_batch(l2_point):
    """The data twice over in batches of N rows: two batches, each the one-batch point (the
    same compiled shapes), so the streamed operator is the one-batch operator (the mean of
    two equal batch means) up to the rounding of the weighted sum."""
    loss, params, X, y = _problem()
    X2, y2 = jnp.concatenate([X, X]), jnp.concatenate([y, y])
    sp = streaming.linearize_batches(
        loss, params, X2, y2, eps=EPS[2.0], p=2.0, batch_size=N, progress=False
    )
    assert sp.all_determined and sp.num_batches == 2
    pt, P = l2_point, l2_point.dim
    a = pt.top_eigenvalues(3, num_steps=P)
    b = sp.top_eigenvalues(3, num_steps=P)
    # both bound their distance to the same exact eigenvalues
    assert np.all(np.abs(a.values - b.values) <= a.bounds + b.bounds)
    assert np.all(b.bounds < 1e-6 * np.max(np.abs(b.values)))  # not vacuous (as above)
    # the streamed eigen_error combines two copies of the batch's parts as top_eigenvalue
    # does: E = ½E₁ + ½E₁ + γ₄(½(S₁ + E₁) + ½(S₁ + E₁)), the attack ½a₁ + ½a₁
    v = jnp.asarray(b.vectors[0])
    one, two = pt.eigen_error(v), sp.eigen_error(v)
    expected = one.operator + tolerance.gamma(4) * (one.scale + one.operator)
    assert two.operator == pytest.approx(expected, rel=1e-12)
    assert two.attack == pytest.approx(one.attack, rel=1e-12, abs=1e-300)
    assert b.operator[0] == pytest.approx(two.operator, rel=1e-12)
    # the same probes: traces and SLQ first moments differ by the operators' errors only
    op = one.operator + two.operator
    ta = pt.trace(num_samples=9, method="hutchinson", key=jax.random.PRNGKey(1))
    tb = sp.trace(num_samples=9, method="hutchinson", key=jax.random.PRNGKey(1))
    # each term gᵀĤg, ‖g‖² = P, differs by ≤ P·op, and so does their mean
    assert abs(ta.estimate - tb.estimate) <= P * op
    assert ta.estimate != pytest.approx(
        np.trace(_dense(pt, "total")[0]), abs=P * op
    )  # a real estimate
    da = pt.spectral_density(num_probes=6, num_steps=P, key=jax.random.PRNGKey(4))
    db = sp.spectral_density(num_probes=6, num_steps=P, key=jax.random.PRNGKey(4))
    m1a = np.sum(da.weights * da.nodes, axis=1)
    m1b = np.sum(db.weights * db.nodes, axis=1)
    # first moment qᵀĤq (‖q‖ = 1) = T₁₁: equal up to op, plus the rounding of Σ w θ over
    # P nodes (γ_{2P}·Σ|wθ|, ≤ γ_{2P}·max|θ|)
    theta = np.max(np.abs(da.nodes))
    assert np.all(np.abs(m1a - m1b) <= op + 2 * tolerance.gamma(2 * P) * theta)


# --------------------------------------------------------------------------- bad arguments


def test_bad_arguments(l2_point):
    pt, P = l2_point, l2_point.dim
    with pytest.raises(ValueError, match="k=0"):
        pt.top_eigenvalues(0)
    with pytest.raises(ValueError, match=f"k={P + 1}"):
        pt.top_eigenvalues(P + 1)
    with pytest.raises(ValueError, match="k=7.*between 1 and 6"):
        pt.top_eigenvalues(7, params="[1]")  # the last layer: W (1 × 5) and b (1)
    with pytest.raises(ValueError, match="num_steps"):
        pt.top_eigenvalues(5, num_steps=3)
    with pytest.raises(ValueError, match="hessian='hessian'"):
        pt.top_eigenvalues(1, hessian="hessian")
    with pytest.raises(ValueError, match="hessian="):
        pt.trace(hessian="full")
    with pytest.raises(ValueError, match="params=.*selects no parameter"):
        pt.top_eigenvalues(1, params="['conv1']")
    with pytest.raises(ValueError, match="params must be"):
        pt.trace(params={"w": True})
    with pytest.raises(ValueError, match="params"):
        pt.trace(params=jax.tree.map(lambda a: False, pt.params))
    with pytest.raises(ValueError, match="num_samples=0"):
        pt.trace(num_samples=0, method="hutchinson")
    with pytest.raises(ValueError, match="num_samples=2"):
        pt.trace(num_samples=2, method="hutch++")
    with pytest.raises(ValueError, match="method='exact'"):
        pt.trace(method="exact")
    with pytest.raises(ValueError, match="key"):
        pt.top_eigenvalues(1, key=3)
    with pytest.raises(ValueError, match="num_probes=0"):
        pt.spectral_density(num_probes=0)
    with pytest.raises(ValueError, match="sigma="):
        pt.spectral_density(num_probes=1, num_steps=2, sigma=-1.0)
    with pytest.raises(ValueError, match="grid="):
        pt.spectral_density(num_probes=1, num_steps=2, grid=np.ones((2, 2)))
