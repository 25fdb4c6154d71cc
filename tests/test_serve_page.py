"""The page of ``aekit serve`` in a real browser: Playwright for Python driving the system's Chromium.

No browser is downloaded: the tests use /usr/bin/chromium (Debian's package; `.ci/run` installs it)
and skip, saying why, where it or Playwright is missing. Set AEKIT_SCREENSHOTS=DIR to keep the
screenshots (the README's come from here).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("AEKIT_CHROMIUM", "/usr/bin/chromium")  # Debian's package by default
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytest.importorskip("fastapi", reason="aekit serve's extra is not installed (pip install 'aekit[serve]')")
pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install chromium) to run the page "
                "tests", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

from aekit.serve.app import create_app  # noqa: E402
from aekit.serve.background import serve_in_thread  # noqa: E402
from tests.servehelp import tiny_run  # noqa: E402

XSS = "<img src=x id=pwned onerror=alert(1)><script>alert(2)</script>"


def start(app) -> tuple[Any, threading.Thread, str]:
    return serve_in_thread(app)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run = tiny_run(root, tmp_path_factory)
    evil = root / "evil"  # the same weights, with markup in the config values the picker shows
    shutil.copytree(run, evil)
    info = json.loads((evil / "config.json").read_text())
    info["data"]["name"] = XSS
    (evil / "config.json").write_text(json.dumps(info))
    srv, t, url = start(create_app(runs_root=root, local_only=True))
    yield url
    srv.should_exit = True
    t.join(10)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    pg.errors, pg.requests = [], []
    pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("dialog", lambda d: (pg.errors.append("dialog: " + d.message), d.dismiss()))
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.goto(server)
    pg.wait_for_function("() => document.getElementById('score').textContent.length > 0", timeout=20000)
    pg.wait_for_function("() => document.getElementById('psnr-noisy').textContent.length > 0", timeout=20000)
    yield pg
    ctx.close()


def shot(page, name: str, tmp_path: Path) -> None:
    where = Path(os.environ.get("AEKIT_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(where / name))


def pixels(page, canvas_id: str) -> str:
    return page.evaluate(f"document.getElementById('{canvas_id}').toDataURL()")


def changed(page, canvas_id: str, before: str, timeout: float = 10000) -> None:
    page.wait_for_function(f"() => document.getElementById('{canvas_id}').toDataURL() !== {json.dumps(before)}",
                           timeout=timeout)


def test_page_loads_without_errors_or_outside_requests(page, server, tmp_path):
    assert page.locator("#run option").count() == 2
    assert page.locator("#score").inner_text().startswith("anomaly score")
    page.wait_for_function("() => document.getElementById('latent-info').textContent.length > 0")
    assert not page.errors, page.errors
    assert all(u.startswith(server) for u in page.requests), [u for u in page.requests if not u.startswith(server)]
    shot(page, "page-desktop.png", tmp_path)


def test_run_names_and_config_values_are_text(page):
    texts = page.locator("#run option").all_inner_texts()
    assert any(XSS in t for t in texts), texts
    page.select_option("#run", "evil")
    page.wait_for_function("() => document.getElementById('run-info').textContent.includes('<script>')")
    assert page.locator("#pwned").count() == 0 and not page.errors, page.errors


def test_drawing_a_stroke_changes_the_reconstruction_and_the_code(page):
    recon, code = pixels(page, "recon"), pixels(page, "code")
    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 40)
    page.mouse.down()
    for i in range(12):
        page.mouse.move(box["x"] + 60 + 15 * i, box["y"] + 40 + 18 * i, steps=2)
    page.mouse.up()
    changed(page, "recon", recon)
    changed(page, "code", code)
    assert not page.errors, page.errors


def test_noise_slider_changes_psnr(page):
    before = page.locator("#psnr-noisy").inner_text()
    page.locator("#noise-level").fill("0.9")
    page.wait_for_function(f"() => document.getElementById('psnr-noisy').textContent !== {json.dumps(before)}")
    assert float(page.locator("#psnr-noisy").inner_text().split()[0]) < float(before.split()[0])


def test_blend_slider_moves_the_decoded_image(page):
    page.wait_for_function("() => document.getElementById('blend-decoded').width > 0")
    before = pixels(page, "blend-decoded")
    page.locator("#blend-t").fill("1")
    changed(page, "blend-decoded", before)


def test_hovering_the_latent_map_shows_an_image(page):
    page.wait_for_function("() => state.latent !== null")
    x, y = page.evaluate("state.latent.px[5]")
    page.locator("#latent").scroll_into_view_if_needed()
    box = page.locator("#latent").bounding_box()
    scale = box["width"] / page.evaluate("document.getElementById('latent').width")
    page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
    page.wait_for_function("() => document.getElementById('hover-label').textContent.startsWith('test image')")
    assert page.evaluate("document.getElementById('hover-img').width") > 0


def test_phone_width(browser, server, tmp_path):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    pg = ctx.new_page()
    pg.goto(server)
    pg.wait_for_function("() => document.getElementById('score').textContent.length > 0", timeout=20000)
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(pg, "page-phone.png", tmp_path)
    ctx.close()


def test_train_panel_streams_the_loss_and_adds_the_run(page):
    page.locator("#epochs").fill("1")
    page.locator("#train").click()
    # Wait for the job to end either way (a loaded CI machine may take minutes), then say how it ended.
    page.wait_for_function("() => /done|failed|cancelled/.test(document.getElementById('job-status').textContent)",
                           timeout=240000)
    status = page.locator("#job-status").inner_text()
    assert "done" in status, status
    page.wait_for_function("() => document.querySelectorAll('#run option').length === 3")
    assert "epoch 1/1" in page.locator("#job-status").inner_text()
    assert page.locator("#job-preview canvas").count() == 12  # 6 test images above their reconstructions
    assert not page.errors, page.errors


def test_the_page_sends_the_token_from_its_url(browser, tmp_path_factory):
    root = tmp_path_factory.mktemp("token-runs")
    tiny_run(root, tmp_path_factory)
    srv, t, url = start(create_app(runs_root=root, token="s3cret"))
    try:
        ctx = browser.new_context()
        pg = ctx.new_page()
        pg.goto(url)  # no token: the page says what is missing
        pg.wait_for_function("() => document.getElementById('status').textContent.includes('bearer token')")
        pg.goto(url + "#token=s3cret")
        pg.reload()
        pg.wait_for_function("() => document.getElementById('score').textContent.length > 0", timeout=20000)
        ctx.close()
    finally:
        srv.should_exit = True
        t.join(10)
