"""Training jobs through ``aekit serve``'s API: queue, live events, cancel, the new run in the picker."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="aekit serve's extra is not installed (pip install 'aekit[serve]')")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient

from aekit.serve.app import create_app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    configs = tmp_path_factory.mktemp("configs")
    shutil.copy(ROOT / "configs" / "simplest.toml", configs)
    with TestClient(create_app(runs_root=tmp_path_factory.mktemp("runs"), configs=configs)) as c:
        yield c


def wait_for(client, jid: int, statuses: tuple[str, ...], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = next(j for j in client.get("/api/jobs").json()["jobs"] if j["id"] == jid)
        if job["status"] in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {jid} never reached {statuses}")


def test_a_job_streams_its_losses_and_its_run_appears(client):
    assert client.get("/api/jobs").json()["presets"] == ["simplest", "deep", "conv", "denoising", "infilling", "vae",
                                                         "classifier", "recipe:simplest.toml"]
    job = client.post("/api/jobs", json={"preset": "recipe:simplest.toml", "epochs": 2}).json()
    assert job["status"] in ("queued", "running")
    events = []
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["status"] == "done", events[-1]
    assert [m["epoch"] for m in events[-1]["metrics"]] == [1, 2]
    assert events[-1]["preview"]["recons"]["shape"] == [6, 1, 28, 28]  # by the best weights so far
    assert events[-1]["loss_unit"] == "MSE per value"  # what the Train panel's y axis says
    rid = events[-1]["run_id"]
    assert rid in [r["id"] for r in client.get("/api/runs").json()]
    assert client.post(f"/api/runs/{rid}/reconstruct", json={"index": 0}).status_code == 200
    (run,) = [r for r in client.get("/api/runs").json() if r["id"] == rid]
    assert run["layers"] == [] and run["code"] == 32 and run["dataset"] == "mnist-mini"  # the recipe, on mnist-mini


def test_one_job_at_a_time_queue_and_cancel(client):
    long = client.post("/api/jobs", json={"preset": "simplest", "epochs": 200}).json()
    short = client.post("/api/jobs", json={"preset": "simplest", "epochs": 1}).json()
    wait_for(client, long["id"], ("running",))
    assert wait_for(client, short["id"], ("queued",))["status"] == "queued"
    assert client.post(f"/api/jobs/{short['id']}/cancel", json={}).json()["status"] == "cancelled"
    assert client.post(f"/api/jobs/{long['id']}/cancel", json={}).json()["status"] == "cancelled"
    deadline = time.monotonic() + 30
    while client.app.app.state.queue.get(long["id"]).proc.poll() is None:  # SIGTERM: checkpoint and stop
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.mark.parametrize("body", [{"preset": "nope"}, {"preset": "recipe:../x.toml"},
                                  {"data": "npy:/etc/passwd"}, {"data": "mnist"}, {"epochs": 0},
                                  {"epochs": "5"}, {"preset": 1}, {"other": 1}])
def test_bad_jobs_are_refused(client, body):
    assert client.post("/api/jobs", json=body).status_code == 422


def test_unknown_job_is_404(client):
    assert client.get("/api/jobs/999/events").status_code == 404
    assert client.post("/api/jobs/999/cancel", json={}).status_code == 404
    assert client.get("/api/jobs/x/events").status_code == 422
