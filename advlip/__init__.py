"""advlip: check, symbolically and numerically, how smooth the loss of adversarial training is.

Implements the analysis of Kanai et al., *Smoothness Analysis of Loss Functions of
Adversarial Training* (arXiv 2103.01400). Importing advlip turns on JAX's float64
mode (``jax_enable_x64``): every check is derived for float64 error, and float32
would make the tolerances meaningless.

Submodules, each owning one idea:

* :mod:`advlip.norms` — dual exponents, Lp norms, dual directions, Lp-ball projections
* :mod:`advlip.losses` — margin losses and their curvature constants
* :mod:`advlip.linear` — the closed-form adversarial loss of linear models (SPEC §2)
* :mod:`advlip.symbolic` — the same in SymPy, and the bounds as expressions
* :mod:`advlip.smoothness` — gradient ratios, worst-pair search, growth exponents
* :mod:`advlip.theorems` — the registry of SPEC results and their checks
* :mod:`advlip.strategies` — Hypothesis strategies for your own property tests
* :mod:`advlip.report` — tables and JSON; :mod:`advlip.cli` — the ``advlip`` command
"""

from importlib.metadata import PackageNotFoundError, version

import jax

jax.config.update("jax_enable_x64", True)

from advlip import linear, losses, norms, regions, symbolic, tolerance  # noqa: E402
from advlip.falsifier import falsify, falsify_smoothness  # noqa: E402

try:
    __version__ = version("advlip")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "falsify",
    "falsify_smoothness",
    "linear",
    "losses",
    "norms",
    "regions",
    "symbolic",
    "tolerance",
    "__version__",
]
