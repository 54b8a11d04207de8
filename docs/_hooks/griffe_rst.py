"""A griffe extension: advlip's docstrings use reST roles; the site renders Markdown.

The docstrings are written for ``help()`` and for Sphinx-style readers
(``:math:`\\|w\\|_q```, ``:func:`pgd```, ``.. math::`` blocks). mkdocstrings renders
Markdown, so before it does, this extension rewrites, in every docstring of the package:

* ``:math:`x``` → ``$x$`` and ``.. math:: x`` (with its indented continuation) → a
  ``$$ … $$`` display (both rendered by pymdownx.arithmatex + MathJax);
* a section headed ``Example:`` → ``Examples:`` (the Google-style examples section,
  rendered as code; griffe would read the singular as an admonition);
* ``:func:`name``` (and ``:class:``, ``:meth:``, ``:mod:``, ``:data:``, ``:attr:``) → a
  cross-reference when ``name`` resolves to an object of advlip (tried as written,
  then relative to the docstring's class and module, then as the unique object of the
  package with that name), else inline code. ``~`` shows the last component only.

It runs once per build (``on_package``), after griffe has loaded every module, so the
resolution sees the whole package. Nothing of the source files changes.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(func|class|meth|mod|data|attr|obj):`(~?)([^`]+)`")
_MATH = re.compile(r":math:`([^`]*)`")
# griffe's Google parser reads "Example:" as an admonition, "Examples:" as code to render
_EXAMPLE = re.compile(r"^([ \t]*)Example:[ \t]*$", flags=re.M)
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)$")


def _walk(obj: Any, out: dict[str, Any]) -> None:
    out[obj.path] = obj
    for member in obj.members.values():
        if member.is_alias:
            continue
        _walk(member, out)


def _math_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent = len(m.group("indent"))
        body = [m.group("first").strip()] if m.group("first").strip() else []
        i += 1
        # the continuation: lines indented deeper than the directive, up to a blank line
        while i < len(lines) and lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) > indent:
            body.append(lines[i].strip())
            i += 1
        pad = " " * indent
        out += ["", f"{pad}$$", *(f"{pad}{b}" for b in body), f"{pad}$$", ""]
    return "\n".join(out)


class RestRoles(griffe.Extension):
    """Rewrite reST roles and math directives of advlip's docstrings into Markdown."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "advlip":
            return
        index: dict[str, Any] = {}
        _walk(pkg, index)
        by_name: dict[str, list[str]] = {}
        for path in index:
            by_name.setdefault(path.rsplit(".", 1)[-1], []).append(path)

        def resolve(name: str, obj: Any) -> str | None:
            name = name.strip().rstrip("()")
            if name in index:
                return name
            scopes = []
            scope = obj
            while scope is not None:
                scopes.append(scope.path)
                scope = scope.parent
            for s in scopes:
                if f"{s}.{name}" in index:
                    return f"{s}.{name}"
            if f"advlip.{name}" in index:
                return f"advlip.{name}"
            last = by_name.get(name.rsplit(".", 1)[-1], [])
            hits = [p for p in last if p.endswith("." + name) or p == name]
            return hits[0] if len(hits) == 1 else None

        for obj in index.values():
            doc = obj.docstring
            if doc is None:
                continue
            text = _EXAMPLE.sub(r"\1Examples:", _math_blocks(doc.value))
            text = _MATH.sub(lambda m: f"${m.group(1)}$", text)

            def role(m: re.Match, obj: Any = obj) -> str:
                short, name = m.group(2) == "~", m.group(3)
                shown = name.rsplit(".", 1)[-1] if short else name
                target = resolve(name, obj)
                if target and any(part.startswith("_") for part in target.split(".")):
                    target = None  # private: not rendered on the site
                return f"[`{shown}`][{target}]" if target else f"`{shown}`"

            doc.value = _ROLE.sub(role, text)
