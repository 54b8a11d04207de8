"""Argument checks shared by the public API (private: no stability guarantee).

Every public function validates its arguments eagerly and raises a
``ValueError`` that names the argument, shows the bad value and states what is
allowed. Value checks (NaN, labels, ε ≥ 0) need concrete arrays; under
``jax.jit`` the arguments are tracers, so only the static checks (p, shapes,
loss names) run there — validate once outside the compiled function.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np


def is_traced(*xs: Any) -> bool:
    """True when any argument is an abstract JAX value (inside jit/grad/vmap)."""
    return any(isinstance(leaf, jax.core.Tracer) for x in xs for leaf in jax.tree.leaves(x))


def check_p(p: Any, name: str = "p") -> float:
    """Return ``p`` as a float in [1, ∞]; ``p`` must be static (a Python number)."""
    if isinstance(p, str):
        if p.strip().lower() in {"inf", "infinity", "∞"}:
            return math.inf
        try:
            p = float(p)
        except ValueError:
            raise ValueError(
                f"{name}={p!r} is not a number; allowed: a real number in [1, inf] "
                "(use 1, 2 or math.inf for the standard threat models)"
            ) from None
    if is_traced(p):
        raise ValueError(
            f"{name} must be a static Python number, not a traced array; "
            "mark it static (jax.jit(..., static_argnames=('p',))) or close over it"
        )
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}={p!r} is not a number; allowed: a real number in [1, inf]"
        ) from None
    if math.isnan(p) or p < 1:
        raise ValueError(
            f"{name}={p!r} is not a valid norm exponent; allowed: 1 <= {name} <= inf "
            "(an Lp 'ball' with p < 1 is not convex and Hölder's inequality fails)"
        )
    return p


def check_eps(eps: Any, name: str = "eps") -> Any:
    """``eps`` must be a finite real ≥ 0 (checked when concrete)."""
    if is_traced(eps):
        return eps
    arr = np.asarray(eps)
    if arr.shape != ():
        raise ValueError(f"{name} must be a scalar, got an array of shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name}={eps!r} is not a real number; allowed: a finite real >= 0")
    value = float(arr)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={eps!r} is not allowed; allowed: a finite real number >= 0")
    return eps


def check_finite(name: str, x: Any) -> None:
    """Raise if a concrete array holds NaN or ±inf."""
    if is_traced(x):
        return
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got a complex array")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
        raise ValueError(
            f"{name} contains {np.count_nonzero(bad)} non-finite value(s) "
            f"(first at index {idx}: {arr[idx] if arr.ndim else arr}); "
            "allowed: finite real numbers only"
        )


def check_labels(y: Any, name: str = "y") -> None:
    """Labels of binary classification must be exactly -1 or +1."""
    check_finite(name, y)
    if is_traced(y):
        return
    arr = np.asarray(y)
    bad = ~np.isin(arr, (-1, 1))
    if bad.any():
        vals = np.unique(arr[bad])[:5]
        classes = np.unique(arr)
        if set(classes.tolist()) <= {0, 1}:
            fix = "convert {0, 1} labels with y = 2*y - 1"
        elif classes.size == 2:
            fix = (
                f"map the two classes to -1 and +1, e.g. "
                f"y = np.where(y == {classes[1].item()!r}, 1.0, -1.0)"
            )
        else:
            fix = (
                "binary classification takes two classes, labelled -1 and +1; "
                f"got {classes.size} distinct values"
            )
        raise ValueError(f"{name} must hold labels -1 or +1 only, got {vals.tolist()}; {fix}")


def check_choice(name: str, value: Any, allowed: Any) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of the allowed values {sorted(allowed)}")


def check_weights(w: Any, name: str = "w") -> None:
    shape = np.shape(w)
    if len(shape) != 1:
        raise ValueError(f"{name} must be a 1-D weight vector of shape (d,), got shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} must have at least one entry (d >= 1)")
    check_finite(name, w)


def check_data(w: Any, X: Any, y: Any) -> tuple[int, int]:
    """Check ``w`` (d,), ``X`` (n, d) or (d,), ``y`` (n,) or scalar; return (n, d)."""
    check_weights(w)
    d = np.shape(w)[0]
    xs, ys = np.shape(X), np.shape(y)
    if len(xs) == 1:
        n = 1
        if xs[0] != d:
            raise ValueError(
                f"Shape mismatch: w has shape ({d},) but X has shape {xs}; expected ({d},)"
            )
        if ys not in ((), (1,)):
            raise ValueError(
                f"Shape mismatch: X is one example of shape {xs} but y has shape {ys}; expected ()"
            )
    elif len(xs) == 2:
        n = xs[0]
        if xs[1] != d:
            raise ValueError(
                f"Shape mismatch: w has shape ({d},) but X has shape {xs}; expected (n, {d})"
            )
        if ys != (n,):
            raise ValueError(
                f"Shape mismatch: X has shape {xs} but y has shape {ys}; expected ({n},)"
            )
        if n == 0:
            raise ValueError("X must hold at least one example (n >= 1)")
    else:
        raise ValueError(f"X must have shape (n, d) or (d,), got shape {xs}")
    check_finite("X", X)
    check_labels(y)
    return n, d


def check_scalar(name: str, value: Any) -> None:
    if np.shape(value) != ():
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}")
    check_finite(name, value)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed; allowed: an integer >= {minimum}")
    return int(value)


def check_real(
    name: str, value: Any, *, minimum: float | None = None, strict: bool = False, what: str = ""
) -> float:
    """A finite real scalar (Python, NumPy or concrete JAX) at or above ``minimum``
    (``strict``: above it), as a float; a ValueError naming ``name`` otherwise."""
    try:
        ok_shape = np.shape(value) == () and not isinstance(value, bool | str)
        v = float(value) if ok_shape else math.nan
    except (TypeError, ValueError):
        v = math.nan
    ok = math.isfinite(v) and (minimum is None or (v > minimum if strict else v >= minimum))
    if not ok:
        allowed = "a finite real number"
        if minimum is not None:
            allowed += f" {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {allowed}{what}")
    return v
