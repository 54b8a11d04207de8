r"""Curvature of the adversarial loss over a dataset sharded across processes.

On JAX's own multi-process runtime (``jax.distributed.initialize``: several GPUs on one
host, several hosts under SLURM, a TPU pod), every process holds its own rows of the
dataset, attacks only those, and the loss, the Danskin gradient and every Hessian-vector
product are reduced across processes by JAX collectives:

.. math:: L(\theta) = \sum_{p} w_p L_p(\theta),\qquad
          \nabla^2 L\,v = \sum_p w_p \nabla^2 L_p\, v,\qquad w_p = n_p / n,

with :math:`L_p` the mean attacked loss of process p's :math:`n_p` rows. A
Hessian-vector product is one compiled program on every process: each process applies
its own (streamed) point — :func:`advlip.streaming.linearize_batches`, a batch at a time
— inside ``jax.shard_map`` over a mesh with one device per process, and ``lax.psum``
sums the weighted products. The spectrum methods (:meth:`DistributedPoint.top_eigenvalues`,
:meth:`~DistributedPoint.trace`, :meth:`~DistributedPoint.spectral_density`) run the
same Lanczos / Hutch++ / SLQ programs as on one process, so every process computes the
same numbers, and each process can print or save them.

Error bounds add, to the per-process bounds weighted by :math:`w_p`, the rounding of the
sum over processes, :math:`\gamma_{N+2}\sum_p w_p(|\hat h_p| + e_p)` for N processes —
the same form as the sum over batches of :mod:`advlip.streaming`. Every process must hold
the same number of rows (the programs must have the same shapes everywhere):
:func:`process_rows` cuts a dataset that way.

Run one process per accelerator; with one process (no ``jax.distributed``) everything
here is the single-process computation. The launch lines are in the README (*Several
devices, several hosts*).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from advlip import streaming, tolerance
from advlip._validate import check_positive_int

__all__ = ["DistributedPoint", "linearize", "process_mesh", "process_rows"]

_AXIS = "processes"


def process_rows(
    n: int, *, process_index: int | None = None, process_count: int | None = None
) -> slice:
    """This process's rows of a dataset of ``n`` rows: the ``process_index``-th of
    ``process_count`` equal, consecutive blocks (defaults: ``jax.process_index()`` and
    ``jax.process_count()``).

    Raises ``ValueError`` when ``n`` is not a multiple of the number of processes: every
    process must run programs of the same shapes (drop or add rows yourself, and say so).

    Example:
        >>> from advlip import distributed
        >>> distributed.process_rows(10, process_index=1, process_count=2)
        slice(5, 10, None)
        >>> distributed.process_rows(12)  # one process: every row
        slice(0, 12, None)
    """
    n = check_positive_int("n", n)
    count = (
        jax.process_count()
        if process_count is None
        else check_positive_int("process_count", process_count)
    )
    index = jax.process_index() if process_index is None else int(process_index)
    if not 0 <= index < count:
        raise ValueError(
            f"process_index={index} is not allowed; allowed: 0 <= process_index < {count}"
        )
    if n % count:
        raise ValueError(
            f"n={n} rows do not split evenly over {count} processes; allowed: n a multiple of "
            f"{count} (every process must hold the same number of rows)"
        )
    m = n // count
    return slice(index * m, (index + 1) * m)


def process_mesh() -> Mesh:
    """A one-axis mesh with the first local device of every process, in process order.

    Example:
        >>> from advlip import distributed
        >>> dict(distributed.process_mesh().shape)  # one process here
        {'processes': 1}
    """
    devices = [
        min((d for d in jax.devices() if d.process_index == i), key=lambda d: d.id)
        for i in range(jax.process_count())
    ]
    return Mesh(np.array(devices), (_AXIS,))


def _allsum(tree: Any, weight: float) -> Any:
    """:math:`\\sum_p w_p t_p` of a pytree of host arrays, identical on every process
    (gathered by a JAX collective, summed in process order in float64)."""
    leaves, treedef = jax.tree.flatten(tree)
    local = [weight * np.asarray(x, dtype=np.float64) for x in leaves]
    if jax.process_count() == 1:
        return jax.tree.unflatten(treedef, local)
    gathered = multihost_utils.process_allgather(local, tiled=False)
    return jax.tree.unflatten(treedef, [np.sum(np.asarray(g), axis=0) for g in gathered])


def _global(mesh: Mesh, tree: Any) -> Any:
    """Each array leaf as a global array of shape (N, *shape), process p's block p."""
    sharding = NamedSharding(mesh, P(_AXIS))
    count = mesh.devices.size

    def one(a):
        a = np.asarray(a)[None]
        return jax.make_array_from_process_local_data(sharding, a, (count,) + a.shape[1:])

    return jax.tree.map(one, tree)


@dataclasses.dataclass(frozen=True, eq=False)
class DistributedPoint:
    r"""The attack at θ over a dataset sharded across processes, and the total curvature.

    Built by :func:`linearize` (every process calls it with its own rows). Offers what a
    single-process point offers for the whole dataset: :meth:`loss`, :meth:`grad`,
    :meth:`total_hvp`, :meth:`naive_hvp`, :meth:`matvec`, :meth:`hvp_error`,
    :meth:`eigen_error`, :meth:`top_eigenvalues`, :meth:`trace`,
    :meth:`spectral_density`, :meth:`summary`, :meth:`require_determined`; ``local`` is
    this process's :class:`~advlip.streaming.StreamedPoint` (its rows' δ, cases, status).
    A pytree: the spectrum programs take it as an argument, as they take a point.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from advlip import distributed, models
        >>> X = jnp.array([[1.0, 0.5], [-0.3, 1.2], [0.8, -1.0], [0.2, 0.4]])
        >>> y = jnp.array([1.0, -1.0, 1.0, -1.0])
        >>> rows = distributed.process_rows(4)          # this process's rows
        >>> w = {"w": jnp.array([0.7, -0.2]), "b": jnp.array(0.1)}
        >>> pt = distributed.linearize(models.LinearLoss(), w, X[rows], y[rows], eps=0.1, p=2)
        >>> pt.n, pt.process_count
        (4, 1)
        >>> bool(jnp.isfinite(pt.loss()))
        True
    """

    local: streaming.StreamedPoint
    mesh: Mesh
    n: int
    weight: float
    args: tuple  # the global (stacked per process) arguments of the streamed product
    solver: str  # "dense" (factorised tangent solves held in args) or "cg"
    static: tuple  # the product's static half: (the loss's static part, ravel spec, CG steps)
    #: the spectrum programs take the point itself as their (pytree) operand
    is_operand = True

    @property
    def process_count(self) -> int:
        """The number of processes the dataset is sharded over."""
        return int(self.mesh.devices.size)

    @property
    def dim(self) -> int:
        """P, the number of parameters."""
        return self.local.dim

    @property
    def dtype(self) -> np.dtype:
        """The working dtype (the local point's)."""
        return self.local.dtype

    @property
    def params(self) -> Any:
        """The parameters θ (the same on every process)."""
        return self.local.params

    def _solver(self, solver: str) -> str:
        """The tangent solve of the products: ``"cg"`` always; ``"dense"`` when the point
        holds the factorised solves (built with ``solver="dense"`` or ``"auto"`` at small d)."""
        resolved = self.local._solver(solver)
        if solver == "auto":
            return self.solver
        if resolved == "dense" and self.solver != "dense":
            raise ValueError(
                "solver='dense' is not allowed here: this point was built without the "
                "factorised tangent solves; allowed: 'cg', 'auto' (or pass solver='dense' "
                "to advlip.distributed.linearize)"
            )
        return resolved

    # -- reductions -----------------------------------------------------------
    def _rounding(self) -> float:
        """:math:`\\gamma_{N+2}`: the relative error of :math:`\\sum_p w_p t_p` over N
        processes (N products, N additions, the rounding of :math:`w_p`)."""
        return tolerance.gamma(self.process_count + 2, self.dtype)

    def loss(self) -> jax.Array:
        """:math:`L(\\theta) = \\sum_p w_p L_p`, the mean attacked loss over every row."""
        return jnp.asarray(_allsum(self.local.loss(), self.weight), dtype=self.dtype)

    def grad(self) -> Any:
        """The Danskin gradient :math:`\\sum_p w_p \\nabla L_p`, a pytree like ``params``."""
        g = _allsum(self.local.grad(), self.weight)
        return jax.tree.map(lambda a: jnp.asarray(a, dtype=self.dtype), g)

    def summary(self) -> dict[str, Any]:
        """The cases and undetermined examples of every process, counted together."""
        cases: dict[str, int] = {}
        mine = self.local.summary()["cases"]
        if self.process_count > 1:
            import json

            text = json.dumps(mine).encode()
            size = multihost_utils.process_allgather(np.array([len(text)]), tiled=False)
            pad = np.zeros(int(np.max(size)), dtype=np.uint8)
            pad[: len(text)] = np.frombuffer(text, dtype=np.uint8)
            rows = multihost_utils.process_allgather(pad, tiled=False)
            for row, s in zip(np.asarray(rows), np.asarray(size).ravel(), strict=True):
                for k, v in json.loads(bytes(row[: int(s)]).decode()).items():
                    cases[k] = cases.get(k, 0) + v
        else:
            cases = dict(mine)
        return {"n": self.n, "processes": self.process_count, "cases": cases}

    @property
    def all_determined(self) -> bool:
        """Whether the total Hessian is determined at every example of every process."""
        bad = np.array([0.0 if self.local.all_determined else 1.0])
        return float(np.sum(_allsum(bad, 1.0))) == 0.0

    def require_determined(self) -> None:
        """Raise (on every process) unless every example of every process is determined;
        the message is this process's (:meth:`advlip.streaming.StreamedPoint.require_determined`)."""
        if not self.all_determined:
            if not self.local.all_determined:
                self.local.require_determined()
            raise ValueError(
                "the total Hessian is undetermined at examples of another process; "
                "see that process's message"
            )

    # -- second order ---------------------------------------------------------
    def matvec(self, *, hessian: str = "total", solver: str = "auto") -> Callable:
        r"""The flat product :math:`v \mapsto \sum_p w_p \nabla^2 L_p v` as one compiled
        program on every process (``shard_map`` over the processes, ``psum``)."""
        streaming._check_choice("hessian", hessian, ("total", "naive"))
        solver = self._solver(solver)
        static, spec, cg_maxiter = self.static
        mesh = self.mesh
        dt = self.dtype

        def mv(v):
            v = jnp.asarray(v, dtype=dt)
            dyn, params, full, last, w_full, w_last = self.args
            if solver == "cg":  # drop the factorised solves: CG in x-space
                full, last = (None if t is None else (*t[:4], None) for t in (full, last))

            def body(dyn, params, full, last, w_full, w_last, v):
                one = jax.tree.map(lambda a: a[0], (full, last, w_full, w_last))
                local = streaming._stream_apply(
                    static, dyn, spec, params, *one, v, hessian, cg_maxiter
                )
                return jax.lax.psum(local, _AXIS)

            stacked = P(_AXIS)
            return jax.shard_map(
                body,
                mesh=mesh,
                in_specs=(P(), P(), stacked, stacked, stacked, stacked, P()),
                out_specs=P(),
                check_vma=False,
            )(dyn, params, full, last, w_full, w_last, v)

        return mv

    def total_hvp(self, v: Any) -> Any:
        r""":math:`\nabla^2 L\, v` over every row; ``v`` a pytree like ``params`` or flat."""
        vflat, flat = self.local._flat(v)
        out = _apply(self, vflat, hessian="total", solver="auto")
        return out if flat else self.local._unflat(out)

    def naive_hvp(self, v: Any) -> Any:
        r""":math:`H_{\theta\theta} v` with δ held at δ*, over every row."""
        vflat, flat = self.local._flat(v)
        out = _apply(self, vflat, hessian="naive", solver="auto")
        return out if flat else self.local._unflat(out)

    def hvp_error(self, v: Any, *, hessian: str = "total") -> Any:
        r"""Componentwise bound on the error of :meth:`total_hvp` (or :meth:`naive_hvp`):
        :math:`\sum_p w_p e_p + \gamma_{N+2}\sum_p w_p(|\hat h_p| + e_p)`, with :math:`e_p`
        the local :meth:`~advlip.streaming.StreamedPoint.hvp_error`."""
        vflat, flat = self.local._flat(v)
        e = np.asarray(self.local.hvp_error(vflat, hessian=hessian), dtype=np.float64)
        h = self.local.total_hvp(vflat) if hessian == "total" else self.local.naive_hvp(vflat)
        mag = np.abs(np.asarray(h, dtype=np.float64)) + e
        err, mag = _allsum((e, mag), self.weight)
        err = err + self._rounding() * mag
        return err if flat else self.local._unflat_np(err)

    def eigen_error(
        self, vec: Any, *, hessian: str = "total", key: Any = None, solver: str = "cg"
    ) -> Any:
        """The error parts of an eigen-estimate at ``vec``: the processes' parts
        (:meth:`advlip.streaming.StreamedPoint.eigen_error`) combined with the weights,
        plus the rounding of the sum over processes."""
        from advlip import adversarial

        e = self.local.eigen_error(vec, hessian=hessian, key=key, solver=solver)
        op, attack, scale, inexact = _allsum(
            (
                np.array(e.operator),
                np.array(e.attack),
                np.array(e.scale),
                np.array(float(not e.exact)),
            ),
            self.weight,
        )
        op = float(op) + self._rounding() * (float(scale) + float(op))
        return adversarial.EigenError(op, float(attack), float(inexact) == 0.0, float(scale))

    def top_eigenvalues(self, k: int, **kwargs: Any) -> Any:
        """As :meth:`advlip.streaming.StreamedPoint.top_eigenvalues`, over every row."""
        from advlip import spectrum

        return spectrum._point_top_eigenvalues(self, k, **kwargs)

    def trace(self, **kwargs: Any) -> Any:
        """As :meth:`advlip.streaming.StreamedPoint.trace`, over every row."""
        from advlip import spectrum

        return spectrum._point_trace(self, **kwargs)

    def spectral_density(self, **kwargs: Any) -> Any:
        """As :meth:`advlip.streaming.StreamedPoint.spectral_density`, over every row."""
        from advlip import spectrum

        return spectrum._point_spectral_density(self, **kwargs)


def linearize(
    loss_fn: Callable,
    params: Any,
    X: Any,
    y: Any,
    *,
    eps: Any,
    p: float,
    batch_size: int | None = None,
    progress: bool | None = None,
    solver: str = "auto",
    **attack_options: Any,
) -> DistributedPoint:
    r"""Every process attacks its own rows ``X, y``; the point sums over all processes.

    Call it on every process with the same ``loss_fn``, ``params``, ``eps``, ``p`` and
    options, and that process's rows (:func:`process_rows`; the same number everywhere).
    ``batch_size`` streams the local rows (:func:`advlip.streaming.linearize_batches`;
    default: all of them in one batch). A ``key`` in ``attack_options`` is folded with the
    process index, so no two processes draw the same starts.

    Example:
        >>> import jax.numpy as jnp
        >>> from advlip import distributed, models
        >>> X = jnp.array([[1.0, 0.5], [-0.3, 1.2]]); y = jnp.array([1.0, -1.0])
        >>> pt = distributed.linearize(models.LinearLoss(), {"w": jnp.array([0.7, -0.2]),
        ...                            "b": jnp.array(0.0)}, X, y, eps=0.1, p=2)
        >>> pt.summary()["cases"]
        {'l2_boundary': 2}
    """
    n_local = int(np.shape(X)[0])
    batch_size = n_local if batch_size is None else check_positive_int("batch_size", batch_size)
    shapes = np.array([n_local, batch_size, np.size(np.asarray(X)) // max(n_local, 1)])
    if jax.process_count() > 1:
        every = np.asarray(multihost_utils.process_allgather(shapes, tiled=False))
        if not np.all(every == every[0]):
            raise ValueError(
                "X is not allowed: every process must pass the same number of rows, of the same "
                f"size, with the same batch_size; got (rows, batch_size, row size) per process "
                f"{every.tolist()} (use advlip.distributed.process_rows)"
            )
    if "key" in attack_options and attack_options["key"] is not None:
        attack_options["key"] = jax.random.fold_in(attack_options["key"], jax.process_index())
    local = streaming.linearize_batches(
        loss_fn,
        params,
        X,
        y,
        eps=eps,
        p=p,
        batch_size=batch_size,
        progress=progress,
        **attack_options,
    )
    count = jax.process_count()
    n = n_local * count
    weight = n_local / n
    mesh = process_mesh()
    solver = local._solver(solver)
    static, dyn, spec, params_, full, last, w_full, w_last = local._stream_args(
        dense=solver == "dense"
    )
    dt = local.dtype
    stacked = _global(
        mesh,
        (
            full,
            last,
            jnp.asarray(w_full * weight, dtype=dt),
            jnp.asarray(w_last * weight, dtype=dt),
        ),
    )
    args = (dyn, params_, *stacked)
    static_half = (static, spec, local._points[0].cg_maxiter)
    return DistributedPoint(
        local=local, mesh=mesh, n=n, weight=weight, args=args, solver=solver, static=static_half
    )


@functools.partial(jax.jit, static_argnames=("hessian", "solver"))
def _apply(point: DistributedPoint, v: jax.Array, *, hessian: str, solver: str) -> jax.Array:
    """One product, compiled with the point as an argument (a program may not close over
    arrays that span other processes)."""
    return point.matvec(hessian=hessian, solver=solver)(v)


def _flatten(pt: DistributedPoint):
    return (pt.args,), (pt.local, pt.mesh, pt.n, pt.weight, pt.solver, pt.static)


def _unflatten(aux, children) -> DistributedPoint:
    local, mesh, n, weight, solver, static = aux
    return DistributedPoint(
        local=local, mesh=mesh, n=n, weight=weight, args=children[0], solver=solver, static=static
    )


# A pytree: the global arrays are the leaves (passed to the compiled spectrum programs as
# arguments — JAX does not let a program close over arrays of other processes).
jax.tree_util.register_pytree_node(DistributedPoint, _flatten, _unflatten)
