"""The results for binary linear classification, each with its numerical check.

Their theory is the closed form of docs/theory/closed-form.md and one page per id:
docs/theory/lin-l2.md, lin-l2-zero.md, lin-linf.md, lin-l1.md, lin-lp.md and liu.md.
Every check builds :class:`advlip.linear.LinearProblem` instances on a seeded
synthetic dataset (:func:`advlip.data.synthetic`) and asks :mod:`advlip.smoothness`
for ratios, worst pairs and growth exponents. Bounds are compared pair by pair:
a pair *violates* a bound when its ratio exceeds it by more than the float64 error
of the ratio (:meth:`LinearProblem.grad_error_bound`), so a verdict of ``fails``
is a finding, never rounding.

Example:
    >>> from advlip import theorems
    >>> print(*(r.id for r in theorems.all_results() if r.family == "linear"))
    LIN-L2 LIN-L2-ZERO LIN-LINF LIN-L1 LIN-LP LIU
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from advlip import data, norms, sharding, smoothness, tolerance
from advlip.linear import LinearProblem
from advlip.losses import get_loss
from advlip.theorems.base import CheckConfig, CheckResult, Result, register

__all__ = [
    "check_lin_l2",
    "check_lin_l2_zero",
    "check_lin_linf",
    "check_lin_l1",
    "check_lin_lp",
    "check_liu",
    "expected_exponent",
    "EPS",
]

#: The attack radius of the built-in cases (inputs have ‖x‖ ≈ 1).
EPS = 0.5


def expected_exponent(p: float) -> float:
    """LIN-LP's growth exponent of R at the kink (docs/theory/lin-lp.md).

    0 for 1 < p ≤ 2, q − 2 for 2 < p < ∞ (1/p + 1/q = 1), −1 for p ∈ {1, ∞}.

    Args:
      p: the attack norm, 1 ≤ p ≤ ∞.

    Returns:
      The exponent s with R(t) ~ t^s on the witness pairs at the kink.

    Example:
        >>> import math
        >>> from advlip.theorems.linear import expected_exponent
        >>> expected_exponent(2.0), expected_exponent(math.inf), expected_exponent(1.0)
        (0.0, -1.0, -1.0)
        >>> round(expected_exponent(4.0), 4)   # q = 4/3: q − 2 = −2/3
        -0.6667
    """
    from advlip import symbolic

    return float(symbolic.expected_exponent(p))


def _dataset(config: CheckConfig, n: int = 24, d: int = 4):
    return data.synthetic(jax.random.PRNGKey(config.seed), n=n, d=d)


def _rng(config: CheckConfig, stream: int) -> np.random.Generator:
    """Each check draws from its own stream of the run's seed, so ``--only`` replays it."""
    return np.random.default_rng([config.seed, stream])


def _constant(global_value: float, sup_fn, margins: jax.Array) -> jax.Array:
    """A loss constant: its global sup if finite, else the sup over the margins visited."""
    if math.isfinite(global_value):
        return jnp.asarray(global_value)
    return sup_fn(jnp.min(margins), jnp.max(margins))


def _pair_margins(prob: LinearProblem, th1, th2):
    return jnp.concatenate([prob.margins(th1), prob.margins(th2)])


@dataclasses.dataclass
class _BoundScan:
    """Every pair a bound check evaluated, and the worst."""

    worst_ratio: float  # max over pairs of (R - err) / bound
    worst_pair: tuple[np.ndarray, np.ndarray]
    worst_R: float
    worst_bound: float
    n_pairs: int
    sampled_worst: float
    search_worst: float


def _scan_bound(
    lhs_and_bound: Callable[..., tuple[jax.Array, jax.Array, jax.Array]],
    prob: LinearProblem,
    bound_scale: float,
    config: CheckConfig,
    rng: np.random.Generator,
    *,
    norm_range=(0.05, 5.0),
) -> _BoundScan:
    """Sample pairs, then search from the worst of them; compare ``lhs`` with ``bound``.

    ``lhs_and_bound(prob, bound_scale, θ1, θ2)`` (a module-level function, so its
    compilations are shared between problems of one shape) returns
    ``(lhs, bound, lhs_error)``: the quantity the bound caps (the ratio R, or ‖Δg‖ for
    an additive bound), the bound, and the float64 error of ``lhs``.
    """
    args = (prob, jnp.asarray(bound_scale))
    t1, t2 = smoothness.sample_pairs(rng, config.n_pairs, prob.dim, norm_range=norm_range)
    ex, lhs, bound = _evaluate_sharded(lhs_and_bound, args, t1, t2)
    ex = np.where(np.isfinite(ex), ex, -np.inf)
    sampled_worst = float(ex.max())

    # Start the search from the worst sampled pairs and from fresh random ones.
    k = config.search_starts
    top = np.argsort(ex)[-(k // 2) :]
    r1, r2 = smoothness.sample_pairs(rng, k - top.size, prob.dim, norm_range=norm_range)
    found = smoothness.search_worst_pair(
        _log_excess(lhs_and_bound),
        jnp.concatenate([t1[top], r1]),
        jnp.concatenate([t2[top], r2]),
        steps=config.search_steps,
        args=args,
    )
    # evaluate the search results with the same compiled evaluator (padded to its shape)
    pad1 = t1.at[:k].set(jnp.asarray(found.thetas1))
    pad2 = t2.at[:k].set(jnp.asarray(found.thetas2))
    ex2, lhs2, bound2 = (a[:k] for a in _evaluate_sharded(lhs_and_bound, args, pad1, pad2))
    ex2 = np.where(np.isfinite(ex2), ex2, -np.inf)
    search_worst = float(ex2.max())
    if search_worst >= sampled_worst:
        i = int(np.argmax(ex2))
        pair, worst, w_lhs, w_bound = (pad1[i], pad2[i]), search_worst, lhs2[i], bound2[i]
    else:
        i = int(np.argmax(ex))
        pair, worst, w_lhs, w_bound = (t1[i], t2[i]), sampled_worst, lhs[i], bound[i]
    return _BoundScan(
        worst_ratio=worst,
        worst_pair=(np.asarray(pair[0]), np.asarray(pair[1])),
        worst_R=float(w_lhs),
        worst_bound=float(w_bound),
        n_pairs=config.n_pairs + k * (config.search_steps + 1),
        sampled_worst=sampled_worst,
        search_worst=search_worst,
    )


def _evaluate_sharded(lhs_and_bound, args, t1, t2):
    """:func:`_evaluate` with the pairs split over every device (one device: as is)."""
    (a, b), n = sharding.shard_rows(t1, t2)
    return tuple(np.asarray(sharding.unpad(x, n)) for x in _evaluate(lhs_and_bound, args, a, b))


@functools.partial(jax.jit, static_argnums=0)
def _evaluate(lhs_and_bound, args, t1, t2):
    """``((lhs − err) / bound, lhs, bound)`` for every pair."""

    def one(a, b):
        lhs, bound, err = lhs_and_bound(*args, a, b)
        return (lhs - err) / bound, lhs, bound

    return jax.vmap(one)(t1, t2)


@functools.cache
def _log_excess(lhs_and_bound):
    """The search score log(lhs) − log(bound); cached so its compilation is reused."""

    def score(prob, scale, a, b):
        lhs, bound, _ = lhs_and_bound(prob, scale, a, b)
        return jnp.log(lhs) - jnp.log(bound)

    return score


def _pair_dict(pair) -> dict:
    return {"theta1": np.asarray(pair[0]).tolist(), "theta2": np.asarray(pair[1]).tolist()}


# --------------------------------------------------------------------------- LIN-L2


def lin_l2_ratio_and_bound(
    prob: LinearProblem, bound_scale: ArrayLike, th1: jax.Array, th2: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""``(R, β(θ1, θ2), err R)`` for LIN-L2 (docs/theory/lin-l2.md):
    :math:`\beta = \ell''_{\max}((\|x\|+\varepsilon)^2 + [\text{bias}]) + \varepsilon|\ell'|_{\max}/\sqrt{\|w_1\|\|w_2\|}`,
    scaled by ``bound_scale`` (1 for the statement itself).

    Args:
      prob: the linear problem (p = 2).
      bound_scale: the factor on β (the tests plant false claims such as 0.5).
      th1: the first parameter vector θ1.
      th2: the second parameter vector θ2.

    Returns:
      The ratio R, the bound β and the float64 error of R (arrays of shape ()).

    Example:
        With softplus (ℓ''max = 1/4, |ℓ'|max = 1), max‖x‖ = 1, ε = 1/2 and
        ‖w1‖ = ‖w2‖ = 1: β = (1 + 1/2)²/4 + 1/2 = 1.0625.

        >>> import jax.numpy as jnp
        >>> from advlip.linear import LinearProblem
        >>> from advlip.theorems.linear import lin_l2_ratio_and_bound
        >>> prob = LinearProblem(X=jnp.eye(2), y=jnp.array([1.0, -1.0]), eps=0.5, p=2.0)
        >>> th1, th2 = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
        >>> R, beta, err = lin_l2_ratio_and_bound(prob, 1.0, th1, th2)
        >>> float(beta), bool(R + err <= beta)
        (1.0625, True)
    """
    lo = get_loss(prob.loss)
    A = prob.x_norm_max + prob.eps
    bias = 1.0 if prob.fit_bias else 0.0
    m = _pair_margins(prob, th1, th2)
    d2 = _constant(lo.d2_max, lo.d2_sup, m)
    d1 = _constant(lo.d1_abs_max, lo.d1_abs_sup, m)
    n1 = jnp.linalg.norm(prob.weights(th1))
    n2 = jnp.linalg.norm(prob.weights(th2))
    beta = d2 * (A**2 + bias) + prob.eps * d1 / jnp.sqrt(n1 * n2)
    dg = jnp.linalg.norm(prob.grad(th1) - prob.grad(th2))
    dt = jnp.linalg.norm(th1 - th2)
    R = dg / dt
    err = (
        2 * (prob.grad_error_bound(th1) + prob.grad_error_bound(th2)) / dt + tolerance.gamma(8) * R
    )
    return R, bound_scale * beta, err


def check_lin_l2(
    config: CheckConfig,
    *,
    bound_scale: float = 1.0,
    cases: tuple[tuple[str, bool, int], ...] | None = None,
) -> CheckResult:
    """LIN-L2 (docs/theory/lin-l2.md) on sampled and searched pairs, for several losses,
    with and without bias.

    One example with a bias is the case where the bound is nearly attained (small ‖w‖,
    margin driven to −∞ by b).

    Args:
      config: size and seed.
      bound_scale: scales the bound: 1 checks the statement; the test suite plants
        false claims (e.g. 0.5) and asserts that this check refutes them.
      cases: ``(loss, fit_bias, n_examples)`` triples (default: softplus without bias on
        24 examples and with bias on one; the full size adds three more).

    Returns:
      The :class:`~advlip.theorems.CheckResult`; ``figures["max_R_over_bound"]`` is the
      worst ratio R/β found (≤ 1: holds).

    Example:
        A quick run takes about 20 s (``advlip verify --only LIN-L2 --quick``); it is the
        registered check of LIN-L2:

        >>> from advlip import theorems
        >>> from advlip.theorems.linear import check_lin_l2
        >>> theorems.get("LIN-L2").check_fn is check_lin_l2
        True
    """
    if cases is None:
        cases = (("softplus", False, 24), ("softplus", True, 1))
        if not config.quick:
            cases += (
                ("softplus", True, 24),
                ("exponential", False, 24),
                ("squared_hinge", True, 24),
            )
    rows, worst = [], None
    rng = _rng(config, 1)
    for loss, fit_bias, n in cases:
        X, y = _dataset(config, n=max(n, 2))
        X, y = X[:n], y[:n]
        prob = LinearProblem(X=X, y=y, eps=EPS, p=2.0, loss=loss, fit_bias=fit_bias)
        scan = _scan_bound(lin_l2_ratio_and_bound, prob, bound_scale, config, rng)
        row = {
            "loss": loss,
            "bias": fit_bias,
            "n_examples": n,
            "max_R_over_bound": scan.worst_ratio,
            "sampled_max": scan.sampled_worst,
            "search_max": scan.search_worst,
            "pairs_evaluated": scan.n_pairs,
        }
        rows.append(row)
        if worst is None or scan.worst_ratio > worst[0]:
            worst = (scan.worst_ratio, scan, loss, fit_bias, n)
    ratio, scan, loss, fit_bias, n = worst
    verdict = "holds" if ratio <= 1.0 else "fails"
    return CheckResult(
        id="LIN-L2",
        statement=LIN_L2.statement,
        kind="bound",
        verdict=verdict,
        figure=(
            f"max R/β = {ratio:.3f} over {sum(r['pairs_evaluated'] for r in rows)} pairs, "
            f"{len(rows)} cases"
        ),
        figures={"cases": rows, "eps": EPS, "bound_scale": bound_scale, "max_R_over_bound": ratio},
        worst={
            **_pair_dict(scan.worst_pair),
            "loss": loss,
            "bias": fit_bias,
            "n_examples": n,
            "R": scan.worst_R,
            "bound": scan.worst_bound,
        },
    )


# --------------------------------------------------------------------------- witnesses


def _witness(
    prob: LinearProblem, center, d_plus, d_minus, *, u_max: float, expected: float = -1.0
) -> dict:
    """Growth exponent and limiting constant of R on the witness ``center + t d±``.

    Along the witness the dual direction is constant on each side (u±), so with
    :math:`J = -\\varepsilon\\,\\overline{\\ell'(\\tilde m_0)}\\,(u_+ - u_-)` and
    :math:`\\kappa = \\|d_+ - d_-\\|`, :math:`R\\,t \\to c = \\|J\\|/\\kappa` with
    :math:`|R t - c| \\le 2 t\\,\\ell''_{\\max}\\Lambda^2/\\kappa`, :math:`\\Lambda = \\max\\|x\\| + \\varepsilon u_{\\max}`
    (:math:`\\tilde m` is Λ-Lipschitz and :math:`\\ell'` is :math:`\\ell''_{\\max}`-Lipschitz).
    """
    lo = get_loss(prob.loss)
    ts = smoothness.witness_ts()
    dg, dt = smoothness.witness_differences(
        LinearProblem.grad, center, d_plus, d_minus, ts, args=(prob,)
    )
    err, c, xmax = (float(v) for v in _witness_constants(prob, center, d_plus, d_minus, ts[0]))
    err_g = 2 * err  # both points of a pair are near the centre
    fit = smoothness.fit_growth_exponent(ts, dg, dt, grad_abs_error=err_g)
    kappa = float(np.linalg.norm(np.asarray(d_plus) - np.asarray(d_minus)))
    lam = xmax + float(prob.eps) * u_max
    Rt = fit.ratios * ts
    allowed = 2 * ts * lo.d2_max * lam**2 / kappa + 4 * err_g / kappa
    const_ok = bool(np.all(np.abs(Rt - c) <= allowed)) and c > 0
    return {
        "fit": fit,
        "c": c,
        "Rt": Rt,
        "allowed": allowed,
        "const_ok": const_ok,
        "exp_ok": fit.resolved and fit.agrees_with(expected),
        "expected": expected,
    }


@jax.jit
def _witness_constants(prob: LinearProblem, center, d_plus, d_minus, t0):
    """Gradient error bound at the centre, the limit c = ‖J‖/κ of R·t, and max‖x‖."""
    lo = get_loss(prob.loss)
    u_plus = norms.dual_direction(center + t0 * d_plus, q=prob.q)
    u_minus = norms.dual_direction(center + t0 * d_minus, q=prob.q)
    mean_d1 = jnp.mean(lo.d1(prob.margins(center)))
    kappa = jnp.linalg.norm(d_plus - d_minus)
    c = prob.eps * jnp.abs(mean_d1) * jnp.linalg.norm(u_plus - u_minus) / kappa
    return prob.grad_error_bound(center), c, prob.x_norm_max


def _witness_result(
    rid: str, statement: str, reports: list[dict], centers, extra=None
) -> CheckResult:
    ok = all(r["exp_ok"] and r["const_ok"] for r in reports)
    unresolved = [i for i, r in enumerate(reports) if not r["fit"].resolved]
    worst = max(reports, key=lambda r: abs(r["fit"].exponent - r["expected"]))
    verdict = "holds" if ok else ("undetermined" if unresolved else "fails")
    fig = (
        f"slope {worst['fit'].exponent:+.4f} ± {worst['fit'].tolerance:.1e} "
        f"(expected {worst['expected']:+.0f}); R·t → {worst['c']:.3g}"
    )
    return CheckResult(
        id=rid,
        statement=statement,
        kind="witness",
        verdict=verdict,
        figure=fig,
        figures={
            "witnesses": [
                {
                    **r["fit"].to_dict(),
                    "expected": r["expected"],
                    "limit_c": r["c"],
                    "R_times_t": np.asarray(r["Rt"]).tolist(),
                    "allowed_deviation": np.asarray(r["allowed"]).tolist(),
                    "constant_ok": r["const_ok"],
                }
                for r in reports
            ],
            **(extra or {}),
        },
        worst={"centers": [np.asarray(c).tolist() for c in centers]},
        reason=(
            f"exponent fit not resolved (tolerance ≥ {smoothness.RESOLUTION}) for witnesses {unresolved}"
            if unresolved
            else None
        ),
    )


def check_lin_l2_zero(config: CheckConfig) -> CheckResult:
    """LIN-L2-ZERO (docs/theory/lin-l2-zero.md): pairs ±t v around w = 0 under L2 (b ≠ 0 so
    ℓ'(y b) varies by label); the growth exponent of R must be −1.

    Args:
      config: size (2 directions quick, 6 full) and seed.

    Returns:
      The :class:`~advlip.theorems.CheckResult`, one fitted exponent per direction.

    Example:
        >>> from advlip import theorems
        >>> r = theorems.get("LIN-L2-ZERO")
        >>> r.kind, r.hypotheses
        ('witness', ('p = 2', 'ε > 0', "mean ℓ'(y_i b) ≠ 0"))
    """
    X, y = _dataset(config)
    prob = LinearProblem(X=X, y=y, eps=EPS, p=2.0, b=0.3)
    n_dirs = 2 if config.quick else 6
    vs = jnp.asarray(_rng(config, 2).standard_normal((n_dirs, prob.dim)))
    vs = vs / jnp.linalg.norm(vs, axis=1, keepdims=True)
    zero = jnp.zeros(prob.dim)
    reports = [_witness(prob, zero, v, -v, u_max=1.0) for v in vs]
    from advlip.linear import nondifferentiable_reason

    return _witness_result(
        "LIN-L2-ZERO",
        LIN_L2_ZERO.statement,
        reports,
        [zero],
        extra={
            "directions": np.asarray(vs).tolist(),
            "reason_at_zero": nondifferentiable_reason(zero, eps=EPS, p=2.0),
        },
    )


def check_lin_l1(config: CheckConfig) -> CheckResult:
    """LIN-L1 (docs/theory/lin-l1.md): pairs w + t s_i e_i, w + t s_j e_j at a tie
    |w_i| = |w_j| = max |w|; the growth exponent of R must be −1.

    Args:
      config: size (one tie quick, four full) and seed.

    Returns:
      The :class:`~advlip.theorems.CheckResult`, one fitted exponent per tie.

    Example:
        >>> from advlip import theorems
        >>> print(theorems.get("LIN-L1").statement)
        pairs w + t s_i e_i, w + t s_j e_j at |w_i| = |w_j| = ‖w‖∞: R ≈ ε|ℓ'|/t
    """
    X, y = _dataset(config)
    prob = LinearProblem(X=X, y=y, eps=EPS, p=1.0)
    rng = _rng(config, 3)
    reports, centers = [], []
    pairs = [(0, 1)] if config.quick else [(0, 1), (1, 2), (2, 3), (0, 3)]
    for i, j in pairs:
        w = jnp.asarray(rng.standard_normal(prob.dim))
        top = float(jnp.max(jnp.abs(w))) + 0.5
        s = jnp.where(w >= 0, 1.0, -1.0)
        w = w.at[i].set(s[i] * top).at[j].set(s[j] * top)
        e = jnp.eye(prob.dim)
        reports.append(_witness(prob, w, s[i] * e[i], s[j] * e[j], u_max=1.0))
        centers.append(w)
    return _witness_result("LIN-L1", LIN_L1.statement, reports, centers)


def lin_linf_diff_and_bound(
    prob: LinearProblem, bound_scale: ArrayLike, th1: jax.Array, th2: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""``(‖Δg‖, bound, err)`` for LIN-LINF's additive bound (docs/theory/lin-linf.md)
    :math:`\ell''_{\max}((\|x\|+\varepsilon\sqrt d)^2 + [\text{bias}])\|\Delta\theta\| + 2\varepsilon\sqrt d\,|\ell'|_{\max}`.

    Args:
      prob: the linear problem (p = ∞).
      bound_scale: the factor on the bound (1 for the statement itself).
      th1: the first parameter vector θ1.
      th2: the second parameter vector θ2.

    Returns:
      ‖∇L(θ1) − ∇L(θ2)‖, the bound and the float64 error of the former.

    Example:
        Softplus, d = 1, max‖x‖ = 1, ε = 1/2, ‖Δθ‖ = 2: (1 + 1/2)²/4 · 2 + 2 · 1/2 = 2.125.

        >>> import math
        >>> import jax.numpy as jnp
        >>> from advlip.linear import LinearProblem
        >>> from advlip.theorems.linear import lin_linf_diff_and_bound
        >>> prob = LinearProblem(X=jnp.array([[1.0], [-1.0]]), y=jnp.ones(2), eps=0.5, p=math.inf)
        >>> dg, bound, err = lin_linf_diff_and_bound(prob, 1.0, jnp.array([1.0]), jnp.array([-1.0]))
        >>> float(bound), bool(dg + err <= bound)
        (2.125, True)
    """
    lo = get_loss(prob.loss)
    sd = math.sqrt(prob.d)
    A = prob.x_norm_max + prob.eps * sd
    bias = 1.0 if prob.fit_bias else 0.0
    m = _pair_margins(prob, th1, th2)
    d2 = _constant(lo.d2_max, lo.d2_sup, m)
    d1 = _constant(lo.d1_abs_max, lo.d1_abs_sup, m)
    dt = jnp.linalg.norm(th1 - th2)
    bound = d2 * (A**2 + bias) * dt + 2 * prob.eps * sd * d1
    dg = jnp.linalg.norm(prob.grad(th1) - prob.grad(th2))
    err = 2 * (prob.grad_error_bound(th1) + prob.grad_error_bound(th2)) + tolerance.gamma(8) * dg
    return dg, bound_scale * bound, err


def check_lin_linf(config: CheckConfig, *, bound_scale: float = 1.0) -> CheckResult:
    """LIN-LINF (docs/theory/lin-linf.md): a 1/t witness on every hyperplane w_i = 0, and
    the additive bound on sampled and searched pairs.

    Args:
      config: size and seed.
      bound_scale: scales the additive bound (1: the statement; the tests plant smaller).

    Returns:
      The :class:`~advlip.theorems.CheckResult` (kind ``witness + bound``).

    Example:
        >>> from advlip import theorems
        >>> theorems.get("LIN-LINF").kind
        'witness + bound'
    """
    X, y = _dataset(config)
    prob = LinearProblem(X=X, y=y, eps=EPS, p=math.inf)
    rng = _rng(config, 4)
    w0 = jnp.asarray(rng.standard_normal(prob.dim))
    reports, centers = [], []
    e = jnp.eye(prob.dim)
    for i in range(prob.dim):
        w = w0.at[i].set(0.0)
        reports.append(_witness(prob, w, e[i], -e[i], u_max=math.sqrt(prob.d)))
        centers.append(w)
    wit = _witness_result("LIN-LINF", LIN_LINF.statement, reports, centers)

    scan = _scan_bound(lin_linf_diff_and_bound, prob, bound_scale, config, rng)
    bound_ok = scan.worst_ratio <= 1.0
    verdict = wit.verdict if bound_ok else "fails"
    wit.verdict = verdict
    wit.kind = "witness + bound"
    wit.figure += f"; additive bound: max ‖Δg‖/bound = {scan.worst_ratio:.3f}"
    wit.figures["additive_bound"] = {
        "max_lhs_over_bound": scan.worst_ratio,
        "sampled_max": scan.sampled_worst,
        "search_max": scan.search_worst,
        "pairs_evaluated": scan.n_pairs,
        "bound_scale": bound_scale,
        "worst_pair": _pair_dict(scan.worst_pair),
    }
    return wit


def check_lin_lp(config: CheckConfig) -> CheckResult:
    """LIN-LP (docs/theory/lin-lp.md): the measured growth exponent at the kink for each p
    against the theory's phase diagram (:func:`expected_exponent`).

    Args:
      config: size (6 values of p quick, 10 full) and seed.

    Returns:
      The :class:`~advlip.theorems.CheckResult`; ``figures["points"]`` holds p, the
      exponent, its tolerance and the expected value.

    Example:
        >>> from advlip import theorems
        >>> print(theorems.get("LIN-LP").statement)
        exponent 0 for 1<p≤2, q−2 for 2<p<∞, −1 for p=∞ (zeros) and p=1 (ties)
    """
    X, y = _dataset(config)
    ps = (
        (1.0, 1.5, 2.0, 3.0, 6.0, math.inf)
        if config.quick
        else (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0, math.inf)
    )
    w0 = jnp.asarray(_rng(config, 5).standard_normal(X.shape[1]))
    e = jnp.eye(X.shape[1])
    reports, points = [], []
    for p in ps:
        prob = LinearProblem(X=X, y=y, eps=EPS, p=p)
        if p == 1.0:  # the kink of ‖w‖_∞ is a tie of the largest |w_i|
            s = jnp.where(w0 >= 0, 1.0, -1.0)
            top = float(jnp.max(jnp.abs(w0))) + 0.5
            w = w0.at[0].set(s[0] * top).at[1].set(s[1] * top)
            d_plus, d_minus = s[0] * e[0], s[1] * e[1]
        else:  # the kink of ‖w‖_q (q < 2) is a zero coordinate
            w = w0.at[0].set(0.0)
            d_plus, d_minus = e[0], -e[0]
        r = _witness(
            prob, w, d_plus, d_minus, u_max=math.sqrt(prob.d), expected=expected_exponent(p)
        )
        r["const_ok"] = (
            True  # the limit constant applies to jumps only; here the exponent is the claim
        )
        reports.append(r)
        points.append(
            {
                "p": p,
                "q": prob.q,
                "exponent": r["fit"].exponent,
                "tolerance": r["fit"].tolerance,
                "expected": r["expected"],
                "slope_logR_logt": r["fit"].slope,
                "agrees": bool(r["exp_ok"]),
            }
        )
    res = _witness_result("LIN-LP", LIN_LP.statement, reports, [w0], extra={"points": points})
    res.kind = "exponents"
    worst = max(points, key=lambda pt: abs(pt["exponent"] - pt["expected"]))
    res.figure = (
        f"{sum(pt['agrees'] for pt in points)}/{len(points)} exponents on LIN-LP's curve; "
        f"worst |s − s_theory| = {abs(worst['exponent'] - worst['expected']):.1e} "
        f"(p={worst['p']:g})"
    )
    return res


# --------------------------------------------------------------------------- LIU


def liu_diff_and_bound(
    prob: LinearProblem, bound_scale: ArrayLike, th1: jax.Array, th2: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""``(‖Δg‖, Liu bound, err)``:
    :math:`L_{\theta\theta}\|\Delta\theta\| + L_{\theta x}\,2\varepsilon\, d^{\max(0,1/2-1/p)}` with, for the
    linear model, :math:`L_{\theta\theta} = \ell''_{\max}(r_x^2 + [\text{bias}])`,
    :math:`L_{\theta x} = |\ell'|_{\max} + \ell''_{\max}\sqrt{r_x^2 + [\text{bias}]}\,\max(\|w_1\|,\|w_2\|)`,
    :math:`r_x = \max_i\|x_i\| + \varepsilon\,d^{\max(0,1/2-1/p)}` the largest perturbed input
    (docs/theory/liu.md).

    Args:
      prob: the linear problem.
      bound_scale: the factor on the bound (1 for Liu et al.'s statement).
      th1: the first parameter vector θ1.
      th2: the second parameter vector θ2.

    Returns:
      ‖∇L(θ1) − ∇L(θ2)‖, Liu et al.'s bound and the float64 error of the former.

    Example:
        Softplus, d = 1, p = ∞, max‖x‖ = 1, ε = 1/2, ‖w‖ ≤ 1, ‖Δθ‖ = 2:
        :math:`L_{\theta\theta} = 1.5^2/4`, :math:`L_{\theta x} = 1 + 1.5/4`, bound
        0.5625 · 2 + 1.375 · 2 · 0.5 = 2.5.

        >>> import math
        >>> import jax.numpy as jnp
        >>> from advlip.linear import LinearProblem
        >>> from advlip.theorems.linear import liu_diff_and_bound
        >>> prob = LinearProblem(X=jnp.array([[1.0], [-1.0]]), y=jnp.ones(2), eps=0.5, p=math.inf)
        >>> dg, bound, err = liu_diff_and_bound(prob, 1.0, jnp.array([1.0]), jnp.array([-1.0]))
        >>> float(bound), bool(dg + err <= bound)
        (2.5, True)
    """
    lo = get_loss(prob.loss)
    rad = norms.l2_radius(prob.d, prob.p)
    bias = 1.0 if prob.fit_bias else 0.0
    rx2 = (prob.x_norm_max + prob.eps * rad) ** 2 + bias
    L_tt = lo.d2_max * rx2
    W = jnp.maximum(jnp.linalg.norm(prob.weights(th1)), jnp.linalg.norm(prob.weights(th2)))
    L_tx = lo.d1_abs_max + lo.d2_max * jnp.sqrt(rx2) * W
    dt = jnp.linalg.norm(th1 - th2)
    bound = L_tt * dt + L_tx * 2 * prob.eps * rad
    dg = jnp.linalg.norm(prob.grad(th1) - prob.grad(th2))
    err = 2 * (prob.grad_error_bound(th1) + prob.grad_error_bound(th2)) + tolerance.gamma(8) * dg
    return dg, bound_scale * bound, err


def check_liu(config: CheckConfig) -> CheckResult:
    """LIU (docs/theory/liu.md): Liu et al.'s bound holds, but its additive term does not
    vanish as θ1 → θ2 (on close pairs it exceeds the actual ‖Δ∇L‖ by orders of magnitude,
    where LIN-L2's bound does not).

    Args:
      config: size and seed.

    Returns:
      The :class:`~advlip.theorems.CheckResult`, one row per p ∈ {2, ∞}.

    Example:
        >>> from advlip import theorems
        >>> theorems.get("LIU").hypotheses
        ('∇_θℓ L_θθ-Lipschitz in θ and L_θx-Lipschitz in x',)
    """
    X, y = _dataset(config)
    rows, worst_all = [], 0.0
    rng = _rng(config, 6)
    for p in (2.0, math.inf):
        prob = LinearProblem(X=X, y=y, eps=EPS, p=p)
        scan = _scan_bound(liu_diff_and_bound, prob, 1.0, config, rng)
        # Close pairs: Liu's bound over the actual ‖Δg‖, beside LIN-L2's (p = 2).
        t1, t2 = smoothness.sample_pairs(
            rng, 256, prob.dim, norm_range=(0.5, 2.0), rel_dist_range=(1e-5, 1e-4)
        )
        _, dg, liu = _evaluate(liu_diff_and_bound, (prob, jnp.asarray(1.0)), t1, t2)
        row = {
            "p": p,
            "max_lhs_over_bound": scan.worst_ratio,
            "pairs_evaluated": scan.n_pairs,
            "close_pairs_liu_over_actual_median": float(jnp.median(liu / dg)),
        }
        if p == 2.0:
            _, R, beta = _evaluate(lin_l2_ratio_and_bound, (prob, jnp.asarray(1.0)), t1, t2)
            row["close_pairs_lin_l2_over_actual_median"] = float(jnp.median(beta / R))
        rows.append(row)
        worst_all = max(worst_all, scan.worst_ratio)
    l2 = rows[0]
    return CheckResult(
        id="LIU",
        statement=LIU.statement,
        kind="bound",
        verdict="holds" if worst_all <= 1.0 else "fails",
        figure=(
            f"max ‖Δg‖/Liu = {worst_all:.3f}; at ‖Δθ‖≈1e-4 Liu/actual ≈ "
            f"{l2['close_pairs_liu_over_actual_median']:.1e} vs LIN-L2 ≈ "
            f"{l2['close_pairs_lin_l2_over_actual_median']:.1f}"
        ),
        figures={"cases": rows, "eps": EPS},
    )


# --------------------------------------------------------------------------- registry


def _bound(name: str):
    def expr():
        from advlip import symbolic

        return getattr(symbolic, name)()

    return expr


LIN_L2 = register(
    Result(
        id="LIN-L2",
        title="L2 adversarial loss is smooth away from w = 0",
        statement="R(w1,w2) ≤ ℓ''max((‖x‖+ε)²+[bias]) + ε|ℓ'|max/√(‖w1‖‖w2‖) for all w1,w2 ≠ 0",
        hypotheses=("p = 2", "ℓ convex, decreasing, ℓ' ℓ''max-Lipschitz", "w1, w2 ≠ 0"),
        kind="bound",
        check_fn=check_lin_l2,
        bound=_bound("lin_l2_bound"),
    )
)
LIN_L2_ZERO = register(
    Result(
        id="LIN-L2-ZERO",
        title="L2 adversarial loss is not smooth at w = 0",
        statement="pairs ±t·v: R ≈ ε|mean ℓ'(y b)|/t → ∞ (growth exponent −1)",
        hypotheses=("p = 2", "ε > 0", "mean ℓ'(y_i b) ≠ 0"),
        kind="witness",
        check_fn=check_lin_l2_zero,
        bound=_bound("witness_ratio_zero"),
    )
)
LIN_LINF = register(
    Result(
        id="LIN-LINF",
        title="L∞ adversarial loss is not smooth on w_i = 0; Liu-type additive bound",
        statement=(
            "pairs w ± t e_i at w_i = 0: R = ε|ℓ'(m̃)|/t + O(1); "
            "‖Δ∇L‖ ≤ ℓ''max(‖x‖+ε√d)²‖Δw‖ + 2ε√d|ℓ'|max"
        ),
        hypotheses=("p = ∞", "ε > 0"),
        kind="witness + bound",
        check_fn=check_lin_linf,
        bound=_bound("lin_linf_bound"),
    )
)
LIN_L1 = register(
    Result(
        id="LIN-L1",
        title="L1 adversarial loss is not smooth where the largest |w_i| ties",
        statement="pairs w + t s_i e_i, w + t s_j e_j at |w_i| = |w_j| = ‖w‖∞: R ≈ ε|ℓ'|/t",
        hypotheses=("p = 1", "ε > 0"),
        kind="witness",
        check_fn=check_lin_l1,
    )
)
LIN_LP = register(
    Result(
        id="LIN-LP",
        title="Phase diagram in p: growth exponent of R at the kink",
        statement="exponent 0 for 1<p≤2, q−2 for 2<p<∞, −1 for p=∞ (zeros) and p=1 (ties)",
        hypotheses=("ε > 0", "witness pairs at w_i = 0 (p > 1) or at a tie (p = 1)"),
        kind="exponents",
        check_fn=check_lin_lp,
    )
)
LIU = register(
    Result(
        id="LIU",
        title="Liu et al. (2020) bound: valid, but not a Lipschitz bound",
        statement="‖Δ∇L‖ ≤ L_θθ‖Δθ‖ + L_θx·2ε d^max(0,1/2−1/p); the additive term ignores δ*(θ)",
        hypotheses=("∇_θℓ L_θθ-Lipschitz in θ and L_θx-Lipschitz in x",),
        kind="bound",
        check_fn=check_liu,
        bound=_bound("liu_bound"),
    )
)
