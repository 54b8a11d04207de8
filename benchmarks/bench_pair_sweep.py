"""Pair sweep: gradient ratios of N pairs of linear weights, d = 16 … 4096, against the
roofline of the machine it runs on, measured in the same run.

advlip (jit + vmap of the closed-form Danskin gradient, docs/theory/closed-form.md) against
plain NumPy (the same formula, vectorised over pairs) and SymPy-lambdified NumPy (the SymPy
gradient expression of advlip.symbolic, small d only: building it for d in the thousands
takes SymPy minutes).

**Roofline** (Williams, Waterman & Patterson, *Roofline*, CACM 2009). Two limits of the
hardware are measured in the same process, just before the sweep:

* memory bandwidth: the best of a jitted streaming sum of a 256 MiB float64 array (bytes
  read) and a jitted in-place scale of one (input buffer donated: bytes read + written);
* float64 matmul peak: the best of jitted ``jnp.dot`` of square float64 matrices (m = 512,
  1024, 2048), counted as 2·m³ flops.

For each size the sweep must read both weight arrays, the data and the labels and write
the ratios: ``bytes = 8·(2Nd + nd + n + N)``; and do at least, per pair, two gradients (two
n×d matrix-vector products, ‖w‖ and the ε-term: 4nd + 4d flops each), the differences and
their norms (6d): ``flops = N·(8nd + 14d)``. The roofline time is
``max(bytes / bandwidth, flops / peak)``: no implementation that forms both gradients of
every pair can take less on this machine. The fraction reached is ``roofline time / measured time``; target ≥ 0.5 at
d ≥ 1024 (below, a fixed per-call overhead of tens of µs exceeds the roofline time), for each
n: n = 8, where every gradient is a product with an 8-row matrix (skinny products that
XLA:CPU runs far from its square-matmul peak), and n = 128, a training minibatch. Each
size also records XLA's own cost analysis of the compiled sweep (bytes accessed, flops):
how far the program itself is from the minimum counted here.

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
N_EXAMPLES = 8
MINIBATCH = 128
#: n, the examples each gradient averages over: the skinniest case, where every gradient is
#: an 8-column product, and a training minibatch (Madry et al.'s CIFAR-10 batch, and the
#: batch of bench_hvp_torch.py).
EXAMPLES = (N_EXAMPLES, MINIBATCH)
EXAMPLES_WHY = {
    N_EXAMPLES: f"n = {N_EXAMPLES}: every gradient is an {N_EXAMPLES}-column product",
    MINIBATCH: f"n = {MINIBATCH}: a training minibatch",
}
ROOFLINE_TARGET = 0.5  # the target: the sweep at ≥ 50% of the roofline (d ≥ 1024)
BIG_D = 1024
STREAM_BYTES = 1 << 28  # 256 MiB: far beyond any cache, so the stream runs from memory
MATMUL_SIZES = (512, 1024, 2048)


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


def bandwidth(nbytes: int = STREAM_BYTES) -> dict:
    """Memory bandwidth (bytes/s) of two jitted float64 streams over ``nbytes``: a sum
    (reads ``nbytes``) and an in-place scale with the input donated (reads and writes
    ``nbytes``; donation keeps XLA from allocating — and the OS from zero-filling — a fresh
    output each call). ``best`` is the higher: the most this machine was seen to move."""
    a = jnp.ones(nbytes // 8)
    total = jax.jit(jnp.sum)
    t_sum = timeit(lambda: total(a), repeat=5)
    scale = jax.jit(lambda x: x * 1.0000001, donate_argnums=0)
    buf = [jnp.ones(nbytes // 8)]

    def step():
        buf[0] = scale(buf[0])
        return buf[0]

    t_scale = timeit(step, repeat=5)
    out = {"sum": nbytes / t_sum, "scale_in_place": 2 * nbytes / t_scale}
    out["best"] = max(out.values())
    return out


def matmul_peak(sizes=MATMUL_SIZES) -> dict:
    """Float64 flops/s of jitted ``jnp.dot`` on m×m matrices (2·m³ flops), best over ``sizes``.

    The product is checked first: with A = 1 and B = 2 every entry of A @ B is 2m, exact in
    float64 (every partial sum is an integer below 2⁵³), so any difference is a wrong result.
    """
    dot = jax.jit(jnp.dot)
    rates = {}
    for m in sizes:
        A, B = jnp.ones((m, m)), jnp.full((m, m), 2.0)
        assert bool(jnp.all(dot(A, B) == 2.0 * m)), "matmul gave a wrong result"
        rates[m] = 2.0 * m**3 / timeit(lambda A=A, B=B: dot(A, B), repeat=3)
    return {"per_size": rates, "best": max(rates.values())}


def sweep_counts(n_pairs: int, d: int, n: int = N_EXAMPLES) -> tuple[int, int]:
    """``(bytes, flops)`` the sweep of ``n_pairs`` pairs in dimension ``d`` must move and do
    (the module docstring derives both)."""
    nbytes = 8 * (2 * n_pairs * d + n * d + n + n_pairs)
    flops = n_pairs * (8 * n * d + 14 * d)
    return nbytes, flops


def roofline_time(nbytes: float, flops: float, bw: float, peak: float) -> tuple[float, str]:
    """``(max(bytes / bw, flops / peak), which bound)``: the least time on this machine."""
    t_mem, t_flop = nbytes / bw, flops / peak
    return (t_mem, "memory") if t_mem >= t_flop else (t_flop, "compute")


def _xla_note(r: dict) -> str:
    """How much more than the minimum the compiled sweep moves and does (XLA's count)."""
    if not r.get("xla_bytes_accessed") or not r.get("xla_flops"):
        return ""
    return (
        f"; XLA's cost analysis of the compiled sweep: {r['xla_bytes_accessed'] / r['bytes']:.1f}× "
        f"the bytes and {r['xla_flops'] / r['flops']:.2f}× the flops counted"
    )


def run(quick: bool) -> list[dict]:
    n_pairs = 1024 if quick else 8192
    dims = (16, 256, 1024, 4096) if quick else (16, 64, 256, 1024, 2048, 4096)
    bw_all = bandwidth()
    mm = matmul_peak()
    bw, peak = bw_all["best"], mm["best"]
    print(
        f"bandwidth {bw / 1e9:.2f} GB/s (sum {bw_all['sum'] / 1e9:.2f}, in-place scale "
        f"{bw_all['scale_in_place'] / 1e9:.2f}); float64 matmul peak {peak / 1e9:.2f} GFLOP/s",
        file=sys.stderr,
    )
    rows = []
    rng = np.random.default_rng(0)
    for n, d in [(n, d) for n in EXAMPLES for d in dims if n == N_EXAMPLES or d >= BIG_D]:
        X, y = data.synthetic(jax.random.PRNGKey(0), n=n, d=d)
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
        # XLA's own count of what the compiled sweep moves and does (its cost analysis)
        cost = f.lower(t1, t2).compile().cost_analysis() or {}
        t_jax = timeit(lambda: f(t1, t2))
        t_np = timeit(lambda: numpy_ratios(W1, W2, Xn, yn, EPS), repeat=3)
        nbytes, flops = sweep_counts(n_pairs, d, n)
        t_roof, bound = roofline_time(nbytes, flops, bw, peak)
        row = {
            "d": d,
            "pairs": n_pairs,
            "examples": n,
            "bytes": nbytes,
            "flops": flops,
            "advlip_s": t_jax,
            "numpy_s": t_np,
            "speedup_vs_numpy": t_np / t_jax,
            "roofline_s": t_roof,
            "roofline_bound": bound,
            "roofline_fraction": t_roof / t_jax,
            "achieved_GBps": nbytes / t_jax / 1e9,
            "achieved_GFLOPps": flops / t_jax / 1e9,
            "xla_bytes_accessed": cost.get("bytes accessed"),
            "xla_flops": cost.get("flops"),
        }
        if d <= 64 and n == N_EXAMPLES:
            sym = sympy_ratio_fn(d, Xn, yn, EPS)
            r_sym = sym(W1[:64], W2[:64])
            assert np.all(np.abs(r_sym - r_np[:64]) <= err[:64]), "SymPy and NumPy disagree"
            t_sym = timeit(lambda: sym(W1[:64], W2[:64]), repeat=3, min_time=0.0) * n_pairs / 64
            row["sympy_numpy_s"] = t_sym
            row["speedup_vs_sympy"] = t_sym / t_jax
        rows.append(row)
        print(
            f"n={n:4d} d={d:5d}: advlip {t_jax * 1e3:8.3f} ms  numpy {t_np * 1e3:8.3f} ms  "
            f"roofline {t_roof * 1e3:7.3f} ms ({bound}; {t_roof / t_jax:.0%})",
            file=sys.stderr,
        )
    machine = {
        "bandwidth_GBps": bw / 1e9,
        "bandwidth_sum_GBps": bw_all["sum"] / 1e9,
        "bandwidth_scale_GBps": bw_all["scale_in_place"] / 1e9,
        "matmul_peak_GFLOPps": peak / 1e9,
        "matmul_GFLOPps_per_size": {str(m): r / 1e9 for m, r in mm["per_size"].items()},
    }
    limits = (
        f"bandwidth {bw / 1e9:.1f} GB/s, float64 matmul peak {peak / 1e9:.1f} GFLOP/s, "
        "both measured in this run"
    )
    out = []
    for r in rows:
        if r["d"] < BIG_D:
            continue
        frac = r["roofline_fraction"]
        out.append(
            entry(
                f"pair sweep: roofline time / measured time, n = {r['examples']}, d = {r['d']}",
                ratio=frac,
                target=ROOFLINE_TARGET,
                met=frac >= ROOFLINE_TARGET,
                goal="≥",
                notes=f"N = {n_pairs} pairs, n = {r['examples']} examples; "
                f"{r['roofline_bound']}-bound roofline {r['roofline_s'] * 1e3:.3g} ms, measured "
                f"{r['advlip_s'] * 1e3:.3g} ms ({r['achieved_GBps']:.1f} GB/s, "
                f"{r['achieved_GFLOPps']:.1f} GFLOP/s); {limits}{_xla_note(r)}",
                **r,
                **machine,
            )
        )
    small = ", ".join(
        f"{r['roofline_fraction']:.2f} at d = {r['d']}" for r in rows if r["d"] < BIG_D
    )
    for n in EXAMPLES:
        big_n = [r for r in rows if r["d"] >= BIG_D and r["examples"] == n]
        w = min(big_n, key=lambda r: r["roofline_fraction"])
        below = (
            f"; below d = {BIG_D} (no target: per-call overhead exceeds the roofline time): {small}"
            if n == N_EXAMPLES
            else ""
        )
        out.append(
            entry(
                f"pair sweep: roofline time / measured time (n = {n}, d ≥ {BIG_D}, worst)",
                ratio=w["roofline_fraction"],
                target=ROOFLINE_TARGET,
                met=w["roofline_fraction"] >= ROOFLINE_TARGET,
                goal="≥",
                sweep=[r for r in rows if r["examples"] == n],
                notes=f"{EXAMPLES_WHY[n]}; worst at d = {w['d']} ({w['roofline_bound']}-bound); "
                f"roofline = max(bytes / bandwidth, flops / peak); {limits}{_xla_note(w)}{below}",
                **machine,
            )
        )
    big = [r for r in rows if r["d"] >= BIG_D]
    ws = min(big, key=lambda r: r["speedup_vs_numpy"])
    out.append(
        entry(
            f"pair sweep: NumPy time / advlip time (d ≥ {BIG_D}, worst)",
            ratio=ws["speedup_vs_numpy"],
            target=1.0,
            met=ws["speedup_vs_numpy"] >= 1.0,
            goal="≥",
            notes=f"the same formula vectorised over pairs in NumPy; worst at n = {ws['examples']}, "
            f"d = {ws['d']}; "
            "target: the compiled sweep is not slower",
        )
    )
    sym_rows = [r for r in rows if "speedup_vs_sympy" in r]
    if sym_rows:
        ws = min(sym_rows, key=lambda r: r["speedup_vs_sympy"])
        out.append(
            entry(
                "pair sweep: SymPy-lambdified NumPy time / advlip time (d ≤ 64)",
                ratio=ws["speedup_vs_sympy"],
                target=1.0,
                met=ws["speedup_vs_sympy"] >= 1.0,
                goal="≥",
                notes=f"advlip.symbolic's gradient lambdified to NumPy, d = {ws['d']}; "
                "target: the compiled sweep is not slower",
            )
        )
    return out


def main(argv=None) -> int:
    return common.main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
