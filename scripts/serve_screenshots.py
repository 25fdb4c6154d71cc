"""The README's screenshots of ``aekit serve``: the page at 1280x800 and at phone width.

    .venv/bin/python scripts/serve_screenshots.py RUN_DIR [--out docs/screenshots]

Starts the app on a free port of 127.0.0.1 in a thread and drives Debian's Chromium with
Playwright (no browser download); draws a stroke so the panels show a drawn digit.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from aekit.serve.app import create_app
from aekit.serve.background import serve_in_thread

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def serve(run: str) -> tuple[Any, str]:
    srv, _, url = serve_in_thread(create_app(run))
    return srv, url


def settle(page) -> None:
    page.wait_for_function("() => document.getElementById('psnr-fill').textContent.length > 0", timeout=60000)
    page.wait_for_function("() => document.getElementById('latent-info').textContent.length > 0", timeout=60000)
    page.wait_for_timeout(500)


def hover_a_point(page) -> None:
    """Show a test image and its reconstruction beside the latent map."""
    page.locator("#latent").scroll_into_view_if_needed()
    x, y = page.evaluate("state.latent.px[7]")
    box = page.locator("#latent").bounding_box()
    scale = box["width"] / page.evaluate("document.getElementById('latent').width")
    page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
    page.wait_for_function("() => document.getElementById('hover-label').textContent.startsWith('test image')")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("--out", default="docs/screenshots")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    srv, url = serve(a.run)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for name, size in (("page-desktop.png", (1280, 800)), ("page-phone.png", (390, 844))):
            page = b.new_page(viewport={"width": size[0], "height": size[1]})
            page.goto(url)
            settle(page)
            hover_a_point(page)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(out / name), full_page=size[0] > 1000)
        b.close()
    srv.should_exit = True


if __name__ == "__main__":
    main()
