"""The bad-input corpus for thresholds and export: one row per case, each a command line that must end
in one clear error line (exit 2, no traceback).

A row is (id, build, expect): ``build(ctx)`` returns the argv, using ``ctx.run`` (a tiny mnist-mini
run, labelled), ``ctx.unlabelled`` (a tiny run on an ``npy:`` file without labels), ``ctx.tmp``, or a
copy of the run whose threshold.json (or weights) a row damages (``run_with``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.badinput import assert_one_line_error


@dataclass
class Ctx:
    tmp: Path
    _runs: Callable[[str], Path]

    @property
    def run(self) -> str:
        return str(self._runs("mini"))

    @property
    def unlabelled(self) -> str:
        return str(self._runs("npy"))


def on(which: str, command: str, *flags: str) -> Callable[[Ctx], list[str]]:
    return lambda c: [command, c.run if which == "mini" else c.unlabelled, *flags]


def corrupt_onnx(c: Ctx) -> str:
    p = c.tmp / "bad.onnx"
    p.write_bytes(b"\x08\x07garbage, not a protobuf" * 50)
    return str(p)


def encoder_pt(c: Ctx) -> str:
    import aekit

    p = c.tmp / "enc.pt"
    aekit.export(c.run, format="torchscript", part="encoder", out=p, check=False)
    return str(p)


def truncated_pt(c: Ctx) -> str:
    p = Path(encoder_pt(c))
    p.write_bytes(p.read_bytes()[:300])
    return str(p)


def run_with(edit: Callable[[Path], object], which: str = "mini") -> Callable[[Ctx], str]:
    """A copy of the mini run (or the npy run, whose tabular data gives its threshold an error_scale)
    with its threshold.json (or weights) damaged by ``edit(folder)``."""
    def build(c: Ctx) -> str:
        import shutil

        d = Path(shutil.copytree(c.run if which == "mini" else c.unlabelled, c.tmp / "damaged"))
        edit(d)
        return str(d)

    return build


def threshold_text(text: str) -> Callable[[Ctx], str]:
    return run_with(lambda d: (d / "threshold.json").write_text(text))


def other_weights(d: Path) -> None:
    from safetensors.torch import load_file, save_file

    w = load_file(d / "model.safetensors")
    name = sorted(w)[0]
    w[name] = w[name] + 1e-3
    save_file(w, d / "model.safetensors")


def scale_text(text: str) -> Callable[[Ctx], str]:
    """The npy run with its stored error_scale replaced by the JSON ``text`` (its digest still right)."""
    def edit(d: Path) -> None:
        import json

        rec = json.loads((d / "threshold.json").read_text())
        assert len(rec["error_scale"]) == 8  # the npy run's 8 features
        (d / "threshold.json").write_text(json.dumps({**rec, "error_scale": None}).replace(
            '"error_scale": null', f'"error_scale": {text}'))

    return run_with(edit, "npy")


def score_export(run: Callable[[Ctx], str]) -> Callable[[Ctx], list[str]]:
    return lambda c: ["export", run(c), "--part", "score", "--format", "torchscript", "--out", str(c.tmp / "s.pt")]


GOOD = '"rule": "percentile:99", "split": "val", "weights_sha256": "0"'

ROWS: list[tuple[str, Callable[[Ctx], list[str]], str]] = [
    ("anomaly-fpr-without-labels", on("npy", "anomaly", "--threshold", "fpr:0.01"), "needs labels"),
    ("anomaly-percentile-101", on("mini", "anomaly", "--threshold", "percentile:101"),
     "--threshold percentile must lie in [50, 100]"),
    ("anomaly-percentile-text", on("mini", "anomaly", "--threshold", "percentile:high"), "expected a number"),
    ("anomaly-fpr-one", on("mini", "anomaly", "--threshold", "fpr:1"), "--threshold fpr must lie in (0, 1)"),
    ("anomaly-contamination-0.6", on("mini", "anomaly", "--threshold", "contamination:0.6"), "(0, 0.5]"),
    ("anomaly-unknown-kind", on("mini", "anomaly", "--threshold", "median:3"), "KIND one of contamination"),
    ("anomaly-no-colon", on("mini", "anomaly", "--threshold", "0.01"), "KIND:VALUE"),
    ("anomaly-fpr-no-normal-in-val", on("mini", "anomaly", "--threshold", "fpr:0.01", "--normal-classes", "99"),
     "no normal samples"),
    ("export-missing-run", lambda c: ["export", str(c.tmp / "nope"), "--out", str(c.tmp / "m.onnx")],
     "no such run directory"),
    ("export-unknown-format", on("mini", "export", "--format", "tflite", "--out", "m.onnx"), "--format"),
    ("export-unknown-part", on("mini", "export", "--part", "middle", "--out", "m.onnx"), "--part"),
    ("export-wrong-suffix", lambda c: ["export", c.run, "--format", "torchscript", "--out", str(c.tmp / "m.onnx")],
     "name a .pt or .ts file"),
    ("export-score-without-threshold", score_export(run_with(lambda d: (d / "threshold.json").unlink())),
     "needs a threshold"),
    ("export-score-threshold-corrupt", score_export(threshold_text('{"threshold": 12.5, "ru')), "corrupt JSON"),
    ("export-score-threshold-a-list", score_export(threshold_text("[12.5]")), "expected a JSON object"),
    ("export-score-threshold-nan", score_export(threshold_text('{"threshold": NaN, ' + GOOD + "}")),
     "threshold must be a finite number"),
    ("export-score-threshold-text", score_export(threshold_text('{"threshold": "high", ' + GOOD + "}")),
     "threshold must be a finite number"),
    ("export-score-threshold-bad-rule",
     score_export(threshold_text('{"threshold": 1.0, "rule": "percentile:101", "split": "val"}')),
     "rule: percentile must lie in [50, 100]"),
    ("export-score-threshold-no-digest",
     score_export(threshold_text('{"threshold": 1.0, "rule": "percentile:99", "split": "val"}')), "weights_sha256"),
    ("export-score-threshold-other-weights", score_export(run_with(other_weights)), "set for other weights"),
    ("export-score-threshold-a-folder", score_export(run_with(lambda d: ((d / "threshold.json").unlink(),
                                                                         (d / "threshold.json").mkdir()))),
     "is a folder"),
    ("anomaly-threshold-huge-integer", lambda c: ["anomaly", threshold_text('{"threshold": 1' + "0" * 400 + ", "
                                                                             + GOOD + "}")(c)],
     "threshold must be a finite number"),
    ("export-score-error-scale-text", score_export(scale_text('"1,2"')), "error_scale must be a list of numbers"),
    ("export-score-error-scale-wrong-length", score_export(scale_text("[1, 2, 3]")),
     "error_scale holds 3 numbers but the model has 8 values"),
    ("anomaly-error-scale-nan", lambda c: ["anomaly", scale_text("[NaN, 1, 1, 1, 1, 1, 1, 1]")(c)],
     "error_scale must be a list of finite numbers of at least 1e-12"),
    ("anomaly-error-scale-zero", lambda c: ["anomaly", scale_text("[0, 1, 1, 1, 1, 1, 1, 1]")(c)],
     "of at least 1e-12"),
    ("anomaly-error-scale-huge-integer",
     lambda c: ["anomaly", scale_text("[1" + "0" * 400 + ", 1, 1, 1, 1, 1, 1, 1]")(c)],
     "of at least 1e-12"),
    ("anomaly-threshold-corrupt", lambda c: ["anomaly", threshold_text("{")(c)], "corrupt JSON"),
    ("export-score-bad-threshold", lambda c: ["export", c.run, "--part", "score", "--threshold", "percentile:101",
                                              "--out", str(c.tmp / "s.onnx")], "[50, 100]"),
    ("export-check-corrupt-onnx", lambda c: ["export", c.run, "--check-only", "--out", corrupt_onnx(c)],
     "cannot run it as onnx"),
    ("export-check-truncated-torchscript", lambda c: ["export", c.run, "--check-only", "--format", "torchscript",
                                                      "--out", truncated_pt(c)], "cannot run it as torchscript"),
    ("export-check-wrong-part", lambda c: ["export", c.run, "--check-only", "--part", "full", "--format",
                                           "torchscript", "--out", encoder_pt(c)], "was it exported"),
    ("export-check-missing-file", lambda c: ["export", c.run, "--check-only", "--out", str(c.tmp / "no.onnx")],
     "no such file"),
    ("anomaly-both-rules", on("mini", "anomaly", "--threshold", "fpr:0.01", "--contamination", "0.1"), "not both"),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Tiny runs (code 4, one step), each trained the first time a row asks for it."""
    made: dict[str, Path] = {}

    def get(which: str) -> Path:
        if which not in made:
            import aekit
            from aekit.config import RunConfig

            d = tmp_path_factory.mktemp(f"bad-export-{which}")
            data = "mnist-mini"
            if which == "npy":
                np.save(d / "x.npy", np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32))
                data = f"npy:{d / 'x.npy'}"
            cfg = RunConfig.from_dict({"model": {"name": "mlp", "code": 4}, "data": {"name": data},
                                       "train": {"epochs": 1, "max_steps": 1}})
            aekit.train(cfg, d / "run", progress=False)
            made[which] = d / "run"
        return made[which]

    return get


@pytest.mark.parametrize(("case", "build", "expect"), [pytest.param(*r, id=r[0]) for r in ROWS])
def test_bad_input(case: str, build: Callable[[Ctx], list[str]], expect: str, tmp_path: Path,
                   runs: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(build(Ctx(tmp_path, runs)), capsys, expect)
