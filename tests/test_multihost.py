"""advlip.distributed on JAX's multi-process runtime: two processes equal one.

Two Python processes on localhost (CPU, gloo collectives) call
``jax.distributed.initialize``, each attacks its own half of the rows, and the loss, the
gradient, total and naive Hessian-vector products, the top eigenvalues of the total
Hessian and a Hutchinson trace are reduced across them by JAX collectives. The test
computes the same quantities in this process over all rows with the single-process
engine (:func:`advlip.streaming.linearize_batches`, same batches) and asserts agreement
to float64 error:

* products: componentwise within the sum of both sides' ``hvp_error`` bounds (the two
  sums run in different orders; each bound covers its side's rounding and attack error);
* eigenvalues: within the sum of both sides' eigenvalue bounds (each bound covers the
  distance from its Ritz value to an eigenvalue of the exact operator);
* loss and gradient: within the sum of both sides' rounding, γ_{n+4} of the sum of
  absolute terms (n per-example terms, the weights and the sum over processes);
* Hutchinson trace with the same probes: the trace estimate is linear in the products,
  so within Σ_j |v_j|·e_j over the probes (e_j both sides' product bounds), averaged.

Both processes must print identical numbers (every process runs the same reductions),
and each process must have attacked different rows (a test that handed both processes
every row would otherwise pass).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from advlip import data, models, streaming, tolerance

ROOT = Path(__file__).resolve().parents[1]
N, BATCH, HIDDEN, EPS, P_NORM, K, PROBES = 16, 4, (6,), 0.05, 2.0, 2, 6

TRACE_ERROR = r'''
def trace_error(pt, key, m):
    """(1/m) Σ_j Σ_i (e_ji + γ_{P+2}(|h_ji| + e_ji)) over the Hutchinson probes v_j of
    advlip.spectrum (Rademacher, from the second half of ``key``): the estimate is
    (1/m) Σ_j v_j·(A v_j), so an error e_j in the product A v_j moves it by at most
    |v_j|·e_j = Σ_i e_ji, and each n-term dot product adds γ_{P+2}·Σ_i |h_ji| of rounding."""
    import jax, numpy as np
    from advlip import tolerance
    _, k_probe = jax.random.split(key)
    G = np.asarray(jax.random.rademacher(k_probe, (m, pt.dim), dtype=jax.numpy.int8), float)
    g = tolerance.gamma(pt.dim + 2, np.float64)
    total = 0.0
    for v in G:
        e = np.asarray(pt.hvp_error(v), float)
        h = np.abs(np.asarray(pt.total_hvp(v), float))
        total += float(np.sum(e + g * (h + e)))
    return total / m
'''

exec(TRACE_ERROR)

WORKER = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
port, pid, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)
from jax.flatten_util import ravel_pytree
from advlip import data, distributed, models
N, BATCH, HIDDEN, EPS, P_NORM, K, PROBES = {consts}
X, y = data.digits((3, 8))
X, y = X[:N], y[:N]
params = models.init_mlp(jax.random.PRNGKey(0), X.shape[1], HIDDEN)
rows = distributed.process_rows(N)
pt = distributed.linearize(models.MLPLoss(), params, X[rows], y[rows], eps=EPS, p=P_NORM,
                           batch_size=BATCH, progress=False)
v = jax.random.normal(jax.random.PRNGKey(1), (pt.dim,))
top = pt.top_eigenvalues(K, hessian="total", key=jax.random.PRNGKey(2))
tr = pt.trace(hessian="total", num_samples=PROBES, key=jax.random.PRNGKey(3), method="hutchinson")
res = dict(
    rows=[rows.start, rows.stop], processes=jax.process_count(), n=pt.n,
    loss=float(pt.loss()), grad=np.asarray(ravel_pytree(pt.grad())[0]).tolist(),
    total=np.asarray(pt.total_hvp(v)).tolist(), naive=np.asarray(pt.naive_hvp(v)).tolist(),
    total_err=np.asarray(pt.hvp_error(v)).tolist(),
    naive_err=np.asarray(pt.hvp_error(v, hessian="naive")).tolist(),
    top=np.asarray(top.values).tolist(), top_bounds=np.asarray(top.bounds).tolist(),
    trace=float(tr.estimate), cases=pt.summary()["cases"],
    trace_err=trace_error(pt, jax.random.PRNGKey(3), PROBES),
)
json.dump(res, open(out, "w"))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multihost")
    port = _free_port()
    consts = repr((N, BATCH, HIDDEN, EPS, P_NORM, K, PROBES))
    script = TRACE_ERROR + WORKER.replace("{consts}", consts)
    env = {k: v for k, v in __import__("os").environ.items() if k != "JAX_ENABLE_X64"}
    env["ADVLIP_CACHE_DIR"] = "off"
    env["JAX_PLATFORMS"] = "cpu"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(port), str(i), str(tmp / f"p{i}.json")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"process {i} failed:\n{outs[i][-4000:]}"
    return [json.loads((tmp / f"p{i}.json").read_text()) for i in range(2)]


@pytest.fixture(scope="module")
def one_process():
    X, y = data.digits((3, 8))
    X, y = X[:N], y[:N]
    params = models.init_mlp(jax.random.PRNGKey(0), X.shape[1], HIDDEN)
    pt = streaming.linearize_batches(
        models.MLPLoss(), params, X, y, eps=EPS, p=P_NORM, batch_size=BATCH, progress=False
    )
    v = jax.random.normal(jax.random.PRNGKey(1), (pt.dim,))
    return pt, v


def test_each_process_attacked_its_own_rows(two_processes):
    a, b = two_processes
    assert a["processes"] == b["processes"] == 2 and a["n"] == b["n"] == N
    assert a["rows"] == [0, N // 2] and b["rows"] == [N // 2, N]


def test_every_process_reports_the_same_numbers(two_processes):
    a, b = two_processes
    for key in ("loss", "grad", "total", "naive", "top", "trace", "cases"):
        assert a[key] == b[key], key  # the same reductions, in the same order, everywhere


def test_products_equal_the_single_process_ones(two_processes, one_process):
    got = two_processes[0]
    pt, v = one_process
    for hessian, fn in (("total", pt.total_hvp), ("naive", pt.naive_hvp)):
        ref = np.asarray(fn(v))
        bound = np.asarray(got[f"{hessian}_err"]) + np.asarray(pt.hvp_error(v, hessian=hessian))
        diff = np.abs(np.asarray(got[hessian]) - ref)
        assert np.all(diff <= bound), (hessian, float(np.max(diff / bound)))
        # and the reduction is not vacuous: one process's half alone is far off
        assert np.max(np.abs(ref)) > 1e3 * np.max(bound)


def test_top_eigenvalues_equal_the_single_process_ones(two_processes, one_process):
    got = two_processes[0]
    pt, _ = one_process
    ref = pt.top_eigenvalues(K, hessian="total", key=jax.random.PRNGKey(2))
    diff = np.abs(np.asarray(got["top"]) - np.asarray(ref.values))
    assert np.all(diff <= np.asarray(got["top_bounds"]) + np.asarray(ref.bounds)), diff


def test_loss_gradient_and_trace_equal_the_single_process_ones(two_processes, one_process):
    got = two_processes[0]
    pt, _ = one_process
    g = tolerance.gamma(N + 4, np.float64)
    loss = float(pt.loss())
    assert abs(got["loss"] - loss) <= 2 * g * abs(loss)  # softplus terms are positive
    from jax.flatten_util import ravel_pytree

    ref = np.asarray(ravel_pytree(pt.grad())[0])
    err = np.asarray(pt.gradient_error())
    assert np.all(np.abs(np.asarray(got["grad"]) - ref) <= 2 * err + 2 * g * np.abs(ref))
    tr = pt.trace(
        hessian="total", num_samples=PROBES, key=jax.random.PRNGKey(3), method="hutchinson"
    )
    # the same probes on both sides (same key): the two estimates differ by the products'
    # errors along the probes, bounded on each side by trace_error (see there)
    bound = got["trace_err"] + trace_error(pt, jax.random.PRNGKey(3), PROBES)  # noqa: F821
    assert abs(got["trace"] - float(tr.estimate)) <= bound
