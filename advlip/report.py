"""Rendering check results: a readable table for people, JSON for machines.

Nothing here computes; it only formats :class:`advlip.theorems.CheckResult` objects.
Every table goes through :func:`text_table`, which fits the terminal's width by
wrapping free text at word boundaries and never cuts an id, a verdict or a number.
Each result's statement and derivation live in the theory page :func:`theory_page`
names (the notation and the list of results: docs/theory/index.md).

Example:
    >>> from advlip import report
    >>> print(report.text_table(("id", "figure"), [("LIN-L2", "max R/β = 0.762, 2 cases")],
    ...                         wrap=(1,), width=24))
    id      figure
    ------  ----------------
    LIN-L2  max R/β = 0.762,
            2 cases
"""

from __future__ import annotations

import json
import math
import platform
import shutil
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from advlip.theorems.base import CheckResult, Result

__all__ = [
    "text_table",
    "wrap_paragraph",
    "terminal_width",
    "theory_page",
    "table",
    "list_table",
    "bounds_section",
    "bounds_json",
    "to_json",
    "write_json",
    "summary",
]

_MARK = {"holds": "holds", "fails": "FAILS", "undetermined": "undetermined"}

#: The width of a table when stdout is no terminal and ``COLUMNS`` is not set.
DEFAULT_WIDTH = 100

_SEP = "  "  # between two columns


# --------------------------------------------------------------------------- layout


def terminal_width() -> int:
    """The width tables fit: ``COLUMNS`` if set, else the terminal's, else 100.

    When stdout is a pipe or a file there is no terminal to ask: ``COLUMNS`` is honoured
    if it is set to a positive integer, and 100 columns are used otherwise.

    Returns:
        The number of columns, at least 1.

    Example:
        >>> import os
        >>> from advlip import report
        >>> old = os.environ.get("COLUMNS")
        >>> os.environ["COLUMNS"] = "72"
        >>> report.terminal_width()
        72
        >>> _ = os.environ.pop("COLUMNS") if old is None else os.environ.update(COLUMNS=old)
    """
    columns = shutil.get_terminal_size(fallback=(DEFAULT_WIDTH, 24)).columns
    return columns if columns > 0 else DEFAULT_WIDTH


def _check_width(width: int | None) -> int:
    if width is None:
        return terminal_width()
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(
            f"width={width!r} is not allowed; allowed: an integer >= 1, or None (the terminal's)"
        )
    return width


def _joined(tokens: Sequence[str]) -> int:
    """Length of ``tokens`` joined by single spaces."""
    return sum(map(len, tokens)) + max(len(tokens) - 1, 0)


def _break_at(line: Sequence[str], width: int) -> int:
    """Where to break ``line`` (tokens, too long for ``width``): the tokens before it stay.

    The longest prefix that fits, unless a prefix ending in a token that ends with ``;``
    (then ``,``) fits and fills at least half the width: a list of figures breaks between
    its items, not in the middle of one.
    """
    k = 1
    while k < len(line) - 1 and _joined(line[: k + 1]) <= width:
        k += 1
    # keep a relation with its operands ("w = 0", "R ≤ β"): break beside an operator only
    # where no earlier break on the line avoids it
    j = k
    while j > 1 and (line[j - 1] in _OPERATORS or line[j] in _OPERATORS):
        j -= 1
    if not (line[j - 1] in _OPERATORS or line[j] in _OPERATORS):
        k = j
    for punct in (";", ","):
        for j in range(k, 0, -1):
            if line[j - 1].endswith(punct) and _joined(line[:j]) >= width // 2:
                return j
    return k


#: Tokens a line never starts or ends with when it can be avoided: a formula stays whole.
_OPERATORS = frozenset("= ≤ ≥ < > ≈ → − + × · ⇒ ∈ ⪯".split())


def _wrap(text: str, width: int, first_width: int | None = None) -> list[str]:
    """``text`` wrapped to ``width`` between whitespace-separated tokens (never inside one).

    A line holds one token at least: a token wider than its width overflows, whole.
    Explicit newlines in ``text`` are kept. ``first_width``: the first line's width
    (default ``width``).
    """
    out: list[str] = []
    for para in text.split("\n"):
        line: list[str] = []
        for token in para.split():
            line.append(token)
            while True:
                w = width if out or first_width is None else first_width
                if len(line) < 2 or _joined(line) <= w:
                    break
                k = _break_at(line, w)
                out.append(" ".join(line[:k]))
                line = line[k:]
        out.append(" ".join(line))
    return out


def _wrapped_widths(
    natural: dict[int, int], least: dict[int, int], available: int
) -> dict[int, int]:
    """Widths of the wrapped columns: natural if they fit, else each its least (its
    longest token) plus a share of the rest in proportion to what it lacks."""
    if sum(natural.values()) <= available:
        return dict(natural)
    extra = available - sum(least.values())
    if extra <= 0:
        return dict(least)
    lack = {i: natural[i] - least[i] for i in least}
    total = sum(lack.values())  # > extra > 0: the natural widths do not fit
    share = {i: extra * lack[i] / total for i in lack}
    widths = {i: least[i] + int(share[i]) for i in least}
    left = extra - sum(int(v) for v in share.values())
    for i in sorted(share, key=lambda i: int(share[i]) - share[i])[:left]:
        widths[i] += 1
    return widths


def text_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    wrap: Collection[int] = (),
    width: int | None = None,
) -> str:
    """A plain-text table whose lines fit ``width`` columns, no cell cut.

    Columns whose index is not in ``wrap`` (ids, verdicts, numbers, times) are printed
    whole, each as wide as its widest cell. The columns in ``wrap`` (free text: a figure,
    a statement) share what is left of ``width`` and are wrapped onto continuation lines
    at word boundaries — between the items of a list (after ``;`` or ``,``) first, never
    inside a token such as ``2.7e-15``. Only a single token wider than its column, or
    fixed columns wider than ``width`` together, make a line longer than ``width``: the
    table would rather overflow than cut a number. A newline in a cell starts a new line.

    Args:
        columns: the header of each column.
        rows: the cells, one sequence of strings per row, each as long as ``columns``.
        wrap: the indices of the columns that may be wrapped.
        width: the most columns a line may take; ``None``: the terminal's width
            (:func:`terminal_width`: ``COLUMNS`` if set, else the terminal's, else 100).

    Returns:
        The header, a rule of dashes and the rows, joined by newlines, trailing spaces
        stripped.

    Raises:
        ValueError: a row whose length differs from ``columns``, a cell that is not a
            string, an index in ``wrap`` outside ``0 .. len(columns) - 1``, or a
            ``width`` below 1.

    Example:
        >>> from advlip import report
        >>> rows = [("LIN-L1", "holds", "slope -1.0000 ± 4.7e-07; R·t → 0.34", "2.1s")]
        >>> print(report.text_table(("id", "verdict", "figure", "time"), rows,
        ...                         wrap=(2,), width=40))
        id      verdict  figure             time
        ------  -------  -----------------  ----
        LIN-L1  holds    slope -1.0000 ±    2.1s
                         4.7e-07;
                         R·t → 0.34
    """
    columns = [str(c) for c in columns]
    n = len(columns)
    if n == 0:
        raise ValueError("columns=[] is not allowed; allowed: at least one column header")
    rows = [list(r) for r in rows]
    for i, row in enumerate(rows):
        if len(row) != n:
            raise ValueError(
                f"rows[{i}] has {len(row)} cells; allowed: exactly {n}, one per column {columns}"
            )
        for cell in row:
            if not isinstance(cell, str):
                raise ValueError(
                    f"rows[{i}] holds {cell!r} ({type(cell).__name__}); allowed: strings only"
                )
    wrap = set(wrap)
    bad = sorted((w for w in wrap if not (isinstance(w, int) and 0 <= w < n)), key=repr)
    if bad:
        raise ValueError(f"wrap={bad!r} is not allowed; allowed: column indices 0 .. {n - 1}")
    width = _check_width(width)

    table_rows = [columns, *rows]
    lines_of = [[cell.split("\n") for cell in row] for row in table_rows]
    fixed = {
        i: max(len(line) for row in lines_of for line in row[i]) for i in range(n) if i not in wrap
    }
    natural = {i: max(len(line) for row in lines_of for line in row[i]) for i in wrap}
    least = {i: max([1, *(len(t) for row in table_rows for t in row[i].split())]) for i in wrap}
    available = width - sum(fixed.values()) - len(_SEP) * (n - 1)
    widths = {**fixed, **_wrapped_widths(natural, least, available)}
    for _ in range(len(wrap)):  # a column that wraps narrower than its share frees the rest
        used = {
            i: max(len(line) for row in table_rows for line in _wrap(row[i], widths[i]))
            for i in wrap
        }
        freed = sum(widths[i] - used[i] for i in wrap)
        lacking = [i for i in wrap if used[i] == widths[i] < natural[i]]
        if not freed or not lacking:
            break
        widths.update(used)
        grown = _wrapped_widths(
            {i: natural[i] for i in lacking},
            {i: widths[i] for i in lacking},
            sum(widths[i] for i in lacking) + freed,
        )
        widths.update(grown)

    def render(row: Sequence[str]) -> list[str]:
        cells = [_wrap(c, widths[i]) if i in wrap else c.split("\n") for i, c in enumerate(row)]
        height = max(len(c) for c in cells)
        return [
            _SEP.join(
                (c[k] if k < len(c) else "").ljust(widths[i]) for i, c in enumerate(cells)
            ).rstrip()
            for k in range(height)
        ]

    out = render(columns)
    out.append(_SEP.join("-" * widths[i] for i in range(n)))
    for row in rows:
        out += render(row)
    return "\n".join(out)


def _paragraph(text: str, width: int, indent: str = "", first: str | None = None) -> list[str]:
    first = indent if first is None else first
    body = _wrap(text, max(width - len(indent), 1), max(width - len(first), 1))
    return [(first if k == 0 else indent) + line for k, line in enumerate(body)]


def wrap_paragraph(
    text: str, *, width: int | None = None, indent: str = "", first: str | None = None
) -> str:
    """``text`` wrapped to ``width`` at word boundaries, never inside a token.

    Breaks fall between the items of a list (after ``;`` or ``,``) first, as in the
    wrapped columns of :func:`text_table`; a single token wider than the line overflows
    whole rather than being cut.

    Args:
        text: the text; its newlines are kept.
        width: the most columns a line may take; ``None``: the terminal's width.
        indent: the start of every line but the first.
        first: the start of the first line; ``None``: ``indent``.

    Returns:
        The lines joined by newlines.

    Example:
        >>> from advlip import report
        >>> print(report.wrap_paragraph("err 3.6e-15 ≤ 2.7e-14; slope -1.000", width=20,
        ...                             first="FAILS  ", indent="       "))
        FAILS  err 3.6e-15 ≤
               2.7e-14;
               slope -1.000
    """
    return "\n".join(_paragraph(text, _check_width(width), indent, first))


# --------------------------------------------------------------------------- theory pages


def theory_page(result_id: str) -> str:
    """The path, in the repository, of the page that states and derives ``result_id``.

    Args:
        result_id: a registered id, e.g. ``LIN-L2`` or ``GEN-INTERIOR``.

    Returns:
        ``docs/theory/<id in lower case>.md``.

    Example:
        >>> from advlip import report
        >>> report.theory_page("GEN-L2-BOUNDARY")
        'docs/theory/gen-l2-boundary.md'
    """
    return f"docs/theory/{result_id.lower()}.md"


#: Where each id's page is, printed below every table of results.
THEORY_NOTE = (
    "Each id's statement and derivation: docs/theory/<id>.md (e.g. LIN-L2 → "
    "docs/theory/lin-l2.md); notation and the list of results: docs/theory/index.md."
)


# --------------------------------------------------------------------------- results


def table(results: Sequence[CheckResult], *, width: int | None = None) -> str:
    """The table ``advlip verify`` prints: id, kind, verdict, headline figure, seconds.

    The figure column is wrapped (:func:`text_table`) so that the table fits ``width``;
    below it, each result that does not hold gets its statement, reason, worst pair and
    replay command, and a last line says where each id's theory page is.

    Args:
        results: the checks' outcomes.
        width: the most columns a line may take; ``None``: the terminal's width.

    Returns:
        The table as text.

    Example:
        >>> from advlip import report
        >>> from advlip.theorems import CheckResult
        >>> r = CheckResult(id="LIN-L1", statement="R grows like 1/t at a tie",
        ...                 kind="witness", verdict="holds", figure="slope -1.0000 ± 4.7e-07")
        >>> print(report.table([r], width=60))
        id      kind     verdict  figure                   time
        ------  -------  -------  -----------------------  ----
        LIN-L1  witness  holds    slope -1.0000 ± 4.7e-07  0.0s
        <BLANKLINE>
        Each id's statement and derivation: docs/theory/<id>.md
        (e.g. LIN-L2 → docs/theory/lin-l2.md);
        notation and the list of results: docs/theory/index.md.
    """
    width = _check_width(width)
    headers = ("id", "kind", "verdict", "figure", "time")
    rows = [(r.id, r.kind, _MARK[r.verdict], r.figure, f"{r.elapsed_s:.1f}s") for r in results]
    out = [text_table(headers, rows, wrap=(3,), width=width)]
    for r in results:
        if r.verdict == "holds":
            continue
        out.append("")
        out += _paragraph(f"{r.id}: {r.verdict.upper()} — {r.statement}", width, "    ", "")
        if r.reason:
            out += _paragraph(r.reason, width, "    ")
        if r.worst:
            out += _witness(json.dumps(_strict(r.worst)), width)
        out += _paragraph(f"replay: {r.replay}", width, "      ", "    ")
        out.append(f"    theory: {theory_page(r.id)}")
    out.append("")
    out += _paragraph(THEORY_NOTE, width)
    return "\n".join(out)


def _witness(text: str, width: int, max_lines: int = 3) -> list[str]:
    """The worst pair's JSON, wrapped; past ``max_lines`` lines whole numbers are left out
    (never cut), and the line says where the rest is."""
    lines = _paragraph(text, width, " " * 19, "    witness/worst: ")
    if len(lines) <= max_lines:
        return lines
    return [*lines[:max_lines], " " * 19 + "… (all of it: add --json PATH)"]


def list_table(results: Sequence[Result], *, width: int | None = None) -> str:
    """The table ``advlip verify --list`` prints: id, kind, title and theory page.

    Args:
        results: the registered results (:func:`advlip.theorems.all_results`).
        width: the most columns a line may take; ``None``: the terminal's width.

    Returns:
        The table as text; the kind and title columns are the ones wrapped.

    Example:
        >>> from advlip import report, theorems
        >>> text = report.list_table([theorems.get("LIN-L2")], width=80)
        >>> print(text.splitlines()[0])
        id      kind   title                                       theory
        >>> "docs/theory/lin-l2.md" in text, max(map(len, text.splitlines())) <= 80
        (True, True)
    """
    rows = [(r.id, r.kind, r.title, theory_page(r.id)) for r in results]
    return text_table(("id", "kind", "title", "theory"), rows, wrap=(1, 2), width=width)


def bounds_section(results: Sequence[Result], *, width: int | None = None) -> str:
    """Each result's title, statement, bound (as SymPy prints it, where it has one) and
    theory page, wrapped to ``width``.

    This is what ``advlip verify --bounds`` prints; it runs no check.

    Args:
        results: the registered results to describe.
        width: the most columns a line may take; ``None``: the terminal's width.

    Returns:
        One block per result, blocks separated by a blank line.

    Example:
        >>> from advlip import report, theorems
        >>> text = report.bounds_section([theorems.get("LIN-L2-ZERO")], width=80)
        >>> print(text)
        LIN-L2-ZERO — L2 adversarial loss is not smooth at w = 0
          statement: pairs ±t·v: R ≈ ε|mean ℓ'(y b)|/t → ∞ (growth exponent −1)
          bound:     ε·|mean ℓ'|/t
          theory:    docs/theory/lin-l2-zero.md
    """
    from advlip import symbolic

    width = _check_width(width)
    blocks = []
    pad = " " * 13
    for res in results:
        lines = _paragraph(f"{res.id} — {res.title}", width, "    ", "")
        lines += _paragraph(res.statement, width, pad, "  statement: ")
        if res.bound is not None:
            lines += _paragraph(symbolic.pretty(res.bound()), width, pad, "  bound:     ")
        lines.append(f"  theory:    {theory_page(res.id)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def bounds_json(results: Sequence[Result]) -> dict[str, Any]:
    """The JSON document ``advlip verify --bounds --json PATH`` writes (no check runs).

    Args:
        results: the registered results to describe.

    Returns:
        ``{"advlip_version", "command", "results"}``; each result has ``id``, ``title``,
        ``kind``, ``statement``, ``hypotheses``, ``bound`` (SymPy's ``str``, as in the
        document of ``advlip verify --json``, or ``None``), ``bound_pretty`` (the
        rendering ``--bounds`` prints, or ``None``) and ``theory`` (the page's path).

    Example:
        >>> from advlip import report, theorems
        >>> doc = report.bounds_json([theorems.get("LIN-L2-ZERO")])
        >>> entry = doc["results"][0]
        >>> entry["bound"], entry["theory"]
        ('eps*Abs(mean_l1)/t', 'docs/theory/lin-l2-zero.md')
    """
    from advlip import __version__, symbolic

    def entry(res: Result) -> dict[str, Any]:
        expr = res.bound() if res.bound is not None else None
        return {
            "id": res.id,
            "title": res.title,
            "kind": res.kind,
            "statement": res.statement,
            "hypotheses": list(res.hypotheses),
            "bound": None if expr is None else str(expr),
            "bound_pretty": None if expr is None else symbolic.pretty(expr),
            "theory": theory_page(res.id),
        }

    return {
        "advlip_version": __version__,
        "command": "verify --bounds",
        "results": [entry(r) for r in results],
    }


def summary(results: Sequence[CheckResult]) -> dict[str, int]:
    """How many results hold, fail and are undetermined.

    Args:
        results: the checks' outcomes.

    Returns:
        ``{"holds": int, "fails": int, "undetermined": int}``.

    Example:
        >>> from advlip import report
        >>> from advlip.theorems import CheckResult
        >>> rs = [CheckResult(id=i, statement="", kind="bound", verdict=v, figure="")
        ...       for i, v in (("A", "holds"), ("B", "fails"), ("C", "holds"))]
        >>> report.summary(rs)
        {'holds': 2, 'fails': 1, 'undetermined': 0}
    """
    counts = {"holds": 0, "fails": 0, "undetermined": 0}
    for r in results:
        counts[r.verdict] += 1
    return counts


def to_json(
    results: Sequence[CheckResult], *, seed: int, quick: bool, registry: Sequence[Result] = ()
) -> dict[str, Any]:
    """The JSON document ``advlip verify --json`` writes.

    Args:
        results: the checks' outcomes.
        seed: the seed of the run.
        quick: whether the run used the quick sizes.
        registry: the results checked; each one's bound (SymPy's ``str``) is added to its
            entry.

    Returns:
        The document: version, seed, replay command, environment, summary, results.

    Example:
        >>> from advlip import report
        >>> from advlip.theorems import CheckResult
        >>> r = CheckResult(id="LIN-L1", statement="s", kind="witness", verdict="holds",
        ...                 figure="f")
        >>> doc = report.to_json([r], seed=3, quick=True)
        >>> doc["replay"], doc["summary"]["holds"], doc["results"][0]["id"]
        ('advlip verify --seed 3 --quick', 1, 'LIN-L1')
    """
    import jax

    from advlip import __version__

    bounds = {}
    if registry:
        bounds = {r.id: str(r.bound()) for r in registry if r.bound is not None}
    return {
        "advlip_version": __version__,
        "seed": seed,
        "quick": quick,
        "replay": f"advlip verify --seed {seed}" + (" --quick" if quick else ""),
        "environment": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "x64": bool(jax.config.jax_enable_x64),
        },
        "summary": summary(results),
        "results": [
            {**r.to_dict(), **({"bound": bounds[r.id]} if r.id in bounds else {})} for r in results
        ],
    }


def _strict(x: Any) -> Any:
    """``x`` with non-finite floats as the strings ``"nan"``, ``"inf"``, ``"-inf"``."""
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_strict(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def write_json(path: str | Path, document: dict[str, Any]) -> None:
    """Write ``document`` as strict JSON, creating the folder if needed.

    JSON has no non-finite numbers, and a verdict can hold one: a non-finite float is
    written as the string ``"nan"``, ``"inf"`` or ``"-inf"``.

    Args:
        path: the file to write.
        document: plain JSON types (dicts, lists, strings, numbers, booleans, None).

    Example:
        >>> import json, math, pathlib, tempfile
        >>> from advlip import report
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "r.json"
        >>> report.write_json(path, {"ratio": math.inf, "n": 3})
        >>> json.loads(path.read_text())
        {'ratio': 'inf', 'n': 3}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_strict(document), indent=2, allow_nan=False) + "\n")
