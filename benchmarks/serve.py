"""Latency and throughput of ``aekit serve`` over real HTTP (uvicorn on 127.0.0.1).

    python benchmarks/serve.py RUN_DIR [--n 50] [--clients 4] [--out benchmarks/results/serve.json]
    python benchmarks/serve.py RUN_DIR --load 2000 --concurrency 16 [--out benchmarks/results/serve-load.json]
    python benchmarks/serve.py RUN_DIR --soak 600 [--clients 32] [--out benchmarks/results/serve-soak.json]
    python benchmarks/serve.py RUN_DIR --page [--trials 5] [--out benchmarks/results/serve-page.json]

Each API call is timed ``--n`` times after one warm-up call (the first call of a run opens it and,
for denoise, picks the baseline's setting; that cost is reported on its own); then ``--clients``
threads send reconstruct requests for a few seconds to measure requests per second.

``--load N``: the load test. ``aekit serve RUN_DIR`` runs in a process of its own (so its memory is
its own and the clients do not share its interpreter); ``--concurrency`` asyncio clients, each on
its own kept-alive HTTP/1.1 connection, send N reconstruct requests between them, each a JSON body
with a drawn-digit-sized array of 784 numbers; every answer counts as an error unless it is a 200
whose JSON holds a reconstruction of 784 numbers and a score (checked after the timed run). The
client is lean (requests built once, a plain asyncio connection, no HTTP library, answers kept and
parsed once the clock has stopped) because it shares the machine's cores with the server it
measures; its own CPU time a request is reported beside the server's. The table gives
p50/p95/p99 latency, requests/s over the whole run, errors and the server's peak resident memory
(VmHWM). Goal (issue 13): >= 400 requests/s, p95 <= 25 ms, 0 errors, RSS <= 600 MB.

``--soak SECONDS``: mixed valid and hostile traffic from ``--clients`` clients (32 by default), with
the server's memory and p99 latency every 10 s (benchmarks/soak.py says what it sends and its goal).

``--page``: the page in Chromium (Playwright driving Debian's /usr/bin/chromium), ``--trials`` times:
``aekit serve RUN_DIR`` started afresh in a process of its own (a cold server: the run not yet opened),
then a cold page (a new browser context, nothing cached). The first meaningful paint is the time from
navigation until the first reconstruction is drawn (the page's performance mark
``aekit:first-reconstruction``); a second cold page on the now warm server is timed too. Then a stroke
is drawn on the pad, and each reconstruction it asks for is timed by the server (its ``Server-Timing``
header: parse, model and answer) and by the page (request to answer). Goal (issue 23): the first paint
of a cold page <= 1.5 s, a redraw after a stroke <= 50 ms of server time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from aekit.serve.app import create_app
from aekit.serve.background import free_port, serve_in_thread

CALLS = {
    "reconstruct (index)": ("POST", "reconstruct", {"index": 0}),
    "reconstruct (784 numbers)": ("POST", "reconstruct", {"image": [0.5] * 784}),
    "denoise gaussian 0.5": ("POST", "denoise", {"index": 0, "noise": "gaussian", "level": 0.5}),
    "inpaint center:12, 20 iters": ("POST", "inpaint", {"index": 0, "mask": "center:12", "iters": 20}),
    "interpolate": ("POST", "interpolate", {"a_index": 0, "b_index": 1, "t": 0.5}),
    "latent map": ("GET", "latent", None),
}


def start(run: str) -> tuple[Any, str]:
    srv, _, url = serve_in_thread(create_app(run))
    return srv, f"{url}api/runs/{Path(run).name}/"


def timed(c: httpx.Client, method: str, url: str, body: dict | None) -> float:
    t = time.perf_counter()
    r = c.request(method, url, json=body)
    r.raise_for_status()
    return time.perf_counter() - t


def throughput(base: str, clients: int, seconds: float = 5.0) -> float:
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def work(i: int) -> None:
        with httpx.Client() as c:
            while time.monotonic() < stop:
                c.post(base + "reconstruct", json={"index": i}).raise_for_status()
                counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def _post(port: int, path: str, body: dict) -> bytes:
    """A whole HTTP/1.1 request, built once: the client's time goes to sending it, not to encoding it."""
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


async def _exchange(reader: Any, writer: Any, request: bytes) -> tuple[int, bytes]:
    """Send a request on a kept-alive connection and read the answer: (status, body)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status, length = int(head[9:12]), None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("an answer without Content-Length")
    return status, await reader.readexactly(length)


def _is_reconstruction(status: int, body: bytes, size: int) -> bool:
    """A 200 with a reconstruction of ``size`` numbers and a numeric score."""
    try:
        r = json.loads(body)
        data = r["recon"]["data"]
        return (status == 200 and len(data) == size and all(isinstance(v, float | int) for v in data)
                and isinstance(r["score"], float))
    except (ValueError, KeyError, TypeError):
        return False


async def _load(port: int, requests: list[bytes], size: int, total: int, concurrency: int,
                server_pid: int) -> dict:
    """``total`` requests from ``concurrency`` clients, one connection each (HTTP/1.1 keep-alive)."""
    import asyncio

    latencies: list[float] = []
    answers: list[tuple[int, bytes]] = []  # checked once the clock has stopped: parsing 2,000 answers of
    errors = 0                             # 15 kB each would take the cores from the server being timed
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]

    async def client(k: int, n: int) -> None:
        nonlocal errors
        reader, writer = conns[k]
        for i in range(n):
            t = time.perf_counter()
            try:
                status, body = await _exchange(reader, writer, requests[(k + i) % len(requests)])
            except (OSError, EOFError, ValueError, asyncio.LimitOverrunError):
                errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            latencies.append(time.perf_counter() - t)
            answers.append((status, body))
        writer.close()

    share = [total // concurrency + (k < total % concurrency) for k in range(concurrency)]
    cpu0, own0, t = _cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(k, share[k]) for k in range(concurrency)))
    wall, server_cpu, client_cpu = time.perf_counter() - t, _cpu_seconds(server_pid) - cpu0, time.process_time() - own0
    errors += sum(not _is_reconstruction(status, body, size) for status, body in answers)
    return {"latencies": latencies, "errors": errors, "wall_s": wall, "server_cpu_s": server_cpu,
            "client_cpu_s": client_cpu}


def load_test(run: str, total: int, concurrency: int) -> dict:
    import os
    import subprocess
    import sys

    import uvloop

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "aekit", "serve", run, "--port", str(port), "--runs",
                               str(Path(run).parent)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    path = f"/api/runs/{Path(run).name}/reconstruct"
    rng = __import__("random").Random(0)
    bodies = [{"image": [round(rng.random(), 3) for _ in range(784)]} for _ in range(16)]
    try:
        deadline = time.time() + 120
        while True:  # wait until it answers, then warm up (the first call opens the run)
            try:
                httpx.post(f"http://127.0.0.1:{port}{path}", json=bodies[0], timeout=60).raise_for_status()
                break
            except httpx.TransportError:
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("aekit serve did not start") from None
                time.sleep(0.2)
        r = uvloop.run(_load(port, [_post(port, path, b) for b in bodies], 784, total, concurrency, server.pid))
        status = Path(f"/proc/{server.pid}/status").read_text()
        rss_mb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024
    finally:
        server.terminate()
        server.wait(30)
    lat = sorted(r.pop("latencies"))
    pct = {f"p{q}_ms": lat[min(len(lat) - 1, int(q / 100 * len(lat)))] * 1e3 for q in (50, 95, 99)}
    return {"run": run, "requests": total, "concurrency": concurrency, "errors": r["errors"],
            "requests_per_s": total / r["wall_s"], **pct, "server_peak_rss_mb": rss_mb, "cpus": os.cpu_count(),
            "server_cpu_ms_per_request": r["server_cpu_s"] / total * 1e3,
            "client_cpu_ms_per_request": r["client_cpu_s"] / total * 1e3, "wall_s": r["wall_s"]}


def _serve(run: str) -> tuple[Any, int]:
    """``aekit serve RUN_DIR`` in a process of its own on a free port, once it answers (the run not yet opened)."""
    import subprocess
    import sys

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "aekit", "serve", run, "--port", str(port), "--runs",
                               str(Path(run).parent)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=5).raise_for_status()
            return server, port
        except httpx.TransportError:
            if time.time() > deadline or server.poll() is not None:
                server.terminate()
                raise SystemExit("aekit serve did not start") from None
            time.sleep(0.1)


def _first_paint(browser: Any, url: str) -> tuple[Any, float]:
    """A cold page (a new context) at ``url``: the page, and ms from navigation to the first reconstruction drawn."""
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(url)
    page.wait_for_function("() => performance.getEntriesByName('aekit:first-reconstruction').length", timeout=60000)
    return page, page.evaluate("performance.getEntriesByName('aekit:first-reconstruction')[0].startTime")


def _stroke(page: Any) -> list[tuple[float, float]]:
    """A stroke on the pad: (server ms, round-trip ms) of each reconstruction it asked for."""
    page.wait_for_function("() => state.latent !== null", timeout=60000)
    page.wait_for_timeout(500)  # the first view's other panels have answered
    page.evaluate("performance.clearResourceTimings()")
    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 40)
    page.mouse.down()
    for i in range(24):
        page.mouse.move(box["x"] + 60 + 7 * i, box["y"] + 40 + 9 * i, steps=2)
        page.wait_for_timeout(20)
    page.mouse.up()
    page.wait_for_timeout(1000)  # the last stroke's reconstruction, and the panels after it
    return [(s, t) for s, t in page.evaluate(
        "performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/reconstruct')).map((e) => "
        "[e.serverTiming.find((s) => s.name === 'app').duration, e.responseEnd - e.requestStart])")]


def page_test(run: str, trials: int) -> dict:
    """The ``--page`` measurement (the module's docstring says what it times)."""
    import os

    from playwright.sync_api import sync_playwright

    cold: list[float] = []
    warm: list[float] = []
    strokes: list[tuple[float, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("AEKIT_CHROMIUM", "/usr/bin/chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--disable-sync", "--no-first-run"])
        version = browser.version
        for _ in range(trials):
            server, port = _serve(run)
            try:
                page, ms = _first_paint(browser, f"http://127.0.0.1:{port}/")
                cold.append(ms)
                page.wait_for_function("() => state.latent !== null", timeout=60000)
                page.wait_for_timeout(1500)  # its other panels' work done: the warm page has the server to itself
                page.context.close()
                page, ms = _first_paint(browser, f"http://127.0.0.1:{port}/")
                warm.append(ms)
                strokes += _stroke(page)
                page.context.close()
            finally:
                server.terminate()
                server.wait(30)
        browser.close()
    server_ms, trip_ms = sorted(s for s, _ in strokes), sorted(t for _, t in strokes)

    def pct(xs: list[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(q / 100 * len(xs)))]

    return {"run": run, "trials": trials, "cpus": os.cpu_count(), "chromium": version,
            "first_paint_cold_server_ms": cold, "first_paint_warm_server_ms": warm,
            "first_paint_cold_server_median_ms": statistics.median(cold),
            "first_paint_warm_server_median_ms": statistics.median(warm),
            "stroke_reconstructions": len(strokes), "stroke_server_ms_p50": pct(server_ms, 50),
            "stroke_server_ms_p95": pct(server_ms, 95), "stroke_server_ms_max": server_ms[-1],
            "stroke_round_trip_ms_p50": pct(trip_ms, 50), "stroke_round_trip_ms_p95": pct(trip_ms, 95),
            "goal_first_paint_ms": 1500, "goal_stroke_server_ms": 50,
            "goal_met": statistics.median(cold) <= 1500 and pct(server_ms, 95) <= 50}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (to tell the server's share of the machine)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write(result: dict, path: str) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--clients", type=int, default=None, help="default 4, or 32 with --soak")
    ap.add_argument("--out", default=None, help="JSON file (default benchmarks/results/serve[-load].json)")
    ap.add_argument("--load", type=int, metavar="N", help="the load test: N reconstruct requests (see above)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--soak", type=float, metavar="SECONDS", help="the soak test (benchmarks/soak.py)")
    ap.add_argument("--vae-run", metavar="DIR", help="with --soak: a VAE run whose sample, traverse and manifold "
                    "routes join the mix")
    ap.add_argument("--page", action="store_true", help="the page's first paint and a stroke's redraw (see above)")
    ap.add_argument("--trials", type=int, default=5, help="with --page: cold servers to time (default 5)")
    a = ap.parse_args()
    if a.page:
        r = page_test(a.run, a.trials)
        rows = [("first paint, cold server + cold page", r["first_paint_cold_server_median_ms"],
                 max(r["first_paint_cold_server_ms"]), "<= 1500 ms"),
                ("first paint, warm server + cold page", r["first_paint_warm_server_median_ms"],
                 max(r["first_paint_warm_server_ms"]), ""),
                ("stroke redraw, server time", r["stroke_server_ms_p50"], r["stroke_server_ms_p95"], "<= 50 ms"),
                ("stroke redraw, round trip", r["stroke_round_trip_ms_p50"], r["stroke_round_trip_ms_p95"], "")]
        print(f"{'':<40}{'median ms':>11}{'max/p95 ms':>12}  goal")
        for name, mid, hi, goal in rows:
            print(f"{name:<40}{mid:>11.1f}{hi:>12.1f}  {goal}")
        print(f"{r['trials']} cold servers, {r['stroke_reconstructions']} stroke reconstructions, {r['cpus']} CPUs, "
              f"Chromium {r['chromium']}: goal {'met' if r['goal_met'] else 'NOT met'}")
        return write(r, a.out or "benchmarks/results/serve-page.json")
    if a.soak:
        from soak import soak

        r = soak(a.run, a.soak, a.clients or 32, a.vae_run)
        print(f"RSS {r['rss_at_60s_mb']:.0f} MB at one minute, {r['rss_min_after_60s_mb']:.0f}-"
              f"{r['rss_max_after_60s_mb']:.0f} MB after (drift {100 * r['rss_drift']:.1f}%); worst fast-route p99 "
              f"{r['worst_fast_p99_ms']:.1f} ms; {r['answers']} answers, {r['total_5xx']} 5xx, "
              f"{r['hostile_not_refused']} hostile requests not refused, {r['valid_dropped']} valid ones dropped; "
              f"goal {'met' if r['goal_met'] else 'NOT met'}; unexpected: {r['unexpected'] or 'none'}")
        return write(r, a.out or "benchmarks/results/serve-soak.json")
    a.clients = a.clients or 4
    if a.load:
        r = load_test(a.run, a.load, a.concurrency)
        print(f"{r['requests']} reconstruct requests, {r['concurrency']} at a time: {r['requests_per_s']:.0f} "
              f"requests/s, p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
              f"{r['errors']} errors, server peak RSS {r['server_peak_rss_mb']:.0f} MB, "
              f"server CPU {r['server_cpu_ms_per_request']:.2f} ms a request "
              f"(the client's {r['client_cpu_ms_per_request']:.2f} ms)")
        return write(r, a.out or "benchmarks/results/serve-load.json")
    srv, base = start(a.run)
    rows = {}
    with httpx.Client(timeout=120) as c:
        for name, (method, path, body) in CALLS.items():
            first = timed(c, method, base + path, body)
            ts = sorted(timed(c, method, base + path, body) for _ in range(a.n))
            rows[name] = {"first_ms": first * 1e3, "median_ms": statistics.median(ts) * 1e3,
                          "p95_ms": ts[int(0.95 * (len(ts) - 1))] * 1e3}
            print(f"{name:<30} first {rows[name]['first_ms']:8.1f} ms   median {rows[name]['median_ms']:6.1f} ms"
                  f"   p95 {rows[name]['p95_ms']:6.1f} ms")
    rps = throughput(base, a.clients)
    print(f"reconstruct, {a.clients} clients: {rps:.0f} requests/s")
    srv.should_exit = True
    write({"run": a.run, "n": a.n, "calls": rows, "clients": a.clients, "reconstruct_requests_per_s": rps},
          a.out or "benchmarks/results/serve.json")


if __name__ == "__main__":
    main()
