"""Importing advlip leaves a user's JAX settings alone; the checks scope float64 to themselves.

A user's float32 training code must not change behaviour because it imported advlip
(JAX's float64 switch is process-wide: it changes the dtype of ``jnp.zeros``,
``jax.random.normal`` and every Python scalar). These run in fresh interpreters,
because the test suite itself turns float64 on in conftest.py.
"""

from __future__ import annotations

import textwrap

from fresh import run_python


def _run(code: str):
    return run_python(["-c", textwrap.dedent(code)])


def test_import_changes_no_jax_setting():
    proc = _run(
        """
        import jax, jax.numpy as jnp
        before = (jax.config.jax_enable_x64, jnp.zeros(1).dtype, jax.random.normal(jax.random.key(0)).dtype)
        import advlip, advlip.adversarial, advlip.attacks, advlip.theorems, advlip.cli
        after = (jax.config.jax_enable_x64, jnp.zeros(1).dtype, jax.random.normal(jax.random.key(0)).dtype)
        assert before == after == (False, jnp.float32, jnp.float32), (before, after)
        print("ok")
        """
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_a_check_runs_in_float64_and_restores_the_setting():
    # LIN-L2's tolerances are derived for float64; run from a float32 session it must
    # still hold (it computes in float64 inside) and leave the session in float32.
    proc = _run(
        """
        import jax, jax.numpy as jnp
        from advlip import theorems
        r = theorems.get("LIN-L2").check(theorems.CheckConfig(quick=True))
        assert r.verdict == "holds", (r.verdict, r.figure, r.reason)
        assert not jax.config.jax_enable_x64 and jnp.zeros(1).dtype == jnp.float32
        print("ok")
        """
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
