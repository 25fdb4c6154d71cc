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


# -- the Sample panel (variational runs) ---------------------------------------------------------------
@pytest.fixture(scope="module")
def vae_server(tmp_path_factory):
    from tests.servehelp import tiny_vae

    root = tmp_path_factory.mktemp("vae-runs")
    tiny_run(root, tmp_path_factory, "ae")  # first in the picker: the page opens on a plain autoencoder
    tiny_vae(root, tmp_path_factory, "cvae", conditional=True)
    tiny_vae(root, tmp_path_factory, "vae")
    srv, t, url = start(create_app(runs_root=root, local_only=True))
    yield url
    srv.should_exit = True
    t.join(10)


@pytest.fixture
def vae_page(browser, vae_server):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    pg.errors = []
    pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("response", lambda r: r.status >= 400 and pg.errors.append(f"{r.status} {r.url}: {r.text()}"))
    pg.goto(vae_server)
    pg.wait_for_function("() => document.getElementById('score').textContent.length > 0", timeout=20000)
    yield pg
    ctx.close()


def count(page, box: str, n: int) -> None:
    page.wait_for_function(f"() => document.querySelectorAll('#{box} canvas').length === {n}", timeout=10000)


def tiles(page, box: str) -> list[str]:
    return page.evaluate(f"[...document.querySelectorAll('#{box} canvas')].map((c) => c.toDataURL())")


def tiles_changed(page, box: str, before: list[str]) -> None:
    page.wait_for_function(f"""() => {{ const now = [...document.querySelectorAll('#{box} canvas')];
        return now.length === {len(before)} && now.some((c, i) => c.toDataURL() !== {json.dumps(before)}[i]); }}""",
                           timeout=10000)


def test_sample_panel_samples_traverses_and_decodes_the_manifold(vae_page, tmp_path):
    page = vae_page
    assert page.locator("#sample-body").is_hidden()  # a plain autoencoder: one line says why
    assert "needs a variational run" in page.locator("#sample-info").inner_text()
    assert "ae is mlp" in page.locator("#sample-info").inner_text()
    page.select_option("#run", "vae")
    count(page, "sample-grid", 16)
    count(page, "traverse-strip", 9)
    assert page.locator("#sample-label-box").is_hidden() and page.locator("#manifold-box").is_visible()
    page.locator("#sample-n").fill("9")  # the asked count
    count(page, "sample-grid", 9)
    before = tiles(page, "sample-grid")
    page.locator("#sample-t").fill("0.3")  # the slider asks for new samples at its temperature
    tiles_changed(page, "sample-grid", before)
    assert page.locator("#sample-t-text").inner_text() == "0.3"
    before = tiles(page, "sample-grid")
    page.locator("#sample-new").click()  # another seed
    tiles_changed(page, "sample-grid", before)
    strip = tiles(page, "traverse-strip")
    page.select_option("#traverse-dim", "1")
    tiles_changed(page, "traverse-strip", strip)
    page.wait_for_function("() => state.manifold !== null")
    box = page.locator("#manifold").bounding_box()
    codes = page.evaluate("state.manifold.codes")  # 12 x 12: the centre of cell (row 3, column 8) decodes its code
    page.locator("#manifold").click(position={"x": 8.5 * box["width"] / 12, "y": 3.5 * box["height"] / 12})
    page.wait_for_function("() => document.getElementById('manifold-label').textContent.startsWith('decoded z')")
    z = [float(v) for v in page.locator("#manifold-label").inner_text().split("(")[1].rstrip(")").split(",")]
    assert z == pytest.approx(codes[3][8], abs=0.05)
    assert page.evaluate("document.getElementById('manifold-img').width") == 28
    assert not page.errors and "error" not in (page.locator("#status").get_attribute("class") or ""), page.errors
    page.locator("#sample-panel").scroll_into_view_if_needed()
    shot(page, "page-sample.png", tmp_path)


def test_label_picker_for_a_conditional_run_only_and_late_answers_are_dropped(vae_page):
    page = vae_page
    page.select_option("#run", "vae")
    count(page, "sample-grid", 16)
    page.select_option("#run", "cvae")
    count(page, "sample-grid", 16)
    assert page.locator("#sample-label-box").is_visible() and page.locator("#sample-label option").count() == 10
    before = tiles(page, "sample-grid")
    page.select_option("#sample-label", "7")
    tiles_changed(page, "sample-grid", before)
    # An answer for the conditional run that arrives after the VAE is chosen must not replace the VAE's.
    page.evaluate("""() => { const real = window.fetch; window.lateSent = window.lateDone = false;
        window.fetch = (url, opts) => { if (!String(url).includes('/cvae/sample')) return real(url, opts);
          window.lateSent = true;
          return new Promise((ok) => setTimeout(ok, 1500)).then(() => real(url, opts))
            .then((r) => { setTimeout(() => { window.lateDone = true; }, 300); return r; }); }; }""")
    page.locator("#sample-t").fill("0.2")  # asked of cvae, answered late
    page.wait_for_function("() => window.lateSent")  # sent before the run changes (the slider's calls are spaced)
    page.select_option("#run", "vae")
    count(page, "sample-grid", 16)
    shown = tiles(page, "sample-grid")
    assert page.locator("#sample-label-box").is_hidden()
    page.wait_for_function("() => window.lateDone", timeout=10000)
    assert tiles(page, "sample-grid") == shown
    assert not page.errors, page.errors
