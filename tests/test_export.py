"""`aekit export`: ONNX and TorchScript files of every part of every model family give aekit's outputs
(max abs difference <= 1e-5 on 1,000 test samples), carry their metadata and take any batch size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import aekit
from aekit.config import EXPORT_FORMATS, EXPORT_PARTS, RunConfig
from tests.badinput import run_cli

MODELS = {"linear": {"name": "linear", "code": 4}, "mlp": {"name": "mlp", "layers": [16], "code": 4},
          "conv": {"name": "conv", "channels": [4, 8], "code": 4}}
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
PARITY: dict[tuple[str, str, str], dict[str, float]] = {}  # printed with -s, for the parity table


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny mnist-mini run per family (a few steps: parity does not need a good model)."""
    out = {}
    for name, model in MODELS.items():
        d = tmp_path_factory.mktemp(f"export-{name}") / "run"
        aekit.train(RunConfig.from_dict({"model": model, "train": {"epochs": 1, "max_steps": 3}}), d, progress=False)
        out[name] = d
    return out


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
@pytest.mark.parametrize("part", EXPORT_PARTS)
@pytest.mark.parametrize("family", list(MODELS))
def test_parity(runs, family, part, fmt, tmp_path):
    pytest.importorskip("onnxruntime") if fmt == "onnx" else None
    r = aekit.export(runs[family], format=fmt, part=part, out=tmp_path / f"m{SUFFIX[fmt]}",
                     threshold="contamination:0.01" if part == "score" else None)
    assert r["checked_samples"] == 1000
    diffs = r["max_abs_diff"]
    assert all(d <= 1e-5 for n, d in diffs.items() if n not in ("score", "code")), diffs
    assert all(d <= 1e-5 for d in r["max_checked_diff"].values()), r  # scores, codes: relative (check_parity)
    PARITY[(family, part, fmt)] = diffs
    assert set(r["max_abs_diff"]) == {"full": {"recon"}, "encoder": {"code"}, "decoder": {"recon"},
                                      "score": {"score", "error_map"}}[part]


def test_print_parity_table():
    for (family, part, fmt), d in sorted(PARITY.items()):
        print(f"| {family} | {part} | {fmt} | " + ", ".join(f"{k} {v:.2g}" for k, v in d.items()) + " |")


def test_onnx_metadata_and_dynamic_batch(runs, tmp_path, mini):
    ort = pytest.importorskip("onnxruntime")
    from aekit.tasks.anomaly import scores

    path = tmp_path / "score.onnx"
    r = aekit.export(runs["mlp"], format="onnx", part="score", out=path, threshold="percentile:99")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["input_shape"]) == [1, 28, 28] and meta["code_size"] == "4"
    assert meta["value_scaling"] == "uint8 / 255" and meta["aekit_version"] == aekit.__version__
    assert meta["threshold_rule"] == "percentile:99" and meta["threshold_split"] == "val"
    assert meta == r["metadata"] and float(meta["threshold"]) > 0
    model = aekit.load(runs["mlp"])
    for n in (1, 7):
        x = mini.test.x[:n].astype(np.float32) / 255
        s, err_map = sess.run(None, {"x": x})
        assert s.shape == (n,) and err_map.shape == (n, 1, 28, 28)
        np.testing.assert_allclose(s, scores(model, mini.test.x[:n])[0], atol=1e-5)


def test_torchscript_metadata(runs, tmp_path):
    path = tmp_path / "enc.pt"
    aekit.export(runs["conv"], format="torchscript", part="encoder", out=path, check=False)
    extra = {"aekit.json": ""}
    mod = torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra["aekit.json"])
    assert meta["part"] == "encoder" and meta["code_size"] == "4" and json.loads(meta["input_shape"]) == [1, 28, 28]
    assert mod(torch.rand(5, 1, 28, 28)).shape == (5, 4)


def test_cli_writes_and_checks(runs, tmp_path, capsys):
    rc, out, err = run_cli(["export", runs["linear"], "--format", "torchscript", "--part", "full",
                            "--out", tmp_path / "f.pt"], capsys)
    assert rc == 0 and "max abs difference recon" in out, err
    rc, out, _ = run_cli(["export", runs["linear"], "--format", "torchscript", "--out", tmp_path / "f.pt",
                          "--check-only", "--json"], capsys)
    assert rc == 0 and json.loads(out)["max_abs_diff"]["recon"] <= 1e-5
    rc, _, _ = run_cli(["export", runs["linear"], "--format", "torchscript", "--out", tmp_path / "n.pt",
                        "--no-check"], capsys)
    assert rc == 0 and (tmp_path / "n.pt").is_file()


def test_api_name_survives_importing_the_module():
    import aekit.export  # the module of the same name as the function
    from aekit.export import export_run

    assert callable(aekit.export) and aekit.export.__module__ == "aekit.api" and callable(export_run)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_check_only_accepts_untouched_files_and_ignores_the_writer_version(runs, tmp_path, fmt):
    """--check-only compares the metadata with what the run would write now (issue 21, item 10): an
    untouched file passes, for a threshold from threshold.json and one chosen at export time; the
    aekit version that wrote a file is not part of the comparison, so an upgrade does not fail it."""
    pytest.importorskip("onnxruntime") if fmt == "onnx" else None
    from tests.test_bad_input_export import edit_metadata

    for threshold in (None, "percentile:99"):
        out = tmp_path / f"s{SUFFIX[fmt]}"
        aekit.export(runs["conv"], format=fmt, part="score", out=out, threshold=threshold, check=False)
        edit_metadata(out, fmt, {"aekit_version": "0.0.1"})
        r = aekit.export(runs["conv"], format=fmt, part="score", out=out, check_only=True)
        assert r["checked_samples"] == 1000


def test_threshold_is_refused_where_it_would_be_ignored(runs, tmp_path):
    from aekit.errors import AekitError

    with pytest.raises(AekitError, match="--threshold and --check-only"):
        aekit.export(runs["mlp"], part="score", out=tmp_path / "s.onnx", threshold="percentile:99", check_only=True)
    with pytest.raises(AekitError, match="--threshold is for --part score"):
        aekit.export(runs["mlp"], part="decoder", out=tmp_path / "d.onnx", threshold="percentile:99")
    assert not (tmp_path / "d.onnx").exists()


def test_file_budget_holds_every_export_with_room(runs, tmp_path):
    """The size limit of --check-only (item 9) is well above what aekit writes, for every part and format."""
    pytest.importorskip("onnxruntime")
    from aekit.export import FILE_SLACK, file_budget

    for name, run in runs.items():
        model = aekit.load(run)
        for part in EXPORT_PARTS:
            for fmt in EXPORT_FORMATS:
                out = tmp_path / f"{name}-{part}{SUFFIX[fmt]}"
                aekit.export(run, format=fmt, part=part, out=out, check=False,
                             threshold="percentile:99" if part == "score" else None)
                budget = file_budget(model, part)
                assert out.stat().st_size < (budget - FILE_SLACK) / 2 + 64_000, (name, part, fmt)
