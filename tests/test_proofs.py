"""Every proofs/*.py runs to completion and prints its PROOF OK line; every SPEC §2 id has one.

The scripts are independent processes; up to two run at once (the prefetch below), which
halves the wall time on two cores. Under pytest-xdist each worker runs only its own.
"""

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROOFS = ROOT / "proofs"
SCRIPTS = sorted(p.name for p in PROOFS.glob("*.py"))

#: The results of SPEC §2 and the script that derives each.
SPEC_IDS = [
    "LIN-L2",
    "LIN-L2-ZERO",
    "LIN-LINF",
    "LIN-L1",
    "LIN-LP",
    "LIU",
    "GEN-INTERIOR",
    "GEN-L2-BOUNDARY",
    "GEN-LINF-VERTEX",
]


def _script_for(spec_id: str) -> str:
    return spec_id.lower().replace("-", "_") + ".py"


def _expected_id(script: str) -> str:
    stem = script.removesuffix(".py")
    return "CLOSED-FORM" if stem == "closed_form" else stem.upper().replace("_", "-")


class _Runner:
    """Starts scripts as subprocesses (output to temporary files) and collects them."""

    def __init__(self) -> None:
        self.procs: dict[str, tuple[subprocess.Popen, tempfile.SpooledTemporaryFile]] = {}
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )

    def start(self, script: str) -> None:
        if script in self.procs:
            return
        out = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen(
            [sys.executable, str(PROOFS / script)],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.procs[script] = (proc, out)

    def result(self, script: str, prefetch: str | None) -> tuple[int, str]:
        self.start(script)
        if prefetch is not None:
            self.start(prefetch)
        proc, out = self.procs[script]
        rc = proc.wait(timeout=300)
        out.seek(0)
        return rc, out.read()

    def close(self) -> None:
        for proc, out in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()


@pytest.fixture(scope="module")
def runner():
    r = _Runner()
    yield r
    r.close()


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.removesuffix(".py") for s in SCRIPTS])
def test_proof_script_runs(runner, script):
    i = SCRIPTS.index(script)
    under_xdist = "PYTEST_XDIST_WORKER" in os.environ
    prefetch = SCRIPTS[i + 1] if i + 1 < len(SCRIPTS) and not under_xdist else None
    rc, output = runner.result(script, prefetch)
    assert rc == 0, f"proofs/{script} exited with {rc}:\n{output[-4000:]}"
    assert f"PROOF OK: {_expected_id(script)}" in output, output[-4000:]


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_every_spec_result_has_a_proof_script(spec_id):
    script = _script_for(spec_id)
    assert script in SCRIPTS, f"SPEC result {spec_id} has no proofs/{script}"
    text = (PROOFS / script).read_text(encoding="utf-8")
    assert f'"PROOF OK: {spec_id}"' in text
    assert f"`{script}`" in (PROOFS / "README.md").read_text(encoding="utf-8")


def test_readme_lists_every_script():
    readme = (PROOFS / "README.md").read_text(encoding="utf-8")
    for script in SCRIPTS:
        assert f"`{script}`" in readme, f"proofs/README.md does not list {script}"
