"""Scaling: time of a pair sweep against d and against the batch size n (and, where
advlip.adversarial is present, a total Hessian-vector product against the parameter
count P), with the fitted log-log exponent beside the expected one.

Expected: the closed-form gradient of a linear model costs O(n·d) per point, so a
sweep of N pairs is linear in d and in n (exponent 1) once the work dwarfs fixed
per-call overhead, and below 1 while it does not; the total HVP costs a fixed number of
gradient-like passes, linear in P. Target: every exponent ≤ 1 — the time never grows
faster than the work (a super-linear exponent is a finding: a cache falling out, an
intermediate growing with the product of two sizes).

    python benchmarks/bench_scaling.py [--quick] [--json PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import entry, exponent_stderr, fit_exponent, timeit  # noqa: E402

import advlip  # noqa: E402,F401
from advlip import data, smoothness  # noqa: E402
from advlip.linear import LinearProblem  # noqa: E402


def _sweep_time(n: int, d: int, pairs: int) -> float:
    X, y = data.synthetic(jax.random.PRNGKey(0), n=n, d=d)
    prob = LinearProblem(X=X, y=y, eps=0.5, p=2.0)
    t1, t2 = smoothness.sample_pairs(np.random.default_rng(0), pairs, d, norm_range=(0.5, 2.0))
    r = smoothness.pair_ratios(LinearProblem.grad, t1, t2, args=(prob,), shard=False)[0]
    assert bool(jnp.all(jnp.isfinite(r)))
    return timeit(
        lambda: smoothness.pair_ratios(LinearProblem.grad, t1, t2, args=(prob,), shard=False)
    )


def _hvp_times(quick: bool):
    try:
        from advlip import adversarial, models
    except ImportError:
        return None
    widths = (8, 16, 32, 64) if quick else (8, 16, 32, 64, 128, 256)
    ps, ts = [], []
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((16, 8)) / np.sqrt(8))
    y = jnp.asarray(np.where(rng.uniform(size=16) < 0.5, -1.0, 1.0))
    for w in widths:
        params = models.init_mlp(jax.random.PRNGKey(0), (8, w, 1))
        flat, _ = jax.flatten_util.ravel_pytree(params)
        v = jax.tree.map(jnp.ones_like, params)
        f = jax.jit(
            lambda p, v: adversarial.total_hvp(models.mlp_margin_loss, p, X, y, v, eps=0.1, p=2.0)
        )
        ps.append(flat.size)
        ts.append(timeit(lambda: f(params, v), repeat=3))
    return ps, ts


def run(quick: bool) -> list[dict]:
    pairs = 256 if quick else 1024
    dims = (256, 512, 1024, 2048) if quick else (256, 512, 1024, 2048, 4096, 8192)
    t_d = [_sweep_time(8, d, pairs) for d in dims]
    ns = (256, 512, 1024, 2048) if quick else (256, 512, 1024, 2048, 4096, 8192)
    t_n = [_sweep_time(n, 16, pairs) for n in ns]
    e_d, e_n = fit_exponent(dims, t_d), fit_exponent(ns, t_n)
    se_d, se_n = exponent_stderr(dims, t_d), exponent_stderr(ns, t_n)
    rows = [
        entry(
            "scaling: pair sweep time vs d (exponent)",
            ratio=e_d,
            target=1.0,
            met=e_d <= 1.0,
            goal="≤",
            sizes=list(dims),
            times_s=t_d,
            notes=f"d = {dims[0]} … {dims[-1]}, n = 8, {pairs} pairs; O(n·d) per gradient: "
            f"exponent 1, below while per-call overhead counts; fit ± {se_d:.2g} (std. error)",
        ),
        entry(
            "scaling: pair sweep time vs batch n (exponent)",
            ratio=e_n,
            target=1.0,
            met=e_n <= 1.0,
            goal="≤",
            sizes=list(ns),
            times_s=t_n,
            notes=f"n = {ns[0]} … {ns[-1]}, d = 16, {pairs} pairs; O(n·d) per gradient: "
            f"exponent 1, below while per-call overhead counts; fit ± {se_n:.2g} (std. error)",
        ),
    ]
    try:
        hv = _hvp_times(quick)
    except Exception as err:  # the general-model API is young: report, do not hide
        rows.append(
            entry(
                "scaling: total HVP vs P (exponent)",
                ratio=None,
                target=1.0,
                met=None,
                goal="≤",
                notes=f"not measured: {type(err).__name__}: {err}",
            )
        )
        hv = None
    if hv is not None:
        e_p, se_p = fit_exponent(*hv), exponent_stderr(*hv)
        rows.append(
            entry(
                "scaling: total HVP vs P (exponent)",
                ratio=e_p,
                target=1.0,
                met=e_p <= 1.0,
                goal="≤",
                sizes=hv[0],
                times_s=hv[1],
                notes=f"P = {hv[0][0]} … {hv[0][-1]}: a fixed number of passes, each O(P); below "
                f"1 while per-call overhead still dominates at these sizes; fit ± {se_p:.2g}",
            )
        )
    for r in rows:
        print(f"{r['name']}: {r['ratio']}", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    return common.main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
