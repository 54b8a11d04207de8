"""The curvature engine at the sizes users run: Hessian-vector products of an adversarial
loss against a batch gradient, total-HVP power iteration against PyTorch, and its peak
memory against an O(P + n·d) model.

Problem: a tanh MLP 64-W-1 (``advlip.models.init_mlp``, ``MLPLoss()``: softplus margin
loss) on the first 128 examples of ``advlip.data.digits((3, 8))``, an L2 attack with
ε = 0.05, float64, 2 CPU threads. Sizes P = 66 W + 1: W = 160, 1600, 16000 give
P ≈ 10k, 100k, 1M (the default, with or without ``--quick``; ``--sizes 16``, P = 1,057,
is the test suite's smoke run). The attack is solved once per size
(``advlip.adversarial.linearize``); then, as ratios to the jitted JAX batch gradient of
the mean loss at X + δ measured in the same run (1×):

* plain JAX ``jax.jvp(jax.grad(...))`` HVP of the mean loss at the fixed δ;
* advlip's naive HVP, ``pt.matvec(hessian="naive")``;
* advlip's total HVP, ``pt.matvec(solver="dense")`` (tangent operator factorised once
  per point) and ``pt.matvec(solver="cg")`` (matrix-free CG with x-space HVPs);
* total-HVP power iteration (``advlip.spectral.power_iteration``'s loop over
  ``pt.matvec(solver="cg")``, ``--steps`` steps from one start vector) against the same
  algorithm in eager PyTorch ("torch (eager)": PyHessian-style double backward) and in
  ``torch.func`` (jvp over grad): the same CG on the tangent operator
  ``P(μI − H_xx)P + (I − P)`` with advlip's P and μ, the same stopping rule (relative
  residual γ_{2d+4}, at most ``pt.cg_maxiter`` iterations, stop at non-positive
  curvature), the same steps; reported as torch time / advlip time.

**Memory.** A third fresh process per size builds the point and runs the same power
iteration with glibc's mmap threshold fixed at 64 KiB (freed arrays go back to the OS, so
the RSS follows the live memory). Its peak = the bytes of every live JAX array before the
iteration (θ, X, δ, the KKT arrays, the attack's results) + the rise of the RSS during
the iteration (peak reset through /proc/self/clear_refs); the runtime (interpreter,
libraries, compiled programs) is the process's baseline and is not counted. The model,
``model_bytes``: 8 bytes × (8 P + 13 n·d), the P-vectors and n×d arrays the iteration
holds (``MODEL_P_VECTORS``, ``MODEL_ND_ARRAYS``); the MLP's activations (n×W arrays,
n·W ≈ 1.9 P here) are outside that O(P + n·d) model, and XLA's own count of a product's
temporaries (``memory_analysis``) says how many there are.

Each size runs in fresh subprocesses (JAX, memory, PyTorch), so the peak RSS of each is
its own. Every product is checked before it is timed, against a tolerance from float64
rounding (see ``_Err``). Targets, reported, never asserted (issue 10): naive HVP ≤ 2
gradients; total HVP (factorised tangent) ≤ 4 gradients; power iteration ≥ 2× faster
than eager PyTorch and faster than torch.func; those speed-ups not shrinking as P grows
(slope of log ratio against log P ≥ 0); (issue 13) the power iteration's peak memory
≤ the model, and its growth in P never super-linear (exponent ≤ 1).

PyTorch is a benchmark-only extra (``pip install -e ".[bench]"``: ``torch==2.13.0``, CPU);
without it the PyTorch rows say "not run: PyTorch missing".

    python benchmarks/bench_hvp_torch.py [--quick] [--sizes W|P ...] [--steps N]
        [--threads T] [--json PATH]

``--sizes``: widths W (``160 1600 16000``, the default) or parameter counts rounded to a
width (``10k``, ``1M``, ``P10561``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# A child process (one size, one engine) runs on the first ``--threads`` cores: pinned here,
# before JAX and PyTorch size their thread pools from the cores they may use.
if int(os.environ.get("_BENCH_HVP_CPUS", "0")) > 0 and hasattr(os, "sched_setaffinity"):
    _cpus = sorted(os.sched_getaffinity(0))[: int(os.environ["_BENCH_HVP_CPUS"])]
    os.sched_setaffinity(0, _cpus)

import common  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from common import entry, timeit  # noqa: E402

import advlip  # noqa: E402,F401
from advlip import tolerance  # noqa: E402

D = 64  # digits: 8×8 pixels
N_EXAMPLES = 128
EPS = 0.05
THREADS = 2
WIDTHS = (160, 1600, 16000)  # P = 10,561 / 105,601 / 1,056,001: --quick and the full run
SMOKE_WIDTH = 16  # P = 1,057: ``--sizes 16``, the test suite's smoke run (seconds)
FULL_STEPS, QUICK_STEPS = 10, 3
# targets of issue 10 (ratios in the same run)
NAIVE_TARGET = 2.0  # naive HVP ≤ 2 batch gradients
TOTAL_TARGET = 4.0  # total HVP, factorised tangent, ≤ 4 batch gradients
EAGER_TARGET = 2.0  # power iteration ≥ 2× faster than eager PyTorch
FUNC_TARGET = 1.0  # ... and faster than torch.func
# memory (issue 13): the power iteration's peak against the O(P + n·d) model below, and its
# growth in P never super-linear
MEMORY_TARGET = 1.0  # measured / model
MEMORY_EXPONENT_TARGET = 1.0
# The model of what the power iteration on total HVPs (pt.matvec(solver="cg")) holds at its
# peak, counted from advlip.adversarial (_batch_products, _solve_batch) and the loop below:
# (what, how many arrays of that length). Activations (n·W for this MLP) are not in it:
# the model is O(P + n·d).
MODEL_P_VECTORS = (
    ("θ, the point's parameters", 1),
    ("the attack's Danskin gradient", 1),
    ("the iterate v", 1),
    ("v unravelled to the parameter tree", 1),
    ("the θ-pass's primal gradient", 1),
    ("its tangent, the summed product", 1),
    ("the averaged, raveled product w", 1),
    ("the next iterate w/‖w‖", 1),
)
MODEL_ND_ARRAYS = (
    ("X", 1),
    ("δ", 1),
    ("Z = X + δ", 1),
    ("the KKT mask and normal", 2),
    ("the attack's x-gradients", 1),
    ("R = H_xθ v", 1),
    ("U, the tangent solves", 1),
    ("CG's x, r, p, Ap and Pp", 5),
)
# a transcendental (tanh, sigmoid, log/exp) is computed to a few ulps in libm, XLA and
# ATen alike; counted as this many roundings in the error model below
FN_OPS = 8


def _params_of(width: int) -> int:
    return width * (D + 2) + 1


def _parse_size(tok: str) -> int:
    """A width W, or a parameter count (``10k``, ``1M``, ``P10561``) rounded to a width."""
    t = tok.strip()
    mult = {"k": 10**3, "K": 10**3, "m": 10**6, "M": 10**6}
    if t[:1] in "pP" or t[-1:] in mult:
        body = t[1:] if t[:1] in "pP" else t
        scale = mult.get(body[-1:], 1)
        body = body[:-1] if body[-1:] in mult else body
        P = float(body) * scale
        return max(1, round((P - 1) / (D + 2)))
    w = int(t)
    if w < 1:
        raise argparse.ArgumentTypeError(f"size {tok!r} is not allowed; allowed: a width >= 1")
    return w


def _progress(msg: str) -> None:
    print(f"[bench_hvp_torch {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _proc_status_mb() -> dict[str, float] | None:
    """``{"rss", "hwm"}`` in MiB from /proc/self/status (Linux), else None."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    out = {}
    for line in lines:
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out["rss" if key == "VmRSS" else "hwm"] = int(val.split()[0]) / 1024.0  # kB
    return out if len(out) == 2 else None


def _reset_peak() -> bool:
    """Reset the peak RSS (VmHWM) to the current RSS (Linux ≥ 4.0: clear_refs "5")."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    st = _proc_status_mb()
    return st is not None and st["hwm"] <= st["rss"] + 1.0  # the reset took (1 MiB slack)


def model_bytes(P: int, n: int, d: int, itemsize: int = 8) -> int:
    """Bytes of the O(P + n·d) model of the power iteration (MODEL_P_VECTORS, MODEL_ND_ARRAYS)."""
    k_p = sum(k for _, k in MODEL_P_VECTORS)
    k_nd = sum(k for _, k in MODEL_ND_ARRAYS)
    return itemsize * (k_p * P + k_nd * n * d)


# --------------------------------------------------------------------------- error model


class _Err:
    """A float64 value with the magnitude of its terms (Higham, *Accuracy and Stability
    of Numerical Algorithms*, §3.1): computed in float64 in *any* evaluation order, it
    errs by at most ``γ_k · mag`` (to first order), ``k`` the depth of roundings.

    Sums add magnitudes (k + 1), products ``|a|·mag_b + mag_a·|b|`` (k + 1), an inner
    product of m terms adds m to k, a transcendental φ gives ``|φ'|·mag + |φ|`` (k + FN_OPS).
    Inputs that both implementations share exactly (θ, X + δ, v, P, μ) have k = 0. Two
    implementations of the same formula (advlip's jaxpr, eager PyTorch, torch.func, the
    NumPy values here) therefore agree within ``2 γ_k mag``: the tolerance is derived
    from float64 rounding, not picked.
    """

    __slots__ = ("val", "mag", "k")

    def __init__(self, val, mag=None, k: int = 0):
        self.val = np.asarray(val, dtype=np.float64)
        self.mag = np.abs(self.val) if mag is None else np.asarray(mag, dtype=np.float64)
        self.k = int(k)

    @staticmethod
    def of(x) -> _Err:
        return x if isinstance(x, _Err) else _Err(x)

    def __add__(self, o):
        o = _Err.of(o)
        return _Err(self.val + o.val, self.mag + o.mag, max(self.k, o.k) + 1)

    __radd__ = __add__

    def __sub__(self, o):
        o = _Err.of(o)
        return _Err(self.val - o.val, self.mag + o.mag, max(self.k, o.k) + 1)

    def __rsub__(self, o):
        return _Err.of(o) - self

    def __neg__(self):
        return _Err(-self.val, self.mag, self.k)

    def __mul__(self, o):
        o = _Err.of(o)
        mag = self.mag * np.abs(o.val) + np.abs(self.val) * o.mag
        return _Err(self.val * o.val, mag, max(self.k, o.k) + 1)

    __rmul__ = __mul__

    def __matmul__(self, o):
        o = _Err.of(o)
        m = self.val.shape[-1]
        mag = self.mag @ np.abs(o.val) + np.abs(self.val) @ o.mag
        return _Err(self.val @ o.val, mag, max(self.k, o.k) + m)

    @property
    def T(self):
        return _Err(self.val.T, self.mag.T, self.k)

    def col(self):  # (n,) -> (n, 1)
        return _Err(self.val[:, None], self.mag[:, None], self.k)

    def fn(self, f, df):
        val = f(self.val)
        return _Err(val, np.abs(df(self.val)) * self.mag + np.abs(val), self.k + FN_OPS)

    def mean0(self):
        n = self.val.shape[0]
        return _Err(self.val.mean(0), self.mag.mean(0), self.k + n + 1)

    def sum1(self):
        m = self.val.shape[-1]
        return _Err(self.val.sum(-1), self.mag.sum(-1), self.k + m)

    def bound(self) -> np.ndarray:
        """Twice the rounding bound: two implementations of this value agree within it."""
        return 2.0 * tolerance.gamma(self.k) * self.mag


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _dsigmoid(x):
    s = _sigmoid(x)
    return s * (1.0 - s)


def _split(theta: np.ndarray, width: int):
    """``ravel_pytree`` order of ``[{"W", "b"}, {"W", "b"}]``: W1 (W, d), b1, W2 (1, W), b2."""
    i = width * D
    return (
        theta[:i].reshape(width, D),
        theta[i : i + width],
        theta[i + width : i + 2 * width],
        theta[i + 2 * width],
    )


def _model_pass(theta, Z, y, tangent, w):
    """Per-example gradient and its directional derivative, written out for the tanh
    MLP with the softplus margin loss ``ℓ = softplus(−y f)``, all in :class:`_Err`.

    ``tangent`` (flat, P) and ``w`` (n, d) are the θ- and x-tangents. Returns
    ``(grad_θ (mean), D grad_θ (mean), D grad_x (per example))`` as flat / (n, d) ``_Err``.
    """
    width = (theta.size - 1) // (D + 2)
    W1, b1, w2, b2 = (_Err(a) for a in _split(theta, width))
    V1, c1, v2, c2 = (_Err.of(a) for a in _split_err(tangent, width))
    Z, y, w = _Err(Z), _Err(y), _Err.of(w)
    a = Z @ W1.T + b1
    h = a.fn(np.tanh, lambda x: 1.0 - np.tanh(x) ** 2)
    s1 = 1.0 - h * h  # tanh' as autodiff forms it (JAX and ATen: 1 − tanh²)
    f = h @ w2 + b2
    m = y * f
    g_f = -(y * (-m).fn(_sigmoid, _dsigmoid))  # dℓ/df = −y σ(−m)
    l2 = m.fn(_sigmoid, _dsigmoid) * (-m).fn(_sigmoid, _dsigmoid)  # d²ℓ/df² = σ(m)σ(−m)
    ga = g_f.col() * (w2 * s1)  # dℓ/da
    da = Z @ V1.T + w @ W1.T + c1
    dh = s1 * da
    df = dh @ w2 + h @ v2 + c2
    dg_f = l2 * df
    ds1 = -2.0 * (h * dh)
    dga = dg_f.col() * (w2 * s1) + g_f.col() * (v2 * s1) + g_f.col() * (w2 * ds1)
    n = Z.val.shape[0]
    inv_n = 1.0 / n
    grad = _flat((ga.T @ Z) * inv_n, ga.mean0(), (g_f.col() * h).mean0(), g_f.mean0())
    dgrad = _flat(
        (dga.T @ Z + ga.T @ w) * inv_n,
        dga.mean0(),
        (dg_f.col() * h + g_f.col() * dh).mean0(),
        dg_f.mean0(),
    )
    dx = ga @ V1 + dga @ W1  # D ∇_x ℓ_i
    return grad, dgrad, dx


def _split_err(t, width):
    if isinstance(t, _Err):
        parts_v, parts_m = _split(t.val, width), _split(t.mag, width)
        return tuple(_Err(v, m, t.k) for v, m in zip(parts_v, parts_m, strict=True))
    return _split(np.asarray(t, dtype=np.float64), width)


def _flat(*parts):
    val = np.concatenate([np.ravel(p.val) for p in parts])
    mag = np.concatenate([np.ravel(p.mag) for p in parts])
    return _Err(val, mag, max(p.k for p in parts))


def _project(mask, normal, w: _Err) -> _Err:
    """The attack's tangent projector ``P w = m⊙w − ν(ν·(m⊙w))``, row-wise."""
    mw = _Err(mask) * w
    return mw - _Err(normal) * (_Err(normal) * mw).sum1().col()


def _tolerances(theta, Z, y, v, u, kkt, lam_lo, lam_hi, cg_maxiter):
    """Componentwise tolerances for comparing two implementations (see :class:`_Err`).

    Total HVP = mean_i [H_θθ v + H_θx u_i], u_i = A_i⁺ P H_xθ v: both passes' rounding
    (``2 γ_k mag``), plus the solve. Each solve stops with ‖Δu_i‖ ≤ κ_i ρ ‖b_i‖/λ_min,i
    (the model advlip's own error bound uses), ρ = γ_{2d+4} + γ_{c(2d+4)} for CG with at
    most c iterations and γ_{3d²} for the dense route (LU of the SPD d×d operator,
    Higham §10.1); the right-hand side b_i = P H_xθ v differs by ``2γ_k mag_b``. That
    ‖Δu_i‖ enters through |H_θx| (the same formula on magnitudes, zero value).
    """
    n, d = Z.shape
    mask, normal = np.asarray(kkt.mask), np.asarray(kkt.normal)
    grad, hv_naive, hxt_v = _model_pass(theta, Z, y, v, np.zeros((n, d)))
    b = _project(mask, normal, hxt_v)
    u_e = _project(mask, normal, _Err(u))
    _, hv_corr, _ = _model_pass(theta, Z, y, np.zeros_like(theta), u_e)
    total = hv_naive + hv_corr
    lam_lo = np.asarray(lam_lo, dtype=np.float64)
    kappa = np.asarray(lam_hi, dtype=np.float64) / lam_lo
    rho_cg = tolerance.gamma(2 * d + 4) + tolerance.gamma(cg_maxiter * (2 * d + 4))
    rho_dense = tolerance.gamma(3 * d * d)
    bnorm = np.linalg.norm(b.val, axis=1)
    db = np.linalg.norm(b.bound(), axis=1)

    def solve_term(rho_a, rho_b):
        du = (db + kappa * (rho_a + rho_b) * bnorm) / lam_lo
        du = np.where(np.asarray(kkt.tangent_dim) > 0, du, 0.0)
        w = _Err(np.zeros((n, d)), du[:, None] * np.ones((1, d)))
        return _model_pass(theta, Z, y, np.zeros_like(theta), w)[1].mag

    return {
        "grad": grad,
        "naive": hv_naive,
        "total_cg_cg": total.bound() + solve_term(rho_cg, rho_cg),
        "total_cg_dense": total.bound() + solve_term(rho_cg, rho_dense),
        "k": total.k,
    }


def _check(name: str, got, want, tol) -> dict:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    diff = np.abs(got - want)
    worst = float(np.max(diff / tol))
    if not worst <= 1.0:
        raise AssertionError(
            f"{name}: |difference| exceeds the float64 rounding bound (worst ratio {worst:.3g}, "
            f"max diff {diff.max():.3g}, tolerance there {tol[np.argmax(diff / tol)]:.3g})"
        )
    return {
        "max_abs_diff": float(diff.max()),
        "max_diff_over_tol": worst,
        "rel_tol": float(np.max(tol) / max(np.max(np.abs(want)), 1e-300)),
    }


# --------------------------------------------------------------------------- JAX child


def _jax_child(width: int, steps: int, work: Path, quick: bool) -> dict:
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from advlip import adversarial, data, models, spectral

    t_start = time.perf_counter()
    X, y = data.digits((3, 8))
    X, y = X[:N_EXAMPLES], y[:N_EXAMPLES]
    n, d = X.shape
    assert d == D, d
    params = models.init_mlp(jax.random.PRNGKey(0), d, (width,))
    loss = models.MLPLoss()
    theta, unravel = ravel_pytree(params)
    P = int(theta.size)
    rss_base = _peak_rss_mb()
    tag = f"P={P:,} (W={width})"
    _progress(f"{tag}: attack (linearize)")
    t0 = time.perf_counter()
    pt = adversarial.linearize(loss, params, X, y, eps=EPS, p=2.0)
    pt.require_determined()
    delta = jax.block_until_ready(pt.delta)
    t_attack = time.perf_counter() - t0
    _progress(f"{tag}: attack solved in {t_attack:.1f} s")
    Z = X + delta
    kkt = pt.kkt

    def mean_loss(th, Z):
        return jnp.mean(jax.vmap(loss, in_axes=(None, 0, 0))(unravel(th), Z, y))

    def sum_loss(th, Z):
        return jnp.sum(jax.vmap(loss, in_axes=(None, 0, 0))(unravel(th), Z, y))

    grad = jax.jit(jax.grad(mean_loss))

    @jax.jit
    def plain_hvp(th, Z, v):
        return jax.jvp(lambda t: jax.grad(mean_loss)(t, Z), (th,), (v,))[1]

    @jax.jit
    def cg_replica(th, Z, v):
        """u_i and the iterations of advlip.spectral.cg on each example's tangent system
        M_i = P(μI − H_xx)P + (I − P), right-hand side P H_xθ v: the solve
        pt.matvec(solver="cg") runs (default rtol γ_{2d+4}, at most pt.cg_maxiter)."""
        r = jax.jvp(lambda t: jax.grad(sum_loss, argnums=1)(t, Z), (th,), (v,))[1]

        def one(z, yi, mask, normal, mu, ri):
            gx = lambda zz: jax.grad(loss, argnums=1)(unravel(th), zz, yi)  # noqa: E731
            proj = lambda w: mask * w - normal * (normal @ (mask * w))  # noqa: E731

            def op(w):
                pw = proj(w)
                return mu * pw - proj(jax.jvp(gx, (z,), (pw,))[1]) + (w - pw)

            u, info = spectral.cg(op, proj(ri), maxiter=pt.cg_maxiter)
            return proj(u), info.iterations

        return jax.vmap(one)(Z, y, kkt.mask, kkt.normal, kkt.mu, r)

    naive = pt.matvec(hessian="naive")
    cg = pt.matvec(solver="cg")
    rng = np.random.default_rng(1)
    v = jnp.asarray(rng.standard_normal(P))
    v0 = np.random.default_rng(
        np.asarray(jax.random.key_data(jax.random.PRNGKey(0))).ravel().tolist()
    ).standard_normal(P)

    # ---- correctness, before any timing
    _progress(f"{tag}: correctness checks")
    lam_lo = np.asarray(pt.tangent_min) - np.asarray(pt.tangent_bound)
    u, iters = (np.asarray(a) for a in cg_replica(theta, Z, v))
    tol = _tolerances(
        np.asarray(theta),
        np.asarray(Z),
        np.asarray(y),
        np.asarray(v),
        u,
        kkt,
        lam_lo,
        np.asarray(pt.tangent_max),
        pt.cg_maxiter,
    )
    g = np.asarray(grad(theta, Z))
    hv_plain = np.asarray(plain_hvp(theta, Z, v))
    hv_naive = np.asarray(naive(v))
    hv_cg = np.asarray(cg(v))
    t0 = time.perf_counter()
    dense = pt.matvec(solver="dense")
    hv_dense = np.asarray(dense(v))
    t_dense_first = time.perf_counter() - t0  # factorisation + compilation + one product
    checks = {
        "batch gradient vs the written-out model": _check(
            "grad", g, tol["grad"].val, tol["grad"].bound()
        ),
        "batch gradient vs pt.grad()": _check(
            "grad vs Danskin", g, ravel_pytree(pt.grad())[0], tol["grad"].bound()
        ),
        "plain jvp(grad) HVP vs the written-out model": _check(
            "plain HVP", hv_plain, tol["naive"].val, tol["naive"].bound()
        ),
        "naive matvec vs plain jvp(grad)": _check(
            "naive HVP", hv_naive, hv_plain, tol["naive"].bound()
        ),
        "total matvec: dense vs CG": _check(
            "total HVP dense vs CG", hv_dense, hv_cg, tol["total_cg_dense"]
        ),
    }

    # ---- timings (medians after a warm-up call, block_until_ready)
    rep = 3 if quick else 5
    _progress(f"{tag}: timing gradient and HVPs")
    times = {
        "gradient": timeit(lambda: grad(theta, Z), repeat=rep),
        "plain_hvp": timeit(lambda: plain_hvp(theta, Z, v), repeat=rep),
        "naive_hvp": timeit(lambda: naive(v), repeat=rep),
        "total_hvp_dense": timeit(lambda: dense(v), repeat=rep),
        "total_hvp_cg": timeit(lambda: cg(v), repeat=rep),
    }
    _progress(
        f"{tag}: gradient {times['gradient'] * 1e3:.2f} ms, naive ×"
        f"{times['naive_hvp'] / times['gradient']:.2f}, dense ×"
        f"{times['total_hvp_dense'] / times['gradient']:.2f}, CG ×"
        f"{times['total_hvp_cg'] / times['gradient']:.2f}"
    )

    def power(v0):
        """advlip.spectral.power_iteration step for step, driven from Python over the
        compiled pt.matvec (jitting the loop here would bake the point's arrays into the
        program as constants); the same loop as the PyTorch versions."""
        v = v0 / jnp.linalg.norm(v0)
        for _ in range(steps):
            w = cg(v)
            nw = jnp.linalg.norm(w)
            v = jnp.where(nw > 0, w / jnp.where(nw > 0, nw, 1.0), v)
        return v @ cg(v)

    v0j = jnp.asarray(v0)
    _progress(f"{tag}: advlip power iteration ({steps} steps)")
    lam = float(power(v0j))
    # the call above compiled and warmed it: time further calls only
    times["power"] = timeit(lambda: power(v0j), repeat=3 if quick else 2, warmup=0, min_time=0)
    _progress(f"{tag}: advlip power iteration {times['power']:.3f} s, λ = {lam:.10g}")
    np.savez(
        work / "problem.npz",
        theta=np.asarray(theta),
        Z=np.asarray(Z),
        y=np.asarray(y),
        mask=np.asarray(kkt.mask),
        normal=np.asarray(kkt.normal),
        mu=np.asarray(kkt.mu),
        v=np.asarray(v),
        v0=v0,
        hv_cg=hv_cg,
        hv_dense=hv_dense,
        tol_cg=tol["total_cg_cg"],
        tol_dense=tol["total_cg_dense"],
        iters=iters,
    )
    return {
        "width": width,
        "params": P,
        "examples": n,
        "d": d,
        "steps": steps,
        "attack_s": t_attack,
        "dense_first_call_s": t_dense_first,
        "times_s": times,
        "eigenvalue_advlip": lam,
        "cg_maxiter": pt.cg_maxiter,
        "cg_iterations_max": int(iters.max()),
        "cg_iterations_mean": float(iters.mean()),
        "cg_xhvps_per_product": int(iters.sum()),
        "cg_xhvps_batched_per_product": int(n * iters.max()),
        "cg_count_source": (
            "advlip.spectral.cg run per example on the tangent operator (default rtol "
            "γ_{2d+4}, maxiter pt.cg_maxiter), the CG pt.matvec(solver='cg') runs; "
            "cg_xhvps_per_product = Σ_i iterations_i, a vmapped loop runs "
            "max_i iterations for all n examples (cg_xhvps_batched_per_product)"
        ),
        "tolerance_k": tol["k"],
        "checks": checks,
        "peak_rss_mb": _peak_rss_mb(),
        "base_rss_mb": rss_base,
        "child_wall_s": time.perf_counter() - t_start,
    }


# --------------------------------------------------------------------------- memory child


def _mem_child(width: int, steps: int) -> dict:
    """Peak memory of the power iteration on total HVPs, in a fresh process.

    glibc's mmap threshold is fixed at 64 KiB by the parent (MALLOC_MMAP_THRESHOLD_), so an
    array freed is returned to the OS and the RSS follows the live memory. Measured: the
    bytes of every live JAX array once the point is built and the product compiled (the
    engine's state: θ, X, δ, the KKT arrays, the attack's results), plus the rise of the
    RSS during ``steps`` power-iteration steps above the RSS before them (peak reset by
    /proc/self/clear_refs). The process's baseline (interpreter, libraries, JAX runtime,
    compiled programs) is left out; its size and the attack's own peak are reported.
    """
    import gc

    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from advlip import adversarial, data, models

    X, y = data.digits((3, 8))
    X, y = X[:N_EXAMPLES], y[:N_EXAMPLES]
    n, d = X.shape
    loss = models.MLPLoss()
    jax.block_until_ready(jnp.ones(1) + 1.0)  # the runtime's thread pools and allocator
    gc.collect()
    if not _reset_peak():
        return {"measured": False, "why": "no /proc/self/clear_refs (Linux only)"}
    base = _proc_status_mb()["rss"]
    params = models.init_mlp(jax.random.PRNGKey(0), d, (width,))
    pt = adversarial.linearize(loss, params, X, y, eps=EPS, p=2.0)
    pt.require_determined()
    jax.block_until_ready(pt.delta)
    attack_peak = _proc_status_mb()["hwm"] - base
    del params
    P = int(ravel_pytree(pt.params)[0].size)
    cg = pt.matvec(solver="cg")
    v0 = jnp.asarray(
        np.random.default_rng(
            np.asarray(jax.random.key_data(jax.random.PRNGKey(0))).ravel().tolist()
        ).standard_normal(P)
    )
    jax.block_until_ready(cg(v0))  # compiles the product
    # XLA's own buffer assignment for one product (arguments, output, temporaries)
    dyn, static = adversarial.partition(pt.loss_fn)
    compiled = adversarial.apply_matvec_jit.lower(
        static, dyn, pt.spec, pt.params, pt.X, pt.y, pt.delta, pt.kkt, None, v0,
        hessian="total", cg_maxiter=pt.cg_maxiter,
    ).compile()  # fmt: skip
    ma = compiled.memory_analysis()
    v = v0 / jnp.linalg.norm(v0)
    del v0, compiled
    gc.collect()
    live = sum(a.nbytes for a in jax.live_arrays()) / 2**20
    _reset_peak()
    before = _proc_status_mb()["rss"]
    for _ in range(steps):  # the power iteration of the JAX child, step for step
        w = cg(v)
        nw = jnp.linalg.norm(w)
        v = jnp.where(nw > 0, w / jnp.where(nw > 0, nw, 1.0), v)
    lam = float(v @ cg(v))
    after = _proc_status_mb()
    rise = after["hwm"] - before
    return {
        "measured": True,
        "width": width,
        "params": P,
        "examples": n,
        "d": d,
        "steps": steps,
        "eigenvalue": lam,
        "baseline_rss_mb": base,
        "runtime_rss_mb": before - live,
        "live_arrays_mb": live,
        "power_rise_mb": rise,
        "power_peak_mb": live + rise,
        "attack_peak_above_baseline_mb": attack_peak,
        "xla_temp_mb": ma.temp_size_in_bytes / 2**20 if ma else None,
        "xla_argument_mb": ma.argument_size_in_bytes / 2**20 if ma else None,
        "xla_output_mb": ma.output_size_in_bytes / 2**20 if ma else None,
    }


# --------------------------------------------------------------------------- PyTorch child


def _torch_child(work: Path, steps: int, threads: int, quick: bool) -> dict:
    import torch

    t_start = time.perf_counter()
    if threads > 0:
        torch.set_num_threads(threads)
    rss_base = _peak_rss_mb()
    dt = torch.float64
    f = np.load(work / "problem.npz")
    T = {k: torch.tensor(f[k], dtype=dt) for k in ("theta", "Z", "y", "mask", "normal", "v", "v0")}
    theta0, Z, Y = T["theta"], T["Z"], T["y"]
    mask, normal = T["mask"], T["normal"]
    mu = torch.tensor(f["mu"], dtype=dt)[:, None]
    n, d = Z.shape
    P = theta0.numel()
    width = (P - 1) // (d + 2)
    sizes = [width * d, width, width, 1]
    cg_maxiter = int(json.loads((work / "jax.json").read_text())["cg_maxiter"])
    rtol = tolerance.gamma(2 * d + 4)  # advlip.spectral.cg's default stopping rule
    tag = f"P={P:,} (W={width})"

    def losses(theta, z):
        W1, b1, W2, b2 = torch.split(theta, sizes)
        h = torch.tanh(z @ W1.view(width, d).T + b1)
        fz = h @ W2 + b2
        m = -Y * fz
        return torch.logaddexp(m, torch.zeros_like(m))  # softplus(−y f), as jax.nn.softplus

    def proj(w):
        mw = mask * w
        return mw - normal * (normal * mw).sum(1, keepdim=True)

    def cg(hxx, rhs):
        """advlip.spectral.cg per example (batched; each row stops on its own)."""
        b = proj(rhs)
        x = torch.zeros_like(b)
        r, p = b.clone(), b.clone()
        rs = (r * r).sum(1)
        thresh = rtol * rs.sqrt()
        iters = torch.zeros(n, dtype=torch.long)
        live = torch.ones(n, dtype=torch.bool)
        for _ in range(cg_maxiter):
            live = live & (rs.sqrt() > thresh)
            if not bool(live.any()):
                break
            Pp = proj(p)
            Ap = mu * Pp - proj(hxx(Pp)) + (p - Pp)
            pAp = (p * Ap).sum(1)
            ok = live & (pAp > 0)
            alpha = torch.where(ok, rs / torch.where(pAp > 0, pAp, 1.0), 0.0)
            x = x + alpha[:, None] * p
            r = r - alpha[:, None] * Ap
            rs_new = (r * r).sum(1)
            beta = rs_new / torch.where(rs > 0, rs, 1.0)
            p = torch.where(live[:, None], r + beta[:, None] * p, p)
            rs = torch.where(live, rs_new, rs)
            iters += live.long()
            live = live & (pAp > 0)  # a direction of non-positive curvature stops CG
        return proj(x), iters

    def eager_hvp(v):
        theta = theta0.clone().requires_grad_(True)
        z = Z.clone().requires_grad_(True)
        L = losses(theta, z).sum()
        gth, gz = torch.autograd.grad(L, (theta, z), create_graph=True)
        htt_v, hxt_v = torch.autograd.grad(gth @ v, (theta, z), retain_graph=True)

        def hxx(w):
            return torch.autograd.grad((gz * w).sum(), z, retain_graph=True)[0]

        u, iters = cg(hxx, hxt_v)
        corr = torch.autograd.grad((gz * u).sum(), theta)[0]
        return ((htt_v + corr) / n).detach(), iters

    from torch.func import grad as fgrad
    from torch.func import jvp as fjvp

    def total_loss(theta, z):
        return losses(theta, z).sum()

    def func_hvp(v):
        htt_v, hxt_v = fjvp(lambda th: fgrad(total_loss, argnums=(0, 1))(th, Z), (theta0,), (v,))[1]
        gz = lambda zz: fgrad(total_loss, argnums=1)(theta0, zz)  # noqa: E731
        u, iters = cg(lambda w: fjvp(gz, (Z,), (w,))[1], hxt_v)
        gth = lambda zz: fgrad(total_loss, argnums=0)(theta0, zz)  # noqa: E731
        corr = fjvp(gth, (Z,), (u,))[1]
        return (htt_v + corr) / n, iters

    def power(hvp):
        """advlip.spectral.power_iteration, step for step."""
        v = T["v0"] / T["v0"].norm()
        for _ in range(steps):
            w = hvp(v)[0]
            nw = w.norm()
            v = w / nw if nw > 0 else v
        w = hvp(v)[0]
        return float(v @ w)

    _progress(f"{tag}: PyTorch correctness checks")
    hv_e, it_e = eager_hvp(T["v"])
    hv_f, it_f = func_hvp(T["v"])
    checks = {
        "eager PyTorch total HVP vs advlip (CG)": _check(
            "eager vs advlip CG", hv_e.numpy(), f["hv_cg"], f["tol_cg"]
        ),
        "torch.func total HVP vs advlip (CG)": _check(
            "torch.func vs advlip CG", hv_f.numpy(), f["hv_cg"], f["tol_cg"]
        ),
        "eager PyTorch total HVP vs advlip (dense)": _check(
            "eager vs advlip dense", hv_e.numpy(), f["hv_dense"], f["tol_dense"]
        ),
    }
    # eager PyTorch compiles nothing: the calls above warmed it up (allocator, functorch)
    rep = 1 if quick else 3
    _progress(f"{tag}: timing PyTorch HVPs")
    times = {
        "eager_hvp": timeit(lambda: eager_hvp(T["v"]), repeat=rep, warmup=0, min_time=0),
        "func_hvp": timeit(lambda: func_hvp(T["v"]), repeat=rep, warmup=0, min_time=0),
    }
    _progress(f"{tag}: eager PyTorch power iteration ({steps} steps)")
    t0 = time.perf_counter()
    lam_e = power(eager_hvp)
    first = time.perf_counter() - t0
    times["eager_power"] = _median_with(first, lambda: power(eager_hvp), 0 if quick else 2)
    _progress(f"{tag}: eager {times['eager_power']:.3f} s; torch.func power iteration")
    t0 = time.perf_counter()
    lam_f = power(func_hvp)
    first = time.perf_counter() - t0
    times["func_power"] = _median_with(first, lambda: power(func_hvp), 0 if quick else 2)
    _progress(f"{tag}: torch.func {times['func_power']:.3f} s")
    return {
        "times_s": times,
        "eigenvalue_eager": lam_e,
        "eigenvalue_func": lam_f,
        "cg_iterations_eager": it_e.numpy().tolist(),
        "cg_iterations_func": it_f.numpy().tolist(),
        "cg_iterations_match_advlip": bool(
            np.array_equal(it_e.numpy(), f["iters"]) and np.array_equal(it_f.numpy(), f["iters"])
        ),
        "checks": checks,
        "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "peak_rss_mb": _peak_rss_mb(),
        "base_rss_mb": rss_base,
        "child_wall_s": time.perf_counter() - t_start,
    }


# --------------------------------------------------------------------------- driver


def _median_with(first: float, fn, more: int) -> float:
    """Median seconds over a first (already timed, warm) call and ``more`` calls."""
    samples = [first]
    for _ in range(more):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return float(np.median(samples))


def _have_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _spawn(kind: str, width: int, steps: int, threads: int, work: Path, quick: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", kind]
    cmd += ["--_width", str(width), "--steps", str(steps), "--threads", str(threads)]
    cmd += ["--_work", str(work)] + (["--quick"] if quick else [])

    env = {**os.environ, "_BENCH_HVP_CPUS": str(threads)}
    if kind == "mem":
        # every allocation of 64 KiB or more is its own mapping, unmapped when freed: the RSS
        # then follows the live memory (glibc otherwise keeps freed arrays for reuse)
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(64 * 1024))
    if kind == "torch":
        # OpenMP's default spin-waiting made 2-thread eager PyTorch ~9x slower than 1 thread
        # on the 2-vCPU development machine (small kernels, threads starving each other);
        # passive waiting removes that handicap of the baseline. A user's setting wins.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    proc = subprocess.run(cmd, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} subprocess for W={width} failed (exit {proc.returncode})")
    return json.loads((work / f"{kind}.json").read_text())


def _command(quick: bool, widths, steps: int, threads: int) -> str:
    return (
        "python benchmarks/bench_hvp_torch.py"
        + (" --quick" if quick else "")
        + f" --sizes {' '.join(map(str, widths))} --steps {steps} --threads {threads}"
    )


def measure(quick: bool, widths=None, steps=None, threads: int = THREADS) -> dict:
    widths = tuple(widths or WIDTHS)
    steps = int(steps or (QUICK_STEPS if quick else FULL_STEPS))
    have_torch = _have_torch()
    sizes = []
    for width in widths:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench_hvp_") as tmp:
            work = Path(tmp)
            res = {"jax": _spawn("jax", width, steps, threads, work, quick)}
            res["mem"] = _spawn("mem", width, steps, threads, work, quick)
            if have_torch:
                res["torch"] = _spawn("torch", width, steps, threads, work, quick)
        res["wall_s"] = time.perf_counter() - t0
        _progress(f"P={res['jax']['params']:,}: done in {res['wall_s']:.1f} s")
        sizes.append(res)
    return {
        "sizes": sizes,
        "steps": steps,
        "threads": threads,
        "torch": have_torch,
        "command": _command(quick, widths, steps, threads),
        "device": common.device(),
        "cpu_count": os.cpu_count(),
    }


def _rows(m: dict) -> list[dict]:
    rows = []
    cmd = m["command"]
    for s in m["sizes"]:
        j, t = s["jax"], s.get("torch")
        tj = j["times_s"]
        P, g = j["params"], tj["gradient"]
        size = f"P = {P:,} (64-{j['width']}-1), n = {j['examples']}"
        mem = {"peak_rss_mb_jax": j["peak_rss_mb"], "base_rss_mb_jax": j["base_rss_mb"]}
        if t:
            mem |= {"peak_rss_mb_torch": t["peak_rss_mb"], "base_rss_mb_torch": t["base_rss_mb"]}
        base = {"params": P, "width": j["width"], "gradient_s": g, "command": cmd, **mem}
        r = tj["naive_hvp"] / g
        rows.append(
            entry(
                f"naive HVP / batch gradient, P = {P:,}",
                ratio=r, target=NAIVE_TARGET, met=r <= NAIVE_TARGET, goal="≤",
                naive_hvp_s=tj["naive_hvp"], notes=size, **base,
            )
        )  # fmt: skip
        r = tj["total_hvp_dense"] / g
        rows.append(
            entry(
                f"total HVP (factorised tangent) / batch gradient, P = {P:,}",
                ratio=r, target=TOTAL_TARGET, met=r <= TOTAL_TARGET, goal="≤",
                total_hvp_dense_s=tj["total_hvp_dense"], dense_first_call_s=j["dense_first_call_s"],
                notes=f"{size}; first call (factorise, compile) "
                f"{j['dense_first_call_s']:.3g} s",
                **base,
            )
        )  # fmt: skip
        r = tj["total_hvp_cg"] / g
        rows.append(
            entry(
                f"total HVP (CG) / batch gradient, P = {P:,}",
                ratio=r, target=None, met=None, total_hvp_cg_s=tj["total_hvp_cg"],
                cg_maxiter=j["cg_maxiter"], cg_iterations_max=j["cg_iterations_max"],
                cg_xhvps_per_product=j["cg_xhvps_per_product"],
                cg_xhvps_batched_per_product=j["cg_xhvps_batched_per_product"],
                cg_count_source=j["cg_count_source"],
                notes=f"{size}; CG ≤ {j['cg_iterations_max']} iterations (cap "
                f"{j['cg_maxiter']}), {j['cg_xhvps_per_product']} x-space HVPs; no target: "
                "its cost is set by the CG iterations (the factorised route has the target)",
                **base,
            )
        )  # fmt: skip
        r = tj["plain_hvp"] / g
        rows.append(
            entry(
                f"plain JAX jvp(grad) HVP / batch gradient, P = {P:,}",
                ratio=r, target=None, met=None, plain_hvp_s=tj["plain_hvp"],
                notes=f"{size}; no target: a reference (JAX's own HVP of the mean loss at fixed δ)",
                **base,
            )
        )  # fmt: skip
        for key, label, target in (
            ("eager_power", "torch (eager)", EAGER_TARGET),
            ("func_power", "torch.func", FUNC_TARGET),
        ):
            name = f"power iteration: {label} time / advlip time, P = {P:,}"
            if t is None:
                rows.append(
                    entry(
                        name, ratio=None, target=target, met=None,
                        goal="≥" if key == "eager_power" else ">",
                        notes="not run: PyTorch missing (pip install -e '.[bench]')", **base,
                    )
                )  # fmt: skip
                continue
            r = t["times_s"][key] / tj["power"]
            lam_t = t["eigenvalue_eager" if key == "eager_power" else "eigenvalue_func"]
            rel = abs(lam_t - j["eigenvalue_advlip"]) / abs(j["eigenvalue_advlip"])
            rows.append(
                entry(
                    name, ratio=r, target=target,
                    met=r >= target if key == "eager_power" else r > target,
                    goal="≥" if key == "eager_power" else ">",
                    advlip_s=tj["power"], torch_s=t["times_s"][key], steps=m["steps"],
                    torch_threads=t["threads"], omp_wait_policy=t["omp_wait_policy"],
                    eigenvalue_advlip=j["eigenvalue_advlip"],
                    eigenvalue_torch=lam_t, eigenvalue_rel_diff=rel,
                    cg_iterations_match_advlip=t["cg_iterations_match_advlip"],
                    notes=f"{size}; {m['steps']} steps; |Δλ|/|λ| = {rel:.1e}",
                    **base,
                )
            )  # fmt: skip
        rows.append(_memory_row(s, cmd))
    rows.extend(_memory_exponent_rows(m["sizes"], cmd))
    if len(m["sizes"]) >= 2 and m["torch"]:
        Ps = [s["jax"]["params"] for s in m["sizes"]]
        for key, label in (("eager_power", "torch (eager)"), ("func_power", "torch.func")):
            ratios = [s["torch"]["times_s"][key] / s["jax"]["times_s"]["power"] for s in m["sizes"]]
            slope = common.fit_exponent(Ps, ratios)
            rows.append(
                entry(
                    f"power-iteration speed-up vs {label}: exponent in P (must not shrink)",
                    ratio=slope, target=0.0, met=slope >= 0.0, goal="≥", ratios=ratios, params=Ps,
                    command=cmd,
                    notes="slope of log(torch/advlip time) on log P; "
                    + ", ".join(f"{r:.3g}" for r in ratios),
                )
            )  # fmt: skip
    return rows


def _model_text() -> str:
    k_p = sum(k for _, k in MODEL_P_VECTORS)
    k_nd = sum(k for _, k in MODEL_ND_ARRAYS)
    return (
        f"model 8 B × ({k_p} P + {k_nd} n·d): θ, the attack's gradient and 6 iterate/product "
        "vectors; X, δ, X + δ, KKT, x-gradients, R, U and CG's state"
    )


def _memory_row(s: dict, cmd: str) -> dict:
    """One size: the power iteration's measured peak (live arrays + RSS rise) / the model."""
    j, mem, t = s["jax"], s["mem"], s.get("torch")
    P = j["params"]
    name = f"memory: power iteration peak / O(P + n·d) model, P = {P:,}"
    if not mem.get("measured"):
        return entry(
            name, ratio=None, target=MEMORY_TARGET, met=None, goal="≤", params=P, command=cmd,
            notes=f"not measured: {mem.get('why')}",
        )  # fmt: skip
    n, d, width = mem["examples"], mem["d"], mem["width"]
    model = model_bytes(P, n, d) / 2**20
    r = mem["power_peak_mb"] / model
    act = n * width * 8 / 2**20  # one n×W float64 activation array
    temp = mem["xla_temp_mb"]
    xla = (
        ""
        if temp is None
        else f"; XLA's temporaries for one product: {temp:.3g} MiB = {temp / act:.1f} n×W "
        f"activation arrays (n·W = {n * width / P:.2f} P), outside the issue's model"
    )
    torch_note = (
        ""
        if t is None
        else f"; the whole PyTorch child peaked {t['peak_rss_mb'] - t['base_rss_mb']:.0f} MiB "
        "above its start"
    )
    return entry(
        name, ratio=r, target=MEMORY_TARGET, met=r <= MEMORY_TARGET, goal="≤", params=P,
        command=cmd,
        model_mb=model, activation_array_mb=act, **{f"mem_{k}": v for k, v in mem.items()},
        notes=f"{mem['power_peak_mb']:.3g} MiB = live arrays {mem['live_arrays_mb']:.3g} + RSS "
        f"rise {mem['power_rise_mb']:.3g} in {mem['steps']} steps; {_model_text()} = "
        f"{model:.3g} MiB{xla}; not counted: the runtime ({mem['runtime_rss_mb']:.0f} MiB); the "
        f"attack peaked {mem['attack_peak_above_baseline_mb']:.0f} MiB above it{torch_note}; "
        f"target ≤ {MEMORY_TARGET:g}",
    )  # fmt: skip


def _memory_exponent_rows(sizes: list[dict], cmd: str) -> list[dict]:
    """Growth of the power iteration's and the attack's peak memory in P (target ≤ 1)."""
    ok = [s for s in sizes if s["mem"].get("measured")]
    if len(ok) < 2:
        return []
    Ps = [s["jax"]["params"] for s in ok]
    rows = []
    for key, label in (
        ("power_peak_mb", "power iteration peak (live arrays + RSS rise)"),
        ("attack_peak_above_baseline_mb", "attack peak above the baseline"),
    ):
        mb = [s["mem"][key] for s in ok]
        slope = common.fit_exponent(Ps, mb)
        rows.append(
            entry(
                f"memory: {label}, exponent in P",
                ratio=slope, target=MEMORY_EXPONENT_TARGET,
                met=slope <= MEMORY_EXPONENT_TARGET, goal="≤", params=Ps, memory_mb=mb,
                command=cmd,
                notes="slope of log MiB on log P, target ≤ 1 (never super-linear); "
                + ", ".join(f"{x:.4g} MiB at P = {p:,}" for x, p in zip(mb, Ps, strict=True)),
            )
        )  # fmt: skip
    return rows


def _fmt(x: float | None, spec: str = ".3g") -> str:
    return "—" if x is None else format(x, spec)


def table(m: dict) -> str:
    """A per-size table: seconds of the gradient and power iterations, ratios of the rest."""
    head = (
        "| P | attack s | grad ms | plain × | naive × | dense × | CG × (iters max/cap) "
        "| power advlip s | eager s (×) | torch.func s (×) | peak RSS MB jax / torch "
        "| power-iteration MiB (model) |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for s in m["sizes"]:
        j, t = s["jax"], s.get("torch")
        tj, g = j["times_s"], j["times_s"]["gradient"]
        mm = s.get("mem", {})
        mem = "—"
        if mm.get("measured"):
            model = model_bytes(j["params"], mm["examples"], mm["d"]) / 2**20
            mem = f"{mm['power_peak_mb']:.3g} ({model:.3g})"
        ep = fp = "—"
        if t:
            tt = t["times_s"]
            ep = f"{tt['eager_power']:.3g} ({tt['eager_power'] / tj['power']:.2f}×)"
            fp = f"{tt['func_power']:.3g} ({tt['func_power'] / tj['power']:.2f}×)"
        lines.append(
            f"| {j['params']:,} | {j['attack_s']:.1f} | {g * 1e3:.3g} "
            f"| {tj['plain_hvp'] / g:.2f} | {tj['naive_hvp'] / g:.2f} "
            f"| {tj['total_hvp_dense'] / g:.2f} "
            f"| {tj['total_hvp_cg'] / g:.2f} ({j['cg_iterations_max']}/{j['cg_maxiter']}) "
            f"| {tj['power']:.3g} | {ep} | {fp} "
            f"| {j['peak_rss_mb']:.0f} / {_fmt(t and t['peak_rss_mb'], '.0f')} | {mem} |"
        )
    return "\n".join(lines)


def run(quick: bool, *, sizes=None, steps=None, threads: int = THREADS) -> list[dict]:
    return _rows(measure(quick, sizes, steps, threads))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true",
        help="fewer power steps (3) and repeats, the same sizes; --sizes 16 for seconds",
    )  # fmt: skip
    ap.add_argument("--json", help="write the results here")
    ap.add_argument(
        "--sizes", nargs="+", type=_parse_size,
        help="widths W (160) or parameter counts (10k, 1M, P10561); default 10k 100k 1M",
    )  # fmt: skip
    ap.add_argument("--steps", type=int, help="power-iteration steps (default 10; --quick 3)")
    ap.add_argument(
        "--threads", type=int, default=THREADS,
        help="CPU cores for JAX and PyTorch (affinity; 0 = all), default 2",
    )  # fmt: skip
    ap.add_argument("--_child", choices=("jax", "mem", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--_width", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        work = Path(args._work)
        if args._child == "jax":
            out = _jax_child(args._width, args.steps, work, args.quick)
        elif args._child == "mem":
            out = _mem_child(args._width, args.steps)
        else:
            out = _torch_child(work, args.steps, args.threads, args.quick)
        (work / f"{args._child}.json").write_text(json.dumps(out, default=float))
        return 0
    m = measure(args.quick, args.sizes, args.steps, args.threads)
    rows = _rows(m)
    print(f"Device: {m['device']}\n\n{table(m)}\n\n{common.markdown(rows)}")
    print(f"\nReplay: {m['command']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        doc = {"benchmarks": rows, "device": m["device"], "command": m["command"], "run": m}
        Path(args.json).write_text(json.dumps(doc, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
