"""What every group of ``aekit`` commands shares: one-line argparse errors, JSON output, flags."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, NoReturn

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_list(text: str) -> list[int]:
    """'1000,500,250' -> [1000, 500, 250]; '' -> []."""
    if text.strip() == "":
        return []
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None


def json_out(obj: Any) -> None:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    print(json.dumps(clean(obj), indent=2))


def metrics_lines(title: str, m: dict[str, Any]) -> str:
    parts = [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items() if v is not None]
    return f"{title}: " + ", ".join(parts)


def progress(args: argparse.Namespace) -> bool | None:
    """False with --quiet; else None: a bar on a terminal, a line per epoch (or per 30 s) elsewhere."""
    return False if getattr(args, "quiet", False) else None


def data_flags(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--data", default=default, metavar="NAME",
                   help="dataset: a name from `aekit datasets` or npy:/npz:/csv:/images: PATH"
                   + (f" (default {default})" if default else " (default: the run's own)"))
    p.add_argument("--data-dir", metavar="DIR",
                   help="folder holding the dataset's files (else $AEKIT_DATA_DIR, the cache, a download)")


def split_flag(p: argparse.ArgumentParser) -> None:
    """``--split train|val|test`` (default test): which part of the data a command reads."""
    from aekit.config import SPLITS

    p.add_argument("--split", default="test", choices=SPLITS)


def reader_flags(p: argparse.ArgumentParser) -> None:
    """What every command that reads a run takes: --data, --data-dir, --split, --json."""
    data_flags(p)
    split_flag(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON (stdout holds only JSON)")


def tensorboard_dir(text: str) -> str:
    """``--tensorboard DIR``: refused at once (one line, exit 2) when the extra is not installed."""
    from aekit.errors import AekitError
    from aekit.training.tensorboard import summary_writer

    try:
        summary_writer()
    except AekitError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--tensorboard ")) from None
    return text


def trainer_flags(p: argparse.ArgumentParser, resume_help: str) -> None:
    """What every command that trains takes: --device, --seed, --quiet, --json, --resume."""
    from aekit.config import COMPILE_MODES, DEVICES, PRECISIONS

    p.add_argument("--device", choices=DEVICES,
                   help="where to train (default auto: $AEKIT_DEVICE if set, else cuda, mps, cpu)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="autocast precision of the forward pass, fp32 master weights (default fp32; auto "
                   "times bf16 against fp32 and keeps the faster)")
    p.add_argument("--compile", choices=COMPILE_MODES, nargs="?", const="on",
                   help="torch.compile the training step: inductor on the CPU, CUDA graphs on CUDA "
                   "(--compile alone means on; default off)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help=resume_help)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (stdout holds only JSON)")
    # store_const with default None: an absent flag leaves a --config file's setting alone
    p.add_argument("--deterministic", action="store_const", const=True,
                   help="repeat bit for bit: a fixed CPU thread count however busy the machine is, and "
                   "PyTorch's deterministic algorithms (CUDA; slower); recorded in config.json")
    p.add_argument("--tensorboard", metavar="DIR", type=tensorboard_dir,
                   help="write TensorBoard logs to DIR: losses, lr, validation metrics, reconstructions "
                   "(needs aekit[tensorboard])")
