"""Every proofs/*.py runs to completion and prints its PROOF OK line; every check id has one.

The ids come from the registry (``advlip.theorems.ids()``, what ``advlip verify --list``
prints) plus CLOSED-FORM, so a new check without a derivation fails here. Scripts that accept
``--plant NAME`` are run once more per planted error and must fail on an assertion: their
checks have power.

The scripts are independent processes; up to two run at once (the prefetch below), which
halves the wall time on two cores. Under pytest-xdist each worker runs only its own.
"""

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

from advlip import theorems

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROOFS = ROOT / "proofs"
SCRIPTS = sorted(p.name for p in PROOFS.glob("*.py"))

#: Every result with a derivation: the registry's check ids, and the closed form they rest on.
RESULT_IDS = [*theorems.ids(), "CLOSED-FORM"]

#: Scripts that take ``--plant NAME`` (a wrong formula the script must then refute).
PLANTED = [
    ("gen_danskin.py", "clean"),  # the clean-input gradient ∇_θℓ(x, θ) claimed as ∇L
    ("gen_flatness.py", "naive"),  # the naive Hessian H_θθ claimed as ∇²L
    ("entropy_smooth.py", "sign"),  # ∇²F_γ = γI + γ²Cov claimed (a sign error)
]


def _script_for(result_id: str) -> str:
    return result_id.lower().replace("-", "_") + ".py"


def _expected_id(script: str) -> str:
    stem = script.removesuffix(".py")
    return "CLOSED-FORM" if stem == "closed_form" else stem.upper().replace("_", "-")


class _Runner:
    """Starts scripts as subprocesses (output to temporary files) and collects them."""

    def __init__(self) -> None:
        self.procs: dict[
            tuple[str, ...], tuple[subprocess.Popen, tempfile.SpooledTemporaryFile]
        ] = {}
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )

    def start(self, script: str, *args: str) -> None:
        if (script, *args) in self.procs:
            return
        out = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen(
            [sys.executable, str(PROOFS / script), *args],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.procs[(script, *args)] = (proc, out)

    def result(self, script: str, prefetch: str | None, *args: str) -> tuple[int, str]:
        self.start(script, *args)
        if prefetch is not None:
            self.start(prefetch)
        proc, out = self.procs[(script, *args)]
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


def test_the_registry_is_read():
    # the registry lists every family's checks (an empty or partial list would make the
    # next test vacuous)
    assert {"LIN-L2", "GEN-DANSKIN", "GEN-FLATNESS", "ENTROPY-SMOOTH"} <= set(RESULT_IDS)
    assert len(RESULT_IDS) == len(set(RESULT_IDS))


@pytest.mark.parametrize("result_id", RESULT_IDS)
def test_every_result_has_a_proof_script(result_id):
    script = _script_for(result_id)
    assert script in SCRIPTS, f"result {result_id} has no proofs/{script}"
    text = (PROOFS / script).read_text(encoding="utf-8")
    assert f'"PROOF OK: {result_id}"' in text
    readme = (PROOFS / "README.md").read_text(encoding="utf-8")
    assert f"`{script}`" in readme
    # the README links the id's theory page (docs/theory/<id>.md, the id in lower case)
    assert f"(../docs/theory/{result_id.lower()}.md)" in readme, result_id


def test_every_script_is_a_result():
    # no orphan: each script's PROOF OK id is a registered check id or CLOSED-FORM
    for script in SCRIPTS:
        assert _expected_id(script) in RESULT_IDS, script


def test_no_script_cites_spec():
    # the theory lives in docs/theory/; the scripts cite its pages, nothing else
    for path in [*PROOFS.glob("*.py"), PROOFS / "README.md"]:
        assert ("SP" + "EC") not in path.read_text(encoding="utf-8"), path.name


@pytest.mark.parametrize("script,plant", PLANTED, ids=[f"{s}-{p}" for s, p in PLANTED])
def test_planted_error_is_refuted(runner, script, plant):
    rc, output = runner.result(script, None, "--plant", plant)
    assert rc != 0, f"proofs/{script} --plant {plant} passed:\n{output[-4000:]}"
    assert "AssertionError" in output, output[-4000:]
    assert "PROOF OK" not in output
    # the unplanted run of the same script passes (test_proof_script_runs): the failure is
    # the plant's, and the plant is listed in the script
    assert f'"{plant}"' in (PROOFS / script).read_text(encoding="utf-8")


def test_readme_lists_every_script():
    readme = (PROOFS / "README.md").read_text(encoding="utf-8")
    for script in SCRIPTS:
        assert f"`{script}`" in readme, f"proofs/README.md does not list {script}"
