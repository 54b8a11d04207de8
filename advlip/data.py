"""Datasets: a seeded synthetic set, and the real data scikit-learn bundles (no downloads).

Example:
    >>> from advlip import data
    >>> X, y = data.synthetic(0, n=8, d=3)
    >>> X.shape, sorted(set(y.tolist()))
    ((8, 3), [-1.0, 1.0])
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from advlip._validate import check_positive_int

__all__ = ["synthetic", "breast_cancer", "digits", "load", "BUILTIN"]


def synthetic(
    seed: int, *, n: int = 24, d: int = 4, flip: float = 0.1
) -> tuple[jax.Array, jax.Array]:
    """Gaussian inputs ``x ~ N(0, I/d)`` (so ‖x‖ ≈ 1) labelled by a random hyperplane,
    with a fraction ``flip`` of labels flipped (so the data are not separable and
    every margin loss keeps curvature). Both labels are always present. NumPy's
    seeded generator makes the data instantly (no compilation) and replayable."""
    n = check_positive_int("n", n, minimum=2)
    d = check_positive_int("d", d)
    if not 0.0 <= flip < 0.5:
        raise ValueError(f"flip={flip!r} is not allowed; allowed: 0 <= flip < 0.5")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) / np.sqrt(d)
    w = rng.standard_normal(d)
    y = np.where(X @ w >= 0, 1.0, -1.0)
    y = np.where(rng.uniform(size=n) < flip, -y, y)
    y[0], y[1] = 1.0, -1.0
    return jnp.asarray(X), jnp.asarray(y)


# --------------------------------------------------------------------------- bundled real data

BUILTIN = ("synthetic", "breast-cancer", "digits-A-B (e.g. digits-3-8)")


def _standardize(X: np.ndarray) -> np.ndarray:
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def breast_cancer() -> tuple[jax.Array, jax.Array]:
    """scikit-learn's bundled breast-cancer set (569 × 30), standardised, labels ±1
    (+1 benign). Needs scikit-learn (``pip install advlip[data]``); no download."""
    datasets = _sklearn()
    raw = datasets.load_breast_cancer()
    X = _standardize(raw.data.astype(np.float64)) / np.sqrt(raw.data.shape[1])
    y = np.where(raw.target == 1, 1.0, -1.0)
    return jnp.asarray(X), jnp.asarray(y)


def digits(pair: tuple[int, int] | None = (3, 8)) -> tuple[jax.Array, jax.Array]:
    """scikit-learn's bundled 8×8 digits, pixels scaled to [0, 1] / 8 (so ‖x‖ ≲ 1).

    ``pair=(a, b)``: the binary task a (+1) vs b (−1); ``pair=None``: all ten classes,
    labels 0–9 (for multi-class models)."""
    datasets = _sklearn()
    raw = datasets.load_digits()
    X = raw.data.astype(np.float64) / 16.0 / 8.0
    t = raw.target
    if pair is None:
        return jnp.asarray(X), jnp.asarray(t)
    a, b = pair
    if not ({a, b} <= set(range(10))) or a == b:
        raise ValueError(f"digits pair={pair!r} is not allowed; allowed: two different digits 0-9")
    keep = (t == a) | (t == b)
    return jnp.asarray(X[keep]), jnp.asarray(np.where(t[keep] == a, 1.0, -1.0))


def _sklearn():
    try:
        from sklearn import datasets
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError(
            "the bundled real datasets need scikit-learn: pip install 'advlip[data]'"
        ) from None
    return datasets


def load(name: str, *, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """A binary dataset by name or path: ``synthetic``, ``breast-cancer``, ``digits-A-B``,
    a ``.npz`` file with arrays ``X`` (n, d) and ``y`` (n,), or a ``.csv`` file whose last
    column is the label. Labels must be ±1."""
    from pathlib import Path

    from advlip._validate import check_data

    key = str(name).strip().lower()
    if key == "synthetic":
        return synthetic(seed)
    if key in {"breast-cancer", "breast_cancer"}:
        return breast_cancer()
    if key.startswith("digits-"):
        parts = key.split("-")[1:]
        try:
            a, b = (int(v) for v in parts)
        except ValueError:
            raise ValueError(
                f"data={name!r}: write digits-A-B with two digits, e.g. digits-3-8"
            ) from None
        return digits((a, b))
    path = Path(name)
    if path.suffix.lower() in {".npz", ".csv"}:
        if not path.exists():
            raise ValueError(f"data={name!r}: no such file")
        if path.suffix.lower() == ".npz":
            with np.load(path) as f:
                if "X" not in f or "y" not in f:
                    raise ValueError(f"data={name!r}: the .npz file must hold arrays 'X' and 'y'")
                X, y = np.asarray(f["X"], dtype=np.float64), np.asarray(f["y"], dtype=np.float64)
        else:
            try:
                arr = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
            except ValueError as err:
                raise ValueError(f"data={name!r}: not a numeric CSV ({err})") from None
            X, y = arr[:, :-1], arr[:, -1]
        check_data(np.zeros(X.shape[-1] if X.ndim == 2 else 0), X, y)
        return jnp.asarray(X), jnp.asarray(y)
    raise ValueError(
        f"data={name!r} is not a known dataset or a .npz/.csv path; allowed: {', '.join(BUILTIN)}"
    )
