"""The bad-input corpus for the variational commands (nll, sample, traverse) and the commands that refuse
a conditional VAE: one row per case, each a command line that must end in one clear error line (exit 2,
no traceback).

A row is (id, build, expect): ``build(ctx)`` returns the argv, using ``ctx.run(which)`` (``vae``: a VAE
with a 2-number code; ``cvae``: a conditional VAE on 10 classes; ``plain``: an mlp autoencoder; each
made the first time a row asks for it, see tests/vaeruns.py) and ``ctx.tmp``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.badinput import assert_one_line_error, built_once
from tests.vaeruns import conditional_run, plain_run, vae_run


@dataclass
class Ctx:
    tmp: Path
    _runs: Callable[[str], Path]

    def run(self, which: str) -> str:
        return str(self._runs(which))


def on(which: str, command: str, *flags: str, out: str | None = None) -> Callable[[Ctx], list[str]]:
    """``aekit COMMAND RUN FLAGS`` (``--out`` in the row's folder, when ``out`` names a file)."""
    return lambda c: [command, c.run(which), *flags, *(["--out", str(c.tmp / out)] if out else [])]


def sample(which: str, *flags: str, out: str = "grid.png") -> Callable[[Ctx], list[str]]:
    return on(which, "sample", *flags, out=out)


def traverse(which: str, *flags: str, out: str = "traverse.png") -> Callable[[Ctx], list[str]]:
    return on(which, "traverse", *flags, out=out)


def folder(path: Path) -> Path:
    path.mkdir()
    return path


def unlabelled_images(c: Ctx) -> str:
    """mnist-mini's test digits as an npy: dataset, without labels."""
    from aekit.data.sources import load_dataset

    path = c.tmp / "digits.npy"
    np.save(path, load_dataset("mnist-mini").test.x[:200])
    return f"npy:{path}"


ROWS: list[tuple[str, Callable[[Ctx], list[str]], str]] = [
    # sample
    ("temperature-nan", sample("vae", "--temperature", "nan"), "temperature must be a number above 0"),
    ("temperature-zero", sample("vae", "--temperature", "0"), "temperature must be a number above 0"),
    ("temperature-negative", sample("vae", "--temperature", "-1"), "temperature must be"),
    ("temperature-too-hot", sample("vae", "--temperature", "11"), "at most 10"),
    ("temperature-inf", sample("vae", "--temperature", "inf"), "temperature must be"),
    ("temperature-text", sample("vae", "--temperature", "warm"), "invalid float value"),
    ("label-11", sample("cvae", "--label", "11"), "label 11 is out of range: this model knows labels 0 to 9"),
    ("label-negative", sample("cvae", "--label", "-1"), "label -1 is out of range"),
    ("label-unconditional", sample("vae", "--label", "3"), "not conditional (n_classes 0): it takes no labels"),
    ("no-label-conditional", sample("cvae"), "conditional VAE: give a label from 0 to 9"),
    ("n-zero", sample("vae", "--n", "0"), "--n must be a whole number, at least 1"),
    ("n-negative", sample("vae", "--n", "-5"), "--n must be"),
    ("n-100000-picture", sample("vae", "--n", "100000"), "a picture holds at most 1,024 images"),
    ("n-too-many-npy", sample("vae", "--n", "100001", out="s.npy"), "at most 100,000"),
    ("sample-bad-suffix", sample("vae", out="grid.txt"), "name a .png, .pdf, .svg, .jpg, .jpeg or .npy file"),
    ("sample-out-folder", lambda c: ["sample", c.run("vae"), "--out", str(folder(c.tmp / "pics.png"))],
     "is a folder; name a file to write"),
    ("sample-seed-negative", sample("vae", "--seed", "-1"), "seed must be a whole number, at least 0"),
    ("sample-plain", sample("plain"), "sample needs a variational run (model vae); this run is mlp"),
    ("sample-no-run", lambda c: ["sample", str(c.tmp / "nothing"), "--out", str(c.tmp / "s.png")],
     "no such run directory"),
    # traverse
    ("dims-99", traverse("vae", "--dims", "99"), "a latent dimension (dims) must be a whole number, at least 0 and "
     "at most 1, got 99"),
    ("dims-negative", traverse("vae", "--dims", "0,-1"), "a latent dimension (dims) must be"),
    ("dims-empty", traverse("vae", "--dims", ""), "dims must be a list of 1 to 2 latent dimensions"),
    ("dims-text", traverse("vae", "--dims", "x,y"), "expected whole numbers separated by commas"),
    ("steps-one", traverse("vae", "--steps", "1"), "steps must be a whole number, at least 2"),
    ("steps-too-many", traverse("vae", "--steps", "101"), "at most 100"),
    ("span-zero", traverse("vae", "--span", "0"), "span must be a number above 0"),
    ("span-nan", traverse("vae", "--span", "nan"), "span must be"),
    ("traverse-bad-suffix", traverse("vae", out="t.csv"), "name a .png"),
    ("traverse-label-unconditional", traverse("vae", "--label", "2"), "it takes no labels"),
    ("traverse-label-11", traverse("cvae", "--label", "11"), "label 11 is out of range"),
    ("traverse-plain", traverse("plain"), "traverse needs a variational run (model vae); this run is mlp"),
    # nll
    ("nll-samples-zero", on("vae", "nll", "--samples", "0"), "samples must be a whole number, at least 1"),
    ("nll-samples-1e7", on("vae", "nll", "--samples", "10000000"), "at most 1,000,000"),
    ("nll-batch-zero", on("vae", "nll", "--batch", "0"), "batch must be a whole number, at least 1"),
    ("nll-batch-huge", on("vae", "nll", "--batch", "1000000"), "at most 65,536"),
    ("nll-seed-negative", on("vae", "nll", "--samples", "5", "--seed", "-3"), "seed must be"),
    ("nll-split-unknown", on("vae", "nll", "--split", "everything"), "invalid choice"),
    ("nll-plain", on("plain", "nll", "--samples", "5"), "nll needs a variational run (model vae); this run is mlp"),
    ("nll-conditional-unlabelled", lambda c: ["nll", c.run("cvae"), "--samples", "5", "--data", unlabelled_images(c)],
     "the test split has no labels"),
    # a conditional VAE where a command has no label to give it
    ("anomaly-conditional", on("cvae", "anomaly"), "an anomaly score does not take a conditional VAE"),
    ("interpolate-conditional", on("cvae", "interpolate", "--from", "0", "--to", "1", out="i.png"),
     "interpolate does not take a conditional VAE"),
    ("export-conditional", on("cvae", "export", "--part", "encoder", out="e.onnx"),
     "aekit export does not take a conditional VAE"),
    ("encode-conditional-unlabelled", lambda c: ["encode", c.run("cvae"), "--data", unlabelled_images(c), "--out",
                                                 str(c.tmp / "c.npy")], "this split has no labels"),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    return built_once(tmp_path_factory, "bad-generate", {
        "vae": lambda d: vae_run(d, epochs=1), "cvae": lambda d: conditional_run(d, steps=20), "plain": plain_run})


@pytest.mark.parametrize(("case", "build", "expect"), [pytest.param(*r, id=r[0]) for r in ROWS])
def test_bad_input(case: str, build: Callable[[Ctx], list[str]], expect: str, tmp_path: Path,
                   runs: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(build(Ctx(tmp_path, runs)), capsys, expect)
