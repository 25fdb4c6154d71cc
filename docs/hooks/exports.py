"""MkDocs hook: the reference of the ``aekit`` package's own names (docs/reference/aekit.md) and of the
model families (docs/reference/models.md).

``aekit`` imports its public names lazily (``aekit._EXPORTS``, PEP 562), which static analysis cannot
follow. The page holds the marker ``<!-- aekit-exports -->``; at build time it becomes one mkdocstrings
block per name of ``aekit.__all__``, under the module that defines it, so a name added to the package is
on the page without anyone editing it. Likewise ``<!-- model-families -->`` becomes one block per module
of ``aekit.registry.BUILTIN_FAMILIES``.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- aekit-exports -->"
FAMILIES_MARKER = "<!-- model-families -->"  # reference/models.md: every family the registry loads
PAGE = "reference/aekit.md"

# The modules behind the exports, in the order a reader meets them; a module not listed here goes last.
ELSEWHERE = ("aekit.models", "aekit.training")  # reference/models.md, reference/training.md
ORDER = ["aekit.api", "aekit.config", "aekit.run", "aekit.data.sources", "aekit.data.dataset", "aekit.data.idx",
         "aekit.registry", "aekit.models.base", "aekit.training.loop", "aekit.baselines", "aekit.errors"]


def exports_markdown() -> str:
    import aekit

    names = [n for n in aekit.__all__ if n != "__version__"]
    by_module: dict[str, list[str]] = {}
    for name in names:
        by_module.setdefault(aekit._EXPORTS[name], []).append(name)
    rank = {m: i for i, m in enumerate(ORDER)}
    out: list[str] = []
    # Names from a package with a reference page of its own are documented there, once (autorefs needs
    # one page per object), and linked from here.
    elsewhere = {m: by_module.pop(m) for m in list(by_module) if m.startswith(ELSEWHERE)}
    for module in sorted(by_module, key=lambda m: (rank.get(m, len(ORDER)), m)):
        out += ["", f"## From `{module}`", ""]
        out += [", ".join(f"`aekit.{n}`" for n in by_module[module]) + f" (defined in `{module}`).", ""]
        for name in by_module[module]:
            out += [f"::: {module}.{name}", "    options:", "      heading_level: 3",
                    "      show_root_full_path: false", ""]
    if elsewhere:
        out += ["", "## Documented with their package", ""]
        out += [f"- `aekit.{n}`: [`{m}.{n}`][{m}.{n}]" for m in sorted(elsewhere) for n in elsewhere[m]]
    return "\n".join(out) + "\n"


def families_markdown() -> str:
    """One mkdocstrings block per built-in model family's module, in the registry's order."""
    from aekit.registry import BUILTIN_FAMILIES

    return "\n".join(f"::: {m}\n    options:\n      heading_level: 3\n" for m in BUILTIN_FAMILIES)


PAGES = {PAGE: (MARKER, exports_markdown), "reference/models.md": (FAMILIES_MARKER, families_markdown)}


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri not in PAGES:
        return markdown
    marker, make = PAGES[page.file.src_uri]
    if marker not in markdown:
        raise ValueError(f"{page.file.src_uri} lost its {marker} marker: the reference would miss names")
    return markdown.replace(marker, make())
