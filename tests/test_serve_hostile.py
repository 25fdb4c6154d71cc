"""``aekit serve`` under hostile use (issue 21): event streams, header size and speed, PNG decoding in
flight, tokens, server paths in errors, infinite PSNR, unparsable values, job folders, the Host
header, unknown jobs, Content-Type and the denoising baselines. Most run against a real server
(uvicorn in a thread, with the settings of ``aekit serve``), since the limits live in its protocol."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="aekit serve's extra is not installed (pip install 'aekit[serve]')")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

import httpx
from fastapi.testclient import TestClient

from aekit.errors import AekitError
from aekit.serve import inputs, work
from aekit.serve.app import create_app
from aekit.serve.background import serve_in_thread
from aekit.serve.jobs import Job, JobQueue
from aekit.serve.server import BoundedHttp
from tests.servehelp import tiny_run

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    tiny_run(root, tmp_path_factory)
    return root


@pytest.fixture(scope="module")
def live(root):
    """(the app, its port) served by uvicorn as ``aekit serve`` runs it."""
    app = create_app(runs_root=root)
    srv, t, url = serve_in_thread(app)
    yield app, int(url.rsplit(":", 1)[1].strip("/"))
    srv.should_exit = True
    t.join(30)


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(runs_root=root)) as c:
        yield c


def connect(port: int, source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))  # any 127/8 address is this machine: a client address of its own
    s.connect(("127.0.0.1", port))
    return s


def response(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body of one answer read from ``s`` (a body of known length, or none)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    n = int(headers.get("content-length", 0))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body[:n]


def request(port: int, raw: bytes, source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    with connect(port, source) as s:
        s.sendall(raw)
        return response(s)


def rss_mb() -> float:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024


def png_16bit(width: int, height: int) -> str:
    """A black 16-bit RGBA PNG, built a row at a time: 4096x4096 is 130 kB that decodes to 80 MB."""
    row, z = bytes(1 + width * 8), zlib.compressobj(9)
    raw = b"".join(z.compress(row) for _ in range(height)) + z.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    head = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([16, 6, 0, 0, 0])
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", raw)
                            + chunk(b"IEND", b"")).decode()


# -- 1: event streams ----------------------------------------------------------------------------
def open_stream(port: int, jid: int, source: str) -> tuple[socket.socket, int, bytes]:
    s = connect(port, source)
    s.sendall(f"GET /api/jobs/{jid}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    return s, int(data.split()[1]), data


def test_event_streams_hold_no_thread_and_are_capped_per_client_and_in_all(live, root, monkeypatch):
    """45 streams of a queued job froze every non-async route until the job ended; now a stream is a
    coroutine, a client may keep 8 open and the server 64, and the others are refused with 429."""
    app, port = live
    state = app.app.state
    state.queue.jobs[900] = Job(900, "simplest", "mnist-mini", 5, root / "never-made", status="running")
    socks: list[socket.socket] = []
    try:
        for i in range(6):  # 48 streams from 6 addresses: more than the 40 worker threads
            for _ in range(8):
                s, status, _ = open_stream(port, 900, f"127.0.0.{i + 2}")
                socks.append(s)
                assert status == 200
        s, status, head = open_stream(port, 900, "127.0.0.2")
        s.close()
        assert status == 429 and b"retry-after: 1" in head.lower()
        for path in ("/api/runs", "/api/jobs", "/api/runs/tiny/samples?n=2"):  # routes that use worker threads
            t0 = time.monotonic()
            assert request(port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())[0] == 200
            assert time.monotonic() - t0 < 2.0, path
        monkeypatch.setattr(state.streams, "total", len(socks))
        s, status, head = open_stream(port, 900, "127.0.0.99")  # a new client, but the server is full
        s.close()
        assert status == 429 and b"event streams open" in head
    finally:
        for s in socks:
            s.close()
        deadline = time.monotonic() + 5
        while state.streams.open and time.monotonic() < deadline:  # a client gone gives its place back
            time.sleep(0.05)
        del state.queue.jobs[900]
    assert not state.streams.open


# -- 2: request heads ----------------------------------------------------------------------------
def test_a_head_over_64_kib_is_refused_with_431_and_a_pipelined_request_is_not(live):
    _, port = live
    status, _, body = request(port, b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 100_000
                              + b"\r\n\r\n")
    assert status == 431 and b"limited to 65536 bytes" in body
    with connect(port) as s:  # a 1.5 MB body followed by a second request, in one write
        big = json.dumps({"image": [0.5] * 300_000}).encode()
        s.sendall(b"POST /api/runs/tiny/encode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(big)}\r\n\r\n".encode() + big
                  + b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert response(s)[0] == 422 and response(s)[0] == 200


def send_forever(port: int, total: int, sent: list[int]) -> None:
    """A head that never ends: ``total`` bytes of one header line, sent until the server hangs up."""
    chunk = b"a" * (1 << 20)
    with contextlib.suppress(OSError), connect(port, timeout=20) as s:
        s.sendall(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ")
        n = 0
        while n < total:
            s.sendall(chunk)
            n += len(chunk)
        sent.append(n)
        s.recv(1)  # until the server hangs up (or the timeout)
    sent.append(-1)


@pytest.mark.skipif(sys.platform != "linux", reason="resident memory is read from /proc")
def test_endless_heads_do_not_grow_the_server(live):
    """16 clients each sending a 32 MiB header line grew the server by 600 MB; one 8 MiB header got a 200."""
    _, port = live
    before = rss_mb()
    sent: list[int] = []
    threads = [threading.Thread(target=send_forever, args=(port, 32 << 20, sent)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert rss_mb() - before < 60
    assert sent.count(32 << 20) == 0  # every client was cut off before it sent its whole header
    with connect(port) as s:  # 8 MiB, complete: answered 431 (read while the rest is still being sent)
        got: list[int] = []
        reader = threading.Thread(target=lambda: got.append(response(s)[0]))
        reader.start()
        with contextlib.suppress(OSError):  # the server hangs up on the rest of it
            s.sendall(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * (8 << 20) + b"\r\n\r\n")
        reader.join(20)
        assert got == [431]


def test_slow_or_silent_heads_time_out(live, monkeypatch):
    _, port = live
    monkeypatch.setattr(BoundedHttp, "head_timeout", 0.5)
    with connect(port) as s:
        s.sendall(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and nothing more
        t0 = time.monotonic()
        status, _, body = response(s)
        assert status == 408 and b"did not arrive within 0.5 s" in body and time.monotonic() - t0 < 3
        assert s.recv(1) == b""  # closed
    with connect(port) as s:  # a connection that sends nothing at all
        t0 = time.monotonic()
        assert s.recv(1) == b"" and time.monotonic() - t0 < 3
    with connect(port) as s:  # a kept-alive connection's idle time between requests is not a slow head
        for _ in range(2):
            s.sendall(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert response(s)[0] == 200
            time.sleep(1)


def test_a_slow_body_times_out_with_408_and_a_prompt_one_does_not(live, monkeypatch):
    """A body sent a byte at a time held a connection and a request for as long as the client liked."""
    _, port = live
    monkeypatch.setattr(BoundedHttp, "body_timeout", 0.8)
    head = (b"POST /api/runs/tiny/reconstruct HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    with connect(port) as s:
        s.sendall(head + b'{"index": ')  # and nothing more
        t0 = time.monotonic()
        status, _, body = response(s)
        assert status == 408 and b"body did not arrive within 0.8 s" in body and time.monotonic() - t0 < 4
        assert s.recv(1) == b""  # closed
    with connect(port) as s:  # a whole body in two parts, and a kept-alive idle wait past the deadline
        body = json.dumps({"index": 0}).encode()
        s.sendall(head.replace(b"1000", str(len(body)).encode()) + body[:4])
        time.sleep(0.3)
        s.sendall(body[4:])
        assert response(s)[0] == 200
        time.sleep(1.2)
        s.sendall(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert response(s)[0] == 200


def test_connections_are_capped_per_client_and_in_all(live, monkeypatch):
    """One address could open connections until the process ran out of files."""
    _, port = live
    monkeypatch.setattr(BoundedHttp, "max_connections_per_client", 3)
    monkeypatch.setattr(BoundedHttp, "max_connections", 5)

    def answered(s: socket.socket) -> bool:
        try:
            s.sendall(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            return response(s)[0] == 200
        except OSError:  # closed at once: reset or EOF
            return False

    with contextlib.ExitStack() as stack:
        mine = [stack.enter_context(connect(port, "127.0.0.7")) for _ in range(4)]
        assert [answered(s) for s in mine] == [True, True, True, False]  # the fourth from one address
        others = [stack.enter_context(connect(port, f"127.0.0.{8 + k}")) for k in range(3)]
        assert [answered(s) for s in others] == [True, True, False]  # the sixth in all
        mine[0].close()
        time.sleep(0.2)
        with connect(port, "127.0.0.20") as late:  # a closed connection's place is free again
            assert answered(late)


# -- 3: PNG decoding -----------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform != "linux", reason="peak resident memory is read from /proc")
def test_png_decoding_in_flight_is_bounded(live):
    """8 concurrent 4096x4096 16-bit PNGs added 586 MB and 16 peaked at 1.48 GB: now the largest
    image is 2048x2048 (4.2 Mpx) and 128 MiB of decoded pixels are in flight at most; the rest get 429."""
    _, port = live
    big, ok = png_16bit(4096, 4096), png_16bit(2048, 2048)
    statuses: list[int] = []

    def post(png: str) -> None:
        with httpx.Client(timeout=60) as c:
            statuses.append(c.post(f"http://127.0.0.1:{port}/api/runs/tiny/encode", json={"image": png}).status_code)

    for png, n in ((big, 8), (ok, 16)):
        statuses.clear()
        Path("/proc/self/clear_refs").write_text("5")  # peak resident memory from here
        base = rss_mb()
        threads = [threading.Thread(target=post, args=(png,)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        peak = int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024
        assert peak - base < 220, (png is big, peak - base)
        assert set(statuses) <= ({422} if png is big else {200, 429}) and len(statuses) == n, statuses


def test_past_the_decoding_budget_an_image_is_429_and_numbers_still_go_through(client):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1000, 1000), 30).save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    with inputs.DECODING.hold(inputs.DECODING.size - 10_000, "test"):
        r = client.post("/api/runs/tiny/reconstruct", json={"image": png})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["detail"].startswith("image: the server is decoding other large images")
        assert client.post("/api/runs/tiny/reconstruct", json={"image": [0.5] * 784}).status_code == 200
    assert client.post("/api/runs/tiny/reconstruct", json={"image": png}).status_code == 200
    assert inputs.DECODING.used == 0


# -- 4: the token --------------------------------------------------------------------------------
def test_the_token_is_never_empty_and_a_network_address_gets_one(tmp_path, monkeypatch, capsys):
    import uvicorn

    from aekit.cli import main
    from aekit.cli.serve import ensure_runs

    apps = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda srv: apps.append(srv.config.app))
    monkeypatch.delenv("AEKIT_TOKEN", raising=False)
    runs = str(tmp_path / "runs")
    ensure_runs([], tmp_path / "runs", epochs=1)
    capsys.readouterr()
    for flags, env in ((["--token", ""], None), (["--token", "  "], None), ([], ""), ([], " \t"),
                       (["--no-token", "--token", "t"], None), (["--token", "a b"], None)):
        if env is None:
            monkeypatch.delenv("AEKIT_TOKEN", raising=False)
        else:
            monkeypatch.setenv("AEKIT_TOKEN", env)
        assert main(["serve", "--runs", runs, "--host", "0.0.0.0", *flags]) == 2, (flags, env)
        assert capsys.readouterr().err.count("\n") == 1  # one error line
    assert apps == []
    monkeypatch.setenv("AEKIT_TOKEN", "from-env")
    assert main(["serve", "--runs", runs, "--host", "0.0.0.0"]) == 0
    assert apps[-1].token == "from-env" and "#token=from-env" in capsys.readouterr().out
    monkeypatch.delenv("AEKIT_TOKEN")
    assert main(["serve", "--runs", runs, "--host", "0.0.0.0"]) == 0  # no token given: one made, printed once
    out, err = capsys.readouterr()
    made = apps[-1].token
    assert made and len(made) >= 32 and out.count(made) == 1 and made not in err
    assert main(["serve", "--runs", runs, "--host", "0.0.0.0", "--no-token"]) == 0  # on purpose
    assert apps[-1].token is None and "without a token" in capsys.readouterr().err
    assert main(["serve", "--runs", runs]) == 0 and apps[-1].token is None  # this machine only
    with pytest.raises(AekitError, match="token is empty"):
        create_app(runs_root=tmp_path / "runs", token=" ")


# -- 6: no server paths --------------------------------------------------------------------------
def test_errors_name_runs_by_id_never_by_path(tmp_path, tmp_path_factory):
    for name in ("hurt", "broken"):
        tiny_run(tmp_path, tmp_path_factory, name)
    (tmp_path / "hurt" / "threshold.json").write_text("{not json")
    (tmp_path / "broken" / "config.json").write_text("[]")
    with TestClient(create_app(runs_root=tmp_path)) as c:
        for call in (lambda: c.post("/api/runs/hurt/anomaly", json={"index": 0}),
                     lambda: c.post("/api/runs/hurt/denoise", json={"index": 0}),
                     lambda: c.get("/api/runs/broken/latent")):
            r = call()
            assert r.status_code == 422 and str(tmp_path) not in r.text and "/" + tmp_path.name not in r.text
        assert c.post("/api/runs/hurt/anomaly", json={"index": 0}).json()["detail"].startswith("hurt/threshold.json")
        listed = {r["id"]: r for r in c.get("/api/runs").json()}
        assert str(tmp_path) not in listed["broken"]["error"] and "broken" in listed["broken"]["error"]


def test_a_failed_jobs_error_names_no_server_path(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "broken.toml").write_text("[model\n")
    with TestClient(create_app(runs_root=tmp_path / "runs", configs=configs)) as c:
        jid = c.post("/api/jobs", json={"preset": "recipe:broken.toml", "epochs": 1}).json()["id"]
        deadline = time.monotonic() + 60
        while (job := c.get("/api/jobs").json()["jobs"][0])["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert job["id"] == jid and job["status"] == "failed"
    assert "broken.toml: not valid TOML" in job["error"] and str(tmp_path) not in job["error"]


# -- 7: infinite PSNR ----------------------------------------------------------------------------
def test_an_exact_image_has_a_null_psnr_with_a_reason(client):
    zeros = [[0.0] * 28] * 28
    corner = [[0.0] * 28 for _ in range(28)]
    corner[0][0] = 1.0
    for path, body in (("denoise", {"image": zeros, "noise": "masking", "level": 0.5}),
                       ("denoise", {"index": 0, "level": 1e-300}),
                       ("inpaint", {"image": zeros, "mask": corner})):
        r = client.post(f"/api/runs/tiny/{path}", json=body)
        assert r.status_code == 200, (path, r.text[:200])
        d = r.json()
        nulls = [k for k, v in d.items() if k.startswith("psnr_") and v is None]
        assert nulls and all(k in d["psnr_note"] for k in nulls) and "infinite" in d["psnr_note"], d.get("psnr_note")


# -- 8: values FastAPI could not validate --------------------------------------------------------
@pytest.mark.parametrize(("path", "body", "field"), [
    ("runs/tiny/denoise", b'{"index": 0, "level": NaN}', "level"),
    ("runs/tiny/denoise", b'{"index": 0, "level": Infinity}', "level"),
    ("runs/tiny/denoise", b'{"index": 0, "level": 1e400}', "level"),
    ("jobs", b'{"epochs": NaN}', "epochs"),
    ("jobs", b'{"epochs": "\\ud800"}', "epochs"),
    ("jobs", b'{"\\ud800\\u001b[2J": 1}', "body"),  # a key pydantic cannot read as text
    ("jobs", b'{"\\u001b[2J": 1}', "'\\x1b[2J'"),  # a terminal escape, escaped
    ("jobs", b'{"' + b"k" * 100_000 + b'": 1}', "'" + "k" * 40 + "'..."),  # cut
    ("runs/tiny/interpolate", b'{"a_index": 0, "b_index": 1, "t": NaN}', "t"),
    ("runs/tiny/latent/decode", b'{"x": Infinity, "y": 0}', "x"),
    ("runs/tiny/inpaint", b'{"index": 0, "iters": 1e400}', "iters"),
    ("runs/tiny/denoise", b'{"index": 0, "level": [NaN]}', "level"),
    ("runs/tiny/denoise", b'{"index": 0, "level": ', "body"),
])
def test_unparsable_values_are_422_naming_the_field_never_echoed(client, path, body, field):
    r = client.post(f"/api/{path}", content=body, headers=JSON)
    assert r.status_code == 422, r.text[:300]
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail.startswith(field + ":") and detail.isascii() and detail.isprintable()
    assert len(r.content) < 400 and b"NaN" not in r.content and b"Infinity" not in r.content


# -- 16: job folders -----------------------------------------------------------------------------
def test_two_servers_on_one_runs_folder_give_jobs_different_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(JobQueue, "_work", lambda self: None)  # no training: only the folders are looked at
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20250101-000000")  # the same second
    a, b = JobQueue(tmp_path, None), JobQueue(tmp_path, None)
    jobs = [q.submit("simplest", "mnist-mini", 1) for q in (a, b, a, b)]
    outs = {j.out for j in jobs}
    assert len(outs) == 4 and all(o.is_dir() and o.parent == tmp_path for o in outs)
    a.cancel(jobs[0].id)  # a queued job's folder, still empty, goes with it
    assert not jobs[0].out.exists()


# -- 17: the Host header -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local(root):
    app = create_app(runs_root=root, local_only=True)
    srv, t, url = serve_in_thread(app)
    yield int(url.rsplit(":", 1)[1].strip("/"))
    srv.should_exit = True
    t.join(30)


@pytest.mark.parametrize(("hosts", "status"), [
    (["localhost:8000"], 200), (["[::1]:8000"], 200), (["127.0.0.1"], 200),
    (["localhost:8000@evil.example"], 400), (["[::1]evil.example"], 400), (["localhost:"], 400),
    (["localhost:80x"], 400), (["localhost:8000/evil"], 400), (["127.0.0.1:8000 evil"], 400),
    (["localhost", "evil.example"], 400), (["evil.example", "localhost"], 400), (["localhost", "localhost"], 400),
])
def test_the_host_header_is_parsed_strictly(local, hosts, status):
    head = "".join(f"Host: {h}\r\n" for h in hosts)
    got, _, body = request(local, f"GET /api/runs HTTP/1.1\r\n{head}\r\n".encode())
    assert got == status, (hosts, body)


def test_several_host_headers_are_refused_on_a_network_address_too(live):
    status, _, body = request(live[1], b"GET /api/runs HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n")
    assert status == 400 and b"one Host header" in body


# -- 18: unknown jobs ----------------------------------------------------------------------------
def test_an_unknown_job_is_404_no_such_job(client):
    for r in (client.get("/api/jobs/4242/events"), client.post("/api/jobs/4242/cancel", json={})):
        assert r.status_code == 404 and r.json() == {"detail": "no such job"}


# -- Content-Type --------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["runs/tiny/encode", "runs/tiny/decode", "runs/tiny/anomaly", "runs/tiny/reconstruct",
                                  "runs/tiny/denoise", "runs/tiny/interpolate", "jobs", "jobs/1/cancel"])
@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_every_post_needs_a_json_content_type(client, path, ctype):
    """A form of another site posts these types without asking the server first: the four fast
    routes computed on such a body (and a job was queued by one)."""
    body = json.dumps({"index": 0, "code": [0, 0], "a_index": 0, "b_index": 1}).encode()
    r = client.post(f"/api/{path}", content=body, headers={"content-type": ctype} if ctype else {})
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["detail"]


# -- the denoising baselines ---------------------------------------------------------------------
def test_denoise_baselines_are_bounded_and_chosen_outside_the_runs_lock(live, monkeypatch):
    app, port = live
    url = f"http://127.0.0.1:{port}/api/runs/tiny/"
    with httpx.Client(timeout=30) as c:
        assert c.post(url + "reconstruct", json={"index": 0}).status_code == 200  # the run is open
        s = app.app.state.store.get("tiny")
        for i in range(work.N_BASELINES + 5):
            assert c.post(url + "denoise", json={"index": 0, "level": 0.1 + i / 100}).status_code == 200
        assert len(s.cache["baselines"]) == work.N_BASELINES
        real = work._choose_baseline
        monkeypatch.setattr(work, "_choose_baseline", lambda s, n: (time.sleep(1.5), real(s, n))[1])
        slow = threading.Thread(target=c.post, args=(url + "denoise",), kwargs={"json": {"index": 0, "level": 1.5}})
        slow.start()
        time.sleep(0.3)  # the slow choice is under way
        t0 = time.monotonic()
        with httpx.Client(timeout=30) as other:
            assert other.post(url + "reconstruct", json={"index": 1}).status_code == 200
        assert time.monotonic() - t0 < 1.0  # the model was free meanwhile
        slow.join(30)


def test_a_runs_model_is_awaited_without_a_thread(root):
    """Requests queued behind a slow one on the same run wait in the event loop, not in worker threads."""
    import asyncio

    from aekit.serve.runs import RunStore, find_runs

    s = RunStore(find_runs([root / "tiny"], None)).get("tiny")
    threads = set()

    def slow() -> str:
        threads.add(threading.get_ident())
        time.sleep(0.2)
        return "slow"

    async def many() -> list[str]:
        before = threading.active_count()
        calls = [work.locked(s, slow, thread=True)] + [work.locked(s, lambda: "fast") for _ in range(50)]
        out = await asyncio.gather(*calls)
        return [*out[:2], str(threading.active_count() - before <= 2)]

    assert asyncio.run(many()) == ["slow", "fast", "True"] and len(threads) == 1


def test_job_metrics_are_read_again_only_when_the_file_changes(tmp_path):
    job = Job(1, "simplest", "mnist-mini", 2, tmp_path)
    assert job.metrics() == []
    (tmp_path / "metrics.csv").write_text("epoch,train_loss,val_loss\n1,0.5,0.6\n")
    first = job.metrics()
    assert first == [{"epoch": 1, "train_loss": 0.5, "val_loss": 0.6}] and job.metrics() is first
    with (tmp_path / "metrics.csv").open("a") as f:
        f.write("2,0.4,0.5\n")
    assert [m["epoch"] for m in job.metrics()] == [1, 2]


def test_redact_keeps_ids_and_file_names_only(root):
    from aekit.serve.runs import redact

    assert redact(f"{root / 'tiny'}/threshold.json: corrupt", {root / "tiny": "tiny"}) == "tiny/threshold.json: corrupt"
    assert redact("npy:/home/me/x.npy: file not found") == "npy:x.npy: file not found"
    kept = "see https://example.org/a/b and 1/2 or rows:A-B"
    assert redact(kept) == kept
