"""``aekit serve``'s HTTP API through FastAPI's TestClient: answers, ids, limits, token, and a fuzz of bad requests."""

from __future__ import annotations

import base64
import io
import json
import random
import shutil
import struct
import zlib

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="aekit serve's extra is not installed (pip install 'aekit[serve]')")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient

from aekit.serve.app import create_app
from tests.servehelp import as_classifier, tiny_run, with_broken_weights


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    tiny_run(root, tmp_path_factory)
    (tmp_path_factory.getbasetemp() / "secret.txt").write_text("outside")
    return root


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(runs_root=root)) as c:
        yield c


def png_b64(w: int, h: int, fill: int = 128) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (w, h), fill).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def png_header_only(w: int, h: int) -> str:
    """A PNG whose header claims w x h with no pixel data: must be refused from the header alone."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    return base64.b64encode(data).decode()


def test_lists_runs_with_what_the_picker_shows(client):
    (run,) = client.get("/api/runs").json()
    assert run["id"] == "tiny" and run["family"] == "mlp" and run["layers"] == [64] and run["code"] == 2
    assert run["dataset"] == "mnist-mini" and run["sse_per_image"] > 0


def test_reconstruct_from_index_array_and_png(client):
    r = client.post("/api/runs/tiny/reconstruct", json={"index": 3}).json()
    assert r["recon"]["shape"] == [1, 28, 28] and len(r["code"]["data"]) == 2
    assert r["score"] == pytest.approx(sum(r["error_map"]["data"]), rel=1e-2) and isinstance(r["anomaly"], bool)
    x = np.array(r["input"]["data"]).reshape(28, 28)
    r2 = client.post("/api/runs/tiny/reconstruct", json={"image": x.tolist()}).json()
    assert r2["score"] == pytest.approx(r["score"], rel=1e-3)
    r3 = client.post("/api/runs/tiny/reconstruct", json={"image": png_b64(280, 280, 0), "png": True})
    assert r3.status_code == 200 and base64.b64decode(r3.json()["recon"])[:4] == b"\x89PNG"
    assert "data:" not in r3.json()["recon"]


def test_anomaly_score(client):
    r = client.post("/api/runs/tiny/anomaly", json={"index": 3}).json()
    full = client.post("/api/runs/tiny/reconstruct", json={"index": 3}).json()
    assert r == {"score": full["score"], "threshold": full["threshold"], "anomaly": full["anomaly"]}


def test_the_threshold_is_the_runs_own(root, client, tmp_path):
    """The page scores against the threshold the run keeps (threshold.json), the one `aekit anomaly`
    and export use; a run without one gets the same default rule computed on its validation split."""
    stored = json.loads((root / "tiny" / "threshold.json").read_text())
    assert client.post("/api/runs/tiny/anomaly", json={"index": 0}).json()["threshold"] == stored["threshold"]
    (tmp_path / "bare").mkdir()
    for f in ("config.json", "model.safetensors"):
        (tmp_path / "bare" / f).write_bytes((root / "tiny" / f).read_bytes())
    with TestClient(create_app(runs_root=tmp_path)) as c:
        thr = c.post("/api/runs/bare/anomaly", json={"index": 0}).json()["threshold"]
    assert thr == pytest.approx(stored["threshold"], rel=1e-6)


def test_encode_decode_round_trip(client):
    code = client.post("/api/runs/tiny/encode", json={"index": 0}).json()["code"]
    img = client.post("/api/runs/tiny/decode", json={"code": code}).json()["image"]
    assert img["shape"] == [1, 28, 28] and min(img["data"]) >= 0 and max(img["data"]) <= 1


def test_denoise_inpaint_blend_latent(client):
    d = client.post("/api/runs/tiny/denoise", json={"index": 1, "noise": "masking", "level": 0.3}).json()
    assert d["baseline_name"] in ("median3x3", "gaussian_blur", "pca_projection")
    assert all(np.isfinite(d[k]) for k in ("psnr_noisy", "psnr_model", "psnr_baseline"))
    mask = np.zeros((28, 28))
    mask[10:20, 5:15] = 1
    for m in ("rows:10-14", "random:0.3", mask.tolist()):
        r = client.post("/api/runs/tiny/inpaint", json={"index": 2, "mask": m, "iters": 3}).json()
        assert r["iters"] == 3 and r["psnr_model"] > 0 and r["psnr_mean"] > 0
    b0 = client.post("/api/runs/tiny/interpolate", json={"a_index": 0, "b_index": 1, "t": 0}).json()
    b1 = client.post("/api/runs/tiny/interpolate", json={"a_index": 0, "b_index": 1, "t": 1}).json()
    assert b0["decoded"]["data"] != b1["decoded"]["data"] and b0["fade"]["data"] != b1["fade"]["data"]
    lat = client.get("/api/runs/tiny/latent").json()
    assert lat["method"] == "code" and len(lat["points"]) == len(lat["labels"]) == 1000  # mnist-mini's test split
    p = client.post("/api/runs/tiny/latent/decode", json={"x": 0.1, "y": -0.2})
    assert p.status_code == 200


@pytest.mark.parametrize("rid", ["..", "...", "tiny%2F..", "%2e%2e", "nope", "tiny.", "-x", "a" * 200, "secret.txt"])
def test_unknown_or_path_like_ids_are_404(client, rid):
    assert client.get(f"/api/runs/{rid}/latent").status_code == 404
    assert client.post(f"/api/runs/{rid}/encode", json={"index": 0}).status_code == 404


def test_mask_spec_never_names_a_file(client, root):
    r = client.post("/api/runs/tiny/inpaint", json={"index": 0, "mask": str(root / "tiny" / "reconstructions.png")})
    assert r.status_code == 422 and "unknown mask" in r.json()["detail"]


def test_limits(client):
    assert client.post("/api/runs/tiny/encode", content=b"{" + b" " * (2 * 1024 * 1024 + 1) + b"}",
                       headers={"content-type": "application/json"}).status_code == 413
    r = client.post("/api/runs/tiny/encode", json={"image": png_header_only(5000, 10)})
    assert r.status_code == 422 and "4096x4096" in r.json()["detail"] and "\n" not in r.json()["detail"]
    r = client.post("/api/runs/tiny/encode", json={"image": png_header_only(4096, 4096)})
    assert r.status_code == 422 and "over the 4,194,304 pixels read" in r.json()["detail"]  # from the header
    r = client.post("/api/runs/tiny/encode", json={"image": png_header_only(2048, 2048)})
    assert r.status_code == 422 and "not a readable" in r.json()["detail"]  # header fine, no pixels
    for body, field in ((b'{"image": [NaN]}', "image"), (b'{"a_index": 0, "b": [2]}', "b")):
        path = "interpolate" if field == "b" else "encode"
        r = client.post(f"/api/runs/tiny/{path}", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"].startswith(field), r.json()
    r = client.post("/api/runs/tiny/encode", json={"image": [[1.5] * 28] * 28})
    assert r.status_code == 422 and r.json()["detail"] == "image: values must lie in [0, 1]"


def test_token_and_headers(root):
    with TestClient(create_app(runs_root=root, token="s3cret")) as c:
        assert c.get("/api/runs").status_code == 401
        assert c.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        for call, body in (("reconstruct", {"index": 0}), ("decode", {"code": [0, 0]})):  # the Guard's own calls
            assert c.post(f"/api/runs/tiny/{call}", json=body).status_code == 401
            r = c.post(f"/api/runs/tiny/{call}", json=body, headers={"Authorization": "Bearer s3cret"})
            assert r.status_code == 200 and r.headers["x-frame-options"] == "DENY"
            assert "unsafe-inline" not in r.headers["content-security-policy"]
        page = c.get("/")  # the page itself carries no data; it sends the token it was given
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "unsafe-eval" not in csp and "unsafe-inline" not in csp and "script-src 'self'" in csp


def test_a_local_server_answers_only_requests_naming_a_loopback_host(root):
    """DNS rebinding: a page of evil.example, its name made to resolve to 127.0.0.1, must not reach the API."""
    with TestClient(create_app(runs_root=root, local_only=True), base_url="http://localhost:8000") as c:
        for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST", "127.0.0.1"):
            assert c.get("/api/runs", headers={"host": host}).status_code == 200, host
            assert c.post("/api/runs/tiny/reconstruct", json={"index": 0}, headers={"host": host}).status_code == 200
        for host in ("evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io:8000",
                     "[::1", "[::2]:8000", "", "0.0.0.0:8000"):
            for r in (c.get("/api/runs", headers={"host": host}), c.get("/", headers={"host": host}),
                      c.post("/api/runs/tiny/reconstruct", json={"index": 0}, headers={"host": host})):
                assert r.status_code == 400 and "Host header" in r.json()["detail"], host
                assert r.headers["x-frame-options"] == "DENY"
    with TestClient(create_app(runs_root=root)) as c:  # bound to the network, any name reaches it
        assert c.get("/api/runs", headers={"host": "evil.example"}).status_code == 200


BASES = {"encode": {"index": 0}, "reconstruct": {"index": 0}, "anomaly": {"index": 0}, "decode": {"code": [0.0, 0.0]},
         "denoise": {"index": 0, "noise": "gaussian", "level": 0.3, "seed": 0},
         "inpaint": {"index": 0, "mask": "center:10", "iters": 2},
         "interpolate": {"a_index": 0, "b_index": 1, "t": 0.5},
         "latent/decode": {"x": 0.0, "y": 0.0}}


def bad_values() -> dict[str, list]:
    """Values each field refuses, whatever the other fields hold."""
    images = [True, 7, "x", "", "====", "aGVsbG8=", png_header_only(99999, 1), png_b64(1, 1)[:60], [], [[]],
              [1] * 783, [0.5] * 785, [[0.1] * 27] * 28, ["a"] * 784, [None] * 784, [2] * 784, [-0.1] * 784,
              [[[0.1]]], {"a": 1}, [0.5] * 200_000, "data:image/png;base64,@@", [[0.5] * 28] * 27 + [[0.5] * 29]]
    indices = [-1, 10**40, 1.5, "x", [], 1000, True, {"i": 0}]  # mnist-mini has test images 0..999
    return {"image": images, "a": images, "b": images, "index": indices, "a_index": indices, "b_index": indices,
            "code": [[], [0.1], [0.1] * 3, "x", [1e300, 1e300], [None, 1], 5, [[0.1, 0.2]]],
            "noise": ["block", "", 5, None, "Gaussian"], "level": [0, -1, 3, "x", None, [0.1]],
            "seed": [-1, 2**40, 1.5, "x"], "mask": ["center:0", "center:99", "random:1", "rows:5-2", "/etc/passwd",
                                                    "x.png", [], [[0] * 28] * 28, [1] * 10, 5, "center:"],
            "iters": [0, 1000, "x", 1.5, -3], "t": [-0.1, 1.5, "x", None], "x": [1e9, "x", None],
            "y": [-1e9, [], None], "png": ["maybe", [], {"a": 1}], "extra": [1, "x"]}


def malformed(rng: random.Random) -> list[tuple[str, str, dict]]:
    """(method, path, httpx keyword arguments) for several hundred bad requests."""
    bad = bad_values()
    out: list[tuple[str, str, dict]] = []
    for p, base in BASES.items():
        out += [("POST", f"/api/runs/tiny/{p}", {"content": c, "headers": {"content-type": t}})
                for c, t in ((b"", "application/json"), (b"{", "application/json"), (b"null", "application/json"),
                             (b"[1,2]", "application/json"), (b'"s"', "application/json"),
                             (b"image=1", "application/x-www-form-urlencoded"), (b"<a/>", "application/xml"),
                             (b"\xff\xfe", "application/json"), (b'{"index": 0}', "text/plain"),
                             (b"[" * 5000 + b"]" * 5000, "application/json"))]
        fields = [*base, "png", "extra"] + (["image"] if "index" in base else [])
        for _ in range(36):
            f = rng.choice(fields)
            body = {k: v for k, v in base.items() if not (f == "image" and k == "index")}
            body[f] = rng.choice(bad[f])
            out.append(("POST", f"/api/runs/tiny/{p}", {"json": body}))
        out.append(("POST", f"/api/runs/tiny/{p}", {"json": {k: v for k, v in base.items() if k not in
                                                             ("index", "code", "a_index", "x")}}))  # missing
    out += [("GET", f"/api/runs/{rid}/latent", {}) for rid in ("..", "x", "%00", "tiny%00", ".hidden")]
    out += [("GET", "/api/runs/tiny/samples", {"params": {"n": v}}) for v in ("0", "-1", "x", "1000", "1e9")]
    out += [("DELETE", "/api/runs/tiny/encode", {}), ("PUT", "/api/runs", {})]
    return out


def test_fuzz_malformed_requests_get_4xx_and_the_server_keeps_answering(client):
    reqs = malformed(random.Random(0))
    assert len(reqs) >= 300
    for method, path, kw in reqs:
        r = client.request(method, path, **kw)
        assert 400 <= r.status_code < 500, (method, path, str(kw)[:200], r.status_code, r.text[:200])
        if r.headers.get("content-type", "").startswith("application/json"):
            json.loads(r.text)
    assert client.get("/api/runs").status_code == 200


def test_cli_warns_on_a_public_host_and_trains_the_demo_when_there_is_no_run(tmp_path, monkeypatch, capsys):
    import torch
    import uvicorn

    from aekit.cli import main
    from aekit.cli.serve import ensure_runs
    from aekit.serve.server import BoundedHttp

    calls, apps = [], []
    monkeypatch.delenv("AEKIT_TOKEN", raising=False)
    monkeypatch.setattr(uvicorn.Server, "run", lambda srv: (calls.append(srv.config), apps.append(srv.config.app)))
    ensure_runs([], tmp_path / "runs", epochs=1)  # the CLI's path with a 1-epoch demo
    assert (tmp_path / "runs" / "demo" / "model.safetensors").is_file()
    assert main(["serve", "--runs", str(tmp_path / "runs"), "--host", "0.0.0.0", "--port", "8765",
                 "--token", "t"]) == 0
    out, err = capsys.readouterr()
    assert (calls[0].host, calls[0].port, calls[0].http) == ("0.0.0.0", 8765, BoundedHttp)  # the header limits
    assert "anyone on the network can reach this server" in err and "http://localhost:8765/#token=t" in out
    assert main(["serve", "--runs", str(tmp_path / "runs")]) == 0
    assert "warning" not in capsys.readouterr().err and calls[-1].host == "127.0.0.1"
    assert [a.local_only for a in apps] == [False, True]  # the Host check on a loopback address only
    threads = torch.get_num_threads()
    assert main(["serve", "--runs", str(tmp_path / "runs"), "--threads", "1"]) == 0
    assert torch.get_num_threads() == threads  # set for the server's life only
    assert main(["serve", "--runs", str(tmp_path / "runs"), "--threads", "0"]) == 2
    assert main(["serve", str(tmp_path / "nope")]) == 2
    monkeypatch.chdir(tmp_path)  # no configs/ here: the Train panel offers the recipes aekit ships
    assert main(["serve", "--runs", str(tmp_path / "runs")]) == 0
    with TestClient(apps[-1], base_url="http://localhost") as c:  # a loopback Host: the server is local-only
        assert "recipe:simplest.toml" in c.get("/api/jobs").json()["presets"]


# -- the walk: the run list, test images, pictures and the serve guide's example -------------
def ids(c) -> list[str]:
    return [r["id"] for r in c.get("/api/runs").json()]


def test_a_classifier_run_is_listed_as_one_and_no_refusal_names_a_server_path(tmp_path, tmp_path_factory):
    runs = tmp_path / "runs"
    tiny_run(runs, tmp_path_factory, "tiny")
    as_classifier(runs / "tiny", runs / "clf")
    with_broken_weights(runs / "tiny", runs / "broken")
    with TestClient(create_app(runs_root=runs)) as c:
        listed = {r["id"]: r for r in c.get("/api/runs").json()}
        assert listed["tiny"]["usable"] is True and listed["broken"]["usable"] is True  # config.json alone is read
        clf = listed["clf"]
        assert clf["kind"] == "classifier" and clf["usable"] is False and "classifier run" in clf["note"]
        assert clf["architecture"] == "784-64-2 -> 10 classes"
        for rid in ("clf", "broken"):
            for r in (c.post(f"/api/runs/{rid}/reconstruct", json={"index": 0}), c.get(f"/api/runs/{rid}/samples"),
                      c.get(f"/api/runs/{rid}/latent")):
                detail = r.json()["detail"]
                assert r.status_code == 422 and detail.startswith(rid), (r.status_code, detail)
                assert str(tmp_path) not in r.text and tmp_path.name not in r.text, detail


def test_runs_made_or_removed_beside_the_server_join_and_leave_the_list(tmp_path, tmp_path_factory):
    runs = tmp_path / "runs"
    tiny_run(runs, tmp_path_factory, "a")
    with TestClient(create_app(runs_root=runs)) as c:
        store = c.app.app.state.store
        assert ids(c) == ["a"] and c.post("/api/runs/a/reconstruct", json={"index": 0}).status_code == 200
        tiny_run(runs, tmp_path_factory, "b")  # `aekit train` beside the server
        (runs / "half").mkdir()  # a run being started: no weights yet, not a run
        (runs / "half" / "config.json").write_text((runs / "a" / "config.json").read_text())
        assert ids(c) == ["a", "b"] and c.post("/api/runs/b/reconstruct", json={"index": 0}).status_code == 200
        shutil.rmtree(runs / "a")
        assert ids(c) == ["b"] and c.post("/api/runs/a/reconstruct", json={"index": 0}).status_code == 404
        tiny_run(runs, tmp_path_factory, "a")
        assert ids(c) == ["b", "a"] and c.post("/api/runs/a/reconstruct", json={"index": 0}).status_code == 200
        # Weights written again (a resumed run): the run is opened afresh, not served from the old copy.
        assert store.opened("b") is not None
        fresh = runs / "b" / "model.safetensors.new"
        fresh.write_bytes((runs / "b" / "model.safetensors").read_bytes())
        fresh.replace(runs / "b" / "model.safetensors")
        ids(c)
        assert store.opened("b") is None and c.post("/api/runs/b/reconstruct", json={"index": 0}).status_code == 200


def test_every_test_image_of_the_dataset_can_be_picked(client):
    from aekit.data.sources import load_mnist_mini

    s = client.get("/api/runs/tiny/samples", params={"start": 999, "n": 5}).json()
    assert s["total"] == 1000 and len(s["images"]) == len(s["labels"]) == 1  # mnist-mini's whole test split
    test = load_mnist_mini().test
    assert np.allclose(s["images"][0]["data"], test.x[999].ravel() / 255, atol=1e-4) and s["labels"] == [test.y[999]]
    assert client.post("/api/runs/tiny/reconstruct", json={"index": 999}).status_code == 200
    r = client.post("/api/runs/tiny/interpolate", json={"a_index": 0, "b_index": 1000})
    assert r.status_code == 422 and r.json()["detail"] == "b: index must lie in 0..999"


def test_runs_are_described_by_their_architecture(client):
    from aekit.serve.runs import architecture

    (run,) = client.get("/api/runs").json()
    assert run["architecture"] == "784-64-2-64-784"
    mnist = {"input_shape": [1, 28, 28]}
    assert architecture({**mnist, "code": 32, "layers": []}) == "784-32-784"  # the simplest, not "mlp []"
    assert architecture({**mnist, "code": 30, "layers": [1000, 500, 250]}) == "784-1000-500-250-30-250-500-1000-784"
    assert architecture({**mnist, "code": 32}) == "784-32-784"  # linear: no hidden layers
    assert architecture({**mnist, "code": 32, "channels": [32, 64]}) == "1x28x28 conv 32-64 code 32"
    assert architecture({**mnist, "code": 8, "layers": [512, 256], "latents": [64]}) == "784-512-256, stochastic 64-8"


def picture(draw, size=(120, 200), mode="RGB", background="white") -> str:
    """A base64 PNG of ``size`` on ``background`` with what ``draw(ImageDraw)`` puts on it."""
    from PIL import Image, ImageDraw

    im = Image.new(mode, size, background)
    draw(ImageDraw.Draw(im))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_a_dark_on_light_picture_is_inverted_made_grey_and_fitted_keeping_its_aspect(client):
    """A black "1" on white (a photo of paper, a drawing program's default) against MNIST's white on
    black: inverted, the colour made grey, the 120x200 picture scaled to 17x28 and padded, not stretched."""
    def one(colour):
        return lambda d: d.rectangle([45, 30, 74, 169], fill=colour)

    dark = client.post("/api/runs/tiny/reconstruct", json={"image": picture(one("black"))}).json()
    notes = dark["preprocessing"]
    assert any(n.startswith("inverted: dark on light") for n in notes) and "colour made grey" in notes, notes
    assert "120x200 scaled to 17x28 and padded to 28x28 with its border's colour (aspect ratio kept)" in notes
    x = np.array(dark["input"]["data"]).reshape(28, 28)
    assert x[:, :5].max() < 0.02 and x[:, -5:].max() < 0.02 and x[0].max() < 0.02  # padded, in the data's black
    assert x[6:22, 13:15].min() > 0.9  # the stroke, white, in the middle: not stretched to 28 wide
    plain = client.post("/api/runs/tiny/reconstruct", json={"image": (1 - x).tolist()}).json()
    assert dark["score"] < plain["score"]  # as sent, the picture is nothing like the training images
    light = client.post("/api/runs/tiny/reconstruct",
                        json={"image": picture(one(255), mode="L", background=0)}).json()
    assert not any(n.startswith("inverted") for n in light["preprocessing"]), light["preprocessing"]
    assert np.allclose(light["input"]["data"], dark["input"]["data"], atol=0.01)
    clear = client.post("/api/runs/tiny/reconstruct",  # black on transparent: shown on white, so inverted too
                        json={"image": picture(one((0, 0, 0, 255)), mode="RGBA", background=(0, 0, 0, 0))}).json()
    assert "transparent pixels put on white" in clear["preprocessing"]
    assert np.allclose(clear["input"]["data"], dark["input"]["data"], atol=0.01)
    assert "preprocessing" not in client.post("/api/runs/tiny/reconstruct", json={"index": 0}).json()


def test_the_serve_guides_curl_example_works_as_written(tmp_path, tmp_path_factory):
    """After `make demo` the run's id is dated: the example of docs/guides/serve.md (the README's, before the
    README moved its details to the documentation site) finds it by asking for the ids first."""
    import re
    import subprocess
    from pathlib import Path

    from aekit.serve.background import serve_in_thread

    if shutil.which("curl") is None or shutil.which("python3") is None:
        pytest.skip("the serve guide's example needs curl and python3 on PATH")
    guide = (Path(__file__).resolve().parents[1] / "docs" / "guides" / "serve.md").read_text()
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", guide, re.S) if "/reconstruct" in b]
    runs = tmp_path / "runs"
    tiny_run(runs, tmp_path_factory, "20261205-163937-demo")  # as `make demo` names it
    srv, t, url = serve_in_thread(create_app(runs_root=runs, local_only=True))
    try:
        script = block.replace("localhost:8000", "localhost:" + url.rstrip("/").rsplit(":", 1)[1])
        out = subprocess.run(["bash", "-ec", script], capture_output=True, text=True, timeout=60)
    finally:
        srv.should_exit = True
        t.join(10)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout[out.stdout.rindex('{"input"'):])  # after the listing the first curl prints
    assert answer["recon"]["shape"] == [1, 28, 28] and isinstance(answer["anomaly"], bool), out.stdout[-300:]


def test_a_ladder_vae_is_reconstructed_along_its_posterior_means(tmp_path):
    """The page's reconstruction is the model's own (recon_tensor): for a ladder VAE, decode(encode(x))
    would follow the prior's means below the code and ignore the lower layers' messages."""
    import aekit

    aekit.train(aekit.RunConfig(model={"name": "ladder", "code": 2, "latents": [4], "layers": [16, 8]}),
                tmp_path / "runs" / "lad", progress=False, **{"train.epochs": 1, "train.max_steps": 10})
    model = aekit.load(tmp_path / "runs" / "lad")
    with TestClient(create_app(runs_root=tmp_path / "runs")) as c:
        r = c.post("/api/runs/lad/reconstruct", json={"index": 3}).json()
    x = np.array(r["input"]["data"], np.float32).reshape(1, 1, 28, 28)
    recon = np.array(r["recon"]["data"], np.float32).reshape(1, 1, 28, 28)
    ours, prior_path = model.reconstruct(x), model.decode(model.encode(x))
    assert np.abs(ours - prior_path).max() > 1e-3  # the two paths differ enough to tell apart
    assert np.abs(recon - ours).max() <= 1e-4  # the answer's values are rounded to 4 decimals


def test_an_unreadable_folder_or_a_doctored_config_hides_no_other_run(root, tmp_path, monkeypatch):
    from aekit.serve import runs as serve_runs

    runs = tmp_path / "runs"
    shutil.copytree(root / "tiny", runs / "tiny", ignore=shutil.ignore_patterns("*.lock"))
    (runs / "locked").mkdir()
    (runs / "odd").mkdir()
    shutil.copy(root / "tiny" / "model.safetensors", runs / "odd")
    info = json.loads((root / "tiny" / "config.json").read_text())
    (runs / "odd" / "config.json").write_text(json.dumps({**info, "metrics": [1]}))
    real = serve_runs.Path.is_file

    def is_file(p):  # what stat() says of lost+found or another user's 0700 folder
        if p.parent.name == "locked":
            raise PermissionError(13, "Permission denied")
        return real(p)

    monkeypatch.setattr(serve_runs.Path, "is_file", is_file)
    with TestClient(create_app(runs_root=runs)) as c:
        r = c.get("/api/runs")
    assert r.status_code == 200, r.text
    listed = {run["id"]: run for run in r.json()}
    assert set(listed) == {"tiny", "odd"} and listed["odd"]["sse_per_image"] is None


def test_pictures_the_decoder_would_choke_on_are_refused_or_read_right():
    """16-bit grey is scaled to 8 bits, not clipped at 255; a colour model's pictures are never
    inverted; a JPEG's size is checked before draft() scales it (a progressive one's decoder holds
    every original pixel's coefficients)."""
    from PIL import Image

    from aekit.errors import AekitError
    from aekit.serve.inputs import MAX_SIDE, picture

    def encoded(im, fmt="PNG", **kw) -> str:
        buf = io.BytesIO()
        im.save(buf, format=fmt, **kw)
        return base64.b64encode(buf.getvalue()).decode()

    ramp = Image.fromarray(np.tile(np.linspace(0, 65535, 28).astype(np.uint16), (28, 1)))
    assert ramp.mode.startswith("I;16")
    x, _ = picture(encoded(ramp), (1, 28, 28), light_data=False)
    assert 0.4 < float(x.mean()) < 0.6 and len(np.unique(np.round(x, 2))) > 20  # a ramp, not all white
    white_border = Image.new("RGB", (32, 32), "white")
    white_border.paste((200, 40, 40), (8, 8, 24, 24))
    x, notes = picture(encoded(white_border), (3, 32, 32), light_data=False)
    assert not any("inverted" in n for n in notes) and float(x[:, 0, 0].min()) > 0.99
    huge = Image.new("L", (MAX_SIDE + 8, 16), 0)
    with pytest.raises(AekitError, match=f"at most {MAX_SIDE}x{MAX_SIDE}"):
        picture(encoded(huge, "JPEG", progressive=True), (1, 28, 28), light_data=False)


def test_a_run_whose_folder_name_is_long_can_be_opened(root, tmp_path):
    runs = tmp_path / "runs"
    for name in ("r" * 200, "r" * 200 + "x"):  # the second shares the first's 120-character id: a suffix
        shutil.copytree(root / "tiny", runs / name, ignore=shutil.ignore_patterns("*.lock"))
    with TestClient(create_app(runs_root=runs)) as c:
        ids = [run["id"] for run in c.get("/api/runs").json()]
        assert sorted(map(len, ids)) == [120, 122]
        for rid in ids:
            assert c.post(f"/api/runs/{rid}/reconstruct", json={"index": 0}).status_code == 200



def test_inpaint_makes_the_runs_own_passes_without_iters(root, tmp_path):
    """Without ``iters`` (or with null) a fill makes the run's default passes, listed as ``infill_passes``:
    20, or 1 for a run trained on the centre hole (whose later passes drift from its first guess)."""
    shutil.copytree(root / "tiny", tmp_path / "centre")
    info = json.loads((tmp_path / "centre" / "config.json").read_text())
    info["run"]["train"]["noise"] = "center:10"
    (tmp_path / "centre" / "config.json").write_text(json.dumps(info))
    shutil.copytree(root / "tiny", tmp_path / "plain")
    with TestClient(create_app(runs_root=tmp_path)) as c:
        listed = {r["id"]: r for r in c.get("/api/runs").json()}
        assert listed["centre"]["infill_passes"] == 1 and listed["plain"]["infill_passes"] == 20
        for rid, passes in (("centre", 1), ("plain", 20)):
            for body in ({"index": 0, "mask": "center:10"}, {"index": 0, "mask": "center:10", "iters": None}):
                assert c.post(f"/api/runs/{rid}/inpaint", json=body).json()["iters"] == passes
        given = c.post("/api/runs/centre/inpaint", json={"index": 0, "mask": "center:10", "iters": 4}).json()
        assert given["iters"] == 4
