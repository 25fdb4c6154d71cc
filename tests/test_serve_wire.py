"""``aekit serve``'s fast path: the JSON written by hand is json.dumps's, bodies are checked as strictly
as a model would, concurrent images share a forward pass, and /openapi.json still lists the bodies."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="aekit serve's extra is not installed (pip install 'aekit[serve]')")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient

from aekit.errors import AekitError
from aekit.serve import wire, work
from aekit.serve.app import create_app
from aekit.serve.runs import RunStore, find_runs
from tests.servehelp import tiny_run

EDGES = [0.0, -0.0, 1.0, -1.0, 1e-6, -1e-6, 5e-5, -5e-5, 1.5e-4, 2.5e-4, 0.99995, -0.99995, 1.00004, 1.00005,
         -1.00005, 123456.78, 1e30, -3e-7, 0.3333333]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    tiny_run(root, tmp_path_factory)
    return root


def reference(v: np.ndarray) -> str:
    return json.dumps(np.round(v.astype(np.float64), 4).ravel().tolist(), separators=(",", ":"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numbers_are_json_dumps_of_the_rounded_values(dtype):
    rng = np.random.default_rng(0)
    for v in (rng.random(5000), rng.standard_normal(5000) * 3, rng.standard_normal(50) * 1e-4, np.array(EDGES),
              np.zeros(0), rng.random((2, 3, 4))):
        assert wire.numbers(v.astype(dtype)).decode() == reference(v.astype(dtype))
    with pytest.raises(ValueError):  # as json.dumps(allow_nan=False): never invalid JSON
        wire.numbers(np.array([0.5, np.nan]))


def test_dumps_writes_what_json_dumps_writes_of_the_answer():
    rng = np.random.default_rng(1)
    result = {"input": rng.random((1, 28, 28), dtype=np.float32), "code": rng.standard_normal(30).astype(np.float32),
              "score": 12.5, "threshold": np.float64(3.25), "anomaly": np.bool_(True), "name": "pca_projection",
              "setting": None, "ks": [1, 2], "ünïcode": "é"}
    for png in (False, True):
        expected = json.dumps(wire.answer(result, png), ensure_ascii=False, separators=(",", ":")).encode()
        assert wire.dumps(result, png) == expected


J = "application/json"


@pytest.mark.parametrize(("body", "ctype", "detail"), [
    (b'{"index": 0, "size": 3}', J, "size: unknown field"),
    (b'{"index": true}', J, "index: expected an integer"),
    (b'{"\\ud800\\u001b[31m": 1}', J, "'\\\\ud800\\\\x1b\\[31m': unknown field"),  # never echoed raw
    (b'{"index": 1.0}', J, "index: expected an integer"),
    (b'{"index": "1"}', J, "index: expected an integer"),
    (b'{"image": 5}', J, "image: expected"),
    (b'{"image": {"a": 1}}', J, "image: expected"),
    (b'{"png": 1}', J, "png: expected true or false"),
    (b'{"index": 0}', None, "body: expected JSON"),  # a form of another site can post without a type
    (b'{"index": 0}', "text/plain", "body: expected JSON"),
    (b'{"index": 0}', "application/x-www-form-urlencoded", "body: expected JSON"),
    (b"[1, 2]", J, "body: expected a JSON object"),
    (b"{", J, "body: not valid JSON"),
    (b"\xff\xfe", J, "body: not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, J, "body: not valid JSON"),
])
def test_fields_are_checked_strictly(body, ctype, detail):
    with pytest.raises(AekitError, match="^" + detail):
        wire.fields(body, ctype, wire.IMAGE)


def test_fields_fill_defaults_and_take_json_media_types():
    assert wire.fields(b'{"index": 3}', "application/json; charset=utf-8", wire.IMAGE) == \
        {"image": None, "index": 3, "png": False}
    assert wire.fields(b'{"code": [1, 2.5]}', "application/problem+json", wire.CODE) == {"code": [1, 2.5], "png": False}
    for body, detail in ((b"{}", "code: required"), (b'{"code": [true]}', "code: expected a list of numbers"),
                         (b'{"code": ["1"]}', "code: expected a list of numbers")):
        with pytest.raises(AekitError, match="^" + detail):
            wire.fields(body, J, wire.CODE)


def test_fast_calls_answer_4xx_naming_the_field_and_stay_in_the_openapi(root):
    with TestClient(create_app(runs_root=root)) as c:
        r = c.post("/api/runs/tiny/decode", content=b'{"code": [1' + b"0" * 400 + b', 0]}',
                   headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"].startswith("code:")
        r = c.post("/api/runs/tiny/reconstruct", json={"index": 0, "extra": 1})
        assert r.status_code == 422 and r.json()["detail"].startswith("extra:")
        assert c.post("/api/runs/nope/reconstruct", content=b"{", headers={"content-type": J}).status_code == 404
        assert c.post("/api/runs/nope/reconstruct", content=b"{").status_code == 415  # the type is checked first
        paths = c.get("/openapi.json").json()["paths"]
        for call, field in (("reconstruct", "image"), ("encode", "index"), ("anomaly", "image"), ("decode", "code")):
            schema = paths[f"/api/runs/{{rid}}/{call}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            assert field in schema["properties"]


def test_images_arriving_together_share_a_forward_pass_and_get_their_own_answers(root, monkeypatch):
    s = RunStore(find_runs([root / "tiny"], None)).get("tiny")
    xs = s.test_x[:5]
    alone = [work.forward(s, x[None]) for x in xs]
    sizes = []
    real = work.forward
    monkeypatch.setattr(work, "forward", lambda s, b: (sizes.append(len(b)), real(s, b))[1])

    async def together():
        return await asyncio.gather(*(work.batcher(s)(x) for x in xs))

    got = asyncio.run(together())
    assert sizes == [5]
    for (recon, code), (r1, c1) in zip(got, alone, strict=True):
        np.testing.assert_allclose(recon, r1[0], atol=1e-6)
        np.testing.assert_allclose(code, c1[0], atol=1e-5)


def test_a_held_lock_makes_the_fast_path_wait_in_a_thread_not_in_the_event_loop(root):
    s = RunStore(find_runs([root / "tiny"], None)).get("tiny")
    s.lock.acquire()
    threading.Timer(0.3, s.lock.release).start()

    async def both():
        ticks = 0

        async def tick():
            nonlocal ticks
            while s.lock.locked():
                ticks += 1
                await asyncio.sleep(0.01)

        t0 = time.monotonic()
        out, _ = await asyncio.gather(work.locked(s, lambda: "ran"), tick())
        return out, ticks, time.monotonic() - t0

    out, ticks, took = asyncio.run(both())
    assert out == "ran" and took >= 0.25 and ticks >= 5  # the loop went on while the call waited


def test_the_app_without_the_guard_answers_the_hot_calls_alike(root):
    guarded = create_app(runs_root=root)
    with TestClient(guarded) as c, TestClient(guarded.app) as bare:
        for call, body in (("reconstruct", {"index": 2}), ("encode", {"index": 2}), ("anomaly", {"index": 2}),
                           ("decode", {"code": [0.1, -0.2]}), ("reconstruct", {"index": 2, "png": True}),
                           ("reconstruct", {"index": 2.0}), ("decode", {"code": [0.1]})):
            a, b = c.post(f"/api/runs/tiny/{call}", json=body), bare.post(f"/api/runs/tiny/{call}", json=body)
            assert a.status_code == b.status_code and a.json() == b.json(), call
        assert bare.post("/api/runs/nope/encode", json={"index": 0}).status_code == 404
