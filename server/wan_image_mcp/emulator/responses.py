"""The emulator's handlers (``urls`` routes to them): a faithful local DashScope for the four Wan image models,
the HTTP side only.

Paths, headers, auth, validation errors, task life cycle, both result shapes, expiring result URLs and the
temporary-upload flow follow DashScope's documentation closely enough that the official ``dashscope`` SDK works
against it unchanged. The handlers here parse a request (JSON body, query, headers, form), call the
``models.EmulatorBackend`` that does the work, and answer: DashScope's JSON envelope (``request_id`` and the
``x-request-id`` header), its status codes, SSE, OSS's XML errors, injected faults' answers (a 429, a cut
connection). ``/_emulator/*`` is the control API for fault injection and inspection.
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, fields
from typing import Any, cast

import anyio
import httpx2
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..core.specs import Protocol
from .exceptions import EmulatedError, OssError, invalid
from .models import MAX_PAGE_SIZE, EmulatorBackend, TaskFilter
from .state import Fault, Target

API = "/api/v1"
Handler = Callable[[Request, EmulatorBackend], Awaitable[Response]]


class WireJSON(JSONResponse):
    """A JSON answer in UTF-8, as DashScope writes it; one holding a lone surrogate (a fault's ``message`` of
    ``"\\ud83d"``, as a service that cut a message inside an emoji would send) written with ``\\u`` escapes instead,
    where UTF-8 cannot carry it."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


class DroppedResponse(Response):
    """Starts a response, sends part of it, then cuts the connection."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"request_id": "', "more_body": True})
        raise httpx2.RemoteProtocolError("emulated fault: connection dropped mid-response")


def _error(backend: EmulatorBackend, status: int, code: str, message: str, **headers: str) -> WireJSON:
    """DashScope's error envelope: ``status``, ``{request_id, code, message}``, ``x-request-id`` + ``headers``."""
    request_id = backend.new_request_id()
    body = {"request_id": request_id, "code": code, "message": message}
    return WireJSON(body, status_code=status, headers={"x-request-id": request_id, **headers})


def _ok(backend: EmulatorBackend, body: dict[str, Any]) -> WireJSON:
    """DashScope's 200 envelope: ``body`` with a fresh ``request_id``, also in ``x-request-id``."""
    request_id = backend.new_request_id()
    return WireJSON({"request_id": request_id, **body}, headers={"x-request-id": request_id})


def _oss_error(exc: OssError) -> Response:
    """An object-store error as OSS answers it: its status and an XML ``<Error>``."""
    error = f"<Error><Code>{exc.code}</Code><Message>{exc.message}</Message></Error>"
    xml = f'<?xml version="1.0" encoding="UTF-8"?>\n{error}'
    return Response(xml, status_code=exc.status, media_type="application/xml")


def _origin(request: Request) -> str:
    """``scheme://host:port`` the request was sent to: where its result URLs point."""
    return f"{request.url.scheme}://{request.url.netloc}"


def _header_enabled(request: Request, name: str) -> bool:
    """Whether the DashScope switch header ``name`` says ``enable`` (in any case)."""
    return request.headers.get(name, "").lower() == "enable"


def _backend(request: Request) -> EmulatorBackend:
    return request.app.state.backend


def endpoint(target: Target, *, auth: bool = True) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """A route from ``handler(request, backend)``, aimed at by faults of ``target``: the request is logged, a
    ``slow`` fault waits, the bearer key is checked (``auth``: 401 ``InvalidApiKey``), an injected fault
    answers instead (or, for ``hold`` and ``drop`` after processing, after the handler ran), and an
    ``EmulatedError`` the handler raises is answered in DashScope's error envelope."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            backend = _backend(request)
            raw = await request.body()
            body: Any = None
            if raw and request.headers.get("content-type", "").startswith("application/json"):
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw[:200].decode(errors="replace")
            backend.record(request.method, request.url.path, request.url.query, request.headers, body, len(raw))

            slow = backend.take_fault(target, ("slow",))
            if slow:
                await anyio.sleep(slow.delay)
            if auth:
                token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                if not backend.authorized(token):
                    return _error(backend, 401, "InvalidApiKey", "Invalid API-key provided.")
                if not backend.workspace_allowed(request.headers.get("x-dashscope-workspace")):
                    return _error(backend, 403, "Workspace.AccessDenied", "Workspace access denied.")
            fault = backend.take_fault(target, ("error", "throttle", "drop", "moderation", "hold"))
            if fault and fault.kind != "hold" and not (fault.kind == "drop" and fault.after_processing):
                return _fault_response(backend, fault)
            try:
                response = await handler(request, backend)
            except EmulatedError as exc:
                return _error(backend, exc.status, exc.code, exc.message)
            if fault and fault.kind == "hold":  # the request took effect; its answer waits for a release
                await backend.hold()
                return DroppedResponse() if fault.after_processing else response
            return DroppedResponse() if fault else response

        return route

    return wrap


def _fault_response(backend: EmulatorBackend, fault: Fault) -> Response:
    """The answer an injected ``error``, ``throttle``, ``moderation`` or ``drop`` fault gives instead."""
    if fault.kind == "drop":
        return DroppedResponse()
    if fault.kind == "throttle":
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        return _error(
            backend, 429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.", **headers
        )
    if fault.kind == "moderation":
        return _error(backend, 400, "DataInspectionFailed", "Input data may contain inappropriate content.")
    return _error(backend, fault.status, fault.code, fault.message)


async def _json(request: Request) -> Any:
    """The request's body as JSON. Raises ``EmulatedError`` 400 ``InvalidParameter`` when it is not JSON."""
    try:
        return json.loads(await request.body())
    except ValueError:
        raise invalid("Required body invalid, please check the request body format.") from None


# --- generation -----------------------------------------------------------------------------------


@endpoint("submit")
async def create_messages_task(request: Request, backend: EmulatorBackend) -> Response:
    """The messages protocol's create endpoint (wan2.7, wan2.6): see ``_create``."""
    return await _create(request, backend, Protocol.MESSAGES)


@endpoint("submit")
async def create_prompt_task(request: Request, backend: EmulatorBackend) -> Response:
    """The prompt protocol's create endpoint (wan2.5's image2image): see ``_create``."""
    return await _create(request, backend, Protocol.PROMPT)


async def _create(request: Request, backend: EmulatorBackend, protocol: Protocol) -> Response:
    """A create request on the endpoint of ``protocol``: 403 ``AccessDenied`` without ``X-DashScope-Async:
    enable``, else the new task's id, PENDING."""
    if not _header_enabled(request, "x-dashscope-async"):
        raise EmulatedError(403, "AccessDenied", "current user api does not support synchronous calls")
    resolve = _header_enabled(request, "x-dashscope-ossresourceresolve")
    task_id = await backend.create_task(await _json(request), protocol, resolve_oss=resolve)
    return _ok(backend, {"output": {"task_id": task_id, "task_status": "PENDING"}})


@endpoint("sync")
async def generate(request: Request, backend: EmulatorBackend) -> Response:
    """The synchronous endpoint: 403 ``AccessDenied`` with ``X-DashScope-Async: enable``, else the finished
    result, as one SSE event when ``X-DashScope-SSE: enable`` was sent."""
    if _header_enabled(request, "x-dashscope-async"):
        raise EmulatedError(403, "AccessDenied", "current user api does not support asynchronous calls")
    sse = _header_enabled(request, "x-dashscope-sse")
    resolve = _header_enabled(request, "x-dashscope-ossresourceresolve")
    body = await backend.generate(await _json(request), _origin(request), stream=sse, resolve_oss=resolve)
    return _sse(backend, body) if sse else _ok(backend, body)


def _sse(backend: EmulatorBackend, body: dict[str, Any]) -> Response:
    """``body`` in DashScope's envelope as the one ``result`` event of a ``text/event-stream``."""
    request_id = backend.new_request_id()
    event = json.dumps({"request_id": request_id, **body}, ensure_ascii=False)

    async def stream() -> AsyncIterator[str]:
        yield f"id:1\nevent:result\n:HTTP_STATUS/200\ndata:{event}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"x-request-id": request_id})


# --- tasks ----------------------------------------------------------------------------------------


@endpoint("poll")
async def get_task(request: Request, backend: EmulatorBackend) -> Response:
    """``GET /tasks/{task_id}``: the task one step further along, in its result shape."""
    return _ok(backend, await backend.query(request.path_params["task_id"], _origin(request)))


@endpoint("cancel")
async def cancel_task(request: Request, backend: EmulatorBackend) -> Response:
    """``POST /tasks/{task_id}/cancel``: an empty envelope, or 400 ``UnsupportedOperation``."""
    backend.cancel(request.path_params["task_id"])
    return _ok(backend, {})


def _page_number(request: Request, name: str, default: int, most: int | None) -> int:
    """The whole-number paging parameter ``name`` (``default`` when absent). Raises ``EmulatedError`` 400
    ``InvalidParameter`` saying which and why when it is not a whole number from 1 to ``most``."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
    if value < 1 or (most is not None and value > most):
        limit = f"from 1 to {most}" if most is not None else "of at least 1"
        raise invalid(f"{name} must be a whole number {limit}, got {raw[:40]!r}.")
    return value


def _wall_time(request: Request, name: str) -> int | None:
    """The list filter ``name`` (``YYYYMMDDhhmmss``) as wall-clock seconds, None when absent. Raises
    ``EmulatedError`` 400 ``InvalidParameter`` for another format."""
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return calendar.timegm(time.strptime(value, "%Y%m%d%H%M%S"))
    except ValueError:
        raise invalid(f"{name} must be YYYYMMDDhhmmss, got {value!r}") from None


@endpoint("list")
async def list_tasks(request: Request, backend: EmulatorBackend) -> Response:
    """``GET /tasks``: the query parsed into a ``TaskFilter``; answered flat as the SDK's ``JobList`` reads it."""
    page_no = _page_number(request, "page_no", 1, None)
    page_size = _page_number(request, "page_size", 10, MAX_PAGE_SIZE)
    start, end = _wall_time(request, "start_time"), _wall_time(request, "end_time")
    query = request.query_params
    found = TaskFilter(start, end, query.get("model_name"), query.get("status"), page_no, page_size)
    return _ok(backend, backend.list_tasks(found))


# --- temporary uploads and result files -----------------------------------------------------------


@endpoint("policy")
async def get_policy(request: Request, backend: EmulatorBackend) -> Response:
    """``GET /uploads?action=getPolicy&model=…``: an upload policy for the model, or 400 ``InvalidParameter``."""
    if request.query_params.get("action") != "getPolicy":
        raise invalid("action must be getPolicy")
    data = backend.new_policy(request.query_params.get("model", ""), f"{_origin(request)}/oss")
    return _ok(backend, {"data": data})


@endpoint("upload", auth=False)
async def oss_upload(request: Request, backend: EmulatorBackend) -> Response:
    """The upload host's form POST: 200 once stored, else OSS's XML error (400 without a ``file`` field)."""
    async with request.form(max_part_size=backend.state.config.max_upload_bytes) as form:
        text_fields = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _oss_error(OssError(400, "InvalidArgument", "The file field is required."))
        data = await upload.read()
    try:
        backend.accept_upload(text_fields, data)
    except OssError as exc:
        return _oss_error(exc)
    return Response(status_code=200)


@endpoint("download", auth=False)
async def get_result(request: Request, backend: EmulatorBackend) -> Response:
    """A signed result URL: the file, a 302 when result downloads are redirected, or OSS's XML error."""
    query = request.query_params
    try:
        stored = backend.result_file(request.path_params["name"], query.get("Expires", ""), query.get("Signature"))
    except OssError as exc:
        return _oss_error(exc)
    if redirect := backend.result_redirect:
        return Response(status_code=302, headers={"location": redirect})
    return Response(stored.data, media_type=stored.content_type)


# --- control API ----------------------------------------------------------------------------------


async def control_faults(request: Request) -> Response:
    """Queue the fault the JSON body describes (unknown fields ignored); answers every queued fault."""
    raw = cast(dict[str, Any], await request.json())
    names = {f.name for f in fields(Fault)}
    queued = _backend(request).add_fault(Fault(**{k: v for k, v in raw.items() if k in names}))
    return WireJSON({"faults": [asdict(f) for f in queued]})


async def control_config(request: Request) -> Response:
    """Change the configuration fields the JSON body names; answers the config without its API keys."""
    config = _backend(request).configure(cast(dict[str, Any], await request.json()))
    shown = {k: v for k, v in asdict(config).items() if k != "api_keys"}
    return WireJSON(shown | {"workspaces": sorted(config.workspaces)})


async def control_expire(request: Request) -> Response:
    """Expire every result URL now; answers how many files there are."""
    return WireJSON({"expired": _backend(request).expire_results()})


async def control_requests(request: Request) -> Response:
    """Answers every logged request, oldest first."""
    return WireJSON([asdict(r) for r in _backend(request).requests])


async def control_release(request: Request) -> Response:
    """Let held answers go; answers how many were held."""
    return WireJSON({"released": _backend(request).release()})


async def control_reset(request: Request) -> Response:
    """Forget every task, file, upload, fault and logged request."""
    _backend(request).reset()
    return WireJSON({"reset": True})
