"""Fuzz the ``advlip`` command line: whatever the arguments, the exit status follows the scheme.

0 holds / not refuted, 1 fails / refuted, 2 bad input — the message names the argument
(the flag, ``NAME``, or the data file) — and 3 an internal error, the only status that
comes with a traceback. Hypothesis draws argument combinations in which a few flags
(often none) get an invalid value; the oracle knows which: no invalid value means
0 or 1, any invalid value means 2 naming one of them. So an exit 3 here is a bug in
advlip, and a misclassified input fails the test.

``main`` runs in-process (no subprocess per example); budgets are 100 gradient
evaluations and data are tiny (d ≤ 3), so one example takes well under a second. The
experiments' runs are replaced by a stub: their argument handling is what is fuzzed.
Everything is written under pytest's temporary folders.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from advlip import cli


def fuzz(max_examples: int):
    """Explicit settings sized so that the whole file runs in ~30 s on 2 cores."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.nested_given,  # the falsifier runs Hypothesis itself
        ],
    )


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``advlip.cli.main(argv)``: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse: syntax errors (2), --help (0)
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def check_scheme(argv: list[str], code: int, err: str, bad: list[str]) -> None:
    """The exit-status scheme, given the arguments ``bad`` that hold invalid values."""
    event(f"exit {code}")  # --hypothesis-show-statistics: how often each outcome is tried
    shown = f"argv={argv}\nexit {code}\nstderr:\n{err[-3000:]}"
    assert code in (0, 1, 2, 3), shown
    assert code != 3, "internal error on fuzzed input (a bug in advlip)\n" + shown
    assert "Traceback" not in err, shown
    if bad:
        assert code == 2, f"invalid {bad} not reported as bad input\n" + shown
        # the error line itself names the argument (argparse's usage lists every flag)
        said = error_line(err)
        assert any(b in said for b in bad), f"exit 2 does not name any of {bad}\n" + shown
    else:
        assert code in (0, 1), shown


def error_line(err: str) -> str:
    """The ``advlip CMD: error: ...`` line of stderr (argparse's and advlip's own)."""
    lines = [
        line for line in err.splitlines() if line.startswith("advlip ") and ": error: " in line
    ]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(autouse=True)
def _no_compilation_cache(monkeypatch):
    monkeypatch.setenv("ADVLIP_CACHE_DIR", "off")


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """Output paths: writable, and the bad kinds (missing folder, a folder, under a file)."""
    root = tmp_path_factory.mktemp("fuzz-out")
    (root / "a-file").write_text("a file, not a folder\n")
    (root / "a-dir").mkdir()
    good = rows_file(root, [[0.5, -0.2, 1], [-0.4, 0.3, -1], [0.1, 0.9, 1]], "good.csv", ",")
    return {
        "root": root,
        "json_ok": str(root / "out.json"),
        "json_bad": [
            "/nonexistent/dir/x.json",
            str(root / "a-dir"),
            str(root / "a-file" / "x.json"),
            str(root / "missing" / "x.json"),
        ],
        "out_ok": str(root / "exp"),
        "out_bad": [str(root / "a-file"), str(root / "a-file" / "sub")],
        "good_csv": str(good),
    }


def rows_file(folder, rows, name: str, sep: str):
    path = folder / name
    path.write_text("".join(sep.join(str(v) for v in r) + "\n" for r in rows))
    return path


# --------------------------------------------------------------------------- falsify arguments

# each flag: (valid values, invalid values); a value is the list of strings after the flag
FALSIFY_FLAGS = {
    "--p": (
        [["2"], ["1"], ["inf"], ["1.5"], ["3"]],
        [["0.5"], ["0"], ["-1"], ["nan"], ["two"], [""]],
    ),
    "--eps": ([["0"], ["0.1"], ["1"]], [["-0.1"], ["nan"], ["inf"], ["x"], ["1e400"]]),
    "--beta": ([["0.01"], ["1"], ["1e6"]], [["0"], ["-1"], ["inf"], ["nan"], ["x"]]),
    "--alpha": ([["0"], ["0.5"]], [["-1"], ["nan"], ["inf"]]),
    "--loss": ([["softplus"], ["exponential"], ["squared_hinge"]], [["hinge"], [""]]),
    "--min-norm": ([["0.5"], ["1"], ["2"]], [["0"], ["-1"], ["nan"], ["inf"]]),
    "--ball": ([["0.5"], ["3"]], [["0"], ["-2"], ["nan"], ["inf"]]),
    "--box": ([["-1", "1"], ["0.1", "2"]], [["1", "0"], ["0", "nan"], ["inf", "1"], ["2", "2"]]),
    "--budget": ([["100"], ["150"]], [["99"], ["0"], ["-5"], ["1.5"], ["x"]]),
    "--seed": ([["0"], ["7"], ["4294967295"]], [["-1"], ["4294967296"], ["x"]]),
    "--data": ([["synthetic"], ["GOOD_CSV"]], [["mnist"], ["digits-3-3"], ["/nonexistent.csv"]]),
    "--json": ([["JSON_OK"]], [["JSON_BAD"]]),
}
REQUIRED = ("--p", "--eps", "--beta")
REGIONS = ("--min-norm", "--ball", "--box")


@st.composite
def falsify_argv(draw, paths, corrupt: str | None):
    """(argv, the flags given an invalid value): flag ``corrupt`` gets an invalid value
    (``"two-regions"``: two region flags), and maybe one more flag does; the rest are
    valid, optional flags present or not."""
    extra = draw(st.sampled_from([None, None, None, *FALSIFY_FLAGS])) if corrupt else None
    wrong = {corrupt, extra} - {None, "two-regions"}
    present = [
        f
        for f in FALSIFY_FLAGS
        if f in REQUIRED or f in wrong or f == "--budget" or draw(st.booleans())
    ]
    regions = [f for f in present if f in REGIONS]
    if corrupt == "two-regions" and len(regions) < 2:
        present += [f for f in REGIONS if f not in regions][: 2 - len(regions)]
    elif corrupt != "two-regions" and len(regions) > 1:
        keep = next((f for f in regions if f in wrong), regions[0])
        present = [f for f in present if f not in REGIONS or f == keep]
    argv, bad = ["falsify"], []
    for flag in present:
        valid, invalid = FALSIFY_FLAGS[flag]
        if flag == "--budget" and flag not in wrong:
            value = ["100"]  # keep runs short: the default is 4000
        else:
            value = draw(st.sampled_from(invalid if flag in wrong else valid))
        value = [
            {"GOOD_CSV": paths["good_csv"], "JSON_OK": paths["json_ok"]}.get(v, v) for v in value
        ]
        if value == ["JSON_BAD"]:
            value = [draw(st.sampled_from(paths["json_bad"]))]
        argv += [flag, *value]
    bad = sorted(wrong)
    if corrupt == "two-regions":
        bad += [f for f in present if f in REGIONS]
    if draw(st.booleans()):
        argv.append("--bias")
    return argv, bad


def _falsify_case(argv, bad, paths):
    written = Path(paths["json_ok"])
    written.unlink(missing_ok=True)
    code, out, err = run_cli(argv)
    check_scheme(argv, code, err, bad)
    if code in (0, 1):
        assert ("REFUTED" in out) == (code == 1)
        if "--json" in argv:
            doc = json.loads(written.read_text())
            assert doc["refuted"] == (code == 1)


@fuzz(25)  # ~0.3 s each: most compile a new shape
@given(data=st.data())
def test_valid_falsify_arguments_exit_0_or_1(data, paths):
    argv, bad = data.draw(falsify_argv(paths, None))
    assert bad == []
    _falsify_case(argv, bad, paths)


@pytest.mark.parametrize("corrupt", [*FALSIFY_FLAGS, "two-regions"])
@fuzz(4)
@given(data=st.data())
def test_an_invalid_falsify_argument_exits_2_naming_it(corrupt, data, paths):
    argv, bad = data.draw(falsify_argv(paths, corrupt))
    _falsify_case(argv, bad, paths)


# --------------------------------------------------------------------------- data files

CORRUPTIONS = (
    "header",
    "nan",
    "string-cell",
    "empty",
    "labels-0-1",
    "labels-first",
    "ragged",
    "binary-junk",
    "decimal-comma",
    "one-column",
    "npz-missing-key",
    "npz-string-labels",
    "npz-shape-mismatch",
    "npz-not-a-zip",
)
FORMATS = {
    "csv": (".csv", ","),
    "semicolon": (".csv", ";"),
    "tsv": (".tsv", "\t"),
    "txt": (".txt", " "),
}


VALID_FILES = ("valid-npz", *(f"valid-{fmt}" for fmt in FORMATS))
_names = itertools.count()


@st.composite
def data_file(draw, folder, kind: str):
    """A small dataset file, valid (``valid-FORMAT``) or with the defect ``kind``."""
    n, d = 4, draw(st.integers(1, 3))
    # features never 0 or ±1, so moved or rescaled label columns are recognisable
    mag = st.floats(0.05, 0.95, allow_nan=False)
    X = np.array([[draw(mag) * draw(st.sampled_from([-1, 1])) for _ in range(d)] for _ in range(n)])
    y = np.array([1.0, -1.0] + [draw(st.sampled_from([-1.0, 1.0])) for _ in range(n - 2)])
    if kind.startswith("valid-"):
        fmt = kind.removeprefix("valid-")
    elif kind.startswith("npz"):
        fmt = "npz"
    elif kind == "decimal-comma":
        fmt = "semicolon"
    else:
        fmt = draw(st.sampled_from(list(FORMATS)))
    suffix = ".npz" if fmt == "npz" else FORMATS[fmt][0]
    path = folder / f"d{next(_names)}{suffix}"
    if fmt == "npz":
        if kind == "npz-missing-key":
            np.savez(path, X=X)
        elif kind == "npz-string-labels":
            np.savez(path, X=X, y=np.where(y > 0, "yes", "no"))
        elif kind == "npz-shape-mismatch":
            np.savez(path, X=X, y=y[:-1])
        elif kind == "npz-not-a-zip":
            path.write_text("X,y\n1,2\n")
        else:
            np.savez(path, X=X, y=y)
        return str(path)
    rows = [[*map(repr, x), repr(t)] for x, t in zip(X.tolist(), y.tolist(), strict=True)]
    if kind == "header":
        rows.insert(0, [f"x{i}" for i in range(d)] + ["label"])
    elif kind == "nan":
        rows[draw(st.integers(0, n - 1))][draw(st.integers(0, d))] = "nan"
    elif kind == "string-cell":
        rows[draw(st.integers(1, n - 1))][draw(st.integers(0, d))] = "abc"
    elif kind == "labels-0-1":
        rows = [[*r[:-1], "1" if r[-1] == "1.0" else "0"] for r in rows]
    elif kind == "labels-first":
        rows = [[r[-1], *r[:-1]] for r in rows]
    elif kind == "ragged":
        rows[draw(st.integers(1, n - 1))].pop()
    elif kind == "decimal-comma":
        rows = [[c.replace(".", ",") for c in r] for r in rows]
    elif kind == "one-column":
        rows = [[r[-1]] for r in rows]
    if kind == "empty":
        path.write_text(draw(st.sampled_from(["", "\n\n", "# only a comment\n"])))
    elif kind == "binary-junk":
        path.write_bytes(b"\x00\x89PNG" + draw(st.binary(max_size=40)))
    else:
        sep = FORMATS[fmt][1]
        path.write_text("".join(sep.join(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("kind", [*VALID_FILES, *CORRUPTIONS])
@fuzz(4)
@given(data=st.data())
def test_data_files_follow_the_exit_scheme(kind, data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-data")
    path = data.draw(data_file(folder, kind))
    argv = ["falsify", "--p", "2", "--eps", "0.1", "--beta", "1e6", "--budget", "100"]
    argv += ["--data", path]
    code, out, err = run_cli(argv)
    valid = kind.startswith("valid-")
    check_scheme(argv, code, err, [] if valid else ["--data"])
    if valid:
        assert code == 0 and "not refuted" in out  # β = 10⁶ is a true claim here
    else:
        assert path in error_line(err), f"the message does not name the file {path}:\n{err}"


# --------------------------------------------------------------------------- verify, experiment

VERIFY_FLAGS = {
    "--only": ([["LIN-L1"], ["LIN-L2", "LIU"]], [["NOPE"], ["LIN-L1", "lin-l2"]]),
    "--seed": ([["0"], ["3"]], [["-1"], ["4294967296"], ["x"]]),
    "--json": ([["JSON_OK"]], [["JSON_BAD"]]),
    "--quick": ([[]], []),
    "--bounds": ([[]], []),
}


@st.composite
def flags_argv(draw, flags, paths, head, always=()):
    """(argv, the flags given an invalid value): each flag maybe present, a third wrong."""
    argv, bad = list(head), []
    for flag in flags:
        if flag not in always and not draw(st.booleans()):
            continue
        valid, invalid = flags[flag]
        wrong = bool(invalid) and draw(st.integers(0, 2)) == 0
        value = draw(st.sampled_from(invalid if wrong else valid))
        if value == ["JSON_BAD"]:
            value = [draw(st.sampled_from(paths["json_bad"]))]
        elif value == ["JSON_OK"]:
            value = [paths["json_ok"]]
        elif value == ["OUT_BAD"]:
            value = [draw(st.sampled_from(paths["out_bad"]))]
        elif value == ["OUT_OK"]:
            value = [paths["out_ok"]]
        argv += [flag, *value]
        if wrong:
            bad.append(flag)
    return argv, bad


def _stub_checks(mp, verdict):
    """Every registered check returns `verdict` at once (the real ones take seconds)."""
    import dataclasses

    from advlip.theorems import base

    base.all_results()
    for rid, entry in list(base._REGISTRY.items()):

        def fake(config, rid=rid):
            return base.CheckResult(
                id=rid, statement="s", kind="bound", verdict=verdict, figure="f"
            )

        mp.setitem(base._REGISTRY, rid, dataclasses.replace(entry, check_fn=fake))


@fuzz(60)
@given(data=st.data(), verdict=st.sampled_from(["holds", "fails", "undetermined"]))
def test_verify_arguments_follow_the_exit_scheme(data, verdict, paths):
    argv, bad = data.draw(flags_argv(VERIFY_FLAGS, paths, ["verify"]))
    listing = data.draw(st.integers(0, 3)) == 0
    if listing:
        argv.append("--list")
    if "--only" not in argv and not listing:
        argv += ["--only", "LIN-L1"]  # never the full run
    with pytest.MonkeyPatch.context() as mp:
        _stub_checks(mp, verdict)
        code, out, err = run_cli(argv)
    if listing and code == 0:  # --list prints the ids, whatever valid flags come with it
        assert "LIN-L2-ZERO" in out and "Traceback" not in err
        return
    if listing:  # argparse's syntax errors (--seed x) come first
        bad = [b for b in bad if b in error_line(err)]
    check_scheme(argv, code, err, bad)
    if not bad and "--bounds" in argv:  # the formulas only: no check runs, exit 0
        assert code == 0 and "statement:" in out and "hold," not in out
    elif not bad:
        assert code == (0 if verdict == "holds" else 1)


TAKES_DATA = ("linear-l2-vs-linf", "mlp-l2-vs-linf", "entropy-sgd", "landscape")
EXPERIMENT_FLAGS = {
    "--out": ([["OUT_OK"]], [["OUT_BAD"]]),
    "--seed": ([["0"], ["5"]], [["-1"], ["x"], ["4294967296"]]),
    "--data": ([["digits-3-8"]], [["mnist"], ["digits-1"], ["digits-3-3"]]),
    "--quick": ([[]], []),
}


@fuzz(60)
@given(
    data=st.data(),
    name=st.sampled_from(
        ["phase-diagram", "entropy-sgd", "landscape", "flatness", "nope", "Landscape", "", None]
    ),
    holds=st.booleans(),
    with_out=st.integers(0, 5).map(bool),
)
def test_experiment_arguments_follow_the_exit_scheme(data, name, holds, with_out, paths):
    from advlip import experiments

    flags = {k: v for k, v in EXPERIMENT_FLAGS.items() if with_out or k != "--out"}
    argv, bad = data.draw(
        flags_argv(flags, paths, ["experiment"], always=("--out",) if with_out else ())
    )
    listing = data.draw(st.integers(0, 3)) == 0
    if listing:
        argv.append("--list")
    if name is not None:
        argv.insert(1, name)
    known = name in ("phase-diagram", "entropy-sgd", "landscape", "flatness")
    if not known:
        bad.append("NAME")
    if "--out" not in argv:
        bad.append("--out")
    if "--data" in argv and name not in TAKES_DATA and "--data" not in bad:
        bad.append("--data")  # phase-diagram and flatness take none

    def stub(name, *, out_dir, **kwargs):
        claims = [{"claim": "c", "holds": holds}]
        return {"experiment": name, "claims": claims, "pngs": [], "replay": "r"}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(experiments, "run", stub)
        code, out, err = run_cli(argv)
    if listing and code == 0:
        assert "phase-diagram" in out and "Traceback" not in err
        return
    if listing:  # argparse's syntax errors (--seed x) come first
        bad = [b for b in bad if b in error_line(err)]
    check_scheme(argv, code, err, bad)
    if not bad:
        assert code == (0 if holds else 1)


LANDSCAPE_FLAGS = {
    "--out": ([["OUT_OK"]], [["OUT_BAD"]]),
    "--seed": ([["0"], ["5"]], [["-1"], ["x"]]),
    "--data": ([["breast-cancer"], ["digits-3-8"]], [["mnist"], ["synthetic"]]),
    "--eps": ([["0.5"], ["2"]], [["0"], ["-1"], ["nan"], ["inf"]]),
    "--model": ([["linear"], ["mlp"], ["both"]], [["cnn"]]),
    "--quick": ([[]], []),
}


@fuzz(60)
@given(data=st.data(), holds=st.booleans())
def test_landscape_arguments_follow_the_exit_scheme(data, holds, paths):
    from advlip import experiments

    argv, bad = data.draw(flags_argv(LANDSCAPE_FLAGS, paths, ["landscape"]))
    if "--out" not in argv:
        bad.append("--out")  # required

    def stub(name, *, out_dir, **kwargs):
        assert name == "landscape"
        return {
            "experiment": name,
            "claims": [{"claim": "c", "holds": holds}],
            "pngs": [],
            "replay": "r",
        }

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(experiments, "run", stub)
        code, out, err = run_cli(argv)
    check_scheme(argv, code, err, bad)
    if not bad:
        assert code == (0 if holds else 1)
