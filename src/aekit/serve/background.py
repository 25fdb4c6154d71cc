"""The app served from a thread on a free port of 127.0.0.1: for tests, benchmarks and screenshots."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_in_thread(app: Any, timeout: float = 20.0) -> tuple[Any, threading.Thread, str]:
    """Start uvicorn on ``app`` in a daemon thread; returns (server, thread, base URL).

    Stop it with ``server.should_exit = True`` and ``thread.join()``. The settings, limits included,
    are those of ``aekit serve`` (:func:`aekit.serve.server.uvicorn_config`).
    """
    import uvicorn

    from aekit.serve.server import uvicorn_config

    port = free_port()
    srv = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while not srv.started:
        if time.monotonic() > deadline or not t.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    return srv, t, f"http://127.0.0.1:{port}/"
