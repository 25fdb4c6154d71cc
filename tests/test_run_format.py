"""docs/guides/run-folder.md: its plain-PyTorch snippet reproduces aekit's reconstructions of a trained mlp."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import aekit
from aekit.config import RunConfig, TrainConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "guides" / "run-folder.md"


def snippet() -> str:
    text = DOC.read_text()
    part = text[text.index("## Reading a run without aekit"):]
    return re.search(r"```python\n(.*?)```", part, re.S).group(1)


def test_snippet_is_short_and_needs_no_aekit():
    code = snippet()
    assert len(code.strip().splitlines()) <= 20
    assert "aekit" not in code


@pytest.mark.parametrize(("data", "model"), [
    ("mnist-mini", {"name": "mlp", "layers": [24, 12], "code": 4}),  # images in [0, 1]: sigmoid output
    ("synthetic:curve", {"name": "mlp", "layers": [8], "code": 2, "activation": "tanh",
                         "code_activation": "tanh"}),  # real values: linear output
])
def test_snippet_reproduces_reconstruct(tmp_path, data, model):
    cfg = RunConfig(train=TrainConfig(epochs=1, max_steps=5))
    cfg.data.name, cfg.model = data, model
    run = aekit.train(cfg, tmp_path / "r", progress=False)
    ns: dict = {}
    exec(snippet(), ns)
    reconstruct = ns["load_mlp"](str(tmp_path / "r"))
    ds = aekit.load_dataset(data)
    x = ds.test.x[:64]
    xf = x.astype(np.float32) / 255 if x.dtype == np.uint8 else x.astype(np.float32)
    expected = aekit.load(run.dir).reconstruct(x)
    got = reconstruct(xf).detach().numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
