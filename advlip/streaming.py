r"""The adversarial loss and its total curvature over a dataset larger than one batch.

:func:`advlip.adversarial.linearize` attacks a whole batch at once: its memory grows
with n. :func:`linearize_batches` splits ``X, y`` into consecutive batches of at most
``batch_size`` rows, attacks and classifies each batch with
:func:`~advlip.adversarial.linearize`, and returns a :class:`StreamedPoint` whose
methods are those of :class:`~advlip.adversarial.AdversarialPoint` for the whole
dataset. With batch sizes :math:`n_b` and weights :math:`w_b = n_b / n`,

.. math:: L = \sum_b w_b L_b, \qquad \nabla L = \sum_b w_b \nabla L_b, \qquad
          \nabla^2 L\, v = \sum_b w_b \nabla^2 L_b\, v,

since every :math:`L_b` is the mean over its own rows. The attack of an example does
not depend on the other examples of its batch, so the streamed point is the one-batch
point up to the order of the sums (and, with a ``key``, the random starts: batch b
draws them from ``jax.random.fold_in(key, b)``).

**Memory.** One batch is attacked at a time. Of each batch only what later products
need is kept — its rows, its δ*, its KKT certificate, status and reasons and the
per-example error data of the attack, all O(n_b·d) — and one running sum of the
gradient (P); no per-batch object of size P (the batch's Danskin gradient is dropped
once summed). A Hessian-vector product rebuilds each batch's product from those arrays:
:meth:`StreamedPoint.matvec` runs the batches one after the other inside one compiled
program (a ``lax.scan`` over the full batches, then the last one), so its working
memory is that of one batch and it compiles once, whatever the number of batches.

**Error bounds** combine the per-batch bounds with the same weights: the computed
operator is :math:`\sum_b w_b \hat H_b` and :math:`\|\sum_b w_b(\hat H_b - H_b)\| \le
\sum_b w_b \|\hat H_b - H_b\|`, plus the rounding of the weighted sum itself,
:math:`\gamma_{B+2}\sum_b w_b\|\hat H_b\|` for B batches (B products and additions and
the rounding of :math:`w_b`) in the working dtype; likewise for the gradient and the
products (see :meth:`StreamedPoint.top_eigenvalue`).

Example (the streamed loss and gradient are the one-batch ones to rounding):
    >>> import jax.numpy as jnp, numpy as np
    >>> from advlip import adversarial, models, streaming
    >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.0)}
    >>> X = jnp.array([[0.5, 1.0], [1.0, -1.0], [0.2, 0.3], [-0.4, 0.1], [0.9, 0.0]])
    >>> y = jnp.array([1.0, -1.0, 1.0, -1.0, 1.0])
    >>> sp = streaming.linearize_batches(
    ...     models.LinearLoss(), params, X, y, eps=0.1, p=2, batch_size=2, progress=False
    ... )
    >>> sp.num_batches, sp.delta.shape
    (3, (5, 2))
    >>> pt = adversarial.linearize(models.LinearLoss(), params, X, y, eps=0.1, p=2)
    >>> bool(abs(float(sp.loss()) - float(pt.loss())) <= 1e-5 * float(pt.loss()))
    True
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from advlip import spectral, tolerance
from advlip._validate import check_positive_int, is_traced

if TYPE_CHECKING:  # advlip.adversarial is imported lazily: it may import this module
    from advlip.adversarial import AdversarialPoint, EigenEstimate

__all__ = ["StreamedPoint", "linearize_batches", "PROGRESS_MIN_BATCHES"]

#: With ``progress=None`` the progress bar shows when stderr is a terminal or when there
#: are more batches than this.
PROGRESS_MIN_BATCHES = 5


# --------------------------------------------------------------------------- compiled programs


def _stream_apply(static, dyn, spec, params, full, last, w_full, w_last, v, hessian, cg_maxiter):
    r"""Flat :math:`\sum_b w_b\,\hat H_b v` over the batches, one batch at a time.

    ``full``: the stacked ``(X, y, δ, KKT, Minv)`` of the batches of ``batch_size`` rows
    (a ``lax.scan``: one batch's memory, one compilation for any number of batches) or
    None; ``last``: the shorter last batch or None. ``Minv`` is the factorised tangent
    solve (n_b, d, d) of ``solver="dense"``, or None (CG). Each batch's product is the
    one-batch program's (``advlip.adversarial.apply_matvec``)."""
    from advlip import adversarial

    def batch(data):
        X, y, delta, c, Minv = data
        return adversarial.apply_matvec(
            static, dyn, spec, params, X, y, delta, c, Minv, v, hessian, cg_maxiter
        )

    acc = jnp.zeros(spec.size, dtype=v.dtype)
    if full is not None:

        def body(acc, data):
            return acc + w_full * batch(data), None

        acc, _ = lax.scan(body, acc, full)
    if last is not None:
        acc = acc + w_last * batch(last)
    return acc


_stream_apply_jit = jax.jit(
    _stream_apply, static_argnames=("static", "spec", "hessian", "cg_maxiter")
)


def _stream_eig(
    static,
    dyn,
    spec,
    params,
    full,
    last,
    w_full,
    w_last,
    v0,
    hessian,
    cg_maxiter,
    method,
    num_steps,
):
    """Lanczos or power iteration on the streamed operator (one compiled program)."""

    def mv(v):
        return _stream_apply(
            static, dyn, spec, params, full, last, w_full, w_last, v, hessian, cg_maxiter
        )

    if method == "lanczos":
        return spectral.lanczos(mv, v0, num_steps=num_steps)
    return spectral.power_iteration(mv, v0, num_steps=num_steps)


_stream_eig_jit = jax.jit(
    _stream_eig,
    static_argnames=("static", "spec", "hessian", "cg_maxiter", "method", "num_steps"),
)


# --------------------------------------------------------------------------- the streamed point


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(
            f"{name}={value!r} is not allowed; allowed: {', '.join(repr(a) for a in allowed)}"
        )


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class StreamedPoint:
    r"""The attack at θ over a dataset processed in batches, and the total curvature there.

    Built by :func:`linearize_batches`. The public surface of
    :class:`advlip.adversarial.AdversarialPoint` for the whole dataset: per example (in
    the order of ``X``) :attr:`delta`, :attr:`kkt`, :attr:`status`, :attr:`reasons`,
    :attr:`cases`; :meth:`loss` and :meth:`grad` (weighted over the batches),
    :meth:`total_hvp`, :meth:`naive_hvp`, :meth:`matvec`, :meth:`top_eigenvalue`,
    :meth:`hvp_error`, :meth:`gradient_error`, :meth:`summary`,
    :meth:`require_determined`. The dense Hessians (``blocks``) are not offered: they
    are P×P per example.

    Example:
        Five examples in batches of 2, 2 and 1:

        >>> import jax.numpy as jnp
        >>> from advlip import models, streaming
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X = jnp.array([[2.0, 1.0], [-2.0, -1.0], [2.0, 1.0], [-2.0, -1.0], [2.0, 1.0]])
        >>> y = jnp.array([1.0, -1.0, 1.0, -1.0, 1.0])
        >>> sp = streaming.linearize_batches(models.LinearLoss(), params, X, y, eps=2.0, p=2,
        ...                                  batch_size=2, progress=False)
        >>> sp  # doctest: +ELLIPSIS
        StreamedPoint(n=5, batch_size=2, num_batches=3, dim=3, dtype=...)
        >>> sp.batch_slices
        (slice(0, 2, None), slice(2, 4, None), slice(4, 5, None))
        >>> sp.all_determined, sp.cases[:2]
        (True, ('l2_boundary', 'l2_boundary'))
    """

    _points: tuple  # per batch: an AdversarialPoint without its P-sized gradient
    _starts: tuple[int, ...]
    _weights: tuple[float, ...]
    n: int
    batch_size: int
    _loss: Any
    _grad: Any
    _grad_abs: np.ndarray  # Σ_b w_b |ĝ_b| (P,), float64: the gradient sum's rounding

    def __repr__(self) -> str:
        return (
            f"StreamedPoint(n={self.n}, batch_size={self.batch_size}, "
            f"num_batches={self.num_batches}, dim={self.dim}, dtype={self.dtype.name})"
        )

    # -- layout --------------------------------------------------------------
    @property
    def num_batches(self) -> int:
        return len(self._points)

    @property
    def batch_slices(self) -> tuple[slice, ...]:
        """The rows of ``X`` in each batch."""
        return tuple(
            slice(s, s + pt.X.shape[0]) for s, pt in zip(self._starts, self._points, strict=True)
        )

    @property
    def dim(self) -> int:
        """Number of parameters P (length of the flattened θ)."""
        return self._points[0].dim

    @property
    def dtype(self) -> np.dtype:
        """The working dtype: every computation ran in it, every error bound uses its roundoff."""
        return self._points[0].dtype

    @property
    def loss_fn(self) -> Any:
        return self._points[0].loss_fn

    @property
    def params(self) -> Any:
        return self._points[0].params

    @property
    def eps(self) -> jax.Array:
        return self._points[0].eps

    @property
    def p(self) -> float:
        return self._points[0].p

    # -- case analysis ------------------------------------------------------
    @property
    def delta(self) -> jax.Array:
        """δ* of every example, (n, d)."""
        return jnp.concatenate([pt.delta for pt in self._points])

    @property
    def kkt(self) -> Any:
        """The KKT certificate of every example (:class:`advlip.attacks.KKT`, leading axis n)."""
        return jax.tree.map(lambda *a: jnp.concatenate(a), *[pt.kkt for pt in self._points])

    @property
    def delta_error(self) -> np.ndarray:
        """Per example the bound on :math:`\\|\\hat\\delta - \\delta^*\\|` (see
        :class:`~advlip.adversarial.AdversarialPoint`), (n,)."""
        return np.concatenate([np.asarray(pt.delta_error, dtype=np.float64) for pt in self._points])

    @property
    def status(self) -> np.ndarray:
        """Index into :data:`advlip.adversarial.STATUS` per example (0 = determined), (n,)."""
        return np.concatenate([np.asarray(pt.status) for pt in self._points])

    @property
    def reasons(self) -> tuple[str, ...]:
        """One sentence per example, in the order of ``X``."""
        return tuple(r for pt in self._points for r in pt.reasons)

    @property
    def cases(self) -> tuple[str, ...]:
        return tuple(c for pt in self._points for c in pt.cases)

    @property
    def determined(self) -> np.ndarray:
        return self.status == 0

    @property
    def all_determined(self) -> bool:
        return all(pt.all_determined for pt in self._points)

    def summary(self) -> dict[str, Any]:
        """The batches' :meth:`~advlip.adversarial.AdversarialPoint.summary` merged: counts
        add, ``max_*`` take the maximum, ``min_*`` the minimum; plus the batching."""
        out = _merge_summaries([pt.summary() for pt in self._points])
        out["num_batches"] = self.num_batches
        out["batch_size"] = self.batch_size
        return out

    def require_determined(self) -> None:
        """Raise :class:`advlip.adversarial.UndeterminedError` (a ValueError) unless every
        example is determined; the examples are named by their row in ``X``."""
        from advlip import adversarial

        if self.all_determined:
            return
        bad = np.flatnonzero(~self.determined)
        reasons = self.reasons
        lines = "; ".join(f"example {i}: {reasons[i]}" for i in bad[:4])
        more = f" (and {bad.size - 4} more)" if bad.size > 4 else ""
        # what the hypotheses are and how to proceed: the batch's own explanation
        explanation = ""
        for pt in self._points:
            try:
                pt.require_determined()
            except adversarial.UndeterminedError as err:
                msg = str(err)
                k = msg.find(adversarial.HYPOTHESES_START)
                explanation = " " + msg[k:] if k >= 0 else ""
                break
        raise adversarial.UndeterminedError(
            f"the total Hessian of the adversarial loss is not determined at this θ for "
            f"{bad.size} of {self.n} example(s) (in {self.num_batches} batch(es) of at most "
            f"{self.batch_size}): {lines}{more}.{explanation}"
        )

    # -- first order --------------------------------------------------------
    def loss(self) -> jax.Array:
        """:math:`L(\\theta) = \\sum_b w_b L_b`, the mean attacked loss (G0)."""
        return self._loss

    def grad(self) -> Any:
        """Danskin gradient (G0), :math:`\\sum_b w_b \\nabla L_b`, a pytree like ``params``."""
        return self._grad

    def gradient_error(self, residual: Any = None) -> np.ndarray:
        r"""Bound on the error of :meth:`grad`, per component (P,).

        :math:`\sum_b w_b e_b + \gamma_{B+2}\sum_b w_b(|\hat g_b| + e_b)`: the batches'
        :meth:`~advlip.adversarial.AdversarialPoint.gradient_error` :math:`e_b` (rounding
        and the attack's error) and the rounding of the weighted sum. ``residual`` (n,),
        if given, is split over the batches as the one-batch method takes it.
        """
        if residual is not None:
            residual = np.asarray(residual, dtype=np.float64)
            if residual.shape != (self.n,):
                raise ValueError(f"residual must have shape ({self.n},), got {residual.shape}")
        err = np.zeros(self.dim)
        for w, pt, sl in zip(self._weights, self._points, self.batch_slices, strict=True):
            r = None if residual is None else residual[sl]
            err += w * np.asarray(pt.gradient_error(r), dtype=np.float64)
        return err + self._sum_rounding() * (self._grad_abs + err)

    # -- second order -------------------------------------------------------
    def _sum_rounding(self) -> float:
        """:math:`\\gamma_{B+2}`: the relative error of :math:`\\sum_b w_b t_b` over B batches
        (B products, B additions, the rounding of :math:`w_b`), in the working dtype."""
        return tolerance.gamma(self.num_batches + 2, self.dtype)

    def _flat(self, v: Any) -> tuple[jax.Array, bool]:
        """``v`` as a flat vector (``ravel_pytree`` order) in the working dtype, and whether
        it came flat."""
        params = self.params
        leaves, treedef = jax.tree.flatten(params)
        if jax.tree.structure(v) == treedef and all(
            np.shape(a) == np.shape(b) for a, b in zip(jax.tree.leaves(v), leaves, strict=True)
        ):
            flat = jnp.concatenate([jnp.ravel(jnp.asarray(a)) for a in jax.tree.leaves(v)])
            return flat.astype(self.dtype), False
        arr = jnp.asarray(v)
        if arr.shape == (self.dim,):
            return arr.astype(self.dtype), True
        raise ValueError(
            f"v must be a pytree shaped like params or a flat vector of shape ({self.dim},) "
            f"(ravel_pytree order), got {jax.tree.structure(v)} / {np.shape(v)}"
        )

    def _unflat(self, flat: Any) -> Any:
        return ravel_pytree(self.params)[1](flat)

    def _unflat_np(self, flat: np.ndarray) -> Any:
        """A flat float64 NumPy vector as a pytree like params (NumPy float64 leaves)."""
        leaves, treedef = jax.tree.flatten(self.params)
        out, start = [], 0
        for leaf in leaves:
            size = int(np.size(leaf))
            out.append(flat[start : start + size].reshape(np.shape(leaf)))
            start += size
        return jax.tree.unflatten(treedef, out)

    def _weighted(self, fn: Callable[[Any], Any]) -> jax.Array:
        """:math:`\\sum_b w_b\\, fn(\\text{batch}_b)` in the working dtype, batch by batch."""
        acc = None
        for w, pt in zip(self._weights, self._points, strict=True):
            term = jnp.asarray(w, dtype=self.dtype) * fn(pt)
            acc = term if acc is None else acc + term
        return acc

    def total_hvp(self, v: Any) -> Any:
        """:math:`\\nabla^2 L\\, v = \\sum_b w_b \\nabla^2 L_b v`; ``v`` a pytree like ``params``
        or a flat vector of length :attr:`dim` (the result has the same form)."""
        vflat, flat = self._flat(v)
        out = self._weighted(lambda pt: pt.total_hvp(vflat))
        return out if flat else self._unflat(out)

    def naive_hvp(self, v: Any) -> Any:
        """:math:`H_{\\theta\\theta} v` with δ held at δ*, summed over the batches with weights."""
        vflat, flat = self._flat(v)
        out = self._weighted(lambda pt: pt.naive_hvp(vflat))
        return out if flat else self._unflat(out)

    def delta_jvp(self, v: Any) -> jax.Array:
        """:math:`D\\delta_i^*\\, v` for every example, shape (n, d)."""
        vflat, _ = self._flat(v)
        return jnp.concatenate([pt.delta_jvp(vflat) for pt in self._points])

    def hvp_error(self, v: Any, *, hessian: str = "total") -> Any:
        r"""Componentwise bound on the error of :meth:`total_hvp` (or :meth:`naive_hvp`).

        :math:`\sum_b w_b e_b + \gamma_{B+2}\sum_b w_b(|\hat h_b| + e_b)`, with
        :math:`e_b` the batch's :meth:`~advlip.adversarial.AdversarialPoint.hvp_error`
        and :math:`\hat h_b` its computed product. Same form as ``v``.
        """
        _check_choice("hessian", hessian, ("total", "naive"))
        vflat, flat = self._flat(v)
        err = np.zeros(self.dim)
        mag = np.zeros(self.dim)
        for w, pt in zip(self._weights, self._points, strict=True):
            e = np.asarray(pt.hvp_error(vflat, hessian=hessian), dtype=np.float64)
            h = pt.total_hvp(vflat) if hessian == "total" else pt.naive_hvp(vflat)
            err += w * e
            mag += w * (np.abs(np.asarray(h, dtype=np.float64)) + e)
        err = err + self._sum_rounding() * mag
        return err if flat else self._unflat_np(err)

    def _stream_args(self, dense: bool = False) -> tuple:
        """``(static, dyn, spec, params, full, last, w_full, w_last)`` for the compiled
        streamed products: the batches' arrays stacked (O(n·d), built on demand), with
        each batch's factorised tangent solve (O(n·d²)) when ``dense``."""
        from advlip import adversarial

        pts = self._points
        last_pt = pts[-1] if pts[-1].X.shape[0] != self.batch_size else None
        full_pts = pts[:-1] if last_pt is not None else pts

        def data(pt):
            # the factorisation is rebuilt here, not cached in the kept batch (O(n_b·d²))
            minv = pt.uncached().factorisation() if dense else None
            return (pt.X, pt.y, pt.delta, pt.kkt, minv)

        full = (
            jax.tree.map(lambda *a: jnp.stack(a), *[data(pt) for pt in full_pts])
            if full_pts
            else None
        )
        last = data(last_pt) if last_pt is not None else None
        dt = self.dtype
        w_full = jnp.asarray(self.batch_size / self.n, dtype=dt)
        w_last = jnp.asarray(self._weights[-1], dtype=dt)
        dyn, static = adversarial.partition(self.loss_fn)
        return static, dyn, pts[0].spec, self.params, full, last, w_full, w_last

    def _solver(self, solver: str) -> str:
        from advlip import adversarial

        return adversarial.tangent_solver(solver, self._points[0].X.shape[1])

    def matvec(self, *, hessian: str = "total", solver: str = "cg") -> Callable:
        r"""A flat Hessian-vector product over all batches, :math:`v \mapsto \sum_b w_b H_b v`.

        Each batch's product is the one-batch :meth:`~advlip.adversarial.AdversarialPoint.matvec`
        (``hessian``, ``solver`` as there), rebuilt from the batch's kept arrays; the
        batches run one after the other inside one compiled program (memory of one
        batch, one compilation whatever the number of batches). ``solver="dense"``
        factorises every example's tangent solve here, O(n·d²) held by the returned
        function.
        """
        _check_choice("hessian", hessian, ("total", "naive"))
        _check_choice("solver", solver, ("cg", "dense"))
        dt = self.dtype
        args = self._stream_args(dense=hessian == "total" and solver == "dense")
        cg_maxiter = self._points[0].cg_maxiter

        def mv(v):
            return _stream_apply_jit(
                *args, jnp.asarray(v, dtype=dt), hessian=hessian, cg_maxiter=cg_maxiter
            )

        return mv

    def top_eigenvalue(
        self,
        *,
        hessian: str = "total",
        method: str = "lanczos",
        num_steps: int | None = None,
        key: jax.Array | None = None,
        solver: str = "auto",
    ) -> EigenEstimate:
        r"""The top eigenvalue of the streamed total (or naive) Hessian.

        As :meth:`advlip.adversarial.AdversarialPoint.top_eigenvalue` (same methods,
        defaults, ``solver``, start vector and probes from ``key``), with
        :func:`advlip.spectral.lanczos` or :func:`~advlip.spectral.power_iteration` on
        the streamed operator (:meth:`matvec`). The parts of the
        :class:`~advlip.adversarial.EigenEstimate`:

        * ``krylov``, ``rounding``: of the eigensolver on the streamed operator;
        * ``operator``: :math:`\sum_b w_b E_b + \gamma_{B+2}\sum_b w_b (S_b + E_b)`, with
          :math:`E_b` the batch's bound on :math:`\|\hat H_b - H_b\|_2` (the rounding of
          its products and its CG solves, from its per-example :math:`\|H_i\|_F`) and
          :math:`S_b = \operatorname{mean}_{i\in b}\|H_i\|_F \ge \|H_b\|_2`: the mean of
          the batch operators errs by at most the weighted sum of their errors, plus the
          rounding of the weighted sum itself;
        * ``attack``: :math:`\sum_b w_b a_b`, :math:`a_b` the batch's first-order
          sensitivity of :math:`v^\top H_b v` to its attack's error at the computed
          eigenvector v (linear in the examples: the one-batch value up to rounding);
        * ``exact_scale``: the AND over the batches (exact per-example Frobenius norms
          for P ≤ :data:`~advlip.adversarial.FROBENIUS_MAX_P`, else Hutchinson estimates:
          treat the bound as an estimate).
        """
        from advlip import adversarial

        _check_choice("hessian", hessian, ("total", "naive"))
        _check_choice("method", method, ("lanczos", "power"))
        solver = self._solver(solver)
        P = self.dim
        if num_steps is None:
            num_steps = min(P, 40) if method == "lanczos" else 100
        key = jax.random.PRNGKey(0) if key is None else key
        k_start, k_probe = jax.random.split(key)
        dt = self.dtype
        v0 = jax.random.normal(k_start, (P,), dtype=dt)
        res = _stream_eig_jit(
            *self._stream_args(dense=hessian == "total" and solver == "dense"),
            v0,
            hessian=hessian,
            cg_maxiter=self._points[0].cg_maxiter,
            method=method,
            num_steps=int(num_steps),
        )
        value, krylov, vec, steps = adversarial.eigen_result(res, method, num_steps)
        operator = attack = scale = 0.0
        exact = True
        for w, pt in zip(self._weights, self._points, strict=True):
            b_op, b_scale, b_attack, b_exact = _batch_parts(pt, hessian, vec, k_probe, solver)
            operator += w * b_op
            scale += w * (b_scale + b_op)
            attack += w * b_attack
            exact = exact and b_exact
        operator += self._sum_rounding() * scale
        rounding = float(res.rounding)
        krylov = float(krylov)
        bound = krylov + rounding + operator + attack
        return adversarial.EigenEstimate(
            value,
            np.float64(bound),
            method,
            hessian,
            int(steps),
            krylov=krylov,
            rounding=rounding,
            operator=float(operator),
            attack=float(attack),
            exact_scale=bool(exact),
        )

    # -- spectrum (advlip.spectrum) -------------------------------------------
    def eigen_error(
        self,
        vec: Any,
        *,
        hessian: str = "total",
        key: jax.Array | None = None,
        solver: str = "cg",
    ) -> Any:
        r"""The error parts of an eigen-estimate of the streamed Hessian at the eigenvector
        ``vec`` (flat, (P,)): an :class:`advlip.adversarial.EigenError`, combined over the
        batches as :meth:`top_eigenvalue` combines them — ``operator``
        :math:`\sum_b w_b E_b + \gamma_{B+2}\sum_b w_b(S_b + E_b)`, ``attack``
        :math:`\sum_b w_b a_b`, ``exact`` the AND over the batches, ``scale``
        :math:`\sum_b w_b S_b` (each batch's parts from its
        :meth:`~advlip.adversarial.AdversarialPoint.eigen_error` with ``key``)."""
        from advlip import adversarial

        _check_choice("hessian", hessian, ("total", "naive"))
        key = jax.random.PRNGKey(0) if key is None else key
        vflat, _ = self._flat(vec)
        operator = attack = scale = weighted = 0.0
        exact = True
        for w, pt in zip(self._weights, self._points, strict=True):
            b_op, b_scale, b_attack, b_exact = _batch_parts(pt, hessian, vflat, key, solver)
            operator += w * b_op
            weighted += w * (b_scale + b_op)
            scale += w * b_scale
            attack += w * b_attack
            exact = exact and b_exact
        operator += self._sum_rounding() * weighted
        return adversarial.EigenError(float(operator), float(attack), bool(exact), float(scale))

    def top_eigenvalues(
        self,
        k: int,
        *,
        hessian: str = "total",
        num_steps: int | None = None,
        key: jax.Array | None = None,
        params: Any = None,
        solver: str = "auto",
        return_vectors: bool = True,
    ) -> Any:
        """As :meth:`advlip.adversarial.AdversarialPoint.top_eigenvalues`, on the streamed
        operator (:meth:`matvec`), each bound with the streamed :meth:`eigen_error`."""
        from advlip import spectrum

        return spectrum._point_top_eigenvalues(
            self,
            k,
            hessian=hessian,
            num_steps=num_steps,
            key=key,
            params=params,
            solver=solver,
            return_vectors=return_vectors,
        )

    def trace(
        self,
        *,
        hessian: str = "total",
        num_samples: int = 30,
        key: jax.Array | None = None,
        method: str = "hutch++",
        params: Any = None,
        solver: str = "auto",
    ) -> Any:
        """As :meth:`advlip.adversarial.AdversarialPoint.trace`, on the streamed operator."""
        from advlip import spectrum

        return spectrum._point_trace(
            self,
            hessian=hessian,
            num_samples=num_samples,
            key=key,
            method=method,
            params=params,
            solver=solver,
        )

    def spectral_density(
        self,
        *,
        hessian: str = "total",
        num_probes: int = 8,
        num_steps: int | None = None,
        key: jax.Array | None = None,
        grid: Any = None,
        sigma: float | None = None,
        params: Any = None,
        solver: str = "auto",
    ) -> Any:
        """As :meth:`advlip.adversarial.AdversarialPoint.spectral_density`, on the streamed
        operator."""
        from advlip import spectrum

        return spectrum._point_spectral_density(
            self,
            hessian=hessian,
            num_probes=num_probes,
            num_steps=num_steps,
            key=key,
            grid=grid,
            sigma=sigma,
            params=params,
            solver=solver,
        )


# --------------------------------------------------------------------------- per-batch internals
#
# Per batch: the error parts of an eigen-estimate, the factorised tangent solve and
# the product, through AdversarialPoint's public methods.


def _batch_parts(
    pt: AdversarialPoint, hessian: str, vec: jax.Array, k_probe: jax.Array, solver: str
) -> tuple[float, float, float, bool]:
    """One batch's error parts for an eigen-estimate at the eigenvector ``vec``:
    ``(E_b, S_b, a_b, exact)`` — its operator error, its mean per-example Frobenius norm,
    its attack part and whether its scales are exact — as the one-batch method takes them."""
    op, attack, exact, scale = pt.eigen_error(vec, hessian=hessian, key=k_probe, solver=solver)
    return op, scale, attack, exact


def _merge_summaries(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge per-batch summaries: dicts of counts add, ``max_*`` / ``min_*`` take the
    extreme, other integers (counts) add, other numbers take the maximum."""
    out: dict[str, Any] = {}
    for part in parts:
        for k, v in part.items():
            if k not in out:
                out[k] = dict(v) if isinstance(v, dict) else v
            elif isinstance(v, dict):
                for kk, vv in v.items():
                    out[k][kk] = out[k].get(kk, 0) + vv
            elif k.startswith("min_"):
                out[k] = min(out[k], v)
            elif k.startswith("max_"):
                out[k] = max(out[k], v)
            elif isinstance(v, bool):
                out[k] = out[k] and v
            elif isinstance(v, int | np.integer):
                out[k] = out[k] + v
            elif isinstance(v, float | np.floating):
                out[k] = max(out[k], v)
    return out


# --------------------------------------------------------------------------- linearize


def _slim(pt: AdversarialPoint, params: Any, loss_fn: Any) -> AdversarialPoint:
    """The batch's point without what is P-sized per batch: its Danskin gradient (already
    summed) is dropped and the (identical) params and loss are shared between batches."""
    names = {f.name for f in dataclasses.fields(pt)}
    changes: dict[str, Any] = {}
    att = getattr(pt, "attack", None)
    if "attack" in names and att is not None and hasattr(att, "danskin_grad"):
        changes["attack"] = dataclasses.replace(att, danskin_grad=None)
    if "params" in names:
        changes["params"] = params
    if "loss_fn" in names:
        changes["loss_fn"] = loss_fn
    return dataclasses.replace(pt, **changes).uncached()


def _scaled(w: jax.Array, tree: Any) -> Any:
    return jax.tree.map(lambda a: w * a, tree)


def _rows(X: Any, y: Any) -> int:
    shape_x, shape_y = np.shape(X), np.shape(y)
    if len(shape_x) < 2:
        raise ValueError(f"X must have shape (n, d) or (n, *input_shape), got {shape_x}")
    if len(shape_y) < 1 or shape_y[0] != shape_x[0]:
        raise ValueError(f"y must have one entry per row of X ({shape_x[0]}), got shape {shape_y}")
    if shape_x[0] < 1:
        raise ValueError("X must have at least one row")
    return int(shape_x[0])


def linearize_batches(
    loss_fn: Callable,
    params: Any,
    X: Any,
    y: Any,
    *,
    eps: Any,
    p: float,
    batch_size: int,
    progress: bool | None = None,
    **attack_options: Any,
) -> StreamedPoint:
    r""":func:`advlip.adversarial.linearize` over a dataset, ``batch_size`` rows at a time.

    ``X, y`` are split into consecutive batches of ``batch_size`` rows (the last one
    may be shorter); each is attacked and classified by
    :func:`~advlip.adversarial.linearize` with ``attack_options`` (``init``, a warm start
    (n, d), is split with the rows; a ``key`` becomes ``jax.random.fold_in(key, b)`` for
    batch b; without one every batch uses the attack's default). Memory: one batch at a
    time, plus O(n·d) kept (see :mod:`advlip.streaming`). ``X`` may stay a NumPy array
    on the host: only one batch is moved to the device at a time.

    ``progress``: a progress bar on stderr (tqdm); ``None`` shows it when stderr is a
    terminal or there are more than :data:`PROGRESS_MIN_BATCHES` batches, ``False``
    never. Runs eagerly (not under ``jax.jit``). Returns a :class:`StreamedPoint`;
    nothing raises for undetermined examples here (see
    :meth:`StreamedPoint.require_determined`).

    Example:
        w = (0.3, 0.4) has ‖w‖ = 0.5; in the L2 ball of radius 2 every margin
        :math:`y\,w\cdot x = 1` drops to 0, where ℓ = log 2 and ℓ' = −1/2
        (docs/theory/closed-form.md). The batch-weighted gradient is the mean one:
        :math:`\operatorname{mean}_i \ell' y_i = -0.1` for b (three labels +1, two −1)
        and :math:`-\tfrac12(y_ix_i - \varepsilon w/\|w\|) = (-0.4, 0.3)` for w.

        >>> import jax.numpy as jnp
        >>> from advlip import models, streaming
        >>> params = {"w": jnp.array([0.3, 0.4]), "b": jnp.array(0.0)}
        >>> X = jnp.array([[2.0, 1.0], [-2.0, -1.0], [2.0, 1.0], [-2.0, -1.0], [2.0, 1.0]])
        >>> y = jnp.array([1.0, -1.0, 1.0, -1.0, 1.0])
        >>> sp = streaming.linearize_batches(models.LinearLoss(), params, X, y, eps=2.0, p=2,
        ...                                  batch_size=2, progress=False)
        >>> sp.num_batches, round(float(sp.loss()), 4)
        (3, 0.6931)
        >>> g = sp.grad()
        >>> round(float(g["b"]), 4), tuple(round(float(v), 4) for v in g["w"])
        (-0.1, (-0.4, 0.3))
    """
    from advlip import adversarial

    batch_size = check_positive_int("batch_size", batch_size)
    if progress not in (None, True, False):
        raise ValueError(f"progress={progress!r} is not allowed; allowed: None, True, False")
    if attack_options.get("attack") is not None:
        raise ValueError(
            "attack= is not allowed with batches: each batch is attacked on its own; pass the "
            "attack's options instead (a warm start goes in init=, (n, d))"
        )
    attack_options.pop("attack", None)
    if is_traced(params, X, y, eps):
        raise ValueError(
            "linearize_batches runs eagerly, one batch at a time; call it outside jax.jit "
            "(or use advlip.adversarial.linearize on one batch)"
        )
    n = _rows(X, y)
    key = attack_options.pop("key", None)
    init = attack_options.pop("init", None)
    flat = (np.shape(X)[0], int(np.prod(np.shape(X)[1:])))
    if init is not None and np.shape(init) not in (np.shape(X), flat):
        raise ValueError(
            f"init must have the shape of X, {np.shape(X)} (or {flat}, a point's δ), "
            f"got {np.shape(init)}"
        )
    starts = tuple(range(0, n, batch_size))
    show = (
        (sys.stderr.isatty() or len(starts) > PROGRESS_MIN_BATCHES)
        if progress is None
        else progress
    )

    from tqdm import tqdm

    points: list = []
    weights: list[float] = []
    loss = grad = grad_abs = None
    shared: tuple[Any, Any] | None = None
    undetermined = 0
    with tqdm(
        total=len(starts),
        desc="advlip linearize",
        unit="batch",
        file=sys.stderr,
        disable=not show,
    ) as bar:
        for b, s in enumerate(starts):
            e = min(s + batch_size, n)
            opts = dict(attack_options)
            if key is not None:
                opts["key"] = jax.random.fold_in(key, b)
            if init is not None:
                opts["init"] = init[s:e]
            pt = adversarial.linearize(loss_fn, params, X[s:e], y[s:e], eps=eps, p=p, **opts)
            w = (e - s) / n
            wj = jnp.asarray(w, dtype=pt.dtype)
            g = pt.grad()
            gflat = np.abs(np.asarray(ravel_pytree(g)[0], dtype=np.float64))
            if loss is None:
                loss, grad, grad_abs = wj * pt.loss(), _scaled(wj, g), w * gflat
                shared = (pt.params, pt.loss_fn)
            else:
                loss = loss + wj * pt.loss()
                grad = jax.tree.map(jnp.add, grad, _scaled(wj, g))
                grad_abs = grad_abs + w * gflat
            points.append(_slim(pt, *shared))
            weights.append(w)
            undetermined += int(np.sum(np.asarray(pt.status) != 0))
            bar.set_postfix(undetermined=undetermined, refresh=False)
            bar.update(1)
    return StreamedPoint(
        _points=tuple(points),
        _starts=starts,
        _weights=tuple(weights),
        n=n,
        batch_size=batch_size,
        _loss=loss,
        _grad=grad,
        _grad_abs=grad_abs,
    )
