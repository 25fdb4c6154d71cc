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
    srv, t, url = start(create_app(runs_root=root, local_only=True))
    yield url
    srv.should_exit = True
    t.join(10)


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
    chosen(page, "vae")
    count(page, "sample-grid", 16)
    page.select_option("#run", "cvae")
    chosen(page, "cvae")
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
    chosen(page, "vae")
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
