"""Spread a sweep's batch axis over every JAX device (GPUs, TPU cores, or CPU "devices").

Sweeps — pairs, grids over p, ε, seeds — are embarrassingly parallel along their
batch axis. :func:`shard_rows` pads that axis to a multiple of the device count
and places it with a ``NamedSharding`` over a one-axis ``Mesh``; a ``jax.jit`` of a
``vmap`` then runs each device's rows where they live (GSPMD), and
:func:`unpad` drops the padding. On one device nothing moves.

Several hosts: start every process with ``jax.distributed.initialize()`` (see the
README); ``jax.devices()`` then lists every host's devices and the same code shards
over all of them.

Example:
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
    return jax.device_count()


def batch_sharding() -> NamedSharding:
    """Rows split over all devices, everything else replicated."""
    mesh = Mesh(np.asarray(jax.devices()), ("batch",))
    return NamedSharding(mesh, PartitionSpec("batch"))


def shard_rows(*arrays: jax.Array) -> tuple[tuple[jax.Array, ...], int]:
    """Pad the leading axis of every array to a multiple of the device count and shard it.

    Returns the placed arrays and the original row count (for :func:`unpad`). Padding
    repeats the first row, so padded rows compute finite, discarded values.
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
    """Drop the padding rows added by :func:`shard_rows`."""
    return x[:n]
