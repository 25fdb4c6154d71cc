"""The page of ``aekit serve`` in a real browser: Playwright for Python driving the system's Chromium.

No browser is downloaded: the tests use /usr/bin/chromium (Debian's package; `.ci/run` installs it)
and skip, saying why, where it or Playwright is missing. Set AEKIT_SCREENSHOTS=DIR to keep the
screenshots (the README's come from here).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import statistics
import threading
import time
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


def serving(root: Path) -> Any:
    """The page over the runs under ``root`` (as a fixture's generator: its URL, then the server stopped)."""
    srv, t, url = start(create_app(runs_root=root, local_only=True))
    yield url
    srv.should_exit = True
    t.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run = tiny_run(root, tmp_path_factory)
    evil = root / "evil"  # the same weights, with markup in the config values the picker shows
    shutil.copytree(run, evil)
    info = json.loads((evil / "config.json").read_text())
    info["data"]["name"] = XSS
    (evil / "config.json").write_text(json.dumps(info))
    yield from serving(root)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def opened(browser, url: str, console: bool = True, failed_responses: bool = False) -> Any:
    """A desktop-sized page at ``url``, once its first reconstruction is scored. ``pg.errors`` collects
    page errors, and console errors and dialogs with ``console``, answers of 400 and above with
    ``failed_responses``; ``pg.requests`` every URL asked for."""
    pg = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    pg.errors, pg.requests = [], []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    if console:
        pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))
        pg.on("dialog", lambda d: (pg.errors.append("dialog: " + d.message), d.dismiss()))
    if failed_responses:
        pg.on("response", lambda r: r.status >= 400 and pg.errors.append(f"{r.status} {r.url}: {r.text()}"))
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.goto(url)
    pg.wait_for_function("() => document.getElementById('score').textContent.length > 0", timeout=20000)
    return pg


@pytest.fixture
def page(browser, server):
    pg = opened(browser, server)
    pg.wait_for_function("() => document.getElementById('psnr-noisy').textContent.length > 0", timeout=20000)
    yield pg
    pg.context.close()


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


def test_every_panel_says_what_it_shows_and_why(page):
    """Each panel opens with a sentence or two of the lecture's idea behind it (the guided path)."""
    panels = page.locator("section.card")
    assert panels.count() >= 7
    for i in range(panels.count()):
        panel = panels.nth(i)
        title = panel.locator("h2").inner_text()
        text = panel.locator("p.explain").inner_text() if panel.locator("p.explain").count() == 1 else ""
        assert len(text.split()) >= 12, f"{title}: {text!r}"
    assert "never taught" in page.locator("#denoise-panel p.explain").inner_text()


def test_run_names_and_config_values_are_text(page):
    texts = page.locator("#run option").all_inner_texts()
    assert any(XSS in t for t in texts), texts
    page.select_option("#run", "evil")
    page.wait_for_function("() => document.getElementById('run-info').textContent.includes('<script>')")
    assert page.locator("#pwned").count() == 0 and not page.errors, page.errors


def test_drawing_a_stroke_changes_the_reconstruction_and_the_code(page):
    code = pixels(page, "code")
    stroke(page)  # waits for the reconstruction to change
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
    yield from serving(root)


@pytest.fixture
def vae_page(browser, vae_server):
    pg = opened(browser, vae_server, failed_responses=True)
    yield pg
    pg.context.close()


def chosen(page, rid: str) -> None:
    """Wait until run ``rid`` is the one shown: until it opens, the panels keep the run shown before."""
    page.wait_for_function(f"() => state.run === {json.dumps(rid)}", timeout=10000)


def count(page, box: str, n: int) -> None:
    page.wait_for_function(f"() => document.querySelectorAll('#{box} canvas').length === {n}", timeout=10000)


def tiles(page, box: str) -> list[str]:
    return page.evaluate(f"[...document.querySelectorAll('#{box} canvas')].map((c) => c.toDataURL())")


def tiles_changed(page, box: str, before: list[str]) -> None:
    page.wait_for_function(f"""() => {{ const now = [...document.querySelectorAll('#{box} canvas')];
        return now.length === {len(before)} && now.some((c, i) => c.toDataURL() !== {json.dumps(before)}[i]); }}""",
                           timeout=10000)


def sampling_with(page, rid: str) -> None:
    """Pick run ``rid`` in the Sample panel's own picker and wait until the panel uses it."""
    page.select_option("#sample-run", rid)
    page.wait_for_function(f"() => panelRun.sample === {json.dumps(rid)}", timeout=10000)


def test_sample_panel_samples_traverses_and_decodes_the_manifold(vae_page, tmp_path):
    page = vae_page
    # The page opens on the plain autoencoder, and the Sample panel on a variational run of its own.
    assert page.locator("#run").input_value() == "ae"
    page.wait_for_function("() => ['vae', 'cvae'].includes(panelRun.sample)")
    assert page.locator("#sample-run option").count() == 2 and page.locator("#sample-offer").is_hidden()
    assert "trained for this" in page.locator("#sample-uses").inner_text()
    sampling_with(page, "vae")
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
    sampling_with(page, "vae")
    count(page, "sample-grid", 16)
    sampling_with(page, "cvae")
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
    sampling_with(page, "vae")
    count(page, "sample-grid", 16)
    shown = tiles(page, "sample-grid")
    assert page.locator("#sample-label-box").is_hidden()
    page.wait_for_function("() => window.lateDone", timeout=10000)
    assert tiles(page, "sample-grid") == shown
    assert not page.errors, page.errors


# -- the walk ------------------------------------------------------------------------------------
def settled(page, *canvas_ids: str) -> list[str]:
    """The canvases' pictures once none has changed for 0.5 s (the answers to a drawing's last
    requests have come), waiting at most 10 s."""
    now = [pixels(page, c) for c in canvas_ids]
    for _ in range(20):
        page.wait_for_timeout(500)
        now, before = [pixels(page, c) for c in canvas_ids], now
        if now == before:
            return now
    raise AssertionError(f"{canvas_ids} kept changing")


def stroke(page) -> None:
    """A diagonal stroke on the drawing pad, then the reconstruction of the drawing."""
    recon = pixels(page, "recon")
    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 40)
    page.mouse.down()
    for i in range(12):
        page.mouse.move(box["x"] + 60 + 15 * i, box["y"] + 40 + 18 * i, steps=2)
    page.mouse.up()
    changed(page, "recon", recon)
    settled(page, "input", "recon")


def pixel(page, canvas_id: str, x: float, y: float) -> list[int]:
    return page.evaluate(f"[...document.getElementById('{canvas_id}').getContext('2d')"
                         f".getImageData({x}, {y}, 1, 1).data]")


def test_a_painted_mask_clears_with_its_button_a_new_image_or_another_mask_kind(page):
    page.locator("#infill-panel").scroll_into_view_if_needed()

    def paint() -> None:
        page.select_option("#mask-kind", "paint")
        page.wait_for_function("() => document.getElementById('psnr-fill').textContent === 'paint a hole'")
        box = page.locator("#masked").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=5)
        page.mouse.up()
        page.wait_for_function("() => document.getElementById('psnr-fill').textContent.endsWith('dB')")

    paint()
    page.locator("#clear-mask").click()  # the button
    page.wait_for_function("() => document.getElementById('psnr-fill').textContent === 'paint a hole'")
    assert page.evaluate("document.getElementById('filled').getContext('2d').getImageData(0, 0, 28, 28)"
                         ".data.every((v) => v === 0)")  # no fill shown for no hole
    paint()
    page.locator("#pick-index").fill("7")  # another image
    page.locator("#pick").click()
    page.wait_for_function("() => document.getElementById('psnr-fill').textContent === 'paint a hole'")
    paint()
    page.select_option("#mask-kind", "center:12")  # another kind, and back: the old hole is gone
    page.wait_for_function("() => document.getElementById('psnr-fill').textContent.endsWith('dB')")
    page.select_option("#mask-kind", "paint")
    page.wait_for_function("() => document.getElementById('psnr-fill').textContent === 'paint a hole'")
    assert not page.errors, page.errors


def test_the_pad_and_the_mask_are_drawn_on_from_the_keyboard(page, tmp_path):
    """Tab reaches the pad; Space lowers the pen, the arrows draw, Space lifts it and the drawing is
    reconstructed. On the masked image, Space paints the square under the cursor and the fill follows."""
    page.locator("#clear").click()
    settled(page, "recon")
    recon = pixels(page, "recon")
    page.locator("#clear").focus()
    page.keyboard.press("Shift+Tab")  # the pad comes just before its Clear button
    assert page.evaluate("document.activeElement.id") == "draw"
    assert page.locator(".key-cursor").first.is_visible()
    page.keyboard.down("Space")
    page.keyboard.down("Space")  # held: the second is a repeat, which presses nothing more
    page.keyboard.up("Space")
    assert "pen down" in page.locator("#draw").get_attribute("aria-label")
    for _ in range(3):
        page.keyboard.press("Shift+ArrowDown")  # 4 image pixels each: from row 14 to row 26
    shot(page, "page-keyboard-pad.png", tmp_path)  # the cursor, filled while the pen is down
    page.keyboard.press("Space")
    assert "pen up" in page.locator("#draw").get_attribute("aria-label")
    changed(page, "recon", recon)
    # the pad shows a vertical stroke down column 14 (pad pixels 140-150) and nothing far from it
    assert pixel(page, "draw", 145, 200)[0] > 200 and pixel(page, "draw", 60, 200)[0] == 0
    page.locator("#infill-panel").scroll_into_view_if_needed()
    page.select_option("#mask-kind", "paint")
    page.wait_for_function("() => document.getElementById('psnr-fill').textContent === 'paint a hole'")
    page.locator("#masked").focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('psnr-fill').textContent.endsWith('dB')")
    assert page.locator("#mask-kind").input_value() == "paint"
    assert page.evaluate("document.activeElement.id") == "masked"
    page.locator("#clear").focus()
    page.locator("#draw").scroll_into_view_if_needed()
    stroke(page)  # a pointer draws without focusing the pad, so its keys stay the page's
    assert page.evaluate("document.activeElement.id") != "draw"
    assert not page.errors, page.errors


def test_clicking_the_latent_map_decodes_once_marks_the_point_and_a_legend_names_the_colours(page):
    page.wait_for_function("() => state.latent !== null")
    legend = page.locator("#latent-legend li").all_inner_texts()
    assert legend == [str(d) for d in range(10)], legend  # mnist-mini's labels
    # An empty spot: the canvas pixel at least 12 pixels from every test code.
    x, y = page.evaluate("""() => { const c = document.getElementById('latent');
        for (let y = 20; y < c.height - 20; y += 4) for (let x = 20; x < c.width - 20; x += 4)
          if (nearest(x, y)[1] > 12) return [x, y];
        return null; }""")
    page.locator("#latent").scroll_into_view_if_needed()
    box = page.locator("#latent").bounding_box()
    scale = box["width"] / page.evaluate("document.getElementById('latent').width")
    page.mouse.click(box["x"] + x * scale, box["y"] + y * scale)
    page.wait_for_function("() => document.getElementById('hover-label').textContent.startsWith('decoded (')")
    assert page.locator("#hover-img").is_visible() and page.locator("#hover-recon").is_hidden()  # shown once
    mx, my = page.evaluate("state.latent.mark")  # where the page took the click to be
    assert abs(mx - x) < 2 and abs(my - y) < 2, (mx, my, x, y)  # the map is drawn square, as it is clicked
    assert pixel(page, "latent", int(mx) + 9, int(my)) == [0, 0, 0, 255]  # the marker's cross
    assert not page.errors, page.errors


def test_every_test_image_can_be_picked_and_the_inputs_say_the_range(page):
    assert page.locator("#pick-range").inner_text() == "0\u2013999"  # mnist-mini's 1,000 test images
    assert page.locator("#blend-range").inner_text() == "0\u2013999"
    assert [page.get_attribute(f"#{i}", "max") for i in ("pick-index", "blend-a", "blend-b")] == ["999"] * 3
    before = pixels(page, "input")
    page.locator("#pick-index").fill("999")
    page.locator("#pick").click()
    changed(page, "input", before)
    assert "error" not in (page.locator("#status").get_attribute("class") or "")
    assert not page.errors, page.errors


def test_runs_are_labelled_by_their_architecture(page):
    assert page.locator("#run option[value=tiny]").inner_text().startswith("tiny: mlp 784-64-2-64-784, mnist-mini")
    assert page.locator("#run-info").inner_text().startswith("mlp 784-64-2-64-784, data ")  # not "layers [64]"


def test_a_dark_on_light_upload_is_inverted_and_shown_as_the_model_input(page, tmp_path):
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (90, 150), "white")  # a black "1" on white, taller than wide
    ImageDraw.Draw(im).rectangle([38, 20, 51, 129], fill="black")
    im.save(tmp_path / "one.png")
    before = pixels(page, "input")
    page.set_input_files("#upload", str(tmp_path / "one.png"))
    changed(page, "input", before)
    note = page.locator("#input-note").inner_text()
    assert "inverted: dark on light" in note and "colour made grey" in note and "aspect ratio kept" in note, note
    assert pixel(page, "input", 2, 14)[:3] == [0, 0, 0]  # the padding and background: the training images' black
    assert min(pixel(page, "input", 13, 14)[:3]) > 200  # the stroke: white
    page.locator("#pick").click()  # a test image: the note was about the upload
    page.wait_for_function("() => document.getElementById('input-note').textContent === ''")
    assert not page.errors, page.errors


# A server of its own for the tests that add runs and jobs: a classifier run and one whose weights are
# damaged beside a good one, and jobs the tests drive themselves (no training: events from their files).
class Lab:
    def __init__(self, url: str, root: Path, app: Any) -> None:
        self.url, self.root, self.app = url, root, app


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from tests.servehelp import as_classifier, with_broken_weights

    root = tmp_path_factory.mktemp("lab-runs")
    run = tiny_run(root, tmp_path_factory)
    as_classifier(run, root / "x-clf")  # named to sort after the good run, which the page opens
    with_broken_weights(run, root / "x-broken")
    app = create_app(runs_root=root, local_only=True)
    srv, t, url = start(app)
    yield Lab(url, root, app)
    srv.should_exit = True
    t.join(10)


@pytest.fixture
def lab_page(browser, lab):
    pg = opened(browser, lab.url, console=False)  # its broken and classifier runs are refused: 4xx in the console
    yield pg
    pg.context.close()


class FakeJob:
    """A job in the lab server's queue whose epochs, end and run the test writes: the page cannot tell
    it from a training process (its events come from the same files), and no test waits for training."""

    def __init__(self, lab: Lab, epochs: int) -> None:
        from aekit.serve.jobs import Job

        queue = lab.app.app.state.queue
        jid = next(queue._ids)
        out = lab.root / f"serve-fake-{jid}"
        out.mkdir()
        shutil.copy(lab.root / "tiny" / "config.json", out)  # what the loss measures; no weights: not a run yet
        self.lab, self.job = lab, Job(jid, "simplest", "mnist-mini", epochs, out, status="running")
        queue.jobs[jid] = self.job
        self.rows = ["epoch,train_loss,val_loss"]

    def epoch(self, train: float, val: float) -> None:
        self.rows.append(f"{len(self.rows)},{train},{val}")
        (self.job.out / "metrics.csv").write_text("\n".join(self.rows) + "\n")

    def finish(self) -> str:
        shutil.copytree(self.lab.root / "tiny", self.job.out, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.lock", "last", "metrics.csv"))
        self.job.run_id = self.lab.app.app.state.store.add(self.job.out)
        self.job.status = "done"
        return self.job.run_id

    def end(self) -> None:
        if self.job.status == "running":
            self.job.status = "cancelled"


def start_from_the_page(pg, job: FakeJob) -> None:
    """The Start button, its POST answered with ``job`` instead of a new training process."""
    answer = json.dumps(job.job.public())
    pg.route("**/api/jobs", lambda route: route.fulfill(status=200, content_type="application/json", body=answer)
             if route.request.method == "POST" else route.continue_())
    pg.locator("#train").click()


def test_classifier_runs_are_not_offered_and_a_run_that_fails_to_open_leaves_the_page_whole(lab_page, lab):
    pg = lab_page
    clf = pg.locator("#run option[value=x-clf]")
    assert clf.is_disabled() and "classifier run" in clf.inner_text(), clf.inner_text()
    info, recon = pg.locator("#run-info").inner_text(), pixels(pg, "recon")
    pg.select_option("#run", "x-broken")  # listed (its config.json is fine), but its weights are damaged
    pg.wait_for_function("() => document.getElementById('status').textContent.includes('could not be opened')")
    status = pg.locator("#status").inner_text()
    assert status.startswith("x-broken could not be opened: x-broken/model.safetensors") and str(lab.root) not in status
    assert pg.locator("#run").input_value() == "tiny" and pg.locator("#run-info").inner_text() == info
    assert pixels(pg, "recon") == recon and not pg.errors, pg.errors


def test_a_reloaded_page_follows_the_running_job_and_adds_its_run(lab_page, lab):
    pg, job = lab_page, FakeJob(lab, epochs=2)
    try:
        job.epoch(0.06, 0.055)
        pg.reload()  # during the job: the page asks the server what runs
        pg.wait_for_function("() => document.getElementById('score').textContent.length > 0", timeout=20000)
        pg.wait_for_function("() => document.getElementById('job-status').textContent.includes('epoch 1/2')")
        assert f"#{job.job.id} simplest, 2 epochs: running" in pg.locator("#jobs").inner_text()
        job.epoch(0.05, 0.045)
        rid = job.finish()
        pg.wait_for_function("() => /done, epoch 2\\/2/.test(document.getElementById('job-status').textContent)")
        pg.wait_for_function(f"() => [...document.querySelectorAll('#run option')].some((o) => o.value === '{rid}')")
        pg.wait_for_function("() => document.querySelectorAll('#jobs button').length === 0")  # no Cancel for good
        assert f"#{job.job.id} simplest, 2 epochs: done" in pg.locator("#jobs").inner_text()
        assert pg.locator("#job-preview canvas").count() == 12 and not pg.errors, pg.errors
    finally:
        job.end()


def test_a_finished_job_keeps_the_drawing_on_the_pad(lab_page, lab):
    pg = lab_page
    stroke(pg)
    drawing, shown = pixels(pg, "draw"), pixels(pg, "input")
    job = FakeJob(lab, epochs=1)
    try:
        start_from_the_page(pg, job)
        job.epoch(0.06, 0.055)
        rid = job.finish()
        pg.wait_for_function(f"() => [...document.querySelectorAll('#run option')].some((o) => o.value === '{rid}')")
        pg.wait_for_timeout(1500)  # time enough for a run to be opened again and a test image picked
        assert pixels(pg, "draw") == drawing and pixels(pg, "input") == shown
        assert pg.locator("#run").input_value() == "tiny" and not pg.errors, pg.errors
    finally:
        job.end()


def test_the_loss_chart_has_axes_a_legend_and_the_status_line_both_losses(lab_page, lab, tmp_path):
    pg = lab_page
    job = FakeJob(lab, epochs=4)
    try:
        job.epoch(0.0612, 0.0583)
        job.epoch(0.0451, 0.0437)
        start_from_the_page(pg, job)
        pg.wait_for_function("() => document.getElementById('job-status').textContent.includes('epoch 2/4')")
        status = pg.locator("#job-status").inner_text()
        assert "train 0.04510, validation 0.04370 (MSE per value)" in status, status
        assert pg.locator("#loss-legend").inner_text().split("\n") == ["train loss", "validation loss"]
        label = pg.get_attribute("#loss", "aria-label")
        assert label == ("train and validation loss (MSE per value) per epoch, epochs 1 to 4, "
                         "loss axis 0.040 to 0.065"), label
        # Ticks and their numbers left of the plot and below it, not only the two lines.
        ink = pg.evaluate("""() => { const c = document.getElementById('loss'), d = c.getContext('2d');
            const inked = (x, y, w, h) => [...d.getImageData(x, y, w, h).data].filter((v, i) => i % 4 === 3 && v)
              .length;
            return [inked(0, 0, 50, c.height - 40), inked(56, c.height - 36, c.width - 60, 36)]; }""")
        assert ink[0] > 50 and ink[1] > 50, ink
        pg.locator("#train-panel").scroll_into_view_if_needed()
        shot(pg, "page-train.png", tmp_path)
        assert not pg.errors, pg.errors
    finally:
        job.end()


def test_runs_trained_beside_the_server_join_and_leave_the_picker(lab_page, lab, tmp_path_factory):
    pg = lab_page
    stroke(pg)
    drawing = pixels(pg, "draw")
    n = pg.locator("#run option").count()
    tiny_run(lab.root, tmp_path_factory, "cli-run")  # `aekit train --out runs/cli-run` while the page is open
    try:
        pg.wait_for_function("() => [...document.querySelectorAll('#run option')].some((o) => o.value === 'cli-run')",
                             timeout=10000)  # the page looks every few seconds
        assert pg.locator("#run option").count() == n + 1
        assert pg.locator("#run").input_value() == "tiny" and pixels(pg, "draw") == drawing  # nothing else moved
    finally:
        shutil.rmtree(lab.root / "cli-run")
    pg.evaluate("window.dispatchEvent(new Event('focus'))")  # or at once, when the tab gets the focus
    pg.wait_for_function(f"() => document.querySelectorAll('#run option').length === {n}", timeout=2000)
    assert not pg.errors, pg.errors


# -- the right model for each panel, the Linear and Classify panels (issue 23) ---------------------------
@pytest.fixture(scope="module")
def panel_server(tmp_path_factory):
    """A run for every panel: a plain autoencoder, runs trained to denoise and to infill, a VAE and the
    classifier pair (fine-tuned from an autoencoder's encoder, and the same network from a random start)."""
    from tests.servehelp import panel_runs

    yield from serving(panel_runs(tmp_path_factory.mktemp("panel-runs"), tmp_path_factory))


@pytest.fixture
def panel_page(browser, panel_server):
    pg = opened(browser, panel_server, failed_responses=True)
    pg.wait_for_function("() => document.querySelectorAll('#probs-random meter').length === 10", timeout=20000)
    yield pg
    pg.context.close()


def text(page, element_id: str) -> str:
    return page.locator(f"#{element_id}").inner_text()


def test_each_panel_names_the_run_it_uses_and_whether_it_was_trained_for_its_task(panel_page, tmp_path):
    pg = panel_page
    assert pg.locator("#run").input_value() == "ae"  # the plain autoencoder at the top
    for panel in ("draw", "blend", "latent"):
        assert text(pg, f"{panel}-uses").startswith("using ae (mlp 784-64-2-64-784): the model picked at the top")
    pg.wait_for_function("() => document.getElementById('linear-uses').textContent.length > 0")
    assert text(pg, "linear-uses").startswith("using ae (picked at the top): its 2-number code beside PCA with 2 ")
    assert text(pg, "denoise-uses") == "using den (mlp 784-64-8-64-784), trained for this (with gaussian:0.3 noise)."
    assert text(pg, "infill-uses") == "using inf (mlp 784-64-8-64-784), trained for this (with block:12 noise)."
    assert text(pg, "sample-uses") == "using vae (vae 784-32-2-32-784), trained for this."
    for panel in ("denoise", "infill", "sample", "classify"):
        assert pg.locator(f"#{panel}-offer").is_hidden(), panel
    # Denoise shows the noise its run was trained with, and offers the plain model too, saying what it is.
    assert pg.locator("#noise-kind").input_value() == "gaussian" and pg.locator("#noise-level").input_value() == "0.3"
    options = pg.locator("#denoise-run option").all_inner_texts()
    assert options[0] == "den: mlp 784-64-8-64-784, trained for this", options
    assert "ae: mlp 784-64-2-64-784, never trained for this" in options[1:]
    assert all(o.endswith("never trained for this") for o in options[1:]) and len(options) == 4  # ae, inf, vae
    classify = text(pg, "classify-uses")
    assert classify.startswith("using clf-pre (fine-tuned, 1000 labels, test accuracy ") and \
        "beside clf-rand (random start, 1000 labels, test accuracy " in classify, classify
    psnr = text(pg, "psnr-model")
    pg.select_option("#denoise-run", "ae")  # a model never trained to denoise: the panel says so
    pg.wait_for_function("() => document.getElementById('denoise-uses').textContent.startsWith('this model was "
                         "never trained to denoise: ae')")
    pg.wait_for_function(f"() => document.getElementById('psnr-model').textContent !== {json.dumps(psnr)}")
    assert pg.locator("#denoise-offer").is_hidden()  # a denoising run is served: nothing to offer
    assert pg.locator("#run").input_value() == "ae" and not pg.errors, pg.errors
    shot(pg, "page-panels.png", tmp_path)


def test_the_infill_iterations_start_at_the_runs_own_passes_until_moved(browser, tmp_path_factory):
    """A run trained on the centre hole fills in one pass (later passes drift from its first guess),
    another infilling run in 20; once the user moves the slider, a new run keeps the user's value."""
    root = tmp_path_factory.mktemp("infill-runs")
    for name, noise in (("blk", "block:12"), ("ctr", "center:10")):  # ctr written last: the newest
        d = tiny_run(root, tmp_path_factory, name)
        info = json.loads((d / "config.json").read_text())
        info["run"]["train"]["noise"] = noise
        (d / "config.json").write_text(json.dumps(info))
        os.utime(d / "config.json", (time.time() + (name == "ctr"),) * 2)
    gen = serving(root)
    pg = opened(browser, next(gen), failed_responses=True)
    try:
        iters = "document.getElementById('iters').value"
        pg.wait_for_function(f"() => {iters} === '1' && document.getElementById('iters-text').textContent === '1'")
        pg.select_option("#infill-run", "blk")
        pg.wait_for_function(f"() => {iters} === '20'")
        pg.locator("#iters").fill("5")
        pg.select_option("#infill-run", "ctr")
        pg.wait_for_function("() => document.getElementById('infill-uses').textContent.startsWith('using ctr')")
        assert pg.locator("#iters").input_value() == "5" and not pg.errors, pg.errors
    finally:
        pg.context.close()
        next(gen, None)


def test_classify_shows_both_classifiers_probabilities_with_their_test_accuracy(panel_page, tmp_path):
    pg = panel_page
    for box, title in (("probs-pre", "classify-pre-title"), ("probs-random", "classify-random-title")):
        values = pg.evaluate(f"[...document.querySelectorAll('#{box} meter')].map((m) => m.value)")
        assert len(values) == 10 and sum(values) == pytest.approx(1, abs=1e-3), values
        labels = pg.locator(f"#{box} label").all_inner_texts()
        assert [t.strip() for t in labels] == [str(d) for d in range(10)]  # each bar named by its digit
        assert pg.locator(f"#{box} .top").count() == 1  # the most likely digit marked
        assert "test accuracy " in text(pg, title) and text(pg, title).endswith("%"), text(pg, title)
    before = pg.evaluate("[...document.querySelectorAll('#probs-pre meter')].map((m) => m.value)")
    stroke(pg)  # a drawing is classified too
    pg.wait_for_function(f"""() => JSON.stringify([...document.querySelectorAll('#probs-pre meter')]
        .map((m) => m.value)) !== {json.dumps(json.dumps(before))}""")
    pg.locator("#classify-panel").scroll_into_view_if_needed()
    shot(pg, "page-classify.png", tmp_path)
    assert not pg.errors, pg.errors


def test_the_linear_panel_shows_pca_beside_the_model_with_both_errors(panel_page):
    pg = panel_page
    pg.wait_for_function("() => document.getElementById('sse-model').textContent.startsWith('squared error')")
    shown = [float(text(pg, i).split()[-1]) for i in ("sse-pca", "sse-model")]
    answer = pg.evaluate("""async () => { const r = await fetch('/api/runs/ae/pca', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({image: state.image.data})});
        return r.json(); }""")
    assert shown == [round(answer["sse_pca"], 2), round(answer["sse_model"], 2)]
    assert text(pg, "linear-k") == "2" and answer["fit_images"] == 5400  # mnist-mini's training split
    assert pg.evaluate("document.getElementById('linear-pca').width") == 28
    assert "lower than" in text(pg, "linear-verdict")
    assert not pg.errors, pg.errors


def test_panels_without_a_run_for_their_task_say_what_it_would_show_and_offer_one(page):
    # the `page` server serves two plain autoencoders: no run was trained to denoise, infill, sample or classify
    top = page.evaluate("state.run")  # the run picked at the top, which Denoise and Infill then use
    assert text(page, "denoise-uses").startswith(f"this model was never trained to denoise: {top} (mlp ")
    assert "never trained to fill in hidden squares" in text(page, "infill-uses")
    assert text(page, "sample-uses").startswith("No variational run is served.")
    assert text(page, "classify-uses").startswith("No classifier run is served.")
    for panel in ("denoise", "infill", "sample", "classify"):
        assert page.locator(f"#{panel}-offer").is_visible(), panel
    assert page.locator("#classify-run").is_disabled() and text(page, "probs-pre") == "no fine-tuned encoder " \
        "classifier is served"
    sent = []

    def answer(route):
        if route.request.method != "POST":
            return route.continue_()
        sent.append(json.loads(route.request.post_data))
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps({"id": 99, "preset": "classifier", "status": "queued", "queued": [97, 98, 99]}))

    page.route("**/api/jobs", answer)
    # The offer hides on the click; the real server's job list (no job) may show it again soon after, so
    # the hiding is recorded as it happens rather than polled for (a busy machine missed the moment).
    page.evaluate("""() => { const o = document.getElementById('classify-offer'); window.offerHidden = false;
        new MutationObserver(() => { if (o.hidden) window.offerHidden = true; }).observe(o, {attributes: true}); }""")
    page.locator("#classify-offer").click()  # the pair: an autoencoder, then both classifiers
    page.wait_for_function("() => window.offerHidden")
    for _ in range(200):  # the POST that follows reaches the route handler while Playwright waits
        if sent:
            break
        page.wait_for_timeout(50)
    assert sent == [{"preset": "classifier"}]
    assert not page.errors, page.errors


def test_a_panel_says_its_run_is_training_then_switches_to_it(lab_page, lab, tmp_path_factory):
    from tests.servehelp import tiny_task_run

    pg = lab_page
    assert pg.locator("#denoise-offer").is_visible()
    stroke(pg)
    drawing = pixels(pg, "draw")
    job = FakeJob(lab, epochs=2)
    job.job.preset = "denoising"  # what the Denoise panel's button queues
    try:
        answer = json.dumps(job.job.public())
        pg.route("**/api/jobs", lambda route: route.fulfill(status=200, content_type="application/json", body=answer)
                 if route.request.method == "POST" else route.continue_())
        pg.locator("#denoise-offer").click()
        pg.wait_for_function(f"() => document.getElementById('denoise-uses').textContent"
                             f".includes('A denoising run is being trained now: job #{job.job.id}, running')")
        assert pg.locator("#denoise-offer").is_hidden()
        tiny_task_run(lab.root, tmp_path_factory, "denoise", "x-den")  # the job's run
        job.job.status = "done"
        pg.wait_for_function("() => panelRun.denoise === 'x-den'", timeout=10000)
        assert text(pg, "denoise-uses").startswith("using x-den (mlp 784-64-8-64-784), trained for this")
        pg.wait_for_function("() => document.getElementById('psnr-model').textContent.endsWith('dB')")
        assert pg.locator("#run").input_value() == "tiny" and pixels(pg, "draw") == drawing  # nothing else moved
    finally:
        job.end()
        shutil.rmtree(lab.root / "x-den", ignore_errors=True)
    assert not pg.errors, pg.errors


# -- looks like a product: the visual system, placeholders, names, hover values, never stale ---------------------
def luminance(rgb: str) -> float:
    """The relative luminance (WCAG) of a computed CSS colour ``rgb(r, g, b)``."""
    r, g, b = (int(v) / 255 for v in re.findall(r"[\d.]+", rgb)[:3])
    lin = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


# The pairs of colours a reader must tell apart: text on the page and on a card, muted text, links, and a
# chart's ink (ticks, numbers, axis names) on a chart's background.
PAIRS = {"text on the page": ("--text", "--bg"), "text on a card": ("--text", "--surface"),
         "muted text on a card": ("--muted", "--surface"), "a link on a card": ("--accent", "--surface"),
         "an error on a card": ("--error", "--surface"), "chart ink": ("--chart-ink", "--chart-bg"),
         "the train line": ("--series-1", "--chart-bg"), "the validation line": ("--series-2", "--chart-bg"),
         "the latent map's marker": ("--marker", "--chart-bg")}


def colours(pg) -> dict[str, str]:
    """Each custom property of PAIRS as the browser computes it (rgb(...))."""
    names = sorted({n for pair in PAIRS.values() for n in pair})
    return pg.evaluate("""(names) => Object.fromEntries(names.map((n) => { const e = document.createElement('i');
        e.style.color = `var(${n})`; document.body.append(e); const c = getComputedStyle(e).color; e.remove();
        return [n, c]; }))""", names)


def canvas_ink(pg, canvas_id: str) -> float:
    """The mean luminance of the text and ticks a chart drew (its opaque pixels left of the plot)."""
    return pg.evaluate(f"""() => {{ const c = document.getElementById('{canvas_id}'), d = c.getContext('2d')
        .getImageData(0, 0, 40, c.height).data; let s = 0, n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 200) {{
          const l = (v) => {{ v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }};
          s += 0.2126 * l(d[i]) + 0.7152 * l(d[i + 1]) + 0.0722 * l(d[i + 2]); n++; }}
        return n ? s / n : -1; }}""")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_one_visual_system_in_light_and_dark_with_readable_charts(browser, server, scheme, tmp_path):
    """Colours from custom properties with readable contrast (4.5:1 for text, 3:1 for lines) in both schemes;
    with prefers-color-scheme: dark the page is dark, its text light, and the charts draw light ink."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
    pg = ctx.new_page()
    pg.goto(server)
    pg.wait_for_function("() => document.getElementById('score').textContent.length > 0", timeout=20000)
    pg.wait_for_function("() => state.latent !== null")
    c = colours(pg)
    for what, (fg, bg) in PAIRS.items():
        need = 4.5 if what.startswith(("text", "muted", "a link", "an error", "chart ink")) else 3.0
        assert contrast(c[fg], c[bg]) >= need, (scheme, what, c[fg], c[bg], contrast(c[fg], c[bg]))
    body = pg.evaluate("[getComputedStyle(document.body).backgroundColor, getComputedStyle(document.body).color]")
    card = pg.evaluate("getComputedStyle(document.querySelector('.card')).backgroundColor")
    chart_bg = pg.evaluate("getComputedStyle(document.getElementById('code')).backgroundColor")
    ink = canvas_ink(pg, "code")  # the code chart's value ticks and axis name
    if scheme == "dark":
        assert luminance(body[0]) < 0.05 and luminance(card) < 0.05 and luminance(chart_bg) < 0.05, (body, card)
        assert luminance(body[1]) > 0.6 and ink > 0.4, (body, ink)
    else:
        assert luminance(body[0]) > 0.8 and luminance(body[1]) < 0.05 and 0 <= ink < 0.15, (body, ink)
    # one type scale and one spacing scale: every heading, paragraph and control takes its size from them
    sizes = set(pg.evaluate("[...document.querySelectorAll('main h2, main p, main figcaption, main label, main "
                            "button, main select')].map((e) => getComputedStyle(e).fontSize)"))
    scale = {pg.evaluate(f"getComputedStyle(document.documentElement).getPropertyValue('--text-{k}').trim()")
             for k in ("xs", "sm", "base", "lg", "xl")}
    assert sizes <= scale, (sizes, scale)
    shot(pg, f"page-desktop-{scheme}.png", tmp_path)
    ctx.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_no_empty_gaps_between_the_panels(browser, server, width):
    """The panels fill each line of the page edge to edge, share its height, and the lines follow one
    another a gap apart: no empty column, no hole, and nothing wider than the screen."""
    ctx = browser.new_context(viewport={"width": width, "height": 844})
    pg = ctx.new_page()
    pg.goto(server)
    pg.wait_for_function("() => document.getElementById('score').textContent.length > 0", timeout=20000)
    pg.wait_for_function("() => state.latent !== null")
    # a run with a long name (the demo set's are 40 characters) in every picker: it must not widen a panel
    pg.evaluate("() => document.querySelectorAll('select').forEach((s) => s.add(new Option('r-' + 'x'.repeat(90))))")
    cards = pg.evaluate("""() => [...document.querySelectorAll('main > .card')].filter((c) => !c.hidden)
        .map((c) => { const b = c.getBoundingClientRect();
          return [c.id, b.left, b.right, b.top + scrollY, b.height]; })""")
    main = pg.evaluate("""() => { const m = document.querySelector('main'), b = m.getBoundingClientRect(),
        s = getComputedStyle(m); return [b.left + parseFloat(s.paddingLeft), b.right - parseFloat(s.paddingRight),
        parseFloat(s.rowGap)]; }""")
    lines: list[list] = []
    for card in cards:
        if lines and abs(card[3] - lines[-1][0][3]) < 1:
            lines[-1].append(card)
        else:
            lines.append([card])
    for line in lines:
        assert abs(line[0][1] - main[0]) < 1.5 and abs(line[-1][2] - main[1]) < 1.5, (width, line, main)
        assert max(c[4] for c in line) - min(c[4] for c in line) < 1.5, (width, line)  # one height: no hole below
    for before, after in itertools.pairwise(lines):
        assert after[0][3] - (before[0][3] + before[0][4]) < main[2] + 1.5, (width, before, after)
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    wide = pg.evaluate("[...document.querySelectorAll('main > .card')].filter((c) => c.scrollWidth > c.clientWidth + 1)"
                       ".map((c) => c.id)")
    assert not wide, wide  # nothing inside a panel runs past its edge
    if width < 500:
        assert all(len(line) == 1 for line in lines)  # one panel a line on a phone
    ctx.close()


def held_page(browser, server, pattern: str) -> tuple[Any, list, dict]:
    """A page whose API requests matching ``pattern`` are held (Playwright's route interception) until the
    test answers them, while ``mode["hold"]``; returns it with the held routes and the mode, once the
    first is held."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    held: list = []
    mode = {"hold": True}
    pg.route(re.compile(pattern), lambda r: held.append(r) if mode["hold"] else r.continue_())
    pg.goto(server)
    wait_for(pg, lambda: held)
    return pg, held, mode


def wait_for(pg, ready, timeout: float = 20.0) -> None:
    """Wait, letting the page and its routes run, until ``ready()`` is true."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "timed out"
        pg.wait_for_timeout(50)


def slots(pg) -> dict[str, list]:
    """Every output canvas shown: its state (None once drawn), its words and whether the canvas shows."""
    return {c[0]: c[1:] for c in pg.evaluate("""() => [...document.querySelectorAll('main canvas')]
        .filter((c) => !c.classList.contains('pad') && !c.closest('[hidden]'))
        .map((c) => { const s = c.parentElement, w = s.querySelector('.placeholder');
          return [c.id, s.dataset.state || null, w ? w.textContent : null, getComputedStyle(c).visibility,
                  w ? getComputedStyle(w).display : null]; })""")}


LOADING = "loading\u2026"
PANEL_CALLS = r"/api/runs/[^/]+/(reconstruct|denoise|inpaint|interpolate|latent|pca)$"  # what fills the pictures
FIRST_ANSWERED = ["input", "recon", "errmap", "code", "noisy", "denoised", "baseline", "masked", "filled", "meanfill",
                  "blend-decoded", "blend-fade", "latent"]


def test_every_picture_says_loading_until_its_first_answer_and_shows_an_error_in_place(browser, server, tmp_path):
    pg, held, mode = held_page(browser, server, PANEL_CALLS)
    now = slots(pg)
    for cid in FIRST_ANSWERED:  # words in a box of the picture's size, the canvas itself not shown
        assert now[cid][:4] == ["loading", LOADING, "hidden", "flex"], (cid, now[cid])
    assert now["hover-img"][:2] == ["idle", "hover a point of the map"] and now["loss"][0] == "idle"
    assert all(state is not None for state, *_ in now.values()), now  # no blank canvas anywhere
    box = pg.locator("#recon").locator("xpath=..").bounding_box()  # the placeholder is light, not a black box
    from PIL import Image

    pg.screenshot(path=str(tmp_path / "loading.png"), clip=box)
    from PIL import ImageStat

    assert ImageStat.Stat(Image.open(tmp_path / "loading.png").convert("L")).mean[0] > 180
    # The reconstruction refused: its four pictures say why, in place; the other panels still ask.
    recon = next(r for r in held if r.request.url.endswith("/reconstruct"))
    recon.fulfill(status=422, content_type="application/json", body=json.dumps({"detail": "refused for the test"}))
    pg.wait_for_function("() => document.getElementById('recon').parentElement.dataset.state === 'error'")
    now = slots(pg)
    for cid in ("input", "recon", "errmap", "code"):
        assert now[cid][:3] == ["error", "refused for the test", "hidden"], (cid, now[cid])
    wait_for(pg, lambda: any(r.request.url.endswith("/denoise") for r in held))
    assert slots(pg)["noisy"][:2] == ["loading", LOADING]
    denoise = next(r for r in held if r.request.url.endswith("/denoise"))
    denoise.fulfill(status=422, content_type="application/json", body=json.dumps({"detail": "no noise today"}))
    pg.wait_for_function("() => document.getElementById('noisy').parentElement.dataset.state === 'error'")
    assert [slots(pg)[c][1] for c in ("noisy", "denoised", "baseline")] == ["no noise today"] * 3
    mode["hold"] = False
    for r in held:
        if r is not recon and r is not denoise:
            r.continue_()
    pg.wait_for_function("() => state.latent !== null && !document.getElementById('blend-decoded')"
                         ".parentElement.dataset.state", timeout=20000)
    assert slots(pg)["masked"][0] is None and slots(pg)["latent"][0] is None  # drawn: the words are gone
    assert not pg.errors, pg.errors
    pg.context.close()


def test_a_conditional_run_at_the_top_leaves_no_picture_of_the_run_before(vae_page):
    """A conditional VAE encodes only with each image's label: the pictures of the run shown before give way
    to a line saying so (not the old run's outputs under the new run's name), and come back with another run."""
    page = vae_page
    page.wait_for_function("() => state.latent !== null")
    page.select_option("#run", "cvae")
    chosen(page, "cvae")
    now = slots(page)
    for cid in ("input", "recon", "errmap", "code", "blend-decoded", "blend-fade", "latent"):
        assert now[cid][0] == "idle" and "cvae is a conditional VAE" in now[cid][1], (cid, now[cid])
    assert page.locator("#score").inner_text() == ""
    page.select_option("#run", "ae")
    chosen(page, "ae")
    page.wait_for_function("() => state.latent !== null && !document.getElementById('recon').parentElement"
                           ".dataset.state && !document.getElementById('latent').parentElement.dataset.state")
    assert not page.errors, page.errors


INTERACTIVE = {"button", "checkbox", "combobox", "link", "listbox", "menuitem", "radio", "searchbox", "slider",
               "spinbutton", "switch", "tab", "textbox", "img"}


def unnamed(snapshot: str) -> list[str]:
    """The lines of an ARIA snapshot (Playwright's YAML) whose node has an interactive role (or is a picture)
    and no accessible name."""
    bad = []
    for line in snapshot.splitlines():
        m = re.match(r"\s*- '?([a-z]+)(?: \"(.*?)\")?", line)
        if m and m[1] in INTERACTIVE and not (m[2] or "").strip():
            bad.append(line.strip())
    return bad


def test_every_control_has_a_name_in_the_accessibility_tree(page, vae_page):
    page.wait_for_function("() => state.latent !== null")
    for pg in (page, vae_page):
        snap = pg.locator("body").aria_snapshot()
        assert "combobox \"noise\"" in snap and "slider \"level\"" in snap and "button \"PNG\"" in snap, snap
        assert not unnamed(snap), unnamed(snap)
    snap = vae_page.locator("#sample-panel").aria_snapshot()
    assert 'spinbutton "count"' in snap and 'slider "temperature"' in snap and 'combobox "traverse"' in snap, snap
    vae_page.wait_for_function("() => state.manifold !== null")  # the manifold, from the keyboard too
    codes = vae_page.evaluate("state.manifold.codes")
    vae_page.locator("#manifold").focus()
    vae_page.keyboard.press("ArrowRight")  # the top-left cell first, then one to the right
    vae_page.keyboard.press("ArrowRight")
    z = codes[0][1]
    vae_page.wait_for_function(f"() => document.getElementById('manifold-label').textContent === "
                               f"'decoded z = ({z[0]:.2f}, {z[1]:.2f})'")
    assert 'img "test codes in 2-D' in page.locator("#latent-panel").aria_snapshot()  # a canvas you use is named


def test_every_control_is_reached_with_tab_in_the_order_of_the_page(page):
    page.wait_for_function("() => state.latent !== null")
    n = page.evaluate("""() => { const all = [...document.querySelectorAll(
        'a[href], button, input, select, textarea, [tabindex]')].filter((e) => !e.disabled && e.tabIndex >= 0
        && e.checkVisibility({ visibilityProperty: true }));
      all.forEach((e, i) => { e.dataset.tabProbe = String(i); }); return all.length; }""")
    assert page.evaluate("[...document.querySelectorAll('[tabindex]')].every((e) => e.tabIndex <= 0)")
    page.focus("#run")
    order = [page.evaluate("document.activeElement.dataset.tabProbe")]
    for _ in range(n - 1):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.dataset.tabProbe"))
    assert order == [str(i) for i in range(n)], order
    reached = page.evaluate("[...document.querySelectorAll('[data-tab-probe]')].map((e) => e.id).filter(Boolean)")
    for cid in ("run", "clear", "pick-index", "pick", "upload", "noise-kind", "noise-level", "mask-kind", "clear-mask",
                "iters", "blend-a", "blend-b", "blend-t", "latent", "preset", "epochs", "train"):
        assert cid in reached, cid


def test_the_code_chart_has_axes_and_hover_shows_each_value(page):
    chart = page.locator("#code")
    chart.scroll_into_view_if_needed()
    values = page.evaluate("document.getElementById('code').chart.values")
    assert len(values) == 2  # the tiny run's 2-number code
    ink = page.evaluate("""() => { const c = document.getElementById('code'), d = c.getContext('2d');
        const inked = (x, y, w, h) => [...d.getImageData(x, y, w, h).data].filter((v, i) => i % 4 === 3 && v).length;
        return [inked(0, 0, 40, c.height - 34), inked(44, c.height - 30, c.width - 50, 30)]; }""")
    assert ink[0] > 40 and ink[1] > 40, ink  # value ticks left of the bars, dimension numbers and name below
    box, w = chart.bounding_box(), page.evaluate("document.getElementById('code').width")
    for i, v in enumerate(values):  # the middle of bar i
        x = (44 + (i + 0.5) * (w - 52) / len(values)) * box["width"] / w
        page.mouse.move(box["x"] + x, box["y"] + box["height"] * 0.5)
        page.wait_for_function(f"() => document.getElementById('code-readout').textContent"
                               f".startsWith('dimension {i}:')")
        assert page.locator("#code-readout").inner_text() == f"dimension {i}: value {v:.3f}"
    assert "bar chart of 2 values by dimension" in chart.get_attribute("aria-label")


def test_the_latent_map_shows_label_and_coordinates_on_hover_and_with_the_arrow_keys(page):
    page.wait_for_function("() => state.latent !== null")
    page.locator("#latent").scroll_into_view_if_needed()
    x, y = page.evaluate("state.latent.px[5]")
    point, label = page.evaluate("[state.latent.points[5], state.latent.labels[5]]")
    box = page.locator("#latent").bounding_box()
    scale = box["width"] / page.evaluate("document.getElementById('latent').width")
    page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
    want = f"test image 5, label {label}: z0 {point[0]:.2f}, z1 {point[1]:.2f}"
    page.wait_for_function(f"() => document.getElementById('latent-readout').textContent === {json.dumps(want)}")
    page.locator("#latent").focus()  # the keyboard: the arrow keys step through the test images
    page.keyboard.press("ArrowRight")
    point, label = page.evaluate("[state.latent.points[6], state.latent.labels[6]]")
    assert page.locator("#latent-readout").inner_text() == f"test image 6, label {label}: z0 {point[0]:.2f}, " \
                                                          f"z1 {point[1]:.2f}"
    page.wait_for_function("() => document.getElementById('hover-label').textContent.startsWith('test image 6')")
    assert not page.errors, page.errors


def test_every_psnr_figure_states_its_unit_and_what_it_compares(page):
    page.wait_for_function("() => document.getElementById('psnr-fill').textContent.endsWith('dB')")
    figures = page.evaluate("[...document.querySelectorAll('[id^=psnr-]')].map((b) => b.closest('figcaption')"
                            ".textContent)")
    assert len(figures) == 5, figures
    for caption in figures:
        assert re.search(r"[\d.]+ dB", caption) and re.search(r"PSNR (in the hole )?vs the (clean image|original)",
                                                               caption), caption


def test_the_loss_chart_shows_both_losses_of_an_epoch_on_hover(lab_page, lab):
    pg = lab_page
    job = FakeJob(lab, epochs=3)
    try:
        job.epoch(0.0612, 0.0583)
        job.epoch(0.0451, 0.0437)
        start_from_the_page(pg, job)
        pg.wait_for_function("() => document.getElementById('job-status').textContent.includes('epoch 2/3')")
        pg.locator("#loss").scroll_into_view_if_needed()
        box = pg.locator("#loss").bounding_box()
        x = pg.evaluate("state.loss.X(2)") * box["width"] / pg.evaluate("document.getElementById('loss').width")
        pg.mouse.move(box["x"] + x + 3, box["y"] + box["height"] / 2)
        pg.wait_for_function("() => document.getElementById('loss-readout').textContent.length > 0")
        assert pg.locator("#loss-readout").inner_text() == "epoch 2: train 0.04510, validation 0.04370 (MSE per value)"
        assert not pg.errors, pg.errors
    finally:
        job.end()


# The panels' "read more" links: each panel's docs page (/work/notes/docs-map.md), under /guide/.
DOCS_PAGES = {"draw-panel": "lecture/bottleneck/", "linear-panel": "lecture/linear-pca/",
              "denoise-panel": "lecture/denoising/", "infill-panel": "lecture/infilling/",
              "blend-panel": "lecture/blending/", "latent-panel": "lecture/representations/",
              "sample-panel": "lecture/variational/", "classify-panel": "lecture/pretraining/",
              "train-panel": "guides/serve/"}


def test_each_panel_links_to_its_page_of_the_guide(page):
    links = page.evaluate("[...document.querySelectorAll('main > .card')].map((c) => [c.id, "
                          "[...c.querySelectorAll('a.read-more')].map((a) => a.getAttribute('href'))])")
    assert {cid: hrefs for cid, hrefs in links} == {cid: ["/guide/" + p] for cid, p in DOCS_PAGES.items()}, links
    with page.context.expect_page() as opened_tab:  # a new tab: the page and its drawing stay
        page.locator("#denoise-panel a.read-more").click()
    guide = opened_tab.value
    guide.wait_for_load_state()
    assert guide.url.endswith("/guide/lecture/denoising/")
    assert "docs/lecture/denoising.md" in guide.content() and "make docs" in guide.content()  # no site built here
    guide.close()


# Item 5: a late answer about an older input is dropped. Each case makes a request for an older input and
# holds its answer back (route interception), makes one for a newer input that is answered, then lets the
# older answer go: what the panel shows must stay the newer one's.
LATE = {
    "reconstruct": (r"/reconstruct$", "async () => { state.image = (await api(runPath('samples?start=3&n=1')))"
                    ".images[0]; reconstruct(); }",
                    "async () => { state.image = (await api(runPath('samples?start=5&n=1'))).images[0]; "
                    "reconstruct(); }",
                    "[document.getElementById('score').textContent, document.getElementById('recon').toDataURL()]"),
    "denoise": (r"/denoise$", "() => { document.getElementById('noise-level').value = '0.2'; denoise(); }",
                "() => { document.getElementById('noise-level').value = '0.9'; denoise(); }",
                "[document.getElementById('psnr-noisy').textContent, document.getElementById('noisy').toDataURL()]"),
    "infill": (r"/inpaint$", "() => { document.getElementById('mask-kind').value = 'rows:10-17'; infill(); }",
               "() => { document.getElementById('mask-kind').value = 'random:0.5'; infill(); }",
               "[document.getElementById('psnr-fill').textContent, document.getElementById('masked').toDataURL()]"),
    "blend": (r"/interpolate$", "() => { document.getElementById('blend-t').value = '0.2'; blend(); }",
              "() => { document.getElementById('blend-t').value = '1'; blend(); }",
              "document.getElementById('blend-decoded').toDataURL()"),
    "linear": (r"/pca$", "async () => { state.image = (await api(runPath('samples?start=3&n=1'))).images[0]; "
               "linearPanel(); }",
               "async () => { state.image = (await api(runPath('samples?start=5&n=1'))).images[0]; linearPanel(); }",
               "[document.getElementById('sse-pca').textContent, document.getElementById('linear-pca').toDataURL()]"),
}


@pytest.mark.parametrize("case", sorted(LATE))
def test_a_late_answer_for_an_older_input_never_replaces_the_newer(page, case):
    path, older, newer, shown = LATE[case]
    page.wait_for_function("() => state.latent !== null")
    settled(page, "recon", "noisy", "filled", "blend-decoded")
    held: list = []

    def hold_first(route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(path), hold_first)
    before = page.evaluate(f"() => {shown}")
    page.evaluate(older)
    wait_for(page, lambda: held)
    page.evaluate(newer)
    wait_for(page, lambda: page.evaluate(f"() => {shown}") != before)
    page.wait_for_timeout(300)
    newest_shown = page.evaluate(f"() => {shown}")
    with page.expect_response(lambda r: r.request == held[0].request):
        held[0].continue_()  # the older answer, late
    page.wait_for_timeout(500)
    assert page.evaluate(f"() => {shown}") == newest_shown
    assert not page.errors, page.errors


def test_a_pick_answered_after_a_stroke_leaves_the_drawing_shown(page):
    """The realistic race: a test image picked, its reconstruction slow; meanwhile the user draws. The
    drawing's reconstruction is shown, and the pick's, arriving last, is dropped."""
    page.wait_for_function("() => state.latent !== null")
    settled(page, "recon")
    mode = {"hold": True}
    held: list = []
    page.route(re.compile(r"/reconstruct$"), lambda r: held.append(r) if mode["hold"] else r.continue_())
    page.locator("#pick-index").fill("7")
    page.locator("#pick").click()
    wait_for(page, lambda: held)
    mode["hold"] = False
    stroke(page)  # its live reconstructions are answered at once
    drawn = pixels(page, "recon")
    mode["hold"] = True  # what the page asks from here on waits: only the late pick can change the picture
    with page.expect_response(lambda r: r.request == held[0].request):
        held[0].continue_()
    page.wait_for_timeout(500)
    assert pixels(page, "recon") == drawn
    mode["hold"] = False
    for r in held[1:]:
        r.continue_()
    assert not page.errors, page.errors


def test_a_late_decoded_point_of_the_latent_map_never_replaces_the_newer(page):
    page.wait_for_function("() => state.latent !== null")
    spots = page.evaluate("""() => { const c = document.getElementById('latent'), found = [];
        for (let y = 20; y < c.height - 20; y += 4) for (let x = 20; x < c.width - 20; x += 4)
          if (nearest(x, y)[1] > 12 && !found.some(([u, v]) => Math.hypot(u - x, v - y) < 40)) found.push([x, y]);
        return found.slice(0, 2); }""")
    held: list = []
    page.route(re.compile(r"/latent/decode$"), lambda r: r.continue_() if held else held.append(r))
    page.locator("#latent").scroll_into_view_if_needed()
    box = page.locator("#latent").bounding_box()
    scale = box["width"] / page.evaluate("document.getElementById('latent').width")
    for x, y in spots:
        page.mouse.click(box["x"] + x * scale, box["y"] + y * scale)
        if not held:
            wait_for(page, lambda: held)
    page.wait_for_function("() => document.getElementById('hover-label').textContent.startsWith('decoded (')")
    label, image = page.locator("#hover-label").inner_text(), pixels(page, "hover-img")
    with page.expect_response(lambda r: r.request == held[0].request):
        held[0].continue_()
    page.wait_for_timeout(500)
    assert page.locator("#hover-label").inner_text() == label and pixels(page, "hover-img") == image
    assert not page.errors, page.errors


# Item 7: the first meaningful paint of a cold page and the server time of a stroke's reconstruction.
def test_first_paint_of_a_cold_page_and_server_time_of_a_stroke(browser, tmp_path_factory, record_property):
    root = tmp_path_factory.mktemp("cold-runs")
    tiny_run(root, tmp_path_factory)
    srv, t, url = start(create_app(runs_root=root, local_only=True))  # a run not yet opened: a cold server
    try:
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})  # and a cold page: nothing cached
        pg = ctx.new_page()
        pg.goto(url)
        pg.wait_for_function("() => performance.getEntriesByName('aekit:first-reconstruction').length", timeout=20000)
        first = pg.evaluate("performance.getEntriesByName('aekit:first-reconstruction')[0].startTime")
        pg.wait_for_function("() => state.latent !== null")
        pg.evaluate("performance.clearResourceTimings()")
        stroke(pg)
        server_ms = pg.evaluate("performance.getEntriesByType('resource').filter((e) => e.name.endsWith("
                                "'/reconstruct')).map((e) => e.serverTiming.find((s) => s.name === 'app').duration)")
        ctx.close()
    finally:
        srv.should_exit = True
        t.join(10)
    record_property("first_paint_ms", round(first))
    record_property("stroke_server_ms_median", round(statistics.median(server_ms), 2))
    print(f"\ncold page, cold server: first reconstruction drawn {first:.0f} ms after navigation; a stroke's "
          f"{len(server_ms)} reconstructions took {statistics.median(server_ms):.1f} ms of server time "
          f"(median, max {max(server_ms):.1f} ms)")
    assert len(server_ms) >= 2
    # The goal for a redraw is 50 ms of server time: typically a few ms, so it holds even on a loaded 2-core
    # machine. The first paint's goal (1.5 s) is reported (benchmarks/serve.py --page) rather than asserted:
    # it opens a run from disk while Chromium starts beside it, which a busy machine can double; 5 s catches a
    # page that waits on something it should not.
    assert statistics.median(server_ms) <= 50, server_ms
    assert first <= 5000, first
