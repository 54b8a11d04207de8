r"""Falsify a smoothness claim: try hard to break it, and hand back the witness.

A researcher claims that an (adversarial) loss is β-smooth on a region —
:math:`\|\nabla L(\theta_1) - \nabla L(\theta_2)\| \le \beta\|\theta_1-\theta_2\| + \alpha` for all
:math:`\theta_1, \theta_2` in it (α = 0 is β-smoothness; α > 0 a Liu-type additive bound).
:func:`falsify_smoothness` never says "proved": it says *refuted, here is the pair*
or *not refuted after N gradient evaluations, best ratio r*. A non-smooth loss is
smooth almost everywhere, so random pairs are not enough; five strategies share
the budget, cheapest and most structural first, stopping at the first witness:

``probes``
    pairs straddling coordinate zeros :math:`\theta \pm t e_i` (L∞ kinks), ties of the two
    largest :math:`|\theta_i|` (L1 kinks), the origin (the L2 kink), and any probes you pass.
``random``
    pairs drawn in the region at distances from :math:`10^{-6}` to 1 of its scale.
``bisection``
    a kink finder along segments: the gradient is sampled on a segment, the sub-interval
    with the largest ratio is kept and refined — a jump of :math:`\nabla L` anywhere on the
    segment (e.g. where :math:`\nabla_x\ell` changes sign at an L∞ attack, SPEC G3) makes the
    ratio grow like 1/length.
``hypothesis``
    Hypothesis generates pairs and ``hypothesis.target`` hill-climbs the ratio.
``ascent``
    Adam on :math:`\log \|\Delta g\| - \log(\beta\|\Delta\theta\| + \alpha)` from the best pairs,
    the pair distance free to shrink.

A witness is re-evaluated eagerly in float64 and must beat the claim by more than
the float64 error of the gradients (``grad_error``) before it is reported; the
whole run replays from ``seed``.

Example:
    >>> import jax.numpy as jnp
    >>> from advlip import falsify_smoothness
    >>> from advlip.regions import Box
    >>> grad = lambda th: jnp.sign(th)        # ∇|θ|: a jump at 0
    >>> v = falsify_smoothness(grad, beta=100.0, region=Box([-1.0], [1.0]), budget=400, seed=0)
    >>> v.refuted, v.strategy
    (True, 'probes')
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from advlip import smoothness, tolerance
from advlip._validate import check_positive_int
from advlip.regions import Region

__all__ = ["falsify_smoothness", "SmoothnessVerdict", "falsify", "FalsifyResult", "STRATEGIES"]

STRATEGIES = ("probes", "random", "bisection", "hypothesis", "ascent")
_SHARES = {"probes": 0.2, "random": 0.2, "bisection": 0.2, "hypothesis": 0.15, "ascent": 0.25}
_BATCH = 64  # pairs per compiled evaluation (fixed, so nothing recompiles)

#: Default relative float64 error of one gradient: γ_1000, i.e. each component
#: assembled from up to 1000 rounded operations without catastrophic cancellation.
#: Pass ``grad_error=`` (absolute, 2-norm) when your gradient needs more.
DEFAULT_GRAD_RTOL = tolerance.gamma(1000)


@dataclasses.dataclass
class SmoothnessVerdict:
    """What :func:`falsify_smoothness` found.

    Attributes:
      refuted: a pair in the region violates the claim beyond float64 error.
      claim: the claim in words.
      theta1, theta2: the witness (refuted) or the best pair found (not refuted), flat.
      ratio: the gradient ratio R of that pair.
      excess: ‖Δg‖ / (β‖Δθ‖ + α) of that pair (> 1 violates the claim).
      evaluations: gradient evaluations spent (a reverse pass through ∇ counts as one).
      strategy: the strategy that found the pair.
      per_strategy: evaluations and best excess of each strategy that ran.
      seed: replays the whole run.
    """

    refuted: bool
    claim: str
    beta: float
    alpha: float
    theta1: np.ndarray
    theta2: np.ndarray
    ratio: float
    excess: float
    evaluations: int
    strategy: str
    per_strategy: dict[str, dict[str, float]]
    seed: int
    region: str
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["theta1"] = np.asarray(self.theta1).tolist()
        d["theta2"] = np.asarray(self.theta2).tolist()
        return d

    def __str__(self) -> str:
        head = "REFUTED" if self.refuted else "not refuted"
        return (
            f"{head}: {self.claim} on {self.region}; best ratio R = {self.ratio:.6g} "
            f"(‖Δg‖/(β‖Δθ‖+α) = {self.excess:.4g}) found by {self.strategy} after "
            f"{self.evaluations} gradient evaluations; seed {self.seed}"
        )


class _Budget(Exception):
    """Raised inside a strategy when its share of the budget is spent."""


@dataclasses.dataclass
class _Search:
    grad: Callable[[jax.Array], jax.Array]
    region: Region
    beta: float
    alpha: float
    rng: np.random.Generator
    evaluate: Callable  # jitted (B, P) x (B, P) -> (‖Δg‖, ‖Δθ‖)
    grad_rtol: float
    grad_error: float | None
    spent: int = 0
    limit: int = 0
    best: tuple[float, np.ndarray, np.ndarray, str] = (-np.inf, None, None, "")

    def excess(self, dg, dt):
        """‖Δg‖/(β‖Δθ‖+α), less a user-given gradient error: pairs are ranked by what
        survives the error, so a pair too close to beat it never crowds out one that can."""
        slack = 2.0 * self.grad_error if self.grad_error is not None else 0.0
        return (dg - slack) / (self.beta * dt + self.alpha)

    def pairs(self, t1: np.ndarray, t2: np.ndarray, strategy: str) -> np.ndarray:
        """Evaluate pairs (padded to the batch size), track the best; returns excesses."""
        out = []
        for s in range(0, len(t1), _BATCH):
            a, b = t1[s : s + _BATCH], t2[s : s + _BATCH]
            m = len(a)
            if self.spent + 2 * m > self.limit:
                raise _Budget
            pad = _BATCH - m
            if pad:
                a = np.concatenate([a, np.repeat(a[:1], pad, 0)])
                b = np.concatenate([b, np.repeat(b[:1], pad, 0) + 1.0])
            dg, dt = (np.asarray(x)[:m] for x in self.evaluate(jnp.asarray(a), jnp.asarray(b)))
            self.spent += 2 * m
            ex = np.where((dt > 0) & np.isfinite(dg), self.excess(dg, dt), -np.inf)
            i = int(np.argmax(ex))
            if ex[i] > self.best[0]:
                self.best = (float(ex[i]), np.asarray(a[i]), np.asarray(b[i]), strategy)
            out.append(ex)
        return np.concatenate(out) if out else np.zeros(0)

    def confirmed(self) -> bool:
        """Re-evaluate the best pair eagerly in float64; does it beat the claim beyond rounding?"""
        ex, a, b, _ = self.best
        if not np.isfinite(ex) or ex <= 1.0:
            return False
        if not (self.region.contains(a) and self.region.contains(b)):
            return False
        g1 = np.asarray(self.grad(jnp.asarray(a)), dtype=np.float64)
        g2 = np.asarray(self.grad(jnp.asarray(b)), dtype=np.float64)
        dg = float(np.linalg.norm(g1 - g2))
        dt = float(np.linalg.norm(a - b))
        if dt == 0.0:
            return False
        err = (
            self.grad_error
            if self.grad_error is not None
            else self.grad_rtol * max(np.linalg.norm(g1), np.linalg.norm(g2))
        )
        lhs_error = 2.0 * err + tolerance.gamma(3 * a.size + 4) * dg
        rhs = self.beta * dt * (1 + tolerance.gamma(a.size + 4)) + self.alpha
        return dg - lhs_error > rhs


# --------------------------------------------------------------------------- strategies


def _probe_pairs(s: _Search, n_centres: int, user_probes) -> tuple[np.ndarray, np.ndarray]:
    P = s.region.dim
    ts = s.region.scale * np.array([1e-2, 1e-3, 1e-4, 1e-5])
    proj = jax.jit(jax.vmap(s.region.project))
    a_list, b_list = [], []
    centres = s.region.sample(s.rng, n_centres)
    eye = np.eye(P)
    for k, c in enumerate(centres):
        i = k % P
        z = c.copy()
        z[i] = 0.0  # a coordinate zero: the kink of ‖·‖_1 (L∞ attack)
        for t in ts:
            a_list.append(z + t * eye[i])
            b_list.append(z - t * eye[i])
        if P >= 2:  # a tie of the two largest |θ_i|: the kink of ‖·‖_∞ (L1 attack)
            order = np.argsort(-np.abs(c))
            i1, i2 = order[0], order[1]
            sg = np.where(c >= 0, 1.0, -1.0)
            tie = c.copy()
            tie[i1], tie[i2] = sg[i1] * abs(c[i1]), sg[i2] * abs(c[i1])
            for t in ts:
                a_list.append(tie + t * sg[i1] * eye[i1])
                b_list.append(tie + t * sg[i2] * eye[i2])
    v = s.rng.standard_normal(P)
    v /= np.linalg.norm(v)
    for t in ts:  # the origin: the kink of ‖·‖_2 (L2 attack)
        a_list.append(t * v)
        b_list.append(-t * v)
    for probe in user_probes:
        a, b = probe(s.rng, s.region)
        a_list.extend(np.atleast_2d(a))
        b_list.extend(np.atleast_2d(b))
    a, b = np.asarray(proj(jnp.asarray(a_list))), np.asarray(proj(jnp.asarray(b_list)))
    keep = np.linalg.norm(a - b, axis=1) > 0
    return a[keep], b[keep]


def _run_probes(s: _Search, share: int, user_probes) -> None:
    n_centres = max(1, share // 24)
    a, b = _probe_pairs(s, n_centres, user_probes)
    s.pairs(a[: share // 2], b[: share // 2], "probes")


def _run_random(s: _Search, share: int) -> None:
    n = share // 2
    a = s.region.sample(s.rng, n)
    d = s.rng.standard_normal(a.shape)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    dist = s.region.scale * np.exp(s.rng.uniform(math.log(1e-6), 0.0, (n, 1)))
    b = np.asarray(jax.jit(jax.vmap(s.region.project))(jnp.asarray(a + dist * d)))
    s.pairs(a, b, "random")


def _run_bisection(s: _Search, share: int, points: int = 9, levels: int = 12) -> None:
    """Zoom into the sub-interval of largest ratio along random segments."""
    per_segment = points * levels
    n_segments = max(1, share // per_segment)
    ends = s.region.sample(s.rng, 2 * n_segments).reshape(n_segments, 2, -1)
    grid = np.linspace(0.0, 1.0, points)
    for a0, b0 in ends:
        lo, hi = 0.0, 1.0
        for _ in range(levels):
            ss = lo + (hi - lo) * grid
            pts = a0[None, :] + ss[:, None] * (b0 - a0)[None, :]
            pts = np.asarray(jax.vmap(s.region.project)(jnp.asarray(pts)))
            ex = s.pairs(pts[:-1], pts[1:], "bisection")
            k = int(np.argmax(ex))
            lo, hi = ss[k], ss[k + 1]
            if (hi - lo) * np.linalg.norm(b0 - a0) < 1e-9 * max(1.0, s.region.scale):
                break


def _run_hypothesis(s: _Search, share: int, seed: int) -> None:
    from hypothesis import HealthCheck, Phase, given, settings, target
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    P = s.region.dim
    scale = s.region.scale
    proj = jax.jit(s.region.project)
    eval_one = jax.jit(lambda a, b: s.evaluate(a[None, :], b[None, :]))
    big = 10.0 * max(scale, 1.0)
    vec = st.lists(st.floats(-big, big), min_size=P, max_size=P)

    found = [False]

    @hseed(seed)
    @settings(
        max_examples=max(1, share // 2),
        phases=[Phase.generate, Phase.target],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(vec, vec, st.floats(-6.0, 0.0))
    def probe(x, d, log_dist):
        # No exception leaves this function (Hypothesis would re-run it to check for
        # flakiness against our mutable state): once a witness is confirmed, or the
        # share is spent, the remaining examples return at once.
        if found[0] or s.spent + 2 > s.limit:
            return
        a = np.asarray(proj(jnp.asarray(x)))
        dv = np.asarray(d)
        nd = np.linalg.norm(dv)
        if nd == 0:
            return
        b = np.asarray(proj(jnp.asarray(a + scale * 10**log_dist * dv / nd)))
        dg, dt = (float(np.asarray(v)[0]) for v in eval_one(jnp.asarray(a), jnp.asarray(b)))
        s.spent += 2
        if dt <= 0 or not np.isfinite(dg):
            return
        ex = s.excess(dg, dt)
        target(float(np.log(max(ex, 1e-300))), label="log excess")
        if ex > s.best[0]:
            s.best = (float(ex), a, b, "hypothesis")
        if ex > 1.0 and s.confirmed():
            found[0] = True

    probe()


def _run_ascent(s: _Search, share: int, starts: int = 8) -> None:
    steps = max(1, share // (4 * starts))
    a = s.region.sample(s.rng, starts)
    d = s.rng.standard_normal(a.shape)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    b = a + 0.1 * s.region.scale * d
    if s.best[1] is not None:  # start one run from the best pair so far
        a[0], b[0] = s.best[1], s.best[2]
    grad = s.grad

    def score(t1, t2):
        dg = jnp.linalg.norm(grad(t1) - grad(t2))
        dt = jnp.linalg.norm(t1 - t2)
        return jnp.log(dg) - jnp.log(s.beta * dt + s.alpha)

    found = smoothness.search_worst_pair(
        score, jnp.asarray(a), jnp.asarray(b), steps=steps, project=s.region.project
    )
    s.spent += 4 * starts * steps
    s.pairs(found.thetas1, found.thetas2, "ascent")


# --------------------------------------------------------------------------- entry points


def _real(name: str, value: Any, *, minimum: float, strict: bool) -> float:
    """A finite real scalar (Python, NumPy or concrete JAX) above ``minimum``, as a float."""
    try:
        ok_shape = np.shape(value) == () and not isinstance(value, bool | str)
        v = float(value) if ok_shape else math.nan
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and (v > minimum if strict else v >= minimum)):
        raise ValueError(
            f"{name}={value!r} is not allowed; allowed: a finite real {'>' if strict else '>='} {minimum:g}"
        )
    return v


def falsify_smoothness(
    grad_fn: Callable[[Any], Any],
    *,
    beta: float,
    region: Region,
    budget: int = 4000,
    seed: int = 0,
    alpha: float = 0.0,
    strategies: Sequence[str] = STRATEGIES,
    probes: Sequence[Callable[[np.random.Generator, Region], tuple[np.ndarray, np.ndarray]]] = (),
    grad_error: float | None = None,
) -> SmoothnessVerdict:
    r"""Try to refute :math:`\|\nabla L(\theta_1) - \nabla L(\theta_2)\| \le \beta\|\theta_1 - \theta_2\| + \alpha` on ``region``.

    Args:
      grad_fn: parameters ↦ gradient. Flat arrays, or pytrees when ``region`` was built
        from a pytree (``Ball(center=params, ...)``).
      beta: the claimed smoothness constant (> 0).
      region: an :mod:`advlip.regions` region.
      budget: gradient evaluations to spend (≥ 100).
      seed: replays the run.
      alpha: additive term of a Liu-type claim (0 for β-smoothness).
      strategies: which of :data:`STRATEGIES` to run, in that order.
      probes: extra structural probes ``(rng, region) -> (θ1s, θ2s)``.
      grad_error: absolute float64 error of one gradient (2-norm); by default
        :data:`DEFAULT_GRAD_RTOL` times its norm.
    """
    beta = _real("beta", beta, minimum=0.0, strict=True)
    alpha = _real("alpha", alpha, minimum=0.0, strict=False)
    if not isinstance(region, Region):
        raise ValueError(
            f"region must be an advlip.regions region (Ball, NormAtLeast, Box), got {region!r}"
        )
    budget = check_positive_int("budget", budget, minimum=100)
    unknown = [n for n in strategies if n not in STRATEGIES]
    if unknown or not strategies:
        raise ValueError(f"strategies={list(strategies)!r}: allowed values are {list(STRATEGIES)}")

    if region.unravel is not None:
        unravel = region.unravel
        grad = lambda th: ravel_pytree(grad_fn(unravel(th)))[0]  # noqa: E731
    else:
        grad = grad_fn
    probe_out = np.asarray(grad(jnp.asarray(region.sample(np.random.default_rng(seed), 1)[0])))
    if probe_out.shape != (region.dim,):
        raise ValueError(
            f"grad_fn returns shape {probe_out.shape} for parameters of dimension {region.dim}; "
            "it must return the gradient, of the parameters' shape"
        )

    @jax.jit
    def evaluate(t1, t2):
        g = jax.vmap(grad)
        return jnp.linalg.norm(g(t1) - g(t2), axis=1), jnp.linalg.norm(t1 - t2, axis=1)

    s = _Search(
        grad=grad,
        region=region,
        beta=float(beta),
        alpha=float(alpha),
        rng=np.random.default_rng(seed),
        evaluate=evaluate,
        grad_rtol=DEFAULT_GRAD_RTOL,
        grad_error=grad_error,
    )
    start = time.perf_counter()
    per: dict[str, dict[str, float]] = {}
    total_share = sum(_SHARES[n] for n in strategies)
    refuted = False
    for name in strategies:
        share = int(budget * _SHARES[name] / total_share)
        s.limit = min(budget, s.spent + share)
        before, best_before = s.spent, s.best[0]
        try:
            if name == "probes":
                _run_probes(s, share, probes)
            elif name == "random":
                _run_random(s, share)
            elif name == "bisection":
                _run_bisection(s, share)
            elif name == "hypothesis":
                _run_hypothesis(s, share, seed)
            else:
                _run_ascent(s, share)
        except _Budget:
            pass
        per[name] = {"evaluations": s.spent - before, "best_excess": max(s.best[0], best_before)}
        if s.confirmed():
            refuted = True
            break

    ex, a, b, who = s.best
    if a is None:
        raise ValueError(f"budget={budget} was too small to evaluate a single pair")
    dg = float(np.linalg.norm(np.asarray(grad(jnp.asarray(a))) - np.asarray(grad(jnp.asarray(b)))))
    dt = float(np.linalg.norm(a - b))
    claim = f"‖Δ∇L‖ ≤ {beta:g}·‖Δθ‖" + (f" + {alpha:g}" if alpha else "")
    return SmoothnessVerdict(
        refuted=refuted,
        claim=claim,
        beta=float(beta),
        alpha=float(alpha),
        theta1=np.asarray(a),
        theta2=np.asarray(b),
        ratio=dg / dt,
        excess=dg / (beta * dt + alpha),
        evaluations=s.spent,
        strategy=who,
        per_strategy=per,
        seed=seed,
        region=region.describe(),
        elapsed_s=time.perf_counter() - start,
    )


@dataclasses.dataclass
class FalsifyResult:
    """What :func:`falsify` found: a counterexample, or the best margin after N examples."""

    refuted: bool
    counterexample: Any
    best_margin: float
    examples: int
    seed: int


def falsify(
    claim: Callable[[Any], bool | float],
    strategy: Any,
    *,
    budget: int = 500,
    seed: int = 0,
) -> FalsifyResult:
    """Search Hypothesis ``strategy`` for an input that breaks ``claim``.

    ``claim(example)`` returns a bool (True: the claim holds there) or a float
    *margin* such as ``lhs - rhs`` (the claim holds iff margin ≤ 0); a margin is
    also handed to ``hypothesis.target``, so the search climbs towards violations.

    Example:
        >>> from hypothesis import strategies as st
        >>> from advlip import falsify
        >>> r = falsify(lambda x: x * x - 4 * x, st.floats(-10, 10), budget=200)  # "x² ≤ 4x"
        >>> r.refuted
        True
    """
    from hypothesis import HealthCheck, Phase, given, settings, target
    from hypothesis import seed as hseed

    budget = check_positive_int("budget", budget)
    state = {"n": 0, "best": -math.inf, "found": None}

    class Found(Exception):
        pass

    @hseed(seed)
    @settings(
        max_examples=budget,
        phases=[Phase.generate, Phase.target],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(example):
        state["n"] += 1
        out = claim(example)
        if isinstance(out, bool | np.bool_):
            margin = 0.0 if out else 1.0
            violated = not out
        else:
            margin = float(out)
            if math.isnan(margin):
                raise ValueError(
                    f"claim returned NaN for {example!r}; return a bool or a finite margin"
                )
            target(margin, label="margin")
            violated = margin > 0
        state["best"] = max(state["best"], margin)
        if violated:
            state["found"] = example
            raise Found

    try:
        run()
    except Found:
        return FalsifyResult(True, state["found"], state["best"], state["n"], seed)
    return FalsifyResult(False, None, state["best"], state["n"], seed)
