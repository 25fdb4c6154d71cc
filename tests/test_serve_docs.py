"""``aekit serve``'s API page, /docs: Swagger UI served by the app itself (no CDN) under the same policy as
the page (no eval, no inline script), without the token for the page and with it for its calls; and, where
Debian's Chromium is installed, the page in a real browser: no console error, no request off 127.0.0.1."""

from __future__ import annotations

import os
import re

import pytest

pytest.importorskip("fastapi", reason="aekit serve's extra is not installed (pip install 'aekit[serve]')")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient

from aekit.serve import app as served
from aekit.serve.app import create_app
from tests.servehelp import tiny_run

CHROMIUM = os.environ.get("AEKIT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TOKEN = "s3cret"

needs_swagger = pytest.mark.skipif(served.swagger_dist() is None,
                                   reason="fastapi-offline (swagger-ui's files) is not installed: "
                                          "pip install 'aekit[serve]'")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    tiny_run(root, tmp_path_factory)
    return root


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(runs_root=root, token=TOKEN)) as c:
        yield c


def assets(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)


def strict(csp: str) -> bool:
    return "unsafe-eval" not in csp and "unsafe-inline" not in csp and "script-src 'self'" in csp


@needs_swagger
def test_docs_page_and_its_files_come_from_this_server_under_the_strict_policy(client):
    page = client.get("/docs")  # no token: the page holds no data
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert strict(page.headers["content-security-policy"]) and page.headers["x-frame-options"] == "DENY"
    urls = assets(page.text)
    assert "/docs/swagger-ui-bundle.js" in urls and "/docs/swagger-ui.css" in urls and "/static/docs.js" in urls
    for url in urls:  # same origin only: a path of this server, or an inline data: URL
        assert url == "data:," or (url.startswith("/") and not url.startswith("//")), url
    for body in re.findall(r"<script\b([^>]*)>(.*?)</script>", page.text, re.S):
        assert "src=" in body[0] and not body[1].strip(), "an inline script would need 'unsafe-inline'"
    kinds = {"/docs/swagger-ui-bundle.js": "javascript", "/docs/swagger-ui.css": "text/css",
             "/static/docs.js": "javascript"}
    for url, kind in kinds.items():
        r = client.get(url)
        assert r.status_code == 200 and kind in r.headers["content-type"] and len(r.content) > 100, url
        assert strict(r.headers["content-security-policy"]), url
    assert b"SwaggerUIBundle" in client.get("/docs/swagger-ui-bundle.js").content
    assert b"validatorUrl: null" in client.get("/static/docs.js").content  # no badge from the validator's site
    for other in ("/docs/redoc.standalone.js", "/docs/favicon.png", "/docs/..%2Fcore.py", "/docs/core.py",
                  "/docs/swagger-ui-bundle.js/x"):
        assert client.get(other).status_code == 404, other


@needs_swagger
def test_calls_from_the_docs_still_need_the_token_which_the_description_declares(client, root):
    assert client.get("/openapi.json").status_code == 200
    assert client.post("/api/runs/tiny/reconstruct", json={"index": 0}).status_code == 401
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "the server's --token"}
    for path, ops in spec["paths"].items():
        assert path.startswith("/api/"), path  # /docs and its files stay out of the description
        for op in ops.values():
            assert op["security"] == [{"bearer": []}], path
    assert spec == client.get("/openapi.json").json()  # built once, the scheme added once
    with TestClient(create_app(runs_root=root)) as c:  # no token: none declared
        spec = c.get("/openapi.json").json()
        assert "securitySchemes" not in spec.get("components", {})
        assert all("security" not in op for ops in spec["paths"].values() for op in ops.values())
        assert c.get("/docs").status_code == 200


def test_without_swagger_ui_files_docs_says_what_to_install(root, monkeypatch):
    monkeypatch.setattr(served, "swagger_dist", lambda: None)
    with TestClient(create_app(runs_root=root)) as c:
        r = c.get("/docs")
        assert r.status_code == 404 and "pip install 'aekit[serve]'" in r.json()["detail"]
        assert c.get("/docs/swagger-ui-bundle.js").status_code == 404
        assert c.get("/openapi.json").status_code == 200


def browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install chromium) to run the page tests"
    return None


@needs_swagger
@pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")
def test_docs_in_a_browser_show_the_api_and_try_it_out_with_the_token(root):
    from playwright.sync_api import sync_playwright

    from aekit.serve.background import serve_in_thread

    srv, t, url = serve_in_thread(create_app(runs_root=root, token=TOKEN, local_only=True))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            pg = browser.new_page(viewport={"width": 1280, "height": 800})
            errors, requests = [], []
            pg.on("console", lambda m: m.type == "error" and errors.append(m.text))
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.on("request", lambda r: requests.append(r.url))
            pg.goto(url + "docs#token=" + TOKEN)  # as the page's footer link carries it
            op = pg.locator(".opblock", has=pg.locator(".opblock-summary-path", has_text="/reconstruct"))
            op.wait_for(timeout=30000)
            assert "Reconstruction, code, error map and anomaly score" in op.inner_text()
            assert pg.locator(".opblock-summary-path").count() >= 15  # every route of /openapi.json
            assert pg.locator("button.authorize").count() == 1

            op.locator(".opblock-summary").click()  # Try it out: rid and body filled in, Execute
            op.locator("button.try-out__btn").click()
            op.locator("input[placeholder='rid']").fill("tiny")
            op.locator("textarea.body-param__text").fill('{"index": 0}')
            with pg.expect_response(lambda r: r.url.endswith("/api/runs/tiny/reconstruct")) as answer:
                op.locator("button.execute").click()
            assert answer.value.status == 200 and answer.value.request.headers["authorization"] == "Bearer " + TOKEN
            assert "anomaly" in answer.value.json()
            op.locator(".live-responses-table").wait_for(timeout=10000)
            pg.goto(url + "#token=" + TOKEN)  # the page's footer links to /docs with the token it was given
            pg.wait_for_function("() => document.getElementById('api-docs').hash.length > 1", timeout=20000)
            assert pg.get_attribute("#api-docs", "href") == url + "docs#token=" + TOKEN
            browser.close()
    finally:
        srv.should_exit = True
        t.join(10)
    assert not errors, errors
    assert requests and all(r.startswith(url) for r in requests), requests  # nothing leaves 127.0.0.1
    assert {url + "docs/swagger-ui-bundle.js", url + "docs/swagger-ui.css", url + "static/docs.js",
            url + "openapi.json"} <= set(requests)


# -- /guide/: the built documentation site -------------------------------------------------------------------
INLINE = 'window.started = "yes";'
SECRET = "the-secret-beside-the-site"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A tiny built site: a home page starting with an inline script (as Material's do), a page in a folder,
    a style sheet; beside it a secret file, and inside it links that lead out to it."""
    base = tmp_path_factory.mktemp("guide")
    site = base / "site"
    (site / "lecture" / "denoising").mkdir(parents=True)
    (site / "assets").mkdir()
    (site / "index.html").write_text(f"<!doctype html><title>home</title><script>{INLINE}</script>"
                                     '<script src="assets/app.js"></script><script id="__config" '
                                     'type="application/json">{"a": 1}</script><p>home page</p>')
    (site / "lecture" / "denoising" / "index.html").write_text("<!doctype html><title>d</title><p>denoising page</p>")
    (site / "assets" / "app.js").write_text("window.fromFile = true;")
    (site / "assets" / "style.css").write_text("p { color: red; }")
    (base / "secret.txt").write_text(SECRET)
    (base / "outside").mkdir()
    (base / "outside" / "passwd").write_text(SECRET)
    (site / "escape").symlink_to(base / "outside")  # a folder link out of the site
    (site / "leak.txt").symlink_to(base / "secret.txt")  # a file link out of it
    (site / "inner.css").symlink_to(site / "assets" / "style.css")  # a link that stays inside: served
    return site


@pytest.fixture(scope="module")
def guide_client(root, site):
    with TestClient(create_app(runs_root=root, token=TOKEN, docs_site=site)) as c:
        yield c


def test_guide_serves_the_built_site_with_folders_as_their_index(guide_client):
    import base64
    import hashlib

    r = guide_client.get("/guide", follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "/guide/"
    home = guide_client.get("/guide/")  # no token: the guide holds no data, like / and /docs
    assert home.status_code == 200 and "home page" in home.text and home.headers["content-type"].startswith("text/html")
    r = guide_client.get("/guide/lecture/denoising", follow_redirects=False)  # its links are relative to the slash
    assert r.status_code == 308 and r.headers["location"] == "/guide/lecture/denoising/"
    assert "denoising page" in guide_client.get("/guide/lecture/denoising/").text
    css = guide_client.get("/guide/assets/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert guide_client.get("/guide/inner.css").text == "p { color: red; }"  # a link inside the site
    assert guide_client.get("/guide/assets/app.js").headers["content-type"].split(";")[0] in (
        "text/javascript", "application/javascript")
    missing = guide_client.get("/guide/lecture/nothing/")
    assert missing.status_code == 404 and "No such page in the guide" in missing.text
    # The page's own inline script, by its hash, and nothing else inline; one policy, the other headers kept.
    csp = home.headers.get_list("content-security-policy")
    assert len(csp) == 1, csp
    digest = base64.b64encode(hashlib.sha256(INLINE.encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}';" in csp[0] and "unsafe-inline" not in csp[0], csp[0]
    assert csp[0].count("sha256-") == 1  # the JSON block is never run, the file's script comes from 'self'
    assert home.headers["x-frame-options"] == "DENY" and home.headers["x-content-type-options"] == "nosniff"
    assert strict(css.headers["content-security-policy"])  # a file: the strict policy of the page
    assert guide_client.get("/api/runs").status_code == 401  # the API still needs the token


@pytest.mark.parametrize("path", [
    "/guide/..%2fsecret.txt", "/guide/%2e%2e/secret.txt", "/guide/lecture/..%2f..%2f..%2fsecret.txt",
    "/guide/%2fetc%2fpasswd", "/guide//etc/passwd", "/guide/escape/passwd", "/guide/leak.txt",
    "/guide/escape/", "/guide/%00", "/guide/lecture%00/", "/guide/" + "a" * 5000,
])
def test_guide_never_answers_a_file_outside_the_site(guide_client, path):
    r = guide_client.get(path, follow_redirects=False)
    assert r.status_code == 404, (path, r.status_code)
    assert SECRET not in r.text and "root:" not in r.text


def test_guide_paths_sent_raw_to_the_server_stay_inside_the_site(root, site):
    """``..`` as the client sends it, unnormalised (an HTTP client tidies it away before sending)."""
    import socket

    from aekit.serve.background import serve_in_thread

    srv, t, url = serve_in_thread(create_app(runs_root=root, docs_site=site, local_only=True))
    port = int(url.rsplit(":", 1)[1].strip("/"))
    try:
        for path in ("/guide/../secret.txt", "/guide/../../../../../etc/passwd", "/guide/lecture/../../secret.txt",
                     "/guide/./../secret.txt", "/guide/escape/../../secret.txt"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
            head = answer.split(b"\r\n", 1)[0]
            assert SECRET.encode() not in answer and b"root:" not in answer, path
            assert head.split()[1] in (b"404", b"400"), (path, head)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # the Host rule applies as everywhere
            s.sendall(b"GET /guide/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
            assert s.recv(65536).split(b"\r\n", 1)[0].split()[1] == b"400"
    finally:
        srv.should_exit = True
        t.join(10)


def test_without_a_built_site_the_guide_says_how_to_build_it_and_names_the_markdown(root):
    with TestClient(create_app(runs_root=root)) as c:
        r = c.get("/guide/lecture/denoising/")
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert "make docs" in r.text and "docs/lecture/denoising.md" in r.text and "--docs DIR" in r.text
        assert strict(r.headers["content-security-policy"]) and "<script" not in r.text
        assert "docs/index.md" in c.get("/guide/").text
        assert "docs/guides/serve.md" in c.get("/guide/guides/serve/").text
        evil = c.get("/guide/<script>alert(1)</script>/")  # never echoed: not a page name
        assert evil.status_code == 404 and "alert(1)" not in evil.text and "Markdown files under docs/" in evil.text


def test_a_docs_folder_that_is_no_built_site_is_refused_in_one_line(root, tmp_path, capsys):
    from aekit.cli import main
    from aekit.errors import AekitError
    from aekit.serve.guide import checkout_site

    with pytest.raises(AekitError, match="no index.html"):
        create_app(runs_root=root, docs_site=tmp_path)
    assert main(["serve", "--runs", str(root), "--docs", str(tmp_path / "nowhere"), "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aekit: error: --docs ") and "make docs" in err and "\n" not in err, err
    found = checkout_site()  # this checkout's site/, where one is built
    assert found is None or (found / "index.html").is_file()


def material_missing() -> str | None:
    import importlib.util

    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'aekit[docs]')"
    return browser_missing()


@pytest.mark.skipif(material_missing() is not None, reason=material_missing() or "")
def test_a_material_site_runs_its_own_inline_scripts_and_nothing_else(root, tmp_path):
    """A real MkDocs Material build (the theme the docs use) in Chromium under the guide's policy: its
    inline scripts run (their hashes allowed), no policy violation, no request leaves the server."""
    import subprocess
    import sys

    from playwright.sync_api import sync_playwright

    from aekit.serve.background import serve_in_thread

    (tmp_path / "docs" / "lecture").mkdir(parents=True)
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [denoising](lecture/denoising.md).\n")
    (tmp_path / "docs" / "lecture" / "denoising.md").write_text("# Denoising\n\nPut back what noise takes.\n")
    (tmp_path / "mkdocs.yml").write_text(
        "site_name: t\nuse_directory_urls: true\ntheme:\n  name: material\n  font: false\n  palette:\n"
        "    - media: '(prefers-color-scheme: light)'\n      scheme: default\n"
        "      toggle: {icon: material/weather-night, name: Dark mode}\n"
        "    - media: '(prefers-color-scheme: dark)'\n      scheme: slate\n"
        "      toggle: {icon: material/weather-sunny, name: Light mode}\nplugins: [search]\n")
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q"], cwd=tmp_path, check=True, capture_output=True,
                   env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    srv, t, url = serve_in_thread(create_app(runs_root=root, docs_site=tmp_path / "site", local_only=True))
    errors, requests = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            pg = browser.new_page()
            pg.on("console", lambda m: m.type == "error" and errors.append(m.text))
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.on("request", lambda r: requests.append(r.url))
            pg.goto(url + "guide/lecture/denoising")  # redirected to the folder
            pg.wait_for_function("() => typeof __md_get === 'function' && document.querySelector('.md-content')")
            assert pg.url == url + "guide/lecture/denoising/"
            assert "Put back what noise takes" in pg.locator(".md-content").inner_text()
            pg.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
                        " document.body.append(s); }")  # an inline script not in the built page: refused
            pg.wait_for_timeout(300)
            assert pg.evaluate("window.injected") is None
            browser.close()
    finally:
        srv.should_exit = True
        t.join(10)
    refused = [e for e in errors if "Content Security Policy" in e]
    assert len(refused) == 1 and "inline script" in refused[0], errors  # the injected one only
    assert errors == refused, errors
    assert all(r.startswith(url) for r in requests), requests
