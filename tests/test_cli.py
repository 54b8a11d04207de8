"""The advlip command: exit codes, table, JSON, progress."""

import json
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
    assert "[1/1] LIN-L1" in err  # progress goes to stderr
    doc = json.loads(path.read_text())
    assert [r["id"] for r in doc["results"]] == ["LIN-L1"]
    assert doc["results"][0]["verdict"] == "holds"
    assert doc["seed"] == 0 and doc["quick"] is True and doc["environment"]["x64"] is True


def test_verify_list_names_every_result(capsys):
    assert cli.main(["verify", "--list"]) == 0
    out = capsys.readouterr().out
    for rid in ["LIN-L2", "LIN-L2-ZERO", "LIN-LINF", "LIN-L1", "LIN-LP", "LIU"]:
        assert rid in out


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
    import numpy as np

    from advlip import data

    X, y = (np.asarray(a) for a in data.synthetic(5, n=12, d=3))
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
