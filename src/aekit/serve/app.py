"""The FastAPI app of ``aekit serve``: the page (static files), the JSON API under ``/api/`` and its
Swagger page ``/docs`` (swagger-ui's files served from here too).

Handlers are thin: look the run up by id, check and decode the request's images
(:mod:`aekit.serve.inputs`), call :mod:`aekit.serve.work`, answer. Every bad request is a 4xx:
an :class:`AekitError` is 422 with its one line (naming runs by id, never by a server path), an
unknown run or job 404, a body over 2 MB 413, a POST whose body is not declared JSON 415, a missing
or wrong token 401 and a limit reached for now (images being decoded, open event streams) 429, all
before the request reaches a handler where they can. A body FastAPI cannot validate is answered
with the field and what it takes, never with the value sent (which may be NaN or a lone surrogate).

No request waits in a worker thread for something another client holds: handlers are coroutines
that wait for a run's model (:func:`aekit.serve.work.locked`), for a run being opened and for a
job's events without a thread, and use one only while they compute.

The hot calls (encode, decode, anomaly, reconstruct) skip the framework: the :class:`Guard` that
reads every body answers them itself, their bodies parsed and checked by :mod:`aekit.serve.wire`
and their images batched into one forward pass (:class:`aekit.serve.work.Batcher`); FastAPI keeps
routes for them so that ``/openapi.json`` lists them with their bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import importlib.util
import json
import re
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from aekit.errors import AekitError
from aekit.serve import guide, inputs, wire, work
from aekit.serve.inputs import Busy
from aekit.serve.jobs import DEMO_SET, SETS, Job, JobNotFound, JobQueue, preset_info, preview
from aekit.serve.runs import SERVED_KINDS, RunNotFound, RunStore, Served, find_runs, of_kind, redact

MAX_BODY = 2 * 1024 * 1024
STATIC = Path(__file__).parent / "static"
# The page's scripts and styles come from this server only; no eval, no inline script, no frames.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]

ImageField = str | list[Any] | None
HotCall = Callable[[str, bytes, str | None], Awaitable[bytes]]
# A Host header a loopback-bound server answers: a loopback name and an optional port, nothing else
# (``localhost:8000@evil.example`` and ``[::1]evil.example`` are refused).
LOCAL_HOST = re.compile(rb"(?:localhost|127\.0\.0\.1|\[::1\])(?::[0-9]{1,5})?", re.IGNORECASE)
LOOPBACK = ("127.0.0.1", "localhost", "::1")  # the addresses to bind that only this machine reaches
STREAMS_PER_CLIENT = 8  # open event streams per client address (a page follows each job it started)
STREAMS_TOTAL = 64  # and in all
EVENT_POLL = 0.3  # seconds between looks at a job's state for its event streams
HOT_PATH = re.compile(r"/api/runs/([^/]+)/([a-z]+)")
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8"}


class Strict(BaseModel):
    # no 1.0 or true for an index, no "1" for a number, no NaN or infinity (JSON has neither; Python's
    # parser takes NaN, Infinity and 1e400)
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class ImageReq(Strict):
    image: ImageField = Field(None, description="base64 PNG or JPEG (made the model's input: grey for a one-channel "
                              "model, scaled to fit keeping its aspect ratio, inverted where its background is "
                              "the other polarity from the training images'; reconstruct's `preprocessing` says "
                              "what was done), or numbers in [0, 1] of the sample shape")
    index: int | None = Field(None, description="a test image of the run's dataset, instead of `image`")
    png: bool = Field(False, description="answer images as base64 PNG instead of arrays")


class DecodeReq(Strict):
    code: list[float]
    png: bool = False


class DenoiseReq(ImageReq):
    noise: Literal["gaussian", "masking", "salt-pepper"] = "gaussian"
    level: Annotated[float, Field(gt=0, le=2)] = 0.5
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0


class InpaintReq(ImageReq):
    mask: str | list[Any] = Field("center:14", description="center:S, random:F, rows:A-B or an (H, W) array")
    # absent or null: the run's own default (aekit.tasks.inpaint.default_passes: 1 pass for a model
    # trained on the centre hole, else 20), as `aekit inpaint` without --iters
    iters: Annotated[int, Field(ge=1, le=200)] | None = None


class BlendReq(Strict):
    a: ImageField = None
    b: ImageField = None
    a_index: int | None = None
    b_index: int | None = None
    t: Annotated[float, Field(ge=0, le=1)] = 0.5
    png: bool = False


class JobReq(Strict):
    preset: str = Field("simplest", description="a preset, a set of presets (classifier: an encoder, then it "
                        "fine-tuned at 1,000 labels and the same network from a random start) or recipe:NAME.toml")
    data: str = "mnist-mini"
    epochs: Annotated[int | None, Field(ge=1, le=200, description="per job; default: each preset's own")] = None


class NoBody(Strict):
    """A POST that takes no fields still sends ``{}`` as JSON (every POST's Content-Type is JSON's)."""


Label = Annotated[int | None, Field(ge=0, le=2**31 - 1, description="the class, for a conditional VAE run only")]


class PointReq(Strict):
    x: Annotated[float, Field(ge=-1e6, le=1e6)]
    y: Annotated[float, Field(ge=-1e6, le=1e6)]
    label: Label = None
    png: bool = False


# The generating calls of a VAE run. Counts are bounded here (a page shows a few dozen images); the
# values a task function checks itself (temperature, span, dims, label) are its to refuse, in one line.
class SampleReq(Strict):
    n: Annotated[int, Field(ge=1, le=64)] = 16
    temperature: float = Field(1.0, description="scale of the prior's spread: above 0, at most 10")
    label: Label = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    png: bool = False


class TraverseReq(Strict):
    dims: list[int] | None = Field(None, max_length=10, description="latent dimensions (default: the first 3)")
    steps: Annotated[int, Field(ge=2, le=15)] = 9
    span: float = Field(3.0, description="prior standard deviations either side of the mean: above 0, at most 10")
    label: Label = None
    png: bool = False


class ManifoldReq(Strict):
    grid: Annotated[int, Field(ge=2, le=20)] = 12
    span: float = Field(0.9, description="the central share of each axis's prior probability: above 0, below 1")
    label: Label = None
    png: bool = False


def pick(s: Served, image: ImageField, index: int | None, field: str = "image") -> tuple[np.ndarray, list[str] | None]:
    """The request's image (given inline, or a test image by index), and for a picture what was done to
    make it the model's input (:func:`inputs.picture`: scaled, made grey, inverted to the training
    images' polarity), None for numbers or an index."""
    if isinstance(image, str):
        return inputs.picture(image, s.shape, s.light_background, field)
    if image is not None:
        return inputs.as_array(image, s.shape, field), None
    if index is None:
        raise AekitError(f"{field}: give an image or the index of a test image")
    if not 0 <= index < len(s.tests):
        raise AekitError(f"{field}: index must lie in 0..{len(s.tests) - 1}")
    return s.test_images(index, index + 1)[0], None


def reply(result: dict[str, Any], png: bool = False) -> Response:
    """The answer as JSON bytes written by :func:`wire.dumps`: handing FastAPI a dict of 2,000-number
    lists makes it walk every number through ``jsonable_encoder`` and then format each one."""
    return Response(wire.dumps(result, png), media_type="application/json")


def body_of(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a handler that reads its body itself: the body the model describes."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def problem(exc: Exception) -> tuple[int, str]:
    """The status and one-line detail of a refusal: 422 for bad input, 404 for an unknown run or job,
    429 for a limit reached for now. No server path is named (a message may quote a file's)."""
    if isinstance(exc, RunNotFound):
        return 404, "no such run"
    if isinstance(exc, JobNotFound):
        return 404, "no such job"
    line = redact(str(exc).splitlines()[0]) if str(exc) else "bad input"
    return (429 if isinstance(exc, Busy) else 422), line


def invalid_detail(errors: Sequence[Any]) -> str:
    """One line for a request FastAPI could not validate: the field and what it takes. Never the value
    sent: FastAPI's own answer echoed it, and NaN, 1e400 or a lone surrogate then failed with a 500."""
    if not errors:
        return "bad request"
    e = errors[0]
    if e.get("type") == "json_invalid":
        return "body: not valid JSON"
    where = ".".join(wire.shown(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")) or "body"
    if e.get("type") == "extra_forbidden":
        return f"{where}: unknown field"
    msg = "".join(c if c.isascii() and c.isprintable() else "?" for c in str(e.get("msg", "not valid"))[:200])
    return f"{where}: {msg}"


def _refusal(status: int, detail: str) -> tuple[bytes, dict[str, str]]:
    """The JSON body of a refusal and its extra headers (Retry-After on a 429). The JSON is ASCII
    (escapes), so no text in a detail can fail to encode."""
    return json.dumps({"detail": detail}).encode(), ({"retry-after": "1"} if status == 429 else {})


async def _send(send: Any, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *((k.encode(), v.encode()) for k, v in (extra or {}).items()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


async def _reply(send: Any, status: int, detail: str) -> None:
    await _send(send, status, *_refusal(status, detail))


class Guard:
    """ASGI middleware in front of the app.

    - With ``local_only``, a request must name this machine by a loopback name in its Host header,
      else 400: a page of another site whose name was made to resolve to 127.0.0.1 (DNS rebinding)
      must not reach the API. Several Host headers are a 400 whatever the address.
    - Security headers on every answer, the token on /api/, a POST's body declared JSON (415: a form
      of another site posts without asking first, but never as application/json), the body cap (413).
    - The hot calls (``hot``: name -> coroutine of run id, body and content type giving JSON bytes)
      are answered here from the body it has read, without FastAPI's routing, dependency solving and
      middleware layers (a third of a reconstruct call's server time once the model batches).
    """

    def __init__(self, app: Any, token: str | None, hot: dict[str, HotCall] | None = None,
                 local_only: bool = False) -> None:
        self.app, self.token, self.hot, self.local_only = app, token, hot or {}, local_only

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        raw = scope.get("headers") or []
        headers = dict(raw)
        if sum(name == b"host" for name, _ in raw) > 1:
            return await _reply(send, 400, "a request has one Host header, not several")
        if self.local_only and not LOCAL_HOST.fullmatch(headers.get(b"host", b"").strip()):
            return await _reply(send, 400, "this server answers requests to localhost, 127.0.0.1 or [::1] only "
                                           "(the Host header names another site)")
        if self.token and scope["path"].startswith("/api/"):
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, b"Bearer " + self.token.encode()):
                return await _reply(send, 401, "a bearer token is required (Authorization: Bearer TOKEN)")
        ctype = headers.get(b"content-type")
        if scope["method"] == "POST" and not wire.is_json(ctype and ctype.decode("latin-1")):
            return await _reply(send, 415, "a POST body is JSON: send it with Content-Type: application/json")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return await _reply(send, 413, f"request bodies are limited to {MAX_BODY} bytes")
        body, size, more = [], 0, True
        while more:  # read whole (capped) before the app parses it: a chunked body has no length
            msg = await receive()
            if msg["type"] != "http.request":
                return None
            size += len(msg.get("body", b""))
            if size > MAX_BODY:
                return await _reply(send, 413, f"request bodies are limited to {MAX_BODY} bytes")
            body.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        hot = HOT_PATH.fullmatch(scope["path"]) if scope["method"] == "POST" else None
        if hot is not None and hot[2] in self.hot:
            began = time.perf_counter()
            try:
                answer = await self.hot[hot[2]](hot[1], b"".join(body), ctype and ctype.decode("latin-1"))
            except (AekitError, RunNotFound) as exc:
                return await _reply(send, *problem(exc))
            # the server's own time for the call (parse, batch, model, answer), which a page or a benchmark
            # reads apart from the network's and the browser's (benchmarks/serve.py --page)
            took = f"app;dur={(time.perf_counter() - began) * 1e3:.2f}"
            return await _send(send, 200, answer, {"server-timing": took})
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(body), "more_body": False}
            return await receive()

        async def with_headers(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":  # a policy of the answer's own (the guide's) stays
                own = {name.lower() for name, _ in msg.get("headers", [])}
                msg = {**msg, "headers": [*msg.get("headers", []), *(h for h in SECURITY_HEADERS if h[0] not in own)]}
            await send(msg)

        return await self.app(scope, replay, with_headers)


def _errors(app: FastAPI) -> None:
    def answer(status: int, detail: str) -> Response:
        body, extra = _refusal(status, detail)
        return Response(body, status_code=status, headers=extra, media_type="application/json")

    async def refused(request: Request, exc: Exception) -> Response:
        return answer(*problem(exc))

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return answer(422, invalid_detail(exc.errors()))

    for kind in (AekitError, RunNotFound, JobNotFound):
        app.add_exception_handler(kind, refused)
    app.add_exception_handler(RequestValidationError, invalid)


async def served(store: RunStore, rid: str, kinds: tuple[str, ...] = SERVED_KINDS) -> Served:
    """The run ``rid`` (404 for an unknown id), opened first if it is not yet: that takes seconds, in a
    worker thread, one run at a time; the other requests wait for it without holding a thread. A run
    not of ``kinds`` (a classifier for the autoencoder calls, an autoencoder for classify) is a 422."""
    s = store.opened(rid)
    if s is None:
        async with store.opening:
            s = await run_in_threadpool(store.get, rid, kinds)
    return of_kind(s, kinds)


async def picked(s: Served, value: ImageField, index: int | None, field: str = "image") \
        -> tuple[np.ndarray, list[str] | None]:
    """:func:`pick`, with a PNG decoded in a worker thread, off the event loop (numbers are checked here)."""
    if isinstance(value, str):
        return await run_in_threadpool(pick, s, value, index, field)
    return pick(s, value, index, field)


async def image(s: Served, value: ImageField, index: int | None, field: str = "image") -> np.ndarray:
    """The image of :func:`picked`, without the words."""
    return (await picked(s, value, index, field))[0]


def _use_routes(app: FastAPI, store: RunStore) -> None:
    @app.get("/api/runs", summary="The runs this server opens")
    def runs() -> list[dict[str, Any]]:
        return store.listing()

    @app.get("/api/runs/{rid}/samples", summary="Test images to pick from", response_model=dict[str, Any])
    async def samples(rid: str, start: Annotated[int, Query(ge=0, le=10**6)] = 0,
                      n: Annotated[int, Query(ge=1, le=100)] = 20, png: bool = False) -> Response:
        s = await served(store, rid)

        def answer() -> bytes:  # up to 100 images as numbers or PNG: in a worker thread
            x = s.test_images(start, start + n)
            labels = None if s.test_y is None else [int(v) for v in s.test_y[start:start + n]]
            return wire.dumps({"start": start, "total": len(s.tests), "labels": labels,
                               "images": [wire.answer({"i": v}, png)["i"] for v in x]})

        return Response(await run_in_threadpool(answer), media_type="application/json")



def _hot_calls(store: RunStore) -> dict[str, tuple[HotCall, type[BaseModel], str]]:
    """The calls a drawing page (or a load test) makes many times a second: name -> (coroutine of the
    run id, body and content type giving the answer's JSON, the model of the body, summary). No model
    validation of 784-number lists, no thread-pool hop, one forward pass for the images that arrive
    together (work.Batcher)."""

    async def one(rid: str, body: bytes, ctype: str | None) -> tuple[Served, np.ndarray, bool]:
        s = await served(store, rid)
        req = wire.fields(body, ctype, wire.IMAGE)
        return s, await image(s, req["image"], req["index"]), req["png"]

    async def encode(rid: str, body: bytes, ctype: str | None) -> bytes:
        s, x, _ = await one(rid, body, ctype)
        return wire.dumps({"code": (await work.batcher(s)(x))[1].tolist()})

    async def decode(rid: str, body: bytes, ctype: str | None) -> bytes:
        s = await served(store, rid)
        req = wire.fields(body, ctype, wire.CODE)
        try:
            z = np.asarray(req["code"], np.float64)
        except OverflowError:  # an integer of 400 digits
            z = np.full(1, np.inf)
        if len(z) != s.model.code_size or not np.isfinite(z).all() or np.abs(z).max() > 1e6:
            raise AekitError(f"code: expected {s.model.code_size} finite numbers (|z| <= 1e6)")
        out = await work.locked(s, s.model.decode, z[None].astype(np.float32))
        return wire.dumps({"image": out[0]}, req["png"])

    async def anomaly(rid: str, body: bytes, ctype: str | None) -> bytes:
        s, x, _ = await one(rid, body, ctype)
        r = work.scored(s, x, *await work.batcher(s)(x))
        return wire.dumps({"score": r["score"], "threshold": r["threshold"], "anomaly": bool(r["anomaly"])})

    async def reconstruct(rid: str, body: bytes, ctype: str | None) -> bytes:
        s = await served(store, rid)
        req = wire.fields(body, ctype, wire.IMAGE)
        x, notes = await picked(s, req["image"], req["index"])
        r = work.scored(s, x, *await work.batcher(s)(x))
        if notes is not None:  # a picture: what was done to make it the model's input (the answer's "input")
            r["preprocessing"] = notes
        return wire.dumps(r, req["png"])

    return {"encode": (encode, ImageReq, "The code of an image"),
            "decode": (decode, DecodeReq, "The image of a code"),
            "anomaly": (anomaly, ImageReq, "Anomaly score (reconstruction error) against the run's threshold"),
            "reconstruct": (reconstruct, ImageReq, "Reconstruction, code, error map and anomaly score")}


def _hot_routes(app: FastAPI, calls: dict[str, tuple[HotCall, type[BaseModel], str]]) -> None:
    """The hot calls as FastAPI routes too (the Guard answers them first): /openapi.json lists them
    with their bodies, and the app without the Guard answers them alike."""

    def endpoint(call: HotCall) -> Any:
        async def run(rid: str, request: Request) -> Response:
            answer = await call(rid, await request.body(), request.headers.get("content-type"))
            return Response(answer, media_type="application/json")

        return run

    for name, (call, model, summary) in calls.items():
        app.post(f"/api/runs/{{rid}}/{name}", name=name, summary=summary,
                 openapi_extra=body_of(model))(endpoint(call))


def _task_routes(app: FastAPI, store: RunStore) -> None:
    # Each: the run and the images first, then the work with the run's model to itself, in a worker thread.
    # A route that answers a JSON object as ready bytes (reply) still documents it as one in /openapi.json.
    post_json = functools.partial(app.post, response_model=dict[str, Any])
    @post_json("/api/runs/{rid}/denoise", summary="Noisy image, model output and the best classical baseline")
    async def denoise(rid: str, req: DenoiseReq) -> Response:
        s = await served(store, rid)
        noise = work.noise_of(req.noise, req.level)
        x = await image(s, req.image, req.index)
        baseline = await work.best_baseline(s, noise)  # outside the run's gate: it uses no model
        r = await work.locked(s, work.denoise, s, x, noise, req.seed, baseline, thread=True)
        return reply(r, req.png)

    @post_json("/api/runs/{rid}/inpaint", summary="Model fill vs mean-image fill of the missing pixels")
    async def inpaint(rid: str, req: InpaintReq) -> Response:
        s = await served(store, rid)
        if len(s.shape) != 3:
            raise AekitError("inpainting needs an image model (samples of shape C, H, W)")
        x = await image(s, req.image, req.index)
        mask = work.parse_mask(s, req.mask) if isinstance(req.mask, str) else inputs.mask_array(req.mask, s.shape[1:])
        return reply(await work.locked(s, work.inpaint, s, x, mask, req.iters, thread=True), req.png)

    @post_json("/api/runs/{rid}/pca", summary="PCA with as many components as the code beside the model, with errors")
    async def pca(rid: str, req: ImageReq) -> Response:
        s = await served(store, rid)
        x = await image(s, req.image, req.index)
        fitted = await work.code_pca(s)  # outside the run's gate: it uses no model
        return reply(await work.locked(s, work.linear, s, x, fitted), req.png)

    @post_json("/api/runs/{rid}/classify", summary="A classifier run's probability of each class")
    async def classify(rid: str, req: ImageReq) -> Response:
        s = await served(store, rid, ("classifier",))
        x = await image(s, req.image, req.index)
        r = await work.locked(s, work.classify, s, x)
        if req.index is not None and req.image is None and s.test_y is not None:
            r["label"] = int(s.test_y[req.index])  # a test image's true class, beside the classifier's
        return reply(r, req.png)

    @post_json("/api/runs/{rid}/interpolate", summary="The decoded point at weight t between two codes")
    async def interpolate(rid: str, req: BlendReq) -> Response:
        s = await served(store, rid)
        a, b = await image(s, req.a, req.a_index, "a"), await image(s, req.b, req.b_index, "b")
        return reply(await work.locked(s, work.blend, s, a, b, req.t, thread=True), req.png)

    @app.get("/api/runs/{rid}/latent", summary="The test images' codes in 2-D, with labels")
    async def latent(rid: str) -> dict[str, Any]:
        s = await served(store, rid)
        return await work.locked(s, work.latent, s, thread=True)

    @post_json("/api/runs/{rid}/latent/decode", summary="Decode a point of a 2-D code's map")
    async def latent_decode(rid: str, req: PointReq) -> Response:
        s = await served(store, rid)
        return reply({"image": await work.locked(s, work.decode_point, s, req.x, req.y, req.label, thread=True)},
                     req.png)

    # A VAE run's generating calls: the run is checked to be a VAE and the answer's size bounded before
    # the work; the task functions (aekit.tasks.generate, as `aekit sample` and `aekit traverse`) check the rest.
    @app.post("/api/runs/{rid}/sample", summary="Decoded draws from a VAE run's prior")
    async def sample(rid: str, req: SampleReq) -> Response:
        s = await served(store, rid)
        work.generating(s, "sample", req.n)
        r = await work.locked(s, work.sample, s, req.n, req.temperature, req.label, req.seed, thread=True)
        return await generated(s, r, {"images": 1}, req.png)

    @app.post("/api/runs/{rid}/traverse", summary="A VAE run's latent dimensions swept one at a time")
    async def traverse(rid: str, req: TraverseReq) -> Response:
        s = await served(store, rid)
        dims = work.traversal_dims(s, req.dims)
        work.generating(s, "traverse", len(dims) * req.steps)
        r = await work.locked(s, work.traverse, s, dims, req.steps, req.span, req.label, thread=True)
        return await generated(s, r, {"strips": 2}, req.png)

    @app.post("/api/runs/{rid}/manifold", summary="A 2-number VAE code's decoded grid of prior quantiles")
    async def manifold(rid: str, req: ManifoldReq) -> Response:
        s = await served(store, rid)
        work.generating(s, "manifold", req.grid * req.grid)
        r = await work.locked(s, work.manifold, s, req.grid, req.span, req.label, thread=True)
        return await generated(s, r, {"images": 2}, req.png)


async def generated(s: Served, result: dict[str, Any], batches: dict[str, int], png: bool) -> Response:
    """An answer of generated images (``batches``: key -> its batch axes), written in a worker thread: up
    to 400 images, as arrays, or with ``png`` (for image runs) as lists of base64 PNG."""
    def write() -> bytes:
        if png and len(s.shape) >= 2:
            return wire.dumps({k: wire.pngs(v, batches[k]) if k in batches else v for k, v in result.items()})
        return wire.dumps(result)

    return Response(await run_in_threadpool(write), media_type="application/json")


class Streams:
    """The open event streams, per client address and in all. A stream holds a connection and a
    coroutine, no thread, but it lasts as long as a job trains: a client may keep a few open, the
    server a bounded number (past either limit, 429)."""

    def __init__(self, per_client: int = STREAMS_PER_CLIENT, total: int = STREAMS_TOTAL) -> None:
        self.per_client, self.total = per_client, total
        self.open: Counter[str] = Counter()

    def take(self, client: str) -> None:
        if self.open[client] >= self.per_client:
            raise Busy(f"this client has {self.per_client} event streams open, the most it may; close one first")
        if self.open.total() >= self.total:
            raise Busy(f"the server has {self.total} event streams open, the most it keeps; try again later")
        self.open[client] += 1

    def give(self, client: str) -> None:
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]


class EventStream(StreamingResponse):
    """A job's server-sent events, holding one of the client's stream places until the stream ends
    or the client goes away."""

    def __init__(self, events: AsyncGenerator[str, None], release: Callable[[], None]) -> None:
        super().__init__(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.events, self.release = events, release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()
            await self.events.aclose()


def _preview_answer(out: Path) -> Any:
    p = preview(out)
    return None if p is None else wire.answer(p, False)


class Previews:
    """The reconstructions shown with a job's events: made once per finished epoch however many streams
    follow the job, in a worker thread (it opens the run), for the last few jobs."""

    KEEP = 8

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.made: OrderedDict[int, tuple[int, Any]] = OrderedDict()

    async def of(self, job: Job, epochs: int) -> Any:
        async with self.lock:
            if job.id not in self.made or self.made[job.id][0] != epochs:
                self.made[job.id] = (epochs, await run_in_threadpool(_preview_answer, job.out))
            self.made.move_to_end(job.id)
            while len(self.made) > self.KEEP:
                self.made.popitem(last=False)
            return self.made[job.id][1]


async def _events(job: Job, previews: Previews) -> AsyncGenerator[str, None]:
    """Server-sent events: the job's status and finished epochs, whenever they change, until it ends.
    A coroutine that sleeps between looks: an open stream holds no worker thread."""
    last, deadline = None, time.monotonic() + 24 * 3600
    shown: tuple[int, Any] = (-1, None)  # (epochs, preview): reconstructions only when an epoch ends
    while time.monotonic() < deadline:
        now = {**job.public(), "metrics": job.metrics()}
        if len(now["metrics"]) != shown[0] and (now["metrics"] or job.status == "done"):
            shown = (len(now["metrics"]), await previews.of(job, len(now["metrics"])))
        now["preview"] = shown[1]
        if now != last:
            yield f"data: {json.dumps(now)}\n\n"
            last = now
        if job.status in ("done", "failed", "cancelled"):
            return
        await asyncio.sleep(EVENT_POLL)


def _job_routes(app: FastAPI, queue: JobQueue, streams: Streams) -> None:
    # queue.get raises JobNotFound for an unknown id: 404 "no such job"
    @app.get("/api/jobs", summary="Training jobs (one runs at a time, the others wait) and the presets")
    def jobs() -> dict[str, Any]:
        return {"presets": queue.names(), "preset_info": preset_info(),
                "jobs": [j.public() for j in list(queue.jobs.values())]}

    @app.post("/api/jobs", summary="Queue an `aekit train` run of a preset (a set: its jobs, one after another)")
    def start(req: JobReq) -> dict[str, Any]:
        jobs = queue.submit_set(SETS.get(req.preset, [req.preset]), req.data, req.epochs)
        return {**jobs[-1].public(), "queued": [j.id for j in jobs]}  # the last job; the ids of all it queued

    @app.post("/api/jobs/{jid}/cancel", summary="Cancel a queued job, or stop a running one (resumable)",
              openapi_extra=body_of(NoBody))
    def cancel(jid: int) -> dict[str, Any]:
        return queue.cancel(jid).public()

    previews = Previews()

    @app.get("/api/jobs/{jid}/events", summary="Server-sent events: status and losses per epoch")
    async def events(jid: int, request: Request) -> StreamingResponse:
        job = queue.get(jid)
        client = request.client.host if request.client is not None else "?"
        streams.take(client)  # 429 past the limits
        return EventStream(_events(job, previews), lambda: streams.give(client))


def swagger_dist() -> Path | None:
    """The folder of swagger-ui's dist files as the ``fastapi-offline`` package ships them (swagger-ui
    5, which reads the OpenAPI 3.1 FastAPI writes), found without importing it; None without it."""
    spec = importlib.util.find_spec("fastapi_offline")
    for folder in (spec and spec.submodule_search_locations) or ():
        dist = Path(folder) / "static"
        if all((dist / name).is_file() for name in DOCS_ASSETS):
            return dist
    return None


def _docs_routes(app: FastAPI, token: str | None) -> None:
    """``/docs``: Swagger UI over ``/openapi.json``, every file from this server. FastAPI's own page
    loads its scripts from a CDN and starts them with an inline script, both of which the policy
    forbids; this one is a static page whose script (static/docs.js) starts swagger-ui. The page and
    its files hold no data, so like ``/`` they need no token; the calls made from it do. With a
    token, the API's description says so, and the page's Authorize button takes it."""
    dist = swagger_dist()

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        if dist is None:
            return JSONResponse({"detail": "the API page needs fastapi-offline (pip install 'aekit[serve]'); "
                                           "/openapi.json describes the API"}, status_code=404)
        return FileResponse(STATIC / "docs.html")

    @app.get("/docs/{name}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        if dist is None or name not in DOCS_ASSETS:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return FileResponse(dist / name, media_type=DOCS_ASSETS[name])

    if token:
        plain = app.openapi

        def with_bearer() -> dict[str, Any]:
            schema = app.openapi_schema
            if schema is None:
                schema = plain()  # (kept as app.openapi_schema)
                schema.setdefault("components", {})["securitySchemes"] = {
                    "bearer": {"type": "http", "scheme": "bearer", "description": "the server's --token"}}
                for path, ops in schema["paths"].items():
                    for op in ops.values() if path.startswith("/api/") else ():
                        op["security"] = [{"bearer": []}]
            return schema

        app.openapi = with_bearer  # type: ignore[method-assign]


def create_app(*runs: str | Path, runs_root: str | Path | None = None, token: str | None = None,
               configs: str | Path | None = None, local_only: bool = False,
               docs_site: str | Path | None = None, demo: bool = False) -> Any:
    """The ASGI app serving the given run folders and every run folder directly under ``runs_root``;
    training jobs go under ``runs_root`` and may use the recipes (``*.toml``) in ``configs``.
    ``local_only`` (for a server bound to a loopback address) refuses requests whose Host header
    names anything but localhost, 127.0.0.1 or [::1]. A token, where given, must not be empty.
    ``docs_site``, a built MkDocs site, is served under ``/guide/`` (:mod:`aekit.serve.guide`); without
    one, ``/guide/`` says how to build it. With ``demo`` (``aekit serve`` with no run), the demo set
    (:data:`aekit.serve.jobs.DEMO_SET`: a run for each panel) is queued as the server starts, and trained
    one job after another while the page is already in use."""
    if token is not None and not token.strip():
        raise AekitError("the token is empty: give a token, or none to serve without one")
    site = guide.site_folder(docs_site) if docs_site is not None else None
    store = RunStore(find_runs(list(runs), runs_root), runs_root)
    store.listing()  # the model registry's imports now, not during a cold page's first request
    queue = JobQueue(Path(runs_root) if runs_root is not None else None, store.add,
                     Path(configs) if configs is not None else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if demo:
            queue.submit_set(DEMO_SET, "mnist-mini")
        yield
        queue.shutdown()  # a running job is checkpointed, so `aekit train --resume` continues it

    # FastAPI's own Swagger page loads its scripts from a CDN: /docs is served by _docs_routes instead.
    app = FastAPI(title="aekit serve", docs_url=None, redoc_url=None, lifespan=lifespan)
    streams = Streams()
    app.state.store, app.state.queue, app.state.streams = store, queue, streams
    _errors(app)
    _use_routes(app, store)
    hot = _hot_calls(store)
    _hot_routes(app, hot)
    _task_routes(app, store)
    _job_routes(app, queue, streams)
    _docs_routes(app, token)
    guide.routes(app, site)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return Guard(app, token, {name: call for name, (call, _, _) in hot.items()}, local_only)
