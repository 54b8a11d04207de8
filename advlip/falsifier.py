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
    segment (e.g. where :math:`\nabla_x\ell` changes sign at an L∞ attack,
    docs/theory/gen-linf-vertex.md) makes the
    ratio grow like 1/length.
``hypothesis``
    Hypothesis generates pairs and ``hypothesis.target`` hill-climbs the ratio.
``ascent``
    Adam on :math:`\log \|\Delta g\| - \log(\beta\|\Delta\theta\| + \alpha)` from the best pairs,
    the pair distance free to shrink.

A witness is re-evaluated eagerly and must beat the claim by more than the
rounding error of the gradients (``grad_error``; by default γ_{1000+4P} in the dtype the
gradient is computed in, float32 or float64) before it is reported; the whole run
replays from ``seed``. Memory is O(P) per pair, with a fixed budget per batch of
pairs, so parameters of dimension 10⁶ are searched as readily as 10.

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
import numbers
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from advlip import norms, smoothness, tolerance
from advlip._validate import check_positive_int, check_real
from advlip.regions import Region

__all__ = [
    "falsify_smoothness",
    "SmoothnessVerdict",
    "UncheckableClaimError",
    "falsify",
    "FalsifyResult",
    "STRATEGIES",
    "DEFAULT_GRAD_RTOL",
    "default_grad_rtol",
]

STRATEGIES = ("probes", "random", "bisection", "hypothesis", "ascent")
_SHARES = {"probes": 0.2, "random": 0.2, "bisection": 0.2, "hypothesis": 0.15, "ascent": 0.25}
_MAX_BATCH = 64  # pairs per compiled evaluation at small dimension
#: Bytes of the parameter vectors (θ1s and θ2s) of one batch of pairs evaluated together:
#: the batch shrinks with the dimension P so that it stays within this budget
#: (16 pairs at P = 10⁶ in float64, 1 pair beyond P = 1.6·10⁷). Everything the searches
#: hold at once is a small multiple of it — never P² (no identity matrices, no pair lists).
_BATCH_BYTES = 256 * 2**20
_PAD_FULL = 2**16  # batches of up to this many parameters are always padded to full size

#: Relative error of one float64 gradient: γ_1000 in float64, i.e. each component
#: assembled from up to 1000 rounded operations without catastrophic cancellation.
#: Kept for backward compatibility: :func:`falsify_smoothness` now uses γ_{1000+4P} in
#: the dtype the gradient is actually computed in (:func:`default_grad_rtol`), so a
#: float32 gradient is not judged by a float64 error bound, nor a large model by a small k.
#: Pass ``grad_error=`` (absolute, 2-norm) when your gradient needs more.
DEFAULT_GRAD_RTOL = tolerance.gamma(1000)


def default_grad_rtol(dtype: Any, dim: int = 0) -> float:
    r"""γ_k, k = 1000 + 4·dim, in ``dtype``: the default relative error of one gradient of
    ``dim`` parameters computed in ``dtype`` — each component assembled from a dot product
    over every parameter (a linear layer's pre-activation: 2·dim roundings, doubled for
    the backward pass) plus 1000 more operations, without catastrophic cancellation.
    Pass ``grad_error=`` where your gradient is known to need more (or less). Where
    k·u ≥ 1 (bfloat16, u = 2⁻⁸) :func:`advlip.tolerance.gamma` warns and returns its
    probabilistic bound instead, which exceeds 1 there: pass ``grad_error=``.

    Example:
        :math:`\gamma_k = ku/(1 - ku)`: k = 1000 in float64 (u = 2⁻⁵³), and
        k = 1000 + 4·10 for 10 parameters in float32 (u = 2⁻²⁴):

        >>> from advlip.falsifier import default_grad_rtol
        >>> f"{default_grad_rtol('float64'):.4e}", f"{default_grad_rtol('float32', 10):.4e}"
        ('1.1102e-13', '6.1993e-05')
    """
    try:
        return tolerance.gamma(1000 + 4 * int(dim), dtype)
    except ValueError as err:
        raise ValueError(
            f"the gradient is computed in {np.dtype(dtype).name}, where the default error model "
            "γ_{1000+4P} (rounded operations per component) is vacuous; pass grad_error= "
            "(absolute 2-norm error of one gradient) or compute in float32/float64"
        ) from err


@dataclasses.dataclass
class SmoothnessVerdict:
    """What :func:`falsify_smoothness` found.

    Attributes:
      refuted: a pair in the region violates the claim beyond the rounding error of the
        gradients (in the dtype they are computed in, ``grad_dtype``).
      claim: the claim in words.
      theta1, theta2: the witness (refuted) or the best pair found (not refuted), flat,
        in the dtype the gradient was evaluated at.
      ratio: the gradient ratio R of that pair.
      excess: ‖Δg‖ / (β‖Δθ‖ + α) of that pair (> 1 violates the claim).
      evaluations: gradient evaluations spent (a reverse pass through ∇ counts as one).
      strategy: the strategy that found the pair.
      per_strategy: evaluations, best excess and wall seconds of each strategy that ran.
      seed: replays the whole run.
      distance: ‖θ1 − θ2‖₂ of that pair (scaled, so pairs 1e-300 apart keep it).
      grad_dtype: the least precise dtype of the gradient and its parameters: the
        precision the rounding-error bound of the witness check assumed.

    Example:
        The gradient 2θ of ‖θ‖² has ratio 2 on every pair, so the claim β = 3 stands:

        >>> import jax.numpy as jnp
        >>> from advlip import falsify_smoothness
        >>> from advlip.regions import Box
        >>> box = Box([-1.0, -1.0], [1.0, 1.0])
        >>> v = falsify_smoothness(lambda th: 2.0 * th, beta=3.0, region=box, budget=100)
        >>> v.refuted, round(v.ratio, 4), round(v.excess, 4), v.claim
        (False, 2.0, 0.6667, '‖Δ∇L‖ ≤ 3·‖Δθ‖')
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
    distance: float = 0.0
    grad_dtype: str = "float64"

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


def _norm(x: np.ndarray) -> float:
    """2-norm in NumPy float64 scaled by the largest entry, so that differences near the
    underflow threshold (a pair 1e-300 apart) are not squared to zero. The compiled
    searches use :func:`advlip.norms.lp_norm`, the same scaling in JAX."""
    x = np.asarray(x, dtype=np.float64)
    top = float(np.max(np.abs(x))) if x.size else 0.0
    return top * float(np.linalg.norm(x / top)) if top > 0 else 0.0


class _Budget(Exception):
    """Raised inside a strategy when its share of the budget is spent."""


class _Witness(Exception):
    """Raised inside a strategy as soon as its best pair is a confirmed witness."""


def _batch_size(dim: int, dtype: Any) -> int:
    """Pairs evaluated together: at most ``_MAX_BATCH``, and θ1s + θ2s within ``_BATCH_BYTES``."""
    return max(1, min(_MAX_BATCH, _BATCH_BYTES // (2 * dim * np.dtype(dtype).itemsize)))


def _hoist(fn: Callable, example: Any) -> tuple[Callable, list]:
    """``fn`` as ``(consts, x) ↦ fn(x)``, the arrays it closes over made arguments.

    ``jax.jit`` embeds every array a function closes over in the compiled program as a
    literal: the (64, 10⁶) data matrix of a linear model becomes 1 GB of program text
    and another copy in memory, per compilation. Passed as arguments they are shared.
    """
    try:
        from jax.extend.core import ClosedJaxpr, jaxpr_as_fun
    except ImportError:  # pragma: no cover - jax < 0.4.33
        from jax.core import ClosedJaxpr, jaxpr_as_fun

    closed = jax.make_jaxpr(fn)(example)
    if len(closed.jaxpr.outvars) != 1:
        raise ValueError(
            f"the function returns {len(closed.jaxpr.outvars)} arrays; it must return one array"
        )
    jaxpr = closed.jaxpr
    dtype = jnp.asarray(example).dtype

    def call(consts, x):  # traced for ``example``'s dtype: x is fed in it
        return jaxpr_as_fun(ClosedJaxpr(jaxpr, list(consts)))(x.astype(dtype))[0]

    return call, list(closed.consts)


@dataclasses.dataclass
class _Search:
    grad: Callable[[jax.Array], jax.Array]  # flat θ ↦ flat ∇L(θ), eager
    grad_h: Callable  # the same as (consts, θ) ↦ ∇L(θ), for compiled code
    consts: list  # the arrays ``grad`` closes over
    region: Region
    beta: float
    alpha: float
    rng: np.random.Generator
    # jitted (consts, project_consts, (B, P), (B, P)) -> (‖Δg‖, ‖Δθ‖): projects both
    # sides into the region, then evaluates
    evaluate: Callable
    project_one: Callable  # jitted (project_consts, (P,)) -> (P,)
    project_consts: list
    dtype: np.dtype  # of the parameters fed to the gradient
    batch: int
    grad_rtol: float
    grad_error: float | Callable[[np.ndarray], float] | None
    spent: int = 0
    limit: int = 0
    best: tuple[float, np.ndarray, np.ndarray, str] = (-np.inf, None, None, "")
    nonfinite: int = 0  # pairs whose gradient difference was inf/NaN
    merged: int = 0  # pairs whose two points coincided after projection and rounding

    def excess(self, dg, dt):
        """‖Δg‖/(β‖Δθ‖+α), less a user-given gradient error: pairs are ranked by what
        survives the error, so a pair too close to beat it never crowds out one that can."""
        slack = 2.0 * self.grad_error if isinstance(self.grad_error, float) else 0.0
        return (dg - slack) / (self.beta * dt + self.alpha)

    def pairs(self, t1: np.ndarray, t2: np.ndarray, strategy: str) -> np.ndarray:
        """Project pairs into the region and evaluate them, ``batch`` at a time; track the
        best; returns the excesses.

        Only the best pair's points are projected again on their own and kept (the
        batch's projected points never leave the compiled evaluation): the kept pair is
        what :meth:`confirmed` re-evaluates, so a last-bit difference between the two
        projections can change a ranking, never a verdict.
        """
        out = []
        for s in range(0, len(t1), self.batch):
            a, b = t1[s : s + self.batch], t2[s : s + self.batch]
            m = len(a)
            if self.spent + 2 * m > self.limit:
                raise _Budget
            # Pad to the batch size while a batch is small (one compiled shape); beyond
            # _PAD_FULL elements to a power of two (a handful of shapes), so that a single
            # pair (the hypothesis strategy) is not evaluated as a batch of 64 at large P.
            full = self.batch * a.shape[1] <= _PAD_FULL
            pad = (self.batch if full else min(self.batch, 1 << (m - 1).bit_length())) - m
            if pad:
                a = np.concatenate([a, np.repeat(a[:1], pad, 0)])
                b = np.concatenate([b, np.repeat(a[:1], pad, 0)])
            dg, dt = self.evaluate(
                self.consts,
                self.project_consts,
                jnp.asarray(a, dtype=self.dtype),
                jnp.asarray(b, dtype=self.dtype),
            )
            dg, dt = (np.asarray(x, dtype=np.float64)[:m] for x in (dg, dt))
            self.spent += 2 * m
            ok = (dt > 0) & np.isfinite(dg)  # a projection may merge a pair: no ratio there
            self.nonfinite += int(np.sum(~np.isfinite(dg)))
            self.merged += int(np.sum(np.isfinite(dg) & ~(dt > 0)))
            ex = np.full(m, -np.inf)
            ex[ok] = self.excess(dg[ok], dt[ok])
            i = int(np.argmax(ex))
            if ex[i] > self.best[0]:
                pa, pb = (
                    np.asarray(self.project_one(self.project_consts, jnp.asarray(x[i], self.dtype)))
                    for x in (a, b)
                )
                # projected on its own the pair may merge (a last-bit difference): then it
                # has no ratio and is not kept
                if _norm(pa.astype(np.float64) - pb.astype(np.float64)) > 0:
                    self.best = (float(ex[i]), pa, pb, strategy)
                    if ex[i] > 1.0 and self.confirmed():
                        raise _Witness
            out.append(ex)
        return np.concatenate(out) if out else np.zeros(0)

    def confirmed(self) -> bool:
        """Re-evaluate the best pair eagerly: does it beat the claim beyond rounding?

        The gradients carry ``grad_error`` each (default γ_{1000+4P} of the dtype they are
        computed in, times their norm); their difference and the norms are then taken
        in NumPy float64 on the exact values, adding γ_{3P+4} (float64) to ‖Δg‖ and
        γ_{P+4} to ‖Δθ‖ (θ1, θ2 are the exact points the gradient was evaluated at).
        """
        ex, a, b, _ = self.best
        if not np.isfinite(ex) or ex <= 1.0:
            return False
        # in the region up to the rounding of its projection in the parameters' dtype
        if not (self.region.contains(a) and self.region.contains(b)):
            return False
        g1 = np.asarray(self.grad(jnp.asarray(a)), dtype=np.float64)
        g2 = np.asarray(self.grad(jnp.asarray(b)), dtype=np.float64)
        dg = _norm(g1 - g2)
        dt = _norm(a.astype(np.float64) - b.astype(np.float64))
        if dt == 0.0:
            return False
        if callable(self.grad_error):  # the gradient's own error bound, at each point
            err = max(float(self.grad_error(a)), float(self.grad_error(b)))
            if not math.isfinite(err) or err < 0:
                raise ValueError(f"grad_error(θ) returned {err!r}; it must be a finite real >= 0")
        elif self.grad_error is not None:
            err = self.grad_error
        else:
            err = self.grad_rtol * max(_norm(g1), _norm(g2))
        lhs_error = 2.0 * err + tolerance.gamma(3 * a.size + 4) * dg
        rhs = self.beta * dt * (1 + tolerance.gamma(a.size + 4)) + self.alpha
        return dg - lhs_error > rhs


# --------------------------------------------------------------------------- strategies


def _set(x: np.ndarray, i: int, value: float) -> np.ndarray:
    """A copy of ``x`` with ``x[i] = value``: an e_i perturbation written by index."""
    y = x.copy()
    y[i] = value
    return y


def _probe_pairs(s: _Search, n_centres: int, user_probes):
    """Yield structural probe pairs one at a time (O(P) memory each, no identity matrix)."""
    P = s.region.dim
    ts = s.region.scale * np.array([1e-2, 1e-3, 1e-4, 1e-5])
    v = s.rng.standard_normal(P)
    v /= np.linalg.norm(v)
    for t in ts:  # the origin: the kink of ‖·‖_2 (L2 attack)
        yield t * v, -t * v
    for probe in user_probes:
        a, b = probe(s.rng, s.region)
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        if a.shape != b.shape or a.ndim != 2 or a.shape[1] != P:
            raise ValueError(
                f"probes: a probe returned θ1s of shape {a.shape} and θ2s of shape {b.shape}; "
                f"allowed: two arrays of one shape (k, {P}) or ({P},)"
            )
        yield from zip(a, b, strict=True)
    # the coordinates to zero: all of them in turn when few, else a random subset
    coords = (
        np.arange(n_centres) % P
        if P <= n_centres
        else s.rng.choice(P, size=n_centres, replace=False)
    )
    for k in range(n_centres):
        c = s.region.sample(s.rng, 1)[0]
        i = int(coords[k])
        z = _set(c, i, 0.0)  # a coordinate zero: the kink of ‖·‖_1 (L∞ attack)
        for t in ts:
            yield _set(z, i, t), _set(z, i, -t)
        if P >= 2:  # a tie of the two largest |θ_i|: the kink of ‖·‖_∞ (L1 attack)
            ac = np.abs(c)
            top = np.argpartition(-ac, 1)[:2]  # O(P), not a sort
            i1, i2 = (int(j) for j in top[np.argsort(-ac[top], kind="stable")])
            s1 = 1.0 if c[i1] >= 0 else -1.0
            s2 = 1.0 if c[i2] >= 0 else -1.0
            tie = _set(_set(c, i1, s1 * ac[i1]), i2, s2 * ac[i1])
            for t in ts:
                yield _set(tie, i1, tie[i1] + t * s1), _set(tie, i2, tie[i2] + t * s2)


def _run_probes(s: _Search, share: int, user_probes) -> None:
    n_pairs, done, k = share // 2, 0, 0
    if n_pairs == 0:
        return
    P = s.region.dim
    # one pair of buffers, refilled batch after batch: a fresh (batch, P) array per
    # batch costs a page fault per 4 kB, as much as the gradients at P = 10⁶
    A = np.empty((s.batch, P))
    B = np.empty((s.batch, P))
    for a, b in _probe_pairs(s, max(1, share // 24), user_probes):
        A[k], B[k] = a, b
        k += 1
        if k == min(s.batch, n_pairs - done):
            s.pairs(A[:k], B[:k], "probes")
            done, k = done + k, 0
            if done >= n_pairs:
                return
    if k:
        s.pairs(A[:k], B[:k], "probes")


def _run_random(s: _Search, share: int) -> None:
    n, done = share // 2, 0
    while done < n:
        m = min(s.batch, n - done)
        a = s.region.sample(s.rng, m)
        d = s.rng.standard_normal(a.shape)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        dist = s.region.scale * np.exp(s.rng.uniform(math.log(1e-6), 0.0, (m, 1)))
        d *= dist
        d += a  # in place: no second (m, P) temporary
        s.pairs(a, d, "random")
        done += m


def _run_bisection(s: _Search, share: int, levels: int = 12) -> None:
    """Zoom into the sub-interval of largest ratio along random segments."""
    points = max(3, min(9, s.batch + 1))  # one batch of pairs per level
    n_segments = max(1, share // (2 * (points - 1) * levels))
    grid = np.linspace(0.0, 1.0, points)
    for _ in range(n_segments):
        a0, b0 = s.region.sample(s.rng, 2)
        length = float(np.linalg.norm(b0 - a0))
        lo, hi = 0.0, 1.0
        for _ in range(levels):
            ss = lo + (hi - lo) * grid
            pts = a0[None, :] + ss[:, None] * (b0 - a0)[None, :]
            ex = s.pairs(pts[:-1], pts[1:], "bisection")
            k = int(np.argmax(ex))
            lo, hi = ss[k], ss[k + 1]
            if (hi - lo) * length < 1e-9 * max(1.0, s.region.scale):
                break


class _Stop(Exception):
    """Ends a Hypothesis run early (a witness, the budget, or an error to re-raise)."""


def _hypothesis_settings(max_examples: int):
    from hypothesis import HealthCheck, Phase, Verbosity, settings

    # Explicit, so that a caller's Hypothesis profile (derandomize, verbosity, a database)
    # cannot change what a seed replays or what is printed. report_multiple_bugs=False:
    # the first _Stop ends the run.
    return settings(
        max_examples=max_examples,
        phases=[Phase.generate, Phase.target],
        database=None,
        deadline=None,
        derandomize=False,
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
    )


def _run_hypothesis(s: _Search, share: int, seed: int) -> None:
    """Hypothesis draws a *recipe* for a pair, NumPy draws the vectors from it.

    Hypothesis cannot draw a vector of 10⁴ floats (its examples are a few kB), so it
    draws what a pair is made of: a seed for the centre and for a dense direction,
    up to four coordinates of the centre to overwrite (Hypothesis favours 0.0 and
    repeated values: the kinks of ‖·‖_1 and ‖·‖_∞), an optional sparse direction on up
    to four coordinates (e_i perturbations, by index), a log-distance, and whether
    the pair straddles the centre. ``hypothesis.target`` then climbs the log excess.
    """
    from hypothesis import given, target
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    P = s.region.dim
    scale = s.region.scale
    big = 10.0 * max(scale, 1.0)
    index = st.integers(0, P - 1)
    state: dict[str, Any] = {"stop": False, "error": None}

    @hseed(seed)
    @_hypothesis_settings(max(1, share // 2))
    @given(
        point_seed=st.integers(0, 2**63 - 1),
        origin=st.sampled_from([False, False, False, True]),
        edits=st.lists(st.tuples(index, st.floats(-big, big)), max_size=4),
        step=st.lists(st.tuples(index, st.floats(-1.0, 1.0)), max_size=4),
        log_dist=st.floats(-6.0, 0.0),
        straddle=st.booleans(),
    )
    def probe(point_seed, origin, edits, step, log_dist, straddle):
        # Once stopped every example raises at once, so Hypothesis's replay of the
        # failing example raises the same way (no flakiness against our state).
        if state["stop"] or s.spent + 2 > s.limit:
            state["stop"] = True
            raise _Stop
        try:
            rng = np.random.default_rng(point_seed)
            c = np.zeros(P) if origin else s.region.sample(rng, 1)[0]
            for i, v in edits:
                c[i] = v
            d = np.zeros(P)
            for i, v in step:
                d[i] += v
            nd = float(np.linalg.norm(d))
            if nd == 0.0:  # no sparse step drawn: a dense direction from the seed
                d = rng.standard_normal(P)
                nd = float(np.linalg.norm(d))
            h = (scale * 10.0**log_dist / nd) * d
            a, b = (c - 0.5 * h, c + 0.5 * h) if straddle else (c, c + h)
            ex = s.pairs(a[None, :], b[None, :], "hypothesis")[0]
            if np.isfinite(ex):
                target(float(np.log(max(ex, 1e-300))), label="log excess")
        except (_Budget, _Witness):
            state["stop"] = True
        except Exception as err:  # re-raised below as itself, not as a Hypothesis failure
            state["stop"], state["error"] = True, err
        if state["stop"]:
            raise _Stop

    try:
        probe()
    except _Stop:
        pass
    if state["error"] is not None:
        raise state["error"]


def _run_ascent(s: _Search, share: int) -> None:
    # starts evaluated together: at most 8, and within the batch memory budget
    starts = max(1, min(8, s.batch // 2))
    # 4 evaluations per start and step (two gradients, two reverse passes), and 2 per
    # start to evaluate the result
    steps = (share - 2 * starts) // (4 * starts)
    if steps < 1:
        return
    a = s.region.sample(s.rng, starts)  # search_worst_pair projects its starts
    d = s.rng.standard_normal(a.shape)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    b = a + 0.1 * s.region.scale * d
    if s.best[1] is not None:  # start one run from the best pair so far
        a[0], b[0] = s.best[1], s.best[2]
    grad_h, beta, alpha = s.grad_h, s.beta, s.alpha

    def score(consts, t1, t2):
        dg = jnp.linalg.norm(grad_h(consts, t1) - grad_h(consts, t2))
        dt = jnp.linalg.norm(t1 - t2)
        return jnp.log(dg) - jnp.log(beta * dt + alpha)

    found = smoothness.search_worst_pair(
        score,
        jnp.asarray(a, dtype=s.dtype),
        jnp.asarray(b, dtype=s.dtype),
        steps=steps,
        project=s.region.project,
        args=(s.consts,),
    )
    s.spent += 4 * starts * steps
    s.pairs(found.thetas1, found.thetas2, "ascent")


# --------------------------------------------------------------------------- entry points


def _param_dtype(region: Region) -> np.dtype:
    """The dtype the parameters are fed to the gradient in: the region's (a float32
    pytree stays float32), at most as precise as JAX's default float (float32 unless
    ``jax_enable_x64`` is on)."""
    default = jnp.asarray(0.0).dtype
    own = getattr(region, "dtype", None)
    if own is None:
        return np.dtype(default)
    return tolerance.working_dtype(np.zeros(0, default), np.zeros(0, own))


class UncheckableClaimError(ValueError):
    """No pair in the region gave a gradient ratio, so the claim can be neither refuted nor
    supported: the message says why (non-finite gradients, a region too small for the
    dtype, or too small a budget) and what to change.

    Example:
        A gradient that is NaN everywhere gives no ratio at all:

        >>> import jax.numpy as jnp
        >>> from advlip import falsify_smoothness
        >>> from advlip.regions import Box
        >>> falsify_smoothness(lambda th: th * jnp.nan, beta=1.0, region=Box([-1.0], [1.0]),
        ...                    budget=100)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advlip.falsifier.UncheckableClaimError: no pair in Box(dim 1) gave a gradient ratio ... inf or NaN ...
    """


def _why_no_pair(s: _Search, budget: int, region: Region) -> str:
    head = f"no pair in {region.describe()} gave a gradient ratio after {s.spent} evaluations"
    if s.nonfinite:
        return (
            f"{head}: the gradient difference was inf or NaN on {s.nonfinite} pair(s). The "
            "gradient overflows or is undefined for these arguments (a radius ε or a region "
            "so large that the loss overflows in float arithmetic?); check grad_fn on a point "
            "of the region and use smaller magnitudes"
        )
    if s.merged:
        return (
            f"{head}: the two points of every pair ({s.merged}) coincided after projection "
            f"and rounding to {s.dtype.name}. The region is too small to hold two distinct "
            "points at this precision; use a larger region"
            + (" (or float64)" if s.dtype != np.float64 else "")
        )
    return f"{head}: budget={budget} was too small to evaluate a single pair; raise budget"


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
    grad_error: float | Callable[[np.ndarray], float] | None = None,
) -> SmoothnessVerdict:
    r"""Try to refute :math:`\|\nabla L(\theta_1) - \nabla L(\theta_2)\| \le \beta\|\theta_1 - \theta_2\| + \alpha` on ``region``.

    Args:
      grad_fn: parameters ↦ gradient, traceable by ``jax.jit``. Flat arrays, or pytrees
        when ``region`` was built from a pytree (``Ball(center=params, ...)``).
      beta: the claimed smoothness constant (> 0).
      region: an :mod:`advlip.regions` region.
      budget: gradient evaluations to spend (≥ 100).
      seed: replays the run.
      alpha: additive term of a Liu-type claim (0 for β-smoothness).
      strategies: which of :data:`STRATEGIES` to run, in that order.
      probes: extra structural probes ``(rng, region) -> (θ1s, θ2s)``.
      grad_error: absolute error of one gradient (2-norm): a number, or a function
        θ ↦ the error at θ (e.g. ``LinearProblem.grad_error_bound``, which counts the
        model's own operations); by default γ_{1000+4P} in the dtype the gradient is
        computed in (the least precise of its output and its parameters;
        :func:`default_grad_rtol`) times its norm.

    The parameters are fed in the region's dtype, at most JAX's default float: float64
    only under ``jax_enable_x64``; the gradient's own dtype is left as it is. Memory is
    O(P) per pair and a batch of pairs stays within a fixed budget, so P = 10⁶
    parameters work; the arrays ``grad_fn`` closes over (data) are passed to the
    compiled searches as arguments, not copied into them.

    Returns:
      A :class:`SmoothnessVerdict`: refuted (with the witness pair) or not (with the
      best pair found).

    Raises:
      UncheckableClaimError: no pair gave a gradient ratio (see there).

    Example:
        The gradient 2θ of ‖θ‖² is 2-smooth: the claim β = 1 falls at the first pair.

        >>> from advlip import falsify_smoothness
        >>> from advlip.regions import Box
        >>> box = Box([-1.0, -1.0], [1.0, 1.0])
        >>> v = falsify_smoothness(lambda th: 2.0 * th, beta=1.0, region=box, budget=100)
        >>> v.refuted, round(v.ratio, 4), v.strategy
        (True, 2.0, 'probes')
    """
    beta = check_real("beta", beta, minimum=0.0, strict=True)
    alpha = check_real("alpha", alpha, minimum=0.0, strict=False)
    if not isinstance(region, Region):
        raise ValueError(
            f"region must be an advlip.regions region (Ball, NormAtLeast, Box), got {region!r}"
        )
    budget = check_positive_int("budget", budget, minimum=100)
    strategies = (strategies,) if isinstance(strategies, str) else tuple(strategies)
    unknown = [n for n in strategies if n not in STRATEGIES]
    if unknown or not strategies:
        raise ValueError(f"strategies={list(strategies)!r}: allowed values are {list(STRATEGIES)}")
    if grad_error is not None and not callable(grad_error):
        grad_error = check_real("grad_error", grad_error, minimum=0.0, strict=False)

    if region.unravel is not None:
        unravel = region.unravel
        grad = lambda th: ravel_pytree(grad_fn(unravel(th)))[0]  # noqa: E731
    else:
        grad = grad_fn
    dtype = _param_dtype(region)
    P = region.dim
    theta0 = jnp.asarray(region.sample(np.random.default_rng(seed), 1)[0], dtype=dtype)
    probe_out = grad(theta0)
    if np.shape(probe_out) != (P,):
        raise ValueError(
            f"grad_fn returns shape {np.shape(probe_out)} for parameters of dimension {P}; "
            "it must return the gradient, of the parameters' shape"
        )
    # the precision the gradient is computed in: the least precise of its parameters and
    # its output (a float32 model fed float64 parameters still rounds to 24 bits)
    grad_dtype = tolerance.working_dtype(probe_out, theta0)
    grad_rtol = default_grad_rtol(grad_dtype, P) if grad_error is None else 0.0
    # A projected point may sit on the region's boundary up to the rounding of the
    # projection in the parameters' dtype: a norm of P terms and a rescaling, γ_{P+4}
    # (what Region.contains allows); where that bound is vacuous, say so now.
    try:
        tolerance.gamma(P + 4, dtype)
    except ValueError as err:
        raise ValueError(
            f"region of dimension {P} in {np.dtype(dtype).name}: a norm of {P} terms has no "
            "rounding-error bound there; enable float64 (jax.config.update('jax_enable_x64', "
            "True))"
        ) from err

    grad_h, consts = _hoist(grad, theta0)
    project_h, project_consts = _hoist(region.project, theta0)

    @jax.jit
    def evaluate(consts, project_consts, t1, t2):
        proj = jax.vmap(lambda th: project_h(project_consts, th).astype(dtype))
        t1, t2 = proj(t1), proj(t2)
        g = jax.vmap(lambda th: grad_h(consts, th))
        return norms.lp_norm(g(t1) - g(t2), 2.0), norms.lp_norm(t1 - t2, 2.0)

    s = _Search(
        grad=grad,
        grad_h=grad_h,
        consts=consts,
        region=region,
        beta=float(beta),
        alpha=float(alpha),
        rng=np.random.default_rng(seed),
        evaluate=evaluate,
        project_one=jax.jit(lambda c, th: project_h(c, th).astype(dtype)),
        project_consts=project_consts,
        dtype=np.dtype(dtype),
        batch=_batch_size(P, dtype),
        grad_rtol=grad_rtol,
        grad_error=grad_error,
    )
    start = time.perf_counter()
    per: dict[str, dict[str, float]] = {}
    refuted = False
    for k, name in enumerate(strategies):
        # this strategy's part of what is left: what an earlier one did not use is shared on
        share = int((budget - s.spent) * _SHARES[name] / sum(_SHARES[n] for n in strategies[k:]))
        s.limit = min(budget, s.spent + share)
        before, best_before, t0 = s.spent, s.best[0], time.perf_counter()
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
        except (_Budget, _Witness):
            pass
        per[name] = {
            "evaluations": s.spent - before,
            "best_excess": max(s.best[0], best_before),
            "seconds": time.perf_counter() - t0,
        }
        if s.confirmed():
            refuted = True
            break

    ex, a, b, who = s.best
    if a is None:
        raise UncheckableClaimError(_why_no_pair(s, budget, region))
    g1 = np.asarray(grad(jnp.asarray(a)), dtype=np.float64)
    g2 = np.asarray(grad(jnp.asarray(b)), dtype=np.float64)
    dg = _norm(g1 - g2)
    dt = _norm(a.astype(np.float64) - b.astype(np.float64))
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
        distance=dt,
        grad_dtype=np.dtype(grad_dtype).name,
    )


@dataclasses.dataclass
class FalsifyResult:
    """What :func:`falsify` found: a counterexample, or the best margin after N examples.

    Example:
        A boolean claim has margin 1 where it fails (0 where it holds):

        >>> from hypothesis import strategies as st
        >>> from advlip import falsify
        >>> r = falsify(lambda n: n < 10, st.integers(0, 20), budget=100)
        >>> r.refuted, r.counterexample >= 10, r.best_margin
        (True, True, 1.0)
    """

    refuted: bool
    counterexample: Any
    best_margin: float
    examples: int
    seed: int


_ALLOWED_CLAIM_RESULTS = (
    "a 0-d boolean (Python bool, NumPy or JAX 0-d bool array: the verdict) or a 0-d real "
    "number (Python int/float, NumPy or JAX 0-d integer/float array: a margin, violated when > 0)"
)


def _describe(out: Any) -> str:
    shape = getattr(out, "shape", None)
    dtype = getattr(out, "dtype", None)
    parts = [f"type {type(out).__module__}.{type(out).__qualname__}"]
    if shape is not None:
        parts.append(f"shape {tuple(shape)}")
    if dtype is not None:
        parts.append(f"dtype {dtype}")
    return ", ".join(parts)


def _claim_outcome(out: Any, example: Any) -> tuple[float, bool, bool]:
    """``(margin, violated, is_margin)`` of what a claim returned; TypeError if it is neither
    a 0-d boolean (a verdict) nor a 0-d real (a margin), ValueError for a NaN margin."""
    if isinstance(out, bool | np.bool_):
        return (0.0 if out else 1.0), not bool(out), False
    if isinstance(out, numbers.Real):  # Python int/float, np.float64, Fraction (not bool)
        margin = float(out)
    else:
        dtype = getattr(out, "dtype", None)
        shape = getattr(out, "shape", None)
        if dtype is None or shape is None or tuple(shape) != () or isinstance(out, str):
            raise TypeError(
                f"claim returned {out!r:.200} ({_describe(out)}) for {example!r:.200}; "
                f"allowed: {_ALLOWED_CLAIM_RESULTS}"
            )
        if jnp.issubdtype(dtype, jnp.bool_):
            verdict = bool(out)  # a NumPy or JAX 0-d bool: a verdict, never a float
            return (0.0 if verdict else 1.0), not verdict, False
        if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
            raise TypeError(
                f"claim returned {out!r:.200} ({_describe(out)}) for {example!r:.200}; "
                f"allowed: {_ALLOWED_CLAIM_RESULTS}"
            )
        margin = float(out)
    if math.isnan(margin):
        raise ValueError(
            f"claim returned NaN for {example!r:.200}; allowed: {_ALLOWED_CLAIM_RESULTS}, "
            "finite or ±inf"
        )
    return margin, margin > 0, True


def falsify(
    claim: Callable[[Any], Any],
    strategy: Any,
    *,
    budget: int = 500,
    seed: int = 0,
) -> FalsifyResult:
    """Search Hypothesis ``strategy`` for an input that breaks ``claim``.

    ``claim(example)`` returns a 0-d boolean — Python, NumPy or JAX (``x <= 1.0`` on a
    ``jax.numpy`` value is one): True where the claim holds — or a 0-d real *margin*
    such as ``lhs - rhs`` (the claim holds iff margin ≤ 0); a finite margin is also
    handed to ``hypothesis.target``, so the search climbs towards violations. Anything
    else (an array with a shape, a string, None, a complex number) is a ``TypeError``
    saying what was returned; a NaN margin a ``ValueError``. An exception raised by
    ``claim`` propagates as itself.

    Example:
        >>> from hypothesis import strategies as st
        >>> from advlip import falsify
        >>> r = falsify(lambda x: x * x - 4 * x, st.floats(-10, 10), budget=200)  # "x² ≤ 4x"
        >>> r.refuted
        True
    """
    from hypothesis import given, target
    from hypothesis import seed as hseed
    from hypothesis.errors import HypothesisException

    budget = check_positive_int("budget", budget)
    state: dict[str, Any] = {
        "n": 0,
        "best": -math.inf,
        "found": None,
        "refuted": False,
        "stop": False,
        "error": None,
    }

    @hseed(seed)
    @_hypothesis_settings(budget)
    @given(strategy)
    def run(example):
        # Once stopped every example raises at once: Hypothesis replays the failing
        # example, and it must fail the same way without calling the claim again.
        if state["stop"]:
            raise _Stop
        state["n"] += 1
        try:
            margin, violated, is_margin = _claim_outcome(claim(example), example)
        except HypothesisException:  # assume(), reject(): Hypothesis's own control flow
            raise
        except Exception as err:  # re-raised below as itself, not as a Hypothesis failure
            state["stop"], state["error"] = True, err
            raise _Stop from None
        if is_margin and math.isfinite(margin):
            target(margin, label="margin")
        state["best"] = max(state["best"], margin)
        if violated:
            state["found"], state["refuted"], state["stop"] = example, True, True
            raise _Stop

    try:
        run()
    except _Stop:
        pass
    if state["error"] is not None:
        raise state["error"]
    if state["refuted"]:
        return FalsifyResult(True, state["found"], state["best"], state["n"], seed)
    return FalsifyResult(False, None, state["best"], state["n"], seed)
