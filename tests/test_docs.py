"""The documentation site and the README: the site builds strictly offline with every page of its map, the
README stays short, every relative link resolves, every ``aekit ...`` command shown parses with the real
parser, and every lecture figure is made by scripts/docs_figures.py."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from aekit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
FIGURES = DOCS / "figures"

# The site's page map: the page of `aekit serve` and other sites link to these URLs, so they must not move.
PAGE_MAP = [
    "index", "getting-started",
    *(f"lecture/{p}" for p in ("index", "bottleneck", "linear-pca", "deep", "convolutional", "regularised",
                               "denoising", "representations", "blending", "infilling", "pretraining",
                               "variational")),
    *(f"guides/{p}" for p in ("cli", "recipes", "run-folder", "resuming", "thresholds", "export", "serve",
                              "estimators", "multiprocess", "gpu")),
    "benchmarks", "for-users-of",
    *(f"reference/{p}" for p in ("index", "aekit", "estimator", "models", "training")),
]
# Pages whose commands are all concrete (the command-line guide shows `[--json]` and `a|b` notation).
CONCRETE = ["README.md", "docs/getting-started.md", "docs/lecture/*.md", "docs/guides/recipes.md",
            "docs/guides/resuming.md"]


def markdown_files() -> list[Path]:
    return [README, *sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)]


def fenced(text: str) -> tuple[list[tuple[str, str]], str]:
    """The fenced code blocks of Markdown ``text`` as (language, body), and the text without them."""
    blocks: list[tuple[str, str]] = []
    prose: list[str] = []
    lang, body = None, []
    for line in text.splitlines(keepends=True):
        fence = re.match(r"\s*```\s*([\w+-]*)", line)
        if lang is None and fence:
            lang, body = fence.group(1), []
        elif lang is not None and fence and not fence.group(1):
            blocks.append((lang, "".join(body)))
            lang = None
        elif lang is not None:
            body.append(line)
        else:
            prose.append(line)
    return blocks, "".join(prose)


def without_code(text: str) -> str:
    """The text with fenced code blocks and inline code removed (links in code are not links)."""
    return re.sub(r"`[^`\n]*`", "", fenced(text)[1])


def relative_links(text: str) -> list[str]:
    prose = without_code(text)
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose)
    targets += re.findall(r"""<img[^>]*\ssrc=["']([^"']+)["']""", prose)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def aekit_commands(text: str, inline: bool = True) -> list[str]:
    """Every command line starting with ``aekit`` in shell code blocks and, with ``inline``, every inline code
    span that is one (tutorial pages also name commands in prose, `aekit nll`, without their arguments)."""
    blocks, prose = fenced(text)
    found: list[str] = []
    for lang, body in blocks:
        if lang in ("sh", "bash", "console", ""):
            found += [line.strip() for line in body.replace("\\\n", " ").splitlines()
                      if re.fullmatch(r"aekit\s+\S.*", line.strip())]
    if inline:
        found += [c for c in re.findall(r"`([^`\n]+)`", prose) if re.fullmatch(r"aekit\s+\S.*", c)]
    return found


def concrete_pages() -> list[Path]:
    return sorted({p for pattern in CONCRETE for p in ROOT.glob(pattern)})


# -- the README -----------------------------------------------------------------------------------------------
def test_the_readme_is_at_most_150_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move the detail to a page under docs/"


def test_the_readme_links_into_the_site_and_shows_its_quick_start():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    linked = {str((README.parent / t.split("#")[0]).resolve().relative_to(ROOT)) for t in relative_links(text)}
    assert {"docs/getting-started.md", "docs/lecture/index.md", "docs/guides/cli.md", "docs/benchmarks.md",
            "docs/reference/index.md"} <= linked
    assert any(t.endswith(".png") for t in relative_links(text)), "the README shows one picture"
    assert len(re.findall(r"```python\n", text)) == 1, "the README shows the Python snippet"


# -- links ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    missing = []
    for target in relative_links(page.read_text()):
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)}: links to missing files: {missing}"


def test_the_link_finder_finds_links_and_skips_code():
    text = "[a](x.md) ![b](f/y.png) [c](https://e.org) [d](#top) `[e](z.md)`\n```\n[f](w.md)\n```\n" \
           '<img src="p.png" width="2">'
    assert relative_links(text) == ["x.md", "f/y.png", "p.png"]


# -- commands ------------------------------------------------------------------------------------------------
def parses(command: str) -> str | None:
    """None if ``command`` parses with aekit's parser, else what went wrong (argparse's message)."""
    tokens = shlex.split(command, comments=True)
    assert tokens[0] == "aekit", command
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(tokens[1:])
    except SystemExit as stop:
        # --help and --version print and exit 0: they parsed
        return None if stop.code == 0 else err.getvalue().strip() or f"exit {stop.code}"
    return None


def test_every_aekit_command_in_the_readme_parses():
    commands = aekit_commands(README.read_text())
    assert len(commands) >= 5, commands  # the five commands a user runs first, at least
    bad = {c: why for c in commands if (why := parses(c)) is not None}
    assert not bad, bad


@pytest.mark.parametrize("page", concrete_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_aekit_command_on_the_tutorial_pages_parses(page):
    commands = aekit_commands(page.read_text(), inline=False)
    bad = {c: why for c in commands if (why := parses(c)) is not None}
    assert not bad, f"{page.relative_to(ROOT)}: {bad}"


def test_a_command_that_does_not_parse_is_caught():
    assert parses("aekit train --code 32") is None and parses("aekit --help") is None
    assert "invalid choice" in parses("aekit trian --code 32")
    assert "unrecognized arguments" in parses("aekit evaluate runs/x --no-such-flag")
    text = "```sh\naekit train --code 2 \\\n  --epochs 3   # a comment\nmake demo\n```\nrun `aekit recipes` or `aekitx`"
    assert aekit_commands(text) == ["aekit train --code 2    --epochs 3   # a comment", "aekit recipes"]
    assert aekit_commands(text, inline=False) == ["aekit train --code 2    --epochs 3   # a comment"]


# -- the lecture's figures -----------------------------------------------------------------------------------
def test_every_figure_is_shown_and_made_by_the_figure_script():
    script = (ROOT / "scripts" / "docs_figures.py").read_text()
    shown = {Path(t).name for p in markdown_files() for t in relative_links(p.read_text()) if "figures/" in t}
    made = {p.name for p in FIGURES.glob("*.png")}
    assert shown == made, f"shown but not made: {shown - made}; made but not shown: {made - shown}"
    assert all(name in script for name in made), [n for n in made if n not in script]
    for page in (DOCS / "lecture").glob("*.md"):
        if page.name != "index.md":
            assert "figures/" in page.read_text(), f"{page.name} shows no figure"


# -- the site ------------------------------------------------------------------------------------------------
def test_every_page_of_the_map_is_in_the_navigation():
    config = (ROOT / "mkdocs.yml").read_text()
    for page in PAGE_MAP:
        assert (DOCS / f"{page}.md").is_file(), f"docs/{page}.md is missing"
        assert f"{page}.md" in config, f"{page}.md is not in mkdocs.yml's nav"
    assert "use_directory_urls: true" in config  # docs/lecture/denoising.md is served at lecture/denoising/


DOCS_EXTRA = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [m for m in DOCS_EXTRA if importlib.util.find_spec(m.split(".")[0]) is None
               or importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the docs extra is not installed ({', '.join(missing)}): pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_the_site_builds_strictly_with_every_page(site):
    for page in PAGE_MAP:
        folder = page.removesuffix("index").rstrip("/")  # use_directory_urls: a page is FOLDER/index.html
        html = site / folder / "index.html" if folder else site / "index.html"
        assert html.is_file(), f"{page} was not built"
    # offline: no Google Fonts, no CDN (only links a reader follows may leave the site)
    for html in site.rglob("*.html"):
        text = html.read_text()
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text, html
        assert not re.search(r"""<(?:script|link)[^>]+(?:src|href)=["']https?://""", text), html


def test_the_command_line_page_has_every_command_and_flag(site):
    html = (site / "guides" / "cli" / "index.html").read_text()
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    for name, cmd in sub.choices.items():
        assert f'id="aekit-{name}"' in html, name
        for action in cmd._actions:
            for flag in action.option_strings:
                assert flag in html, (name, flag)


def test_the_serve_page_has_every_route_of_the_openapi_schema(site):
    from aekit.serve.app import create_app

    html = (site / "guides" / "serve" / "index.html").read_text()
    schema = create_app().app.openapi()
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            assert f"{method.upper()} <code>{path}</code>" in html, (method, path)
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" in body:
                body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
            for field in body.get("properties", {}):
                assert f"<code>{field}</code>" in html, (path, field)


def test_the_reference_documents_every_public_name(site):
    import aekit
    import aekit.estimator
    import aekit.models

    pages = {p: (site / "reference" / p / "index.html").read_text() for p in ("aekit", "estimator", "models",
                                                                             "training")}
    everything = "".join(pages.values())
    for name in aekit.__all__:
        if name != "__version__":
            module = aekit._EXPORTS[name]  # or the package that re-exports it (aekit.models.Autoencoder)
            assert any(f'id="{m}.{name}"' in everything for m in (module, module.rsplit(".", 1)[0])), name
    for name in ("AutoencoderTransformer", "AutoencoderOutlierDetector"):
        assert f'id="aekit.estimator.{name}"' in pages["estimator"], name
    for name in aekit.models.__all__:
        assert f'id="aekit.models.{name}"' in pages["models"] or f'id="aekit.models.base.{name}"' in pages["models"]
    assert 'id="aekit.training.loop.fit"' in pages["training"]
    assert ":func:" not in everything and ":class:" not in everything  # Sphinx roles are read as references
