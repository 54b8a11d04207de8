"""The curvature-table experiment (advlip.curvature_table) at its tiny size.

One run of the experiment (module fixture) is checked for its structure, for claims that
follow from its own numbers (recomputed here), for its pictures and for its replay from
the key; the L∞ vertex statement is recomputed independently on the experiment's own
initial network, and the switching-surface quantities are checked on a linear model
where they have closed forms.
"""

import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advlip import adversarial, attacks, experiments, keys, models, plots, tolerance, training
from advlip import curvature_table as ct

KEY = jax.random.PRNGKey(3)
TINY = ct.SIZES["tiny"]
EPS64 = tolerance.unit_roundoff(np.float64)


def _ctx(out):
    return experiments._Ctx("curvature-table", out, True, KEY, lambda msg: None, {})


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    out = tmp_path_factory.mktemp("curvature-table")
    return ct.experiment(_ctx(out), sizes="tiny")


def _points_per_run(sz):
    return len(sz.checkpoints) + len([e for e in sz.eps_l2 if e != sz.eps_train])


def test_bad_options_are_clear_errors(tmp_path):
    ctx = experiments._Ctx("curvature-table", tmp_path, True, KEY, lambda m: None, {"data": "x"})
    with pytest.raises(ValueError, match="data='x' is not allowed; allowed: 'digits'"):
        ct.experiment(ctx, sizes="tiny")
    with pytest.raises(ValueError, match="sizes='huge' is not allowed"):
        ct.experiment(_ctx(tmp_path), sizes="huge")


def test_document_structure_and_strict_json(doc):
    pts = doc["points"]
    assert len(pts) == TINY.seeds * 2 * _points_per_run(TINY)
    assert {(q["seed"], q["p"]) for q in pts} == {
        (s, p) for s in range(TINY.seeds) for p in (2.0, math.inf)
    }
    for q in pts:
        for h in ("total", "naive"):
            assert math.isfinite(q[f"lambda_{h}"]) and q[f"lambda_{h}_bound"] >= 0
            assert math.isfinite(q[f"trace_{h}"]) and q[f"trace_{h}_stderr"] >= 0
        n = q["n"]
        assert len(q["status"]) == n and 0 <= q["determined"] <= n
        assert q["undetermined_fraction"] == pytest.approx(1 - q["determined"] / n, abs=0)
        assert sum(q["reasons"].values()) == n - q["determined"]
        sw = q["switching"]
        assert all(np.shape(sw[k]) == (n,) for k in ("slack", "multiplier", "theta_distance"))
        # the eps of each point is the matched budget of its L2 budget
        assert q["eps"] == training.matched_eps(q["eps_l2"], 64, q["p"])
    assert len(doc["runs"]) == TINY.seeds * 2
    assert all(len(r["loss"]) == TINY.steps for r in doc["runs"])
    text = json.dumps(
        training.json_safe(doc | {"pngs": [str(p) for p in doc["pngs"]]}), allow_nan=False
    )
    assert "claims" in json.loads(text)
    # every row's λ_max means are printed whole in the text
    words = doc["table_text"].split()
    for row in doc["table"]:
        assert f"{row['lambda_total']['mean']:.4g}" in words
        assert f"{row['lambda_naive']['mean']:.4g}" in words


def test_pictures_are_the_figures_and_follow_the_rules(doc, tmp_path):
    figs = experiments.figures(training.json_safe(doc), "curvature-table")
    assert list(figs) == ["curvature-table-curvature.png", "curvature-table-switching.png"]
    for (name, fig), png in zip(figs.items(), doc["pngs"], strict=True):
        assert plots.figure_problems(fig) == [], name
        plots._save(fig, tmp_path / name)  # redrawn from the JSON: the PNG, byte for byte
        assert (tmp_path / name).read_bytes() == Path(png).read_bytes(), name


def test_every_point_lies_in_its_band_and_the_lines_are_the_means(doc):
    fig = experiments.figures(training.json_safe(doc), "curvature-table")[
        "curvature-table-curvature.png"
    ]
    ax = fig.axes[0]  # λ_max across budgets at the end of training
    end = max(TINY.checkpoints)
    names = {2.0: "L2", math.inf: "L∞"}
    lines = {ln.get_label(): ln for ln in ax.lines}
    bands = list(ax.collections)  # in drawing order: L2 total, L2 naive, L∞ total, L∞ naive
    assert len(bands) == 4
    order = [(p, h) for p in (2.0, math.inf) for h in ("total", "naive")]
    for b, (p, h) in zip(bands, order, strict=True):
        pts = [q for q in doc["points"] if q["p"] == p and q["checkpoint"] == end]
        line = lines[f"{names[p]}: {h} Hessian"]
        xs = sorted({q["eps_l2"] for q in pts})
        assert list(line.get_xdata()) == xs
        verts = np.concatenate([path.vertices for path in b.get_paths()])
        for x, y in zip(xs, line.get_ydata(), strict=True):
            vals = [q[f"lambda_{h}"] for q in pts if q["eps_l2"] == x]
            assert len(vals) == TINY.seeds  # every seed's point is drawn
            assert y == float(np.mean(vals))  # the same numbers reduced the same way
            at = verts[verts[:, 0] == x, 1]
            assert at.min() <= min(vals) and max(vals) <= at.max()


def _table_rows():
    row = {"p": math.inf, "eps_l2": 0.5, "eps": 0.0625, "checkpoint": 0.25, "seeds": 3}
    figs = {
        "lambda_total": (0.1209, 2.533e-05),
        "lambda_naive": (12.28, 3.36),
        "lambda_ratio": (1.00004, 0.0004427),
        "trace_total": (1024.5, 11.02),
        "trace_naive": (0.000123, 1.5e-07),
        "trace_ratio": (1.066, 0.05887),
        "undetermined_fraction": (0.125, 0.0),
        "within_one_step": (0.75, 0.1),
        "within_lr_grad": (0.5, 0.2),
    }
    row.update({k: {"mean": m, "std": s} for k, (m, s) in figs.items()})
    return [row, {**row, "p": 2.0, "eps": 0.5}]


@pytest.mark.parametrize("width", [60, 80, 100, 200])
def test_format_table_fits_the_width_and_cuts_no_number(width):
    rows = _table_rows()
    text = ct.format_table(rows, width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    words = text.split()
    for row in rows:
        for key in ("lambda_total", "lambda_naive", "lambda_ratio", "trace_total", "trace_ratio"):
            assert f"{row[key]['mean']:.4g}" in words and f"{row[key]['std']:.4g}" in words
    assert words.count("Linf") == words.count("L2") == 2  # each row in both tables


def test_format_table_follows_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "72")
    assert ct.format_table(_table_rows()) == ct.format_table(_table_rows(), width=72)
    with pytest.raises(ValueError, match="width=0 is not allowed"):
        ct.format_table(_table_rows(), width=0)


def test_table_is_the_spread_of_the_points(doc):
    for row in doc["table"]:
        sel = [
            q
            for q in doc["points"]
            if (q["p"], q["eps_l2"], q["checkpoint"])
            == (row["p"], row["eps_l2"], row["checkpoint"])
        ]
        assert row["seeds"] == len(sel) == TINY.seeds
        for f in ("lambda_total", "lambda_naive", "trace_total", "within_one_step"):
            vals = np.array([q[f] for q in sel])
            # the same float64 numbers reduced the same way: exactly equal
            assert row[f]["mean"] == float(np.mean(vals))
            assert row[f]["min"] == vals.min() and row[f]["max"] == vals.max()


def test_claims_follow_from_the_reported_numbers(doc):
    pts = doc["points"]
    full = [q for q in pts if q["determined"] == q["n"]]
    claims = doc["claims"]
    assert len(claims) == 4 and all(isinstance(c["holds"], bool) for c in claims)

    # 1: L2, |total - naive| beyond the two eigenvalue bounds at every determined point
    l2 = [q for q in full if q["p"] == 2.0]
    differ = [
        abs(q["lambda_total"] - q["lambda_naive"])
        > q["lambda_total_bound"] + q["lambda_naive_bound"]
        for q in l2
    ]
    assert claims[0]["holds"] == (len(l2) > 0 and all(differ))
    assert claims[0]["points"] == len(l2)

    # 2: the correction is PSD (eigenvalue within bounds, trace within 3 standard errors)
    ok = [
        q["lambda_total"] >= q["lambda_naive"] - q["lambda_total_bound"] - q["lambda_naive_bound"]
        and q["trace_total"] - q["trace_naive"]
        >= -3 * math.sqrt(q["trace_total_stderr"] ** 2 + q["trace_naive_stderr"] ** 2)
        for q in full
    ]
    assert claims[1]["holds"] == (len(full) > 0 and all(ok))

    # 3: no determined vertex maximiser moved when θ moved by ±h v
    fds = [q["vertex_fd"] for q in pts if math.isinf(q["p"])]
    used = [f for f in fds if f["vertex_examples"] > 0]
    assert claims[2]["holds"] == (len(used) > 0 and all(f["vertex_max_moved"] == 0 for f in used))

    # 4: every located crossing (both sides converged, a finite bound) against its tolerance
    found = [
        c
        for c in doc["crossings"]
        if c["found"] and 1 not in c["status"] and math.isfinite(c["tolerance"])
    ]
    assert claims[3]["holds"] == (
        len(found) > 0 and all(c["residual"] <= c["tolerance"] for c in found)
    )
    for c in found:
        # three non-negative terms summed in float64: within 2 units of roundoff
        assert c["tolerance"] == pytest.approx(sum(c["tolerance_parts"].values()), rel=4 * EPS64)
        assert c["bracket"][0] < c["bracket"][1] and c["faces_changed"] >= 1


def _initial_point(p):
    """The experiment's seed-0 network at checkpoint 0 (its initialisation, from the key)
    and its probe examples, rebuilt here."""
    X, labels, classes, _ = ct._dataset("digits")
    perm = keys.numpy_rng(KEY, 1).permutation(X.shape[0])
    rest = perm[TINY.n_train :][: TINY.n_probe]
    params, lf = ct._model(jax.random.fold_in(KEY, 0), classes, TINY)
    eps = training.matched_eps(TINY.eps_train, 64, p)
    return params, lf, jnp.asarray(X[rest]), jnp.asarray(labels[rest]), eps


def test_linf_vertex_total_equals_naive_recomputed():
    params, lf, X, y, eps = _initial_point(math.inf)
    pt = adversarial.linearize(lf, params, X, y, eps=eps, p=math.inf)
    vertex = np.flatnonzero((np.asarray(pt.kkt.kind) == 2) & pt.determined)
    assert vertex.size > 0, "no vertex maximiser among the probe examples"
    # a batch of vertex examples only (repeated to the probe size: the equality of total
    # and naive does not depend on the weights of the mean)
    idx = np.resize(vertex, X.shape[0])
    pv = adversarial.linearize(lf, params, X[idx], y[idx], eps=eps, p=math.inf)
    assert np.all(np.asarray(pv.kkt.tangent_dim) == 0)
    v = jax.random.normal(jax.random.PRNGKey(11), (pv.dim,))
    tot = np.asarray(pv.total_hvp(v))
    nai = np.asarray(pv.naive_hvp(v))
    # the reported componentwise error bounds of the two products
    bound = pv.hvp_error(v, hessian="total") + pv.hvp_error(v, hessian="naive")
    assert np.all(np.abs(tot - nai) <= bound)
    # and not vacuously: a correction of the products' own size would exceed the bound
    assert np.max(bound) < np.max(np.abs(nai))


def test_switching_gradient_matches_finite_differences():
    # the θ-gradient of the nearest constraint at a face maximiser (δ* moves with θ, the
    # A⁺P term counts) against central differences of the constraint re-solved at θ ± h u
    params, lf, X, y, eps = _initial_point(math.inf)
    pt = adversarial.linearize(lf, params, X, y, eps=eps, p=math.inf)
    sw = ct.switching(pt)
    dist = sw["theta_distance"]
    face = (np.asarray(pt.kkt.kind) == 3) & pt.determined & np.isfinite(dist) & (dist > 0)
    assert face.any(), "no face maximiser among the probe examples"
    i = int(np.flatnonzero(face)[np.argmin(dist[face])])
    j, mult = int(sw["index"][i]), bool(sw["is_multiplier"][i])
    u, h = jnp.asarray(sw["direction"][i]), 0.01 * float(dist[i])
    theta = ct._flat(params)
    k = attacks.cached_ops("hessian", lf, params, X[0], y[0])

    def value(t):
        th = ct._unflat_like(params, theta + t * u)
        att = attacks.pgd(
            lf, th, X, y, eps=eps, p=math.inf, init=pt.delta, steps=0, refine_steps=20
        )
        e_delta = float(
            adversarial.linearize(lf, th, X, y, eps=eps, p=math.inf, attack=att).delta_errors()[i]
        )
        d, g = att.delta[i], att.grad_x[i]
        if not mult:  # a slack ε - |δ_j|: off by the δ error
            return eps - abs(float(d[j])), e_delta
        # a multiplier s_j g_j: g_j off by ‖H_xx‖ e_δ (the δ error) and γ_k ‖g‖ (rounding)
        hxx = jax.hessian(lf, argnums=1)(th, X[i] + d, y[i])
        err = float(jnp.linalg.norm(hxx)) * e_delta + tolerance.gamma(k) * float(jnp.linalg.norm(g))
        return float(jnp.sign(d[j]) * g[j]), err

    (a1, e1), (b1, e2), (a2, e3), (b2, e4) = (value(t) for t in (h, -h, 2 * h, -2 * h))
    d1, d2 = (a1 - b1) / (2 * h), (a2 - b2) / (4 * h)
    slope = -float(sw["theta_grad_norm"][i])  # u decreases the constraint at this rate
    # central differences: D_h = slope + c h² + noise, |noise| ≤ max e / h; D_2h has 4 c h²
    # and noise ≤ max e / (2h): |D_h - slope| ≤ |D_2h - D_h| / 3 + its noise ≤ |D_2h - D_h|
    # + 2 max e / h; plus the rounding of the implicit gradient (γ_k relative)
    e = max(e1, e2, e3, e4)
    tol = abs(d2 - d1) + 2 * e / h + tolerance.gamma(k) * abs(slope)
    assert abs(d1 - slope) <= tol
    # and not vacuously: the tolerance is below the slope itself
    assert tol < abs(slope)


def test_replays_from_the_key(doc, tmp_path):
    # seed s uses fold_in(key, s): a one-seed run replays seed 0 of the two-seed run
    again = ct.experiment(_ctx(tmp_path), sizes=dataclasses.replace(TINY, seeds=1))
    first = [q for q in doc["points"] if q["seed"] == 0]
    assert len(again["points"]) == len(first)
    dump = lambda x: json.dumps(training.json_safe(x), sort_keys=True)  # noqa: E731
    assert dump(again["points"]) == dump(first)
    assert dump(again["crossings"]) == dump(doc["crossings"])


# --------------------------------------------------------------------------- closed forms


@pytest.fixture(scope="module")
def linear():
    """A linear model, ℓ = softplus(-y(w·x + b)), at an L∞ ball: every maximiser a vertex."""
    params = {"w": jnp.array([0.8, -0.05, 0.4]), "b": jnp.array(0.1)}
    X = jnp.array([[0.5, 1.0, -0.2], [1.0, -1.0, 0.3]])
    y = jnp.array([1.0, -1.0])
    eps = 0.1
    lf = models.LinearLoss()
    pt = adversarial.linearize(lf, params, X, y, eps=eps, p=math.inf)
    return lf, params, X, y, eps, pt, ct.switching(pt)


def test_switching_linear_linf_matches_the_closed_form(linear):
    # at the L∞ vertex δ = -yε sign(w) coordinate j's multiplier is m_j = σ(-m̃)|w_j| (m̃ the
    # robust margin), and the vertex does not move with θ, so ∇_θ m_j is the gradient of
    # s_j ∂ℓ/∂x_j at the fixed δ (jax.grad here: no H_xx, no A⁺)
    lf, params, X, y, eps, pt, sw = linear
    assert np.all(np.asarray(pt.kkt.kind) == 2)
    for i in range(2):
        d = pt.delta[i]
        s = jnp.sign(d)
        dists = []
        for j in range(3):

            def m(th, j=j, z=X[i] + d, yi=y[i], sj=s[j]):
                return sj * jax.grad(lf, argnums=1)(th, z, yi)[j]

            g = jax.flatten_util.ravel_pytree(jax.grad(m)(params))[0]
            dists.append(float(m(params)) / float(jnp.linalg.norm(g)))
        # both routes evaluate one example's second derivatives (k operations, counted
        # on the Hessian's jaxpr): the multiplier and its gradient are each within γ_k
        # of exact, so each ratio within 2 γ_k, the two within 4 γ_k of each other (the
        # attack's vertex is exact: clipping to ±ε has no error)
        k = attacks.cached_ops("hessian", lf, params, X[0], y[0])
        tol = 4 * tolerance.gamma(k) * min(dists)
        assert abs(sw["theta_distance"][i] - min(dists)) <= tol
        # the nearest surface is that of the smallest |w_j| (w_2 = -0.05)
        assert int(np.argmin(dists)) == 1


def test_crossing_linear_linf_jump_is_hxt_delta(linear):
    # crossing w_2 = 0 the L∞ maximiser jumps across the box (Δδ = ±2ε e_2) and the
    # gradient jumps by exactly H_θx Δδ (the margin does not see δ_2 where w_2 = 0)
    lf, params, X, y, eps, pt, sw = linear
    i = int(np.argmin(sw["theta_distance"]))
    out = ct.crossing(
        lf,
        params,
        X,
        y,
        eps,
        math.inf,
        i,
        sw["direction"][i],
        float(sw["theta_distance"][i]),
        jax.random.PRNGKey(0),
        bisect_steps=30,
    )
    assert out["found"] and out["delta_jumped"]
    # Δδ = ±2ε e_2: the difference ε - (-ε) is exact; its norm (3 terms) within γ_8
    assert out["delta_jump"] == pytest.approx(2 * eps, rel=tolerance.gamma(8))
    assert out["residual"] <= out["tolerance"]
    # a prediction of no jump (0) would fail: the tolerance is below the jump itself
    assert out["tolerance"] < out["gradient_jump"]
    # | ‖J‖ − ‖H_θxΔδ‖ | ≤ ‖J − H_θxΔδ − H_θθΔθ‖ + ‖H_θθΔθ‖ (triangle inequality)
    slack = (out["residual"] + out["htt_dtheta"]) / out["hxt_delta"]
    assert abs(out["ratio"] - 1.0) <= slack
