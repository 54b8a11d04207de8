"""The advlip command: exit codes, table, JSON, progress."""

import json
import math
import re
import subprocess
import sys

import pytest

from advlip import cli


def test_verify_only_one_check_writes_json(tmp_path, capsys):
    path = tmp_path / "out.json"
    code = cli.main(["verify", "--quick", "--only", "LIN-L1", "--json", str(path)])
    out, err = capsys.readouterr()
    assert code == 0
    assert "LIN-L1" in out and "holds" in out and "1 hold, 0 fail" in out
    assert "Replay: advlip verify --seed 0 --quick --only LIN-L1" in out  # replays this run
    assert "docs/theory/<id>.md" in out  # where each id's statement and derivation live
    assert "[1/1] LIN-L1" in err  # progress goes to stderr
    doc = json.loads(path.read_text())
    assert [r["id"] for r in doc["results"]] == ["LIN-L1"]
    assert doc["results"][0]["verdict"] == "holds"
    assert doc["seed"] == 0 and doc["quick"] is True and doc["environment"]["x64"] is True


def test_verify_list_names_every_result_with_its_theory_page(monkeypatch, capsys):
    from advlip import theorems

    monkeypatch.setenv("COLUMNS", "80")
    assert cli.main(["verify", "--list"]) == 0
    out = capsys.readouterr().out
    words = out.split()
    for res in theorems.all_results():
        assert res.id in words and f"docs/theory/{res.id.lower()}.md" in words
    assert all(len(line) <= 80 for line in out.splitlines()), out


def _checks_must_not_run(monkeypatch):
    """Every check, and Result.check itself, raise: a command that runs one fails."""
    import dataclasses

    from advlip.theorems import base

    def started(*args, **kwargs):
        raise AssertionError("a check ran")

    base.all_results()
    for rid, entry in list(base._REGISTRY.items()):
        monkeypatch.setitem(base._REGISTRY, rid, dataclasses.replace(entry, check_fn=started))
    monkeypatch.setattr(base.Result, "check", started)


def test_verify_bounds_prints_the_formulas_and_runs_no_check(monkeypatch, capsys):
    from jax import monitoring

    from advlip import symbolic, theorems

    registry = theorems.all_results()  # imported before counting: only main's work counts
    _checks_must_not_run(monkeypatch)
    monkeypatch.setenv("COLUMNS", "200")  # one line per field: the lines below compare whole
    compiled = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(duration)

    monitoring.register_event_duration_secs_listener(listen)
    try:
        code = cli.main(["verify", "--bounds"])
    finally:
        monitoring.unregister_event_duration_listener(listen)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert compiled == []  # XLA compiled nothing: no check, no numerics
    lines = out.splitlines()
    for res in registry:
        assert f"{res.id} — {res.title}" in lines
        assert f"  statement: {res.statement}" in lines
        assert f"  theory:    docs/theory/{res.id.lower()}.md" in lines
        if res.bound is not None:
            assert f"  bound:     {symbolic.pretty(res.bound())}" in lines
    assert sum(line.startswith("  bound:") for line in lines) == sum(
        r.bound is not None for r in registry
    )
    assert "docs/theory/index.md" in out and "hold," not in out  # no summary: nothing ran


def test_verify_bounds_only_restricts_and_json_writes_the_bounds(monkeypatch, tmp_path, capsys):
    from advlip import theorems

    _checks_must_not_run(monkeypatch)
    monkeypatch.setenv("COLUMNS", "80")
    path = tmp_path / "b.json"
    code = cli.main(["verify", "--bounds", "--only", "LIU", "LIN-L1", "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    heads = [line.split(" — ")[0] for line in out.splitlines() if " — " in line]
    assert heads == ["LIN-L1", "LIU"]  # registry order, only these
    assert all(len(line) <= 80 for line in out.splitlines()), out
    doc = json.loads(path.read_text())
    assert doc["command"] == "verify --bounds" and "summary" not in doc
    assert [e["id"] for e in doc["results"]] == ["LIN-L1", "LIU"]
    liu = theorems.get("LIU")
    assert doc["results"][1]["bound"] == str(liu.bound()) and doc["results"][0]["bound"] is None
    assert doc["results"][1]["theory"] == "docs/theory/liu.md"


def test_verify_bounds_still_checks_its_arguments(monkeypatch, capsys):
    _checks_must_not_run(monkeypatch)
    assert cli.main(["verify", "--bounds", "--only", "NOPE"]) == 2
    assert cli.main(["verify", "--bounds", "--json", "/nonexistent/dir/x.json"]) == 2
    err = capsys.readouterr().err
    assert "argument --only: unknown id" in err and "argument --json: " in err


def test_verify_help_cites_the_theory_pages(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        cli.main(["verify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "docs/theory/index.md" in top and "docs/theory/index.md" in text
    assert "docs/theory/<id>.md" in text and ("SP" + "EC") not in top + text
    assert "--bounds" in text and "runs nothing" in text


def test_verify_unknown_id_is_a_usage_error(capsys):
    assert cli.main(["verify", "--only", "NOPE"]) == 2
    assert "unknown id" in capsys.readouterr().err


def test_bad_arguments_exit_2():
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--seed", "x"])
    assert exc.value.code == 2


def test_failing_check_exits_1(monkeypatch, capsys):
    import dataclasses

    from advlip.theorems import base

    entry = base.get("LIN-L1")

    def planted(config):
        r = entry.check_fn(config)
        r.verdict = "fails"
        return r

    monkeypatch.setitem(base._REGISTRY, "LIN-L1", dataclasses.replace(entry, check_fn=planted))
    assert cli.main(["verify", "--quick", "--only", "LIN-L1"]) == 1
    out = capsys.readouterr().out
    assert "FAILS" in out and "replay: advlip verify --only LIN-L1 --seed 0 --quick" in out


def test_console_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "advlip", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout.startswith("advlip ")


def test_falsify_refutes_linf_claim_exit_1(tmp_path, capsys):
    path = tmp_path / "f.json"
    code = cli.main(
        [
            "falsify",
            "--p",
            "inf",
            "--eps",
            "0.5",
            "--beta",
            "10",
            "--min-norm",
            "1",
            "--json",
            str(path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1 and "REFUTED" in out and "found by" in out
    doc = json.loads(path.read_text())
    assert doc["refuted"] is True and doc["ratio"] > 10 and len(doc["theta1"]) == 4


def test_falsify_true_l2_claim_exit_0_on_user_files(tmp_path, capsys):
    import jax
    import numpy as np

    from advlip import data

    X, y = (np.asarray(a) for a in data.synthetic(jax.random.PRNGKey(5), n=12, d=3))
    np.savez(tmp_path / "d.npz", X=X, y=y)
    np.savetxt(tmp_path / "d.csv", np.column_stack([X, y]), delimiter=",")
    # LIN-L2 on ‖w‖ ≥ 1 with ε = 0.5: β = ¼(max‖x‖ + ½)² + ½ — a true claim
    beta = 0.25 * (float(np.linalg.norm(X, axis=1).max()) + 0.5) ** 2 + 0.5
    for f in ("d.npz", "d.csv"):
        code = cli.main(
            [
                "falsify",
                "--p",
                "2",
                "--eps",
                "0.5",
                "--beta",
                str(beta),
                "--data",
                str(tmp_path / f),
                "--budget",
                "600",
            ]
        )
        assert code == 0 and "not refuted" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--p", "0.5", "--eps", "0.1", "--beta", "1"], "p=0.5"),
        (["--p", "2", "--eps", "-0.1", "--beta", "1"], "eps=-0.1"),
        (["--p", "2", "--eps", "0.1", "--beta", "0"], "beta=0.0"),
        (["--p", "2", "--eps", "0.1", "--beta", "1", "--data", "mnist"], "not a known dataset"),
        (["--p", "2", "--eps", "0.1", "--beta", "1", "--loss", "hinge"], "loss='hinge'"),
        (
            ["--p", "2", "--eps", "0.1", "--beta", "1", "--ball", "1", "--box", "0", "1"],
            "one region",
        ),
    ],
    ids=["p", "eps", "beta", "data", "loss", "two-regions"],
)
def test_falsify_bad_input_exit_2(argv, match, capsys):
    assert cli.main(["falsify", *argv]) == 2
    assert match in capsys.readouterr().err


# --------------------------------------------------------------------------- exit-code scheme

FALSIFY = ["falsify", "--p", "2", "--eps", "0.1", "--beta", "1", "--budget", "100"]


@pytest.fixture(autouse=True)
def _no_compilation_cache(monkeypatch):
    # main() would otherwise write XLA's cache under ~/.cache: tests write only in tmp_path
    monkeypatch.setenv("ADVLIP_CACHE_DIR", "off")


def _plant(monkeypatch, command, exc):
    """Make the function `command` runs raise `exc`; return the argv that reaches it."""
    from advlip import experiments, falsifier
    from advlip.theorems import base

    def boom(*args, **kwargs):
        raise exc

    if command == "verify":
        import dataclasses

        entry = base.get("LIN-L2-ZERO")
        monkeypatch.setitem(base._REGISTRY, entry.id, dataclasses.replace(entry, check_fn=boom))
        return ["verify", "--quick", "--only", "LIN-L2-ZERO"]
    if command == "falsify":
        monkeypatch.setattr(falsifier, "falsify_smoothness", boom)
        return FALSIFY
    if command == "curvature":
        from advlip import curvature

        monkeypatch.setattr(curvature, "measure", boom)
        return [
            "curvature",
            "--model",
            "advlip.networks:cnn",
            "--p",
            "2",
            "--eps",
            "0.1",
            "--n",
            "2",
        ]
    monkeypatch.setattr(experiments, "run", boom)
    return ["experiment", "phase-diagram"] if command == "experiment" else ["landscape"]


COMMANDS = ["verify", "falsify", "experiment", "landscape", "curvature"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "exc", [RuntimeError("planted"), TypeError("planted"), ValueError("planted")]
)
def test_internal_error_exits_3_with_traceback_and_replay(
    command, exc, monkeypatch, tmp_path, capsys
):
    # any exception once the arguments passed their checks is advlip's bug: exit 3 —
    # also a TypeError or ValueError from the run, which is not bad input
    argv = _plant(monkeypatch, command, exc)
    if command in ("experiment", "landscape"):
        argv = [*argv, "--out", str(tmp_path / "out")]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 3
    assert "Traceback (most recent call last)" in err
    assert f"{type(exc).__name__}: planted" in err
    assert f"advlip {command}: internal error" in err and "bug in advlip" in err
    assert "advlip " + " ".join(argv) in err  # the replay command


@pytest.mark.parametrize("command", COMMANDS)
def test_interrupt_exits_130_without_traceback(command, monkeypatch, tmp_path, capsys):
    argv = _plant(monkeypatch, command, KeyboardInterrupt())
    if command in ("experiment", "landscape"):
        argv = [*argv, "--out", str(tmp_path / "out")]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def test_closed_output_pipe_exits_141_without_traceback(monkeypatch, capsys):
    # `advlip verify --list | head`: the reader left; not a bug, so not exit 3
    argv = _plant(monkeypatch, "falsify", BrokenPipeError(32, "Broken pipe"))
    assert cli.main(argv) == 141
    assert "Traceback" not in capsys.readouterr().err


def _must_not_run(monkeypatch):
    """Fail the test if a command's run starts: bad input must be caught before it."""
    from advlip import experiments, falsifier
    from advlip.theorems import base

    def started(*args, **kwargs):
        raise AssertionError("the run started although an argument was bad")

    monkeypatch.setattr(falsifier, "falsify_smoothness", started)
    monkeypatch.setattr(experiments, "run", started)
    monkeypatch.setattr(base.Result, "check", started)


BAD_BEFORE_RUN = [
    # (argv, the argument the message must name, a fragment of the message)
    (["verify", "--seed", "-1"], "--seed", "seed=-1"),
    (["verify", "--only", "LIN-L1", "--seed", str(2**32)], "--seed", "2**32 - 1"),
    (["verify", "--only", "NOPE"], "--only", "unknown id"),
    (
        ["verify", "--only", "LIN-L1", "--json", "/nonexistent/dir/x.json"],
        "--json",
        "does not exist",
    ),
    ([*FALSIFY, "--seed", "-1"], "--seed", "seed=-1"),
    ([*FALSIFY, "--json", "/nonexistent/dir/x.json"], "--json", "does not exist"),
    (["falsify", "--p", "0.5", "--eps", "0.1", "--beta", "1"], "--p", "p=0.5"),
    (["falsify", "--p", "nan", "--eps", "0.1", "--beta", "1"], "--p", "p=nan"),
    (["falsify", "--p", "two", "--eps", "0.1", "--beta", "1"], "--p", "p='two'"),
    (["falsify", "--p", "2", "--eps", "-0.1", "--beta", "1"], "--eps", "eps=-0.1"),
    (["falsify", "--p", "2", "--eps", "inf", "--beta", "1"], "--eps", "eps=inf"),
    (["falsify", "--p", "2", "--eps", "nan", "--beta", "1"], "--eps", "eps=nan"),
    (["falsify", "--p", "2", "--eps", "0.1", "--beta", "0"], "--beta", "beta=0.0"),
    (["falsify", "--p", "2", "--eps", "0.1", "--beta", "inf"], "--beta", "beta=inf"),
    ([*FALSIFY, "--alpha", "-1"], "--alpha", "alpha=-1.0"),
    ([*FALSIFY, "--alpha", "nan"], "--alpha", "alpha=nan"),
    ([*FALSIFY[:-1], "99"], "--budget", "budget=99"),
    ([*FALSIFY, "--loss", "hinge"], "--loss", "loss='hinge'"),
    ([*FALSIFY, "--data", "mnist"], "--data", "not a known dataset"),
    ([*FALSIFY, "--min-norm", "0"], "--min-norm", "min-norm=0.0"),
    ([*FALSIFY, "--ball", "-1"], "--ball", "ball=-1.0"),
    ([*FALSIFY, "--box", "1", "0"], "--box", "LOW=1.0 must be < HIGH=0.0"),
    ([*FALSIFY, "--box", "0", "inf"], "--box", "box=inf"),
    ([*FALSIFY, "--ball", "1", "--box", "0", "1"], "--ball, --box", "one region"),
    (["experiment", "--out", "OUT"], "NAME", "give an experiment name"),
    (["experiment", "nope", "--out", "OUT"], "NAME", "'nope' is not an experiment"),
    (["experiment", "phase-diagram"], "--out", "--out DIR"),
    (["experiment", "phase-diagram", "--out", "OUT", "--seed", "-1"], "--seed", "seed=-1"),
    (["experiment", "flatness", "--out", "OUT", "--data", "digits-3-8"], "--data", "takes no"),
    (["experiment", "entropy-sgd", "--out", "OUT", "--data", "mnist"], "--data", "mnist"),
    (["experiment", "phase-diagram", "--out", "FILE"], "--out", "exists and is a file"),
    (["experiment", "phase-diagram", "--out", "FILE/sub"], "--out", "is a file, not a folder"),
    (["landscape", "--out", "OUT", "--eps", "0"], "--eps", "eps=0.0"),
    (["landscape", "--out", "OUT", "--seed", "-5"], "--seed", "seed=-5"),
    (["landscape", "--out", "OUT", "--data", "digits-3-3"], "--data", "digits"),
    (["landscape", "--out", "FILE"], "--out", "exists and is a file; give a directory"),
    ([*FALSIFY, "--json", "DIR"], "--json", "is a folder"),
    ([*FALSIFY, "--json", "FILE/x.json"], "--json", "is a file, not a folder"),
]


@pytest.mark.parametrize(
    ("argv", "arg", "fragment"),
    BAD_BEFORE_RUN,
    ids=[" ".join(a[0][:1] + [a[1]]) for a in BAD_BEFORE_RUN],
)
def test_bad_input_exits_2_naming_the_argument_before_the_run(
    argv, arg, fragment, monkeypatch, tmp_path, capsys
):
    _must_not_run(monkeypatch)
    (tmp_path / "FILE").write_text("not a folder\n")
    (tmp_path / "DIR").mkdir()
    subst = {"OUT": tmp_path / "out", "FILE": tmp_path / "FILE", "DIR": tmp_path / "DIR"}
    argv = [
        str(subst[a.split("/")[0]] / "/".join(a.split("/")[1:])) if a.split("/")[0] in subst else a
        for a in argv
    ]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert f"error: argument {arg}: " in err and fragment in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing was created either


def test_out_under_a_read_only_folder_exits_2(monkeypatch, tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    _must_not_run(monkeypatch)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code = cli.main(["experiment", "phase-diagram", "--out", str(ro / "out")])
        code_json = cli.main([*FALSIFY, "--json", str(ro / "x.json")])
    finally:
        ro.chmod(0o700)
    err = capsys.readouterr().err
    assert code == code_json == 2
    assert "argument --out: " in err and "argument --json: " in err


def test_unwritable_output_paths_exit_2_before_the_run(monkeypatch, tmp_path, capsys):
    # the same as a read-only folder for every user, root included: the probe write fails
    import tempfile

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    _must_not_run(monkeypatch)
    monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    assert cli.main(["experiment", "phase-diagram", "--out", str(tmp_path / "out")]) == 2
    assert cli.main(["landscape", "--out", str(tmp_path)]) == 2
    assert cli.main([*FALSIFY, "--json", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert (
        f"argument --out: {tmp_path / 'out'} cannot be created in {tmp_path} (Permission denied)"
        in err
    )
    assert f"argument --out: {tmp_path} cannot be written (Permission denied)" in err
    assert f"argument --json: cannot write {tmp_path / 'x.json'} (Permission denied)" in err


def test_experiments_run_refuses_a_file_as_out_dir(tmp_path):
    from advlip import experiments

    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(ValueError, match=r"out_dir=.* exists and is a file; give a directory"):
        experiments.run("phase-diagram", out_dir=f, quick=True, progress=None)
    with pytest.raises(ValueError, match=r"out_dir=.* cannot be created"):
        experiments.run("phase-diagram", out_dir=f / "sub", quick=True, progress=None)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_states_the_exit_status_scheme(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for fragment in ("Exit status: 0 ", "; 1 ", "; 2 bad input", "3 internal error of advlip"):
        assert fragment in text, fragment


def test_main_turns_float64_on_for_its_run(monkeypatch, tmp_path, capsys):
    # importing advlip leaves float64 off; the command verifies in float64 regardless
    import jax

    seen = {}

    def record(*args, **kwargs):
        import jax.numpy as jnp

        seen["dtype"] = jnp.zeros(1).dtype
        raise KeyboardInterrupt

    from advlip import falsifier

    monkeypatch.setattr(falsifier, "falsify_smoothness", record)
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        assert cli.main(FALSIFY) == 130
        after = jax.config.jax_enable_x64
    finally:
        jax.config.update("jax_enable_x64", before)
    assert seen["dtype"] == "float64"
    assert after is False  # the caller's setting is back


def test_experiments_run_in_float64_and_restore_the_setting(monkeypatch, tmp_path):
    import jax
    import jax.numpy as jnp

    from advlip import experiments

    seen = {}

    def fake(ctx):
        seen["dtype"] = jnp.zeros(1).dtype
        return {"claims": [{"claim": "x", "holds": True}], "pngs": []}

    monkeypatch.setitem(experiments._REGISTRY, "fake", experiments._Experiment(fake, "fake"))
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        doc = experiments.run("fake", out_dir=tmp_path, progress=None)
        after = jax.config.jax_enable_x64
    finally:
        jax.config.update("jax_enable_x64", before)
    assert seen["dtype"] == "float64" and after is False
    assert doc["experiment"] == "fake" and (tmp_path / "fake.json").exists()


def test_experiment_exit_follows_the_claims(monkeypatch, tmp_path, capsys):
    from advlip import experiments

    def fake(ctx, holds):
        return {
            "claims": [{"claim": "a", "holds": True}, {"claim": "b", "holds": holds}],
            "pngs": [],
        }

    for holds, code in ((True, 0), (False, 1)):
        monkeypatch.setitem(
            experiments._REGISTRY,
            "phase-diagram",
            experiments._Experiment(lambda ctx, h=holds: fake(ctx, h), "fake"),
        )
        assert cli.main(["experiment", "phase-diagram", "--out", str(tmp_path)]) == code
    out = capsys.readouterr().out
    assert "FAILS  b" in out and "1/2 claims hold" in out


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("x1,x2,label\n1,2,1\n3,4,-1\n", "the first row looks like a header"),
        ("1,0.5,2\n-1,3,4\n", "the FIRST column looks like the labels"),
        ("1,2,0\n3,4,1\n", "y = 2*y - 1"),
        ("1,2,1\n3,4\n", "line 2 has 2 columns but line 1 has 3"),
    ],
    ids=["header", "labels-first", "labels-0-1", "ragged"],
)
def test_falsify_bad_data_file_exits_2_naming_data_and_the_file(
    content, fragment, monkeypatch, tmp_path, capsys
):
    _must_not_run(monkeypatch)
    path = tmp_path / "d.csv"
    path.write_text(content)
    assert cli.main([*FALSIFY, "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert "argument --data: " in err and str(path) in err and fragment in err


def test_falsify_reads_tab_and_semicolon_separated_files(tmp_path, capsys):
    rows = [[0.5, -0.2, 1], [-0.4, 0.3, -1], [0.1, 0.9, 1], [-0.7, -0.1, -1]]
    for name, sep in (("d.tsv", "\t"), ("d.csv", ";"), ("d.txt", " ")):
        (tmp_path / name).write_text("".join(sep.join(map(str, r)) + "\n" for r in rows))
        code = cli.main([*FALSIFY, "--beta", "1e6", "--data", str(tmp_path / name)])
        assert code == 0, capsys.readouterr().err
        assert "(n=4, d=2)" in capsys.readouterr().err


def test_json_reports_hold_non_finite_numbers_as_strings(tmp_path):
    # a verdict can hold inf or nan (a gradient that overflowed); strict JSON has neither
    from advlip import report

    path = tmp_path / "r.json"
    report.write_json(path, {"ratio": math.inf, "xs": [1.0, -math.inf, (math.nan,)], "n": 3})
    assert json.loads(path.read_text()) == {"ratio": "inf", "xs": [1.0, "-inf", ["nan"]], "n": 3}


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--p", "1", "--eps", "0", "--loss", "exponential", "--min-norm", "1e5"], "--min-norm"),
        (["--p", "2", "--eps", "0.1", "--box", "0", "5e-324"], "--box"),
    ],
)
def test_falsify_inputs_no_pair_can_check_exit_2(extra, flag, capsys):
    # found only by the search (e^{-m} overflows; the box rounds to one point): still bad
    # input, never an internal error and never a verdict
    code = cli.main(["falsify", "--beta", "1", "--budget", "100", *extra])
    err = capsys.readouterr().err
    assert code == 2 and flag in err and "Traceback" not in err


def test_falsify_a_tiny_ball_at_the_l2_kink_is_refuted_with_its_distance(capsys):
    # a ball 1e-300 wide around w = 0 straddles LIN-L2-ZERO's kink: R ~ ε/t, refuted; the
    # printed distance must not underflow to 0 (a plain norm squares 1e-305 to 0)
    code = cli.main(["falsify", "--p", "2", "--eps", "0.1", "--beta", "1", "--ball", "1e-300"])
    out = capsys.readouterr().out
    assert code == 1 and "REFUTED" in out
    dist = float(re.search(r"‖θ1 − θ2‖\s+(\S+)", out).group(1))
    assert 0 < dist <= 2e-300
