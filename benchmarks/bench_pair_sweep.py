"""Pair sweep: gradient ratios of N pairs of linear weights, d = 16 … 4096.

advlip (jit + vmap of the closed-form Danskin gradient) against plain NumPy (the
same formula, vectorised over pairs) and SymPy-lambdified NumPy (the SymPy gradient
expression of advlip.symbolic, small d only: building it for d in the thousands
takes SymPy minutes). The memory-bandwidth roofline is measured in the same run
(a jitted copy of a large array: bytes read + written per second); the sweep must
read both weight arrays and write the ratios, so ``bytes / bandwidth`` is the least
time any implementation can take, and ``roofline / time`` the fraction reached.

    python benchmarks/bench_pair_sweep.py [--quick] [--json PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import entry, timeit  # noqa: E402

import advlip  # noqa: E402,F401
from advlip import data, smoothness, tolerance  # noqa: E402
from advlip.linear import LinearProblem  # noqa: E402

EPS = 0.5


def numpy_grads(W, X, y, eps):
    """Danskin gradient of the L2 softplus adversarial loss for each row of W (NumPy)."""
    nw = np.linalg.norm(W, axis=1, keepdims=True)
    m = y[None, :] * (W @ X.T) - eps * nw  # (N, n)
    d1 = -1.0 / (1.0 + np.exp(m))  # ℓ'(m) = -σ(-m)
    return (d1 * y[None, :]) @ X / X.shape[0] - eps * d1.mean(axis=1, keepdims=True) * W / nw


def numpy_ratios(W1, W2, X, y, eps):
    dg = np.linalg.norm(numpy_grads(W1, X, y, eps) - numpy_grads(W2, X, y, eps), axis=1)
    return dg / np.linalg.norm(W1 - W2, axis=1)


def sympy_ratio_fn(d, X, y, eps):
    """SymPy gradient, lambdified to NumPy, evaluated over the pairs (vectorised per symbol)."""
    import sympy as sp

    from advlip import symbolic

    sym = symbolic.symbols(d)
    grad = symbolic.gradient_expr(d, p=2.0)[:d]
    f = sp.lambdify((*sym.w, *sym.x, sym.y, sym.b, sym.eps), list(grad), modules="numpy")

    def grads(W):
        cols = [W[:, j] for j in range(d)]
        total = np.zeros_like(W)
        for i in range(X.shape[0]):
            total += np.stack(f(*cols, *X[i], y[i], 0.0, eps), axis=1)
        return total / X.shape[0]

    def ratios(W1, W2):
        return np.linalg.norm(grads(W1) - grads(W2), axis=1) / np.linalg.norm(W1 - W2, axis=1)

    return ratios


def bandwidth(nbytes: int = 1 << 27) -> float:
    """Bytes per second of a jitted copy-scale of a ``nbytes`` float64 array (read + write)."""
    a = jnp.ones(nbytes // 8)
    f = jax.jit(lambda x: x * 1.0000001)
    t = timeit(lambda: f(a), repeat=5)
    return 2 * nbytes / t


def run(quick: bool) -> list[dict]:
    n_pairs = 1024 if quick else 8192
    dims = (16, 256, 1024, 4096) if quick else (16, 64, 256, 1024, 2048, 4096)
    bw = bandwidth()
    rows = []
    rng = np.random.default_rng(0)
    for d in dims:
        X, y = data.synthetic(jax.random.PRNGKey(0), n=8, d=d)
        prob = LinearProblem(X=X, y=y, eps=EPS, p=2.0)
        t1, t2 = smoothness.sample_pairs(rng, n_pairs, d, norm_range=(0.5, 2.0))
        f = jax.jit(
            lambda a, b: smoothness.pair_ratios(
                LinearProblem.grad, a, b, args=(prob,), shard=False
            )[0]
        )
        r_jax = np.asarray(f(t1, t2))
        Xn, yn, W1, W2 = (np.asarray(v) for v in (X, y, t1, t2))
        r_np = numpy_ratios(W1, W2, Xn, yn, EPS)
        # correctness first: both are float64 evaluations of one formula; per-pair error bound
        err = 2 * np.asarray(
            jax.vmap(prob.grad_error_bound)(t1) + jax.vmap(prob.grad_error_bound)(t2)
        )
        err = 2 * err / np.linalg.norm(W1 - W2, axis=1) + tolerance.gamma(8) * r_np
        assert np.all(np.abs(r_jax - r_np) <= err), "advlip and NumPy disagree"
        t_jax = timeit(lambda: f(t1, t2))
        t_np = timeit(lambda: numpy_ratios(W1, W2, Xn, yn, EPS), repeat=3)
        nbytes = 2 * n_pairs * d * 8 + n_pairs * 8
        t_roof = nbytes / bw
        row = {
            "d": d,
            "pairs": n_pairs,
            "advlip_s": t_jax,
            "numpy_s": t_np,
            "speedup_vs_numpy": t_np / t_jax,
            "roofline_s": t_roof,
            "roofline_fraction": t_roof / t_jax,
        }
        if d <= 64:
            sym = sympy_ratio_fn(d, Xn, yn, EPS)
            r_sym = sym(W1[:64], W2[:64])
            assert np.all(np.abs(r_sym - r_np[:64]) <= err[:64]), "SymPy and NumPy disagree"
            t_sym = timeit(lambda: sym(W1[:64], W2[:64]), repeat=3, min_time=0.0) * n_pairs / 64
            row["sympy_numpy_s"] = t_sym
            row["speedup_vs_sympy"] = t_sym / t_jax
        rows.append(row)
        print(
            f"d={d:5d}: advlip {t_jax * 1e3:8.3f} ms  numpy {t_np * 1e3:8.3f} ms  "
            f"roofline {t_roof * 1e3:7.3f} ms ({t_roof / t_jax:.0%})",
            file=sys.stderr,
        )
    big = [r for r in rows if r["d"] >= 1024]
    worst = min(r["roofline_fraction"] for r in big)
    out = [
        entry(
            "pair sweep: fraction of memory roofline (d >= 1024, worst)",
            ratio=worst,
            target=0.5,
            met=worst >= 0.5,
            bandwidth_GBps=bw / 1e9,
            sweep=rows,
            notes=f"bandwidth {bw / 1e9:.1f} GB/s measured in the same run",
        ),
        entry(
            "pair sweep: advlip vs NumPy (d >= 1024, worst speed-up)",
            ratio=min(r["speedup_vs_numpy"] for r in big),
            target=None,
            met=None,
        ),
    ]
    sym_rows = [r for r in rows if "speedup_vs_sympy" in r]
    if sym_rows:
        out.append(
            entry(
                "pair sweep: advlip vs SymPy-lambdified NumPy (d <= 64)",
                ratio=min(r["speedup_vs_sympy"] for r in sym_rows),
                target=None,
                met=None,
            )
        )
    return out


def main(argv=None) -> int:
    return common.main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
