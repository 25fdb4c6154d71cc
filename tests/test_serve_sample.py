"""``aekit serve``'s calls for variational runs (the page's Sample panel): /sample, /traverse, /manifold,
the variational flags of /api/runs, and latent/decode with a label, through FastAPI's TestClient."""

from __future__ import annotations

import base64

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="aekit serve's extra is not installed (pip install 'aekit[serve]')")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient

from aekit.serve.app import create_app
from tests.servehelp import tiny_run, tiny_vae

SHAPE = [1, 28, 28]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae-runs")
    tiny_run(root, tmp_path_factory, "plain")
    tiny_vae(root, tmp_path_factory, "vae")
    tiny_vae(root, tmp_path_factory, "vae3", code=3)
    tiny_vae(root, tmp_path_factory, "cvae", conditional=True)
    with TestClient(create_app(runs_root=root)) as c:
        yield c


def array(part: dict) -> np.ndarray:
    return np.array(part["data"], np.float64).reshape(part["shape"])


def refused(r, *words: str) -> str:
    """A 4xx answer with one line of detail holding ``words``."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail
    assert all(w in detail for w in words), detail
    return detail


def test_the_runs_list_says_which_runs_are_variational_and_conditional(client):
    runs = {r["id"]: r for r in client.get("/api/runs").json()}
    assert {k: (r["variational"], r["conditional"], r["n_classes"], r["code"]) for k, r in runs.items()} == {
        "plain": (False, False, 0, 2), "vae": (True, False, 0, 2), "vae3": (True, False, 0, 3),
        "cvae": (True, True, 10, 2)}


def test_sample_gives_n_images_in_the_unit_range(client):
    r = client.post("/api/runs/vae/sample", json={"n": 5, "temperature": 0.8})
    assert r.status_code == 200, r.text
    j = r.json()
    x = array(j["images"])
    assert j["shape"] == [5, *SHAPE] and x.shape == (5, *SHAPE)
    assert x.min() >= 0 and x.max() <= 1 and x.std() > 0
    assert not np.allclose(x[0], x[1])  # five draws, not one image five times
    assert len(array(client.post("/api/runs/vae/sample", json={}).json()["images"])) == 16  # the default n


def test_the_same_seed_gives_the_same_bytes(client):
    body = {"n": 4, "temperature": 1.3, "seed": 7}
    first, again = (client.post("/api/runs/vae/sample", json=body).content for _ in range(2))
    assert first == again
    other = client.post("/api/runs/vae/sample", json={**body, "seed": 8}).content
    assert other != first
    colder = client.post("/api/runs/vae/sample", json={**body, "temperature": 0.2}).content
    assert colder != first


def test_png_answers_are_one_png_per_image(client):
    j = client.post("/api/runs/vae/sample", json={"n": 3, "png": True}).json()
    assert len(j["images"]) == 3 and all(base64.b64decode(p)[:4] == b"\x89PNG" for p in j["images"])
    t = client.post("/api/runs/vae/traverse", json={"steps": 2, "png": True}).json()
    assert [len(s) for s in t["strips"]] == [2, 2] and base64.b64decode(t["strips"][1][0])[:4] == b"\x89PNG"
    m = client.post("/api/runs/vae/manifold", json={"grid": 2, "png": True}).json()
    assert [len(row) for row in m["images"]] == [2, 2] and len(m["codes"]) == 2


@pytest.mark.parametrize("route, body, words", [
    ("sample", {"temperature": 0}, ["temperature", "above 0"]),
    ("sample", {"temperature": -1.5}, ["temperature"]),
    ("sample", {"temperature": 1e9}, ["temperature", "at most 10"]),
    ("sample", {"temperature": "1"}, ["temperature"]),
    ("sample", {"n": 0}, ["n"]),
    ("sample", {"n": 65}, ["n", "64"]),
    ("sample", {"n": 4.0}, ["n"]),
    ("sample", {"n": True}, ["n"]),
    ("sample", {"seed": -1}, ["seed"]),
    ("sample", {"label": 3}, ["not conditional"]),
    ("sample", {"label": -1}, ["label"]),
    ("sample", {"label": 10**30}, ["label"]),
    ("sample", {"size": 3}, ["size", "unknown field"]),
    ("traverse", {"dims": [2]}, ["latent dimension", "at most 1"]),
    ("traverse", {"dims": []}, ["dims"]),
    ("traverse", {"dims": [0, 1, 0]}, ["dims", "1 to 2"]),
    ("traverse", {"dims": list(range(11))}, ["dims", "10"]),
    ("traverse", {"dims": [0.5]}, ["dims"]),
    ("traverse", {"dims": "0"}, ["dims"]),
    ("traverse", {"dims": [10**30]}, ["latent dimension"]),
    ("traverse", {"steps": 1}, ["steps"]),
    ("traverse", {"steps": 16}, ["steps", "15"]),
    ("traverse", {"span": 0}, ["span"]),
    ("traverse", {"span": 11}, ["span", "at most 10"]),
    ("manifold", {"grid": 1}, ["grid"]),
    ("manifold", {"grid": 21}, ["grid", "20"]),
    ("manifold", {"span": 1}, ["span"]),
    ("manifold", {"label": 0}, ["not conditional"]),
    ("latent/decode", {"x": 0, "y": 0, "label": 1}, ["label", "vae", "not conditional"]),
])
def test_bad_values_are_refused_with_one_line(client, route, body, words):
    refused(client.post(f"/api/runs/vae/{route}", json=body), *words)


@pytest.mark.parametrize("route", ["sample", "traverse", "manifold"])
@pytest.mark.parametrize("raw", [b'{"temperature": NaN}', b'{"span": Infinity}', b'{"n": 1e400}', b"[1, 2]",
                                 b'{"label": "\\ud800"}', b"not json"])
def test_unparsable_and_non_finite_bodies_are_4xx(client, route, raw):
    r = client.post(f"/api/runs/vae/{route}", content=raw, headers={"Content-Type": "application/json"})
    refused(r)


@pytest.mark.parametrize("route", ["sample", "traverse", "manifold"])
def test_a_run_that_is_no_vae_is_named(client, route):
    refused(client.post(f"/api/runs/plain/{route}", json={}), f"{route} needs a variational run", "mlp")


def test_a_conditional_vae_needs_a_label_in_range(client):
    refused(client.post("/api/runs/cvae/sample", json={}), "conditional", "label from 0 to 9")
    refused(client.post("/api/runs/cvae/sample", json={"label": 10}), "label 10 is out of range")
    refused(client.post("/api/runs/cvae/traverse", json={}), "label")
    refused(client.post("/api/runs/cvae/manifold", json={}), "label")
    three, seven = (array(client.post("/api/runs/cvae/sample", json={"n": 4, "label": k}).json()["images"])
                    for k in (3, 7))
    assert three.shape == (4, *SHAPE) and not np.allclose(three, seven)  # the label reaches the decoder
    assert client.post("/api/runs/cvae/traverse", json={"label": 3, "steps": 3}).status_code == 200


def test_traverse_sweeps_each_dimension_about_the_prior_mean(client):
    j = client.post("/api/runs/vae3/traverse", json={}).json()
    assert j["dims"] == [0, 1, 2] and j["shape"] == [3, 9, *SHAPE] and j["offsets"][0] == -3 and j["offsets"][-1] == 3
    capped = client.post("/api/runs/vae/traverse", json={}).json()  # [0, 1, 2] capped to a 2-number code
    assert capped["dims"] == [0, 1] and capped["shape"] == [2, 9, *SHAPE]
    one = client.post("/api/runs/vae/traverse", json={"dims": [1], "steps": 5, "span": 2}).json()
    strip = array(one["strips"])
    assert strip.shape == (1, 5, *SHAPE) and one["offsets"] == [-2, -1, 0, 1, 2]
    # the middle step is the prior's mean (0 for the standard prior), whatever the dimension swept
    centre = array(client.post("/api/runs/vae/decode", json={"code": [0.0, 0.0]}).json()["image"])
    assert np.allclose(strip[0, 2], centre, atol=2e-4)
    assert np.allclose(array(capped["strips"])[0, 4], centre, atol=2e-4)
    assert not np.allclose(strip[0, 0], strip[0, 4])


def test_the_manifold_is_for_2_number_codes_and_its_points_decode(client):
    j = client.post("/api/runs/vae/manifold", json={"grid": 4}).json()
    images, codes = array(j["images"]), np.array(j["codes"])
    assert images.shape == (4, 4, *SHAPE) and codes.shape == (4, 4, 2) and j["shape"] == [4, 4, *SHAPE]
    assert images.min() >= 0 and images.max() <= 1
    assert (np.diff(codes[0, :, 0]) > 0).all() and (np.diff(codes[:, 0, 1]) < 0).all()  # z0 rises, z1 falls
    # what the page does on a click: latent/decode of a cell's code gives that cell's image
    point = client.post("/api/runs/vae/latent/decode", json={"x": codes[1, 2, 0], "y": codes[1, 2, 1]}).json()
    assert np.allclose(array(point["image"]), images[1, 2], atol=2e-3)
    assert array(client.post("/api/runs/vae/manifold", json={}).json()["images"]).shape[:2] == (12, 12)
    refused(client.post("/api/runs/vae3/manifold", json={}), "2-number code", "has 3")


def test_a_conditional_manifold_point_decodes_with_its_label(client):
    j = client.post("/api/runs/cvae/manifold", json={"grid": 3, "label": 5}).json()
    images, codes = array(j["images"]), np.array(j["codes"])
    x, y = codes[2, 0]
    refused(client.post("/api/runs/cvae/latent/decode", json={"x": x, "y": y}), "label")
    point = client.post("/api/runs/cvae/latent/decode", json={"x": x, "y": y, "label": 5}).json()
    assert np.allclose(array(point["image"]), images[2, 0], atol=2e-3)


def test_the_other_calls_refuse_a_conditional_run_with_4xx(client):
    # it opens (no threshold without labels) and its reconstructing calls say what they miss
    for path, body in [("reconstruct", {"index": 0}), ("encode", {"index": 0}), ("decode", {"code": [0.0, 0.0]}),
                       ("interpolate", {"a_index": 0, "b_index": 1})]:
        refused(client.post(f"/api/runs/cvae/{path}", json=body), "label")
    refused(client.get("/api/runs/cvae/latent"), "label")


def test_an_answer_too_large_is_refused_before_the_work(client, monkeypatch):
    from aekit.serve import work
    from aekit.tasks import generate

    def never(*a, **k):
        raise AssertionError("generated although the answer is too large")

    for name in ("sample", "traverse", "manifold"):
        monkeypatch.setattr(generate, name, never)
    monkeypatch.setattr(work, "MAX_VALUES", 4 * 28 * 28)
    refused(client.post("/api/runs/vae/sample", json={"n": 5}), "5 images", "ask for fewer")
    refused(client.post("/api/runs/vae/traverse", json={"dims": [0], "steps": 5}), "ask for fewer")
    refused(client.post("/api/runs/vae/manifold", json={"grid": 3}), "9 images", "ask for fewer")
