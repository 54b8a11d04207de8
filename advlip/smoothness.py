r"""Measuring smoothness numerically: gradient ratios, worst pairs, growth exponents (docs/theory/measuring.md).

Everything here works on any ``grad_fn`` mapping a flat parameter vector
:math:`\theta \in \mathbb{R}^P` to :math:`\nabla L(\theta)`; it knows nothing of the
theory. The *gradient ratio* of a pair is

.. math:: R(\theta_1, \theta_2) = \frac{\|\nabla L(\theta_1) - \nabla L(\theta_2)\|_2}{\|\theta_1 - \theta_2\|_2},

and :math:`L` is β-smooth on a set iff :math:`R \le \beta` for every pair in it. Three
ways to look for large :math:`R`:

* :func:`sample_pairs` + :func:`pair_ratios`: random pairs at all scales;
* :func:`search_worst_pair`: gradient ascent (Adam) on a score such as
  :math:`\log R - \log \beta(\theta_1, \theta_2)`, many starts at once;
* :func:`witness_ratios` + :func:`fit_growth_exponent`: pairs :math:`\theta_0 + t d_1`,
  :math:`\theta_0 + t d_2` closing in on a suspected kink; the slope of :math:`\log R`
  against :math:`\log t` is 0 where :math:`\nabla L` is Lipschitz, :math:`q-2` where it is
  only Hölder, −1 at a jump.

Examples:
    >>> import jax.numpy as jnp
    >>> from advlip import smoothness
    >>> grad = lambda th: 3.0 * th          # L = 1.5 |θ|², 3-smooth
    >>> r = float(smoothness.gradient_ratio(grad, jnp.ones(2), jnp.zeros(2)))
    >>> round(r, 6)                         # exact up to rounding (last bits vary by backend)
    3.0
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from advlip import tolerance

__all__ = [
    "gradient_ratio",
    "pair_ratios",
    "sample_pairs",
    "search_worst_pair",
    "SearchResult",
    "witness_differences",
    "witness_ts",
    "fit_growth_exponent",
    "ExponentFit",
]

GradFn = Callable[[jax.Array], jax.Array]

#: Exponent fits must resolve at least this finely: the nearest exponents LIN-LP's
#: phase diagram (docs/theory/lin-lp.md) distinguishes (p = 4 and 6: -2/3 and -0.8) differ by 0.13.
RESOLUTION = 0.1


def gradient_ratio(grad_fn: GradFn, theta1: jax.Array, theta2: jax.Array) -> jax.Array:
    r""":math:`R(\theta_1,\theta_2) = \|\nabla L(\theta_1)-\nabla L(\theta_2)\| / \|\theta_1-\theta_2\|`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.smoothness import gradient_ratio
        >>> grad = lambda th: jnp.array([2.0, 8.0]) * th   # L = θ₁² + 4θ₂²: 8-smooth
        >>> R = [gradient_ratio(grad, th, jnp.zeros(2)) for th in jnp.eye(2)]
        >>> [round(float(r), 4) for r in R]   # the Hessian's eigenvalues, along its eigenvectors
        [2.0, 8.0]
    """
    return jnp.linalg.norm(grad_fn(theta1) - grad_fn(theta2)) / jnp.linalg.norm(theta1 - theta2)


def pair_ratios(
    grad_fn: GradFn,
    thetas1: jax.Array,
    thetas2: jax.Array,
    *,
    args: tuple = (),
    shard: bool | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Ratios of many pairs at once: ``jit(vmap)`` over the pairs.

    ``grad_fn(*args, θ)`` — pass data as ``args`` (arrays, pytrees such as a
    :class:`~advlip.linear.LinearProblem`) rather than closing over it, and one
    compilation serves every call with the same shapes. With ``shard`` (default:
    whenever JAX sees more than one device) the pairs are split over all devices
    (:mod:`advlip.sharding`); the numbers are the same. Returns ``(R, ‖Δg‖, ‖Δθ‖)``,
    each of shape (N,).

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.smoothness import pair_ratios
        >>> A = jnp.diag(jnp.array([1.0, 3.0]))            # ∇L(θ) = Aθ, data passed as args
        >>> t1 = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> R, dg, dt = pair_ratios(lambda A, th: A @ th, t1, jnp.zeros((3, 2)), args=(A,))
        >>> [round(float(r), 4) for r in R]                # 1, 3 and √(10/2) = √5
        [1.0, 3.0, 2.2361]
    """
    from advlip import sharding

    if shard is None:
        shard = sharding.device_count() > 1
    if not shard:
        return _pair_ratios(grad_fn, args, thetas1, thetas2)
    (a, b), n = sharding.shard_rows(thetas1, thetas2)
    return tuple(sharding.unpad(x, n) for x in _pair_ratios(grad_fn, args, a, b))


#: Pairs are swept in chunks of about this many parameter entries per array
#: (``lax.map`` with a ``batch_size``): one vmapped program over all N pairs streams every
#: (N, P) intermediate through main memory once per pass, while a chunk stays in cache
#: (3.4-3.6x faster at P = 1024 and 4096, N = 8192, on 2 CPU cores; benchmarks/RESULTS.md).
#: CPU only: an accelerator runs the whole batch in parallel.
CHUNK_ENTRIES = 1 << 18


@functools.partial(jax.jit, static_argnums=0)
def _pair_ratios(grad_fn, args, thetas1, thetas2):
    def one(pair):
        t1, t2 = pair
        dg = jnp.linalg.norm(grad_fn(*args, t1) - grad_fn(*args, t2))
        dt = jnp.linalg.norm(t1 - t2)
        return dg / dt, dg, dt

    n, dim = thetas1.shape[0], max(1, int(np.prod(thetas1.shape[1:])))
    chunk = max(1, CHUNK_ENTRIES // dim)
    if chunk >= n or jax.default_backend() != "cpu":
        return jax.vmap(one)((thetas1, thetas2))
    return jax.lax.map(one, (thetas1, thetas2), batch_size=chunk)


def sample_pairs(
    rng: np.random.Generator,
    n: int,
    dim: int,
    *,
    norm_range: tuple[float, float] = (0.05, 5.0),
    rel_dist_range: tuple[float, float] = (1e-4, 1.0),
) -> tuple[jax.Array, jax.Array]:
    """Random pairs at every scale, drawn from the seeded NumPy generator ``rng``.

    First points have norms log-uniform in ``norm_range`` and uniform directions;
    partners sit at relative distances log-uniform in ``rel_dist_range``. Shapes (n, dim).

    Examples:
        >>> import numpy as np
        >>> from advlip.smoothness import sample_pairs
        >>> t1, t2 = sample_pairs(np.random.default_rng(0), 100, 3, norm_range=(1.0, 2.0))
        >>> t1.shape, t2.shape
        ((100, 3), (100, 3))
        >>> n = np.linalg.norm(t1, axis=1)   # within the range, up to float32 rounding (~1e-7)
        >>> bool(np.all((n > 1.0 - 1e-6) & (n < 2.0 + 1e-6)))
        True
    """
    d1 = rng.standard_normal((n, dim))
    d1 /= np.linalg.norm(d1, axis=1, keepdims=True)
    r = np.exp(rng.uniform(math.log(norm_range[0]), math.log(norm_range[1]), (n, 1)))
    d2 = rng.standard_normal((n, dim))
    d2 /= np.linalg.norm(d2, axis=1, keepdims=True)
    s = np.exp(rng.uniform(math.log(rel_dist_range[0]), math.log(rel_dist_range[1]), (n, 1)))
    t1 = r * d1
    return jnp.asarray(t1), jnp.asarray(t1 + s * r * d2)


@dataclasses.dataclass
class SearchResult:
    """Best pair found by :func:`search_worst_pair` (over all starts and steps).

    ``theta1``/``theta2``/``score``: the best over all starts; ``thetas1``/``thetas2``/
    ``scores``: the best of each start (shape (starts, P) and (starts,)); ``steps``: the
    ascent steps taken from each start.

    Examples:
        The best pair is the row of the best start (built by hand here; :func:`search_worst_pair`
        returns one):

        >>> import numpy as np
        >>> from advlip.smoothness import SearchResult
        >>> scores = np.array([0.2, 1.1, 0.7])
        >>> t1s, t2s = np.eye(3), np.zeros((3, 3))
        >>> i = int(np.argmax(scores))
        >>> res = SearchResult(t1s[i], t2s[i], float(scores[i]), t1s, t2s, scores, steps=50)
        >>> res.score, res.theta1.tolist()
        (1.1, [0.0, 1.0, 0.0])
    """

    theta1: np.ndarray
    theta2: np.ndarray
    score: float
    thetas1: np.ndarray
    thetas2: np.ndarray
    scores: np.ndarray
    steps: int


def search_worst_pair(
    score_fn: Callable[..., jax.Array],
    thetas1: jax.Array,
    thetas2: jax.Array,
    *,
    steps: int,
    learning_rate: float = 0.05,
    project: Callable[[jax.Array], jax.Array] | None = None,
    args: tuple = (),
) -> SearchResult:
    r"""Gradient ascent (Adam) on ``score_fn(*args, θ1, θ2)`` from every start pair at once.

    ``score_fn`` is typically :math:`\log R - \log \beta(\theta_1,\theta_2)`, so the search
    maximises the ratio to the claimed bound. ``project`` keeps iterates in a region
    (e.g. :math:`\|w\| \ge r`). The best score seen along every trajectory is kept, so
    the result is never worse than the starts. Steps are scaled by each pair's
    distance, so small and large pairs move alike. Pass data as ``args`` so that one
    compilation serves many calls.

    Examples:
        For :math:`\nabla L(\theta) = A\theta`, :math:`A = \operatorname{diag}(1, 3)`, the
        largest ratio is 3, on pairs that differ along :math:`e_2`:

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip.smoothness import search_worst_pair
        >>> A = jnp.diag(jnp.array([1.0, 3.0]))
        >>> def log_ratio(A, t1, t2):
        ...     return jnp.log(jnp.linalg.norm(A @ (t1 - t2)) / jnp.linalg.norm(t1 - t2))
        >>> starts1 = jnp.array([[1.0, 0.0], [2.0, 1.0]])
        >>> starts2 = jnp.array([[0.0, 0.5], [1.0, 0.0]])
        >>> res = search_worst_pair(log_ratio, starts1, starts2, steps=30, args=(A,))
        >>> round(float(np.exp(res.score)), 3), res.scores.shape
        (3.0, (2,))
    """
    best, (b1, b2) = _search(
        score_fn, project or _identity, int(steps), float(learning_rate), args, thetas1, thetas2
    )
    best = np.asarray(best)
    i = int(np.argmax(best))
    return SearchResult(
        theta1=np.asarray(b1[i]),
        theta2=np.asarray(b2[i]),
        score=float(best[i]),
        thetas1=np.asarray(b1),
        thetas2=np.asarray(b2),
        scores=best,
        steps=steps,
    )


def _identity(theta):
    return theta


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _search(score_fn, project, steps, learning_rate, args, thetas1, thetas2):
    opt = optax.adam(learning_rate)
    score = lambda pair: score_fn(*args, pair[0], pair[1])  # noqa: E731
    value_and_grad = jax.value_and_grad(score)

    def run(t1, t2):
        pair = (project(t1), project(t2))
        state = opt.init(pair)
        s0 = score(pair)

        def step(carry, _):
            pair, state, best, best_pair = carry
            _, g = value_and_grad(pair)
            g = jax.tree.map(lambda x: -jnp.nan_to_num(x), g)  # ascend; a NaN step is no step
            scale = jnp.linalg.norm(pair[0] - pair[1]) + 1e-12
            upd, state = opt.update(g, state, pair)
            upd = jax.tree.map(lambda u: u * scale, upd)
            new = jax.tree.map(lambda a, u: a + u, pair, upd)
            new = (project(new[0]), project(new[1]))
            new_val = score(new)
            better = jnp.isfinite(new_val) & (new_val > best)
            best = jnp.where(better, new_val, best)
            best_pair = jax.tree.map(lambda b, n: jnp.where(better, n, b), best_pair, new)
            return (new, state, best, best_pair), None

        init = (pair, state, jnp.where(jnp.isfinite(s0), s0, -jnp.inf), pair)
        (_, _, best, best_pair), _ = jax.lax.scan(step, init, None, length=steps)
        return best, best_pair

    return jax.vmap(run)(thetas1, thetas2)


def witness_ts(t_min: float = 1e-6, t_max: float = 1e-2) -> np.ndarray:
    """Distances ``t_min · 2^k`` up to ``t_max`` (geometric with ratio 2, as the fit needs).

    Examples:
        >>> from advlip.smoothness import witness_ts
        >>> witness_ts(1e-3, 1e-2).tolist()
        [0.001, 0.002, 0.004, 0.008]
        >>> len(witness_ts())   # the default 1e-6 .. 1e-2: 2^13 ≤ 10^4 < 2^14
        14
    """
    k = int(np.floor(np.log2(t_max / t_min)))
    return t_min * 2.0 ** np.arange(k + 1)


def witness_differences(
    grad_fn: GradFn,
    center: jax.Array,
    dir1: jax.Array,
    dir2: jax.Array,
    ts: np.ndarray,
    *,
    args: tuple = (),
) -> tuple[np.ndarray, np.ndarray]:
    r"""Gradient differences on the witness pairs :math:`\theta_0 + t d_1`, :math:`\theta_0 + t d_2`.

    ``grad_fn(*args, θ)``. Returns ``(Δg, ‖Δθ‖)`` of shapes (k, P) and (k,) for the k
    values in ``ts``; the ratios are ``‖Δg‖ / ‖Δθ‖``.

    Examples:
        :math:`\nabla L(\theta) = \operatorname{sign}(\theta)|\theta|^{1/2} + \theta` is only
        Hölder at 0: on :math:`\pm t e_1`, :math:`R(t) = t^{-1/2} + 1`.

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip.smoothness import witness_differences, witness_ts
        >>> grad = lambda th: jnp.sign(th) * jnp.abs(th) ** 0.5 + th
        >>> ts = witness_ts(1e-6, 1e-2)
        >>> e1 = jnp.array([1.0, 0.0])
        >>> dg, dt = witness_differences(grad, jnp.zeros(2), e1, -e1, ts)
        >>> dg.shape, dt.shape
        ((14, 2), (14,))
        >>> R = np.linalg.norm(dg, axis=1) / dt
        >>> round(float(R[0]), 1), round(float(R[4]), 1)   # t = 1e-6 and 1.6e-5
        (1001.0, 251.0)
    """
    dg, dt = _witness(
        grad_fn, args, jnp.asarray(center), jnp.asarray(dir1), jnp.asarray(dir2), jnp.asarray(ts)
    )
    return np.asarray(dg), np.asarray(dt)


@functools.partial(jax.jit, static_argnums=0)
def _witness(grad_fn, args, center, dir1, dir2, ts):
    t1 = center[None, :] + ts[:, None] * dir1[None, :]
    t2 = center[None, :] + ts[:, None] * dir2[None, :]
    dg = jax.vmap(lambda a, b: grad_fn(*args, a) - grad_fn(*args, b))(t1, t2)
    return dg, jnp.linalg.norm(t1 - t2, axis=1)


@dataclasses.dataclass
class ExponentFit:
    r"""The growth exponent :math:`s` of :math:`R(t) \sim t^{s}` as :math:`t \to 0`.

    Two estimates:

    * ``slope``: the least-squares slope of :math:`\log R` on :math:`\log t`
      (docs/theory/measuring.md).
      It is biased where a bounded part sits beside the singular one, badly so when
      :math:`s` is near 0;
    * ``exponent``: Richardson-corrected. Near a kink the gradient difference expands
      as :math:`\Delta g(t) = t\,v_1 + t^{1+s} v_2 + O(t^2)` (a jump: :math:`s = -1`;
      Hölder: :math:`s = q - 2`). With :math:`t_{k+1} = 2 t_k`,
      :math:`E_k = \|\Delta g(t_{k+1}) - 2\Delta g(t_k)\| = |2^{1+s} - 2|\,t_k^{1+s}\|v_2\| + O(t_k^2)`
      cancels the Lipschitz part :math:`t v_1` exactly, so the slope :math:`\sigma` of
      :math:`\log E_k` gives :math:`s = \min(0, \sigma - 1)`; :math:`s = 0` (``bounded``)
      when :math:`\sigma \ge 1` or :math:`E_k` is below the float64 error of
      :math:`\Delta g` (then :math:`\Delta g` is linear in :math:`t` to working precision).

    ``tolerance`` = 3 standard errors of the regression of :math:`\log E` + the
    difference of the slopes fitted on the smaller-t and larger-t halves (a measured
    bound on the bias from higher-order terms) + the float64 error of :math:`E`
    propagated into the slope. ``resolved`` says it is finer than :data:`RESOLUTION`;
    a check must report "undetermined" otherwise.

    Examples:
        A jump of the gradient: :math:`\Delta g(t) = (2, 2t)` on pairs :math:`2t` apart, so
        :math:`R \approx 1/t`; then a Lipschitz gradient, :math:`\Delta g(t) = (2t, 2t)`:

        >>> import numpy as np
        >>> from advlip.smoothness import fit_growth_exponent, witness_ts
        >>> ts = witness_ts()
        >>> jump = fit_growth_exponent(ts, np.stack([[2.0, 2 * t] for t in ts]), 2 * ts)
        >>> jump.exponent, jump.resolved, jump.bounded, jump.agrees_with(-1)
        (-1.0, True, False, True)
        >>> smooth = fit_growth_exponent(ts, np.stack([[2 * t, 2 * t] for t in ts]), 2 * ts)
        >>> smooth.exponent, smooth.bounded
        (0.0, True)
    """

    ts: np.ndarray
    ratios: np.ndarray
    slope: float
    slope_stderr: float
    exponent: float
    exponent_stderr: float
    half_slopes: tuple[float, float]
    tolerance: float
    bounded: bool

    @property
    def resolved(self) -> bool:
        return self.tolerance < RESOLUTION

    def agrees_with(self, expected: float) -> bool:
        return abs(self.exponent - float(expected)) <= self.tolerance

    def to_dict(self) -> dict:
        return {
            "exponent": self.exponent,
            "tolerance": self.tolerance,
            "slope_logR_logt": self.slope,
            "slope_stderr": self.slope_stderr,
            "exponent_stderr": self.exponent_stderr,
            "half_slopes": list(self.half_slopes),
            "bounded": self.bounded,
            "resolved": self.resolved,
            "t": self.ts.tolist(),
            "R": self.ratios.tolist(),
        }


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and its standard error."""
    n = x.size
    xm = x - x.mean()
    sxx = float(xm @ xm)
    slope = float(xm @ (y - y.mean())) / sxx
    if n <= 2:
        return slope, 0.0
    resid = y - y.mean() - slope * xm
    return slope, float(np.sqrt(resid @ resid / (n - 2) / sxx))


def _half_slopes(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slopes fitted on the smaller-t and the larger-t half of the points."""
    h = max(x.size // 2, 2)
    return _ols(x[:h], y[:h])[0], _ols(x[-h:], y[-h:])[0]


def fit_growth_exponent(
    ts: np.ndarray,
    grad_diffs: np.ndarray,
    dtheta_norms: np.ndarray,
    *,
    grad_abs_error: float = 0.0,
) -> ExponentFit:
    r"""Fit the growth exponent from witness gradient differences at ``ts = t_min · 2^k``.

    ``grad_diffs`` (k, P) and ``dtheta_norms`` (k,) come from :func:`witness_differences`;
    ``grad_abs_error`` bounds the rounding error of one gradient (per component, in
    2-norm), so each difference is off by at most twice that; the rounding of the
    differences themselves follows the dtype ``grad_diffs`` was computed in.

    Examples:
        :math:`\nabla L(\theta) = \operatorname{sign}(\theta)|\theta|^{1/2} + \theta` is
        Hölder with exponent 1/2 at 0: the ratio grows like :math:`t^{-1/2}`.

        >>> import jax.numpy as jnp
        >>> from advlip.smoothness import fit_growth_exponent, witness_differences, witness_ts
        >>> grad = lambda th: jnp.sign(th) * jnp.abs(th) ** 0.5 + th
        >>> ts, e1 = witness_ts(), jnp.array([1.0, 0.0])
        >>> fit = fit_growth_exponent(ts, *witness_differences(grad, jnp.zeros(2), e1, -e1, ts))
        >>> round(fit.exponent, 3), fit.resolved, fit.agrees_with(-0.5)
        (-0.5, True, True)
        >>> round(fit.slope, 3)   # the plain log-log slope is biased by the bounded part
        -0.492
    """
    work = tolerance.working_dtype(grad_diffs)
    ts = np.asarray(ts, dtype=float)
    dg = np.asarray(grad_diffs, dtype=float)
    dt = np.asarray(dtheta_norms, dtype=float)
    if ts.ndim != 1 or ts.size < 6 or dg.shape[0] != ts.size or dt.shape != ts.shape:
        raise ValueError(
            "fit_growth_exponent needs ts (k,), grad_diffs (k, P), dtheta_norms (k,), k >= 6; "
            f"got {ts.shape}, {dg.shape}, {dt.shape}"
        )
    if not np.allclose(ts[1:] / ts[:-1], 2.0, rtol=1e-12):
        raise ValueError("ts must be geometric with ratio 2 (use advlip.smoothness.witness_ts)")
    if not (np.all(np.isfinite(dg)) and np.all(np.isfinite(dt))):
        raise ValueError("gradient differences must be finite (is the gradient defined there?)")
    ratios = np.linalg.norm(dg.reshape(ts.size, -1), axis=1) / dt
    if np.any(ratios <= 0):
        raise ValueError("every witness pair must have a non-zero gradient difference")
    lt = np.log(ts)
    slope, slope_se = _ols(lt, np.log(ratios))

    flat = dg.reshape(ts.size, -1)
    E = np.linalg.norm(flat[1:] - 2.0 * flat[:-1], axis=1)
    # rounding error of E: three differences, each carrying 2 gradient errors, plus the
    # rounding of the differences and norms in the dtype they were computed in
    noise = 6.0 * grad_abs_error + tolerance.gamma(3 * flat.shape[1] + 8, work) * (
        np.linalg.norm(flat[1:], axis=1) + 2.0 * np.linalg.norm(flat[:-1], axis=1)
    )
    keep = E > 100.0 * noise
    if keep.sum() < 4:
        # Δg is linear in t to working precision: R is bounded, exponent 0.
        return ExponentFit(ts, ratios, slope, slope_se, 0.0, 0.0, (0.0, 0.0), 3 * slope_se, True)
    x, y = lt[:-1][keep], np.log(E[keep])
    sigma, sigma_se = _ols(x, y)
    halves = _half_slopes(x, y)
    float_term = float(np.max(noise[keep] / E[keep])) / float(np.ptp(x))
    tol = 3.0 * sigma_se + abs(halves[0] - halves[1]) + float_term
    exponent = min(0.0, sigma - 1.0)
    return ExponentFit(
        ts, ratios, slope, slope_se, exponent, sigma_se, halves, tol, bool(sigma - 1.0 >= 0.0)
    )
