"""The documentation is the repository's own, complete, and cannot go stale unnoticed.

* every citation in code, tests, proofs, benchmarks and the README points to a theory page
  of this repository (``docs/theory/*.md``) that exists; nothing cites an outside brief;
* every check id of the registry has its theory page (with the sections a reader expects,
  its proof script and its latest-run figures), and the site's navigation lists it;
* the committed latest run (``docs/results/verify.json``) is a full run of exactly the
  registered checks, and states each check as the registry does today;
* every public function and class has a docstring example (test_doctests.py runs them);
* the mkdocs hook and the griffe extension do what the site relies on.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import advlip
from advlip import theorems

ROOT = Path(__file__).resolve().parents[1]
THEORY = ROOT / "docs" / "theory"
SECTIONS = [
    "## Statement",
    "## Hypotheses",
    "## Derivation sketch",
    "## How advlip checks it",
    "## Proof script",
    "## Latest run",
]


def _tracked(*suffixes: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / f for f in out if f.endswith(suffixes) and (ROOT / f).is_file()]


def _ids() -> list[str]:
    return [r.id for r in theorems.all_results()]


def _page(rid: str) -> Path:
    return THEORY / f"{rid.lower()}.md"


def test_nothing_cites_an_outside_document():
    # The brief this project was built from is not in the repository: a citation of it
    # sends a reader nowhere. The word is assembled so that this file does not match.
    word = re.compile(r"\b" + "SP" + "EC" + r"\b")
    hits = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in _tracked(".py", ".md", ".toml", ".yml", ".sh", ".txt")
        for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if word.search(line)
    ]
    assert not hits, "\n".join(hits)


def test_every_cited_theory_page_exists():
    cited = re.compile(r"docs/theory/([a-z0-9-]+)\.md")
    missing = sorted(
        {
            f"{p.relative_to(ROOT)} cites docs/theory/{m}.md"
            for p in _tracked(".py", ".md")
            for m in cited.findall(p.read_text(errors="replace"))
            if not (THEORY / f"{m}.md").is_file()
        }
    )
    assert not missing, "\n".join(missing)
    # and the search above is not vacuous: the code does cite the pages
    n = sum(len(cited.findall(p.read_text())) for p in (ROOT / "advlip").rglob("*.py"))
    assert n >= 20


@pytest.mark.parametrize("rid", _ids())
def test_every_check_has_its_theory_page(rid):
    page = _page(rid)
    assert page.is_file(), f"{rid} has no theory page {page.relative_to(ROOT)}"
    text = page.read_text()
    assert text.startswith(f"# {rid}"), f"{page.name} must open with '# {rid} — title'"
    where = [text.find(s) for s in SECTIONS]
    absent = [s for s, w in zip(SECTIONS, where, strict=True) if w < 0]
    assert not absent, f"{page.name} lacks {absent}"
    assert where == sorted(where), f"{page.name}: sections out of order"
    assert f"<!-- latest-run: {rid} -->" in text
    # the proof script it shows exists, so the snippet cannot include nothing
    scripts = re.findall(r'--8<-- "(proofs/[a-z0-9_]+\.py)"', text)
    assert scripts, f"{page.name} shows no proof script"
    for s in scripts:
        assert (ROOT / s).is_file(), f"{page.name} includes {s}, which does not exist"


def test_the_site_navigation_lists_every_page():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    unlisted = [p for p in pages if p not in nav]
    assert not unlisted, f"pages missing from mkdocs.yml's nav: {unlisted}"
    for rid in _ids():
        assert f"theory/{rid.lower()}.md" in nav


def test_the_latest_run_is_a_full_run_of_todays_checks():
    run = json.loads((ROOT / "docs" / "results" / "verify.json").read_text())
    assert run["quick"] is False, "the site shows the full cases: `advlip verify --json ...`"
    got = {c["id"]: c for c in run["results"]}
    assert sorted(got) == sorted(_ids()), "regenerate docs/results/verify.json"
    for r in theorems.all_results():
        # a changed statement means the committed figures belong to another check
        assert got[r.id]["statement"] == r.statement, f"{r.id}: stale docs/results/verify.json"
        assert got[r.id]["verdict"] in {"holds", "fails", "undetermined"}


def _public_objects():
    mods = [m.name for m in pkgutil.walk_packages(advlip.__path__, prefix="advlip.")]
    for name in sorted(mods):
        if any(part.startswith("_") for part in name.split(".")):
            continue  # advlip._validate, advlip.__main__: internal
        mod = importlib.import_module(name)
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        for n in names:
            obj = getattr(mod, n)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == name:
                yield f"{name}.{n}", obj


def test_every_public_function_and_class_has_an_example():
    objs = list(_public_objects())
    assert len(objs) > 200  # the walk found the package
    missing = [n for n, o in objs if ">>>" not in (inspect.getdoc(o) or "")]
    assert not missing, f"{len(missing)} without a docstring example:\n" + "\n".join(missing)


def test_every_module_has_an_api_page():
    nav = (ROOT / "mkdocs.yml").read_text()
    api = "".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    for name in pkgutil.walk_packages(advlip.__path__, prefix="advlip."):
        if name.name == "advlip.__main__" or name.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        assert f"::: {name.name}\n" in api, f"{name.name} has no API page"
    for p in (ROOT / "docs" / "api").glob("*.md"):
        assert f"api/{p.name}" in nav


def _hook(name: str):
    sys.path.insert(0, str(ROOT / "docs" / "_hooks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def test_latest_run_hook_fills_the_marker_and_refuses_an_unknown_id():
    hook = _hook("latest_run")
    page = type("P", (), {"file": type("F", (), {"src_path": "theory/x.md"})()})()
    run = json.loads(hook.RESULTS.read_text())
    first = run["results"][0]
    out = hook.on_page_markdown(f"a\n<!-- latest-run: {first['id']} -->\nb", page=page)
    assert "latest-run" not in out and first["figure"] in out and first["replay"] in out
    with pytest.raises(ValueError, match="NO-SUCH-ID"):
        hook.on_page_markdown("<!-- latest-run: NO-SUCH-ID -->", page=page)


def test_griffe_extension_turns_rest_into_markdown():
    griffe = pytest.importorskip("griffe")
    ext = _hook("griffe_rst")
    text = "Uses :math:`\\|w\\|_q`.\n\n.. math:: a = b\n     + c\n\nthen :func:`linearize`."
    shown = ext._math_blocks(text)
    assert "$$\na = b\n+ c\n$$" in shown and ".. math::" not in shown
    # on a loaded package: roles resolve to cross-references or fall back to code
    pkg = griffe.load(
        "advlip", search_paths=[str(ROOT)], extensions=griffe.load_extensions(ext.RestRoles)
    )
    doc = pkg["adversarial"].docstring.value
    assert ":math:`" not in doc and ":func:`" not in doc
    assert "[`advlip.attacks.pgd`][advlip.attacks.pgd]" in doc
