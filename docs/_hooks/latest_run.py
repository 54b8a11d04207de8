"""mkdocs hook: put the latest committed ``advlip verify`` figures on each theory page.

A theory page marks the spot with ``<!-- latest-run: ID -->``; this hook replaces the
marker with that check's verdict, headline figure, time and replay command, read from
``docs/results/verify.json`` (written by ``advlip verify --json docs/results/verify.json``;
regenerate it with that command when a check changes). A marker whose id is not in the
file fails the build: a page never shows figures of a check that was not run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results" / "verify.json"
_MARKER = re.compile(r"<!--\s*latest-run:\s*([A-Z0-9-]+)\s*-->")


def _load() -> dict[str, Any]:
    return json.loads(RESULTS.read_text())


def render(check: dict[str, Any], run: dict[str, Any]) -> str:
    """The Markdown block for one check of one run."""
    env = run.get("environment", {})
    where = ", ".join(f"{k} {v}" for k, v in env.items())
    mode = "quick" if run.get("quick") else "full"
    lines = [
        '!!! info "Latest run"',
        "",
        f"    **{check['verdict']}** — {check['figure']}",
        "",
        f"    `advlip verify` ({mode} cases, seed {run['seed']}, advlip {run['advlip_version']};"
        f" {where}); this check took {check['elapsed_s']:.1f} s.",
    ]
    if check.get("reason"):
        lines += ["", f"    Reason: {check['reason']}"]
    lines += ["", "    Replay it with:", "", "    ```bash", f"    {check['replay']}", "    ```"]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if not _MARKER.search(markdown):
        return markdown
    run = _load()
    checks = {c["id"]: c for c in run["results"]}

    def sub(m: re.Match) -> str:
        rid = m.group(1)
        if rid not in checks:
            raise ValueError(
                f"{page.file.src_path}: no check {rid!r} in {RESULTS} "
                f"(it has {sorted(checks)}); rerun `advlip verify --json {RESULTS}`"
            )
        return render(checks[rid], run)

    return _MARKER.sub(sub, markdown)
