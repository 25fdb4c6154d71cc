"""Latency and throughput of ``aekit serve`` over real HTTP (uvicorn on 127.0.0.1, httpx clients).

    python benchmarks/serve.py RUN_DIR [--n 50] [--clients 4] [--out benchmarks/results/serve.json]

Each API call is timed ``--n`` times after one warm-up call (the first call of a run opens it and,
for denoise, picks the baseline's setting; that cost is reported on its own); then ``--clients``
threads send reconstruct requests for a few seconds to measure requests per second.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from aekit.serve.app import create_app

CALLS = {
    "reconstruct (index)": ("POST", "reconstruct", {"index": 0}),
    "reconstruct (784 numbers)": ("POST", "reconstruct", {"image": [0.5] * 784}),
    "denoise gaussian 0.5": ("POST", "denoise", {"index": 0, "noise": "gaussian", "level": 0.5}),
    "inpaint center:12, 20 iters": ("POST", "inpaint", {"index": 0, "mask": "center:12", "iters": 20}),
    "interpolate": ("POST", "interpolate", {"a_index": 0, "b_index": 1, "t": 0.5}),
    "latent map": ("GET", "latent", None),
}


def start(run: str) -> tuple[uvicorn.Server, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(run), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return srv, f"http://127.0.0.1:{port}/api/runs/{Path(run).name}/"


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--out", default="benchmarks/results/serve.json")
    a = ap.parse_args()
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
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"run": a.run, "n": a.n, "calls": rows, "clients": a.clients,
                               "reconstruct_requests_per_s": rps}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
