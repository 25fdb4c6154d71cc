"""Screenshots of the built documentation site at desktop and phone width, through Debian's Chromium.

    make docs && .venv/bin/python scripts/site_screenshots.py [--site site] [--out docs/screenshots]

Writes site-desktop.png (1280x800) and site-phone.png (390x844) of the lecture's denoising page,
served from the built folder by a local HTTP server (the site needs no network).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import threading
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default="site")
    ap.add_argument("--out", default="docs/screenshots")
    ap.add_argument("--page", default="lecture/denoising/")
    a = ap.parse_args()
    if not (Path(a.site) / "index.html").is_file():
        raise SystemExit(f"error: {a.site}/index.html not found: run `make docs` first")
    from playwright.sync_api import sync_playwright

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=a.site)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{a.page}"
    Path(a.out).mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for name, size in (("desktop", (1280, 800)), ("phone", (390, 844))):
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.goto(url)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=f"{a.out}/site-{name}.png")
            print(f"wrote {a.out}/site-{name}.png")
        browser.close()
    httpd.shutdown()


if __name__ == "__main__":
    main()
