"""advlip: check, symbolically and numerically, how smooth the loss of adversarial training is.

Implements the analysis of Kanai et al., *Smoothness Analysis of Loss Functions of
Adversarial Training* (arXiv 2103.01400).

Precision: importing advlip changes no JAX setting. Every function computes in the
dtype of the arrays it is given and derives its error bounds from that dtype's unit
roundoff (:mod:`advlip.tolerance`), so float32 parameters get float32-sized bounds.
For float64 — what the built-in checks use — turn on JAX's float64 mode yourself
(``jax.config.update("jax_enable_x64", True)``, or ``with jax.enable_x64(True):``);
without it JAX stores float64 NumPy input as float32. The built-in checks
(:mod:`advlip.theorems`), the experiments and the ``advlip`` command turn float64
on for their own run only.

Submodules, each owning one idea:

* :mod:`advlip.norms` — dual exponents, Lp norms, dual directions, Lp-ball projections
* :mod:`advlip.losses` — margin losses and their curvature constants
* :mod:`advlip.linear` — the closed-form adversarial loss of linear models (docs/theory/closed-form.md)
* :mod:`advlip.symbolic` — the same in SymPy, and the bounds as expressions
* :mod:`advlip.attacks` — PGD for any per-example loss, with KKT diagnostics
* :mod:`advlip.adversarial` — adversarial loss, Danskin gradient, total HVP/Hessian (docs/theory/general-models.md)
* :mod:`advlip.spectral` — conjugate gradients, power iteration, Lanczos
* :mod:`advlip.models` — small reference models as pure functions of pytrees; the
  classifier loss on logits and the adapters from equinox, flax and PyTorch
  (:mod:`advlip.adapters`, :mod:`advlip.torch_convert`)
* :mod:`advlip.networks` — reference image classifiers: a small CNN, ResNets, ResNet-18
* :mod:`advlip.spectrum` — top-k eigenvalues, Hutch++ traces, SLQ densities of any HVP
* :mod:`advlip.curvature` — total vs naive curvature of a network in one call
  (the ``advlip curvature`` command)
* :mod:`advlip.apgd` — APGD and PGD on logits, robust accuracy under the strongest
* :mod:`advlip.smoothness` — gradient ratios, worst-pair search, growth exponents
* :mod:`advlip.falsifier`, :mod:`advlip.regions` — refute a smoothness claim, with a witness
* :mod:`advlip.entropy`, :mod:`advlip.entropy_sgd` — local entropy F_γ and EntropySGD (docs/theory/entropy-smooth.md)
* :mod:`advlip.theorems` — the registry of checked results (docs/theory/index.md) and their checks
* :mod:`advlip.strategies` — Hypothesis strategies for your own property tests
* :mod:`advlip.training`, :mod:`advlip.experiments`, :mod:`advlip.plots` — optax adversarial
  training, the experiments and their pictures (import them explicitly; plots need matplotlib);
  :mod:`advlip.curvature_table`, :mod:`advlip.robust_training` — the two experiments on CNNs
* :mod:`advlip.data`, :mod:`advlip.sharding` — datasets (bundled, CIFAR-10 and MNIST from a
  folder, no downloads); batch axes over every device
* :mod:`advlip.report` — tables and JSON; :mod:`advlip.cli` — the ``advlip`` command
"""

from importlib.metadata import PackageNotFoundError, version

from advlip import linear, losses, norms, regions, symbolic, tolerance
from advlip.falsifier import falsify, falsify_smoothness

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
