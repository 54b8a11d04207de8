"""Run Python in a fresh interpreter, as a user's process starts: the suite's own JAX
settings (conftest.py turns float64 on) do not carry over, and no compilation cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(
    args: list[str], *, x64: bool = False, user_xla: bool = False, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python ARGS`` from the repository root. ``x64``: with ``JAX_ENABLE_X64=1``
    (else float64 is off, JAX's default). ``user_xla``: without the suite's
    ``--xla_backend_optimization_level=0``, i.e. XLA's default code generation."""
    env = dict(os.environ)
    env.pop("JAX_ENABLE_X64", None)
    if x64:
        env["JAX_ENABLE_X64"] = "1"
    if user_xla:
        flags = [
            f for f in env.get("XLA_FLAGS", "").split() if "xla_backend_optimization_level" not in f
        ]
        if flags:
            env["XLA_FLAGS"] = " ".join(flags)
        else:
            env.pop("XLA_FLAGS", None)
    env["ADVLIP_CACHE_DIR"] = "off"
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
