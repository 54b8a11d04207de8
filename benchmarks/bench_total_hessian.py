"""Total curvature of the adversarial loss (docs/theory/general-models.md): what a total
Hessian-vector product costs against a gradient, and the dense total Hessian by implicit
differentiation against finite differences with re-solved attacks.

1. **HVP / gradient.** A tanh MLP under an L2 attack (maximisers on the sphere: case G2,
   docs/theory/gen-l2-boundary.md). The gradient is the Danskin gradient at the attack (one
   reverse pass per example). A total HVP is two forward-over-reverse passes plus the
   tangent solve: matrix-free (CG, one x-space HVP per iteration) or with the tangent
   operator factorised once per point (``solver="dense"``). Targets: a forward-over-reverse
   pass costs at most ~4 gradients (Griewank & Walther, *Evaluating Derivatives*, §5.4), so
   ≤ 8 for the factorised route and ≤ 4·(2 + k) for CG with k iterations; the total against
   the naive (δ fixed) HVP is reported without a target (two passes against one).
2. **Dense Hessian: implicit vs finite differences.** The implicit route (per-example
   ``jax.hessian`` blocks and a d×d solve) against central differences of the Danskin
   gradient with the attack re-solved at every θ ± h e_j, θ ± 2h e_j (4P attacks,
   warm-started, in one vmapped program: FD's fastest form). On the linear model both are
   compared with the closed form of docs/theory/closed-form.md
   (advlip.linear.adversarial_hessian); on a tanh MLP with P ≥ 300 parameters (d = 8, a
   hidden layer of 32 units and a skip connection: P = 329; 64 units, P = 649, in the full
   run) with each other, within FD's own Richardson estimate of its error. Target (issue
   #6, issue #13): FD/implicit time ≥ 20 at P ≥ 300, at equal or better accuracy.

Every case is checked for correctness before it is timed; timings are medians after a
warm-up (compilation) with ``block_until_ready``; nothing asserts a time.

    python benchmarks/bench_total_hessian.py [--quick] [--json PATH]
"""

from __future__ import annotations

import functools
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
from advlip import adversarial, data, linear, models  # noqa: E402

MLP_D = 8  # the dense-Hessian MLP's input dimension
MLP_EPS = 0.15  # its L2 radius (the reference problem's, advlip.theorems.general.EPS_L2)
FD_TARGET = 20.0  # FD time / implicit time at P ≥ 300 (issues #6 and #13)


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
            goal="≤",
            notes=f"{size}; two forward-over-reverse passes",
            **common,
        ),
        entry(
            "total HVP / gradient (matrix-free CG)",
            ratio=t_cg / t_grad,
            target=4.0 * (2 + k),
            met=t_cg / t_grad <= 4.0 * (2 + k),
            goal="≤",
            notes=f"{size}; ≤ {k} CG iterations of x-space HVPs",
            cg_iterations_max=k,
            **common,
        ),
        entry(
            "total HVP / naive HVP (δ held fixed)",
            ratio=t_dense / t_naive,
            target=None,
            met=None,
            notes="no target: the price of the implicit term, informational (two passes against one)",
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
    """The implicit route of :meth:`AdversarialPoint.blocks` (``total_hessian(method="blocks")``), its
    compiled work: per-example dense blocks (``jax.hessian`` in (θ, x)), the d×d solve, the
    per-example total Hessians (n, P, P) and their |terms| for the error bound, averaged."""
    dyn, static = adversarial.partition(pt.loss_fn)
    theta = ravel_pytree(pt.params)[0]
    f = adversarial._blocks_jit

    def go():
        return jnp.mean(f(static, dyn, pt.spec, theta, pt.X, pt.y, pt.delta, pt.kkt)[4], axis=0)

    return go


@functools.partial(jax.jit, static_argnames=("static", "spec", "cg_maxiter"))
def _products_dense(static, dyn, spec, params, X, y, delta, kkt, cg_maxiter):
    minv = adversarial._tangent_inverse(static, dyn, params, X, y, delta, kkt)
    eye = jnp.eye(sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params)), dtype=X.dtype)

    def column(v):
        return adversarial.apply_matvec(
            static, dyn, spec, params, X, y, delta, kkt, minv, v, "total", cg_maxiter
        )

    return jax.vmap(column)(eye)  # row j = H e_j: H is symmetric


def _implicit_products(pt: adversarial.AdversarialPoint):
    """The implicit route as P total Hessian-vector products (``pt.matvec(solver="dense")``,
    vmapped over the columns of the identity), the tangent operator factorised once per
    example inside the timed call: never an n × P × P intermediate."""
    dyn, static = adversarial.partition(pt.loss_fn)
    args = (static, dyn, pt.spec, pt.params, pt.X, pt.y, pt.delta, pt.kkt, pt.cg_maxiter)
    return lambda: _products_dense(*args)


def _dense_case(name, pt, exact, quick, *, products=False):
    """One FD-vs-implicit row. ``products``: time :func:`_implicit_products` rather than the
    per-example blocks of :func:`_implicit` (both are checked the same way)."""
    h = 2.0**-13
    blocks, fd = _implicit(pt), _batched_fd(pt, h)
    impl = _implicit_products(pt) if products else blocks
    H = np.asarray(impl())
    fine, coarse = (np.asarray(a) for a in fd())
    B = pt.blocks()
    bound_blocks = np.asarray(B.error)
    # the products route evaluates the same formula in another order: its error is at most
    # its distance from the blocks route plus the blocks route's bound (triangle inequality)
    gap = float(np.abs(H - np.asarray(B.total)).max()) if products else 0.0
    if exact is not None:
        err_impl = float(np.abs(H - exact).max())
        err_fd = float(np.abs(fine - exact).max())
        err_fd_r = float(np.abs((4 * fine - coarse) / 3 - exact).max())
        assert err_impl <= float(bound_blocks.max()) + gap + 1e-15 and err_fd < 1e-5
        errors = (
            f"vs closed form: implicit {err_impl:.1e}, FD {err_fd:.1e} (Richardson {err_fd_r:.1e})"
        )
        better = err_impl <= min(err_fd, err_fd_r)
        extra = {"implicit_error": err_impl, "fd_error": err_fd, "fd_richardson_error": err_fd_r}
    else:
        est_fd = float(np.abs(fine - coarse).max() / 3)  # |D_h − ∇²L| ≈ |D_h − D_2h|/3
        bound_impl = float(bound_blocks.max()) + gap
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
    ratio = t_fd / t_impl
    route = (
        "P total HVPs, tangent factorised (total_hessian; pt.matvec(solver='dense'))"
        if products
        else "per-example blocks with their error bounds (pt.blocks())"
    )
    if products:
        extra["products_vs_blocks_max_diff"] = gap
        extra["blocks_s"] = timeit(blocks, repeat=3 if quick else 5)
        route_note = f"; the per-example blocks route takes {extra['blocks_s'] * 1e3:.3g} ms"
    else:
        # the public entry points, for reference: total_hessian vs fd_hessian (a Python loop
        # of warm-started attacks: no extra compilation, but per-call overhead)
        extra["api_total_hessian_s"] = timeit(
            lambda: adversarial.total_hessian(
                pt.loss_fn, pt.params, pt.X, pt.y, eps=pt.eps, p=pt.p, attack=pt.attack
            ),
            repeat=3,
        )
        extra["api_fd_hessian_s"] = timeit(
            lambda: adversarial.fd_hessian(pt).fine, repeat=1, min_time=0.0
        )
        extra["api_ratio"] = extra["api_fd_hessian_s"] / extra["api_total_hessian_s"]
        route_note = ""
    return entry(
        f"dense total Hessian: FD (re-solved attacks) time / implicit time, {name}, "
        f"P = {pt.dim}: {route}",
        ratio=ratio,
        target=FD_TARGET,
        met=bool(ratio >= FD_TARGET and better),
        goal="≥",
        notes=f"P = {pt.dim}, n = {pt.X.shape[0]}, FD: {4 * pt.dim} warm-started attacks in one "
        f"vmapped program, {t_fd * 1e3:.3g} ms; implicit {t_impl * 1e3:.3g} ms{route_note}; "
        f"error {errors}; target ≥ {FD_TARGET:g} at equal or better accuracy",
        implicit_s=t_impl,
        fd_s=t_fd,
        route=route,
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
    # (b) a tanh MLP with P ≥ 300 (docs/theory/gen-l2-boundary.md: L2 maximisers on the
    # sphere): the two routes against each other, within FD's own Richardson estimate
    width = 32 if quick else 64
    key = jax.random.PRNGKey(3)
    X, y = data.synthetic(key, n=8, d=MLP_D)
    params = models.init_mlp(key, MLP_D, (width,), scale=1.5, skip=True)
    pt = adversarial.linearize(models.MLPLoss("tanh"), params, X, y, eps=MLP_EPS, p=2.0)
    pt.require_determined()
    assert pt.dim >= 300, pt.dim
    name = f"tanh MLP {MLP_D}-{width}-1 + skip"
    rows.append(_dense_case(name, pt, None, quick))
    rows.append(_dense_case(name, pt, None, quick, products=True))
    return rows


def run(quick: bool) -> list[dict]:
    return _hvp_vs_grad(quick) + _dense_vs_fd(quick)


def main(argv=None) -> int:
    return common.main(run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
