"""Griffe extension for the API reference: Sphinx roles in aekit's docstrings, read as Markdown.

aekit's docstrings are Google style (a summary line, prose, ``Args:``/``Returns:`` where a section helps)
and name other objects the Sphinx way, :func:`aekit.api.load`, which Markdown would show literally.
This extension rewrites each role into a cross-reference to the named object, an optional one: it links
where the object is on a reference page and is plain code elsewhere, so ``mkdocs build --strict`` never
fails on a name that has no page. ``~a.b.c`` shows ``c``; a name without dots is looked up in the
docstring's own module. A reST literal-block marker (``text::``) becomes a plain colon.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|const):`(~?)([^`<>]+?)`")
LITERAL = re.compile(r"::$", re.M)


def _identifier(obj: Object, target: str) -> str:
    """The full dotted path ``target`` names, seen from ``obj``'s module."""
    target = target.rstrip("()")
    if target.startswith("aekit.") or target == "aekit":
        return target
    first, _, rest = target.partition(".")
    module = obj.module
    member = module.members.get(first) if first else None
    if member is None:
        return target
    base = member.target_path if member.is_alias else member.path
    return f"{base}.{rest}" if rest else base


def rewrite(obj: Object, text: str) -> str:
    def one(m: re.Match[str]) -> str:
        short, target = m.group(1) == "~", m.group(2).strip()
        title = target.rsplit(".", 1)[-1] if short else target
        return f'<autoref identifier="{_identifier(obj, target)}" optional><code>{title}</code></autoref>'

    return LITERAL.sub(":", ROLE.sub(one, text))


class SphinxRolesAsReferences(Extension):
    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None and not obj.is_alias:
            obj.docstring.value = rewrite(obj, obj.docstring.value)
