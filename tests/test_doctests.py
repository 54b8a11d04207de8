"""Every docstring example runs as a user would run it.

The rest of the suite runs with the XLA flag ``--xla_backend_optimization_level=0``
(conftest.py) and with JAX's float64 mode on. A user has neither: XLA's default code
generation can change the last bits of a result (3.0 vs 2.9999999999999996), and
without float64 mode JAX computes in float32. So each module's examples run here in a
fresh interpreter with the flag stripped from ``XLA_FLAGS``, twice: once as JAX starts
(float32), once with ``JAX_ENABLE_X64=1`` (what the README advises for float64). An
example passes only if what it prints is what a user sees either way. Examples that
need float64 say so in their first line (``jax.config.update("jax_enable_x64", True)``).
"""

from __future__ import annotations

import pkgutil

import pytest
from fresh import run_python

import advlip

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(advlip.__path__, prefix="advlip.")
    if m.name not in {"advlip.__main__"}
)

# Examples that import an optional package (the torch adapter) run where it is installed
# and are skipped, by name, where it is not: CI installs the test extras only.
_RUNNER = """
import doctest, importlib, importlib.util, sys
mod = importlib.import_module(sys.argv[1])
missing = [m for m in ("torch", "flax") if importlib.util.find_spec(m) is None]
flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
runner = doctest.DocTestRunner(optionflags=flags)
skipped = []
for test in doctest.DocTestFinder().find(mod, mod.__name__):
    src = "".join(ex.source for ex in test.examples)
    if any(f"import {m}" in src or f"from {m}" in src for m in missing):
        skipped.append(test.name)
        continue
    runner.run(test)
res = runner.summarize(verbose=False)
print(f"{res.attempted} examples, {res.failed} failed; skipped (package missing): {skipped}")
sys.exit(1 if res.failed else 0)
"""


def test_every_module_is_listed():
    # the walk found the package's modules (a broken walk would make this file vacuous)
    assert {"advlip.attacks", "advlip.falsifier", "advlip.smoothness"} <= set(MODULES)


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "x64"])
@pytest.mark.parametrize("module", MODULES)
def test_doctests_as_a_user_runs_them(module, x64):
    proc = run_python(["-c", _RUNNER, module], x64=x64, user_xla=True)
    assert proc.returncode == 0, f"{module}: doctests failed\n{proc.stdout}\n{proc.stderr}"
