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
