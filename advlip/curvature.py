r"""The curvature of a network's adversarial loss, total beside naive, in one call.

:func:`measure` attacks every example of ``X`` (in batches when asked), then reads the
spectrum of both Hessians of the adversarial loss at θ:

* the **total** Hessian counts the attack's dependence on θ (the maximiser δ*(θ) moves
  with θ, by the implicit function theorem);
* the **naive** Hessian holds δ* fixed — what Liu et al. (2020) and most empirical
  curvature studies of adversarial training measure.

It reports the top-k eigenvalues of each (each with its error bound), optionally their
traces (Hutch++ with a standard error) and spectral densities (stochastic Lanczos
quadrature), and the fraction of examples whose total Hessian is not determined, with
the reason of each (an attack that did not converge, a switching surface, a tie…). The
command ``advlip curvature`` is this function behind a command line.

:func:`resolve_model` turns what a user's factory returns — an equinox module, a flax
nnx module, a (linen module, variables) pair, a PyTorch module, or a ready
``(params, loss_fn)`` — into ``(params, loss_fn)`` with the adapters of
:mod:`advlip.models`.

The theory behind both Hessians — the maximiser δ*(θ), H_θθ, H_xx, H_xθ and the KKT
cases — is docs/theory/general-models.md; the example of :func:`measure` shows a call.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from typing import Any

import jax
import numpy as np

from advlip import keys
from advlip._validate import check_positive_int

__all__ = ["CurvatureResult", "measure", "resolve_model", "channels_first", "HESSIANS"]

#: The two operators every measurement reports.
HESSIANS = ("total", "naive")


@dataclasses.dataclass(frozen=True)
class CurvatureResult:
    """What :func:`measure` found; :meth:`table` renders it, :meth:`to_json` serialises it.

    Attributes:
        total: top-k eigenvalues of the total Hessian
            (:meth:`advlip.adversarial.AdversarialPoint.top_eigenvalues`).
        naive: the same for the naive Hessian (the maximiser held fixed).
        traces: ``{"total": trace result, "naive": ...}`` or empty.
        densities: ``{"total": density, "naive": ...}`` or empty.
        n: the number of examples.
        dim: the number of parameters.
        eps: the radius of the ball.
        p: the norm of the ball.
        undetermined_fraction: examples whose total Hessian is not determined, over n.
        reasons: ``{reason: count}`` over the undetermined examples.
        cases: the KKT cases of the maximisers (``interior``, ``l2_boundary``, …) with
            counts (docs/theory/general-models.md).
        seconds: wall time of the attack and of each operator's spectrum.
        dtype: the working dtype.

    Example:
        >>> import numpy as np
        >>> from advlip import curvature
        >>> from advlip.spectrum import TopEigenvalues
        >>> def top(value, bound):
        ...     a = np.array([value]); z = np.zeros(1)
        ...     return TopEigenvalues(a, None, z, np.array([bound]), None, 10, z, z, z)
        >>> res = curvature.CurvatureResult(
        ...     total=top(0.52, 1e-9), naive=top(0.31, 1e-9), traces={}, densities={}, n=64,
        ...     dim=120, eps=0.1, p=2.0, undetermined_fraction=0.0, reasons={},
        ...     cases={"l2_boundary": 64}, seconds={}, dtype="float64")
        >>> print(res.table(width=72))
               total           naive
        -----  --------------  --------------
        λ_max  0.52 (≤ 1e-09)  0.31 (≤ 1e-09)
        <BLANKLINE>
        n = 64 examples, P = 120 parameters, L2 ball ε = 0.1, float64;
            bounds after ≤, standard errors after ±
        maximisers (KKT cases, docs/theory/general-models.md): l2_boundary 64
        undetermined: 0.0% of examples
    """

    total: Any
    naive: Any
    traces: dict
    densities: dict
    n: int
    dim: int
    eps: float
    p: float
    undetermined_fraction: float
    reasons: dict
    cases: dict
    seconds: dict
    dtype: str

    def table(self, *, width: int | None = None) -> str:
        """A readable table, total beside naive, that fits ``width`` columns.

        Rendered by :func:`advlip.report.text_table` (no number is ever cut); the lines
        below it (sizes, maximiser cases, undetermined examples) wrap at word boundaries.
        The cases are the KKT cases of docs/theory/general-models.md.

        Args:
            width: the most columns a line may take; ``None``: the terminal's width
                (``COLUMNS`` if set, else 100 when the output is not a terminal).

        Returns:
            The table as text.

        Example:
            >>> import numpy as np
            >>> from advlip import curvature
            >>> from advlip.spectrum import TopEigenvalues
            >>> z = np.zeros(1)
            >>> top = TopEigenvalues(np.array([0.5]), None, z, np.array([2e-9]), None, 9, z, z, z)
            >>> res = curvature.CurvatureResult(
            ...     total=top, naive=top, traces={}, densities={}, n=8, dim=30, eps=0.1,
            ...     p=float("inf"), undetermined_fraction=0.25, reasons={"tie": 2},
            ...     cases={"linf_vertex": 6}, seconds={}, dtype="float32")
            >>> text = res.table(width=40)
            >>> print(text.splitlines()[-1])
            undetermined: 25.0% of examples — 2× tie
            >>> max(len(line) for line in text.splitlines()) <= 40
            True
        """
        from advlip import report

        width = report._check_width(width)
        rows = []
        k = len(np.atleast_1d(self.total.values))
        for i in range(k):
            name = "λ_max" if i == 0 else f"λ_{i + 1}"
            rows.append(
                (
                    name,
                    _pm(self.total.values[i], self.total.bounds[i]),
                    _pm(self.naive.values[i], self.naive.bounds[i]),
                )
            )
        if self.traces:
            rows.append(
                (
                    "trace",
                    _pm(self.traces["total"].estimate, self.traces["total"].standard_error, "±"),
                    _pm(self.traces["naive"].estimate, self.traces["naive"].standard_error, "±"),
                )
            )
        out = [report.text_table(("", "total", "naive"), rows, wrap=(1, 2), width=width)]
        p = "inf" if math.isinf(self.p) else f"{self.p:g}"
        out.append("")
        notes = [
            f"n = {self.n} examples, P = {self.dim} parameters, L{p} ball ε = {self.eps:g}, "
            f"{self.dtype}; bounds after ≤, standard errors after ±",
            "maximisers (KKT cases, docs/theory/general-models.md): "
            + ", ".join(f"{c} {m}" for c, m in sorted(self.cases.items())),
            f"undetermined: {self.undetermined_fraction:.1%} of examples"
            + (
                ""
                if not self.reasons
                else " — "
                + "; ".join(
                    f"{m}× {r}" for r, m in sorted(self.reasons.items(), key=lambda t: -t[1])
                )
            ),
        ]
        out += [report.wrap_paragraph(n, width=width, first="", indent="    ") for n in notes]
        return "\n".join(out)

    def to_json(self) -> dict:
        """Every figure as plain JSON types (NaN/inf as strings)."""
        from advlip.training import json_safe

        def spec(res):
            return {
                "values": np.asarray(res.values).tolist(),
                "bounds": np.asarray(res.bounds).tolist(),
                "residuals": np.asarray(res.residuals).tolist(),
                "steps": int(res.steps),
            }

        doc = {
            "n": self.n,
            "dim": self.dim,
            "eps": self.eps,
            "p": self.p,
            "dtype": self.dtype,
            "total": spec(self.total),
            "naive": spec(self.naive),
            "undetermined_fraction": self.undetermined_fraction,
            "reasons": self.reasons,
            "cases": self.cases,
            "seconds": self.seconds,
        }
        if self.traces:
            doc["trace"] = {
                h: {"estimate": float(t.estimate), "standard_error": float(t.standard_error)}
                for h, t in self.traces.items()
            }
        if self.densities:
            doc["density"] = {h: _density_json(d) for h, d in self.densities.items()}
        return json_safe(doc)


def _density_json(d: Any) -> dict:
    out = {}
    for f in getattr(d, "_fields", None) or [f.name for f in dataclasses.fields(d)]:
        val = getattr(d, f)
        out[f] = np.asarray(val).tolist() if hasattr(val, "shape") else val
    return out


def _pm(value: Any, err: Any, sign: str = "≤") -> str:
    return f"{float(value):.6g} ({sign} {float(err):.2g})"


def _reason_class(reason: str) -> str:
    """The first clause of a per-example reason: counts group by it."""
    return reason.split(":")[0].split(" (")[0].strip()


def measure(
    loss_fn: Any,
    params: Any,
    X: Any,
    y: Any,
    *,
    eps: float,
    p: float,
    k: int = 1,
    trace: bool = False,
    density: bool = False,
    num_samples: int = 30,
    batch_size: int | None = None,
    layer: Any = None,
    key: jax.Array | None = None,
    progress: bool = True,
    **attack_options: Any,
) -> CurvatureResult:
    """Total and naive curvature of the adversarial loss of ``loss_fn`` at ``params``.

    The total Hessian counts how the maximiser δ*(θ) moves with θ; the naive one holds
    it fixed (docs/theory/general-models.md).

    Args:
        loss_fn: the loss of one example, ``loss_fn(params, x, y)``
            (e.g. :class:`advlip.models.ClassifierLoss`).
        params: the parameters θ (a pytree).
        X: the inputs, shape (n, …); may be images.
        y: int classes, or ±1 for one logit.
        eps: the radius of the attack's ball.
        p: the norm of the ball.
        k: top-k eigenvalues of each Hessian.
        trace: also Hutch++ traces from ``num_samples`` matrix-vector products.
        density: also stochastic Lanczos quadrature densities.
        num_samples: the probes of each trace.
        batch_size: attack and multiply in batches of that many examples
            (:func:`advlip.streaming.linearize_batches`): memory of one batch, any n.
        layer: restrict every operator to a subset of the parameters (see
            :meth:`advlip.adversarial.AdversarialPoint.top_eigenvalues`).
        key: every random draw (default ``PRNGKey(0)``).
        progress: a progress bar on stderr.
        **attack_options: passed to the attack
            (:func:`advlip.adversarial.linearize`).

    Returns:
        A :class:`CurvatureResult`.

    Raises:
        ValueError: ``k``, ``num_samples`` or ``batch_size`` below 1, or what the attack
            refuses (shapes, labels, ``eps``, ``p``), each naming the argument.

    Example:
        >>> import jax.numpy as jnp
        >>> from advlip import curvature, models
        >>> W = jnp.array([[1.0, -0.5], [0.2, 0.8], [-0.6, 0.1]])
        >>> loss_fn = models.ClassifierLoss(lambda W, x: jnp.tanh(W @ x), "cross_entropy")
        >>> X = jnp.array([[0.5, 0.1], [-0.2, 0.4], [0.3, -0.3]]); y = jnp.array([0, 1, 2])
        >>> res = curvature.measure(loss_fn, W, X, y, eps=0.05, p=float("inf"), progress=False)
        >>> res.total.values.shape, res.undetermined_fraction, res.cases
        ((1,), 0.0, {'linf_vertex': 3})
    """
    from advlip import adversarial, streaming

    k = check_positive_int("k", k)
    num_samples = check_positive_int("num_samples", num_samples)
    key = jax.random.PRNGKey(0) if key is None else keys.check_key(key)
    k_attack, k_eig, k_trace, k_dens = jax.random.split(key, 4)
    n = int(np.shape(X)[0]) if np.ndim(X) else 0
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    if batch_size is not None and n > check_positive_int("batch_size", batch_size):
        pt = streaming.linearize_batches(
            loss_fn,
            params,
            X,
            y,
            eps=eps,
            p=p,
            batch_size=batch_size,
            progress=progress,
            key=k_attack,
            **attack_options,
        )
    else:
        pt = adversarial.linearize(
            loss_fn, params, X, y, eps=eps, p=p, key=k_attack, **attack_options
        )
    seconds["attack"] = time.perf_counter() - start
    steps = _bar(progress, 2 * (1 + bool(trace) + bool(density)), "spectrum")
    spectra: dict[str, Any] = {}
    traces: dict[str, Any] = {}
    densities: dict[str, Any] = {}
    for h in HESSIANS:
        t0 = time.perf_counter()
        spectra[h] = pt.top_eigenvalues(k, hessian=h, key=k_eig, params=layer)
        steps.update(1)
        if trace:
            traces[h] = pt.trace(hessian=h, num_samples=num_samples, key=k_trace, params=layer)
            steps.update(1)
        if density:
            densities[h] = pt.spectral_density(hessian=h, key=k_dens, params=layer)
            steps.update(1)
        seconds[h] = time.perf_counter() - t0
    steps.close()
    status = np.asarray(pt.status)
    bad = np.flatnonzero(status != 0)
    reasons = Counter(_reason_class(pt.reasons[i]) for i in bad) if len(pt.reasons) else {}
    cases = Counter(c for c, s in zip(pt.cases, status, strict=True) if s == 0)
    return CurvatureResult(
        total=spectra["total"],
        naive=spectra["naive"],
        traces=traces,
        densities=densities,
        n=int(status.size),
        dim=int(pt.dim),
        eps=float(eps),
        p=float(pt.p),
        undetermined_fraction=float(bad.size / max(status.size, 1)),
        reasons=dict(reasons),
        cases=dict(cases),
        seconds=seconds,
        dtype=str(np.dtype(pt.dtype)),
    )


class _NoBar:
    def update(self, _n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(progress: bool, total: int, desc: str):
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="op", leave=False)


# --------------------------------------------------------------------------- models


def resolve_model(obj: Any, example_x: Any, *, loss: str = "cross_entropy") -> tuple[Any, Any]:
    """``(params, loss_fn)`` from what a model factory returns.

    Args:
        obj: ``(params, loss_fn)`` with ``loss_fn`` callable; an equinox module
            (:func:`advlip.models.from_equinox`); a flax nnx module, or ``(linen module,
            variables)`` (:func:`advlip.models.from_flax`); a PyTorch ``nn.Module``
            (:func:`advlip.models.from_torch`).
        example_x: one input in the module's layout (a PyTorch module is traced at it).
        loss: the loss on the logits: ``cross_entropy``, ``cw`` or ``dlr``.

    Returns:
        ``(params, loss_fn)`` with ``loss_fn(params, x, y)`` the loss of one example.

    Raises:
        ValueError: ``obj`` is none of the above; the message names what is allowed.

    Example:
        >>> import jax.numpy as jnp
        >>> from advlip import curvature, models
        >>> pair = ({"W": jnp.eye(2)}, models.ClassifierLoss(lambda th, x: th["W"] @ x))
        >>> params, loss_fn = curvature.resolve_model(pair, jnp.zeros(2))
        >>> loss_fn is pair[1]
        True
    """
    from advlip import models

    if isinstance(obj, tuple) and len(obj) == 2:
        first, second = obj
        if _is_flax_linen(first):
            return models.from_flax(first, second, loss=loss)
        if callable(second) and not _is_module(second):
            return first, second
    if _is_torch(obj):
        return models.from_torch(obj, example_x=example_x, loss=loss)
    if _is_flax_nnx(obj):
        return models.from_flax(obj, loss=loss)
    if _is_equinox(obj):
        return models.from_equinox(obj, loss=loss)
    raise ValueError(
        f"the model factory returned {type(obj).__name__}; allowed: (params, loss_fn) with "
        "loss_fn(params, x, y) the loss of one example, an equinox Module, a flax nnx "
        "Module, a (flax linen Module, variables) pair, or a torch.nn.Module"
    )


def channels_first(obj: Any) -> bool:
    """Whether the model takes images channels-first, (C, H, W).

    PyTorch and equinox convolutions do; flax and advlip's reference networks take
    (H, W, C).

    Args:
        obj: what a model factory returned (see :func:`resolve_model`).

    Returns:
        True for a PyTorch or equinox module, else False.

    Example:
        >>> import equinox as eqx, jax
        >>> from advlip import curvature
        >>> conv = eqx.nn.Conv2d(1, 2, 3, key=jax.random.PRNGKey(0))
        >>> curvature.channels_first(conv), curvature.channels_first(({}, len))
        (True, False)
    """
    return _is_torch(obj) or _is_equinox(obj)


def _is_module(obj: Any) -> bool:
    return _is_torch(obj) or _is_flax_nnx(obj) or _is_flax_linen(obj)


def _is_torch(obj: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _is_flax_nnx(obj: Any) -> bool:
    import sys

    if "flax" not in sys.modules:
        return False
    from flax import nnx

    return isinstance(obj, nnx.Module)


def _is_flax_linen(obj: Any) -> bool:
    import sys

    if "flax" not in sys.modules:
        return False
    import flax.linen as nn

    return isinstance(obj, nn.Module)


def _is_equinox(obj: Any) -> bool:
    import equinox as eqx

    return isinstance(obj, eqx.Module)
