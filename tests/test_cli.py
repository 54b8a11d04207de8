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
