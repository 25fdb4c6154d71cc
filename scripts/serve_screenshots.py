"""The screenshots of ``aekit serve`` in docs/screenshots/ (the README and the docs show them).

    .venv/bin/python scripts/serve_screenshots.py RUNS_DIR [--out docs/screenshots]

RUNS_DIR is a folder of runs, best the demo set (a run for each panel: plain, denoising, infilling, a
VAE, the classifier pair); where it holds no run, the demo set is trained into it first, as ``aekit serve``
does (a few minutes on two cores). The app is served on a free port of 127.0.0.1 from a thread, and
Debian's Chromium is driven with Playwright (no browser download). Written:

- page-desktop.png, page-phone.png: the whole page at 1280 px, the first screen at 390 px (light);
- page-desktop-dark.png, page-phone-dark.png: the same with prefers-color-scheme: dark;
- panel-first-view.png: what a new user sees first (1280 x 800);
- panel-denoise.png, panel-sample.png, panel-classify.png: the key panels on their own, each on the run
  its picker chose for it (a panel missing from the page is said, not shot).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from aekit.serve.app import create_app
from aekit.serve.background import serve_in_thread
from aekit.serve.runs import find_runs

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PANELS = {"panel-denoise.png": "#denoise-panel", "panel-sample.png": "#sample-panel",
          "panel-classify.png": "#classify-panel"}


def serve(runs: Path) -> tuple[Any, str]:
    """The app over ``runs``; with no run there, the demo set trained first (waits for its jobs to end)."""
    demo = not find_runs([], runs)
    srv, _, url = serve_in_thread(create_app(runs_root=runs, demo=demo))
    while demo:
        with urllib.request.urlopen(url + "api/jobs") as r:
            jobs = json.load(r)["jobs"]
        if jobs and all(j["status"] in ("done", "failed", "cancelled") for j in jobs):
            failed = [j for j in jobs if j["status"] != "done"]
            if failed:
                raise SystemExit(f"the demo set did not train: {failed}")
            break
        print(f"training the demo set into {runs}: " + ", ".join(f"{j['preset']} {j['status']}" for j in jobs),
              file=sys.stderr)
        time.sleep(10)
    return srv, url


def settle(page) -> None:
    """Wait until every panel has answered (the sample and classify panels where they show a run)."""
    for test in ("document.getElementById('psnr-fill').textContent.length > 0", "state.latent !== null",
                 "!document.querySelector('.slot[data-state=loading]:not([hidden] *)')"):
        page.wait_for_function(f"() => {test}", timeout=120000)
    page.wait_for_timeout(1000)


def hover_a_point(page) -> None:
    """Show a test image and its reconstruction beside the latent map."""
    page.locator("#latent").scroll_into_view_if_needed()
    x, y = page.evaluate("state.latent.px[7]")
    box = page.locator("#latent").bounding_box()
    scale = box["width"] / page.evaluate("document.getElementById('latent').width")
    page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
    page.wait_for_function("() => document.getElementById('hover-label').textContent.startsWith('test image')")
    page.wait_for_timeout(300)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", help="a folder of runs (the demo set is trained into it where it holds none)")
    p.add_argument("--out", default="docs/screenshots")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    srv, url = serve(Path(a.runs))
    written = []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for scheme, suffix in (("light", ""), ("dark", "-dark")):
            for name, (w, h) in (("page-desktop", (1280, 800)), ("page-phone", (390, 844))):
                ctx = b.new_context(viewport={"width": w, "height": h}, color_scheme=scheme)
                page = ctx.new_page()
                page.goto(url)
                settle(page)
                if scheme == "light" and w > 1000:
                    page.screenshot(path=str(out / "panel-first-view.png"))
                    written.append("panel-first-view.png")
                    for shot, panel in PANELS.items():
                        if page.locator(panel).count() == 0:
                            print(f"no {panel} on the page: {shot} not written", file=sys.stderr)
                            continue
                        page.locator(panel).scroll_into_view_if_needed()
                        page.locator(panel).screenshot(path=str(out / shot))
                        written.append(shot)
                hover_a_point(page)
                page.evaluate("() => window.scrollTo(0, 0)")
                page.screenshot(path=str(out / f"{name}{suffix}.png"), full_page=w > 1000)
                written.append(f"{name}{suffix}.png")
                ctx.close()
        b.close()
    srv.should_exit = True
    print("wrote " + ", ".join(str(out / n) for n in written))


if __name__ == "__main__":
    main()
