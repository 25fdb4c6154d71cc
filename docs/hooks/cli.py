"""MkDocs hook: the command-line reference (docs/guides/cli.md) written from aekit's own argparse parser.

The page holds the marker ``<!-- cli-reference -->``; at build time it becomes one section per command:
its one-line summary, its usage and a table of its options, group by group, as ``aekit COMMAND --help``
prints them. Nothing is copied by hand, so the page cannot drift from the parser.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

MARKER = "<!-- cli-reference -->"
PAGE = "guides/cli.md"


def _cell(text: str) -> str:
    """Text for a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _flag(action: argparse.Action) -> str:
    names = ", ".join(f"`{n}`" for n in action.option_strings) or f"`{action.metavar or action.dest}`"
    if action.nargs == 0:
        return names
    if action.metavar is not None:
        arg = action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    elif action.choices is not None:
        arg = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        arg = action.dest.upper()
    if not action.option_strings:
        return names
    return f"{names} `{arg}`" if action.nargs != "?" else f"{names} `[{arg}]`"


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help:
        return ""
    # argparse's own expansion of %(default)s, %(choices)s and the like
    return parser._get_formatter()._expand_help(action)


def _options_table(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help is not argparse.SUPPRESS]
        if not actions:
            continue
        lines += ["", f"**{group.title}**", "", "| argument | what |", "| --- | --- |"]
        lines += [f"| {_cell(_flag(a))} | {_cell(_help(parser, a))} |" for a in actions]
    return lines


def _subcommands(parser: argparse.ArgumentParser) -> tuple[argparse._SubParsersAction, dict[str, str]]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub, {c.dest: c.help or "" for c in sub._choices_actions}


def reference_markdown() -> str:
    """The generated Markdown: the top-level usage, then every command in the parser's order."""
    from aekit.cli import build_parser

    # argparse wraps usage to the terminal's width: a fixed one, so the page is the same wherever it is built
    width, os.environ["COLUMNS"] = os.environ.get("COLUMNS"), "100"
    try:
        return _reference(build_parser())
    finally:
        if width is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = width


def _reference(parser: argparse.ArgumentParser) -> str:
    sub, summaries = _subcommands(parser)
    out = ["```text", parser.format_usage().strip(), "```", "", "| command | what |", "| --- | --- |"]
    out += [f"| [`{name}`](#aekit-{name}) | {_cell(summaries.get(name, ''))} |" for name in sub.choices]
    for name, cmd in sub.choices.items():
        summary = _cell(summaries.get(name, ""))
        out += ["", f"## aekit {name} {{#aekit-{name}}}", "", summary[:1].upper() + summary[1:] + ".", ""]
        if cmd.description:
            out += [cmd.description, ""]
        out += ["```text", cmd.format_usage().strip(), "```"]
        out += _options_table(cmd)
        if cmd.epilog:
            out += ["", cmd.epilog]
    return "\n".join(out) + "\n"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} lost its {MARKER} marker: the command reference would be missing")
    return markdown.replace(MARKER, reference_markdown())
