"""Strict test environment: float64, and Hypothesis profiles chosen by environment.

The suite verifies in float64, so it turns JAX's float64 mode on itself (importing
advlip changes no JAX setting; tests/test_doctests.py runs the docstring examples
without this switch and without the XLA flag below, as a user gets them).

Profiles:
  * ``ci`` — derandomized and bounded, selected automatically when ``CI=true``;
  * ``dev`` — the default locally: random, moderate;
  * ``thorough`` — many examples; select with ``HYPOTHESIS_PROFILE=thorough``.

JAX compiles a function on its first call, so the first Hypothesis example of a
test can take seconds: deadlines are off in every profile (a deadline would
measure compilation, not the property).
"""

import os

# Tests run hundreds of small programs: XLA's quickest code generation keeps CI's
# compile time down (the same switch `advlip verify` uses; see advlip.cli._fast_compile).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import jax  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import advlip  # noqa: E402,F401

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", derandomize=True, max_examples=25, print_blob=True, **_common)
settings.register_profile("dev", max_examples=40, **_common)
settings.register_profile("thorough", max_examples=500, **_common)

_default = "ci" if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_persistent_compilation_cache(monkeypatch):
    # advlip.cli.main turns XLA's persistent cache on (under ~/.cache) for the rest of the
    # process; a test calling it would leave every later test of that worker reading and
    # writing entries made by other runs with other flags. Tests write only in tmp_path.
    monkeypatch.setenv("ADVLIP_CACHE_DIR", "off")
