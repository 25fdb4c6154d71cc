"""How uvicorn runs the app: one :func:`uvicorn_config` for ``aekit serve`` and
:func:`aekit.serve.background.serve_in_thread` alike, so tests and benchmarks meet the limits a
deployment has.

uvicorn's default parser, httptools, takes a request line and headers of any length and waits for
them forever: 16 clients each sending a 32 MiB header and never finishing grew the server by 600 MB,
and a client sending nothing holds its connection for good. :class:`BoundedHttp` counts a request's
head (request line and headers) as it arrives and refuses it past :data:`MAX_HEAD` bytes (431), and
gives it :data:`HEAD_TIMEOUT` seconds to arrive (408; a connection that sends nothing is closed).
A body, once its head is in, has :data:`BODY_TIMEOUT` seconds to arrive whole (408): a client that
sends a byte a minute cannot hold a connection and a request for good. A server holds at most
:data:`MAX_CONNECTIONS` connections, :data:`MAX_CONNECTIONS_PER_CLIENT` of them from one address;
a connection past either is closed at once, so one client cannot use up the process's files.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_HEAD = 64 * 1024  # bytes of request line and headers: a browser sends about 1 kB
HEAD_TIMEOUT = 10.0  # seconds from a connection's or request's first byte to its headers' end
BODY_TIMEOUT = 30.0  # seconds from a request's headers' end to its body's end (2 MB at 70 kB/s)
# A browser opens at most 6 connections to a host; the whole server stays well below a usual limit
# of 1,024 open files.
MAX_CONNECTIONS = 512
MAX_CONNECTIONS_PER_CLIENT = 128


class BoundedHttp(HttpToolsProtocol):
    """httptools with a cap on a request's head and a deadline for it.

    A head that arrived whole is measured when it ends (its line and headers as parsed). One still
    arriving is counted per read, since httptools keeps a header's text until the header ends: a
    read that began inside a head, or on an idle connection, and ends inside one is head through and
    through. A read where an earlier request's body ends and a head starts is not counted, so an
    unfinished head may run one read (at most 256 kB) past the limit before it is refused: what one
    connection can make the server hold stays bounded.
    """

    max_head = MAX_HEAD
    head_timeout = HEAD_TIMEOUT
    body_timeout = BODY_TIMEOUT
    max_connections = MAX_CONNECTIONS
    max_connections_per_client = MAX_CONNECTIONS_PER_CLIENT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._body_clock: asyncio.TimerHandle | None = None
        self._head: int | None = 0  # bytes of the head being read; None between heads
        self._heads = 0  # heads begun on this connection
        self._idle = True  # no request begun, or the last one complete
        self._refused = False  # answered 431 or 408 and closing: what the parser still reads is dropped
        self._clock: asyncio.TimerHandle | None = self.loop.call_later(self.head_timeout, self._too_slow)
        if self._too_many():
            self._refused, self._head = True, None
            self._stop_clock()
            transport.close()

    def _too_many(self) -> bool:
        """Whether this connection is one too many, overall or from its client's address."""
        open_now = self.server_state.connections  # every connection of this server, this one included
        if len(open_now) > self.max_connections:
            return True
        host = self.client[0] if self.client else None
        same = sum(1 for c in open_now if (peer := getattr(c, "client", None)) and peer[0] == host)
        return same > self.max_connections_per_client

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        self._stop_body_clock()
        super().connection_lost(exc)

    def _stop_body_clock(self) -> None:
        if self._body_clock is not None:
            self._body_clock.cancel()
            self._body_clock = None

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._head, self._heads, self._idle = 0, self._heads + 1, False
        if self._clock is None:
            self._clock = self.loop.call_later(self.head_timeout, self._too_slow)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._head = None
        self._stop_clock()
        size = len(self.url) + 16 + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head:  # no application call for it: refused here
            self._refuse(431, f"the request line and headers are limited to {self.max_head} bytes")
            return
        super().on_headers_complete()
        # Stopped by the message's end, which for a request without a body comes within this same read.
        self._body_clock = self.loop.call_later(self.body_timeout, self._body_too_slow)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._idle = True
        self._stop_body_clock()
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        idle, heads = self._idle, self._heads
        super().data_received(data)
        if self._head is None or self._refused or self.transport.is_closing():
            return
        if self._heads == heads or (idle and self._heads == heads + 1):  # the whole read is head
            self._head += len(data)
            if self._head > self.max_head:
                self._refuse(431, f"the request line and headers are limited to {self.max_head} bytes")

    def _too_slow(self) -> None:
        self._clock = None
        if self.transport.is_closing() or self._head is None or self._refused:
            return
        if self._heads == 0:  # nothing sent at all
            self.transport.close()
        else:
            self._refuse(408, f"the request line and headers did not arrive within {self.head_timeout:g} s")

    def _body_too_slow(self) -> None:
        self._body_clock = None
        if not self.transport.is_closing() and not self._refused:
            self._refuse(408, f"the request's body did not arrive within {self.body_timeout:g} s", own_body=True)

    def _refuse(self, status: int, detail: str, own_body: bool = False) -> None:
        """Answer ``status`` and close; with an earlier request's answer still being written, only close.

        ``own_body``: the refused request is the one whose body is arriving, so its answer may go out
        as long as the application has not begun one.
        """
        self._head, self._refused = None, True
        self._stop_clock()
        self._stop_body_clock()
        if self.cycle is None or self.cycle.response_complete or (own_body and not self.cycle.response_started):
            body = json.dumps({"detail": detail}).encode()
            self.transport.write(b"".join([
                STATUS_LINE[status], b"content-type: application/json\r\n",
                b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body), body]))
        self.transport.close()


def uvicorn_config(app: Any, host: str = "127.0.0.1", port: int = 8000) -> uvicorn.Config:
    """The settings ``aekit serve`` runs ``app`` with, on ``host``:``port``."""
    return uvicorn.Config(
        app, host=host, port=port, http=BoundedHttp, log_level="warning",
        # The client's address is the connection's: the X-Forwarded-For of a client on this machine is
        # not believed (the event streams are counted per address).
        proxy_headers=False)
