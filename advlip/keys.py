r"""JAX keys in, NumPy generators out: every random draw of the library comes from a key.

The library takes explicit ``jax.random`` keys; integer seeds appear only at the
command line (``--seed N`` becomes ``jax.random.PRNGKey(N)``). Draws that are cheaper
in NumPy (datasets, splits, initial weights, test points) use a NumPy generator
seeded by the key's bits, so they replay from the key and cost no compilation.

The key's bits are read as one integer (most significant word first), and that integer,
followed by any ``tags``, seeds the generator. For ``jax.random.PRNGKey(N)`` the integer
is ``N`` itself, so :func:`numpy_rng` ``(PRNGKey(N), *tags)`` draws exactly what
``np.random.default_rng([N, *tags])`` draws, and :func:`key_seed` recovers ``N`` (the
``--seed`` that replays a run).

Examples:
    >>> import jax, numpy as np
    >>> from advlip import keys
    >>> key = jax.random.PRNGKey(7)
    >>> keys.key_seed(key)
    7
    >>> bool(keys.numpy_rng(key, 3).uniform() == np.random.default_rng([7, 3]).uniform())
    True
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

__all__ = ["check_key", "key_seed", "numpy_rng"]


def _bits(key: Any, name: str) -> list[int]:
    if isinstance(key, bool | int | np.integer):
        raise ValueError(
            f"{name}={key!r} is an integer; allowed: a JAX PRNG key, e.g. "
            f"jax.random.PRNGKey({int(key)}) (integer seeds are for the command line only)"
        )
    try:
        if jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
            # a concrete key closed over by a jitted function: read its bits now, not
            # as a staged operation (which would be a tracer)
            with jax.ensure_compile_time_eval():
                data = jax.random.key_data(key)
        else:
            data = np.asarray(key)
            if data.dtype != np.uint32 or data.ndim != 1 or data.size < 2:
                raise TypeError
        bits = np.asarray(data)
    except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
        traced = isinstance(key, jax.core.Tracer)
        raise ValueError(
            f"{name} must be one concrete JAX PRNG key (jax.random.PRNGKey(n) or "
            f"jax.random.key(n)), got {type(key).__name__} of shape {getattr(key, 'shape', ())}"
            + (
                "; a traced key has no bits to seed NumPy draws: pass it in from outside jit"
                if traced
                else ""
            )
        ) from None
    if bits.ndim != 1:
        raise ValueError(
            f"{name} must be one JAX PRNG key, got a batch of keys of shape {bits.shape[:-1]}"
        )
    return [int(b) for b in bits.tolist()]


def check_key(key: Any, name: str = "key") -> jax.Array:
    """``key`` if it is one JAX PRNG key (raw ``uint32`` or typed), else a ValueError naming ``name``.

    A concrete key is required: its bits seed NumPy draws, so it cannot be a traced value.

    Examples:
        >>> import jax
        >>> from advlip.keys import check_key
        >>> key = jax.random.PRNGKey(0)
        >>> check_key(key) is key
        True
        >>> check_key(0, "seed")
        Traceback (most recent call last):
            ...
        ValueError: seed=0 is an integer; allowed: a JAX PRNG key, e.g. jax.random.PRNGKey(0) (integer seeds are for the command line only)
    """
    _bits(key, name)
    return key


def key_seed(key: Any) -> int:
    """The integer the key's bits spell (most significant word first).

    ``key_seed(jax.random.PRNGKey(N)) == N``: the ``--seed`` that replays a run. A key that
    was split or folded gives a large integer with no ``--seed`` of its own.

    Examples:
        >>> import jax
        >>> from advlip.keys import key_seed
        >>> key_seed(jax.random.PRNGKey(42)), key_seed(jax.random.key(42))   # raw or typed
        (42, 42)
        >>> key_seed(jax.random.split(jax.random.PRNGKey(42))[0]) >= 2**32   # no --seed
        True
    """
    value = 0
    for b in _bits(key, "key"):
        value = (value << 32) | b
    return value


def numpy_rng(key: Any, *tags: int) -> np.random.Generator:
    """A NumPy generator seeded by ``[key_seed(key), *tags]``: one stream per tag, replayable.

    ``numpy_rng(jax.random.PRNGKey(N), *tags)`` draws what ``np.random.default_rng([N, *tags])``
    draws (for N = 0 too: NumPy reads ``[0, *tags]`` as those words).

    Examples:
        >>> import jax, numpy as np
        >>> from advlip.keys import numpy_rng
        >>> key = jax.random.PRNGKey(3)
        >>> a = numpy_rng(key, 1).integers(0, 100, 5)
        >>> a.tolist() == np.random.default_rng([3, 1]).integers(0, 100, 5).tolist()   # replays
        True
        >>> a.tolist() == numpy_rng(key, 2).integers(0, 100, 5).tolist()   # another tag, another stream
        False
    """
    return np.random.default_rng([key_seed(key), *(int(t) for t in tags)])
