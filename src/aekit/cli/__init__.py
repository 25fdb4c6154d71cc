"""The ``aekit`` command: a thin layer over :mod:`aekit.api`, one module per group of commands.

- :mod:`aekit.cli.train`: train, evaluate, reconstruct, baseline, demo, datasets, models, recipes
- :mod:`aekit.cli.use`: denoise, encode, probe, latent-map, interpolate, inpaint, anomaly, report
- :mod:`aekit.cli.generate`: nll, sample, traverse (variational runs)
- :mod:`aekit.cli.pretraining`: pretrain, finetune, classify
- :mod:`aekit.cli.export`: export (ONNX, TorchScript)
- :mod:`aekit.cli.serve`: serve (the page and the HTTP API)

Handlers import the heavy modules (torch) only when they run, so ``aekit --help`` is instant.
Bad input -- an :class:`AekitError` or a malformed flag -- prints one line on stderr and exits
with code 2; ``--json`` puts only JSON on stdout.
"""

from __future__ import annotations

import sys

from aekit.cli.common import EXIT_USAGE, Parser
from aekit.errors import AekitError, TrainingStopped


def build_parser() -> Parser:
    from aekit import __version__
    from aekit.cli import export, generate, pretraining, serve, train, use

    p = Parser(prog="aekit", description="Autoencoders on PyTorch: train, evaluate and use them.")
    p.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train.add_commands(sub)
    use.add_commands(sub)
    generate.add_commands(sub)
    pretraining.add_commands(sub)
    export.add_commands(sub)
    serve.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # `train --nproc N` hands the same arguments to torchrun
    try:
        return args.func(args)
    except AekitError as exc:
        print(f"aekit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingStopped as stop:  # SIGTERM or the first Ctrl-C: a checkpoint was written
        print(f"aekit: {stop}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("aekit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
