"""Tables that fit the terminal and never cut a number (:mod:`advlip.report`).

The properties are checked on random tables: every line fits the width whenever the width
leaves each wrapped column room for its longest token; every token of every cell comes out
whole, whatever the width; a cell of a column that is not wrapped comes out verbatim on one
line. Then the table of a real quick ``advlip verify`` run is checked at 100 and 80 columns
against the figures of its own JSON document.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advlip import cli, report, theorems
from advlip.theorems import CheckResult

REPO = Path(__file__).resolve().parents[1]

# tokens like those of the figures: numbers with exponents, list separators, symbols,
# words of several lengths (a cell is made of these joined by one or more spaces)
TOKENS = st.one_of(
    st.sampled_from(["2.7e-15", "3.6e-15;", "-1.0000", "±", "≤", "(err", "0.058);", "R·t", "→"]),
    st.sampled_from(["max", "‖ΔL'‖", "=", "vs", "slope", "p=inf:", "|∇L−FD|/tol", "4e+08×tol,"]),
    st.text(alphabet="abcxyz0123456789.-,;()", min_size=1, max_size=14),
)
SPACES = st.sampled_from([" ", " ", " ", "  ", "\t"])


@st.composite
def cells(draw, max_tokens: int = 8) -> str:
    tokens = draw(st.lists(TOKENS, min_size=0, max_size=max_tokens))
    out = ""
    for i, tok in enumerate(tokens):
        out += (draw(SPACES) if i else "") + tok
    return out


@st.composite
def tables(draw):
    n = draw(st.integers(1, 5))
    columns = [draw(st.text(alphabet="abcdefgh", min_size=0, max_size=8)) for _ in range(n)]
    rows = draw(st.lists(st.lists(cells(), min_size=n, max_size=n), min_size=0, max_size=6))
    wrap = draw(st.sets(st.integers(0, n - 1)))
    return columns, rows, wrap


def least_width(columns, rows, wrap) -> int:
    """The narrowest width at which the promise "every line fits" applies: the unwrapped
    columns as wide as their widest cell, each wrapped one as wide as its longest token,
    two spaces between columns. Computed here from the cells, not by the renderer."""
    total = 2 * (len(columns) - 1)
    for i, head in enumerate(columns):
        col = [head, *(r[i] for r in rows)]
        if i in wrap:
            total += max([1, *(len(t) for c in col for t in c.split())])
        else:
            total += max(len(line) for c in col for line in c.split("\n"))
    return total


def tokens_of(columns, rows) -> Counter:
    return Counter(t for row in [columns, *rows] for c in row for t in c.split())


@settings(max_examples=300, deadline=None)
@given(table=tables(), slack=st.integers(0, 60))
def test_every_line_fits_a_width_that_leaves_room_for_each_token(table, slack):
    columns, rows, wrap = table
    width = max(least_width(columns, rows, wrap), 1) + slack  # a width is >= 1
    text = report.text_table(columns, rows, wrap=wrap, width=width)
    assert all(len(line) <= width for line in text.splitlines()), (width, text)


@settings(max_examples=300, deadline=None)
@given(table=tables(), width=st.integers(1, 120))
def test_every_token_comes_out_whole_at_any_width(table, width):
    columns, rows, wrap = table
    text = report.text_table(columns, rows, wrap=wrap, width=width)
    out = Counter(text.split())
    want = tokens_of(columns, rows)
    # each cell's token is in the output, whole, as often as it is in the cells ...
    assert not want - out, (want - out, text)
    # ... and nothing else is: what is left over is the rule of dashes under the header
    assert all(set(t) == {"-"} for t in (out - want)), (out - want, text)
    # an unwrapped column's cell is never broken: verbatim within one line
    lines = text.splitlines()
    for row in rows:
        for i, cell in enumerate(row):
            if i not in wrap and cell.strip():
                assert any(cell.rstrip() in line for line in lines), (cell, text)


@settings(max_examples=200, deadline=None)
@given(text=cells(max_tokens=20), width=st.integers(1, 80))
def test_wrapping_keeps_the_order_of_the_tokens(text, width):
    out = report.wrap_paragraph(text, width=width)
    assert out.split() == text.split()
    longest = max([0, *(len(t) for t in text.split())])
    if width >= longest:
        assert all(len(line) <= width for line in out.splitlines())


def test_a_list_of_figures_breaks_between_its_items():
    # the figure `advlip verify` used to cut as "(err 3.6e-15 ≤ 2.7…"
    fig = "jump ‖ΔL'‖ = 0.058 vs ‖H_θxΔδ‖ = 0.058 (err 3.6e-15 ≤ 2.7e-14); slope -1.000"
    row = [("GEN-LINF-VERTEX", fig)]
    text = report.text_table(("id", "figure"), row, wrap=(1,), width=60)
    assert all(len(line) <= 60 for line in text.splitlines())
    assert "2.7e-14);" in text.split() and "…" not in text
    # 88 columns leave the figure 71: "… 2.7e-14); slope" (69) would fit, but the line
    # breaks after the item "… 2.7e-14);" (63 ≥ half of 71) instead of after "slope"
    lines = report.text_table(("id", "figure"), row, wrap=(1,), width=88).splitlines()
    assert lines[2].endswith("2.7e-14);") and lines[3].split() == ["slope", "-1.000"]


def test_a_token_wider_than_its_column_overflows_whole():
    text = report.text_table(
        ("a", "b"), [("x", "short 12345678901234567890 end")], wrap=(1,), width=10
    )
    assert "12345678901234567890" in text.split()
    assert max(len(line) for line in text.splitlines()) == len("x  12345678901234567890")


def test_newlines_in_a_cell_start_new_lines():
    text = report.text_table(("k", "v"), [("θ1", "[1 2]\n[3 4]")], width=40)
    assert text.splitlines()[2:] == ["θ1  [1 2]", "    [3 4]"]


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({"columns": ("a", "b"), "rows": [("x",)]}, "rows[0]"),
        ({"columns": ("a",), "rows": [(1.5,)]}, "rows[0]"),
        ({"columns": ("a", "b"), "rows": [], "wrap": (2,)}, "wrap="),
        ({"columns": ("a", "b"), "rows": [], "wrap": (-1,)}, "wrap="),
        ({"columns": ("a",), "rows": [], "width": 0}, "width=0"),
        ({"columns": ("a",), "rows": [], "width": 2.5}, "width=2.5"),
        ({"columns": (), "rows": []}, "columns="),
    ],
)
def test_bad_arguments_are_value_errors_naming_them(kwargs, arg):
    with pytest.raises(ValueError, match="allowed") as exc:
        report.text_table(**kwargs)
    assert arg in str(exc.value)


def test_terminal_width_honours_columns_else_100_off_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "67")
    assert report.terminal_width() == 67
    monkeypatch.delenv("COLUMNS")

    def no_terminal(*args):  # what a pipe or a file gives
        raise OSError(25, "Inappropriate ioctl for device")

    monkeypatch.setattr(os, "get_terminal_size", no_terminal)
    assert report.terminal_width() == 100


def test_failure_notes_fit_and_leave_numbers_whole():
    worst = {"theta1": [0.123456789012345 * k for k in range(40)], "ratio": 12.5}
    r = CheckResult(
        id="LIN-L2",
        statement="R(w1,w2) ≤ ℓ''max((‖x‖+ε)²+[bias]) + ε|ℓ'|max/√(‖w1‖‖w2‖) for all w1,w2 ≠ 0",
        kind="bound",
        verdict="fails",
        figure="max R/β = 1.25 over 2000 pairs, 2 cases",
        worst=worst,
        reason="a pair at ‖w‖ = 1e-3 exceeds the bound by 25%; see the witness " * 3,
        replay="advlip verify --only LIN-L2 --seed 0 --quick",
    )
    text = report.table([r], width=72)
    assert all(len(line) <= 72 for line in text.splitlines()), text
    # the witness is shown from its start, whole tokens only, and says where the rest is
    start = text.index("witness/worst:") + len("witness/worst:")
    shown = text[start:].split("…")[0].split()
    assert shown == json.dumps(worst).split()[: len(shown)] and len(shown) > 5
    assert "theory: docs/theory/lin-l2.md" in text
    assert "docs/theory/index.md" in text


def test_every_id_has_its_theory_page():
    for res in theorems.all_results():
        page = report.theory_page(res.id)
        assert page == f"docs/theory/{res.id.lower()}.md"
        assert (REPO / page).is_file(), f"{res.id}: {page} is missing"


def test_bounds_json_matches_the_registry():
    doc = report.bounds_json(theorems.all_results())
    by_id = {e["id"]: e for e in doc["results"]}
    assert list(by_id) == theorems.ids()
    for res in theorems.all_results():
        e = by_id[res.id]
        assert e["statement"] == res.statement and e["theory"] == report.theory_page(res.id)
        assert e["bound"] == (None if res.bound is None else str(res.bound()))
    json.dumps(doc, allow_nan=False)  # plain JSON


@pytest.fixture
def _no_compilation_cache(monkeypatch):
    monkeypatch.setenv("ADVLIP_CACHE_DIR", "off")


@pytest.mark.usefixtures("_no_compilation_cache")
def test_the_table_of_a_real_quick_run_fits_80_and_100_columns(tmp_path, monkeypatch, capsys):
    # three quick checks, GEN-LINF-VERTEX among them: its figure is the one the old
    # fixed-width table cut mid-number
    ids = ["LIN-L1", "GEN-L2-BOUNDARY", "GEN-LINF-VERTEX"]  # registry order
    for width in (100, 80):
        monkeypatch.setenv("COLUMNS", str(width))
        path = tmp_path / f"v{width}.json"
        code = cli.main(["verify", "--quick", "--only", *ids, "--json", str(path)])
        out = capsys.readouterr().out
        doc = json.loads(path.read_text())
        assert code == (0 if doc["summary"]["holds"] == len(ids) else 1)
        assert [r["id"] for r in doc["results"]] == ids
        assert all(len(line) <= width for line in out.splitlines()), out
        words = Counter(out.split())
        for r in doc["results"]:
            assert not Counter(r["figure"].split()) - words, (r["figure"], out)
        assert "docs/theory/<id>.md" in out and "docs/theory/index.md" in out


def test_a_relation_is_not_split_at_its_operator_when_it_can_be_avoided():
    # an 18-character free column: the longest prefix that fits is "is not smooth at w",
    # which would leave "= 0" to start the next line; the break moves before "w"
    lines = report.text_table(
        ("id", "title"), [("X", "is not smooth at w = 0")], wrap=(1,), width=22
    ).splitlines()
    body = [line[4:].strip() for line in lines[2:]]
    assert body == ["is not smooth at", "w = 0"], body
