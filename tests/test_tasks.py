import json

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main
from aekit.config import RunConfig, TrainConfig
from aekit.errors import AekitError
from tests.test_cli import assert_one_line_error, run


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("tasks") / "run"
    cfg = RunConfig(model={"name": "mlp", "code": 8}, train=TrainConfig(epochs=2, batch_size=64, lr=5e-3))
    aekit.train(cfg, d, progress=False)
    return d


def test_numpy_encode_decode_any_batch(mini_run, mini):
    m = aekit.load(mini_run)
    codes = m.encode(mini.test.x[:5])
    assert isinstance(codes, np.ndarray) and codes.shape == (5, 8)
    flat = m.encode(mini.test.x[:5].reshape(5, -1))
    np.testing.assert_allclose(flat, codes)
    assert m.encode(mini.test.x[:0]).shape == (0, 8)
    out = m.decode(codes)
    assert out.shape == (5, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    t = m.encode(torch.rand(3, 1, 28, 28))
    assert isinstance(t, torch.Tensor)
    with pytest.raises(AekitError, match="batch of samples"):
        m.encode(np.zeros(784, np.float32))
    with pytest.raises(AekitError, match="takes samples of shape"):
        m.encode(np.zeros((2, 100), np.float32))
    with pytest.raises(AekitError, match=r"codes of shape \(N, 8\)"):
        m.decode(np.zeros((2, 3), np.float32))


def test_encode_command_npy_and_csv(mini_run, capsys, tmp_path):
    code, _, _ = run(capsys, "encode", str(mini_run), "--out", str(tmp_path / "c.npy"))
    assert code == 0
    codes, labels = np.load(tmp_path / "c.npy"), np.load(tmp_path / "c.labels.npy")
    assert codes.shape == (1000, 8) and labels.shape == (1000,)
    code, _, _ = run(capsys, "encode", str(mini_run), "--split", "val", "--out", str(tmp_path / "c.csv"))
    lines = (tmp_path / "c.csv").read_text().splitlines()
    assert code == 0 and lines[0].endswith(",label") and len(lines) == 601
    code, _, err = run(capsys, "encode", str(mini_run), "--out", str(tmp_path / "c.txt"))
    assert_one_line_error(code, err, ".npy or .csv")


def test_probe_command(mini_run, capsys):
    code, out, _ = run(capsys, "probe", str(mini_run), "--max-train", "1500", "--json")
    r = json.loads(out)
    assert code == 0 and set(r["probes"]) == {"autoencoder", "pixels", "pca"}
    for p in r["probes"].values():
        assert 0.5 < p["logistic"] <= 1 and 0.5 < p["knn5"] <= 1


def test_latent_map_and_interpolate(mini_run, capsys, tmp_path):
    assert run(capsys, "latent-map", str(mini_run), "--out", str(tmp_path / "m.png"))[0] == 0
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    code, _, _ = run(capsys, "interpolate", str(mini_run), "--from", "0", "--to", "5", "--steps", "6",
                     "--out", str(tmp_path / "s.png"))
    assert code == 0 and (tmp_path / "s.png").is_file()
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((40, 40)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    code, _, _ = run(capsys, "interpolate", str(mini_run), "--from", str(tmp_path / "a.png"), "--to", "3",
                     "--out", str(tmp_path / "s2.png"))
    assert code == 0


def test_interpolation_endpoints(mini_run, mini):
    from aekit.metrics import as_float
    from aekit.tasks.blend import interpolate

    m = aekit.load(mini_run)
    a, b = as_float(mini.test.x[0]), as_float(mini.test.x[1])
    line, fade = interpolate(m, a, b, 5)
    assert line.shape == fade.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(fade[0], a)
    np.testing.assert_allclose(fade[-1], b)
    np.testing.assert_allclose(line[0], m.reconstruct(a[None])[0], atol=1e-5)


def test_interpolate_bad_input(mini_run, capsys, tmp_path):
    code, _, err = run(capsys, "interpolate", str(mini_run), "--from", "5000", "--to", "1")
    assert_one_line_error(code, err, "out of range")
    (tmp_path / "x.png").write_text("not an image")
    code, _, err = run(capsys, "interpolate", str(mini_run), "--from", str(tmp_path / "x.png"), "--to", "1")
    assert_one_line_error(code, err, "not a readable image")
    code, _, err = run(capsys, "interpolate", str(mini_run), "--from", "1", "--to", "2", "--steps", "1")
    assert_one_line_error(code, err, "at least 2")


def test_main_is_importable():
    assert callable(main)


def test_masks():
    from aekit.tasks.inpaint import parse_mask

    assert parse_mask("center:14", (28, 28)).sum() == 196
    assert parse_mask("rows:10-18", (28, 28)).sum() == 9 * 28
    r = parse_mask("random:0.5", (28, 28))
    assert 0.4 < r.mean() < 0.6 and np.array_equal(r, parse_mask("random:0.5", (28, 28)))
    for bad, msg in [("center:40", "1 to 28"), ("random:1.5", "strictly"), ("rows:20-5", "rows must"),
                     ("blob:3", "unknown mask"), ("center:x", "expected a number")]:
        with pytest.raises(AekitError, match=msg):
            parse_mask(bad, (28, 28))


def test_inpaint_command_and_mask_file(mini_run, capsys, tmp_path):
    from PIL import Image

    code, out, _ = run(capsys, "inpaint", str(mini_run), "--mask", "center:14", "--iters", "5", "--json",
                       "--out", str(tmp_path / "i.png"))
    r = json.loads(out)
    assert code == 0 and r["missing_fraction"] == pytest.approx(196 / 784)
    assert set(r["baselines"]) == {"mean_image", "nearest_observed", "biharmonic", "telea"}
    assert (tmp_path / "i.png").is_file()
    m = np.zeros((28, 28), np.uint8)
    m[5:9] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    assert run(capsys, "inpaint", str(mini_run), "--mask", str(tmp_path / "m.png"), "--iters", "2",
               "--start", "zeros")[0] == 0
    Image.fromarray(np.zeros((10, 10), np.uint8) + 255).save(tmp_path / "small.png")
    code, _, err = run(capsys, "inpaint", str(mini_run), "--mask", str(tmp_path / "small.png"))
    assert_one_line_error(code, err, "10x10 but the images are 28x28")


def test_inpaint_keeps_observed_pixels(mini_run, mini):
    from aekit.metrics import as_float
    from aekit.tasks.inpaint import fill, parse_mask

    m = aekit.load(mini_run)
    x = as_float(mini.test.x[:4])
    mask = parse_mask("center:10", (28, 28))
    filled = fill(m, x, mask, x.mean(0), iters=3)
    np.testing.assert_array_equal(filled[..., ~mask], x[..., ~mask])
    assert not np.allclose(filled[..., mask], x.mean(0)[..., mask])


def test_anomaly_command(mini_run, capsys, tmp_path):
    code, out, _ = run(capsys, "anomaly", str(mini_run), "--contamination", "0.05", "--out", str(tmp_path / "s.csv"),
                       "--maps", str(tmp_path / "m.png"), "--json")
    r = json.loads(out)
    assert code == 0 and r["n"] == 1000 and 0.0 < r["flagged_fraction"] < 0.2
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "index,score,anomaly,label" and len(lines) == 1001
    assert (tmp_path / "m.png").is_file()
    code, _, err = run(capsys, "anomaly", str(mini_run), "--contamination", "0.9")
    assert_one_line_error(code, err, "contamination")


def test_anomaly_scores_rank_noise_above_digits(mini_run, mini):
    from aekit.tasks.anomaly import auroc, scores

    m = aekit.load(mini_run)
    noise = (np.random.default_rng(0).random((100, 1, 28, 28)) * 255).astype(np.uint8)
    x = np.concatenate([mini.test.x[:100], noise])
    s, _ = scores(m, x)
    assert auroc(s, np.r_[np.zeros(100), np.ones(100)]) > 0.95


def test_report_is_self_contained(mini_run, capsys, tmp_path):
    code, _, _ = run(capsys, "report", str(mini_run), "--out", str(tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text()
    assert code == 0 and page.startswith("<!doctype html>")
    for section in ("Test metrics", "Loss curves", "Reconstructions", "Latent map", "Interpolation", "Denoising",
                    "Infilling", "Probes", "Config"):
        assert section in page, section
    assert page.count("data:image/png;base64,") >= 6 and 'src="http' not in page
