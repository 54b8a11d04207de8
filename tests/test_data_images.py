"""advlip.data's image sets: CIFAR-10 python batches (read with a restricted unpickler),
MNIST IDX files, scikit-learn's digits as images, and the ``images`` resolver.

Every file here is a miniature written in the official format in ``tmp_path`` (nothing is
downloaded): CIFAR-10 batches are pickled as Python 2 wrote them (protocol 2, ``str`` as
byte strings, NumPy arrays through ``numpy.core.multiarray._reconstruct``), MNIST files are
IDX headers packed with ``struct`` followed by the pixel bytes, raw and gzipped.

Pixel comparisons are exact: a pixel value v is returned as v / 255 (v / 16 for digits),
one IEEE division of the same two numbers, which is correctly rounded, so an independent
reference computed as that division is bitwise equal.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import pickletools
import struct

import jax
import numpy as np
import pytest
from numpy._core import multiarray

from advlip import data

N = 7  # rows per miniature CIFAR batch
LAYOUT_CIFAR = ("data_batch_1", "data_batch_5", "test_batch", "cifar-10-batches-py")
LAYOUT_MNIST = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
    ".gz",
)
U32, U64 = 2.0**-24, 2.0**-53  # unit roundoffs of float32 and float64


# --------------------------------------------------------------------------- writers


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official batches: every string (a
    Python 2 ``str``) as a byte-string opcode (read back as bytes with encoding="bytes"),
    and NumPy arrays through ``numpy.core.multiarray._reconstruct`` (NumPy 1's module)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        if obj is multiarray._reconstruct:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_dump(obj, path) -> None:
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def batch_dict(pixels: np.ndarray, labels, name: str = "batch") -> dict:
    """A batch laid out as the official ones: uint8 rows of R, G, B planes, a list of ints."""
    return {
        b"batch_label": f"{name} of 5".encode(),
        b"labels": [int(v) for v in labels],
        b"data": pixels,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }


def batch_pixels(seed: int, n: int = N) -> np.ndarray:
    px = np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)
    px[:, 0] = np.arange(n) + 16 * seed  # a unique red pixel (0, 0) per image: traceable
    return px


def batch_labels(seed: int, n: int = N) -> np.ndarray:
    return (np.arange(n) + seed) % 10


def cifar_tree(folder) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The six official files of 7 images each under ``folder``; returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names, 1):
        px, lab = batch_pixels(seed), batch_labels(seed)
        py2_dump(batch_dict(px, lab, name), folder / name)
        written[name] = (px, lab)
    return written


def nhwc_reference(pixels: np.ndarray) -> np.ndarray:
    """Element by element, not by reshape: image i's pixel (r, c) of channel ch is byte
    ch*1024 + r*32 + c of row i (the red, green and blue planes, each row-major)."""
    n = pixels.shape[0]
    i, r, c, ch = np.meshgrid(
        np.arange(n), np.arange(32), np.arange(32), np.arange(3), indexing="ij"
    )
    return pixels[i, ch * 1024 + r * 32 + c].astype(np.float64) / 255.0


def idx_images(pixels: np.ndarray, *, magic: int = 0x803, rows=None, cols=None) -> bytes:
    n, h, w = pixels.shape
    return struct.pack(">IIII", magic, n, rows or h, cols or w) + pixels.tobytes()


def idx_labels(labels, *, magic: int = 0x801) -> bytes:
    return struct.pack(">II", magic, len(labels)) + bytes(int(v) for v in labels)


def mnist_pixels(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(100 + seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def mnist_tree(folder, *, gz: bool = False, n_train: int = 6, n_test: int = 4) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for seed, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        prefix = "train" if split == "train" else "t10k"
        px, lab = mnist_pixels(seed, n), (np.arange(n) * 3 + seed) % 10
        for name, blob in (
            (f"{prefix}-images-idx3-ubyte", idx_images(px)),
            (f"{prefix}-labels-idx1-ubyte", idx_labels(lab)),
        ):
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
            else:
                (folder / name).write_bytes(blob)
        written[split] = (px, lab)
    return written


def error(fn, *args, **kw) -> str:
    with pytest.raises(ValueError) as exc:
        fn(*args, **kw)
    return str(exc.value)


def assert_layout(msg: str, names) -> None:
    for name in names:
        assert name in msg, (name, msg)


# --------------------------------------------------------------------------- CIFAR-10: reading


def test_test_files_are_written_as_the_official_python2_pickles(tmp_path):
    # The fixture is only a faithful stand-in if it uses the official opcodes and globals:
    # byte-string keys and NumPy 1's module name, and no Python 3 `_codecs.encode` for bytes.
    cifar_tree(tmp_path)
    ops = list(pickletools.genops((tmp_path / "test_batch").read_bytes()))
    globals_ = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    assert globals_ == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    strings = {arg for op, arg, _ in ops if op.name == "SHORT_BINSTRING"}
    assert {"data", "labels", "batch_label", "filenames"} <= strings
    assert ops[0][0].name == "PROTO" and ops[0][1] == 2


def test_each_pixel_lands_at_its_row_column_and_channel(tmp_path):
    px = np.zeros((N, 3072), np.uint8)
    # (image, row, column, channel, value): every channel, corners and the interior
    marks = [(0, 0, 0, 0, 11), (1, 0, 31, 1, 22), (2, 31, 0, 2, 33), (3, 5, 17, 1, 255)]
    marks += [(6, 31, 31, 2, 77), (4, 12, 3, 0, 1)]
    for i, r, c, ch, v in marks:
        px[i, ch * 1024 + r * 32 + c] = v
    py2_dump(batch_dict(px, batch_labels(0)), tmp_path / "test_batch")
    X, _ = data.cifar10(tmp_path, split="test")
    expected = np.zeros((N, 32, 32, 3))
    for i, r, c, ch, v in marks:
        expected[i, r, c, ch] = v / 255.0
    np.testing.assert_array_equal(X, expected)  # exact: see the module docstring


def test_train_concatenates_the_five_batches_in_order(tmp_path):
    written = cifar_tree(tmp_path)
    X, y = data.cifar10(tmp_path)  # split="train" is the default
    names = [f"data_batch_{i}" for i in range(1, 6)]
    assert X.shape == (5 * N, 32, 32, 3) and X.dtype == np.float64
    assert y.shape == (5 * N,) and y.dtype == np.int64
    ref = np.concatenate([nhwc_reference(written[k][0]) for k in names])
    np.testing.assert_array_equal(X, ref)
    np.testing.assert_array_equal(y, np.concatenate([written[k][1] for k in names]))
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert isinstance(X, np.ndarray) and isinstance(y, np.ndarray)  # NumPy, host memory


def test_test_split_reads_test_batch_and_the_parent_folder_form_works(tmp_path):
    written = cifar_tree(tmp_path / "cifar-10-batches-py")
    X, y = data.cifar10(tmp_path, split="test")  # the parent holding cifar-10-batches-py/
    np.testing.assert_array_equal(X, nhwc_reference(written["test_batch"][0]))
    np.testing.assert_array_equal(y, written["test_batch"][1])
    Xd, yd = data.cifar10(tmp_path / "cifar-10-batches-py", split="test")
    np.testing.assert_array_equal(Xd, X)
    np.testing.assert_array_equal(yd, y)


def test_a_python3_pickle_of_the_same_batch_is_read(tmp_path):
    # protocol 3 writes bytes natively and names NumPy 2's module numpy._core.multiarray
    px, lab = batch_pixels(3), batch_labels(3)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump(batch_dict(px, lab), f, protocol=3)
    X, y = data.cifar10(tmp_path, split="test")
    np.testing.assert_array_equal(X, nhwc_reference(px))
    np.testing.assert_array_equal(y, lab)


def test_float32_is_the_division_rounded_once_to_float32(tmp_path):
    written = cifar_tree(tmp_path)
    X32, _ = data.cifar10(tmp_path, split="test", dtype=np.float32)
    ref = nhwc_reference(written["test_batch"][0])
    assert X32.dtype == np.float32
    # v/255 rounded to float32 is within u32·|v/255| of the exact quotient, the float64
    # reference within u64·|v/255|: together (u32 + 2·u64)·|ref| bounds the difference
    assert np.all(np.abs(X32.astype(np.float64) - ref) <= (U32 + 2 * U64) * ref)
    assert "dtype" in error(data.cifar10, tmp_path, split="test", dtype=np.int32)


# --------------------------------------------------------------------------- CIFAR-10: defects


def cifar_error(root, split="test") -> str:
    msg = error(data.cifar10, root, split=split)
    assert_layout(msg, LAYOUT_CIFAR)  # every message shows the expected layout
    return msg


def test_a_missing_batch_is_named(tmp_path):
    cifar_tree(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    msg = cifar_error(tmp_path, split="train")
    assert "missing file" in msg and str(tmp_path / "data_batch_3") in msg
    assert "missing file" in cifar_error(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        (batch_dict(np.zeros((N, 3071), np.uint8), batch_labels(0)), "wrong shape"),
        (batch_dict(np.zeros((N, 32, 32, 3), np.uint8), batch_labels(0)), "wrong shape"),
        (batch_dict(np.zeros((N, 3072), np.int16), batch_labels(0)), "not a uint8 array"),
        (batch_dict(np.zeros((N, 3072), np.uint8), [0, 1, 2, 10, 4, 5, 6]), "out of range 0-9"),
        (batch_dict(np.zeros((N, 3072), np.uint8), [0, 1, -1, 3, 4, 5, 6]), "out of range 0-9"),
        (batch_dict(np.zeros((N, 3072), np.uint8), batch_labels(0, N - 1)), "7 images but 6"),
        ({b"data": np.zeros((N, 3072), np.uint8), b"labels": [0.5] * N}, "not a list of ints"),
        ({b"data": np.zeros((N, 3072), np.uint8)}, "no key b'labels'"),
        ([np.zeros((N, 3072), np.uint8)], "not a dict"),
    ],
    ids=[
        "short-rows",
        "4d",
        "dtype",
        "label-10",
        "label-neg",
        "count",
        "float-labels",
        "no-labels",
        "list",
    ],
)
def test_malformed_batches_are_named_with_what_is_wrong(tmp_path, batch, expected):
    py2_dump(batch, tmp_path / "test_batch")
    msg = cifar_error(tmp_path)
    assert expected in msg, msg
    assert str(tmp_path / "test_batch") in msg


def test_a_truncated_batch_is_named(tmp_path):
    cifar_tree(tmp_path)
    blob = (tmp_path / "test_batch").read_bytes()
    (tmp_path / "test_batch").write_bytes(blob[: len(blob) // 2])
    msg = cifar_error(tmp_path)
    assert "truncated" in msg and str(tmp_path / "test_batch") in msg
    (tmp_path / "test_batch").write_bytes(b"not a pickle at all")
    assert "not a readable python-pickle batch" in cifar_error(tmp_path)


# --------------------------------------------------------------------------- CIFAR-10: safety


class RunsCommand:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


class WritesFile:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (io.FileIO, (str(self.sentinel), "w"))  # creates the file when called


class CallsExec:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (exec, (f"open({str(self.sentinel)!r}, 'w').close()",))


@pytest.mark.parametrize("payload", [RunsCommand, WritesFile, CallsExec])
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("where", ["top", "nested"])
def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(
    tmp_path, payload, protocol, where
):
    sentinel = tmp_path / "SENTINEL"
    evil = payload(sentinel)
    obj = evil if where == "top" else {b"labels": [evil] * N, b"data": np.zeros((N, 3072))}
    if protocol == 2:  # as Python 2 would write it (byte strings without _codecs.encode)
        f = io.BytesIO()
        Py2Pickler(f, protocol=2).dump(obj)
        blob = f.getvalue()
    else:
        blob = pickle.dumps(obj, protocol=protocol)
    # the same payload, unrestricted, does run (so the sentinel check below can fail)
    loaded = pickle.loads(blob, encoding="latin1")  # Python 2 strings as str
    for made in [loaded] if where == "top" else loaded.get("labels", loaded.get(b"labels")):
        if isinstance(made, io.FileIO):
            made.close()
    assert sentinel.exists()
    sentinel.unlink()
    (tmp_path / "test_batch").write_bytes(blob)
    msg = cifar_error(tmp_path)
    assert not sentinel.exists()
    # the global as pickled: protocol 2 writes Python 2's module names (__builtin__.exec)
    func = evil.__reduce__()[0]
    assert "refused the global" in msg and f".{func.__qualname__}:" in msg, msg
    assert str(tmp_path / "test_batch") in msg


def test_object_arrays_and_misused_numpy_globals_are_refused(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    path = tmp_path / "test_batch"
    # an object array of payloads: the object dtype is refused before any element is built
    objects = np.empty(N, dtype=object)
    objects[:] = [RunsCommand(sentinel) for _ in range(N)]
    py2_dump(batch_dict(objects, batch_labels(0)), path)
    assert "only numeric dtypes" in cifar_error(tmp_path)
    assert not sentinel.exists()
    # numpy.ndarray called directly (not as _reconstruct's subtype) is not callable
    path.write_bytes(b"\x80\x02cnumpy\nndarray\nK\x05\x85R.")
    assert "not a readable python-pickle batch" in cifar_error(tmp_path)
    # _reconstruct of a subtype other than ndarray
    path.write_bytes(
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85U\x01b\x87R."
    )
    assert "only numpy.ndarray is allowed" in cifar_error(tmp_path)


# --------------------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_mnist_returns_the_pixels_and_labels_written(tmp_path, gz):
    written = mnist_tree(tmp_path, gz=gz)
    for split in ("train", "test"):
        X, y = data.mnist(tmp_path, split=split)
        px, lab = written[split]
        n = px.shape[0]
        assert X.shape == (n, 28, 28, 1) and X.dtype == np.float64 and y.dtype == np.int64
        flat = px.reshape(n, -1)  # byte i*784 + r*28 + c of the payload is pixel (r, c)
        i, r, c = np.meshgrid(np.arange(n), np.arange(28), np.arange(28), indexing="ij")
        np.testing.assert_array_equal(X[..., 0], flat[i, r * 28 + c] / 255.0)
        np.testing.assert_array_equal(y, lab)
        assert X.min() >= 0.0 and X.max() <= 1.0


def test_mnist_known_pixel_mixed_compression_and_torchvision_folder(tmp_path):
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    px = np.zeros((3, 28, 28), np.uint8)
    px[2, 27, 1] = 200
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_images(px)))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_labels([9, 0, 5]))
    X, y = data.mnist(tmp_path, split="test")
    expected = np.zeros((3, 28, 28, 1))
    expected[2, 27, 1, 0] = 200 / 255.0
    np.testing.assert_array_equal(X, expected)
    np.testing.assert_array_equal(y, [9, 0, 5])


def mnist_error(root, split="test") -> str:
    msg = error(data.mnist, root, split=split)
    assert_layout(msg, LAYOUT_MNIST)
    return msg


@pytest.mark.parametrize(
    ("images", "labels", "bad", "expected"),
    [
        (idx_images(mnist_pixels(0, 4), magic=0x801), idx_labels(range(4)), "images", "magic"),
        (idx_images(mnist_pixels(0, 4)), idx_labels(range(4), magic=0x803), "labels", "magic"),
        (
            struct.pack(">IIII", 0x803, 2, 27, 28) + bytes(2 * 27 * 28),
            idx_labels(range(2)),
            "images",
            "wrong shape",
        ),
        (idx_images(mnist_pixels(0, 4))[:-1], idx_labels(range(4)), "images", "truncated"),
        (idx_images(mnist_pixels(0, 4)) + b"\x00", idx_labels(range(4)), "images", "holds 3137"),
        (idx_images(mnist_pixels(0, 4))[:10], idx_labels(range(4)), "images", "truncated"),
        (b"\x00\x00", idx_labels(range(4)), "images", "truncated"),
        (idx_images(mnist_pixels(0, 4)), idx_labels([1, 2, 10, 3]), "labels", "out of range 0-9"),
        (idx_images(mnist_pixels(0, 4)), idx_labels(range(3)), "both", "4 images but 3 labels"),
    ],
    ids=[
        "image-magic",
        "label-magic",
        "shape",
        "short-data",
        "extra-data",
        "short-header",
        "no-magic",
        "label-range",
        "counts",
    ],
)
def test_malformed_mnist_files_are_named_with_what_is_wrong(
    tmp_path, images, labels, bad, expected
):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(images)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(labels)
    msg = mnist_error(tmp_path)
    assert expected in msg, msg
    for kind in ("images", "labels") if bad == "both" else (bad,):
        assert str(tmp_path / f"t10k-{kind}-idx{3 if kind == 'images' else 1}-ubyte") in msg


def test_missing_and_truncated_gzip_mnist_files_are_named(tmp_path):
    mnist_tree(tmp_path, gz=True)
    name = "t10k-labels-idx1-ubyte.gz"
    blob = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(blob[: len(blob) - 6])
    msg = mnist_error(tmp_path)
    assert "truncated or corrupt gzip" in msg and str(tmp_path / name) in msg
    (tmp_path / name).unlink()
    msg = mnist_error(tmp_path)
    assert "missing file" in msg and str(tmp_path / "t10k-labels-idx1-ubyte") in msg
    assert "missing file" in mnist_error(tmp_path / "nowhere", split="train")


# --------------------------------------------------------------------------- digits


def test_digits_images_are_sklearns_digits_over_16():
    datasets = pytest.importorskip("sklearn.datasets")
    raw = datasets.load_digits()
    X, y = data.digits_images()
    assert X.shape == (1797, 8, 8, 1) and X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X[..., 0], raw.images / 16.0)  # exact: one division
    np.testing.assert_array_equal(y, raw.target)
    assert X.min() == 0.0 and X.max() == 1.0 and set(y.tolist()) == set(range(10))


# --------------------------------------------------------------------------- images()


def test_images_resolves_every_form(tmp_path):
    written = cifar_tree(tmp_path / "c" / "cifar-10-batches-py")
    mnist_tree(tmp_path / "m", gz=True)
    Xc, yc = data.cifar10(tmp_path / "c", split="test")
    Xm, ym = data.mnist(tmp_path / "m")
    forms = [
        (f"cifar10:{tmp_path / 'c'}", "test", Xc, yc, "CIFAR-10 test"),
        (str(tmp_path / "c"), "test", Xc, yc, "CIFAR-10 test"),
        (str(tmp_path / "c" / "cifar-10-batches-py"), "test", Xc, yc, "CIFAR-10 test"),
        (f"mnist:{tmp_path / 'm'}", "train", Xm, ym, "MNIST train"),
        (str(tmp_path / "m"), "train", Xm, ym, "MNIST train"),
    ]
    for name, split, Xr, yr, what in forms:
        X, y, about = data.images(name, split=split)
        np.testing.assert_array_equal(X, Xr)
        np.testing.assert_array_equal(y, yr)
        assert about.startswith(what) and f"{len(yr)} images" in about, about
    np.testing.assert_array_equal(Xc, nhwc_reference(written["test_batch"][0]))


@pytest.mark.parametrize("split", ["train", "test"])
def test_images_digits_is_the_whole_set_for_either_split(split):
    # digits has no official split: both splits give all of it, and the description says so
    pytest.importorskip("sklearn")
    X, y, about = data.images("digits", split=split)
    Xr, yr = data.digits_images()
    np.testing.assert_array_equal(X, Xr)
    np.testing.assert_array_equal(y, yr)
    assert "1797 images" in about and "no official split" in about
    Xs, ys, about = data.images("digits", split=split, n=5, key=jax.random.PRNGKey(2))
    assert Xs.shape == (5, 8, 8, 1) and "5 of 1797 images" in about
    rows = [int(np.flatnonzero((Xr == x).all(axis=(1, 2, 3)))[0]) for x in Xs]
    np.testing.assert_array_equal(ys, yr[rows])  # each drawn image keeps its own label


def test_synthetic_cifar10_replays_from_the_key_and_differs_across_keys():
    X, y, about = data.images("synthetic-cifar10")
    assert X.shape == (256, 32, 32, 3) and X.dtype == np.float64 and y.dtype == np.int64
    assert X.min() >= 0.0 and X.max() <= 1.0 and set(y.tolist()) == set(range(10))
    X0, y0, _ = data.images("synthetic-cifar10", key=jax.random.PRNGKey(0))
    np.testing.assert_array_equal(X0, X)  # the default key is PRNGKey(0)
    np.testing.assert_array_equal(y0, y)
    X1, _, about1 = data.images("synthetic-cifar10", n=5, key=jax.random.PRNGKey(1))
    assert X1.shape == (5, 32, 32, 3) and "seed 1" in about1
    assert not np.array_equal(X1, X[:5])
    Xt, _, _ = data.images("synthetic-cifar10", split="test")
    assert not np.array_equal(Xt, X)


def test_the_subset_draw_replays_from_the_key_and_differs_across_keys(tmp_path):
    cifar_tree(tmp_path)
    Xall, yall = data.cifar10(tmp_path)
    a, b, c = (data.images(str(tmp_path), n=9, key=jax.random.PRNGKey(s)) for s in (3, 3, 4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert "9 of 35 images" in a[2] and "seed 3" in a[2]
    for X, y, _ in (a, c):
        # each drawn image is a distinct image of the full set, with its own label: the
        # red pixel (0, 0) was written as a unique code per image (see batch_pixels)
        codes = X[:, 0, 0, 0]
        rows = [int(np.flatnonzero(Xall[:, 0, 0, 0] == v)[0]) for v in codes]
        assert len(set(rows)) == 9
        np.testing.assert_array_equal(X, Xall[rows])
        np.testing.assert_array_equal(y, yall[rows])
    assert not np.array_equal(a[0], c[0])
    msg = error(data.images, str(tmp_path), n=36)
    assert "n=36" in msg and "1 to 35" in msg


@pytest.mark.parametrize(
    "name", ["svhn", "svhn:/data", "cifar10:", "nowhere/at/all", "FILE", "EMPTY"]
)
def test_unknown_forms_list_the_allowed_ones(tmp_path, name):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.bin").write_bytes(b"x")
    name = {"FILE": str(tmp_path / "file.bin"), "EMPTY": str(tmp_path / "empty")}.get(name, name)
    msg = error(data.images, name)
    for form in data.IMAGE_DATASETS:
        assert form in msg, (form, msg)


def test_images_checks_its_arguments():
    assert "split='val'" in error(data.images, "synthetic-cifar10", split="val")
    assert "n=0" in error(data.images, "synthetic-cifar10", n=0)
    assert "integer" in error(data.images, "synthetic-cifar10", key=3)
    assert "dtype" in error(data.images, "synthetic-cifar10", dtype="int8")
    assert "split='val'" in error(data.cifar10, ".", split="val")
    assert isinstance(data.IMAGE_DATASETS, tuple)
    assert {"cifar10", "mnist", "digits_images", "images", "IMAGE_DATASETS"} <= set(data.__all__)


def test_py2_pickler_round_trips_through_the_standard_unpickler():
    # the fixture's writer produces valid pickles: the standard unpickler (encoding="bytes",
    # as for the official files) reads back the same dict
    px, lab = batch_pixels(1), batch_labels(1)
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(batch_dict(px, lab))
    back = pickle.loads(f.getvalue(), encoding="bytes")
    np.testing.assert_array_equal(back[b"data"], px)
    assert back[b"labels"] == lab.tolist() and back[b"filenames"][0] == b"img_0.png"
