"""The right model for each panel of ``aekit serve`` (issue 23): runs tagged by the tasks they were trained
for, the Linear panel's PCA and the Classify panel's probabilities, the presets and sets that train a run
for a panel (a fine-tuning's parent a run the queue made) and the demo set a server with no run trains."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="aekit serve's extra is not installed (pip install 'aekit[serve]')")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient

from aekit.serve.app import create_app
from aekit.serve.jobs import DEMO_SET, EPOCHS, FINETUNES, PRESETS, SETS, JobQueue
from tests.servehelp import panel_runs, tiny_run


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return panel_runs(tmp_path_factory.mktemp("panel-runs"), tmp_path_factory, conditional_vae=True)


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(runs_root=root)) as c:
        yield c


def listed(client) -> dict[str, dict]:
    return {r["id"]: r for r in client.get("/api/runs").json()}


def test_each_run_is_tagged_with_the_tasks_its_config_says_it_was_trained_for(client):
    runs = listed(client)
    assert {rid: r["tasks"] for rid, r in runs.items()} == {
        "ae": ["reconstruct"], "den": ["reconstruct", "denoise"], "inf": ["reconstruct", "infill"],
        "vae": ["reconstruct", "sample"], "cvae": ["sample"],  # a conditional VAE reconstructs only with labels
        "clf-pre": ["classify"], "clf-rand": ["classify"]}
    assert runs["den"]["noise"] == "gaussian:0.3" and runs["inf"]["noise"] == "block:12" and runs["ae"]["noise"] is None
    assert all(isinstance(r["trained_at"], float) for r in runs.values())  # the panels take the newest
    assert runs["vae"]["architecture"] == "784-32-2-32-784"  # fully connected, though its table lists channels
    pre, rnd = runs["clf-pre"], runs["clf-rand"]
    assert (pre["init"], pre["labels"], rnd["init"], rnd["labels"]) == ("pretrained", 1000, "random", 1000)
    assert 0 < pre["test_accuracy"] <= 1 and 0 < rnd["test_accuracy"] <= 1  # summary.json, as aekit finetune wrote it
    assert pre["parent"] is None  # fine-tuned from a folder this server does not serve: no id, and never its path
    assert "usable" in pre and pre["usable"] is False and "Classify panel" in pre["note"]


def test_pca_beside_the_model_with_both_squared_errors(client, root):
    from aekit.baselines import PCA
    from aekit.run import open_run

    r = client.post("/api/runs/ae/pca", json={"index": 3})
    assert r.status_code == 200, r.text
    a = r.json()
    assert (a["components"], a["code_size"], a["fit_images"]) == (2, 2, 5400)  # the code's size; the training split
    o = open_run(root / "ae")
    x = o.split("test").x[3:4].astype(np.float32) / 255
    pca = PCA(2).fit(o.split("train").x)
    projected = pca.inverse_transform(pca.transform(x)).reshape(x.shape)
    assert a["sse_pca"] == pytest.approx(float(np.square(x - projected).sum()), rel=1e-4)
    assert a["sse_model"] == pytest.approx(float(np.square(x - o.model.reconstruct(x)).sum()), rel=1e-4)
    pca_image = np.array(a["pca"]["data"]).reshape(1, 28, 28)
    assert float(np.square(pca_image - x[0]).sum()) == pytest.approx(a["sse_pca"], rel=1e-4)
    # an image sent as numbers gives the same; the fitted PCA is kept with the run (fitted once)
    again = client.post("/api/runs/ae/pca", json={"image": x[0].tolist()}).json()
    assert again["sse_pca"] == pytest.approx(a["sse_pca"], rel=1e-5)
    png = client.post("/api/runs/ae/pca", json={"index": 3, "png": True}).json()
    assert isinstance(png["pca"], str) and isinstance(png["model"], str)
    assert client.post("/api/runs/vae/pca", json={"index": 0}).status_code == 200  # any autoencoder


def test_classify_answers_each_class_probability_and_the_runs_test_accuracy(client):
    runs = listed(client)
    for rid in ("clf-pre", "clf-rand"):
        r = client.post(f"/api/runs/{rid}/classify", json={"index": 5})
        assert r.status_code == 200, r.text
        a = r.json()
        assert len(a["probabilities"]) == 10 and sum(a["probabilities"]) == pytest.approx(1, abs=1e-5)
        assert a["predicted"] == int(np.argmax(a["probabilities"])) and isinstance(a["label"], int)
        assert a["test_accuracy"] == runs[rid]["test_accuracy"] and a["labels"] == 1000
    image = client.post("/api/runs/clf-pre/classify", json={"index": 5}).json()["input"]["data"]
    by_numbers = client.post("/api/runs/clf-pre/classify", json={"image": image}).json()
    assert "label" not in by_numbers  # a drawing has no true class
    assert by_numbers["probabilities"] == pytest.approx(
        client.post("/api/runs/clf-pre/classify", json={"index": 5}).json()["probabilities"], abs=1e-5)


@pytest.mark.parametrize(("path", "body", "detail"), [
    ("/api/runs/ae/classify", {"index": 0}, "ae: an autoencoder run; this call needs a classifier run"),
    ("/api/runs/clf-pre/pca", {"index": 0}, "clf-pre: a classifier run (aekit finetune); this call needs an "),
    ("/api/runs/clf-pre/reconstruct", {"index": 0}, "clf-pre: a classifier run (aekit finetune); this call needs "),
    ("/api/runs/clf-pre/classify", {"index": 1000}, "image: index must lie in 0..999"),
    ("/api/runs/clf-pre/classify", {"image": [0.5, 0.5]}, "image: expected 784 numbers"),
    ("/api/runs/clf-pre/classify", {}, "image: give an image or the index of a test image"),
    ("/api/runs/ae/pca", {"index": -1}, "image: index must lie in 0..999"),
    ("/api/runs/ae/pca", {"image": "not base64 at all"}, "image: "),
    ("/api/runs/ae/pca", {"index": 0, "k": 3}, "k: unknown field"),
    ("/api/runs/cvae/pca", {"index": 0}, "cvae: a conditional VAE reconstructs only with each image's label"),
])
def test_bad_requests_to_the_new_panels_are_one_line_422s(client, root, path, body, detail):
    r = client.post(path, json=body)
    assert r.status_code == 422 and r.json()["detail"].startswith(detail), (r.status_code, r.text)
    assert "\n" not in r.json()["detail"] and str(root) not in r.text


def test_a_sample_too_large_for_an_exact_pca_is_refused_before_any_work(client, monkeypatch):
    from aekit.serve import work

    monkeypatch.setattr(work, "MAX_PCA_DIMS", 100)
    monkeypatch.setattr(work, "_fit_code_pca", lambda s: pytest.fail("fitted despite the refusal"))
    r = client.post("/api/runs/den/pca", json={"index": 0})
    assert r.status_code == 422 and r.json()["detail"].startswith("pca: samples of 784 values are more than the 100")


# -- presets, sets and the demo set ---------------------------------------------------------------------
def test_every_preset_has_its_epochs_and_a_set_names_each_fine_tunings_parent_before_it():
    assert set(EPOCHS) == set(PRESETS) | set(FINETUNES)
    for name, presets in {**SETS, "demo": DEMO_SET}.items():
        for i, preset in enumerate(presets):
            assert preset in PRESETS or FINETUNES[preset][0] in presets[:i], (name, preset)
    assert DEMO_SET[:4] == ["simplest", "denoising", "infilling", "vae"]
    assert [FINETUNES[p][1][-1] for p in DEMO_SET[4:]] == ["pretrained", "random"]  # the pair at 1,000 labels


@pytest.fixture
def idle_queue(monkeypatch, tmp_path):
    """A queue whose worker trains nothing: only what is queued, and how, is looked at."""
    monkeypatch.setattr(JobQueue, "_work", lambda self: None)
    return JobQueue(tmp_path / "runs", lambda out: out.name)


def test_a_set_queues_its_jobs_in_order_each_fine_tuning_on_the_run_queued_before_it(idle_queue):
    q = idle_queue
    jobs = q.submit_set(SETS["classifier"], "mnist-mini")
    encoder, pre, rnd = jobs
    assert [j.preset for j in jobs] == ["denoising", "finetune-pretrained", "finetune-random"]
    assert pre.parent is encoder and rnd.parent is encoder and encoder.parent is None
    assert [j.epochs for j in jobs] == [EPOCHS[p] for p in SETS["classifier"]]  # each preset's own, none asked
    cmd = q._command(pre)
    assert cmd[3:5] == ["finetune", str(encoder.out.resolve())] and cmd[cmd.index("--init") + 1] == "pretrained"
    assert cmd[cmd.index("--labels") + 1] == "1000" and cmd[cmd.index("--out") + 1] == str(pre.out)
    assert pre.public()["parent"] == encoder.id and pre.public()["tasks"] == ["classify"]
    assert pre.public()["epochs"] == 2 * pre.epochs  # two stages, each up to its epochs
    q.cancel(encoder.id)  # nothing to fine-tune without it: both fine-tunings go too
    assert [j.status for j in jobs] == ["cancelled"] * 3
    assert not any(j.out.exists() for j in jobs)  # their empty folders with them


def test_a_fine_tuning_whose_parent_failed_fails_saying_so_and_the_queue_goes_on(idle_queue):
    q = idle_queue
    encoder, pre, rnd = q.submit_set(SETS["classifier"], "mnist-mini")
    encoder.status = "failed"
    assert q._next() is None  # both fine-tunings fail without starting a process
    assert pre.status == rnd.status == "failed" and pre.proc is None
    assert pre.error == f"job #{encoder.id} (denoising), whose run it fine-tunes, failed"
    assert not pre.out.exists() and not rnd.out.exists()  # the folders made for them, never used, went too


@pytest.mark.parametrize(("presets", "detail"), [
    (["finetune-pretrained"], "preset: finetune-pretrained fine-tunes a run the queue trains first; queue it with "
                              "classifier"),
    (["finetune-random", "denoising"], "preset: finetune-random fine-tunes a run the queue trains first"),
    (["simplest", "nope"], "preset: unknown 'nope'"),
    (["simplest"] * 9, "the queue is full (8 jobs)"),
])
def test_a_set_is_queued_whole_or_not_at_all(idle_queue, presets, detail):
    from aekit.errors import AekitError

    with pytest.raises(AekitError, match="^" + detail.replace("(", r"\(").replace(")", r"\)")):
        idle_queue.submit_set(presets, "mnist-mini")
    assert idle_queue.jobs == {} and not any(idle_queue.root.glob("*"))


def test_the_jobs_api_lists_presets_and_sets_and_queues_a_set(tmp_path, monkeypatch):
    monkeypatch.setattr(JobQueue, "_work", lambda self: None)
    with TestClient(create_app(runs_root=tmp_path / "runs")) as c:
        listing = c.get("/api/jobs").json()
        assert listing["presets"][:7] == ["simplest", "deep", "conv", "denoising", "infilling", "vae", "classifier"]
        assert listing["preset_info"]["classifier"]["jobs"] == SETS["classifier"]
        assert listing["preset_info"]["denoising"]["tasks"] == ["reconstruct", "denoise"]
        a = c.post("/api/jobs", json={"preset": "classifier", "epochs": 2}).json()
        assert a["preset"] == "finetune-random" and len(a["queued"]) == 3 and a["parent"] == a["queued"][0]
        jobs = c.get("/api/jobs").json()["jobs"]
        assert [(j["preset"], j["epochs"]) for j in jobs] == [("denoising", 2), ("finetune-pretrained", 4),
                                                             ("finetune-random", 4)]
        r = c.post("/api/jobs", json={"preset": "finetune-pretrained"})
        assert r.status_code == 422 and "queue it with classifier" in r.json()["detail"]


def test_a_server_with_no_run_queues_the_demo_set_as_it_starts_and_answers_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(JobQueue, "_work", lambda self: None)
    app = create_app(runs_root=tmp_path / "runs", demo=True)
    with TestClient(app) as c:  # the lifespan queues the set; nothing waits for training
        assert c.get("/api/runs").json() == [] and c.get("/").status_code == 200
        jobs = c.get("/api/jobs").json()["jobs"]
        assert [j["preset"] for j in jobs] == DEMO_SET and {j["status"] for j in jobs} == {"queued"}
        by_preset = {j["preset"]: j for j in jobs}
        assert by_preset["finetune-pretrained"]["parent"] == by_preset["denoising"]["id"]
        assert by_preset["finetune-random"]["parent"] == by_preset["denoising"]["id"]
    with TestClient(create_app(runs_root=tmp_path / "other")) as c:  # without demo: nothing queued
        assert c.get("/api/jobs").json()["jobs"] == []


def test_aekit_serve_with_no_run_starts_at_once_with_the_demo_set(tmp_path, tmp_path_factory, monkeypatch, capsys):
    import uvicorn

    from aekit.cli import main

    apps = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda srv: apps.append(srv.config.app))
    runs = tmp_path / "runs"
    assert main(["serve", "--runs", str(runs)]) == 0
    assert "the demo set (plain, denoising, infilling, VAE, a classifier pair) trains in the background" in \
        capsys.readouterr().err
    assert not runs.exists() or not any(runs.iterdir())  # nothing trained before the server answers
    monkeypatch.setattr(JobQueue, "_work", lambda self: None)
    with TestClient(apps[-1], base_url="http://localhost") as c:
        assert [j["preset"] for j in c.get("/api/jobs").json()["jobs"]] == DEMO_SET
    for d in runs.iterdir():  # the demo set's empty job folders
        d.rmdir()
    tiny_run(runs, tmp_path_factory, "ae")
    assert main(["serve", "--runs", str(runs)]) == 0  # a run to show: no demo set
    assert "demo set" not in capsys.readouterr().err
    with TestClient(apps[-1], base_url="http://localhost") as c:
        assert c.get("/api/jobs").json()["jobs"] == []


def test_a_set_trains_a_fine_tuning_on_the_encoder_it_trained_first(tmp_path, monkeypatch):
    """Real processes, one epoch each: the fine-tuned run names the encoder's run as its parent, by id. (The
    classifier set less its random-start job, which differs only in its --init: two processes, not three.)"""
    monkeypatch.setitem(SETS, "classifier", ["denoising", "finetune-pretrained"])
    with TestClient(create_app(runs_root=tmp_path / "runs")) as c:
        queued = c.post("/api/jobs", json={"preset": "classifier", "epochs": 1}).json()["queued"]
        deadline = time.monotonic() + 240
        while True:
            jobs = {j["id"]: j for j in c.get("/api/jobs").json()["jobs"]}
            if all(jobs[i]["status"] not in ("queued", "running") for i in queued):
                break
            assert time.monotonic() < deadline, jobs
            time.sleep(0.3)
        assert [jobs[i]["status"] for i in queued] == ["done"] * 2, [jobs[i]["error"] for i in queued]
        encoder, pre = (jobs[i]["run_id"] for i in queued)
        runs = listed(c)
        assert runs[encoder]["tasks"] == ["reconstruct", "denoise"]
        assert (runs[pre]["tasks"], runs[pre]["init"], runs[pre]["labels"], runs[pre]["parent"]) == \
            (["classify"], "pretrained", 1000, encoder)
        assert jobs[queued[1]]["loss_unit"] == "cross-entropy in nats (validation: error rate)"
        epochs = [m["epoch"] for m in c.app.app.state.queue.get(queued[1]).metrics()]
        assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= 2  # both stages, one series
        assert c.post(f"/api/runs/{pre}/classify", json={"index": 0}).status_code == 200


def test_cancelling_a_finished_job_leaves_the_fine_tunings_queued_on_its_run(idle_queue):
    encoder, pre, rnd = idle_queue.submit_set(SETS["classifier"], "mnist-mini")
    encoder.status = "done"  # its run exists: what is queued on it can still be trained
    idle_queue.cancel(encoder.id)
    assert [j.status for j in (encoder, pre, rnd)] == ["done", "queued", "queued"]
    assert pre.out.exists() and rnd.out.exists()


def test_a_classifier_runs_summary_that_is_a_pipe_never_hangs_the_listing(root, tmp_path):
    """A size check passes a FIFO (size 0): its read blocked the listing, and the server's start, for good."""
    import os
    import shutil
    import threading

    from aekit.serve.runs import describe

    d = tmp_path / "clf"
    shutil.copytree(root / "clf-pre", d)
    (d / "summary.json").unlink()
    os.mkfifo(d / "summary.json")
    out: list[dict] = []
    t = threading.Thread(target=lambda: out.append(describe("clf", d)), daemon=True)
    t.start()
    t.join(10)
    assert out and out[0]["kind"] == "classifier" and out[0]["test_accuracy"] is None


def test_an_autoencoder_call_refuses_a_classifier_run_before_opening_it(root):
    """Opening loads the weights and up to 13,000 images; a classifier was opened only to be refused."""
    from aekit.errors import AekitError
    from aekit.serve.runs import RunStore

    store = RunStore({"clf-pre": root / "clf-pre"})
    with pytest.raises(AekitError, match="clf-pre: a classifier run"):
        store.get("clf-pre")
    assert store.opened("clf-pre") is None


def test_serve_with_an_unusable_runs_folder_is_one_error_line(tmp_path, capsys):
    """With no run the demo set is queued as the server starts, where an error was a traceback and exit 3."""
    from aekit.cli import main

    (tmp_path / "afile").write_text("x")
    assert main(["serve", "--runs", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aekit: error: --runs") and "not a folder" in err[0]
    assert main(["serve", "--docs", str(tmp_path / ("a" * 300))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aekit: error: --docs") and "Traceback" not in err[0]
