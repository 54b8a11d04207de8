r"""The spectrum of a Hessian from Hessian-vector products: top-k eigenpairs, trace, density.

Every function here takes a flat, JAX-traceable ``mv(v) -> A v`` on vectors of
length ``dim`` (a symmetric operator: the total or the naive Hessian of an
:class:`~advlip.adversarial.AdversarialPoint` — :meth:`~advlip.adversarial.AdversarialPoint.matvec`
— or any other), the dimension, the working dtype and an explicit JAX key. The points'
methods :meth:`~advlip.adversarial.AdversarialPoint.top_eigenvalues`,
:meth:`~advlip.adversarial.AdversarialPoint.trace` and
:meth:`~advlip.adversarial.AdversarialPoint.spectral_density` (and those of
:class:`~advlip.streaming.StreamedPoint`) build ``mv`` and add the error of the
operator itself.

* :func:`top_eigenvalues` — the k largest algebraic eigenvalues by Lanczos with full
  reorthogonalisation (:func:`advlip.spectral.lanczos`). Each Ritz pair
  :math:`(\theta, v)` comes with its *true* residual :math:`\|Av - \theta v\|`
  (one more product per pair, not the Lanczos estimate): for symmetric A and
  :math:`\|v\| = 1` some eigenvalue of A lies within that distance of θ, and, the
  returned vectors being orthonormal, k distinct eigenvalues lie within those
  distances of the k values together (Kahan's theorem, Parlett, *The Symmetric
  Eigenvalue Problem*, §11.5). When the Krylov space becomes invariant before the step
  budget is spent (an exact breakdown: few distinct eigenvalues, a low-rank operator)
  Lanczos restarts from a random vector in the orthogonal complement, so a repeated
  eigenvalue is found as often as its multiplicity while the budget lasts. With
  ``num_steps`` ≥ dim the top k are exact to rounding; with fewer steps they are the
  best the Krylov space offers and the residuals say how good that is, but a Krylov
  space from one start vector holds one copy of each eigenvalue it has not broken down
  on, so a multiple eigenvalue may then be listed fewer times than its multiplicity.
* :func:`trace` — Hutchinson's estimator :math:`\frac1m\sum_i g_i^\top A g_i` with
  Rademacher probes, or Hutch++ (Meyer, Musco, Musco and Woodruff, *Hutch++: Optimal
  stochastic trace estimation*, 2021): a third of the products sketch the range,
  :math:`Q = \operatorname{orth}(AS)`, whose trace :math:`\operatorname{tr}(Q^\top AQ)`
  is exact, and the rest estimate the trace of the deflated
  :math:`(I-QQ^\top)A(I-QQ^\top)` by Hutchinson. The standard error is that of the
  Hutchinson part (sample standard deviation over √m): given Q, Hutch++ is unbiased
  and all its randomness is in that part. Once the sketch spans the range (``3·dim``
  products) Hutch++ is exact to rounding.
* :func:`spectral_density` — stochastic Lanczos quadrature (Ubaru, Chen and Saad,
  *Fast estimation of tr(f(A)) via stochastic Lanczos quadrature*, 2017; Ghorbani,
  Krishnan and Xiao, *An investigation into neural net optimization via Hessian
  eigenvalue density*, 2019): for a Rademacher probe :math:`q = g/\sqrt{\text{dim}}`,
  the Lanczos tridiagonal :math:`T = S\Theta S^\top` gives the Gauss quadrature of the
  probe's spectral measure, nodes :math:`\theta_j` (the Ritz values) and weights
  :math:`s_{1j}^2` (squared first components), exact for polynomials of degree below
  2·steps: :math:`\sum_j s_{1j}^2 p(\theta_j) = q^\top p(A) q`, whose mean over probes is
  :math:`\operatorname{tr} p(A)/\text{dim}`. Averaging the probes' measures and
  smoothing each node with a Gaussian of width σ gives a density on a grid.
* :func:`parameter_indices`, :func:`restrict` — a subset S of the parameters (one
  layer, say) as a flat index set, and the principal submatrix :math:`A_{SS}`
  (:math:`P_S A P_S` on the selected coordinates) as an operator of dimension
  :math:`|S|`: :math:`u \mapsto (A\,\mathrm{scatter}(u))_S`.

Everything runs in the given dtype (float32 works where a user chooses it) and every
rounding term uses its unit roundoff (:mod:`advlip.tolerance`). For a ReLU network
the Hessian is only piecewise defined (it is that of the active piece, and jumps where
a unit switches); the spectrum here is that of the operator ``mv`` computes.

**matfree.** matfree 0.6.3's Lanczos (``matfree.decomp.tridiag_sym(..., reortho="full")``,
used by its ``eig.eigh_partial`` and SLQ integrands) does not handle an invariant
Krylov space: it divides by the vanishing residual, which gives NaN for a zero operator
and, for a rank-one operator, a basis that loses orthogonality and Ritz values far
outside the spectrum; such operators occur here (a layer without curvature, a naive
Hessian of rank ≤ n, the exact mode with ``num_steps`` = dim). So the Lanczos runs are
:func:`advlip.spectral.lanczos`, which stops cleanly there and bounds its rounding.
matfree's Hutchinson estimator (``stochtrace.estimator_monte_carlo_mean_and_sem``)
vmaps the operator over all probes at once (the memory of ``num_samples`` Hessian
products) and reports the population standard deviation (0 for one probe), and it has
no Hutch++, so the trace estimators are written out here (one product at a time).

Example (rounded: the last digits depend on the dtype):
    >>> import jax.numpy as jnp, numpy as np
    >>> from advlip import spectrum
    >>> A = jnp.diag(jnp.array([3.0, 1.0, 1.0, -2.0]))
    >>> mv = lambda v: A @ v
    >>> top = spectrum.top_eigenvalues(mv, 4, A.dtype, 2)
    >>> tuple(round(float(x), 4) for x in top.values)
    (3.0, 1.0)
    >>> bool(np.all(np.abs(top.values - np.array([3.0, 1.0])) <= top.bounds))
    True
    >>> round(spectrum.trace(mv, 4, A.dtype, num_samples=12).estimate, 4)  # 3·dim: exact
    3.0
    >>> dens = spectrum.spectral_density(mv, 4, A.dtype, num_probes=3, num_steps=4)
    >>> dens.nodes.shape, bool(np.allclose(dens.weights.sum(axis=1), 1.0))
    ((3, 4), True)

On an adversarial point (the operator's rounding and the attack's error are in the bounds):
    >>> from advlip import adversarial, models
    >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.0)}
    >>> X, y = jnp.array([[0.5, 1.0], [1.0, -1.0]]), jnp.array([1.0, -1.0])
    >>> pt = adversarial.linearize(models.LinearLoss(), params, X, y, eps=0.1, p=2)
    >>> top = pt.top_eigenvalues(2)
    >>> top.values.shape, top.vectors.shape
    ((2,), (2, 3))
    >>> H = np.asarray(pt.total_hessian(), dtype=np.float64)
    >>> dense_error = float(np.sum(pt.blocks().error))
    >>> exact = np.flip(np.linalg.eigvalsh(H))[:2]  # the two largest, descending
    >>> bool(np.all(np.abs(top.values - exact) <= top.bounds + dense_error))
    True
    >>> w_block = pt.top_eigenvalues(1, params="['w']")  # the principal 2×2 block of w
    >>> w_block.selection
    array([1, 2])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from advlip import spectral, tolerance
from advlip._validate import check_positive_int
from advlip.keys import check_key

__all__ = [
    "TopEigenvalues",
    "TraceEstimate",
    "SpectralDensity",
    "top_eigenvalues",
    "trace",
    "spectral_density",
    "parameter_indices",
    "restrict",
    "smoothed_density",
    "TRACE_METHODS",
]

Matvec = Callable[[jax.Array], jax.Array]

#: The trace estimators of :func:`trace`.
TRACE_METHODS = ("hutch++", "hutchinson")
#: Grid points of the smoothed density when no grid is given.
GRID_POINTS = 401


class TopEigenvalues(NamedTuple):
    r"""The k largest eigenvalues of a symmetric operator and how far each may be off.

    Attributes:
      values: the k largest Ritz values, descending, shape (k,) (NumPy float64).
      vectors: their Ritz vectors, orthonormal rows, shape (k, P) — for a restricted
        operator embedded in the full parameter vector (zeros off the selection) —
        or None when not asked for.
      residuals: the true residuals :math:`\|Av_j - \theta_j v_j\|`, one extra product
        per pair, in the working dtype.
      bounds: for each value the distance within which an eigenvalue of the exact
        operator lies: ``residuals + rounding + operator + attack``.
      hessian: ``"total"`` or ``"naive"``, None for a bare ``mv``.
      steps: Lanczos products used (the k residual products not counted).
      rounding: the rounding of the residual itself, :math:`\gamma_{2n+8}(\|Av\| +
        |\theta|)` per pair (the difference, an n-term norm and the normalisation of v).
      operator, attack: per pair, the operator's rounding and the attack's first-order
        error (:meth:`~advlip.adversarial.AdversarialPoint.eigen_error`), 0 for a bare ``mv``.
      exact_scale: whether the scales behind ``operator`` are exact (see
        :class:`~advlip.adversarial.EigenEstimate`); when False ``bounds`` are estimates.
      selection: the flat indices of the selected parameters, or None (all).

    Example:
        The top two of diag(3, 1, −2) from a bare operator (no Hessian: ``hessian`` is
        None and the operator and attack terms are 0), each within its bound:

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import spectrum
        >>> A = jnp.diag(jnp.array([3.0, 1.0, -2.0]))
        >>> top = spectrum.top_eigenvalues(lambda v: A @ v, 3, A.dtype, 2)
        >>> tuple(round(float(x), 4) for x in top.values), top.hessian, top.vectors.shape
        ((3.0, 1.0), None, (2, 3))
        >>> bool(np.all(np.abs(top.values - np.array([3.0, 1.0])) <= top.bounds))
        True
    """

    values: np.ndarray
    vectors: np.ndarray | None
    residuals: np.ndarray
    bounds: np.ndarray
    hessian: str | None
    steps: int
    rounding: np.ndarray
    operator: np.ndarray
    attack: np.ndarray
    exact_scale: bool = True
    selection: np.ndarray | None = None


class TraceEstimate(NamedTuple):
    """A stochastic trace estimate and its standard error.

    ``estimate``: the trace estimate; ``standard_error``: the sample standard deviation
    (ddof 1) of the Hutchinson terms over √(their number) — for Hutch++ the terms of the
    deflated part, given the sketch — ``inf`` with a single term; ``num_matvecs``: the
    products used; ``samples``: the Hutchinson terms :math:`g_i^\\top A g_i` (deflated
    for Hutch++); ``low_rank``: Hutch++'s exact part :math:`\\operatorname{tr}(Q^\\top AQ)`
    (0 for Hutchinson); ``selection`` as in :class:`TopEigenvalues`.

    Example:
        Hutch++ with 3·dim products sketches the whole range: the exact part holds the
        trace 3 + 1 − 2 = 2 and the deflated terms are 0 up to rounding.

        >>> import jax.numpy as jnp
        >>> from advlip import spectrum
        >>> A = jnp.diag(jnp.array([3.0, 1.0, -2.0]))
        >>> est = spectrum.trace(lambda v: A @ v, 3, A.dtype, num_samples=9)
        >>> round(est.estimate, 4), round(est.low_rank, 4), est.num_matvecs, est.method
        (2.0, 2.0, 9, 'hutch++')
    """

    estimate: float
    standard_error: float
    num_matvecs: int
    method: str
    hessian: str | None
    samples: np.ndarray
    low_rank: float = 0.0
    selection: np.ndarray | None = None


class SpectralDensity(NamedTuple):
    r"""Stochastic Lanczos quadrature of a symmetric operator's spectrum.

    ``nodes`` (num_probes, num_steps): per probe the Ritz values (ascending);
    ``weights`` (num_probes, num_steps): their Gauss weights :math:`s_{1j}^2`, which sum
    to 1 per probe (the slots after an early breakdown get weight 0); ``steps``
    (num_probes,): Lanczos steps taken per probe; ``grid``, ``density``: the smoothed
    density :math:`\frac1m\sum_i\sum_j w_{ij}\,\varphi_\sigma(t - \theta_{ij})` on the grid
    (integrates to 1 over the real line; :math:`\varphi_\sigma` the normal density of
    standard deviation ``sigma``); ``dim``: the operator's dimension (the density
    estimates the eigenvalue counting measure divided by it).

    Example:
        diag(1, 1, 4) has two distinct eigenvalues, so Lanczos stops after 2 steps and
        the quadrature puts the counting measure's weights 2/3 and 1/3 on them; the
        smoothed density integrates to 1.

        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import spectrum
        >>> A = jnp.diag(jnp.array([1.0, 1.0, 4.0]))
        >>> d = spectrum.spectral_density(lambda v: A @ v, 3, A.dtype, num_probes=2)
        >>> w, t = d.weights[0], d.nodes[0]
        >>> d.steps.tolist(), np.round(t[w > 0], 4).tolist(), np.round(w[w > 0], 4).tolist()
        ([2, 2], [1.0, 4.0], [0.6667, 0.3333])
        >>> round(float(np.trapezoid(d.density, d.grid)), 3)
        1.0
    """

    nodes: np.ndarray
    weights: np.ndarray
    steps: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    sigma: float
    hessian: str | None
    dim: int
    selection: np.ndarray | None = None


# --------------------------------------------------------------------------- validation


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype={dtype!r} is not allowed; allowed: a floating dtype") from None
    if not (np.issubdtype(dt, np.floating) or dt.name == "bfloat16"):
        raise ValueError(f"dtype={dt} is not allowed; allowed: a floating dtype")
    return dt


def _key(key: Any) -> jax.Array:
    return jax.random.PRNGKey(0) if key is None else check_key(key)


def _check_k(k: Any, dim: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= dim:
        raise ValueError(
            f"k={k!r} is not allowed; allowed: an integer between 1 and {dim} "
            "(the dimension of the operator: the number of selected parameters)"
        )
    return int(k)


# --------------------------------------------------------------------------- restriction


def parameter_indices(params: Any, selection: Any) -> np.ndarray | None:
    r"""The flat indices (``ravel_pytree`` order) of the parameters ``selection`` picks.

    ``selection`` is one of:

    * ``None`` — all parameters (returns None);
    * a string — the leaves whose ``jax.tree_util.keystr(path)`` starts with it, e.g.
      ``"['w']"`` or ``"[0]['W']"`` (a layer of :func:`advlip.models.init_mlp`);
    * a callable ``path -> bool`` on each leaf's key path;
    * a pytree of booleans with the structure of ``params``: per leaf a bool (the whole
      leaf) or a boolean array of the leaf's shape (entry by entry).

    A selection that picks nothing, or a pytree of another structure, is a ValueError
    naming ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> from advlip import spectrum
        >>> theta = {"b": jnp.zeros(()), "w": jnp.zeros(2)}
        >>> spectrum.parameter_indices(theta, "['w']")
        array([1, 2])
        >>> spectrum.parameter_indices(theta, {"b": True, "w": jnp.array([False, True])})
        array([0, 2])
    """
    if selection is None:
        return None
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(params)
    if not with_paths:
        raise ValueError("params selects nothing: the parameters have no array leaves")
    names = [jax.tree_util.keystr(path) for path, _ in with_paths]
    sizes = [int(np.size(leaf)) for _, leaf in with_paths]
    if isinstance(selection, str):
        masks = [
            np.full(s, name.startswith(selection)) for name, s in zip(names, sizes, strict=True)
        ]
    elif callable(selection):
        masks = [
            np.full(s, bool(selection(path)))
            for (path, _), s in zip(with_paths, sizes, strict=True)
        ]
    else:
        leaves, sel_def = jax.tree.flatten(selection)
        if sel_def != treedef:
            raise ValueError(
                f"params must be None, a key-path prefix (one of {names[:6]}...), a callable "
                f"path -> bool, or a pytree of booleans shaped like the parameters "
                f"({treedef}); got a pytree of structure {sel_def}"
            )
        masks = []
        for name, (_, leaf), sel in zip(names, with_paths, leaves, strict=True):
            arr = np.asarray(sel)
            if arr.dtype != np.bool_:
                raise ValueError(
                    f"params{name} must be a bool or a boolean array, got dtype {arr.dtype}"
                )
            if arr.shape == ():
                masks.append(np.full(int(np.size(leaf)), bool(arr)))
            elif arr.shape == np.shape(leaf):
                masks.append(arr.reshape(-1))
            else:
                raise ValueError(
                    f"params{name} must be a bool or a boolean array of the leaf's shape "
                    f"{np.shape(leaf)}, got shape {arr.shape}"
                )
    idx = np.flatnonzero(np.concatenate(masks))
    if idx.size == 0:
        raise ValueError(
            f"params={selection!r} selects no parameter; allowed: a selection of at least one "
            f"entry (the leaves' key paths are {names})"
        )
    return idx


def restrict(mv: Matvec, indices: Any, dim: int) -> Matvec:
    r"""The principal submatrix :math:`A_{SS}` as an operator on :math:`\mathbb{R}^{|S|}`.

    :math:`u \mapsto (A\,\mathrm{scatter}_S(u))_S`, with ``scatter`` placing ``u`` at
    the flat ``indices`` of a zero vector of length ``dim``: the restriction of
    :math:`P_S A P_S` to the selected coordinates (eigenvalues interlace A's).

    Example:
        >>> import jax.numpy as jnp
        >>> from advlip import spectrum
        >>> A = jnp.arange(9.0).reshape(3, 3)
        >>> spectrum.restrict(lambda v: A @ v, jnp.array([0, 2]), 3)(jnp.array([1.0, 1.0])).tolist()
        [2.0, 14.0]
    """
    return _flat_mv(_call, mv, jnp.asarray(np.asarray(indices), dtype=jnp.int32), dim)


def _embed(vectors: np.ndarray, idx: np.ndarray | None, dim: int) -> np.ndarray:
    if idx is None:
        return vectors
    out = np.zeros((vectors.shape[0], dim), dtype=vectors.dtype)
    out[:, idx] = vectors
    return out


# --------------------------------------------------------------------------- the operator
#
# An operator is the product ``apply(operand)`` on the full vector, restricted by
# ``indices``. ``apply`` is static (hashable) and ``operand`` a pytree, so the compiled
# Lanczos and quadrature programs take the operator's arrays as arguments. An
# :class:`~advlip.adversarial.AdversarialPoint` is a pytree: its programs are compiled
# once per structure (module-level jits) and reused by every later call and point of
# that structure. A bare ``mv`` (a closure, also the streamed point's) gets programs of
# its own, compiled per call and dropped with it (a module-level cache would keep the
# closure's arrays alive). Products outside those programs (the residuals, the trace
# probes) run eagerly, one at a time: each is the operator's own compiled product.


class _Operator(NamedTuple):
    apply: Any  # static: operand -> the flat product v ↦ A v on vectors of length full_dim
    operand: Any  # a pytree of arrays (a point), or the closure itself when local
    indices: jax.Array | None  # the selection S, or None
    full_dim: int
    dim: int  # |S|, or full_dim
    local: bool  # a bare closure: compile its programs per call


def _call(operand: Any) -> Matvec:
    return operand


class _PointApply(NamedTuple):
    """``point.matvec(hessian, solver)``, hashable: the static half of a point's operator
    (built once per program: a factorised solve is made there, outside any loop)."""

    hessian: str
    solver: str

    def __call__(self, point: Any) -> Matvec:
        return point.matvec(hessian=self.hessian, solver=self.solver)


def _bare(mv: Matvec, dim: int) -> _Operator:
    return _Operator(_call, mv, None, dim, dim, True)


def _flat_mv(apply: Any, operand: Any, indices: Any, full_dim: int) -> Matvec:
    mv = apply(operand)
    if indices is None:
        return mv

    def mv_s(u):
        full = jnp.zeros(full_dim, dtype=u.dtype).at[indices].set(u)
        return mv(full)[indices]

    return mv_s


def _host_dtype(dt: np.dtype) -> np.dtype:
    """The dtype of the host-side (NumPy) work: the working dtype (float32 for bfloat16,
    which NumPy's linear algebra does not take)."""
    return dt if dt in (np.dtype(np.float32), np.dtype(np.float64)) else np.dtype(np.float32)


def _host_mv(op: _Operator, dt: np.dtype) -> Callable[[np.ndarray], np.ndarray]:
    """The operator on NumPy vectors, run eagerly: each product is the operator's own
    compiled program (a point's Hessian-vector product, compiled once per structure), and
    the scatter/gather of a restriction is NumPy, so nothing new is compiled here."""
    mv = op.apply(op.operand)
    hdt = _host_dtype(dt)
    idx = None if op.indices is None else np.asarray(op.indices)

    def f(u: np.ndarray) -> np.ndarray:
        if idx is None:
            return np.asarray(mv(jnp.asarray(u, dtype=dt)), dtype=hdt)
        full = np.zeros(op.full_dim, dtype=hdt)
        full[idx] = u
        return np.asarray(mv(jnp.asarray(full, dtype=dt)), dtype=hdt)[idx]

    return f


def _guarded(mv: Matvec) -> Matvec:
    """``mv``, skipped (``lax.cond``) on the zero vector that Lanczos multiplies after a
    breakdown: a run costs the products of its live steps only."""
    return lambda q: lax.cond(jnp.any(q != 0), lambda u: mv(u).astype(u.dtype), jnp.zeros_like, q)


def _lanczos_run(operand, indices, v0, Qp, budget, *, apply, full_dim, num_steps):
    """One Lanczos run in the complement of the rows of ``Qp`` (zero rows: none), at most
    ``budget`` live steps."""
    return spectral.lanczos(
        _guarded(_flat_mv(apply, operand, indices, full_dim)),
        v0,
        num_steps=num_steps,
        max_steps=budget,
        project=lambda w: _project_twice(Qp, w),
    )


def _slq_run(operand, indices, probes, *, apply, full_dim, num_steps):
    """Per probe (one at a time, ``lax.map``): Lanczos, then the nodes and Gauss weights
    of its tridiagonal (slots after a breakdown decoupled, weight 0)."""
    mv = _guarded(_flat_mv(apply, operand, indices, full_dim))

    def one(v):
        res = spectral.lanczos(mv, v, num_steps=num_steps)
        off = jnp.where(jnp.arange(1, num_steps) < res.steps, res.betas[:-1], 0.0)
        T = jnp.diag(res.alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)
        nodes, S = jnp.linalg.eigh(T)
        return nodes, S[0] ** 2, res.steps

    return lax.map(one, probes)


_STATIC = ("apply", "full_dim", "num_steps")
_JITTED = {fn: jax.jit(fn, static_argnames=_STATIC) for fn in (_lanczos_run, _slq_run)}


def _program(op: _Operator, fn: Callable, num_steps: int) -> Callable:
    """``fn`` compiled for ``op``: the shared jit for a point; for a closure, a jit of a
    fresh function that closes over it (its arrays enter as hoisted constants), so no
    cache outlives the call holding the closure."""
    if op.local:

        def fresh(indices, *args):
            return fn(
                op.operand,
                indices,
                *args,
                apply=op.apply,
                full_dim=op.full_dim,
                num_steps=num_steps,
            )

        jitted = jax.jit(fresh)
        return lambda *args: jitted(op.indices, *args)

    def run(*args):
        return _JITTED[fn](
            op.operand, op.indices, *args, apply=op.apply, full_dim=op.full_dim, num_steps=num_steps
        )

    return run


# --------------------------------------------------------------------------- top-k


def _project_twice(Qp: Any, w: Any) -> Any:
    """``w`` minus its components along the rows of ``Qp`` (orthonormal or zero), twice."""
    w = w - Qp.T @ (Qp @ w)
    return w - Qp.T @ (Qp @ w)


def top_eigenvalues(
    mv: Matvec,
    dim: int,
    dtype: Any,
    k: int,
    *,
    num_steps: int | None = None,
    key: jax.Array | None = None,
    return_vectors: bool = True,
) -> TopEigenvalues:
    r"""The ``k`` largest algebraic eigenvalues of a symmetric ``mv`` on :math:`\mathbb{R}^{dim}`.

    Lanczos with full reorthogonalisation (:func:`advlip.spectral.lanczos`) from a
    normal start vector drawn from the first half of ``jax.random.split(key)`` (the start
    of :meth:`~advlip.adversarial.AdversarialPoint.top_eigenvalue`, so ``k = 1`` repeats
    its run), ``num_steps`` products in all (default ``min(dim, max(40, 4k))``, at most
    ``dim``, at least ``k``). After an exact breakdown it restarts in the orthogonal
    complement of the Krylov basis found so far (a key folded from the start key) while
    the budget lasts and the complement may still hold one of the k largest (a restart's
    eigenvalues are copies of those already found, so it stops once a restart's largest
    is below the k-th found). Then one product per returned pair gives its true
    residual; ``bounds`` = residual + its rounding (see :class:`TopEigenvalues`).
    ``mv`` must be JAX-traceable (the Lanczos run is compiled, per call).

    Example:
        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import spectrum
        >>> A = jnp.diag(jnp.array([2.0, 2.0, 0.5, -1.0]))  # 2 is a double eigenvalue
        >>> top = spectrum.top_eigenvalues(lambda v: A @ v, 4, A.dtype, 3, num_steps=4)
        >>> tuple(round(float(x), 4) for x in top.values)
        (2.0, 2.0, 0.5)
        >>> bool(np.allclose(top.vectors @ top.vectors.T, np.eye(3), atol=1e-5))
        True
    """
    dim = check_positive_int("dim", dim)
    return _top_eigenvalues(
        _bare(mv, dim),
        _check_dtype(dtype),
        k,
        num_steps=num_steps,
        key=key,
        return_vectors=return_vectors,
    )


def _top_eigenvalues(
    op: _Operator,
    dt: np.dtype,
    k: Any,
    *,
    num_steps: Any,
    key: Any,
    return_vectors: bool,
) -> TopEigenvalues:
    dim = op.dim
    k = _check_k(k, dim)
    if num_steps is None:
        num_steps = min(dim, max(40, 4 * k))
    num_steps = check_positive_int("num_steps", num_steps)
    if num_steps < k:
        raise ValueError(
            f"num_steps={num_steps} is not allowed; allowed: an integer >= k = {k} "
            "(each Lanczos step adds one Ritz value)"
        )
    num_steps = min(num_steps, dim)
    k_start, _ = jax.random.split(_key(key))
    run = _program(op, _lanczos_run, num_steps)
    hdt = _host_dtype(dt)

    Qp = np.zeros((num_steps, dim), dtype=hdt)  # the Krylov bases found so far, as rows
    v0 = jax.random.normal(k_start, (dim,), dtype=dt)
    used, restarts = 0, 0
    values: list[np.ndarray] = []
    vectors: list[np.ndarray] = []
    while True:
        res = run(v0, jnp.asarray(Qp, dtype=dt), num_steps - used)
        s = int(res.steps)
        # live Ritz pairs: after a breakdown the dead slots' Ritz vectors are 0 (their
        # rows of the Krylov basis are), the live ones unit vectors
        V = np.asarray(res.ritz_vectors, dtype=hdt)
        norms = np.linalg.norm(V, axis=1)
        live = np.flatnonzero(norms > 0.5)
        if live.size != s:  # pragma: no cover - an eigensolver mixing the decoupled blocks
            raise RuntimeError(
                f"Lanczos returned {live.size} unit Ritz vectors for {s} live steps; "
                "rerun with another key or num_steps"
            )
        vals = np.asarray(res.ritz_values, dtype=np.float64)[live]
        vecs = V[live] / norms[live, None]
        found = np.sort(np.concatenate(values)) if values else np.empty(0)
        kth = found[-k] if found.size >= k else -np.inf
        values.append(vals)
        vectors.append(vecs)
        used += s
        Qp[used - s : used] = vecs
        broke = s < num_steps - (used - s)
        if not broke or used >= num_steps or (restarts and np.max(vals) < kth):
            break
        restarts += 1
        raw = np.asarray(
            jax.random.normal(jax.random.fold_in(k_start, restarts), (dim,), dtype=dt), dtype=hdt
        )
        w = _project_twice(Qp, raw)
        # (the complement is empty to rounding: two projections leave γ_{4n+8}‖raw‖)
        if np.linalg.norm(w) <= tolerance.gamma(4 * dim + 8, hdt) * np.linalg.norm(raw):
            break
        v0 = jnp.asarray(w, dtype=dt)
    all_vals = np.concatenate(values)
    all_vecs = np.concatenate(vectors)
    order = np.argsort(-all_vals, kind="stable")[:k]
    if order.size < k:  # pragma: no cover - k ≤ num_steps and a breakdown restarts
        raise ValueError(
            f"num_steps={num_steps} found only {order.size} Ritz pairs; allowed: num_steps "
            f"large enough for k={k} (at most dim={dim})"
        )
    top_vals = all_vals[order]
    top_vecs = all_vecs[order]
    residuals, rounding = _true_residuals(_host_mv(op, dt), top_vals, top_vecs, dt)
    zeros = np.zeros(k)
    return TopEigenvalues(
        values=top_vals,
        vectors=top_vecs if return_vectors else None,
        residuals=residuals,
        bounds=residuals + rounding,
        hessian=None,
        steps=int(used),
        rounding=rounding,
        operator=zeros,
        attack=zeros.copy(),
    )


def _true_residuals(mv, vals, vecs, dt) -> tuple[np.ndarray, np.ndarray]:
    """Per pair ``‖A v − θ v‖`` (one product each, in the working dtype) and its rounding,
    :math:`\\gamma_{2n+8}(\\|Av\\| + |\\theta|)`: the difference and an n-term norm (n + 2
    operations), the normalisation of v (‖v‖ = 1 within :math:`\\gamma_{n+2}`) and the
    Ritz value's own rounding, counted generously."""
    g = tolerance.gamma(2 * vecs.shape[1] + 8, dt)
    res, rnd = [], []
    for lam, v in zip(vals, vecs, strict=True):
        w = mv(v)
        res.append(float(np.linalg.norm(w - w.dtype.type(lam) * v)))
        rnd.append(g * (float(np.linalg.norm(w)) + abs(float(lam))))
    return np.asarray(res, dtype=np.float64), np.asarray(rnd, dtype=np.float64)


# --------------------------------------------------------------------------- trace


def _apply_rows(f: Callable[[np.ndarray], np.ndarray], V: np.ndarray) -> np.ndarray:
    """The host operator applied to each row of V, one product at a time (the memory of one)."""
    return np.stack([f(v) for v in V])


def trace(
    mv: Matvec,
    dim: int,
    dtype: Any,
    *,
    num_samples: int,
    key: jax.Array | None = None,
    method: str = "hutch++",
) -> TraceEstimate:
    r"""Stochastic estimate of :math:`\operatorname{tr} A` from ``num_samples`` products.

    ``method="hutchinson"``: :math:`\frac1m\sum_i g_i^\top A g_i` over m = ``num_samples``
    Rademacher probes (unbiased; variance :math:`2(\|A\|_F^2 - \sum_i A_{ii}^2)/m`).
    ``method="hutch++"`` (at least 3 products): r = ``min(num_samples // 3, dim)``
    Rademacher columns S, :math:`Q = \operatorname{orth}(AS)` (r products),
    :math:`\operatorname{tr}(Q^\top AQ)` (r products), plus Hutchinson on the deflated
    operator with the remaining ``num_samples − 2r`` probes :math:`(I - QQ^\top)g_i`.
    ``standard_error``: the sample standard deviation of the Hutchinson terms over the
    square root of their number (see :class:`TraceEstimate`). The products run one at
    a time, eagerly (``mv`` need not be traceable).

    Example:
        >>> import jax.numpy as jnp
        >>> from advlip import spectrum
        >>> A = jnp.diag(jnp.arange(1.0, 6.0))
        >>> est = spectrum.trace(lambda v: A @ v, 5, A.dtype, num_samples=15)
        >>> round(est.estimate, 3), est.num_matvecs
        (15.0, 15)
        >>> h = spectrum.trace(lambda v: A @ v, 5, A.dtype, num_samples=8, method="hutchinson")
        >>> round(h.estimate, 3)  # Rademacher probes are exact on a diagonal matrix
        15.0
    """
    dim = check_positive_int("dim", dim)
    dt = _check_dtype(dtype)
    return _trace(
        _host_mv(_bare(mv, dim), dt), dim, dt, num_samples=num_samples, key=key, method=method
    )


def _trace(f, dim: int, dt: np.dtype, *, num_samples, key, method) -> TraceEstimate:
    if method not in TRACE_METHODS:
        raise ValueError(f"method={method!r} is not allowed; allowed: {', '.join(TRACE_METHODS)}")
    minimum = 3 if method == "hutch++" else 1
    if (
        isinstance(num_samples, bool)
        or not isinstance(num_samples, int | np.integer)
        or num_samples < minimum
    ):
        why = " (a third sketches the range, a third multiplies it, the rest probe)"
        raise ValueError(
            f"num_samples={num_samples!r} is not allowed; allowed: an integer >= {minimum} "
            f"for method={method!r}" + (why if minimum == 3 else "")
        )
    m = int(num_samples)
    k_sketch, k_probe = jax.random.split(_key(key))
    hdt = _host_dtype(dt)

    def signs(k, rows):  # Rademacher ±1, exact in any dtype
        return np.asarray(jax.random.rademacher(k, (rows, dim), dtype=jnp.int8), dtype=hdt)

    low_rank = 0.0
    if method == "hutchinson":
        G = signs(k_probe, m)
    else:
        r = min(m // 3, dim)
        Q, _ = np.linalg.qr(_apply_rows(f, signs(k_sketch, r)).T)  # (dim, r), orthonormal
        low_rank = float(np.sum(Q.T * _apply_rows(f, Q.T)))
        G = signs(k_probe, m - 2 * r)
        G = G - (G @ Q) @ Q.T
    z = np.sum(G * _apply_rows(f, G), axis=1).astype(np.float64)
    g = z.size
    se = float(np.std(z, ddof=1) / math.sqrt(g)) if g > 1 else math.inf
    return TraceEstimate(
        estimate=low_rank + float(np.mean(z)),
        standard_error=se,
        num_matvecs=m,
        method=method,
        hessian=None,
        samples=z,
        low_rank=low_rank,
    )


# --------------------------------------------------------------------------- density


def smoothed_density(
    nodes: Any, weights: Any, grid: Any = None, sigma: float | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    r"""``(grid, density, sigma)``: :math:`\frac1m\sum_{i,j} w_{ij}\varphi_\sigma(t-\theta_{ij})`.

    ``nodes``, ``weights``: (m, k), one row per probe. Default ``sigma``: 1 % of the span
    of the weighted nodes (1 % of their magnitude, or 1, when they all coincide); default
    grid: :data:`GRID_POINTS` points from 4σ below the smallest weighted node to 4σ above
    the largest.

    Example:
        >>> import numpy as np
        >>> from advlip import spectrum
        >>> t, d, s = spectrum.smoothed_density(np.array([[0.0, 1.0]]), np.array([[0.5, 0.5]]))
        >>> bool(abs(np.trapezoid(d, t) - 1.0) < 1e-3), s
        (True, 0.01)
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if nodes.ndim != 2 or nodes.shape != weights.shape:
        raise ValueError(
            f"nodes and weights must have one shape (num_probes, num_steps), got "
            f"{nodes.shape} and {weights.shape}"
        )
    used = nodes[weights > 0] if np.any(weights > 0) else nodes.ravel()
    lo, hi = float(np.min(used)), float(np.max(used))
    if sigma is None:
        span, size = hi - lo, max(abs(hi), abs(lo))
        sigma = 0.01 * (span if span > 0 else size if size > 0 else 100.0)
    else:
        sigma_in = sigma
        try:
            sigma = float(sigma)
        except (TypeError, ValueError):
            sigma = math.nan
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma={sigma_in!r} is not allowed; allowed: a finite real > 0")
    if grid is None:
        grid = np.linspace(lo - 4 * sigma, hi + 4 * sigma, GRID_POINTS)
    else:
        grid_in = grid
        grid = np.asarray(grid, dtype=np.float64)
        if grid.ndim != 1 or grid.size < 1 or not np.all(np.isfinite(grid)):
            raise ValueError(
                f"grid={grid_in!r} is not allowed; allowed: a non-empty 1-D array of finite reals"
            )
    m = nodes.shape[0]
    density = np.zeros(grid.size)
    for th, w in zip(nodes, weights, strict=True):  # one probe at a time: memory k × grid
        z = (grid[:, None] - th[None, :]) / sigma
        density += np.exp(-0.5 * z * z) @ w
    density /= m * sigma * math.sqrt(2.0 * math.pi)
    return grid, density, float(sigma)


def spectral_density(
    mv: Matvec,
    dim: int,
    dtype: Any,
    *,
    num_probes: int = 8,
    num_steps: int | None = None,
    key: jax.Array | None = None,
    grid: Any = None,
    sigma: float | None = None,
) -> SpectralDensity:
    r"""Stochastic Lanczos quadrature of the spectrum of a symmetric ``mv``.

    ``num_probes`` Rademacher probes :math:`q_i = g_i/\sqrt{dim}` from ``key``; per probe
    ``num_steps`` Lanczos steps (default ``min(dim, 40)``, at most ``dim``; the probes run
    one after another in one compiled program, so ``mv`` must be JAX-traceable), the
    nodes and weights of the Gauss quadrature of its tridiagonal, and the
    Gaussian-smoothed average density on ``grid`` (:func:`smoothed_density`).
    :math:`\sum_j w_{ij}\theta_{ij}^p = q_i^\top A^p q_i` for p < 2·steps, so the mean over
    probes of the first moment is Hutchinson's estimate of :math:`\operatorname{tr}A/dim`.

    Example:
        >>> import jax.numpy as jnp, numpy as np
        >>> from advlip import spectrum
        >>> A = jnp.diag(jnp.array([1.0, 1.0, 4.0]))
        >>> d = spectrum.spectral_density(lambda v: A @ v, 3, A.dtype, num_probes=2)
        >>> round(float(np.mean(np.sum(d.weights * d.nodes, axis=1))), 4)  # tr A / 3
        2.0
    """
    dim = check_positive_int("dim", dim)
    return _spectral_density(
        _bare(mv, dim),
        _check_dtype(dtype),
        num_probes=num_probes,
        num_steps=num_steps,
        key=key,
        grid=grid,
        sigma=sigma,
    )


def _spectral_density(
    op: _Operator, dt: np.dtype, *, num_probes, num_steps, key, grid, sigma
) -> SpectralDensity:
    dim = op.dim
    num_probes = check_positive_int("num_probes", num_probes)
    num_steps = min(dim, 40) if num_steps is None else check_positive_int("num_steps", num_steps)
    num_steps = min(num_steps, dim)
    if sigma is not None or grid is not None:  # validate before the Lanczos runs
        smoothed_density(np.zeros((1, 1)), np.ones((1, 1)), grid, sigma)
    probes = jax.random.rademacher(_key(key), (num_probes, dim), dtype=dt) / jnp.sqrt(
        jnp.asarray(dim, dtype=dt)
    )
    nodes, weights, steps = _program(op, _slq_run, num_steps)(probes)
    nodes = np.asarray(nodes, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    grid, density, sigma = smoothed_density(nodes, weights, grid, sigma)
    return SpectralDensity(
        nodes=nodes,
        weights=weights,
        steps=np.asarray(steps),
        grid=grid,
        density=density,
        sigma=sigma,
        hessian=None,
        dim=dim,
    )


# --------------------------------------------------------------------------- on a point


def _point_operator(point: Any, hessian: str, solver: str, params: Any):
    """``(operator, selected indices or None)`` of a point's (restricted) Hessian: the point
    itself as the operand when it is a pytree (:class:`~advlip.adversarial.AdversarialPoint`:
    programs shared across calls), else its :meth:`matvec` closure
    (:class:`~advlip.streaming.StreamedPoint`)."""
    from advlip.adversarial import AdversarialPoint

    if hessian not in ("total", "naive"):
        raise ValueError(f"hessian={hessian!r} is not allowed; allowed: 'total', 'naive'")
    solver = point._solver(solver)
    P = point.dim
    idx = parameter_indices(point.params, params)
    indices = None if idx is None else jnp.asarray(idx, dtype=jnp.int32)
    size = P if idx is None else int(idx.size)
    if isinstance(point, AdversarialPoint) or getattr(point, "is_operand", False):
        # a pytree point (advlip.distributed's too: it must be an argument, its arrays
        # span other processes and a program may not close over them)
        return _Operator(_PointApply(hessian, solver), point, indices, P, size, False), idx
    mv = point.matvec(hessian=hessian, solver=solver)
    return _Operator(_call, mv, indices, P, size, True), idx


def _point_top_eigenvalues(
    point: Any,
    k: int,
    *,
    hessian: str = "total",
    num_steps: int | None = None,
    key: jax.Array | None = None,
    params: Any = None,
    solver: str = "auto",
    return_vectors: bool = True,
) -> TopEigenvalues:
    """What :meth:`AdversarialPoint.top_eigenvalues` and :meth:`StreamedPoint.top_eigenvalues`
    run: the Lanczos top-k on the (restricted) operator, plus per pair the point's
    :meth:`eigen_error` at the (embedded) Ritz vector with the second half of the key."""
    key = _key(key)
    op, idx = _point_operator(point, hessian, solver, params)
    top = _top_eigenvalues(op, point.dtype, k, num_steps=num_steps, key=key, return_vectors=True)
    _, k_probe = jax.random.split(key)
    full = _embed(top.vectors, idx, point.dim)
    solver = point._solver(solver)
    operator, attack, exact = [], [], True
    for vec in full:
        err = point.eigen_error(jnp.asarray(vec), hessian=hessian, key=k_probe, solver=solver)
        operator.append(err.operator)
        attack.append(err.attack)
        exact = exact and err.exact
    operator = np.asarray(operator, dtype=np.float64)
    attack = np.asarray(attack, dtype=np.float64)
    return top._replace(
        vectors=full if return_vectors else None,
        bounds=top.residuals + top.rounding + operator + attack,
        hessian=hessian,
        operator=operator,
        attack=attack,
        exact_scale=bool(exact),
        selection=idx,
    )


def _point_trace(
    point: Any,
    *,
    hessian: str = "total",
    num_samples: int = 30,
    key: jax.Array | None = None,
    method: str = "hutch++",
    params: Any = None,
    solver: str = "auto",
) -> TraceEstimate:
    """What the points' ``trace`` methods run: the estimator on the (restricted) operator."""
    key = _key(key)
    op, idx = _point_operator(point, hessian, solver, params)
    dt = point.dtype
    est = _trace(_host_mv(op, dt), op.dim, dt, num_samples=num_samples, key=key, method=method)
    return est._replace(hessian=hessian, selection=idx)


def _point_spectral_density(
    point: Any,
    *,
    hessian: str = "total",
    num_probes: int = 8,
    num_steps: int | None = None,
    key: jax.Array | None = None,
    grid: Any = None,
    sigma: float | None = None,
    params: Any = None,
    solver: str = "auto",
) -> SpectralDensity:
    """What the points' ``spectral_density`` methods run: SLQ on the (restricted) operator."""
    key = _key(key)
    op, idx = _point_operator(point, hessian, solver, params)
    dens = _spectral_density(
        op,
        point.dtype,
        num_probes=num_probes,
        num_steps=num_steps,
        key=key,
        grid=grid,
        sigma=sigma,
    )
    return dens._replace(hessian=hessian, selection=idx)
