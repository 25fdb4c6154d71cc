"""``aekit serve``: the page and the HTTP API over trained runs (needs ``pip install aekit[serve]``)."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from aekit.errors import AekitError


def ensure_runs(run_dirs: list[str], root: Path, epochs: int | None = None) -> None:
    """With no run to show, train the demo model on the shipped mnist-mini first, so a fresh clone works offline."""
    from aekit.serve.runs import find_runs

    if run_dirs or find_runs([], root):
        return
    from aekit.api import train
    from aekit.demo import DEMO_CONFIG

    print(f"no trained run under {root}/: training the demo model (784-32-784 on mnist-mini) first",
          file=sys.stderr)
    overrides = {"train.epochs": epochs} if epochs else {}
    train(DEMO_CONFIG, root / "demo", progress=None, **overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from aekit.serve.app import LOOPBACK, create_app
    except ImportError as exc:
        raise AekitError(f"aekit serve needs its extra: pip install 'aekit[serve]' ({exc.name} is missing)") from None
    if not 0 < args.port < 65536:
        raise AekitError(f"--port must lie in 1..65535, got {args.port}")
    if args.threads < 1:
        raise AekitError(f"--threads must be at least 1, got {args.threads}")
    root = Path(args.runs or os.environ.get("AEKIT_RUNS") or "runs")
    ensure_runs(args.run, root)
    local = args.host in LOOPBACK
    app = create_app(*args.run, runs_root=root, token=args.token, configs=args.configs, local_only=local)
    if not local:
        print(f"aekit: warning: serving on {args.host}: anyone on the network can use this server"
              + ("" if args.token else " (add --token to require a token)"), file=sys.stderr)
    shown = "localhost" if args.host in ("0.0.0.0", "::") else args.host
    print(f"aekit serve: http://{shown}:{args.port}/" + (f"#token={args.token}" if args.token else "")
          + "  (Ctrl-C stops it)", flush=True)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    gc.freeze()  # the objects of the imports live as long as the server: no collection walks them again
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:  # for a caller in the same process (the tests)
        gc.unfreeze()
        torch.set_num_threads(before)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="a page and an HTTP API to use trained runs in a browser")
    s.add_argument("run", nargs="*", metavar="RUN_DIR", help="run folders to serve (besides those under --runs)")
    s.add_argument("--runs", metavar="DIR", help="serve every run folder in DIR (default $AEKIT_RUNS or runs/)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every API call")
    s.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads for the model (default 1: a pass over one image, or the few that arrive "
                        "together, is fastest on one, and the other cores are left to the requests' parsing)")
    s.add_argument("--configs", default="configs", metavar="DIR",
                   help="recipes (*.toml) the Train panel offers, besides its presets (default configs/)")
    s.set_defaults(func=cmd_serve)
