"""The FastAPI app of ``aekit serve``: the page (static files), the JSON API under ``/api/`` and its
Swagger page ``/docs`` (swagger-ui's files served from here too).

Handlers are thin: look the run up by id, check and decode the request's images
(:mod:`aekit.serve.inputs`), call :mod:`aekit.serve.work`, answer. Every bad request is a 4xx:
an :class:`AekitError` is 422 with its one line, an unknown run 404, a body over 2 MB 413 and a
missing or wrong token 401, all before the request reaches a handler where they can.

The hot calls (encode, decode, anomaly, reconstruct) skip the framework: the :class:`Guard` that
reads every body answers them itself, their bodies parsed and checked by :mod:`aekit.serve.wire`
and their images batched into one forward pass (:class:`aekit.serve.work.Batcher`); FastAPI keeps
routes for them so that ``/openapi.json`` lists them with their bodies.
"""

from __future__ import annotations

import contextlib
import hmac
import importlib.util
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from aekit.errors import AekitError
from aekit.serve import inputs, wire, work
from aekit.serve.jobs import PRESETS, JobQueue, preview
from aekit.serve.runs import RunNotFound, RunStore, Served, find_runs

MAX_BODY = 2 * 1024 * 1024
STATIC = Path(__file__).parent / "static"
# The page's scripts and styles come from this server only; no eval, no inline script, no frames.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]

ImageField = str | list[Any] | None
HotCall = Callable[[str, bytes, str | None], Awaitable[bytes]]
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
LOOPBACK = ("127.0.0.1", "localhost", "::1")  # the addresses to bind that only this machine reaches
HOT_PATH = re.compile(r"/api/runs/([^/]+)/([a-z]+)")
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no 1.0 or true for an index, no "1" for a number


class ImageReq(Strict):
    image: ImageField = Field(None, description="base64 PNG, or numbers in [0, 1] of the sample shape")
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
    iters: Annotated[int, Field(ge=1, le=200)] = 20


class BlendReq(Strict):
    a: ImageField = None
    b: ImageField = None
    a_index: int | None = None
    b_index: int | None = None
    t: Annotated[float, Field(ge=0, le=1)] = 0.5
    png: bool = False


class JobReq(Strict):
    preset: str = "simplest"
    data: str = "mnist-mini"
    epochs: Annotated[int, Field(ge=1, le=200)] = 5


class PointReq(Strict):
    x: Annotated[float, Field(ge=-1e6, le=1e6)]
    y: Annotated[float, Field(ge=-1e6, le=1e6)]
    png: bool = False


def pick(s: Served, image: ImageField, index: int | None, field: str = "image") -> np.ndarray:
    """The request's image: given inline, or a test image by index."""
    if image is not None:
        return inputs.sample(image, s.shape, field)
    if index is None:
        raise AekitError(f"{field}: give an image or the index of a test image")
    if not 0 <= index < len(s.test_x):
        raise AekitError(f"{field}: index must lie in 0..{len(s.test_x) - 1}")
    return s.test_x[index]


def reply(result: dict[str, Any], png: bool = False) -> Response:
    """The answer as JSON bytes written by :func:`wire.dumps`: handing FastAPI a dict of 2,000-number
    lists makes it walk every number through ``jsonable_encoder`` and then format each one."""
    return Response(wire.dumps(result, png), media_type="application/json")


def body_of(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a handler that reads its body itself: the body the model describes."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def problem(exc: Exception) -> tuple[int, str]:
    """The status and one-line detail of a refusal: 422 for bad input, 404 for an unknown run."""
    if isinstance(exc, RunNotFound):
        return 404, "no such run"
    return 422, str(exc).splitlines()[0] if str(exc) else "bad input"


async def _send(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


async def _reply(send: Any, status: int, detail: str) -> None:
    await _send(send, status, json.dumps({"detail": detail}).encode())


def _host_name(host: bytes | None) -> str | None:
    """The name in a Host header, without its port: ``localhost``, ``127.0.0.1``, ``[::1]``."""
    if host is None:
        return None
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[:text.find("]") + 1] or None
    return text.partition(":")[0]


class Guard:
    """ASGI middleware in front of the app.

    - With ``local_only``, a request must name this machine by a loopback name in its Host header,
      else 400: a page of another site whose name was made to resolve to 127.0.0.1 (DNS rebinding)
      must not reach the API.
    - Security headers on every answer, the token on /api/, the body cap (413).
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
        headers = dict(scope.get("headers") or [])
        if self.local_only and _host_name(headers.get(b"host")) not in LOCAL_NAMES:
            return await _reply(send, 400, "this server answers requests to localhost, 127.0.0.1 or [::1] only "
                                           "(the Host header names another site)")
        if self.token and scope["path"].startswith("/api/"):
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, b"Bearer " + self.token.encode()):
                return await _reply(send, 401, "a bearer token is required (Authorization: Bearer TOKEN)")
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
            ctype = headers.get(b"content-type")
            try:
                answer = await self.hot[hot[2]](hot[1], b"".join(body), ctype and ctype.decode("latin-1"))
            except (AekitError, RunNotFound) as exc:
                return await _reply(send, *problem(exc))
            return await _send(send, 200, answer)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(body), "more_body": False}
            return await receive()

        async def with_headers(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                msg = {**msg, "headers": [*msg.get("headers", []), *SECURITY_HEADERS]}
            await send(msg)

        return await self.app(scope, replay, with_headers)


def _errors(app: FastAPI) -> None:
    async def refused(request: Request, exc: Exception) -> JSONResponse:
        status, detail = problem(exc)
        return JSONResponse({"detail": detail}, status_code=status)

    app.add_exception_handler(AekitError, refused)
    app.add_exception_handler(RunNotFound, refused)


def _use_routes(app: FastAPI, store: RunStore) -> None:
    @app.get("/api/runs", summary="The runs this server opens")
    def runs() -> list[dict[str, Any]]:
        return store.listing()

    @app.get("/api/runs/{rid}/samples", summary="Test images to pick from")
    def samples(rid: str, start: Annotated[int, Query(ge=0, le=10**6)] = 0, n: Annotated[int, Query(ge=1, le=100)] = 20,
                png: bool = False) -> dict[str, Any]:
        s = store.get(rid)
        x = s.test_x[start:start + n]
        labels = None if s.test_y is None else [int(v) for v in s.test_y[start:start + n]]
        return {"start": start, "total": len(s.test_x), "labels": labels,
                "images": [wire.answer({"i": v}, png)["i"] for v in x]}



def _hot_calls(store: RunStore) -> dict[str, tuple[HotCall, type[BaseModel], str]]:
    """The calls a drawing page (or a load test) makes many times a second: name -> (coroutine of the
    run id, body and content type giving the answer's JSON, the model of the body, summary). No model
    validation of 784-number lists, no thread-pool hop, one forward pass for the images that arrive
    together (work.Batcher)."""

    async def served(rid: str) -> Served:
        s = store.opened(rid)  # 404 for an unknown id, before the body is read
        return s if s is not None else await run_in_threadpool(store.get, rid)  # opening takes seconds

    async def image(rid: str, body: bytes, ctype: str | None) -> tuple[Served, np.ndarray, bool]:
        s = await served(rid)
        req = wire.fields(body, ctype, wire.IMAGE)
        if isinstance(req["image"], str):  # a PNG is decoded in a worker thread, off the event loop
            return s, await run_in_threadpool(pick, s, req["image"], req["index"]), req["png"]
        return s, pick(s, req["image"], req["index"]), req["png"]

    async def encode(rid: str, body: bytes, ctype: str | None) -> bytes:
        s, x, _ = await image(rid, body, ctype)
        return wire.dumps({"code": (await work.batcher(s)(x))[1].tolist()})

    async def decode(rid: str, body: bytes, ctype: str | None) -> bytes:
        s = await served(rid)
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
        s, x, _ = await image(rid, body, ctype)
        r = work.scored(s, x, *await work.batcher(s)(x))
        return wire.dumps({"score": r["score"], "threshold": r["threshold"], "anomaly": bool(r["anomaly"])})

    async def reconstruct(rid: str, body: bytes, ctype: str | None) -> bytes:
        s, x, png = await image(rid, body, ctype)
        return wire.dumps(work.scored(s, x, *await work.batcher(s)(x)), png)

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
    @app.post("/api/runs/{rid}/denoise", summary="Noisy image, model output and the best classical baseline")
    def denoise(rid: str, req: DenoiseReq) -> dict[str, Any]:
        s = store.get(rid)
        if req.noise != "gaussian" and req.level >= 1:
            raise AekitError("level: a fraction for masking and salt-pepper noise must lie below 1")
        with s.lock:
            r = work.denoise(s, pick(s, req.image, req.index), req.noise, req.level, req.seed)
        return reply(r, req.png)

    @app.post("/api/runs/{rid}/inpaint", summary="Model fill vs mean-image fill of the missing pixels")
    def inpaint(rid: str, req: InpaintReq) -> dict[str, Any]:
        s = store.get(rid)
        if len(s.shape) != 3:
            raise AekitError("inpainting needs an image model (samples of shape C, H, W)")
        x = pick(s, req.image, req.index)
        mask = work.parse_mask(s, req.mask) if isinstance(req.mask, str) else inputs.mask_array(req.mask, s.shape[1:])
        with s.lock:
            return reply(work.inpaint(s, x, mask, req.iters), req.png)

    @app.post("/api/runs/{rid}/interpolate", summary="The decoded point at weight t between two codes")
    def interpolate(rid: str, req: BlendReq) -> dict[str, Any]:
        s = store.get(rid)
        a, b = pick(s, req.a, req.a_index, "a"), pick(s, req.b, req.b_index, "b")
        with s.lock:
            return reply(work.blend(s, a, b, req.t), req.png)

    @app.get("/api/runs/{rid}/latent", summary="The test images' codes in 2-D, with labels")
    def latent(rid: str) -> dict[str, Any]:
        s = store.get(rid)
        with s.lock:
            return work.latent(s)

    @app.post("/api/runs/{rid}/latent/decode", summary="Decode a point of a 2-D code's map")
    def latent_decode(rid: str, req: PointReq) -> dict[str, Any]:
        s = store.get(rid)
        with s.lock:
            return reply({"image": work.decode_point(s, req.x, req.y)}, req.png)


def _events(queue: JobQueue, jid: int) -> Any:
    """Server-sent events: the job's status and finished epochs, whenever they change, until it ends."""
    job, last, deadline = queue.get(jid), None, time.monotonic() + 24 * 3600
    shown: tuple[int, Any] = (-1, None)  # (epochs, preview): reconstructions only when an epoch ends
    while time.monotonic() < deadline:
        now = {**job.public(), "metrics": job.metrics()}
        if len(now["metrics"]) != shown[0] and (now["metrics"] or job.status == "done"):
            p = preview(job.out)
            shown = (len(now["metrics"]), None if p is None else wire.answer(p, False))
        now["preview"] = shown[1]
        if now != last:
            yield f"data: {json.dumps(now)}\n\n"
            last = now
        if job.status in ("done", "failed", "cancelled"):
            return
        time.sleep(0.3)


def _job_routes(app: FastAPI, queue: JobQueue) -> None:
    def job_of(jid: int) -> Any:
        try:
            return queue.get(jid)
        except KeyError:
            raise RunNotFound(str(jid)) from None

    @app.get("/api/jobs", summary="Training jobs (one runs at a time, the others wait) and the presets")
    def jobs() -> dict[str, Any]:
        return {"presets": [*PRESETS, *queue.recipes], "jobs": [j.public() for j in list(queue.jobs.values())]}

    @app.post("/api/jobs", summary="Queue an `aekit train` run of a preset")
    def start(req: JobReq) -> dict[str, Any]:
        return queue.submit(req.preset, req.data, req.epochs).public()

    @app.post("/api/jobs/{jid}/cancel", summary="Cancel a queued job, or stop a running one (resumable)")
    def cancel(jid: int) -> dict[str, Any]:
        job_of(jid)
        return queue.cancel(jid).public()

    @app.get("/api/jobs/{jid}/events", summary="Server-sent events: status and losses per epoch")
    def events(jid: int) -> StreamingResponse:
        job_of(jid)
        return StreamingResponse(_events(queue, jid), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})


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
            if app.openapi_schema is None:
                schema = plain()
                schema.setdefault("components", {})["securitySchemes"] = {
                    "bearer": {"type": "http", "scheme": "bearer", "description": "the server's --token"}}
                for path, ops in schema["paths"].items():
                    for op in ops.values() if path.startswith("/api/") else ():
                        op["security"] = [{"bearer": []}]
            return app.openapi_schema

        app.openapi = with_bearer  # type: ignore[method-assign]


def create_app(*runs: str | Path, runs_root: str | Path | None = None, token: str | None = None,
               configs: str | Path | None = None, local_only: bool = False) -> Any:
    """The ASGI app serving the given run folders and every run folder directly under ``runs_root``;
    training jobs go under ``runs_root`` and may use the recipes (``*.toml``) in ``configs``.
    ``local_only`` (for a server bound to a loopback address) refuses requests whose Host header
    names anything but localhost, 127.0.0.1 or [::1]."""
    store = RunStore(find_runs(list(runs), runs_root))
    queue = JobQueue(Path(runs_root) if runs_root is not None else None, store.add,
                     Path(configs) if configs is not None else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        queue.shutdown()  # a running job is checkpointed, so `aekit train --resume` continues it

    # FastAPI's own Swagger page loads its scripts from a CDN: /docs is served by _docs_routes instead.
    app = FastAPI(title="aekit serve", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.store, app.state.queue = store, queue
    _errors(app)
    _use_routes(app, store)
    hot = _hot_calls(store)
    _hot_routes(app, hot)
    _task_routes(app, store)
    _job_routes(app, queue)
    _docs_routes(app, token)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return Guard(app, token, {name: call for name, (call, _, _) in hot.items()}, local_only)
