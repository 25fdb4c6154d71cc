"""``/guide/``: the documentation site (MkDocs, built into ``site/`` by ``make docs``) served by ``aekit serve``,
so that each panel's "read more" link opens the lecture's page on the same server, offline.

Only files inside the site folder are answered: a path is resolved (``..`` and symbolic links followed)
and refused unless it stays inside the resolved folder. A folder answers its ``index.html`` (MkDocs'
``use_directory_urls``), and a folder asked for without its final slash is redirected to it, since the
pages' links are relative to it. Like ``/`` and ``/docs``, the guide holds no data, so it needs no
token; the Host check of :class:`aekit.serve.app.Guard` applies as everywhere.

The page's policy forbids inline scripts; the Material theme starts with three small ones. A page of
the guide is answered with a policy that allows exactly the inline scripts it holds, by their SHA-256
(never ``'unsafe-inline'``), so a script that was not in the built file cannot run.

With no site built, every page of ``/guide/`` answers a short page saying how to build it and naming
the Markdown file the page comes from (``docs/<page>.md``).
"""

from __future__ import annotations

import base64
import hashlib
import html
import mimetypes
import re
import urllib.parse
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from aekit.errors import AekitError

# The policy of a page of the guide: that of the app's page, plus the hashes of the page's own inline scripts.
CSP = ("default-src 'self'; script-src 'self'{hashes}; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
INLINE_SCRIPT = re.compile(rb"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)
# A page name the "not built" answer may quote: words and dashes between slashes, nothing else.
PAGE_NAME = re.compile(r"[A-Za-z0-9_-]{1,60}(?:/[A-Za-z0-9_-]{1,60}){0,5}")


def policy(page: bytes) -> str:
    """The guide's policy for one HTML page: its inline scripts allowed by hash, no other inline script."""
    hashes: dict[str, None] = {}
    for attrs, body in INLINE_SCRIPT.findall(page):
        if b"src=" in attrs.lower() or b"application/json" in attrs.lower():
            continue  # a file of this server, or data the browser never runs
        hashes[" 'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"] = None
    return CSP.format(hashes="".join(hashes))


def site_folder(path: str | Path) -> Path:
    """A built site's folder (one with an index.html), resolved; an :class:`AekitError` for anything else."""
    site = Path(path).expanduser()
    try:
        built = (site / "index.html").is_file()
    except OSError as exc:  # a name too long, a folder that cannot be read: is_file raises these
        raise AekitError(f"--docs {str(path)[:80]}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    if not built:
        raise AekitError(f"--docs {path}: not a built documentation site (no index.html); build it with `make docs` "
                         "(into site/)")
    return site.resolve()


def checkout_site() -> Path | None:
    """The built site of the checkout aekit runs from (``site/`` beside its ``mkdocs.yml``), or None: an
    installed package has no checkout, and a checkout may have no site built yet."""
    import aekit

    repo = Path(aekit.__file__).resolve().parents[2]  # src/aekit/__init__.py -> the checkout
    site = repo / "site"
    return site.resolve() if (repo / "mkdocs.yml").is_file() and (site / "index.html").is_file() else None


def inside(root: Path, page: str) -> Path | None:
    """The file or folder at ``page`` in the site ``root`` (resolved), or None where there is none or the
    path leaves the site: ``..``, an absolute path, a symbolic link to elsewhere, a NUL byte."""
    try:
        target = (root / page.lstrip("/")).resolve()
        if not target.is_relative_to(root) or not target.exists():
            return None
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a name too long, a link loop
        return None
    return target


def markdown_of(page: str) -> str:
    """The Markdown file a page of the site is built from (``lecture/denoising/`` -> docs/lecture/denoising.md),
    or the docs folder for a path that names no page."""
    name = page.strip("/").removesuffix("index.html").removesuffix(".html").strip("/")
    if not name:
        return "docs/index.md"
    return f"docs/{name}.md" if PAGE_NAME.fullmatch(name) else "the Markdown files under docs/"


def _page(title: str, body: str, status: int) -> HTMLResponse:
    """A short HTML page of this server (its style sheet, no script) for a guide page that is not there."""
    return HTMLResponse(f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
                        '<meta name="viewport" content="width=device-width, initial-scale=1">'
                        '<link rel="stylesheet" href="/static/style.css"></head><body><main><section class="card">'
                        f'<h1>{title}</h1>{body}<p><a href="/">Back to the page</a></p></section></main></body></html>',
                        status_code=status)


def not_built(page: str) -> HTMLResponse:
    source = html.escape(markdown_of(page))
    return _page("The guide is not built", "<p>This server has no documentation site to show. Build it in the "
                 "checkout with <code>make docs</code> (MkDocs, into <code>site/</code>) and restart "
                 "<code>aekit serve</code>, or point it at a built site with <code>aekit serve --docs DIR</code>."
                 f"</p><p>This page's text is in <code>{source}</code>, readable as it is.</p>", 404)


def routes(app: FastAPI, site: Path | None) -> None:
    """``/guide`` and ``/guide/{page}``: the built ``site`` (resolved), or the page saying how to build it."""

    @app.get("/guide", include_in_schema=False)
    def guide_root() -> Response:
        return RedirectResponse("/guide/", status_code=308)

    @app.get("/guide/{page:path}", include_in_schema=False)
    def guide(page: str, request: Request) -> Response:
        if site is None:
            return not_built(page)
        target = inside(site, page)
        if target is not None and target.is_dir():
            if page and not request.url.path.endswith("/"):  # its pages' relative links need the slash
                return RedirectResponse("/guide/" + urllib.parse.quote(page) + "/", status_code=308)
            target = inside(site, str(target.relative_to(site) / "index.html"))  # the index may be a link too
        if target is None or not target.is_file():
            return _page("No such page in the guide", '<p>The guide has no page here: see '
                         '<a href="/guide/">its contents</a>.</p>', 404)
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if kind != "text/html":
            return FileResponse(target, media_type=kind)
        text = target.read_bytes()  # a page of the guide: a few tens of kB
        return Response(text, media_type="text/html; charset=utf-8", headers={"content-security-policy": policy(text)})
