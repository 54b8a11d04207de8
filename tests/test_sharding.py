"""Sweeps shard over several devices and give the same numbers as one device.

JAX fixes its device count at start-up, so the 4-device run is a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (4 CPU "devices").
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from advlip import sharding

SCRIPT = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
import advlip
from advlip import data, smoothness
from advlip.linear import LinearProblem
X, y = data.synthetic(jax.random.PRNGKey(0), n=12, d=5)
prob = LinearProblem(X=X, y=y, eps=0.5, p=2.0)
t1, t2 = smoothness.sample_pairs(np.random.default_rng(0), 1001, 5)   # 1001: not a multiple of 4
r_one = smoothness.pair_ratios(prob.grad, t1, t2, shard=False)[0]
r_all = smoothness.pair_ratios(prob.grad, t1, t2)                      # default: shard when > 1 device
# float64 error of each ratio (advlip.tolerance.ratio_error): both runs carry it
from advlip import tolerance
ge = jax.vmap(prob.grad_error_bound)
dt = jnp.linalg.norm(t1 - t2, axis=1)
err = 2 * (ge(t1) + ge(t2)) / dt + tolerance.gamma(8) * r_one
from advlip import sharding
(a, b), n = sharding.shard_rows(t1, t2)
from advlip.theorems import linear as TL
from advlip.theorems.base import CheckConfig
linf = TL.check_lin_linf(CheckConfig(seed=0, quick=True))   # its pair scan is sharded
print(json.dumps({
    "verify_linf": linf.verdict,
    "devices": jax.device_count(),
    "placed_on": len(a.sharding.device_set),
    "rows": n, "padded_rows": int(a.shape[0]),
    "max_abs_diff": float(jnp.max(jnp.abs(r_all[0] - r_one))),
    "max_diff_over_error": float(jnp.max(jnp.abs(r_all[0] - r_one) / (2 * err))),
    "max_R": float(jnp.max(r_one)),
    "shape": list(r_all[0].shape),
}))
"""


def test_four_cpu_devices_give_the_same_ratios():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    env["PYTHONPATH"] = (
        str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    )
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["devices"] == 4 and doc["placed_on"] == 4
    assert doc["verify_linf"] == "holds"  # a check whose pair scan ran on 4 devices
    assert doc["rows"] == 1001 and doc["padded_rows"] == 1004 and doc["shape"] == [1001]
    # XLA may fuse the sharded program differently, so rounding may differ — but never by
    # more than the float64 error bound of the ratio that both runs carry.
    assert doc["max_diff_over_error"] <= 1.0


def test_one_device_is_a_no_op():
    (a,), n = sharding.shard_rows(jnp.arange(6.0).reshape(3, 2))
    assert n == 3 and a.shape == (3, 2)
    np.testing.assert_array_equal(np.asarray(sharding.unpad(a, n)), np.arange(6.0).reshape(3, 2))
