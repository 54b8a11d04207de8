"""Total curvature of the adversarial loss (docs/theory/general-models.md): what a total Hessian-vector product
costs against a gradient, and the dense total Hessian by implicit differentiation
against finite differences with re-solved attacks.

1. **HVP / gradient.** A tanh MLP under an L2 attack (maximisers on the sphere, G2). The
   gradient is the Danskin gradient at the attack (one reverse pass per example). A total
   HVP is two forward-over-reverse passes plus the tangent solve: matrix-free (CG, one
   x-space HVP per iteration) or with the tangent operator factorised once per point
   (``solver="dense"``). Targets: a forward-over-reverse pass costs at most ~4 gradients
   (Griewank & Walther, *Evaluating Derivatives*, §5.4), so ≤ 8 for the factorised route
   and ≤ 4·(2 + k) for CG with k iterations; the total against the naive (δ fixed) HVP is
   reported without a target (two passes against one).
2. **Dense Hessian: implicit vs finite differences.** The implicit route (per-example
   ``jax.hessian`` blocks and a d×d solve) against central differences of the Danskin
   gradient with the attack re-solved at every θ ± h e_j (4P attacks, warm-started,
   advlip.adversarial.fd_hessian). On the linear model both are compared with the closed
   form of docs/theory/closed-form.md (advlip.linear.adversarial_hessian); on the reference MLP with FD's own
   Richardson estimate. Target (issue #6): FD/implicit time ≥ 20 at equal or better accuracy.

Every case is checked for correctness before it is timed; timings are medians after a
warm-up (compilation) with ``block_until_ready``; nothing asserts a time.

    python benchmarks/bench_total_hessian.py [--quick] [--json PATH]
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
from jax.flatten_util import ravel_pytree  # noqa: E402

import advlip  # noqa: E402,F401
from advlip import adversarial, linear, models  # noqa: E402
from advlip.theorems import general  # noqa: E402


def _hvp_vs_grad(quick: bool) -> list[dict]:
    d, width, n = (8, 32, 64) if quick else (16, 64, 256)
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((n, d)) / np.sqrt(d))
    y = jnp.asarray(rng.choice([-1.0, 1.0], n))
    params = models.init_mlp(jax.random.PRNGKey(0), d, (width,), scale=1.5)
    loss = models.MLPLoss("tanh")
    pt = adversarial.linearize(loss, params, X, y, eps=0.1, p=2.0)
    pt.require_determined()
    flat0, unravel = ravel_pytree(params)
    delta = pt.delta

    @jax.jit
    def grad(theta):
        g = jax.vmap(lambda x, yi, dl: jax.grad(loss)(unravel(theta), x + dl, yi))(X, y, delta)
        return ravel_pytree(jax.tree.map(lambda a: jnp.mean(a, axis=0), g))[0]

    cg, dense = pt.matvec(solver="cg"), pt.matvec(solver="dense")
    naive = pt.matvec(hessian="naive", solver="dense")
    v = jnp.asarray(rng.standard_normal(flat0.size))
    v = v / jnp.linalg.norm(v)
    # correctness: the two solve routes agree, and both match re-solved differences of ∇L
    hv_cg, hv_dense = np.asarray(cg(v)), np.asarray(dense(v))
    assert np.allclose(hv_cg, hv_dense, atol=1e-10 * np.abs(hv_dense).max()), "cg != dense"
    h = 2.0**-13
    r = adversarial.resolve_grads(
        pt, np.asarray(flat0)[None, :] + np.array([[h], [-h], [2 * h], [-2 * h]]) * np.asarray(v)
    )
    g = r["grads"]
    fine, coarse = (g[0] - g[1]) / (2 * h), (g[2] - g[3]) / (4 * h)
    richardson = (4 * fine - coarse) / 3
    # FDHessian's error model along one direction: |D_R − Hv| ≤ |D_h − D_2h|/3 + 1.5 e/h
    tol = np.abs(fine - coarse) / 3 + 1.5 * pt.gradient_error(r["residual"].max(axis=0)) / h
    fd_err = float(np.abs(richardson - hv_dense).max())
    fd_scale = float(tol.max())
    assert np.all(np.abs(richardson - hv_dense) <= tol), (fd_err, fd_scale)
    np.testing.assert_allclose(
        np.asarray(grad(flat0)), np.asarray(ravel_pytree(pt.grad())[0]), atol=1e-13
    )

    t_grad = timeit(lambda: grad(flat0), repeat=3 if quick else 5)
    t_cg = timeit(lambda: cg(v), repeat=3 if quick else 5)
    t_dense = timeit(lambda: dense(v), repeat=3 if quick else 5)
    t_naive = timeit(lambda: naive(v), repeat=3 if quick else 5)
    c = pt.kkt
    k = int(np.max(np.asarray(c.tangent_dim)))  # CG needs at most this many iterations
    size = f"MLP {d}-{width}-1 (P = {flat0.size}), n = {n}, L2 ε = 0.1"
    common = {
        "gradient_s": t_grad,
        "total_hvp_cg_s": t_cg,
        "total_hvp_dense_s": t_dense,
        "naive_hvp_s": t_naive,
        "model": size,
        "fd_check_error": fd_err,
        "fd_check_scale": fd_scale,
    }
    return [
        entry(
            "total HVP / gradient (tangent factorised once)",
            ratio=t_dense / t_grad,
            target=8.0,
            met=t_dense / t_grad <= 8.0,
            notes=f"{size}; two forward-over-reverse passes",
            **common,
        ),
        entry(
            "total HVP / gradient (matrix-free CG)",
            ratio=t_cg / t_grad,
            target=4.0 * (2 + k),
            met=t_cg / t_grad <= 4.0 * (2 + k),
            notes=f"{size}; ≤ {k} CG iterations of x-space HVPs",
            cg_iterations_max=k,
            **common,
        ),
        entry(
            "total HVP / naive HVP (δ held fixed)",
            ratio=t_dense / t_naive,
            target=None,
            met=None,
            notes="the price of the implicit term (informational: two passes against one)",
            **common,
        ),
    ]


def _batched_fd(pt: adversarial.AdversarialPoint, h: float):
    """Central differences with re-solved attacks as ONE compiled program: every θ ± h e_j,
    ± 2h e_j attacked at once (vmapped), warm-started at δ*(θ) — the fastest FD route."""
    from advlip import attacks

    n, d = pt.X.shape
    flat0, unravel = ravel_pytree(pt.params)
    P = flat0.size
    eye = np.eye(P)
    thetas = jnp.asarray(
        np.asarray(flat0)[None, :] + np.concatenate([h * eye, -h * eye, 2 * h * eye, -2 * h * eye])
    )
    dyn, static = attacks.partition(pt.loss_fn)
    cfg = attacks.AttackConfig(pt.cg_maxiter, 1, False, min(d, 64), pt.dense)
    starts = pt.delta[:, None, :]
    args = (
        jnp.asarray(pt.eps),
        jnp.asarray(0.0),
        jnp.asarray([0, 2, 4], dtype=jnp.int32),
        jnp.asarray(attacks._start_vector(d)),
        jnp.asarray(attacks._p_index(pt.p), dtype=jnp.int32),
        jnp.asarray(0.0),
        jnp.asarray(0.0),
    )

    @jax.jit
    def run(thetas):
        def at(theta):
            out = attacks._pgd_batch(
                static, dyn, unravel(theta), pt.X, pt.y, starts, *args, cfg=cfg
            )
            return ravel_pytree(out[-1])[0]

        g = jax.vmap(at)(thetas)
        fine = (g[:P] - g[P : 2 * P]) / (2 * h)
        coarse = (g[2 * P : 3 * P] - g[3 * P :]) / (4 * h)
        return fine.T, coarse.T

    return lambda: run(thetas)


def _implicit(pt: adversarial.AdversarialPoint):
    """The implicit route's compiled work: per-example dense blocks and the d×d solve."""
    dyn, static = adversarial.partition(pt.loss_fn)
    theta = ravel_pytree(pt.params)[0]
    f = adversarial._blocks_jit

    def go():
        return jnp.mean(f(static, dyn, pt.spec, theta, pt.X, pt.y, pt.delta, pt.kkt)[4], axis=0)

    return go


def _dense_case(name, pt, exact, quick):
    h = 2.0**-13
    impl, fd = _implicit(pt), _batched_fd(pt, h)
    H = np.asarray(impl())
    fine, coarse = (np.asarray(a) for a in fd())
    B = pt.blocks()
    if exact is not None:
        err_impl = float(np.abs(H - exact).max())
        err_fd = float(np.abs(fine - exact).max())
        err_fd_r = float(np.abs((4 * fine - coarse) / 3 - exact).max())
        assert err_impl <= float(np.asarray(B.error).max()) + 1e-15 and err_fd < 1e-5
        errors = (
            f"vs closed form: implicit {err_impl:.1e}, FD {err_fd:.1e} (Richardson {err_fd_r:.1e})"
        )
        better = err_impl <= min(err_fd, err_fd_r)
        extra = {"implicit_error": err_impl, "fd_error": err_fd, "fd_richardson_error": err_fd_r}
    else:
        est_fd = float(np.abs(fine - coarse).max() / 3)  # |D_h − ∇²L| ≈ |D_h − D_2h|/3
        bound_impl = float(np.asarray(B.error).max())
        agree = float(np.abs(H - (4 * fine - coarse) / 3).max())
        assert agree <= est_fd, (agree, est_fd)
        errors = f"implicit ≤ {bound_impl:.1e} (float64 bound), FD ≈ {est_fd:.1e} (Richardson)"
        better = bound_impl <= est_fd
        extra = {
            "implicit_error_bound": bound_impl,
            "fd_error_estimate": est_fd,
            "agreement": agree,
        }
    t_impl = timeit(impl, repeat=3 if quick else 5)
    t_fd = timeit(fd, repeat=3 if quick else 5)
    # the public entry points, for reference: total_hessian vs fd_hessian (a Python loop of
    # warm-started attacks: no extra compilation, but per-call overhead)
    t_api_impl = timeit(
        lambda: adversarial.total_hessian(
            pt.loss_fn, pt.params, pt.X, pt.y, eps=pt.eps, p=pt.p, attack=pt.attack
        ),
        repeat=3,
    )
    t_api_fd = timeit(lambda: adversarial.fd_hessian(pt).fine, repeat=1, min_time=0.0)
    ratio = t_fd / t_impl
    return entry(
        f"dense total Hessian: FD (re-solved) / implicit time, {name}",
        ratio=ratio,
        target=20.0,
        met=bool(ratio >= 20.0 and better),
        notes=f"P = {pt.dim}, n = {pt.X.shape[0]}, {4 * pt.dim} attacks; error {errors}",
        implicit_s=t_impl,
        fd_s=t_fd,
        api_total_hessian_s=t_api_impl,
        api_fd_hessian_s=t_api_fd,
        api_ratio=t_api_fd / t_api_impl,
        n_attacks_fd=4 * pt.dim,
        **extra,
    )


def _dense_vs_fd(quick: bool) -> list[dict]:
    # (a) the linear model: both routes against the closed form of docs/theory/closed-form.md
    rng = np.random.default_rng(1)
    d, n, eps = (6, 32, 0.3) if quick else (12, 128, 0.3)
    w = jnp.asarray(rng.standard_normal(d))
    params = {"w": w, "b": jnp.asarray(0.2)}
    X = jnp.asarray(rng.standard_normal((n, d)) / np.sqrt(d))
    y = jnp.asarray(rng.choice([-1.0, 1.0], n))
    pt = adversarial.linearize(models.LinearLoss(), params, X, y, eps=eps, p=2.0)
    pt.require_determined()
    exact = np.asarray(linear.adversarial_hessian(w, X, y, eps=eps, p=2, b=0.2))
    perm = np.r_[d, np.arange(d)]  # ravel order {"b", "w"}
    rows = [_dense_case("linear model", pt, exact[np.ix_(perm, perm)], quick)]
    # (b) the reference MLP of the GEN checks: FD's own Richardson estimate of its error
    params, X, y = general.reference_problem(0, 8 if quick else 16)
    pt = adversarial.linearize(models.MLPLoss("tanh"), params, X, y, eps=general.EPS_L2, p=2.0)
    pt.require_determined()
    rows.append(_dense_case("tanh MLP", pt, None, quick))
    return rows


def run(quick: bool) -> list[dict]:
    return _hvp_vs_grad(quick) + _dense_vs_fd(quick)


def main(argv=None) -> int:
    return common.main(run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
