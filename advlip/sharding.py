"""Spread a sweep's batch axis over every JAX device (GPUs, TPU cores, or CPU "devices").

Sweeps — pairs, grids over p, ε, seeds — are embarrassingly parallel along their
batch axis. :func:`shard_rows` pads that axis to a multiple of the device count
and places it with a ``NamedSharding`` over a one-axis ``Mesh``; a ``jax.jit`` of a
``vmap`` then runs each device's rows where they live (GSPMD), and
:func:`unpad` drops the padding. On one device nothing moves.

Several hosts: start every process with ``jax.distributed.initialize()`` (see the
README); ``jax.devices()`` then lists every host's devices and the same code shards
over all of them.

Examples:
    >>> import jax.numpy as jnp
    >>> from advlip import sharding
    >>> (x,), n = sharding.shard_rows(jnp.ones((5, 3)))
    >>> sharding.unpad(x, n).shape
    (5, 3)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["device_count", "batch_sharding", "shard_rows", "unpad"]


def device_count() -> int:
    """How many devices JAX sees (every host's, after ``jax.distributed.initialize()``).

    Examples:
        >>> import jax
        >>> from advlip.sharding import device_count
        >>> device_count() == len(jax.devices()) >= 1
        True
    """
    return jax.device_count()


def batch_sharding() -> NamedSharding:
    """Rows split over all devices, everything else replicated.

    Examples:
        >>> from advlip.sharding import batch_sharding, device_count
        >>> s = batch_sharding()
        >>> s.mesh.axis_names, s.mesh.size == device_count()   # one mesh axis over every device
        (('batch',), True)
    """
    mesh = Mesh(np.asarray(jax.devices()), ("batch",))
    return NamedSharding(mesh, PartitionSpec("batch"))


def shard_rows(*arrays: jax.Array) -> tuple[tuple[jax.Array, ...], int]:
    """Pad the leading axis of every array to a multiple of the device count and shard it.

    Returns the placed arrays and the original row count (for :func:`unpad`). Padding
    repeats the first row, so padded rows compute finite, discarded values.

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.sharding import device_count, shard_rows, unpad
        >>> (a, b), n = shard_rows(jnp.arange(5.0), jnp.ones((5, 2)))
        >>> n, a.shape[0] % device_count(), b.shape[1]   # 5 rows, padded to a multiple
        (5, 0, 2)
        >>> unpad(a * 2.0, n).tolist()   # work on the placed rows, then drop the padding
        [0.0, 2.0, 4.0, 6.0, 8.0]
    """
    n = int(np.shape(arrays[0])[0])
    if any(int(np.shape(a)[0]) != n for a in arrays):
        raise ValueError(
            f"shard_rows: arrays disagree on the batch size: {[np.shape(a) for a in arrays]}"
        )
    k = device_count()
    if k == 1:
        return tuple(jnp.asarray(a) for a in arrays), n
    pad = (-n) % k
    sh = batch_sharding()
    out = []
    for a in arrays:
        a = jnp.asarray(a)
        if pad:
            a = jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)], axis=0)
        out.append(jax.device_put(a, sh))
    return tuple(out), n


def unpad(x: jax.Array, n: int) -> jax.Array:
    """Drop the padding rows added by :func:`shard_rows`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from advlip.sharding import unpad
        >>> unpad(jnp.array([1, 2, 3, 1]), 3).tolist()   # the last row was padding
        [1, 2, 3]
    """
    return x[:n]
