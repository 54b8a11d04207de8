"""Curvature of the adversarial loss at CIFAR-10 ResNet-18 size: the cost of a total
Hessian-vector product against a gradient, and total vs naive λ_max.

Problem: ``advlip.networks.resnet18`` (11.2M parameters, softplus, no BatchNorm; or the
small ``resnet`` / ``cnn`` with ``--model``) at its initialisation from ``--seed``, on
``--n`` images of CIFAR-10's test split (``--data DIR``: ``advlip.data.images``, or the
first n of the test batch, python or binary release, where that helper is missing or
cannot read it) or on synthetic 32×32×3 images (``advlip.data.images("synthetic-cifar10")``
where that helper exists, else uniform pixels in [0, 1] drawn from the key), cross-entropy, an
Lp attack of radius ``--eps``. The attack (``advlip.attacks.pgd``, certified mode) is
solved once and ``advlip.adversarial.linearize`` classifies every example; then, as
ratios to the jitted JAX batch gradient of the mean loss at X + δ measured in the same
run (1×):

* the naive HVP (δ held fixed), ``pt.matvec(hessian="naive")``;
* the total HVP (implicit differentiation through the attack),
  ``pt.matvec(hessian="total")``, tangent solves by CG in x (d = 3072);
* plain JAX ``jax.jvp(jax.grad(...))`` of the mean loss at the fixed δ (reference);
* the attack itself (seconds, compilation included: it runs once).

And λ_max of the total and of the naive Hessian (``pt.top_eigenvalue``, ``--steps``
Lanczos steps) with their bounds, and the fraction of examples whose total Hessian is
undetermined (attack not converged, degenerate multiplier, ...). Above 256 parameters
the per-example scales behind the bounds are Hutchinson estimates (``exact_scale``
false): the bounds are estimates there.

Checks before timing (recorded, never fatal, so a long GPU run still reports): the
naive matvec against plain JAX within twice the naive products' error bound times ‖v‖
(``pt.eigen_error(v).operator``: the same products in another order); the Danskin
gradient against the baseline gradient within twice ``pt.gradient_error`` of a zero
residual (its rounding part); the symmetry u·(Hv) = v·(Hu) of the total operator within
(op(u) + op(v))‖u‖‖v‖ plus the rounding of the two float64 dot products.

In float32 at ResNet-18 size λ_max is reported as "not computed": the eigensolvers'
rounding model (:mod:`advlip.spectral`, γ_{4P+8} for Lanczos) exceeds 1 once P > 4.2M
(γ_k needs k·u < 1, u = 2⁻²⁴); use ``--dtype float64`` there. The checks' tolerances at
that size are worst-case bounds (γ_k times per-example Frobenius norms) and come out far
above the compared values (``tol_over_scale`` in the JSON): they say little there.

Defaults: float32 on an accelerator, float64 on CPU (``--dtype``); L2, ε = 0.5 (pixels in
[0, 1]); CG in x capped at ``--cg-maxiter`` 200 iterations (the default 2d + 5 = 6149 for
d = 3072 would make the float32 error bound γ_{c(2d+4)} meaningless: c(2d+4)·u ≥ 1).

    python benchmarks/bench_resnet_curvature.py [--model resnet18|resnet|cnn] [--data DIR]
        [--n N] [--eps E] [--p 2|inf|1] [--dtype float32|float64] [--steps S]
        [--attack-steps S] [--refine-steps S] [--newton-steps S] [--cg-maxiter C]
        [--size PX] [--seed N] [--repeat R] [--json PATH] [--quick]

``--quick``: ``--model cnn --n 4 --size 4`` with short attack phases (a smoke test: under a
minute on two CPU cores, most of it compilation).
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (turns float64 on for the process)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import entry, timeit  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import advlip  # noqa: E402
from advlip import adversarial, attacks, data, networks, tolerance  # noqa: E402

MODELS = ("resnet18", "resnet", "cnn")
NAIVE_TARGET = 2.0  # naive HVP ≤ 2 gradients (the target of bench_hvp_torch, issue 10)
CIFAR_SHAPE = (32, 32, 3)


def _progress(msg: str) -> None:
    print(
        f"[bench_resnet_curvature {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------- data


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch (dicts, lists, bytes, ints and NumPy arrays) and
    refuses every other global, so a hostile file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR-10 batch: refused the global {module}.{name}")


def _read_cifar_dir(path: Path, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The first n images of CIFAR-10's test batch, (n, 32, 32, 3) in [0, 1], and labels
    (used where ``advlip.data.images`` is missing or cannot read the folder).

    Accepts the python release (``test_batch``, a pickle, possibly under
    ``cifar-10-batches-py/``) or the binary one (``test_batch.bin``, under
    ``cifar-10-batches-bin/``)."""
    for sub in ("", "cifar-10-batches-py", "cifar-10-batches-bin"):
        d = path / sub if sub else path
        if (d / "test_batch").is_file():
            with open(d / "test_batch", "rb") as f:
                batch = _ArrayUnpickler(f, encoding="bytes").load()
            raw = np.asarray(batch[b"data"], dtype=np.uint8)[:n]
            labels = np.asarray(batch[b"labels"], dtype=np.int64)[:n]
            src = str(d / "test_batch")
            break
        if (d / "test_batch.bin").is_file():
            rec = np.fromfile(d / "test_batch.bin", dtype=np.uint8).reshape(-1, 3073)[:n]
            labels, raw = rec[:, 0].astype(np.int64), rec[:, 1:]
            src = str(d / "test_batch.bin")
            break
    else:
        raise SystemExit(
            f"--data {path}: no CIFAR-10 test batch found (looked for test_batch and "
            "test_batch.bin, also under cifar-10-batches-py/ and cifar-10-batches-bin/)"
        )
    if raw.shape[0] < n:
        raise SystemExit(f"--data {path}: only {raw.shape[0]} test images, --n {n} asked")
    # stored channel-major (3, 32, 32) per row: to NHWC
    X = raw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64) / 255.0
    return X, labels, f"CIFAR-10 test batch ({src})"


def _unpack(out) -> tuple[np.ndarray, np.ndarray, str | None]:
    """``advlip.data.images`` gives ``(X, y, description)`` (or ``(X, y)``)."""
    X, y, *rest = out
    return np.asarray(X, np.float64), np.asarray(y, np.int64), (rest[0] if rest else None)


def _images(key: jax.Array, n: int, folder: str | None, shape: tuple[int, int, int], k: int):
    """The benchmark's images (n, H, W, C) in [0, 1], labels and where they came from.

    A CIFAR-10 folder: ``advlip.data.images(f"cifar10:{folder}", split="test", n=n)``
    where that helper exists (n test images drawn with the key), else (or for the binary
    release) the first n images of the test batch read here. Synthetic:
    ``advlip.data.images("synthetic-cifar10", n=n, key=key)`` for 32×32×3, else uniform
    pixels in [0, 1] and uniform labels drawn from the key."""
    have = hasattr(data, "images")
    if folder is not None:
        if have:
            try:
                X, y, about = _unpack(data.images(f"cifar10:{folder}", split="test", n=n, key=key))
                return X, y, about or f"CIFAR-10 test ({folder})"
            except (ValueError, OSError) as err:
                _progress(f"data.images could not read {folder} ({err}); reading it here")
        return _read_cifar_dir(Path(folder), n)
    if shape == CIFAR_SHAPE and have:
        X, y, about = _unpack(data.images("synthetic-cifar10", n=n, key=key))
        if X.shape == (n, *CIFAR_SHAPE) and y.shape == (n,):
            return X, y, about or 'advlip.data.images("synthetic-cifar10")'
        _progress(f"data.images gave shapes {X.shape}, {y.shape}: drawing uniform images")
    rng = advlip.keys.numpy_rng(key)
    X = rng.uniform(size=(n, *shape))
    y = rng.integers(0, k, size=n)
    return X, y, f"uniform synthetic images {shape} from the key"


# --------------------------------------------------------------------------- the run


def _build(model: str, key, shape, dtype):
    if model == "resnet18":
        return networks.resnet18(key, shape, 10, dtype=dtype)
    if model == "resnet":
        return networks.resnet(key, shape, 10, width=16, blocks=(1, 1, 1), dtype=dtype)
    return networks.cnn(key, shape, 10, dtype=dtype)


def _check(name: str, diff: float, tol: float, exact: bool, scale: float) -> dict:
    """``exact``: the tolerance is a bound (else it rests on Hutchinson estimates, P > 256);
    ``scale``: the size of what is compared (``tol / scale`` ≥ 1 makes the check vacuous)."""
    ok = bool(diff <= tol)
    if not ok:
        _progress(f"CHECK FAILED: {name}: |difference| {diff:.3g} > tolerance {tol:.3g}")
    rel = tol / scale if scale > 0 else math.inf
    return {
        "name": name, "diff": diff, "tol": tol, "ok": ok, "tol_is_bound": exact,
        "scale": scale, "tol_over_scale": rel,
    }  # fmt: skip


def measure(args: argparse.Namespace) -> dict:
    t_start = time.perf_counter()
    dev = jax.devices()[0]
    dtype = np.dtype(args.dtype or ("float64" if dev.platform == "cpu" else "float32"))
    key = jax.random.PRNGKey(args.seed)
    k_data, k_model, k_attack, k_eig, k_vec = jax.random.split(key, 5)
    shape = CIFAR_SHAPE if args.size is None else (args.size, args.size, 3)
    if args.data and args.size not in (None, 32):
        raise SystemExit("--size applies to synthetic images only (CIFAR-10 is 32×32)")
    X, y, source = _images(k_data, args.n, args.data, shape, 10)
    shape = tuple(X.shape[1:])
    X = jnp.asarray(X.astype(dtype))
    y = jnp.asarray(y)
    t0 = time.perf_counter()
    params, loss_fn = _build(args.model, k_model, shape, dtype)
    t_init = time.perf_counter() - t0
    theta, unravel = ravel_pytree(params)
    P, n, d = int(theta.size), int(X.shape[0]), math.prod(shape)
    cg_maxiter = min(args.cg_maxiter, 2 * d + 5)
    tag = f"{args.model} P={P:,} n={n} d={d} {dtype.name}"
    _progress(f"{tag}: init {t_init:.2f} s on {dev.platform}:{dev.device_kind}; data: {source}")

    # ---- attack, then the case analysis (each timed once: compilation included)
    opts = dict(
        steps=args.attack_steps,
        refine_steps=args.refine_steps,
        newton_steps=args.newton_steps,
        cg_maxiter=cg_maxiter,
        key=k_attack,
    )
    t0 = time.perf_counter()
    att = attacks.pgd(loss_fn, params, X, y, eps=args.eps, p=args.p, **opts)
    jax.block_until_ready(att.delta)
    t_attack = time.perf_counter() - t0
    _progress(f"{tag}: attack {t_attack:.1f} s ({int(np.sum(att.converged))}/{n} converged)")
    t0 = time.perf_counter()
    pt = adversarial.linearize(
        loss_fn, params, X, y, eps=args.eps, p=args.p, attack=att, cg_maxiter=cg_maxiter
    )
    t_linearize = time.perf_counter() - t0
    undetermined = float(np.mean(~pt.determined))
    reasons: dict[str, int] = {}
    for r, ok in zip(pt.reasons, pt.determined, strict=True):
        if not ok:
            reasons[r] = reasons.get(r, 0) + 1
    _progress(f"{tag}: case analysis {t_linearize:.1f} s; undetermined {undetermined:.0%}")

    # ---- λ_max, total and naive
    eig = {}
    for hessian in ("total", "naive"):
        t0 = time.perf_counter()
        try:
            est = pt.top_eigenvalue(hessian=hessian, num_steps=min(args.steps, P), key=k_eig)
        except ValueError as err:  # e.g. a float32 error bound over P terms that exceeds 1
            eig[hessian] = {"value": None, "bound": None, "error": str(err).split("\n")[0]}
            _progress(f"{tag}: λ_max {hessian} not computed: {eig[hessian]['error']}")
            continue
        eig[hessian] = {
            "value": float(est.value),
            "bound": float(est.bound),
            "krylov": est.krylov,
            "rounding": est.rounding,
            "operator": est.operator,
            "attack": est.attack,
            "exact_scale": est.exact_scale,
            "steps": est.steps,
            "seconds": time.perf_counter() - t0,
        }
        _progress(
            f"{tag}: λ_max {hessian} {float(est.value):.6g} ± {float(est.bound):.2g} "
            f"({eig[hessian]['seconds']:.1f} s)"
        )

    # ---- the products and the baseline
    Z = pt.X + pt.delta  # flat (n, d), as the engine holds it
    lf = pt.loss_fn  # the loss on flat inputs (advlip.attacks.InputShaped)
    yy = pt.y
    th = jnp.asarray(theta, dtype=dtype)

    def mean_loss(t, Z):
        return jnp.mean(jax.vmap(lf, in_axes=(None, 0, 0))(unravel(t), Z, yy))

    grad = jax.jit(jax.grad(mean_loss))

    @jax.jit
    def plain_hvp(t, Z, v):
        return jax.jvp(lambda s: jax.grad(mean_loss)(s, Z), (t,), (v,))[1]

    naive = pt.matvec(hessian="naive")
    total = pt.matvec(hessian="total")
    rng = advlip.keys.numpy_rng(k_vec)
    u, v = (jnp.asarray(rng.standard_normal(P).astype(dtype)) for _ in range(2))

    # ---- checks, before any timing
    _progress(f"{tag}: checks")
    un, vn = np.asarray(u, np.float64), np.asarray(v, np.float64)
    g = np.asarray(grad(th, Z), np.float64)
    g_danskin = np.asarray(ravel_pytree(pt.grad())[0], np.float64)
    g_err = np.asarray(pt.gradient_error(np.zeros(n)), np.float64)
    hv_naive = np.asarray(naive(v), np.float64)
    hv_plain = np.asarray(plain_hvp(th, Z, v), np.float64)
    hu_total = np.asarray(total(u), np.float64)
    hv_total = np.asarray(total(v), np.float64)
    vnorm, unorm = float(np.linalg.norm(vn)), float(np.linalg.norm(un))
    sym_mag = np.abs(un) @ np.abs(hv_total) + np.abs(vn) @ np.abs(hu_total)
    # the products' error bounds: pt.eigen_error(w).operator bounds ‖Ĥw − Hw‖/‖w‖ (the
    # rounding of the products, and for the total one the CG solves' residuals at w)
    op_naive = pt.eigen_error(v, hessian="naive").operator
    op_u, op_v = (pt.eigen_error(w, hessian="total") for w in (u, v))
    exact = pt.dim <= adversarial.FROBENIUS_MAX_P and op_u.exact and op_v.exact
    checks = [
        _check(
            "Danskin gradient vs jitted batch gradient (componentwise, worst diff / tol)",
            float(np.max(np.abs(g_danskin - g) / np.maximum(2 * g_err, np.finfo(dtype).tiny))),
            1.0,
            True,
            1.0,  # a ratio already: diff / tol per component
        ),
        _check(
            "naive matvec vs plain jvp(grad) (2-norm)",
            float(np.linalg.norm(hv_naive - hv_plain)),
            2 * op_naive * vnorm,
            pt.dim <= adversarial.FROBENIUS_MAX_P,
            float(np.linalg.norm(hv_plain)),
        ),
        _check(
            "total operator symmetry |u·Hv − v·Hu|",
            float(abs(un @ hv_total - vn @ hu_total)),
            # the two dot products run here in float64 over P terms
            (op_u.operator + op_v.operator) * unorm * vnorm
            + tolerance.gamma(P, np.float64) * sym_mag,
            exact,
            float(abs(un @ hv_total)),
        ),
    ]
    _, cg_converged = pt.cg_error(v)

    # ---- timings (medians after a warm-up call, block_until_ready)
    _progress(f"{tag}: timing")
    rep = args.repeat
    times = {
        "gradient": timeit(lambda: grad(th, Z), repeat=rep, min_time=0),
        "plain_hvp": timeit(lambda: plain_hvp(th, Z, v), repeat=rep, min_time=0),
        "naive_hvp": timeit(lambda: naive(v), repeat=rep, min_time=0),
        "total_hvp": timeit(lambda: total(v), repeat=rep, min_time=0),
    }
    _progress(
        f"{tag}: gradient {times['gradient'] * 1e3:.3g} ms; naive ×"
        f"{times['naive_hvp'] / times['gradient']:.2f}, total ×"
        f"{times['total_hvp'] / times['gradient']:.2f}"
    )
    return {
        "model": args.model,
        "params": P,
        "examples": n,
        "input_shape": list(shape),
        "d": d,
        "eps": args.eps,
        "p": args.p,
        "dtype": dtype.name,
        "data": source,
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "device_count": jax.device_count(),
        "jax_version": jax.__version__,
        "machine": platform.machine(),
        "device": common.device(),
        "attack_options": {k: v for k, v in opts.items() if k != "key"},
        "cg_maxiter": cg_maxiter,
        "init_s": t_init,
        "attack_s": t_attack,
        "linearize_s": t_linearize,
        "attack_converged": int(np.sum(np.asarray(att.converged))),
        "cases": pt.summary()["cases"],
        "undetermined_fraction": undetermined,
        "undetermined_reasons": reasons,
        "eigen": eig,
        "times_s": times,
        "total_cg_converged_at_v": cg_converged,
        "checks": checks,
        "checks_ok": all(c["ok"] for c in checks),
        "peak_rss_mb": _peak_rss_mb(),
        "wall_s": time.perf_counter() - t_start,
        "command": _command(args),
    }


def _command(args: argparse.Namespace) -> str:
    parts = ["python benchmarks/bench_resnet_curvature.py", f"--model {args.model}"]
    if args.data:
        parts.append(f"--data {args.data}")
    if args.size is not None:
        parts.append(f"--size {args.size}")
    parts += [f"--n {args.n}", f"--eps {args.eps:g}", f"--p {args.p:g}"]
    if args.dtype:
        parts.append(f"--dtype {args.dtype}")
    parts += [
        f"--steps {args.steps}",
        f"--attack-steps {args.attack_steps}",
        f"--refine-steps {args.refine_steps}",
        f"--newton-steps {args.newton_steps}",
        f"--cg-maxiter {args.cg_maxiter}",
        f"--seed {args.seed}",
        f"--repeat {args.repeat}",
    ]
    return " ".join(parts)


def _rows(m: dict) -> list[dict]:
    t, g = m["times_s"], m["times_s"]["gradient"]
    size = (
        f"{m['model']}, P = {m['params']:,}, n = {m['examples']}, d = {m['d']}, "
        f"L{m['p']:g} ε = {m['eps']:g}, {m['dtype']}, {m['platform']}:{m['device_kind']}"
    )
    base = {
        "params": m["params"],
        "examples": m["examples"],
        "dtype": m["dtype"],
        "platform": m["platform"],
        "device_kind": m["device_kind"],
        "gradient_s": g,
        "command": m["command"],
        "checks_ok": m["checks_ok"],
    }
    r_naive = t["naive_hvp"] / g
    rows = [
        entry(
            f"resnet curvature: gradient (baseline), {m['model']}",
            ratio=1.0, target=None, met=None,
            notes=f"{size}; {g * 1e3:.3g} ms; no target: the baseline (1×) of the other rows",
            **base,
        ),
        entry(
            f"resnet curvature: naive HVP / gradient, {m['model']}",
            ratio=r_naive, target=NAIVE_TARGET, met=r_naive <= NAIVE_TARGET, goal="≤",
            naive_hvp_s=t["naive_hvp"], notes=f"{size}; δ held fixed", **base,
        ),
        entry(
            f"resnet curvature: total HVP (CG) / gradient, {m['model']}",
            ratio=t["total_hvp"] / g, target=None, met=None, total_hvp_s=t["total_hvp"],
            cg_maxiter=m["cg_maxiter"], cg_converged=m["total_cg_converged_at_v"],
            notes=f"{size}; tangent CG ≤ {m['cg_maxiter']} iterations"
            f"{'' if m['total_cg_converged_at_v'] else ' (some solve hit the cap)'}; "
            "no target: its cost is set by the CG iterations",
            **base,
        ),
        entry(
            f"resnet curvature: plain JAX jvp(grad) HVP / gradient, {m['model']}",
            ratio=t["plain_hvp"] / g, target=None, met=None, plain_hvp_s=t["plain_hvp"],
            notes=f"{size}; no target: a reference for the naive HVP", **base,
        ),
        entry(
            f"resnet curvature: certified attack / gradient, {m['model']}",
            ratio=m["attack_s"] / g, target=None, met=None, attack_s=m["attack_s"],
            linearize_s=m["linearize_s"],
            notes=f"{size}; {m['attack_s']:.1f} s once, compilation included; "
            f"{m['attack_converged']}/{m['examples']} converged; no target: timed once",
            **base,
        ),
        _eigen_row(m, size, base),
        entry(
            f"resnet curvature: undetermined fraction, {m['model']}",
            ratio=m["undetermined_fraction"], target=None, met=None,
            reasons=m["undetermined_reasons"], cases=m["cases"],
            notes=f"{size}; " + (
                "; ".join(f"{c}× {r}" for r, c in m["undetermined_reasons"].items()) or "all determined"
            ) + "; no target: a property of the model and data",
            **base,
        ),
    ]  # fmt: skip
    return rows


def _lam(e: dict, spec: str = ".6g") -> str:
    if e.get("value") is None:
        return "not computed"
    return f"{e['value']:{spec}} ± {e['bound']:.2g}"


def _eigen_row(m: dict, size: str, base: dict) -> dict:
    et, en = m["eigen"]["total"], m["eigen"]["naive"]
    name = f"resnet curvature: λ_max total / naive, {m['model']}"
    common_fields = dict(
        lambda_total=et["value"], lambda_total_bound=et["bound"],
        lambda_naive=en["value"], lambda_naive_bound=en["bound"],
    )  # fmt: skip
    if et["value"] is None or en["value"] is None:
        why = et.get("error") or en.get("error")
        return entry(
            name, ratio=None, target=None, met=None, **common_fields,
            notes=f"{size}; total {_lam(et)}, naive {_lam(en)}: {why}; no target: a "
            "measurement of the model", **base,
        )  # fmt: skip
    return entry(
        name, ratio=et["value"] / en["value"] if en["value"] != 0 else None, target=None,
        met=None, exact_scale=et["exact_scale"] and en["exact_scale"], **common_fields,
        notes=f"{size}; total {_lam(et)}, naive {_lam(en)} ({et['steps']} Lanczos steps"
        f"{'' if et['exact_scale'] else '; bounds are estimates'}); no target: a measurement "
        "of the model",
        **base,
    )  # fmt: skip


def table(m: dict) -> str:
    t, g = m["times_s"], m["times_s"]["gradient"]
    et, en = m["eigen"]["total"], m["eigen"]["naive"]
    head = (
        "| model | P | n | dtype | grad ms | naive × | total × | plain × | attack s "
        "| λ_max total ± bound | λ_max naive ± bound | undetermined | checks |"
    )
    line = (
        f"| {m['model']} | {m['params']:,} | {m['examples']} | {m['dtype']} | {g * 1e3:.3g} "
        f"| {t['naive_hvp'] / g:.2f} | {t['total_hvp'] / g:.2f} | {t['plain_hvp'] / g:.2f} "
        f"| {m['attack_s']:.1f} | {_lam(et, '.5g')} | {_lam(en, '.5g')} "
        f"| {m['undetermined_fraction']:.0%} "
        f"| {'ok' if m['checks_ok'] else '**FAILED**'} |"
    )
    return "\n".join([head, "|" + "---|" * head.count(" | ") + "---|", line])


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=MODELS, default="resnet18")
    ap.add_argument(
        "--data", help="a CIFAR-10 folder (python or binary release); default synthetic"
    )
    ap.add_argument("--size", type=int, help="synthetic images SIZE×SIZE×3 (default 32)")
    ap.add_argument("--n", type=int, help="examples (batch), default 8")
    ap.add_argument("--eps", type=float, default=0.5, help="attack radius, default 0.5")
    ap.add_argument("--p", type=float, default=2.0, help="norm: 1, 2 or inf (default 2)")
    ap.add_argument(
        "--dtype", choices=("float32", "float64"),
        help="default float32 on an accelerator, float64 on CPU",
    )  # fmt: skip
    ap.add_argument("--steps", type=int, default=20, help="Lanczos steps (default 20)")
    ap.add_argument("--attack-steps", type=int, default=40, help="PGD phase 1 (default 40)")
    ap.add_argument("--refine-steps", type=int, default=60, help="PGD phase 2 (default 60)")
    ap.add_argument("--newton-steps", type=int, default=6, help="PGD phase 3 (default 6)")
    ap.add_argument(
        "--cg-maxiter", type=int, default=200,
        help="CG iterations per tangent solve, attack and products (default 200, at most 2d+5)",
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=0, help="PRNGKey of data, init and attack")
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats (median)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--quick", action="store_true", help="cnn, n = 4, 4×4×3 images, short attack")
    return ap


def _parse(argv=None) -> argparse.Namespace:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.quick:  # fills what was not given
        args.model, args.n, args.size = "cnn", args.n or 4, args.size or 4
        args.attack_steps, args.refine_steps, args.newton_steps = 20, 20, 4
        args.steps = min(args.steps, 10)
        args.repeat = min(args.repeat, 2)
    args.n = 8 if args.n is None else args.n
    for name in ("n", "steps", "cg_maxiter", "repeat"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("attack_steps", "refine_steps", "newton_steps"):
        if getattr(args, name) < 0:
            ap.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.size is not None and args.size < 1:
        ap.error("--size must be >= 1")
    return args


def run(quick: bool) -> list[dict]:
    """The ``run_all`` entry: ``--quick`` settings, or ResNet-18 at n = 8 on an
    accelerator and the small ``resnet`` at n = 8 on CPU (ResNet-18 takes many minutes
    on two cores)."""
    if quick:
        return _rows(measure(_parse(["--quick"])))
    model = "resnet" if jax.devices()[0].platform == "cpu" else "resnet18"
    return _rows(measure(_parse(["--model", model])))


def main(argv=None) -> int:
    args = _parse(argv)
    m = measure(args)
    rows = _rows(m)
    print(f"Device: {m['device']} ({m['device_kind']}, {m['dtype']})\n\n{table(m)}\n")
    print(common.markdown(rows))
    print(f"\nReplay: {m['command']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        doc = {"benchmarks": rows, "device": m["device"], "command": m["command"], "run": m}
        Path(args.json).write_text(json.dumps(doc, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
