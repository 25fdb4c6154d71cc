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

from tests.badinput import assert_one_line_error, built_once


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


def threshold_edit(which: str = "mini", **changes: object) -> Callable[[Ctx], str]:
    """A copy of the run whose threshold.json has the fields ``changes`` replaced, the rest (its digest
    included) as aekit wrote them."""
    def edit(d: Path) -> None:
        import json

        rec = json.loads((d / "threshold.json").read_text())
        (d / "threshold.json").write_text(json.dumps({**rec, **changes}))

    return run_with(edit, which)


def anomaly_on(run: Callable[[Ctx], str], *flags: str) -> Callable[[Ctx], list[str]]:
    return lambda c: ["anomaly", run(c), *flags]


SUFFIXES = {"onnx": "onnx", "torchscript": "pt"}


def edit_metadata(path: Path, fmt: str, changes: dict[str, str | None]) -> None:
    """Set (or, for None, delete) metadata entries of an exported file, leaving its graph as it is."""
    import json

    if fmt == "onnx":
        import onnx

        proto = onnx.load(str(path))
        meta = {e.key: e.value for e in proto.metadata_props}
        meta = {k: v for k, v in {**meta, **changes}.items() if v is not None}
        del proto.metadata_props[:]
        for k, v in meta.items():
            proto.metadata_props.add(key=k, value=v)
        onnx.save(proto, str(path))
        return
    import torch

    extra = {"aekit.json": ""}
    mod = torch.jit.load(str(path), _extra_files=extra)
    meta = {k: v for k, v in {**json.loads(extra["aekit.json"]), **changes}.items() if v is not None}
    torch.jit.save(mod, str(path), _extra_files={"aekit.json": json.dumps(meta)} if meta else {})


def check_edited(part: str, fmt: str, changes: dict[str, str | None],
                 which: str = "mini") -> Callable[[Ctx], list[str]]:
    """``export --check-only`` of a file exported from the run (its stored threshold for a score) whose
    metadata was then edited by ``changes``."""
    def build(c: Ctx) -> list[str]:
        import aekit

        run = c.run if which == "mini" else c.unlabelled
        path = c.tmp / f"edited.{SUFFIXES[fmt]}"
        aekit.export(run, format=fmt, part=part, out=path, check=False)
        edit_metadata(path, fmt, changes)
        return ["export", run, "--check-only", "--part", part, "--format", fmt, "--out", str(path)]

    return build


def torchscript_bomb_of(c: Ctx, entries: Callable[[int], dict[str, int]]) -> str:
    """The mini run's full part as TorchScript, with the entries ``entries(budget)`` (see
    tests.test_bombs.torchscript_bomb) replaced or added as deflated zeros."""
    import aekit
    from aekit.export import file_budget
    from tests.test_bombs import torchscript_bomb

    aekit.export(c.run, format="torchscript", part="full", out=c.tmp / "full.pt", check=False)
    return str(torchscript_bomb(c.tmp / "full.pt", c.tmp / "bomb.pt", entries(file_budget(aekit.load(c.run), "full"))))


def onnx_over_budget(c: Ctx) -> str:
    """A real ONNX export grown (sparsely) to one byte over what the run's model can need."""
    import os

    import aekit
    from aekit.export import file_budget

    p = c.tmp / "big.onnx"
    aekit.export(c.run, format="onnx", part="full", out=p, check=False)
    os.truncate(p, file_budget(aekit.load(c.run), "full") + 1)
    return str(p)


def check_file(fmt: str, build: Callable[[Ctx], str]) -> Callable[[Ctx], list[str]]:
    return lambda c: ["export", c.run, "--check-only", "--format", fmt, "--out", build(c)]


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
    # issue 21 item 9: sizes an exported file declares are checked before a runtime reads it
    ("export-check-torchscript-zip-bomb", check_file("torchscript", lambda c: torchscript_bomb_of(
        c, lambda budget: {"data/0": 1 << 30})), "its entry 'archive/data/0' declares 1,073,741,824 bytes"),
    ("export-check-torchscript-entries-over-budget", check_file("torchscript", lambda c: torchscript_bomb_of(
        c, lambda budget: {f"pad/{i}": budget // 4 for i in range(5)})), "entries declare"),
    ("export-check-onnx-over-budget", check_file("onnx", onnx_over_budget),
     "more than an exported model of this run holds"),
    # item 10: --check-only compares the file's metadata with what the run would write now
    ("export-check-onnx-threshold-edited", check_edited("score", "onnx", {"threshold": "1e9"}),
     "its metadata threshold is '1e9' but this run gives"),
    ("export-check-torchscript-threshold-edited", check_edited("score", "torchscript", {"threshold": "-1"}),
     "its metadata threshold is '-1'"),
    ("export-check-threshold-rule-edited", check_edited("score", "onnx", {"threshold_rule": "percentile:50"}),
     "metadata threshold_rule"),
    ("export-check-threshold-source-no-rule", check_edited("score", "torchscript", {
        "threshold_source": "aekit export --threshold", "threshold_rule": "median:\x1b[2J"}),
     "threshold_rule 'median:\\x1b[2J' is no rule aekit writes"),
    ("export-check-input-shape-edited", check_edited("full", "torchscript", {"input_shape": "[1, 28, 29]"}),
     "metadata input_shape"),
    ("export-check-value-scaling-edited", check_edited("encoder", "onnx", {"value_scaling": "none"}),
     "metadata value_scaling"),
    ("export-check-score-definition-edited", check_edited("score", "onnx", {"score_definition": "anything"}),
     "metadata score_definition"),
    ("export-check-error-scale-edited", check_edited("score", "torchscript", {"error_scale": str([1.0] * 8)}, "npy"),
     "metadata error_scale"),
    ("export-check-error-scale-removed", check_edited("score", "onnx", {"error_scale": None}, "npy"),
     "metadata error_scale is no value"),
    ("export-check-metadata-key-added", check_edited("decoder", "torchscript", {"threshold": "0.5"}),
     "'threshold', which this run would not write"),
    ("export-check-no-metadata", check_edited("full", "torchscript", dict.fromkeys(
        ["aekit_version", "part", "model", "input_shape", "code_size", "value_scaling", "value_range", "output",
         "dataset"])), "carries no aekit metadata"),
    ("export-check-part-edited", check_edited("full", "onnx", {"part": "encoder"}), "was it exported"),
    ("export-threshold-with-check-only", on("mini", "export", "--check-only", "--part", "score", "--threshold",
                                            "percentile:99", "--out", "s.onnx"), "--threshold and --check-only"),
    ("export-threshold-with-part-full", on("mini", "export", "--threshold", "percentile:99", "--out", "f.onnx"),
     "--threshold is for --part score; a full part"),
    ("export-threshold-with-part-encoder", on("mini", "export", "--part", "encoder", "--threshold", "fpr:0.01",
                                              "--out", "e.onnx"), "a encoder part"),
    # item 11: every threshold.json field against what the run can produce
    ("anomaly-threshold-negative", lambda c: ["anomaly", threshold_edit(threshold=-5)(c)],
     "threshold must be a finite number >= 0"),
    ("export-score-threshold-negative", score_export(threshold_edit(threshold=-1e-9)), "finite number >= 0"),
    ("anomaly-split-escape-codes", lambda c: ["anomaly", threshold_edit(split="val\x1b[2J\x1b]0;pwned\x07")(c)],
     "split must be one of val, train, fit, got 'val\\x1b[2J"),
    ("anomaly-split-unknown", lambda c: ["anomaly", threshold_edit(split="test")(c)], "split must be one of"),
    ("anomaly-rule-with-newline", lambda c: ["anomaly", threshold_edit(rule="percentile:99\n")(c)],
     "rule must be written as percentile:99"),
    ("anomaly-rule-a-number", lambda c: ["anomaly", threshold_edit(rule=0.01)(c)],
     "rule must be written as contamination:0.01"),
    ("anomaly-digest-not-hex", lambda c: ["anomaly", threshold_edit(weights_sha256="\x1b[31m" + "0" * 59)(c)],
     "weights_sha256 must be 64 hex digits"),
    ("anomaly-set-by-unknown", lambda c: ["anomaly", threshold_edit(set_by="\x1b]0;title\x07")(c)],
     "set_by must name what wrote it"),
    ("anomaly-n-negative", lambda c: ["anomaly", threshold_edit(n=-3)(c)], "n must be the number of samples"),
    ("anomaly-normal-classes-text", lambda c: ["anomaly", threshold_edit(normal_classes=["a"])(c)],
     "normal_classes must be a list of class labels"),
    ("anomaly-data-not-text", lambda c: ["anomaly", threshold_edit(data=5)(c)], "data must be a string"),
    ("anomaly-error-scale-on-pixels", lambda c: ["anomaly", threshold_edit(error_scale=[1e-12] * 784)(c)],
     "error_scale is for data outside [0, 1]"),
    ("export-score-error-scale-on-pixels", score_export(threshold_edit(error_scale=[1.0] * 784)),
     "this run's data lies in [0, 1]"),
    ("anomaly-error-scale-one-value-tiny", lambda c: ["anomaly", scale_text("[1e-6, 1, 1, 1, 1, 1, 1, 1]")(c)],
     "error_scale has values under 0.2 of its mean"),
    # --score latent: its flags, and the score field of threshold.json
    ("anomaly-score-bogus", on("mini", "anomaly", "--score", "bogus"), "--score must be one of error, latent"),
    ("anomaly-components-zero", on("mini", "anomaly", "--score", "latent", "--components", "0"),
     "--components must be a whole number from 1 to 256, got 0"),
    ("anomaly-components-257", on("mini", "anomaly", "--score", "latent", "--components", "257"), "from 1 to 256"),
    ("anomaly-components-text", on("mini", "anomaly", "--score", "latent", "--components", "ten"), "invalid int"),
    ("anomaly-components-without-latent", on("mini", "anomaly", "--components", "3"),
     "--components sets the latent density's mixture; it needs --score latent"),
    ("anomaly-components-with-score-error", on("mini", "anomaly", "--score", "error", "--components", "3"),
     "needs --score latent"),
    ("anomaly-threshold-score-bogus", lambda c: ["anomaly", threshold_edit(score="bogus\x1b[2J")(c)],
     "score must be one of error, latent, got 'bogus\\x1b[2J'"),
    ("anomaly-threshold-score-a-number", anomaly_on(threshold_edit(score=1), "--score", "latent"),
     "score must be one of error, latent, got 1"),
    ("anomaly-threshold-latent-no-components", anomaly_on(threshold_edit(score="latent"), "--score", "latent"),
     "components must be a whole number from 1 to 256, got None"),
    ("anomaly-threshold-latent-components-huge",
     anomaly_on(threshold_edit(score="latent", components=10**6), "--score", "latent"), "from 1 to 256"),
    ("anomaly-threshold-latent-nan",
     anomaly_on(threshold_edit(score="latent", components=10, threshold=float("nan")), "--score", "latent"),
     "threshold must be a finite number, got nan"),
    ("anomaly-threshold-latent-with-error-scale",
     anomaly_on(threshold_edit("npy", score="latent", components=10), "--score", "latent"),
     "error_scale belongs to the error score"),
    ("anomaly-threshold-error-with-components", anomaly_on(threshold_edit(components=10)),
     "components belongs to the latent score"),
    ("anomaly-threshold-latent-for-error-score",
     anomaly_on(threshold_edit(score="latent", components=10, set_by="aekit anomaly --save-threshold")),
     "the stored threshold is on the latent score and this call scores by error"),
    # (training's own stored threshold gives way to the default rule; one a user saved does not)
    ("anomaly-threshold-error-for-latent-score",
     anomaly_on(threshold_edit(set_by="aekit anomaly --save-threshold"), "--score", "latent"),
     "the stored threshold is on the error score and this call scores by latent"),
    ("export-score-threshold-latent", score_export(threshold_edit(score="latent", components=10)),
     "the stored threshold is on the latent score, and an exported score part computes the reconstruction error"),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Tiny runs (code 4, one step), each trained the first time a row asks for it."""

    def tiny(d: Path, data: str) -> Path:
        import aekit
        from aekit.config import RunConfig

        cfg = RunConfig.from_dict({"model": {"name": "mlp", "code": 4}, "data": {"name": data},
                                   "train": {"epochs": 1, "max_steps": 1}})
        aekit.train(cfg, d / "run", progress=False)
        return d / "run"

    def unlabelled(d: Path) -> Path:
        np.save(d / "x.npy", np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32))
        return tiny(d, f"npy:{d / 'x.npy'}")

    return built_once(tmp_path_factory, "bad-export", {"mini": lambda d: tiny(d, "mnist-mini"), "npy": unlabelled})


@pytest.mark.parametrize(("case", "build", "expect"), [pytest.param(*r, id=r[0]) for r in ROWS])
def test_bad_input(case: str, build: Callable[[Ctx], list[str]], expect: str, tmp_path: Path,
                   runs: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(build(Ctx(tmp_path, runs)), capsys, expect)
