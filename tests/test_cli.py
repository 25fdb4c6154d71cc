import json
import subprocess
import sys

import numpy as np
import pytest

from aekit.cli import main
from tests.test_sources import make_idx_folder

FAST = ["--epochs", "1", "--max-steps", "5", "--quiet"]


def run(capsys, *args):
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse exits by itself
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--data", "mnist-mini", "--code", "8", "--out", str(d), "--seed", "3", *FAST]) == 0
    return d


def test_train_prints_run_and_metrics(trained, capsys, tmp_path):
    code, out, _ = run(capsys, "train", "--layers", "20", "--code", "4", "--out", str(tmp_path / "r"), "--json", *FAST)
    assert code == 0
    s = json.loads(out)
    assert s["run_dir"] == str(tmp_path / "r") and s["metrics"]["test"]["n"] == 1000
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["model"]["layers"] == [20] and cfg["model"]["code"] == 4 and cfg["run"]["train"]["max_steps"] == 5


def test_train_from_toml_with_flag_override(capsys, tmp_path):
    (tmp_path / "c.toml").write_text('[model]\nname = "mlp"\ncode = 6\n[train]\nepochs = 3\nbatch_size = 32\n')
    code, _, _ = run(capsys, "train", "--config", str(tmp_path / "c.toml"), "--epochs", "1", "--max-steps", "2",
                     "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["run"]["train"]["epochs"] == 1 and cfg["run"]["train"]["batch_size"] == 32 and cfg["model"]["code"] == 6


def test_train_from_a_packaged_recipe_by_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: the short name finds the recipe inside the package
    code, _, _ = run(capsys, "train", "--config", "simplest", "--data", "mnist-mini", "--out", "r", *FAST)
    assert code == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())["run"]
    assert cfg["model"]["code"] == 32 and cfg["train"]["lr"] == 0.002 and cfg["train"]["schedule"] == "cosine"
    # a file of that name in the working directory comes first, as any path does
    (tmp_path / "simplest").write_text('[model]\nname = "mlp"\ncode = 6\n')
    code, _, _ = run(capsys, "train", "--config", "simplest", "--data", "mnist-mini", "--out", "r2", *FAST)
    assert code == 0 and json.loads((tmp_path / "r2" / "config.json").read_text())["model"]["code"] == 6
    # a folder of that name (`--out simplest` made one) does not hide the recipe
    (tmp_path / "simplest").unlink()
    (tmp_path / "simplest").mkdir()
    code, _, err = run(capsys, "train", "--config", "simplest", "--data", "mnist-mini", "--out", "r3", *FAST)
    assert code == 0, err
    assert json.loads((tmp_path / "r3" / "config.json").read_text())["model"]["code"] == 32


def test_the_checkout_configs_folder_is_the_packaged_recipes():
    """README commands, tests and benchmarks name configs/NAME.toml: in a checkout, a link to them."""
    from pathlib import Path

    from aekit.config import recipes_dir

    assert (Path(__file__).resolve().parents[1] / "configs").resolve() == recipes_dir().resolve()


def test_train_resume(capsys, tmp_path):
    d = str(tmp_path / "r")
    assert run(capsys, "train", "--code", "4", "--epochs", "1", "--max-steps", "3", "--quiet", "--out", d)[0] == 0
    code, out, _ = run(capsys, "train", "--out", d, "--resume", "--epochs", "2", "--quiet")
    assert code == 0 and "2 epochs" in out


def test_evaluate_json(trained, capsys):
    code, out, _ = run(capsys, "evaluate", str(trained), "--json")
    m = json.loads(out)
    assert code == 0 and {"sse_per_image", "mse", "psnr", "bce", "n"} <= set(m) and m["n"] == 1000
    summary = json.loads((trained / "summary.json").read_text())
    assert m["sse_per_image"] == pytest.approx(summary["metrics"]["test"]["sse_per_image"])
    code, out, _ = run(capsys, "evaluate", str(trained), "--split", "val", "--json")
    assert json.loads(out)["n"] == 600


def test_reconstruct_writes_png(trained, capsys, tmp_path):
    code, _, _ = run(capsys, "reconstruct", str(trained), "--n", "5", "--out", str(tmp_path / "r.png"))
    assert code == 0 and (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_baseline_pca_json(capsys):
    code, out, _ = run(capsys, "baseline", "pca", "--code", "30", "--json")
    m = json.loads(out)
    assert code == 0 and m["method"] == "pca" and m["n"] == 1000 and 5 < m["sse_per_image"] < 30


def test_demo_runs_offline(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--epochs", "2", "--quiet", "--out", str(tmp_path / "demo"))
    assert code == 0
    assert "autoencoder 784-32-784" in out and "PCA, 32 components" in out
    assert (tmp_path / "demo" / "reconstructions.png").is_file()


def test_listings(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0 and all(m in out for m in ("linear", "mlp", "conv"))
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and "mnist-mini" in out and "fashion-mnist" in out
    from aekit.config import list_recipes

    code, out, _ = run(capsys, "recipes")
    rows = dict(line.split(maxsplit=1) for line in out.splitlines())
    assert code == 0 and rows == list_recipes() and {"simplest", "hinton2006", "vae-mnist"} <= set(rows)
    assert rows["simplest"] == "The lecture's simplest autoencoder"  # the recipe's comment up to its colon


def test_error_missing_run_dir(capsys, tmp_path):
    assert_one_line_error(*run(capsys, "evaluate", str(tmp_path / "nope"))[::2], "no such run directory")


def test_error_unknown_model_and_dataset(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--model", "transformer", "--out", str(tmp_path / "a"), *FAST)
    assert_one_line_error(code, err, "unknown model 'transformer'")
    code, _, err = run(capsys, "train", "--data", "cifar", "--out", str(tmp_path / "b"), *FAST)
    assert_one_line_error(code, err, "unknown dataset 'cifar'")


def test_error_bad_code_and_layers(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--code", "0", "--out", str(tmp_path / "a"), *FAST)
    assert_one_line_error(code, err, "code size", "0")
    code, _, err = run(capsys, "train", "--layers", "10,abc", *FAST)
    assert_one_line_error(code, err, "--layers", "10,abc")


def test_error_corrupt_and_truncated_idx(capsys, tmp_path):
    make_idx_folder(tmp_path / "d")
    f = tmp_path / "d" / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-40])
    code, _, err = run(capsys, "baseline", "pca", "--code", "3", "--data", "mnist", "--data-dir", str(tmp_path / "d"))
    assert_one_line_error(code, err, "t10k-images-idx3-ubyte.gz")
    f.write_bytes(b"garbage that is no IDX file")
    code, _, err = run(capsys, "baseline", "pca", "--code", "3", "--data", "mnist", "--data-dir", str(tmp_path / "d"))
    assert_one_line_error(code, err, "not an IDX file")


def test_error_missing_data_files(capsys, tmp_path):
    code, _, err = run(capsys, "baseline", "pca", "--code", "3", "--data", "mnist", "--data-dir", str(tmp_path))
    assert_one_line_error(code, err, "files are not there")


@pytest.mark.parametrize(("body", "frag"), [("a,b\n1,2\n3,oops\n", "is not a number"), ("1,2\n3,nan\n", "NaN")])
def test_error_bad_csv(capsys, tmp_path, body, frag):
    (tmp_path / "d.csv").write_text(body)
    code, _, err = run(capsys, "train", "--data", f"csv:{tmp_path / 'd.csv'}", *FAST)
    assert_one_line_error(code, err, frag)


def test_error_shape_mismatch(trained, capsys, tmp_path):
    np.save(tmp_path / "rows.npy", np.zeros((20, 5), np.float32))
    code, _, err = run(capsys, "evaluate", str(trained), "--data", f"npy:{tmp_path / 'rows.npy'}")
    assert_one_line_error(code, err, "shape")


def test_error_unknown_flag(capsys):
    code, _, err = run(capsys, "train", "--epochz", "3")
    assert_one_line_error(code, err, "unrecognized arguments")


def test_real_process_error_has_no_traceback(tmp_path):
    p = subprocess.run([sys.executable, "-m", "aekit", "train", "--code", "0", "--quiet", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_help_and_import_do_not_import_torch():
    code = ("import sys, aekit, aekit.cli\n"
            "try:\n    aekit.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.strip().endswith("NO-TORCH")


def test_denoise_command(trained, capsys, tmp_path):
    code, out, _ = run(capsys, "denoise", str(trained), "--noise", "gaussian:0.3", "--json", "--out",
                       str(tmp_path / "d.png"))
    r = json.loads(out)
    assert code == 0 and r["noise"] == "gaussian:0.3" and "median3x3" in r["baselines"]
    assert r["psnr_noisy"] < r["baselines"]["gaussian_blur"]["psnr"]
    assert (tmp_path / "d.png").is_file()


@pytest.mark.parametrize(("flags", "frag"), [(["--noise", "gaussian:-1"], "non-negative"),
                                             (["--sparse", "kl:2"], "between 0 and 1"),
                                             (["--contractive", "-1"], "non-negative")])
def test_error_bad_regulariser_flags(capsys, tmp_path, flags, frag):
    code, _, err = run(capsys, "train", *flags, "--out", str(tmp_path / "x"), *FAST)
    assert_one_line_error(code, err, frag)


def test_train_with_regularisers(capsys, tmp_path):
    code, _, _ = run(capsys, "train", "--code", "50", "--code-activation", "sigmoid", "--sparse", "kl:0.05,0.1",
                       "--contractive", "0.01", "--noise", "salt-pepper:0.2", "--out", str(tmp_path / "r"), *FAST)
    assert code == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["model"]["sparse"] == "kl:0.05,0.1" and cfg["run"]["train"]["noise"] == "salt-pepper:0.2"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_error_cuda_without_gpu(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--device", "cuda", "--out", str(tmp_path / "x"), *FAST)
    assert_one_line_error(code, err, "no CUDA GPU")


def test_error_bad_precision(capsys):
    code, _, err = run(capsys, "train", "--precision", "fp8", *FAST)
    assert_one_line_error(code, err, "fp8")
