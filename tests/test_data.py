"""advlip.data.load: built-in names, and user files whose every defect gets a message that
names the file and says the fix."""

from __future__ import annotations

import re

import numpy as np
import pytest

from advlip import data

X = np.array([[0.5, -0.25], [-0.75, 0.125], [0.375, 0.625]])
Y = np.array([1.0, -1.0, 1.0])


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def table(sep: str = ",", X=X, Y=Y) -> str:
    return "".join(
        sep.join(map(repr, [*x, t])) + "\n" for x, t in zip(X.tolist(), Y.tolist(), strict=True)
    )


def load_error(path: str) -> str:
    with pytest.raises(ValueError) as exc:
        data.load(path)
    msg = str(exc.value)
    assert msg.startswith(f"data={path!r}"), msg  # every message names the file
    return msg


# --------------------------------------------------------------------------- what is read


@pytest.mark.parametrize(
    ("name", "sep"),
    [("d.csv", ","), ("d.csv", ";"), ("d.tsv", "\t"), ("d.txt", " "), ("d.txt", "  ")],
    ids=["comma", "semicolon", "tab", "space", "spaces"],
)
def test_delimited_text_is_read_whatever_the_separator(tmp_path, name, sep):
    Xl, yl = data.load(write(tmp_path, name, table(sep)))
    np.testing.assert_array_equal(np.asarray(Xl), X)
    np.testing.assert_array_equal(np.asarray(yl), Y)


def test_comments_blank_lines_quotes_and_a_bom_are_read(tmp_path):
    text = "\ufeff# exported\n\n" + "".join(
        ",".join(f'"{v!r}"' for v in [*x, t]) + "\n"
        for x, t in zip(X.tolist(), Y.tolist(), strict=True)
    )
    Xl, yl = data.load(write(tmp_path, "d.csv", text))
    np.testing.assert_array_equal(np.asarray(Xl), X)
    np.testing.assert_array_equal(np.asarray(yl), Y)


def test_npz_is_read(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=Y.astype(np.int64))  # integer labels are fine
    Xl, yl = data.load(str(path))
    np.testing.assert_array_equal(np.asarray(Xl), X)
    np.testing.assert_array_equal(np.asarray(yl), Y)


# --------------------------------------------------------------------------- text defects


def test_header_row_is_named_with_how_to_remove_it(tmp_path):
    path = write(tmp_path, "d.csv", "x1,x2,label\n" + table())
    msg = load_error(path)
    assert "the first row looks like a header (x1, x2, label)" in msg
    assert f"sed '1d' {path}" in msg


def test_labels_in_the_first_column_get_the_move_it_last_fix(tmp_path):
    rolled = np.column_stack([Y, X])  # label first
    path = write(tmp_path, "d.csv", "".join(",".join(map(repr, r)) + "\n" for r in rolled.tolist()))
    msg = load_error(path)
    assert "the FIRST column looks like the labels" in msg
    assert "LAST column" in msg and "move the first column to the end" in msg
    assert "2*y - 1" not in msg  # the wrong fix the old message suggested


def test_01_labels_in_the_first_column_get_both_fixes(tmp_path):
    rolled = np.column_stack([(Y + 1) / 2, X])
    path = write(tmp_path, "d.csv", "".join(",".join(map(repr, r)) + "\n" for r in rolled.tolist()))
    msg = load_error(path)
    assert "FIRST column looks like 0/1 labels" in msg and "y = 2*y - 1" in msg


def test_01_labels_last_get_the_2y_minus_1_fix(tmp_path):
    msg = load_error(write(tmp_path, "d.csv", table(Y=(Y + 1) / 2)))
    assert "labels y" in msg and "are 0/1" in msg and "y = 2*y - 1" in msg


def test_other_two_class_labels_get_a_mapping(tmp_path):
    msg = load_error(write(tmp_path, "d.csv", table(Y=np.array([2.0, 5.0, 2.0]))))
    assert re.search(r"y must hold labels -1 or \+1 only, got \[2\.0, 5\.0\]", msg), msg
    assert "np.where(y == 5.0, 1.0, -1.0)" in msg


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the file holds no rows"),
        ("# just a comment\n\n", "the file holds no rows"),
        ("1\n-1\n", "line 1 has 1 column"),
        ("0.5,1\n0.25\n", "line 2 has 1 columns but line 1 has 2"),
        ("0.5,0.25,1\n0.1,abc,-1\n", "line 2, column 2 'abc' is not a number"),
        ("0.5,0.25,1\n0.1,,-1\n", "line 2, column 2 is empty"),
        ("0,5;0,25;1\n0,1;0,2;-1\n", "write decimals with a point (1.5), not a comma"),
        ("a,b,label\n", "the only row looks like a header"),
        ("0.5,nan,1\n0.1,0.2,-1\n", "X contains 1 non-finite value(s)"),
        ("0.5,0.2,inf\n0.1,0.2,-1\n", "y (the last column) contains 1 non-finite"),
    ],
    ids=[
        "empty",
        "only-comments",
        "one-column",
        "ragged",
        "string-cell",
        "empty-cell",
        "decimal-comma",
        "header-only",
        "nan",
        "inf-label",
    ],
)
def test_text_defects_name_the_file_and_the_place(tmp_path, text, fragment):
    assert fragment in load_error(write(tmp_path, "d.csv", text))


def test_binary_junk_is_not_a_text_file(tmp_path):
    msg = load_error(write(tmp_path, "d.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))
    assert "not a text file" in msg


# --------------------------------------------------------------------------- npz defects


def test_npz_string_labels_name_the_file_and_suggest_a_mapping(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=np.array(["cat", "dog", "cat"]))
    msg = load_error(str(path))
    assert "labels y are <U3 strings" in msg and "np.where(y == 'cat', 1.0, -1.0)" in msg


def test_npz_missing_keys_say_what_the_file_holds(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, features=X, y=Y)
    msg = load_error(str(path))
    assert "no array(s) ['X']" in msg and "it holds ['features', 'y']" in msg
    assert "np.savez(path, X=X, y=y)" in msg


def test_npz_shape_mismatch_names_both_shapes(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=Y[:2])
    msg = load_error(str(path))
    assert "X has shape (3, 2) but y has shape (2,)" in msg


def test_npz_column_vector_labels_get_ravel(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=Y[:, None])
    assert "use y.ravel()" in load_error(str(path))


def test_npz_1d_X_gets_reshape(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=X[:, 0], y=Y)
    assert "X.reshape(-1, 1)" in load_error(str(path))


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"X,y\n1,2\n", "not a .npz file"),
        (b"PK\x03\x04truncated", "not a readable .npz file"),
        (None, "holds a single array (.npy format)"),
    ],
    ids=["text", "broken-zip", "npy"],
)
def test_npz_that_is_not_an_archive(tmp_path, content, fragment):
    path = tmp_path / "d.npz"
    if content is None:
        with open(path, "wb") as f:
            np.save(f, X)
    else:
        path.write_bytes(content)
    assert fragment in load_error(str(path))


def test_npz_object_arrays_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=np.array([1, None, -1], dtype=object))
    assert "array 'y' cannot be read" in load_error(str(path))


# --------------------------------------------------------------------------- names and paths


def test_unknown_name_lists_the_builtins_and_file_types():
    msg = load_error("mnist")
    assert "synthetic" in msg and "breast-cancer" in msg and ".npz" in msg and ".tsv" in msg


def test_existing_file_of_another_type_says_which_types_are_read(tmp_path):
    msg = load_error(write(tmp_path, "d.dat", table()))
    assert "files of type '.dat' are not read" in msg and "LAST column" in msg


def test_missing_file_and_folder(tmp_path):
    assert "no such file" in load_error(str(tmp_path / "nope.csv"))
    (tmp_path / "dir.csv").mkdir()
    assert "not a file" in load_error(str(tmp_path / "dir.csv"))


@pytest.mark.parametrize("name", ["digits-3", "digits-a-b", "digits-3-3"])
def test_bad_digits_names(name):
    with pytest.raises(ValueError, match="digits"):
        data.load(name)


# --------------------------------------------------------------------------- keys


def test_synthetic_replays_from_its_key_and_refuses_an_integer():
    import jax

    from advlip import keys

    X1, y1 = data.synthetic(jax.random.PRNGKey(4), n=10, d=3)
    X2, y2 = data.synthetic(jax.random.PRNGKey(4), n=10, d=3)
    np.testing.assert_array_equal(np.asarray(X1), np.asarray(X2))
    np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))
    X3, _ = data.synthetic(jax.random.PRNGKey(5), n=10, d=3)
    assert not np.array_equal(np.asarray(X1), np.asarray(X3))
    # PRNGKey(N) gives the set NumPy's generator of seed N draws (the data of --seed N)
    rng = np.random.default_rng(4)
    np.testing.assert_array_equal(np.asarray(X1), rng.standard_normal((10, 3)) / np.sqrt(3))
    assert {-1.0, 1.0} == set(np.asarray(y1).tolist())
    with pytest.raises(ValueError, match=r"key=4 is an integer; allowed: a JAX PRNG key"):
        data.synthetic(4)
    Xl, _ = data.load("synthetic", key=jax.random.PRNGKey(4))
    np.testing.assert_array_equal(
        np.asarray(Xl), np.asarray(data.synthetic(jax.random.PRNGKey(4))[0])
    )
    assert keys.key_seed(jax.random.PRNGKey(4)) == 4


def test_keys_read_raw_and_typed_keys_alike_and_name_bad_ones():
    import jax

    from advlip import keys

    for n in (0, 7, 2**32 - 1):
        raw, typed = jax.random.PRNGKey(n), jax.random.key(n)
        assert keys.key_seed(raw) == keys.key_seed(typed) == n
        a = keys.numpy_rng(raw, 3).standard_normal(4)
        np.testing.assert_array_equal(a, np.random.default_rng([n, 3]).standard_normal(4))
        np.testing.assert_array_equal(a, keys.numpy_rng(typed, 3).standard_normal(4))
    split = jax.random.split(jax.random.PRNGKey(0))[1]
    hi, lo = (int(b) for b in np.asarray(split))
    assert keys.key_seed(split) == (hi << 32) | lo  # the bits, most significant word first
    with pytest.raises(ValueError, match="a batch of keys|one concrete JAX PRNG key"):
        keys.check_key(jax.random.split(jax.random.PRNGKey(0)))
    with pytest.raises(ValueError, match="seed must be one concrete JAX PRNG key"):
        keys.check_key(np.zeros(2), "seed")
    with pytest.raises(ValueError, match="traced key has no bits"):
        jax.jit(keys.check_key)(jax.random.PRNGKey(0))
