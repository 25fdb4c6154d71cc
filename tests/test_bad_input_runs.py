"""The bad-input corpus for run folders: every command that opens a run, given a folder whose files
are broken, doctored or of the wrong kind, prints one ``aekit: error:`` line and exits 2 (see
:mod:`tests.badinput`).

Each row: an id, a function that builds the damaged folder in ``tmp_path`` (a copy of a fixture in
``tests/fixtures/runs-v0``, then damaged) and returns the command line, and a piece of the expected
message. The fixtures are small folders written by the previous release, so rows also check that
an old folder's damage is reported as such, not as a format change.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.badinput import assert_one_line_error

FIXTURES = Path(__file__).parent / "fixtures" / "runs-v0"
Build = Callable[[Path], list[str]]
Command = Callable[[Path], list[str]]  # the command line that opens run folder DIR


# --- commands: each opens the run folder it is given ----------------------------------------------


def evaluate(d: Path) -> list[str]:
    return ["evaluate", str(d)]


def report(d: Path) -> list[str]:
    return ["report", str(d), "--out", str(d.parent / "r.html"), "--quiet"]


def classify(d: Path) -> list[str]:
    return ["classify", str(d)]


def finetune(d: Path) -> list[str]:
    return ["finetune", str(d), "--labels", "100", "--epochs", "1", "--quiet", "--out", str(d.parent / "ft")]


def reconstruct(d: Path) -> list[str]:
    return ["reconstruct", str(d), "--out", str(d.parent / "rec.png")]


def encode(d: Path) -> list[str]:
    return ["encode", str(d), "--out", str(d.parent / "codes.npy")]


def denoise(d: Path) -> list[str]:
    return ["denoise", str(d), "--noise", "gaussian:0.3"]


def anomaly(d: Path) -> list[str]:
    return ["anomaly", str(d)]


def latent_map(d: Path) -> list[str]:
    return ["latent-map", str(d), "--out", str(d.parent / "map.png")]


def interpolate(d: Path) -> list[str]:
    return ["interpolate", str(d), "--from", "0", "--to", "1", "--out", str(d.parent / "strip.png")]


def inpaint(d: Path) -> list[str]:
    return ["inpaint", str(d), "--mask", "center:8", "--out", str(d.parent / "inpaint.png")]


def probe(d: Path) -> list[str]:
    return ["probe", str(d), "--quiet"]


def resume(d: Path) -> list[str]:
    return ["train", "--out", str(d), "--resume", "--epochs", "3", "--quiet"]


def save_threshold(d: Path) -> list[str]:
    return ["anomaly", str(d), "--threshold", "percentile:99", "--save-threshold"]


# --- damage: each takes the copied folder and breaks one thing ------------------------------------


def copy(tmp: Path, kind: str) -> Path:
    d = tmp / kind
    shutil.copytree(FIXTURES / kind, d)
    return d


def damaged(kind: str, damage: Callable[[Path], Any], command: Command) -> Build:
    """Copy fixture ``kind``, apply ``damage`` to the copy, and return ``command`` on it."""
    def build(tmp: Path) -> list[str]:
        d = copy(tmp, kind)
        damage(d)
        return command(d)
    return build


def write(name: str, content: bytes | str) -> Callable[[Path], None]:
    """Replace file ``name`` (relative to the run folder) with ``content``."""
    def damage(d: Path) -> None:
        (d / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return damage


def config(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    """Rewrite config.json as ``edit(info)`` returns it (or ``info`` itself, edited in place)."""
    def damage(d: Path) -> None:
        info = json.loads((d / "config.json").read_text())
        new = edit(info)
        (d / "config.json").write_text(json.dumps(info if new is None else new))
    return damage


def model_opt(**opts: Any) -> Callable[[Path], None]:
    """Set options of config.json's ``model`` table."""
    return config(lambda info: info["model"].update(opts))


def top(**keys: Any) -> Callable[[Path], None]:
    """Set top-level keys of config.json."""
    return config(lambda info: info.update(keys))


def drop(key: str) -> Callable[[Path], None]:
    """Remove a top-level key of config.json."""
    def edit(info: dict[str, Any]) -> None:
        del info[key]
    return config(edit)


def folder_in_place_of(name: str) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        (d / name).unlink()
        (d / name).mkdir()
    return damage


def fifo_in_place_of(name: str) -> Callable[[Path], None]:
    """A named pipe with no writer: opening it for reading would wait for ever."""
    def damage(d: Path) -> None:
        (d / name).unlink()
        os.mkfifo(d / name)
    return damage


def lock_is(make: Callable[[Path], None]) -> Callable[[Path], None]:
    """Put something other than a plain file at the folder's ``.lock`` (``make(lock_path)``)."""
    def damage(d: Path) -> None:
        (d / ".lock").unlink(missing_ok=True)
        make(d / ".lock")
    return damage


def link_to_victim(lock: Path) -> None:
    """A link to a file of the user's: writing the lock through it would overwrite that file."""
    (lock.parent.parent / "victim").write_text("precious\n")
    lock.symlink_to(lock.parent.parent / "victim")


def sparse_json(size: int) -> Callable[[Path], None]:
    """A config.json of ``size`` bytes: a valid start, then a hole (no disk blocks, no time)."""
    def damage(d: Path) -> None:
        with open(d / "config.json", "wb") as fh:
            fh.write(b'{"model": "')
            fh.truncate(size)
    return damage


def truncate(name: str, keep: float) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: int(len(data) * keep)])
    return damage


def tensors(name: str, edit: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
    """Rewrite a safetensors file with ``edit`` applied to its tensors (a real, well-formed file)."""
    def damage(d: Path) -> None:
        t = load_file(d / name)
        edit(t)
        save_file(t, d / name)
    return damage


def shrink_all(t: dict[str, torch.Tensor]) -> None:
    """Every weight matrix a different shape: torch's error lists each on its own line."""
    for k, v in list(t.items()):
        t[k] = torch.zeros([max(1, n // 2) for n in v.shape])


def state(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        p = d / "last" / "state.json"
        s = json.loads(p.read_text())
        new = edit(s)
        p.write_text(json.dumps(s if new is None else new))
    return damage


def npy_rows(n: int) -> Build:
    """``aekit train`` on an ``.npy`` of ``n`` rows of 6 values."""
    def build(tmp: Path) -> list[str]:
        np.save(tmp / "rows.npy", np.random.default_rng(0).normal(size=(n, 6)).astype(np.float32))
        return ["train", "--data", f"npy:{tmp / 'rows.npy'}", "--epochs", "1", "--quiet", "--out", str(tmp / "run")]
    return build


def out_is_a_file(tmp: Path) -> list[str]:
    (tmp / "f").write_text("x")
    return ["train", "--data", "mnist-mini", "--epochs", "1", "--max-steps", "1", "--quiet", "--out", str(tmp / "f")]


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


AE, CL, PRE = "autoencoder", "classifier", "pretrain"
RNG_KEYS = ("rng.perm", "rng.noise", "rng.torch")

CASES: list[tuple[str, Build, str]] = [
    # config.json: the file itself
    ("config-not-utf8", damaged(AE, write("config.json", b'{"model": "\xff\xfe"}'), evaluate), "not UTF-8"),
    ("config-a-folder", damaged(AE, folder_in_place_of("config.json"), reconstruct), "is a folder"),
    ("config-a-fifo", damaged(AE, fifo_in_place_of("config.json"), encode), "not a regular file"),
    ("config-missing", damaged(AE, lambda d: (d / "config.json").unlink(), evaluate), "config.json: not found"),
    ("config-empty", damaged(AE, write("config.json", b""), report), "corrupt JSON"),
    ("config-truncated", damaged(AE, truncate("config.json", 0.5), evaluate), "corrupt JSON"),
    ("config-utf8-bom", damaged(AE, lambda d: (d / "config.json").write_bytes(
        b"\xef\xbb\xbf" + (FIXTURES / AE / "config.json").read_bytes()), evaluate), "corrupt JSON"),
    ("config-a-list", damaged(CL, write("config.json", "[1, 2]"), classify), "expected a JSON object"),
    ("config-null", damaged(AE, write("config.json", "null"), latent_map), "expected a JSON object"),
    ("config-70mb", damaged(AE, sparse_json(70 << 20), evaluate), "larger than 64 MiB"),
    ("config-nested-100000", damaged(AE, write("config.json", nested(100_000)), denoise), "nested too deeply"),
    ("config-nested-objects", damaged(AE, write("config.json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
                                      evaluate), "nested too deeply"),
    # config.json: its tables
    ("config-no-model", damaged(AE, drop("model"), evaluate), "no 'model' table"),
    ("config-model-a-string", damaged(AE, top(model="linear"), anomaly), "no 'model' table"),
    ("model-name-unknown", damaged(AE, model_opt(name="transformer"), denoise), "unknown model 'transformer'"),
    ("model-name-a-number", damaged(AE, model_opt(name=5), evaluate), "model.name must be"),
    ("input-shape-text", damaged(AE, model_opt(input_shape=["a"]), interpolate), "model.input_shape must be"),
    ("input-shape-empty", damaged(AE, model_opt(input_shape=[]), inpaint), "model.input_shape must be"),
    ("input-shape-negative", damaged(AE, model_opt(input_shape=[1, -28, 28]), evaluate),
     "model.input_shape must be"),
    ("input-shape-booleans", damaged(AE, model_opt(input_shape=[True, True]), evaluate), "model.input_shape must be"),
    ("input-shape-huge", damaged(AE, model_opt(input_shape=[100_000, 100_000, 100_000]), evaluate),
     "model.input_shape must be"),
    ("input-shape-not-the-weights", damaged(AE, model_opt(input_shape=[1, 14, 14]), evaluate),
     "weights do not fit the model"),
    ("input-shape-not-the-data", damaged(AE, model_opt(input_shape=[784]), evaluate),
     "the model takes samples of shape (784,)"),
    ("layers-a-number", damaged(PRE, model_opt(layers=64), probe), "option layers = 64 has the wrong type"),
    ("code-a-billion", damaged(AE, model_opt(code=10**9), anomaly), "code size (--code) must be"),
    ("code-nan", damaged(AE, write("config.json", (FIXTURES / AE / "config.json").read_text().replace(
        '"code": 4,\n    "loss"', '"code": NaN,\n    "loss"')), evaluate), "option code = nan has the wrong type"),
    # 1.6 billion float32 weights (6 GB) that a 28 kB weights file does not hold: refused unallocated
    ("code-not-the-weights", damaged(AE, model_opt(code=999_999), evaluate), "weights do not fit the model"),
    ("model-unknown-option", damaged(AE, model_opt(colour=3), evaluate), "has no option colour"),
    ("model-unknown-activation", damaged(CL, model_opt(activation="swish"), classify), "unknown activation 'swish'"),
    ("model-unknown-loss", damaged(AE, model_opt(loss="l1"), evaluate), "unknown loss 'l1'"),
    ("format-99", damaged(AE, top(format=99), evaluate), "newer aekit (format 99)"),
    ("format-text", damaged(AE, top(format="1"), evaluate), "format must be a whole number"),
    ("format-negative", damaged(AE, top(format=-1), evaluate), "format must be a whole number"),
    ("format-true", damaged(AE, top(format=True), evaluate), "format must be a whole number"),
    ("kind-weird", damaged(AE, top(format=1, kind="weird"), evaluate), "kind must be one of"),
    ("kind-missing-format-1", damaged(AE, top(format=1), evaluate), "kind must be one of"),
    ("run-a-list", damaged(AE, top(run=[]), evaluate), "'run' must be a JSON object"),
    ("data-a-string", damaged(AE, top(data="mnist"), evaluate), "'data' must be a JSON object"),
    ("run-unknown-dataset", damaged(AE, config(lambda i: i["run"]["data"].update(name="no-such-set")), evaluate),
     "no-such-set"),
    ("run-bad-val-fraction", damaged(AE, config(lambda i: i["run"]["data"].update(val_fraction=5)),
                                     lambda d: [*evaluate(d), "--split", "val"]),
     "val_fraction"),
    # classifier folders
    ("classifier-missing-tensor", damaged(CL, tensors("model.safetensors", lambda t: t.pop("head.bias")), classify),
     "missing"),
    ("classifier-extra-tensor", damaged(CL, tensors("model.safetensors", lambda t: t.update(x=torch.zeros(1))),
                                        classify), "unexpected"),
    ("n-classes-text", damaged(CL, top(n_classes="ten"), classify), "n_classes must be a whole number"),
    ("n-classes-one", damaged(CL, top(n_classes=1), classify), "n_classes must be a whole number from 2"),
    ("n-classes-missing", damaged(CL, drop("n_classes"), classify), "got None"),
    ("n-classes-not-the-weights", damaged(CL, top(n_classes=5), classify), "weights do not fit"),
    ("finetune-a-list", damaged(CL, top(finetune=[0.5]), classify), "'finetune' must be a JSON object"),
    ("finetune-dropout-text", damaged(CL, top(finetune={"dropout": "lots"}), classify), "finetune.dropout"),
    # model.safetensors
    ("weights-missing", damaged(AE, lambda d: (d / "model.safetensors").unlink(), evaluate), "not found"),
    ("weights-truncated", damaged(AE, truncate("model.safetensors", 0.5), reconstruct), "corrupt weights"),
    ("weights-header-only", damaged(AE, truncate("model.safetensors", 0.02), encode), "corrupt weights"),
    ("weights-zero-bytes", damaged(AE, write("model.safetensors", b""), encode), "corrupt weights"),
    ("weights-random-bytes", damaged(AE, write("model.safetensors", np.random.default_rng(0).bytes(4096)), denoise),
     "corrupt weights"),
    ("weights-huge-header-length", damaged(AE, write("model.safetensors", (2**62).to_bytes(8, "little") + b"{}"),
                                           evaluate), "corrupt weights"),
    ("weights-a-folder", damaged(AE, folder_in_place_of("model.safetensors"), evaluate), "is a folder"),
    ("weights-a-fifo", damaged(AE, fifo_in_place_of("model.safetensors"), evaluate), "not a regular file"),
    ("weights-wrong-shapes", damaged(AE, tensors("model.safetensors", shrink_all), anomaly),
     "weights do not fit the model"),
    ("pretrain-weights-of-another", damaged(PRE, lambda d: shutil.copy(FIXTURES / CL / "model.safetensors", d),
                                            latent_map), "weights do not fit"),
    # last/ checkpoint, through --resume
    ("state-missing-key", damaged(AE, state(lambda s: s.update(bad_epochs=s.pop("epoch"))), resume),
     "no 'epoch' in it"),
    ("state-not-json", damaged(AE, write("last/state.json", "{epoch: 1"), resume), "corrupt JSON"),
    ("state-a-list", damaged(AE, write("last/state.json", "[]"), resume), "expected a JSON object"),
    ("state-epoch-text", damaged(AE, state(lambda s: s.update(epoch="one")),
                                 lambda d: resume(d)[:-1]), "epoch"),
    ("state-history-a-number", damaged(AE, state(lambda s: s.update(history=5)), resume), "history"),
    ("state-loss-sum-text", damaged(AE, state(lambda s: s.update(epoch_loss_sum="x")), resume), "epoch_loss_sum"),
    ("state-optimizer-empty", damaged(AE, state(lambda s: s.update(optimizer={})), resume),
     "optimizer must be a table"),
    ("optimizer-no-rng", damaged(AE, tensors("last/optimizer.safetensors",
                                             lambda t: [t.pop(k) for k in RNG_KEYS]), resume), "rng."),
    ("optimizer-rng-garbage", damaged(AE, tensors("last/optimizer.safetensors",
                                                  lambda t: t.update({"rng.torch": torch.zeros(3)})), resume),
     "does not fit"),
    ("optimizer-moments-wrong-shape", damaged(AE, tensors("last/optimizer.safetensors",
                                                          lambda t: t.update({"0.exp_avg": torch.zeros(2, 2)})),
                                              resume), "does not fit"),
    ("optimizer-missing", damaged(AE, lambda d: (d / "last" / "optimizer.safetensors").unlink(), resume),
     "not found"),
    ("last-weights-other-shape", damaged(AE, tensors("last/model.safetensors", shrink_all), resume),
     "size mismatch for"),
    ("last-weights-corrupt", damaged(AE, write("last/model.safetensors", b"\x08" + b"\0" * 7 + b"{garbage"), resume),
     "corrupt weights"),
    # .lock: written in place, so never through a link, nor into a pipe or device
    ("lock-links-to-a-file-save-threshold", damaged(AE, lock_is(link_to_victim), save_threshold), "a symbolic link"),
    ("lock-links-to-a-file-resume", damaged(AE, lock_is(link_to_victim), resume), "a symbolic link"),
    ("lock-links-to-dev-full", damaged(AE, lock_is(lambda p: p.symlink_to("/dev/full")), save_threshold),
     "a symbolic link"),
    ("lock-links-to-dev-full-resume", damaged(AE, lock_is(lambda p: p.symlink_to("/dev/full")), resume),
     "a symbolic link"),
    ("lock-dangling-link", damaged(AE, lock_is(lambda p: p.symlink_to(p.parent / "nowhere")), resume),
     "a symbolic link"),
    ("lock-a-fifo", damaged(AE, lock_is(os.mkfifo), save_threshold), "not a regular file"),
    ("lock-a-folder", damaged(AE, lock_is(lambda p: p.mkdir()), resume), "is a folder, not a lock file"),
    # what `aekit report` reads besides the weights
    ("summary-corrupt", damaged(AE, write("summary.json", '{"epochs_run": 1,'), report), "summary.json: corrupt"),
    ("summary-a-list", damaged(AE, write("summary.json", "[1]"), report), "expected a JSON object"),
    ("metrics-ragged", damaged(AE, write("metrics.csv", "epoch,train_loss,val_loss\n1,0.5,0.4,9,9\n2\n"), report),
     "metrics.csv"),
    ("metrics-not-numbers", damaged(AE, write("metrics.csv", "epoch,train_loss\n1,lots\n"), report), "metrics.csv"),
    ("metrics-nul-byte", damaged(AE, write("metrics.csv", "epoch,train_loss\n1,0.\x005\n"), report), "metrics.csv"),
    ("metrics-field-over-csv-limit", damaged(AE, write("metrics.csv", "epoch,train_loss\n1," + "9" * 200_000 + "\n"),
                                             report), "field larger than field limit"),
    ("metrics-no-epoch-column", damaged(AE, write("metrics.csv", "train_loss,val_loss\n0.5,0.4\n"), report),
     "no epoch column"),
    ("metrics-not-utf8", damaged(AE, write("metrics.csv", b"epoch,train_loss\n1,\xff\n"), report), "not UTF-8"),
    # the wrong kind of run for the command
    ("classify-an-autoencoder", damaged(AE, lambda d: None, classify), "not a classifier run"),
    ("evaluate-a-classifier", damaged(CL, lambda d: None, evaluate), "a classifier run"),
    ("finetune-a-classifier", damaged(CL, lambda d: None, finetune), "a classifier run"),
    ("reconstruct-a-classifier", damaged(CL, lambda d: None, reconstruct), "a classifier run"),
    ("resume-a-classifier-as-train", damaged(CL, lambda d: None, resume), "holds a classifier run"),
    # too little data to train on, refused before training
    ("train-1-row", npy_rows(1), "give at least 6 training rows for --val-fraction 0.1"),
    ("train-2-rows", npy_rows(2), "give at least 6 training rows for --val-fraction 0.1"),
    # flags about the run folder
    ("resume-without-out", lambda tmp: ["train", "--resume", "--data", "mnist-mini", "--quiet"], "--out"),
    ("out-a-file", out_is_a_file, "a file stands there"),
]


@pytest.mark.parametrize(("build", "expect"), [pytest.param(b, e, id=i) for i, b, e in CASES])
def test_bad_run_folder_is_one_error_line(build: Build, expect: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(build(tmp_path), capsys, expect)


def test_corpus_ids_are_unique() -> None:
    ids = [i for i, _, _ in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 45
