"""Top eigenvalue of the *total* Hessian of an MLP's adversarial loss on digits:
advlip (jit, implicit-differentiation HVPs, power iteration) against the same
algorithm in PyTorch written the way PyHessian writes it (eager double-backward
Hessian-vector products), same model, data, attack, start vector and iterations.

The total HVP (SPEC G2, L2 attack on the sphere) per example i:
``∇²L v = mean_i [H_θθ v + H_θx u_i]``, ``u_i`` solving
``(P(μI − H_xx)P + (I − P)) u = P H_xθ v`` by conjugate gradients with x-space HVPs,
with the attack's tangent projector P and multiplier μ (from advlip's attack, handed
to both implementations so that they compute the same thing). CG stops at the same
relative residual as advlip's (``γ_{2d+4}``) or after ``2d + 5`` iterations.

PyTorch is a benchmark-only extra (``pip install -e ".[bench]"``: ``torch==2.13.0``, CPU).

    python benchmarks/bench_hvp_torch.py [--quick] [--json PATH]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from common import entry, timeit  # noqa: E402

import advlip  # noqa: E402,F401
from advlip import adversarial, data, models, tolerance  # noqa: E402

TARGET = 3.0  # advlip at least 3× faster than the eager PyTorch baseline


def _problem(quick: bool):
    X, y = data.digits((3, 8))
    n = 32 if quick else 128
    X, y = X[:n], y[:n]
    d = X.shape[1]
    params = models.init_mlp(jax.random.PRNGKey(0), d, (16,))
    return params, X, y


def _torch_power(
    params, X, y, delta, kkt, *, steps: int, v0: np.ndarray, cg_maxiter: int, threads: int
):
    import torch

    torch.set_num_threads(threads)
    dt = torch.float64
    flat, _ = jax.flatten_util.ravel_pytree(params)
    theta0 = torch.tensor(np.asarray(flat), dtype=dt)
    # ravel_pytree order of [{"W", "b"}, {"W", "b"}]: W1, b1, W2, b2
    W1s, W2s = params[0]["W"].shape, params[1]["W"].shape
    sizes = [int(np.prod(W1s)), W1s[0], int(np.prod(W2s)), W2s[0]]
    Z = torch.tensor(np.asarray(X + delta), dtype=dt)
    Y = torch.tensor(np.asarray(y), dtype=dt)
    mask = torch.tensor(np.asarray(kkt.mask), dtype=dt)
    normal = torch.tensor(np.asarray(kkt.normal), dtype=dt)
    mu = torch.tensor(np.asarray(kkt.mu), dtype=dt)[:, None]
    n, d = Z.shape
    rtol = tolerance.gamma(2 * d + 4)

    def losses(theta, z):
        W1, b1, W2, b2 = torch.split(theta, sizes)
        h = torch.tanh(z @ W1.view(W1s).T + b1)
        f = (h @ W2.view(W2s).T + b2)[:, 0]
        return torch.nn.functional.softplus(-Y * f)  # softplus margin loss, per example

    def P(w):
        mw = mask * w
        return mw - normal * (normal * mw).sum(1, keepdim=True)

    def total_hvp(v):
        theta = theta0.clone().requires_grad_(True)
        z = Z.clone().requires_grad_(True)
        L = losses(theta, z).sum()
        gth, gx = torch.autograd.grad(L, (theta, z), create_graph=True)
        Htt_v, Hxt_v = torch.autograd.grad(gth @ v, (theta, z), retain_graph=True)

        def B(w):
            Pw = P(w)
            Hw = torch.autograd.grad((gx * Pw).sum(), z, retain_graph=True)[0]
            return P(mu * Pw - Hw) + (w - Pw)

        b = P(Hxt_v)
        x = torch.zeros_like(b)
        r = b.clone()
        p = r.clone()
        rs = (r * r).sum(1)
        thresh = rtol * rs.sqrt()
        for _ in range(cg_maxiter):
            active = rs.sqrt() > thresh
            if not bool(active.any()):
                break
            Ap = B(p)
            pAp = (p * Ap).sum(1)
            alpha = torch.where(active & (pAp > 0), rs / torch.where(pAp > 0, pAp, 1.0), 0.0)
            x = x + alpha[:, None] * p
            r = r - alpha[:, None] * Ap
            rs_new = (r * r).sum(1)
            beta = torch.where(rs > 0, rs_new / torch.where(rs > 0, rs, 1.0), 0.0)
            p = r + beta[:, None] * p
            rs = rs_new
        u = P(x)
        corr = torch.autograd.grad((gx * u).sum(), theta)[0]
        return ((Htt_v + corr) / n).detach()

    v = torch.tensor(v0, dtype=dt)
    v = v / v.norm()
    for _ in range(steps):
        w = total_hvp(v)
        v = w / w.norm()
    w = total_hvp(v)
    return float(v @ w)


def run(quick: bool) -> list[dict]:
    try:
        import torch  # noqa: F401
    except ImportError:
        return [
            entry(
                "total-HVP power iteration: advlip vs eager PyTorch",
                ratio=None,
                target=TARGET,
                met=None,
                notes="not run: PyTorch missing (pip install -e '.[bench]')",
            )
        ]
    params, X, y = _problem(quick)
    loss = models.MLPLoss("tanh")
    eps = 0.05
    pt = adversarial.linearize(loss, params, X, y, eps=eps, p=2.0)
    pt.require_determined()
    steps = 10 if quick else 30
    key = jax.random.PRNGKey(0)
    v0 = np.random.default_rng(
        np.asarray(jax.random.key_data(key)).ravel().tolist()
    ).standard_normal(pt.dim)

    lam_jax = float(
        pt.top_eigenvalue(hessian="total", method="power", num_steps=steps, key=key).value
    )
    t_jax = timeit(
        lambda: pt.top_eigenvalue(hessian="total", method="power", num_steps=steps, key=key).value,
        repeat=3,
    )
    threads = 2
    start = time.perf_counter()
    lam_torch = _torch_power(
        params,
        X,
        y,
        pt.delta,
        pt.kkt,
        steps=steps,
        v0=v0,
        cg_maxiter=pt.cg_maxiter,
        threads=threads,
    )
    t_torch = time.perf_counter() - start
    # a second timed run, as for advlip (eager PyTorch has no compilation to warm up)
    start = time.perf_counter()
    _torch_power(
        params,
        X,
        y,
        pt.delta,
        pt.kkt,
        steps=steps,
        v0=v0,
        cg_maxiter=pt.cg_maxiter,
        threads=threads,
    )
    t_torch = min(t_torch, time.perf_counter() - start)
    # reference: the dense total Hessian's eigenvalue of largest magnitude
    H = np.asarray(pt.blocks().total)
    ev = np.linalg.eigvalsh(0.5 * (H + H.T))
    lam_ref = float(ev[np.argmax(np.abs(ev))])
    rel = abs(lam_jax - lam_torch) / abs(lam_ref)
    ratio = t_torch / t_jax
    print(
        f"advlip {t_jax:.3f} s, torch {t_torch:.3f} s, λ advlip {lam_jax:.8g}, torch {lam_torch:.8g}, "
        f"dense {lam_ref:.8g}",
        file=sys.stderr,
    )
    return [
        entry(
            "total-HVP power iteration: advlip vs eager PyTorch (time ratio)",
            ratio=ratio,
            target=TARGET,
            met=ratio >= TARGET,
            advlip_s=t_jax,
            torch_s=t_torch,
            steps=steps,
            params=pt.dim,
            examples=int(X.shape[0]),
            eigenvalue_advlip=lam_jax,
            eigenvalue_torch=lam_torch,
            eigenvalue_dense=lam_ref,
            eigenvalue_rel_diff=rel,
            torch_threads=threads,
            notes=f"P={pt.dim}, n={X.shape[0]}, {steps} power steps; |λ_advlip − λ_torch|/|λ| = {rel:.1e}",
        )
    ]


def main(argv=None) -> int:
    return common.main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
