"""ENTROPY-SMOOTH: EntropySGD's local entropy F_γ is γ-smooth where the adversarial loss
is not (docs/theory/entropy-smooth.md; the derivation is proofs/entropy_smooth.py).

Checked exactly in 2-D by quadrature (:mod:`advlip.entropy`) on the L∞ adversarial
loss of a linear model, across its kink ``w_1 = 0``.

Example:
    >>> from advlip import theorems
    >>> r = theorems.get("ENTROPY-SMOOTH")
    >>> r.family, r.kind
    ('smoothing', 'bound')
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from advlip import data, entropy, keys, smoothness, tolerance
from advlip.linear import LinearProblem
from advlip.theorems.base import CheckConfig, CheckResult, Result, register

__all__ = ["check_entropy_smooth", "entropy_ratios", "GAMMAS"]

GAMMAS = (0.5, 1.0, 2.0, 4.0)
EPS = 0.5


def entropy_problem(key: jax.Array) -> LinearProblem:
    """The L∞ problem of ENTROPY-SMOOTH: 16 synthetic points in 2-D drawn from ``key``.

    Args:
      key: a JAX PRNG key (the data's only randomness).

    Returns:
      A :class:`~advlip.linear.LinearProblem` with p = ∞ and ε = :data:`EPS`, no bias.

    Example:
        >>> import jax
        >>> from advlip.theorems.smoothing import entropy_problem
        >>> prob = entropy_problem(jax.random.PRNGKey(0))
        >>> prob.X.shape, prob.p, float(prob.eps), prob.dim
        ((16, 2), inf, 0.5, 2)
    """
    X, y = data.synthetic(key, n=16, d=2)
    return LinearProblem(X=X, y=y, eps=EPS, p=math.inf)


def entropy_ratios(prob: LinearProblem, gamma: float, *, key: jax.Array, n_grid: int = 401) -> dict:
    """Ratios of ∇F_γ across the kink w_1 = 0 and on random pairs, Hessian eigenvalues.

    Every figure carries its quadrature error (Richardson, step h vs 2h) and, for the
    ratios, the float64 rounding of the quadrature sums. The random pairs
    come from ``key`` (:func:`advlip.keys.numpy_rng` ``(key, int(1000 γ))``). Needs JAX's
    float64 mode (the quadrature is a float64 instrument, :mod:`advlip.entropy`).

    Args:
      prob: the problem (:func:`entropy_problem`), d = 2.
      gamma: the coupling γ > 0 of the local entropy.
      key: a JAX PRNG key for the random pairs.
      n_grid: quadrature nodes per axis (odd).

    Returns:
      A dict: ``max_ratio`` (the largest R(F_γ)) and ``max_ratio_error``, ``ratio_ok``
      (every ratio minus its error ≤ γ), ``kink_t``, ``kink_ratio_F`` and ``kink_ratio_L``
      (R of F_γ and of L on the pairs across the kink), the extreme Hessian eigenvalues
      ``hessian_eig_min``/``hessian_eig_max`` with ``hessian_error_max``, and
      ``hessian_ok`` (every eigenvalue in [0, γ] within its error).

    Example:
        A 101² grid takes several seconds; ENTROPY-SMOOTH runs it for each γ of
        :data:`GAMMAS` (the quick run for γ ∈ {1, 4}):

        >>> from advlip.theorems.smoothing import GAMMAS
        >>> GAMMAS
        (0.5, 1.0, 2.0, 4.0)
    """
    half = 1.5 + entropy.gibbs_width(gamma)
    q = entropy.Quadrature.build(
        prob.loss_value, center=jnp.zeros(2), gamma=gamma, half_width=half, n=n_grid
    )
    rng = keys.numpy_rng(key, int(gamma * 1000))

    # witness pairs across the kink, and random pairs in the box [-1, 1]^2
    ts = smoothness.witness_ts(1e-4, 1e-1)
    c = jnp.array([0.0, 0.7])
    e = jnp.array([1.0, 0.0])
    a = jnp.concatenate(
        [c[None, :] + ts[:, None] * e[None, :], jnp.asarray(rng.uniform(-1, 1, (64, 2)))]
    )
    b = jnp.concatenate(
        [c[None, :] - ts[:, None] * e[None, :], jnp.asarray(rng.uniform(-1, 1, (64, 2)))]
    )

    dt = np.linalg.norm(np.asarray(a - b), axis=1)
    fine = np.linalg.norm(np.asarray(q.grad(a) - q.grad(b)), axis=1) / dt
    coarse = (
        np.linalg.norm(np.asarray(q.grad(a, coarse=True) - q.grad(b, coarse=True)), axis=1) / dt
    )
    # quadrature error (Richardson, h vs 2h) plus float64 rounding: each gradient
    # γ(θ − E[θ']) sums n_grid² weighted nodes, E[θ'] lies in the grid's box, so its error
    # is at most γ·γ_k·(‖θ‖ + ‖center‖ + √2·half) with k = n_grid² + 4 (the sums, the
    # division, the difference); a difference of two, divided by ‖a − b‖, at most twice that
    k = n_grid * n_grid + 4
    box = np.sqrt(2.0) * half
    grad_round = (
        gamma
        * tolerance.gamma(k, np.float64)
        * (np.linalg.norm(np.asarray(a), axis=1) + np.linalg.norm(np.asarray(b), axis=1) + 2 * box)
    )
    err = np.abs(fine - coarse) / 3.0 + grad_round / dt
    g = jax.jit(jax.vmap(prob.grad))
    raw = np.linalg.norm(np.asarray(g(a) - g(b)), axis=1)[: ts.size] / dt[: ts.size]

    pts = jnp.asarray(rng.uniform(-1, 1, (64, 2)))
    H = np.asarray(q.hessian(pts))
    Herr = np.asarray(q.hessian_error(pts))
    eig = np.linalg.eigvalsh(H)
    return {
        "gamma": gamma,
        "max_ratio": float(fine.max()),
        "max_ratio_error": float(err[np.argmax(fine)]),
        "ratio_ok": bool(np.all(fine - err <= gamma)),
        "kink_t": ts.tolist(),
        "kink_ratio_F": fine[: ts.size].tolist(),
        "kink_ratio_L": raw.tolist(),
        "hessian_eig_min": float(eig.min()),
        "hessian_eig_max": float(eig.max()),
        "hessian_error_max": float(Herr.max()),
        "hessian_ok": bool(
            np.all(eig.min(axis=1) + Herr >= 0) and np.all(eig.max(axis=1) - Herr <= gamma)
        ),
    }


def check_entropy_smooth(
    config: CheckConfig, *, gammas: tuple[float, ...] | None = None
) -> CheckResult:
    """ENTROPY-SMOOTH for each γ (quick: γ ∈ {1, 4} on a 201² grid; full: GAMMAS on 401²).

    Holds when every ratio of ∇F_γ is ≤ γ and every Hessian eigenvalue in [0, γ] (within
    the quadrature error), and the raw loss's ratio across the kink grows like 1/t
    (fitted exponent −1).

    Args:
      config: size and seed.
      gammas: the values of γ (default: as above).

    Returns:
      The :class:`~advlip.theorems.CheckResult` (kind ``bound``), one row per γ.

    Example:
        A quick run takes about 7 s (``advlip verify --only ENTROPY-SMOOTH --quick``):

        >>> from advlip import theorems
        >>> from advlip.theorems.smoothing import check_entropy_smooth
        >>> theorems.get("ENTROPY-SMOOTH").check_fn is check_entropy_smooth
        True
    """
    gammas = gammas or ((1.0, 4.0) if config.quick else GAMMAS)
    key = jax.random.PRNGKey(config.seed)
    prob = entropy_problem(key)
    rows = [entropy_ratios(prob, g, key=key, n_grid=201 if config.quick else 401) for g in gammas]
    # the raw loss across the same kink: R grows like 1/t (its growth exponent)
    ts = smoothness.witness_ts(1e-6, 1e-2)
    e = jnp.array([1.0, 0.0])
    dg, dt = smoothness.witness_differences(jax.jit(prob.grad), jnp.array([0.0, 0.7]), e, -e, ts)
    fit = smoothness.fit_growth_exponent(ts, dg, dt)
    ok = all(r["ratio_ok"] and r["hessian_ok"] for r in rows)
    verdict = "holds" if ok and fit.resolved and fit.agrees_with(-1.0) else "fails"
    fig = ", ".join(f"γ={r['gamma']:g}: max R={r['max_ratio']:.3f}" for r in rows)
    return CheckResult(
        id="ENTROPY-SMOOTH",
        statement=ENTROPY_SMOOTH.statement,
        kind="bound",
        verdict=verdict,
        figure=f"{fig}; raw L slope {fit.exponent:+.3f}",
        figures={
            "gamma": [r["gamma"] for r in rows],
            "max_ratio": [r["max_ratio"] for r in rows],
            "cases": rows,
            "raw_loss_fit": fit.to_dict(),
            "eps": EPS,
        },
    )


ENTROPY_SMOOTH = register(
    Result(
        id="ENTROPY-SMOOTH",
        title="EntropySGD's local entropy F_γ is γ-smooth across the L∞ kink",
        statement=(
            "0 ⪯ ∇²F_γ ⪯ γI, so R(F_γ) ≤ γ, while R(L) grows like 1/t at w_1 = 0 (2-D, quadrature)"
        ),
        hypotheses=("L convex (linear model, convex decreasing ℓ)", "d = 2 (exact quadrature)"),
        kind="bound",
        check_fn=check_entropy_smooth,
        family="smoothing",
    )
)
