"""Datasets: a seeded synthetic set, the real data scikit-learn bundles, and image sets
(CIFAR-10, MNIST) read from local files (no downloads).

Example:
    >>> import jax
    >>> from advlip import data
    >>> X, y = data.synthetic(jax.random.PRNGKey(0), n=8, d=3)
    >>> X.shape, sorted(set(y.tolist()))
    ((8, 3), [-1.0, 1.0])
"""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np

from advlip import keys
from advlip._validate import check_positive_int

__all__ = [
    "synthetic",
    "breast_cancer",
    "digits",
    "load",
    "BUILTIN",
    "cifar10",
    "mnist",
    "digits_images",
    "images",
    "IMAGE_DATASETS",
]


def synthetic(
    key: jax.Array, *, n: int = 24, d: int = 4, flip: float = 0.1
) -> tuple[jax.Array, jax.Array]:
    """Gaussian inputs ``x ~ N(0, I/d)`` (so ‖x‖ ≈ 1) labelled by a random hyperplane,
    with a fraction ``flip`` of labels flipped (so the data are not separable and
    every margin loss keeps curvature). Both labels are always present.

    ``key`` is a JAX PRNG key; the draw is NumPy's, from the generator
    :func:`advlip.keys.numpy_rng` seeds with the key's bits, so the data are made instantly
    (no compilation) and replay from the key (``PRNGKey(N)`` gives the set of seed N).

    Example:
        The first two labels are +1 and −1 (both classes present), and the same key
        gives the same set:

        >>> import jax, jax.numpy as jnp
        >>> from advlip import data
        >>> X, y = data.synthetic(jax.random.PRNGKey(3), n=6, d=2)
        >>> X.shape, y[:2].tolist()
        ((6, 2), [1.0, -1.0])
        >>> bool(jnp.all(data.synthetic(jax.random.PRNGKey(3), n=6, d=2)[0] == X))
        True
    """
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
    (+1 benign). Needs scikit-learn (``pip install advlip[data]``); no download.

    Example:
        569 tumours with 30 features, 357 of them benign:

        >>> from advlip import data
        >>> X, y = data.breast_cancer()
        >>> X.shape, int((y == 1).sum()), int((y == -1).sum())
        ((569, 30), 357, 212)
    """
    datasets = _sklearn()
    raw = datasets.load_breast_cancer()
    X = _standardize(raw.data.astype(np.float64)) / np.sqrt(raw.data.shape[1])
    y = np.where(raw.target == 1, 1.0, -1.0)
    return jnp.asarray(X), jnp.asarray(y)


def digits(pair: tuple[int, int] | None = (3, 8)) -> tuple[jax.Array, jax.Array]:
    """scikit-learn's bundled 8×8 digits, pixels scaled to [0, 1] / 8 (so ‖x‖ ≲ 1).

    ``pair=(a, b)``: the binary task a (+1) vs b (−1); ``pair=None``: all ten classes,
    labels 0–9 (for multi-class models).

    Example:
        183 threes (+1) and 174 eights (−1); a full pixel, 16, becomes 16/16/8 = 0.125:

        >>> from advlip import data
        >>> X, y = data.digits((3, 8))
        >>> X.shape, int((y == 1).sum()), float(X.max())
        ((357, 64), 183, 0.125)
        >>> data.digits(None)[1].shape  # all ten classes
        (1797,)
    """
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
    r"""A binary dataset by name or path: ``synthetic``, ``breast-cancer``, ``digits-A-B``,
    a ``.npz`` file with arrays ``X`` (n, d) and ``y`` (n,), or a ``.csv``/``.tsv``/``.txt``
    file with one example per row and the label in the last column (the separator —
    comma, semicolon, tab or spaces — is read off the first row; lines starting with
    ``#`` are comments). Labels must be ±1. Bad files raise a ``ValueError`` that names
    the file and says how to fix it. ``key`` (a JAX PRNG key; default ``PRNGKey(0)``) draws
    ``synthetic``; the other sets are fixed.

    Example:
        A two-row CSV file, features then the label:

        >>> import pathlib, tempfile
        >>> from advlip import data
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / "toy.csv"
        ...     _ = path.write_text("0.5,1.0,1\n-0.5,0.25,-1\n")
        ...     X, y = data.load(str(path))
        >>> X.tolist(), y.tolist()
        ([[0.5, 1.0], [-0.5, 0.25]], [1.0, -1.0])
        >>> data.load("digits-3-8")[0].shape
        (357, 64)
    """
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


# --------------------------------------------------------------------------- image datasets
#
# Read from local files only (nothing is downloaded). The loaders return NumPy arrays, not
# JAX arrays: a full training set (CIFAR-10: 50000 × 32 × 32 × 3) stays in host memory and
# only the batches a computation needs go to the device.

#: The forms :func:`images` accepts (for help texts).
IMAGE_DATASETS = (
    "digits",
    "synthetic-cifar10",
    "cifar10:PATH",
    "mnist:PATH",
    "PATH (a folder holding the CIFAR-10 python batches or the MNIST IDX files)",
)

_SPLITS = ("train", "test")
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_CIFAR_LAYOUT = (
    "expected layout: ROOT/data_batch_1 ... ROOT/data_batch_5 (train) and ROOT/test_batch "
    "(test), the python-pickle version of CIFAR-10 (cifar-10-python.tar.gz) unpacked, or "
    f"ROOT/{_CIFAR_DIR}/ holding those files"
)
_CIFAR_PIXELS = 3 * 32 * 32
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_SUBDIR = ("MNIST", "raw")  # torchvision's layout under its root
_MNIST_LAYOUT = (
    "expected layout: ROOT/train-images-idx3-ubyte and ROOT/train-labels-idx1-ubyte (train), "
    "ROOT/t10k-images-idx3-ubyte and ROOT/t10k-labels-idx1-ubyte (test), each raw or gzipped "
    "(the same name ending in .gz), or ROOT/MNIST/raw/ holding those files"
)
_IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}  # unsigned bytes, 3 or 1 dims
_NUM_CLASSES = 10


def _check_split(split: str) -> str:
    if split not in _SPLITS:
        raise ValueError(f"split={split!r} is not allowed; allowed: 'train', 'test'")
    return split


def _float_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype={dtype!r} is not allowed; allowed: float32, float64")
    return dt


def _scaled(pixels: np.ndarray, top: float, dtype: np.dtype) -> np.ndarray:
    """Integer pixels divided by their top value, in ``dtype`` (one correctly rounded division)."""
    return pixels.astype(dtype) / dtype.type(top)


# ---------------------------------------------------------------- CIFAR-10 (restricted unpickling


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list."""


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` in a pickle: usable only as ``_reconstruct``'s subtype,
    never called (so a pickle cannot build arrays from arbitrary arguments)."""


_NDARRAY = _NdarrayMarker()


def _reconstruct(subtype, shape, typecode):
    """``numpy``'s ``_reconstruct`` for plain ndarrays only (the official files' one use)."""
    if subtype is not _NDARRAY:
        raise _RefusedGlobal(f"_reconstruct of {subtype!r}; only numpy.ndarray is allowed")
    from numpy._core.multiarray import _reconstruct as reconstruct

    return reconstruct(np.ndarray, shape, typecode)


def _dtype(spec, *args):
    """``numpy.dtype`` for numeric element types only (the official files hold ``u1``)."""
    text = spec.decode("ascii", "replace") if isinstance(spec, bytes) else spec
    try:
        kind = np.dtype(text).kind if isinstance(text, str) else None
    except TypeError:
        kind = None
    if kind not in ("b", "i", "u", "f"):
        raise _RefusedGlobal(f"numpy.dtype({spec!r}); only numeric dtypes are allowed")
    return np.dtype(text, *args)


#: The only globals a CIFAR-10 batch may name: how NumPy arrays unpickle (under the module
#: name NumPy 1 wrote, ``numpy.core``, and NumPy 2's, ``numpy._core``). Every other global
#: is refused before anything is called.
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles plain data (dicts, lists, bytes, strings, ints) and numeric NumPy arrays,
    nothing else: any other global (a function that would run code) raises before it is
    looked up. (Every opcode that names a global, GLOBAL, STACK_GLOBAL, INST, OBJ's class
    and EXT's registry entry, goes through :meth:`find_class`.)"""

    def find_class(self, module: str, name: str):
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(
                f"refused the global {module}.{name}: a CIFAR-10 batch holds only dicts, lists, "
                "bytes, strings, ints and NumPy arrays"
            ) from None

    def persistent_load(self, pid):
        raise _RefusedGlobal(f"refused the persistent id {pid!r}")


def _unpickle_batch(path) -> object:
    bad = f"CIFAR-10 batch {str(path)!r}"
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="bytes").load()
    except _RefusedGlobal as err:
        raise ValueError(f"{bad}: not loaded: {err}; {_CIFAR_LAYOUT}") from None
    except OSError as err:
        raise ValueError(f"{bad}: cannot read the file ({err.strerror or err})") from None
    except Exception as err:  # truncated or corrupt: EOFError, UnpicklingError, ...
        what = "truncated" if isinstance(err, EOFError) else f"{type(err).__name__}: {err}"
        raise ValueError(
            f"{bad}: not a readable python-pickle batch ({what}); {_CIFAR_LAYOUT}"
        ) from None


def _cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One batch as uint8 images (n, 32, 32, 3) and int64 labels (n,)."""
    bad = f"CIFAR-10 batch {str(path)!r}"
    batch = _unpickle_batch(path)
    if not isinstance(batch, dict):
        raise ValueError(
            f"{bad}: holds a {type(batch).__name__}, not a dict with keys b'data' and "
            f"b'labels'; {_CIFAR_LAYOUT}"
        )
    fields = {}
    for key in ("data", "labels"):
        for k in (key.encode(), key):  # Python 2's str keys arrive as bytes
            if k in batch:
                fields[key] = batch[k]
                break
        else:
            raise ValueError(
                f"{bad}: has no key b'{key}' (keys: {sorted(map(repr, batch))}); {_CIFAR_LAYOUT}"
            )
    raw, labels = fields["data"], fields["labels"]
    if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8:
        what = raw.dtype if isinstance(raw, np.ndarray) else type(raw).__name__
        raise ValueError(
            f"{bad}: b'data' is {what}, not a uint8 array of shape (n, {_CIFAR_PIXELS}); "
            f"{_CIFAR_LAYOUT}"
        )
    if raw.ndim != 2 or raw.shape[1] != _CIFAR_PIXELS:
        raise ValueError(
            f"{bad}: wrong shape: b'data' has shape {raw.shape}, expected (n, {_CIFAR_PIXELS}) "
            f"(rows of 32x32 red, green and blue planes); {_CIFAR_LAYOUT}"
        )
    if not isinstance(labels, list | np.ndarray) or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in labels
    ):
        raise ValueError(f"{bad}: b'labels' is not a list of ints; {_CIFAR_LAYOUT}")
    y = _labels(np.asarray(labels, dtype=np.int64).reshape(-1), bad, _CIFAR_LAYOUT)
    if y.shape[0] != raw.shape[0]:
        raise ValueError(
            f"{bad}: {raw.shape[0]} images but {y.shape[0]} labels; the counts must agree; "
            f"{_CIFAR_LAYOUT}"
        )
    # each row: 1024 red, then 1024 green, then 1024 blue values, each plane row-major
    return raw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y


def _labels(y: np.ndarray, bad: str, layout: str) -> np.ndarray:
    out = (y < 0) | (y >= _NUM_CLASSES)
    if out.any():
        i = int(np.argmax(out))
        raise ValueError(f"{bad}: label out of range 0-9: {int(y[i])} at index {i}; {layout}")
    return y.astype(np.int64)


def _cifar_dir(root):
    from pathlib import Path

    base = Path(root)
    nested = base / _CIFAR_DIR
    return nested if nested.is_dir() else base


def _cifar_raw(root, split: str) -> tuple[np.ndarray, np.ndarray, str]:
    folder = _cifar_dir(root)
    parts = []
    for name in _CIFAR_FILES[_check_split(split)]:
        path = folder / name
        if not path.is_file():
            raise ValueError(
                f"cifar10 root={str(root)!r}: missing file {str(path)!r}; {_CIFAR_LAYOUT}"
            )
        parts.append(_cifar_batch(path))
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return X, y, str(folder)


def cifar10(root, *, split: str = "train", dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    r"""CIFAR-10 from the official python-pickle batches in a local folder (no download).

    ``root`` is the folder holding ``data_batch_1`` … ``data_batch_5`` and ``test_batch``
    (``cifar-10-python.tar.gz`` unpacked), or its parent holding ``cifar-10-batches-py/``.
    ``split="train"`` concatenates the five training batches in order (50000 images);
    ``split="test"`` reads ``test_batch`` (10000 images).

    Returns NumPy arrays, not JAX arrays, so a large set stays in host memory: ``images``
    of shape (n, 32, 32, 3) (NHWC: each row of a batch holds the red, green and blue 32×32
    planes, row-major, and is transposed to height × width × channel) with pixels / 255 in
    [0, 1] as ``dtype`` (float64 or float32), and ``labels`` int64 (n,) in 0–9.

    The batches are pickles. They are read with a restricted unpickler that resolves only
    the globals NumPy arrays unpickle with (``numpy.core.multiarray._reconstruct`` or
    ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``, and these
    for plain numeric arrays only), so it builds plain data (dicts, lists, bytes, strings,
    ints) and NumPy arrays and nothing else: a file naming any other global (which could
    run code when unpickled) is refused before that global is looked up. Missing or malformed files raise a ``ValueError`` naming the file, what is wrong
    and the expected layout.

    Example:
        >>> import pickle, tempfile, pathlib, numpy as np
        >>> from advlip import data
        >>> pixels = np.zeros((2, 3072), np.uint8)
        >>> pixels[1, 2048] = 255  # image 1: blue plane, row 0, column 0
        >>> with tempfile.TemporaryDirectory() as root:
        ...     with open(pathlib.Path(root) / "test_batch", "wb") as f:
        ...         pickle.dump({b"data": pixels, b"labels": [3, 7]}, f, protocol=3)
        ...     X, y = data.cifar10(root, split="test")
        >>> X.shape, X.dtype, y.tolist(), X[1, 0, 0].tolist()
        ((2, 32, 32, 3), dtype('float64'), [3, 7], [0.0, 0.0, 1.0])
    """
    dt = _float_dtype(dtype)
    X, y, _ = _cifar_raw(root, split)
    return _scaled(X, 255, dt), y


# ---------------------------------------------------------------- MNIST (IDX files)


def _mnist_dir(root):
    from pathlib import Path

    base = Path(root)
    names = [n for pair in _MNIST_FILES.values() for n in pair]
    if any((base / n).is_file() or (base / f"{n}.gz").is_file() for n in names):
        return base
    nested = base.joinpath(*_MNIST_SUBDIR)
    return nested if nested.is_dir() else base


def _idx(root, folder, name: str, kind: str) -> tuple[np.ndarray, str]:
    """The payload of one IDX file (raw or gzipped) as uint8, shaped by its header, and the
    file's path."""
    import gzip
    import struct
    import zlib

    path = next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)
    if path is None:
        raise ValueError(
            f"mnist root={str(root)!r}: missing file {str(folder / name)!r} (or "
            f"{name}.gz); {_MNIST_LAYOUT}"
        )
    bad = f"MNIST file {str(path)!r}"
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic (an IDX file starts with two zero bytes)
            raw = gzip.decompress(raw)
    except OSError as err:
        what = err.strerror or str(err)
        raise ValueError(f"{bad}: cannot read the file ({what}); {_MNIST_LAYOUT}") from None
    except (EOFError, zlib.error) as err:
        raise ValueError(
            f"{bad}: truncated or corrupt gzip data ({err}); {_MNIST_LAYOUT}"
        ) from None
    ndim = 3 if kind == "images" else 1
    magic = _IDX_MAGIC[kind]
    header = 4 + 4 * ndim
    if len(raw) < 4:
        raise ValueError(
            f"{bad}: truncated: {len(raw)} bytes, shorter than the IDX magic number; "
            f"{_MNIST_LAYOUT}"
        )
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise ValueError(
            f"{bad}: wrong magic number 0x{found:08x}, expected 0x{magic:08x} (IDX {kind}: "
            f"unsigned bytes, {ndim} dimension{'s' * (ndim > 1)}); {_MNIST_LAYOUT}"
        )
    if len(raw) < header:
        raise ValueError(
            f"{bad}: truncated: {len(raw)} bytes, shorter than its {header}-byte header; "
            f"{_MNIST_LAYOUT}"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if kind == "images" and dims[1:] != (28, 28):
        raise ValueError(
            f"{bad}: wrong shape: images of {dims[1]}x{dims[2]} pixels, expected 28x28; "
            f"{_MNIST_LAYOUT}"
        )
    size = int(np.prod(dims, dtype=np.int64))
    got = len(raw) - header
    if got != size:
        what = "truncated: " if got < size else ""
        raise ValueError(
            f"{bad}: {what}the header's dimensions {dims} need {size} data bytes, the file "
            f"holds {got}; {_MNIST_LAYOUT}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims), str(path)


def _mnist_raw(root, split: str) -> tuple[np.ndarray, np.ndarray, str]:
    names = _MNIST_FILES[_check_split(split)]
    folder = _mnist_dir(root)
    X, xpath = _idx(root, folder, names[0], "images")
    y, ypath = _idx(root, folder, names[1], "labels")
    y = _labels(y.astype(np.int64), f"MNIST file {ypath!r}", _MNIST_LAYOUT)
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"MNIST files {xpath!r} and {ypath!r}: {X.shape[0]} images but {y.shape[0]} "
            f"labels; the counts must agree; {_MNIST_LAYOUT}"
        )
    return X[..., None], y, str(folder)


def mnist(root, *, split: str = "train", dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    r"""MNIST from the IDX files in a local folder (no download).

    ``root`` holds ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``
    (``split="train"``) and ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``
    (``split="test"``), each raw or gzipped (the name ending in ``.gz``; gzip is detected
    from the content), or ``root/MNIST/raw/`` holds them (torchvision's layout). Each
    header is checked: magic 0x00000803 (images: unsigned bytes, 3 big-endian dimensions,
    28 × 28 pixels) or 0x00000801 (labels: 1 dimension), and the data must fill the
    dimensions exactly.

    Returns NumPy arrays (host memory): ``images`` (n, 28, 28, 1), pixels / 255 in [0, 1] as
    ``dtype`` (float64 or float32), and ``labels`` int64 (n,) in 0–9. Missing or malformed
    files raise a ``ValueError`` naming the file, what is wrong and the expected layout.

    Example:
        >>> import struct, tempfile, pathlib, numpy as np
        >>> from advlip import data
        >>> with tempfile.TemporaryDirectory() as root:
        ...     d = pathlib.Path(root)
        ...     pixels = np.zeros((2, 28, 28), np.uint8)
        ...     pixels[1, 3, 5] = 255
        ...     _ = (d / "t10k-images-idx3-ubyte").write_bytes(
        ...         struct.pack(">IIII", 0x803, 2, 28, 28) + pixels.tobytes())
        ...     _ = (d / "t10k-labels-idx1-ubyte").write_bytes(
        ...         struct.pack(">II", 0x801, 2) + bytes([4, 9]))
        ...     X, y = data.mnist(root, split="test")
        >>> X.shape, y.tolist(), float(X[1, 3, 5, 0]), float(X.sum())
        ((2, 28, 28, 1), [4, 9], 1.0, 1.0)
    """
    dt = _float_dtype(dtype)
    X, y, _ = _mnist_raw(root, split)
    return _scaled(X, 255, dt), y


# ---------------------------------------------------------------- digits (scikit-learn)


def digits_images(*, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits as ten-class images (no download).

    Returns NumPy arrays: ``images`` (1797, 8, 8, 1), the 0–16 pixel counts / 16 in [0, 1]
    as ``dtype`` (float64 or float32), and ``labels`` int64 (1797,) in 0–9. (:func:`digits`
    gives the same pixels flattened and scaled for the binary tasks.) Needs scikit-learn
    (``pip install advlip[data]``).

    Example:
        >>> from advlip import data
        >>> X, y = data.digits_images()
        >>> X.shape, float(X.min()), float(X.max()), sorted(set(y.tolist())) == list(range(10))
        ((1797, 8, 8, 1), 0.0, 1.0, True)
    """
    dt = _float_dtype(dtype)
    raw = _sklearn().load_digits()
    return _scaled(raw.images, 16, dt)[..., None], raw.target.astype(np.int64)


# ---------------------------------------------------------------- resolver


def _forms() -> str:
    return ", ".join(IMAGE_DATASETS)


def _detect(path) -> str | None:
    """``"cifar10"`` or ``"mnist"`` when the folder ``path`` holds that set's files."""
    from pathlib import Path

    p = Path(path)
    cifar = _cifar_dir(p)
    if any((cifar / n).is_file() for names in _CIFAR_FILES.values() for n in names):
        return "cifar10"
    folder = _mnist_dir(p)
    names = [n for pair in _MNIST_FILES.values() for n in pair]
    if any((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in names):
        return "mnist"
    return None


def images(
    name_or_path: str,
    *,
    split: str = "train",
    n: int | None = None,
    key: jax.Array | None = None,
    dtype=np.float64,
) -> tuple[np.ndarray, np.ndarray, str]:
    """An image dataset by name or folder: ``(images, labels, description)``.

    Forms (:data:`IMAGE_DATASETS`):

    * ``"digits"`` — scikit-learn's 8×8 digits (:func:`digits_images`); it has no official
      split, so either ``split`` gives the whole set (1797 images; the description says so);
    * ``"synthetic-cifar10"`` — random images (n, 32, 32, 3) uniform in [0, 1) with labels
      uniform in 0–9, ``n`` of them (default 256), drawn from ``key``, for benchmarks
      without the dataset (``split="test"`` draws a different set from the same key);
    * ``"cifar10:PATH"`` / ``"mnist:PATH"`` — :func:`cifar10` / :func:`mnist` from ``PATH``;
    * ``PATH`` — a folder, read as CIFAR-10 when it holds ``data_batch_1`` …, ``test_batch``
      or ``cifar-10-batches-py/``, as MNIST when it holds the IDX files.

    ``n`` (real sets): a random subset of ``n`` examples (without replacement, kept in the
    set's order) drawn with ``key`` (a JAX PRNG key; default ``PRNGKey(0)``; the draw is
    NumPy's, from :func:`advlip.keys.numpy_rng`, so it replays from the key). The arrays are
    NumPy (host memory), images NHWC with pixels in [0, 1] as ``dtype``, labels int64.
    Unknown names raise a ``ValueError`` listing the allowed forms.

    Example:
        >>> import jax
        >>> from advlip import data
        >>> X, y, about = data.images("synthetic-cifar10", n=4, key=jax.random.PRNGKey(1))
        >>> X.shape, y.dtype, about
        ((4, 32, 32, 3), dtype('int64'), 'synthetic-cifar10 train: 4 random images (32, 32, 3), 10 classes, drawn with key seed 1')
    """
    from pathlib import Path

    key = keys.check_key(jax.random.PRNGKey(0) if key is None else key)
    split = _check_split(split)
    dt = _float_dtype(dtype)
    if n is not None:
        n = check_positive_int("n", n)
    seed = keys.key_seed(key)
    text = str(name_or_path).strip()
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    if text.lower() == "synthetic-cifar10":
        size = 256 if n is None else n
        rng = keys.numpy_rng(key, _SPLITS.index(split))
        X = rng.uniform(size=(size, 32, 32, 3)).astype(dt)
        y = rng.integers(0, _NUM_CLASSES, size=size).astype(np.int64)
        return (
            X,
            y,
            (
                f"synthetic-cifar10 {split}: {size} random images (32, 32, 3), 10 classes, "
                f"drawn with key seed {seed}"
            ),
        )
    if text.lower() == "digits":
        raw = _sklearn().load_digits()
        X, y, top, what = raw.images[..., None], raw.target.astype(np.int64), 16, "digits"
        where = f"scikit-learn's bundled 8x8 digits; no official split: the whole set as {split}"
    else:
        if sep and kind in ("cifar10", "mnist"):
            if not rest.strip():
                raise ValueError(
                    f"data={name_or_path!r}: give a folder after '{kind}:'; allowed: {_forms()}"
                )
            path = rest.strip()
        elif sep and len(kind) > 1:  # "svhn:..." (a one-letter prefix is a Windows drive)
            raise ValueError(
                f"data={name_or_path!r}: unknown dataset {kind!r}; allowed: {_forms()}"
            )
        else:
            path = text
            if not Path(path).exists():
                raise ValueError(
                    f"data={name_or_path!r} is not a known image dataset or an existing "
                    f"folder; allowed: {_forms()}"
                )
            if not Path(path).is_dir():
                raise ValueError(
                    f"data={name_or_path!r} is a file, not a folder; allowed: {_forms()}; "
                    f"CIFAR-10 {_CIFAR_LAYOUT}; MNIST {_MNIST_LAYOUT}"
                )
            kind = _detect(path)
            if kind is None:
                raise ValueError(
                    f"data={name_or_path!r}: the folder holds neither CIFAR-10 nor MNIST; "
                    f"CIFAR-10 {_CIFAR_LAYOUT}; MNIST {_MNIST_LAYOUT}; allowed: {_forms()}"
                )
        if kind == "cifar10":
            X, y, where = _cifar_raw(path, split)
            top, what = 255, f"CIFAR-10 {split}"
        else:
            X, y, where = _mnist_raw(path, split)
            top, what = 255, f"MNIST {split}"
    total = X.shape[0]
    shape = tuple(X.shape[1:])
    if n is None:
        about = f"{what} ({where}): {total} images {shape}, 10 classes"
    else:
        if n > total:
            raise ValueError(
                f"n={n} is not allowed for {what}; allowed: an integer from 1 to {total} "
                "(the number of images)"
            )
        idx = np.sort(keys.numpy_rng(key).choice(total, size=n, replace=False))
        X, y = X[idx], y[idx]
        about = (
            f"{what} ({where}): {n} of {total} images {shape}, 10 classes, subset drawn "
            f"with key seed {seed}"
        )
    return _scaled(X, top, dt), y, about
