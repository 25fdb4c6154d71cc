"""``aekit serve``: the page and the HTTP API over trained runs (needs ``pip install aekit[serve]``)."""

from __future__ import annotations

import argparse
import gc
import os
import re
import secrets
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from aekit.errors import AekitError


def ensure_runs(run_dirs: list[str], root: Path, epochs: int | None = None) -> None:
    """With no run to show, train the demo model (784-32-784) on the shipped mnist-mini now, in this process:
    for a script that wants one run before it serves. ``aekit serve`` itself starts at once instead and
    trains the demo set in the background (:func:`needs_demo`)."""
    from aekit.serve.runs import find_runs

    if run_dirs or find_runs([], root):
        return
    from aekit.api import train
    from aekit.demo import DEMO_CONFIG

    print(f"no trained run under {root}/: training the demo model (784-32-784 on mnist-mini) first",
          file=sys.stderr)
    overrides: dict[str, Any] = {"train.epochs": epochs} if epochs else {}
    train(DEMO_CONFIG, root / "demo", progress=None, **overrides)


def needs_demo(run_dirs: list[str], root: Path) -> bool:
    """Whether the server has no run to show: then it queues the demo set (a run for each panel: plain,
    denoising, infilling, VAE, and the classifier pair) as it starts, and the page is usable meanwhile."""
    from aekit.serve.runs import find_runs

    return not run_dirs and not find_runs([], root)


def usable_runs_folder(root: Path) -> None:
    """Make the runs folder if it is missing, or one clear error if it cannot hold new runs."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise AekitError(f"--runs {root}: not a folder") from None
    except OSError as exc:
        raise AekitError(f"--runs {root}: cannot make it ({exc.strerror or type(exc).__name__})") from None
    if not root.is_dir():
        raise AekitError(f"--runs {root}: not a folder")
    if not os.access(root, os.W_OK | os.X_OK):
        raise AekitError(f"--runs {root}: not writable, so the demo set cannot be trained into it")


def choose_token(given: str | None, no_token: bool, local: bool) -> tuple[str | None, bool]:
    """The token the server requires and whether it was made here: ``--token``, else $AEKIT_TOKEN, else
    none on a loopback address and a new random one on any other (unless ``--no-token`` says no token
    on purpose). An empty token would turn the check off without a word, so it is refused."""
    env = os.environ.get("AEKIT_TOKEN")
    if no_token:
        if given is not None:
            raise AekitError("--no-token and --token contradict each other; give one of them")
        return None, False
    token, where = (given, "--token") if given is not None else (env, "AEKIT_TOKEN")
    if token is None:
        return (None, False) if local else (secrets.token_urlsafe(24), True)
    if not token.strip():
        raise AekitError(f"{where} is empty: give a token, or --no-token to serve without one on purpose")
    if not re.fullmatch(r"[\x21-\x7e]+", token):
        raise AekitError(f"{where}: a token is printable ASCII without spaces (it travels in an HTTP header)")
    return token, False


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from aekit.serve.app import LOOPBACK, create_app
        from aekit.serve.server import uvicorn_config
    except ImportError as exc:
        raise AekitError(f"aekit serve needs its extra: pip install 'aekit[serve]' ({exc.name} is missing)") from None
    if not 0 < args.port < 65536:
        raise AekitError(f"--port must lie in 1..65535, got {args.port}")
    if args.threads < 1:
        raise AekitError(f"--threads must be at least 1, got {args.threads}")
    from aekit.config import recipes_dir

    local = args.host in LOOPBACK
    token, made = choose_token(args.token, args.no_token, local)
    root = Path(args.runs or os.environ.get("AEKIT_RUNS") or "runs")
    from aekit.serve.guide import checkout_site, site_folder

    # the guide under /guide/: --docs (checked before any demo training), else the checkout's built site/
    docs = site_folder(args.docs) if args.docs is not None else checkout_site()
    demo = needs_demo(args.run, root)
    if demo:
        usable_runs_folder(root)  # the demo set is queued as the server starts: an error then would be a traceback
        print(f"no trained run under {root}/: the page is usable now, and the demo set (plain, denoising, "
              "infilling, VAE, a classifier pair) trains in the background; its progress is in the Train panel",
              file=sys.stderr)
    app = create_app(*args.run, runs_root=root, token=token, configs=args.configs or recipes_dir(), local_only=local,
                     docs_site=docs, demo=demo)
    if made:
        print(f"aekit: serving on {args.host} requires a token; this one was made for this run of the server "
              "and is shown once, in the address below (give your own with --token or $AEKIT_TOKEN)",
              file=sys.stderr)
    elif not local:
        print(f"aekit: warning: serving on {args.host}: anyone on the network can reach this server"
              + (" and use it without a token (--no-token)" if token is None else ""), file=sys.stderr)
    shown = "localhost" if args.host in ("0.0.0.0", "::") else args.host
    print(f"aekit serve: http://{shown}:{args.port}/" + (f"#token={urllib.parse.quote(token)}" if token else "")
          + "  (Ctrl-C stops it)", flush=True)
    import PIL.Image  # noqa: F401 - now, not during the first upload, when the import would hold up every request
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    gc.freeze()  # the objects of the imports live as long as the server: no collection walks them again
    try:
        uvicorn.Server(uvicorn_config(app, args.host, args.port)).run()
    except KeyboardInterrupt:
        pass
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
    s.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every API call (default $AEKIT_TOKEN; "
                                   "on an address other than this machine's, a new token printed at start)")
    s.add_argument("--no-token", action="store_true",
                   help="serve without a token even on a network address, on purpose")
    s.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads for the model (default 1: a pass over one image, or the few that arrive "
                        "together, is fastest on one, and the other cores are left to the requests' parsing)")
    s.add_argument("--configs", metavar="DIR",
                   help="recipes (*.toml) the Train panel offers, besides its presets (default: the recipes "
                   "aekit ships, `aekit recipes`)")
    s.add_argument("--docs", metavar="DIR",
                   help="a built documentation site (`make docs`) to serve under /guide/, where the page's "
                   "\"read more\" links lead (default: the checkout's site/, where aekit runs from a checkout "
                   "that has one built)")
    s.set_defaults(func=cmd_serve)
