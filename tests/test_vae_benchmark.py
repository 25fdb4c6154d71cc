"""benchmarks/vae.py's own bookkeeping, without training anything long and without pythae: the quick
subsets keep what dynamic binarisation needs, a shortened recipe keeps its KL warm-up's share, the
copy of a pythae-shaped model into an aekit VAE is the same function, and the conditional VAE's shares
are counted per digit."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from aekit.config import load_config
from aekit.data.sources import load_dataset
from aekit.registry import create_model

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("vae_benchmark", ROOT / "benchmarks" / "vae.py")
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # its dataclasses look their module up while being made
spec.loader.exec_module(bench)


def test_limited_keeps_levels_labels_and_binarisation_record() -> None:
    ds = load_dataset("mnist-mini-binary")
    small = bench.limited(ds, 50, 20)
    assert (len(small.train), len(small.test)) == (50, 20)
    assert small.train.levels is not None and small.train.levels.shape == small.train.x.shape
    np.testing.assert_array_equal(small.train.levels, ds.train.levels[:50])
    np.testing.assert_array_equal(small.test.y, ds.test.y[:20])
    assert small.describe()["binarisation"] == ds.describe()["binarisation"]
    assert bench.limited(ds, None, None).train is ds.train


def test_shortened_recipe_keeps_the_warmups_share() -> None:
    recipe = load_config(ROOT / "configs" / bench.ROWS["vamp"].recipe)
    args = argparse.Namespace(data_dir="/nowhere", device="cpu", epochs=recipe.train.epochs // 10)
    cfg, changed = bench.recipe_config(bench.ROWS["vamp"], args)
    assert cfg.train.epochs == recipe.train.epochs // 10
    assert cfg.model["kl_warmup"] == max(1, round(recipe.model["kl_warmup"] / 10))
    assert cfg.data.data_dir == "/nowhere" and "train.epochs" in changed
    args.epochs = None  # the recipe as written, only the data folder and device set
    cfg, changed = bench.recipe_config(bench.ROWS["vamp"], args)
    assert cfg.train.epochs == recipe.train.epochs and cfg.model == recipe.model
    assert set(changed) == {"data.data_dir", "train.device"}


class PythaeShapedEncoder(nn.Module):
    """The layout of the benchmark's pythae encoder: ``body``, then two heads, outputs by name."""

    def __init__(self, code: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU())
        self.embedding, self.log_var = nn.Linear(hidden, code), nn.Linear(hidden, code)

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        h = self.body(x)
        return SimpleNamespace(embedding=self.embedding(h), log_covariance=self.log_var(h))


class PythaeShapedDecoder(nn.Module):
    def __init__(self, code: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(code, hidden), nn.ReLU(), nn.Linear(hidden, 784), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"reconstruction": self.body(z).reshape(len(z), 1, 28, 28)}


def test_copy_of_a_pythae_model_is_the_same_function() -> None:
    torch.manual_seed(0)
    code, hidden = bench.PYTHAE["code"], bench.PYTHAE["layers"]
    pmodel = SimpleNamespace(encoder=PythaeShapedEncoder(code, hidden), decoder=PythaeShapedDecoder(code, hidden))
    copy = bench.as_aekit(pmodel, "cpu")
    assert copy.pythae_copy_error < 1e-5
    with torch.no_grad():  # a copy that is not the same function is refused, not scored
        pmodel.decoder.body[2].bias.add_(0.5)
    with pytest.raises(SystemExit, match="differs"):
        bench.copy_error(pmodel, copy, "cpu")


class Always(nn.Module):
    """A 'classifier' that reads every image as one digit."""

    def __init__(self, digit: int) -> None:
        super().__init__()
        self.digit = digit
        self.anchor = nn.Parameter(torch.zeros(()))  # a device for accuracy() to read

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((len(x),), self.digit), 10).float() + self.anchor


def test_label_shares_are_counted_per_digit() -> None:
    torch.manual_seed(0)
    model = create_model("vae", (1, 28, 28), layers=[8], code=2, n_classes=10, likelihood="bernoulli")
    about = {"dir": "-", "test_accuracy": 1.0, "epochs": 0}
    res = bench.label_shares(model, (Always(3), about), seed=0, judged=True)
    assert res["label_shares"] == {str(d): float(d == 3) for d in range(10)}
    assert res["worst_share"] == 0.0 and res["reached"] is False
    assert bench.label_shares(model, (Always(3), about), seed=0, judged=False)["reached"] is None


def test_unbuilt_row_is_printed_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    row = bench.Row("later", "a model not built yet", None, "-", "-")
    bench.print_rows([bench.not_built(row)])
    assert "not built" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--rows", "bogus"], ["--rows", ""]])
def test_bad_arguments_are_one_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
