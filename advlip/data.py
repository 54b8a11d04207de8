"""Datasets: a seeded synthetic set, and the real data scikit-learn bundles (no downloads).

Example:
    >>> import jax
    >>> from advlip import data
    >>> X, y = data.synthetic(jax.random.PRNGKey(0), n=8, d=3)
    >>> X.shape, sorted(set(y.tolist()))
    ((8, 3), [-1.0, 1.0])
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from advlip import keys
from advlip._validate import check_positive_int

__all__ = ["synthetic", "breast_cancer", "digits", "load", "BUILTIN"]


def synthetic(
    key: jax.Array, *, n: int = 24, d: int = 4, flip: float = 0.1
) -> tuple[jax.Array, jax.Array]:
    """Gaussian inputs ``x ~ N(0, I/d)`` (so ‖x‖ ≈ 1) labelled by a random hyperplane,
    with a fraction ``flip`` of labels flipped (so the data are not separable and
    every margin loss keeps curvature). Both labels are always present.

    ``key`` is a JAX PRNG key; the draw is NumPy's, from the generator
    :func:`advlip.keys.numpy_rng` seeds with the key's bits, so the data are made instantly
    (no compilation) and replay from the key (``PRNGKey(N)`` gives the set of seed N)."""
    rng = keys.numpy_rng(keys.check_key(key))
    n = check_positive_int("n", n, minimum=2)
    d = check_positive_int("d", d)
    if not 0.0 <= flip < 0.5:
        raise ValueError(f"flip={flip!r} is not allowed; allowed: 0 <= flip < 0.5")
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


#: The file types :func:`load` reads: NumPy archives, and delimited text.
NPZ_SUFFIXES = (".npz",)
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
_FILE_HELP = (
    "a .npz file with arrays X (n, d) and y (n,) (np.savez(path, X=X, y=y)), or a "
    ".csv/.tsv/.txt file with one example per row, its features and then its label "
    "-1 or +1 in the LAST column, separated by commas, semicolons, tabs or spaces"
)


def load(name: str, *, key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """A binary dataset by name or path: ``synthetic``, ``breast-cancer``, ``digits-A-B``,
    a ``.npz`` file with arrays ``X`` (n, d) and ``y`` (n,), or a ``.csv``/``.tsv``/``.txt``
    file with one example per row and the label in the last column (the separator —
    comma, semicolon, tab or spaces — is read off the first row; lines starting with
    ``#`` are comments). Labels must be ±1. Bad files raise a ``ValueError`` that names
    the file and says how to fix it. ``key`` (a JAX PRNG key; default ``PRNGKey(0)``) draws
    ``synthetic``; the other sets are fixed."""
    from pathlib import Path

    kind = str(name).strip().lower()
    if kind == "synthetic":
        return synthetic(jax.random.PRNGKey(0) if key is None else key)
    if kind in {"breast-cancer", "breast_cancer"}:
        return breast_cancer()
    if kind.startswith("digits-"):
        parts = kind.split("-")[1:]
        try:
            a, b = (int(v) for v in parts)
        except ValueError:
            raise ValueError(
                f"data={name!r}: write digits-A-B with two digits, e.g. digits-3-8"
            ) from None
        return digits((a, b))
    path = Path(name)
    try:
        return _load_file(path, name)
    except OSError as err:  # a path the system refuses (permissions, a name too long)
        raise ValueError(f"data={name!r}: cannot read the file ({err.strerror or err})") from None


def _load_file(path, name: str) -> tuple[jax.Array, jax.Array]:
    suffix = path.suffix.lower()
    if suffix in NPZ_SUFFIXES + TEXT_SUFFIXES:
        if not path.exists():
            raise ValueError(f"data={name!r}: no such file")
        if not path.is_file():
            raise ValueError(f"data={name!r}: not a file; give {_FILE_HELP}")
        if suffix in NPZ_SUFFIXES:
            X, y = _read_npz(path, name)
            _check_arrays(name, X, y)
        else:
            X, y = _read_text(path, name)
        return jnp.asarray(X), jnp.asarray(y)
    if path.exists():
        raise ValueError(
            f"data={name!r}: files of type {suffix or '(no suffix)'!r} are not read; "
            f"give {_FILE_HELP}"
        )
    raise ValueError(
        f"data={name!r} is not a known dataset or a .npz/.csv/.tsv/.txt path; "
        f"allowed: {', '.join(BUILTIN)}, or {_FILE_HELP}"
    )


# --------------------------------------------------------------------------- files


def _read_npz(path, name: str) -> tuple[np.ndarray, np.ndarray]:
    write = "write it with np.savez(path, X=X, y=y)"
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as err:
        raise ValueError(f"data={name!r}: cannot read the file ({err.strerror})") from None
    if magic == b"\x93NUMPY":
        raise ValueError(f"data={name!r}: holds a single array (.npy format), not X and y; {write}")
    if not magic.startswith(b"PK"):
        raise ValueError(
            f"data={name!r}: not a .npz file (a .npz file is a zip archive of arrays); {write}"
        )
    with open(path, "rb") as fh:  # np.load leaves a path it failed on open; a handle is closed
        try:
            archive = np.load(fh, allow_pickle=False)
        except Exception as err:  # a truncated or corrupt zip archive: a bad file
            raise ValueError(f"data={name!r}: not a readable .npz file ({err}); {write}") from None
        with archive:
            missing = [k for k in ("X", "y") if k not in archive.files]
            if missing:
                raise ValueError(
                    f"data={name!r}: the .npz file has no array(s) {missing} (it holds "
                    f"{sorted(archive.files)}); it needs arrays 'X' (n, d) and 'y' (n,); {write}"
                )
            out = []
            for key in ("X", "y"):
                try:
                    raw = archive[key]
                except Exception as err:  # object arrays, a corrupt member
                    raise ValueError(
                        f"data={name!r}: array {key!r} cannot be read ({err}); save numeric arrays"
                    ) from None
                out.append(_numeric(name, key, raw))
    return out[0], out[1]


def _numeric(name: str, key: str, raw: np.ndarray) -> np.ndarray:
    """``raw`` as float64, or a ValueError naming the file and the array."""
    if np.iscomplexobj(raw):
        raise ValueError(f"data={name!r}: array {key!r} is complex; give real numbers")
    if raw.dtype.kind in "biuf":
        return raw.astype(np.float64)
    if key == "y" and raw.dtype.kind in "US" and raw.ndim == 1:
        classes = np.unique(raw)[:3].tolist()
        hint = (
            f"map the two classes to -1 and +1 first, e.g. y = np.where(y == {classes[0]!r}, 1.0, -1.0)"
            if len(classes) == 2
            else "advlip handles two classes, labelled -1 and +1"
        )
        raise ValueError(
            f"data={name!r}: the labels y are {raw.dtype} strings ({classes}...), not numbers; {hint}"
        )
    raise ValueError(
        f"data={name!r}: array {key!r} has dtype {raw.dtype}, not numbers; save float arrays"
    )


def _check_arrays(name: str, X: np.ndarray, y: np.ndarray) -> None:
    """Shapes, finiteness and labels of a dataset read from file ``name``."""
    from advlip._validate import check_finite, check_labels

    if X.ndim != 2:
        hint = "; for one feature use X.reshape(-1, 1)" if X.ndim == 1 else ""
        raise ValueError(f"data={name!r}: X must be 2-D, shape (n, d), got shape {X.shape}{hint}")
    if y.shape != (X.shape[0],):
        hint = "; use y.ravel()" if y.size == X.shape[0] else ""
        raise ValueError(
            f"data={name!r}: shape mismatch: X has shape {X.shape} but y has shape {y.shape}; "
            f"expected y of shape ({X.shape[0]},), one label per row of X{hint}"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            f"data={name!r}: X has shape {X.shape}; it needs at least one example and one feature"
        )
    try:
        check_finite("X", X)
        check_labels(y)
    except ValueError as err:
        raise ValueError(f"data={name!r}: {err}") from None


def _sniff(line: str) -> str | None:
    """The separator of a delimited-text row: a tab, else a semicolon (then commas may be
    decimal commas), else a comma, else runs of spaces."""
    return next((sep for sep in ("\t", ";", ",") if sep in line), None)


def _cells(line: str, sep: str | None) -> list[str]:
    return [c.strip().strip("\"'").strip() for c in (line.split(sep) if sep else line.split())]


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _decimal_comma(cell: str) -> bool:
    """``cell`` is a number written with a decimal comma (``1,5``)."""
    return "," in cell and _number(cell.replace(",", ".")) is not None


def _read_text(path, name: str) -> tuple[np.ndarray, np.ndarray]:
    fmt = "one example per row, numbers only, the label -1 or +1 in the last column"
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"data={name!r}: cannot read the file ({err.strerror})") from None
    try:
        if b"\x00" in raw:
            raise UnicodeError
        text = raw.decode("utf-8-sig")
    except UnicodeError:
        raise ValueError(
            f"data={name!r}: not a text file (binary or not UTF-8); a {path.suffix} file holds {fmt}"
        ) from None
    rows = [
        (i, line)
        for i, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not rows:
        raise ValueError(f"data={name!r}: the file holds no rows; it needs {fmt}")
    sep = _sniff(rows[0][1])
    sep_name = {",": "commas", ";": "semicolons", "\t": "tabs", None: "spaces"}[sep]
    cells = [(i, _cells(line, sep)) for i, line in rows]
    first_line, first = cells[0]
    if len(first) < 2:
        raise ValueError(
            f"data={name!r}: line {first_line} has 1 column (separator read as {sep_name}); "
            f"it needs at least 2 columns: the features, then the label. The file must hold {fmt}"
        )
    values = [[_number(c) for c in row] for _, row in cells]
    words = [
        c for c, v in zip(first, values[0], strict=True) if v is None and not _decimal_comma(c)
    ]
    header = 2 * len(words) >= len(first)  # mostly words, not numbers
    if header and len(values) == 1:
        raise ValueError(
            f"data={name!r}: the only row looks like a header ({', '.join(first)[:80]}); "
            f"the file holds no data; it needs {fmt}"
        )
    if header and all(v is not None for v in values[1]):
        raise ValueError(
            f"data={name!r}: the first row looks like a header ({', '.join(first)[:80]}); "
            f"remove it (e.g. sed '{first_line}d' {_quote(str(path))} > "
            f"{_quote(str(path.with_name(path.stem + '-numbers' + path.suffix)))}) and pass "
            "the file without it; the file must hold numbers only"
        )
    for (line, row), vals in zip(cells, values, strict=True):
        if len(row) != len(first):
            raise ValueError(
                f"data={name!r}: line {line} has {len(row)} columns but line {first_line} has "
                f"{len(first)} (separator read as {sep_name}); every row needs the same "
                "columns: the features, then the label"
            )
        for col, (cell, v) in enumerate(zip(row, vals, strict=True), 1):
            if v is None:
                hint = "; write decimals with a point (1.5), not a comma" * _decimal_comma(cell)
                what = "is empty" if not cell else f"{cell[:40]!r} is not a number"
                raise ValueError(
                    f"data={name!r}: line {line}, column {col} {what}{hint}; the file must "
                    f"hold {fmt}"
                )
    arr = np.asarray(values, dtype=np.float64)
    X, y = arr[:, :-1], arr[:, -1]
    try:
        from advlip._validate import check_finite

        check_finite("X", X)
        check_finite("y (the last column)", y)
    except ValueError as err:
        raise ValueError(f"data={name!r}: {err}") from None
    if not np.isin(y, (-1.0, 1.0)).all():
        _label_hint(name, arr)  # raises when a fix fits; else check_labels says what is wrong
    _check_arrays(name, X, y)
    return X, y


def _label_hint(name: str, arr: np.ndarray) -> None:
    """The last column of a text file is not ±1: raise with the fix that fits, if one does."""
    last = set(np.unique(arr[:, -1]).tolist())
    first = set(np.unique(arr[:, 0]).tolist())
    shown = sorted(last)[:5]
    move = (
        "advlip reads the label from the LAST column: move the first column to the end "
        "(e.g. in NumPy: a = np.roll(a, -1, axis=1))"
    )
    if first == {-1.0, 1.0}:
        raise ValueError(
            f"data={name!r}: the labels y (the last column) must be -1 or +1, got {shown}; "
            f"the FIRST column looks like the labels: {move}"
        )
    if last <= {0.0, 1.0}:
        raise ValueError(
            f"data={name!r}: the labels y (the last column) are 0/1; advlip needs -1/+1: "
            "convert them with y = 2*y - 1"
        )
    if first == {0.0, 1.0}:
        raise ValueError(
            f"data={name!r}: the labels y (the last column) must be -1 or +1, got {shown}; "
            f"the FIRST column looks like 0/1 labels: {move}, and convert them with y = 2*y - 1"
        )


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)
