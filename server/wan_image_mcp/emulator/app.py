"""A faithful local DashScope for the four Wan image models, as a Starlette app.

Paths, headers, auth, validation errors, task life cycle, both result shapes, expiring result URLs and the
temporary-upload flow follow docs/wan-api.md closely enough that the official ``dashscope`` SDK works
against it unchanged. ``/_emulator/*`` is the control API for fault injection and inspection.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, fields
from typing import Any, cast
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpx2
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..specs import Protocol, output_size
from . import render
from .checks import EmulatedError, InputImage, Job, check_image, invalid, parse_job
from .state import EmulatorConfig, EmulatorState, Fault, LoggedRequest, Target, Task, Upload

API = "/api/v1"
Handler = Callable[[Request, EmulatorState], Awaitable[Response]]


class DroppedResponse(Response):
    """Starts a response, sends part of it, then cuts the connection."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"request_id": "', "more_body": True})
        raise httpx2.RemoteProtocolError("emulated fault: connection dropped mid-response")


def _error(state: EmulatorState, status: int, code: str, message: str, **headers: str) -> JSONResponse:
    request_id = state.new_id()
    body = {"request_id": request_id, "code": code, "message": message}
    return JSONResponse(body, status_code=status, headers={"x-request-id": request_id, **headers})


def _ok(state: EmulatorState, body: dict[str, Any]) -> JSONResponse:
    request_id = state.new_id()
    return JSONResponse({"request_id": request_id, **body}, headers={"x-request-id": request_id})


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _loggable(body: Any) -> Any:
    """The body with data URLs shortened, so the log stays small."""
    if isinstance(body, str):
        return body if not body.startswith("data:") or len(body) < 80 else f"{body[:40]}…({len(body)} chars)"
    if isinstance(body, list):
        return [_loggable(v) for v in cast(list[Any], body)]
    if isinstance(body, dict):
        return {k: _loggable(v) for k, v in cast(dict[str, Any], body).items()}
    return body


def endpoint(target: Target, *, auth: bool = True) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wraps a handler with request logging, auth, fault injection and DashScope's error envelope."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            state: EmulatorState = request.app.state.emulator
            raw = await request.body()
            body: Any = None
            if raw and request.headers.get("content-type", "").startswith("application/json"):
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw[:200].decode(errors="replace")
            headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
            entry = LoggedRequest(request.method, request.url.path, request.url.query, headers, _loggable(body))
            entry.size = len(raw)
            state.log(entry)

            slow = state.take_fault(target, ("slow",))
            if slow:
                await anyio.sleep(slow.delay)
            if auth:
                token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                if token not in state.config.api_keys:
                    return _error(state, 401, "InvalidApiKey", "Invalid API-key provided.")
            fault = state.take_fault(target, ("error", "throttle", "drop", "moderation", "hold"))
            if fault and fault.kind != "hold" and not (fault.kind == "drop" and fault.after_processing):
                return _fault_response(state, fault)
            try:
                response = await handler(request, state)
            except EmulatedError as exc:
                return _error(state, exc.status, exc.code, exc.message)
            if fault and fault.kind == "hold":  # the request took effect; its answer waits for a release
                await state.hold()
                return DroppedResponse() if fault.after_processing else response
            return DroppedResponse() if fault else response

        return route

    return wrap


def _fault_response(state: EmulatorState, fault: Fault) -> Response:
    if fault.kind == "drop":
        return DroppedResponse()
    if fault.kind == "throttle":
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        return _error(
            state, 429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.", **headers
        )
    if fault.kind == "moderation":
        return _error(state, 400, "DataInspectionFailed", "Input data may contain inappropriate content.")
    return _error(state, fault.status, fault.code, fault.message)


# --- generation -----------------------------------------------------------------------------------


async def _load_inputs(request: Request, state: EmulatorState, job: Job) -> list[InputImage | None]:
    """Decode every input image; None stands for a remote image the emulator could not (and need not) fetch."""
    resolve = request.headers.get("x-dashscope-ossresourceresolve", "").lower() == "enable"
    loaded: list[InputImage | None] = []
    for index, ref in enumerate(job.image_refs, start=1):
        if ref.startswith("data:"):
            data = _decode_data_url(ref, index)
        elif ref.startswith("oss://"):
            if not resolve:
                raise invalid(
                    f"The image {index} is an oss:// URL; send the header X-DashScope-OssResourceResolve: enable."
                )
            upload = state.uploads.get(ref.removeprefix("oss://"))
            if upload is None or upload.expires < state.clock():
                raise invalid(f"The image {index} oss:// file does not exist or has expired.")
            if upload.model != job.spec.name:
                raise invalid(f"The image {index} oss:// file was uploaded for {upload.model}, not {job.spec.name}.")
            data = upload.data
        elif ref.startswith(("http://", "https://")):
            data = await _fetch(state, ref, index)
            if data is None:
                loaded.append(None)
                continue
        else:
            raise invalid(f"The image {index} URL is not valid: use http(s)://, data: or oss:// URLs.")
        loaded.append(await anyio.to_thread.run_sync(check_image, job.spec, data, index))
    return loaded


def _decode_data_url(ref: str, index: int) -> bytes:
    header, _, payload = ref.partition(",")
    try:
        if ";base64" in header:
            return base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error):
        pass
    raise invalid(f"The image {index} is not a valid base64 data URL.")


async def _fetch(state: EmulatorState, url: str, index: int) -> bytes | None:
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1") and not state.config.fetch_remote:
        return None
    try:
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.get(url, headers={"User-Agent": "DashScopeUserBot/1.0 (emulator)"})
    except httpx2.HTTPError:
        raise EmulatedError(400, "InvalidParameter.DataInspection", _DOWNLOAD_FAILED) from None
    if response.status_code != 200:
        raise EmulatedError(400, "InvalidParameter.DataInspection", _DOWNLOAD_FAILED)
    return response.content


_DOWNLOAD_FAILED = "Unable to download the media resource during the data inspection process."


def _new_task(state: EmulatorState, job: Job, inputs: list[InputImage | None]) -> Task:
    last: tuple[int, int] | None = None
    if inputs:
        final = inputs[-1]
        last = (final.width, final.height) if final else render.placeholder(job.image_refs[-1]).size
    size = output_size(job.mode, job.parameters.get("size"), last)
    n = job.parameters.get("n", job.mode.n_api_default)
    default_max = job.spec.max_images.hi if job.spec.max_images else 1  # the API makes up to 5 by default
    count = job.parameters.get("max_images", default_max) if job.mode.name == "interleave" else n
    task = Task(
        task_id=state.new_id(),
        spec=job.spec,
        mode=job.mode,
        prompt=job.prompt,
        images=[i.data if i else None for i in inputs],
        image_refs=job.image_refs,
        parameters=job.parameters,
        size=size,
        count=int(count),
        created=state.clock(),
    )
    if fail := state.take_fault("submit", ("fail_task",)):
        task.failure = (fail.code, fail.message)
    if partial := state.take_fault("submit", ("partial_failure",)):
        task.failed_images = min(partial.failed_images, task.count - 1) if job.spec.protocol is Protocol.PROMPT else 0
    state.tasks[task.task_id] = task
    return task


def _render_outputs(state: EmulatorState, task: Task) -> None:
    inputs: list[Image.Image] = []
    for data, ref in zip(task.images, task.image_refs, strict=True):
        if data is None:
            inputs.append(render.placeholder(ref))
        else:
            with Image.open(io.BytesIO(data)) as opened:
                opened.draft("RGB", (1024, 1024))
                inputs.append(opened.convert("RGB"))
    produced = task.count - task.failed_images
    seed = task.parameters.get("seed")
    for index in range(1, produced + 1):
        png = render.render(
            size=task.size,
            model=task.spec.name,
            prompt=task.prompt,
            inputs=inputs,
            boxes=task.parameters.get("bbox_list"),
            index=index,
            total=produced,
            seed=seed + index - 1 if isinstance(seed, int) else None,
            watermark=bool(task.parameters.get("watermark")),
        )
        task.outputs.append(state.store_file(png))
        if task.mode.name == "interleave":
            task.texts.append(f"Step {index}: {task.prompt[:80]} (emulated text)")


def _usage(task: Task) -> dict[str, Any]:
    produced = len(task.outputs)
    if task.spec.protocol is Protocol.PROMPT:
        return {"image_count": produced}
    width, height = task.size
    input_tokens = 10 + len(task.prompt) + 4000 * len(task.images)
    return {
        "image_count": produced,
        "size": f"{width}*{height}",
        "input_tokens": input_tokens,
        "output_tokens": 2,
        "total_tokens": input_tokens + 2,
    }


def _output(state: EmulatorState, task: Task, origin: str) -> dict[str, Any]:
    """The ``output`` object of a task in its current state, in its model's result shape."""
    out: dict[str, Any] = {"task_id": task.task_id, "task_status": task.status}
    out["submit_time"] = _service_time(state, task.created)
    if task.status in ("RUNNING", "SUCCEEDED", "FAILED"):
        out["scheduled_time"] = _service_time(state, task.created + 0.03)
    if task.finished is not None:
        out["end_time"] = _service_time(state, task.finished)
    if task.status == "FAILED" and task.failure:
        out["code"], out["message"] = task.failure
    if task.status != "SUCCEEDED":
        return out
    urls = [state.signed_file_url(state.config.result_origin or origin, name) for name in task.outputs]
    if task.spec.protocol is Protocol.PROMPT:
        results: list[dict[str, Any]] = []
        extend = task.parameters.get("prompt_extend", True) is not False
        for url in urls:
            item = {"url": url, "orig_prompt": task.prompt}
            if extend:
                item["actual_prompt"] = f"{task.prompt}(emulated rewrite: clearer lighting, natural placement)"
            results.append(item)
        results.extend(
            {"code": "InternalError.Algo", "message": "Image generation failed."} for _ in range(task.failed_images)
        )
        out["results"] = results
        out["task_metrics"] = {"TOTAL": task.count, "SUCCEEDED": len(urls), "FAILED": task.failed_images}
    else:
        out["finished"] = True
        out["choices"] = _choices(task, urls)
    return out


def _choices(task: Task, urls: list[str]) -> list[dict[str, Any]]:
    def choice(content: list[dict[str, str]]) -> dict[str, Any]:
        return {"finish_reason": "stop", "message": {"role": "assistant", "content": content}}

    if task.mode.name == "interleave":
        content: list[dict[str, str]] = []
        for text, url in zip(task.texts, urls, strict=True):
            content += [{"type": "text", "text": text}, {"type": "image", "image": url}]
        return [choice(content)]
    if task.mode.name == "image-set":  # one choice holding the whole set
        return [choice([{"type": "image", "image": url} for url in urls])]
    return [choice([{"type": "image", "image": url}]) for url in urls]  # one choice per image


def _service_time(state: EmulatorState, ts: float) -> str:
    """DashScope's times: in its zone (UTC+8 unless configured), ``YYYY-MM-DD HH:mm:ss.SSS``."""
    local = ts + state.config.tz_offset_hours * 3600
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(local)) + f".{int(local * 1000) % 1000:03d}"


def _filter_time(state: EmulatorState, name: str, value: str | None) -> float | None:
    """A list filter (``YYYYMMDDhhmmss`` in the service's zone) as a UTC timestamp."""
    if value is None:
        return None
    try:
        local = calendar.timegm(time.strptime(value, "%Y%m%d%H%M%S"))
    except ValueError:
        raise invalid(f"{name} must be YYYYMMDDhhmmss, got {value!r}") from None
    return local - state.config.tz_offset_hours * 3600


async def _advance(state: EmulatorState, task: Task) -> None:
    """Move a task along: one step per poll, or by elapsed time when the emulator has a latency. A task that
    ends SUCCEEDED gets its images when a query by id first asks for them (a list does not render)."""
    if task.status not in ("PENDING", "RUNNING"):
        return
    config = state.config
    task.polls += 1
    if config.latency > 0:
        elapsed, duration = state.clock() - task.created, state.duration(task)
        done, running = elapsed >= duration, elapsed >= duration / 5
    else:
        done, running = task.polls >= config.polls_to_finish, task.polls >= 1
    if not done:
        task.status = "RUNNING" if running else "PENDING"
        return
    task.status = "FAILED" if task.failure else "SUCCEEDED"
    task.finished = state.clock()


def _render_locked(state: EmulatorState, task: Task) -> None:
    with task.render_lock:
        if not task.rendered:
            started = time.perf_counter()
            _render_outputs(state, task)
            state.renders.append(time.perf_counter() - started)
            task.rendered = True


async def _render_once(state: EmulatorState, task: Task) -> None:
    """A succeeded task's images, rendered once however many queries (or the pre-render) ask at the same time."""
    await anyio.to_thread.run_sync(_render_locked, state, task)


@endpoint("submit")
async def create_messages_task(request: Request, state: EmulatorState) -> Response:
    return await _create(request, state, Protocol.MESSAGES)


@endpoint("submit")
async def create_prompt_task(request: Request, state: EmulatorState) -> Response:
    return await _create(request, state, Protocol.PROMPT)


async def _create(request: Request, state: EmulatorState, protocol: Protocol) -> Response:
    if request.headers.get("x-dashscope-async", "").lower() != "enable":
        raise EmulatedError(403, "AccessDenied", "current user api does not support synchronous calls")
    job = parse_job(await _json(request), protocol)
    inputs = await _load_inputs(request, state, job)
    task = _new_task(state, job, inputs)
    if state.config.latency > 0 and not task.failure:  # like the real service, have the images ready when done
        state.in_background(lambda: _render_locked(state, task))
    return _ok(state, {"output": {"task_id": task.task_id, "task_status": "PENDING"}})


@endpoint("sync")
async def generate(request: Request, state: EmulatorState) -> Response:
    if request.headers.get("x-dashscope-async", "").lower() == "enable":
        raise EmulatedError(403, "AccessDenied", "current user api does not support asynchronous calls")
    job = parse_job(await _json(request), Protocol.MESSAGES)
    sse = request.headers.get("x-dashscope-sse", "").lower() == "enable"
    # The official SDK's stream=True sends the SSE header and no parameters.stream; the docs' curl sends both.
    if job.mode.name == "interleave" and not sse and job.parameters.get("stream") is not True:
        raise invalid("enable_interleave on the synchronous endpoint needs stream=true and X-DashScope-Sse: enable")
    task = _new_task(state, job, await _load_inputs(request, state, job))
    if task.failure:
        del state.tasks[task.task_id]
        raise invalid(task.failure[1]) if task.failure[0] == "InvalidParameter" else EmulatedError(500, *task.failure)
    async with anyio.create_task_group() as group:  # with a latency, answer when the task would be done
        group.start_soon(_render_once, state, task)
        await anyio.sleep(max(0.0, task.created + state.duration(task) - state.clock()) if state.config.latency else 0)
    del state.tasks[task.task_id]  # sync calls leave no task behind
    output = {"choices": _choices(task, [state.signed_file_url(_origin(request), n) for n in task.outputs])}
    body = {"output": {**output, "finished": True}, "usage": _usage(task)}
    if sse:
        return _sse(state, body)
    return _ok(state, body)


def _sse(state: EmulatorState, body: dict[str, Any]) -> Response:
    request_id = state.new_id()
    event = json.dumps({"request_id": request_id, **body}, ensure_ascii=False)

    async def stream() -> AsyncIterator[str]:
        yield f"id:1\nevent:result\n:HTTP_STATUS/200\ndata:{event}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"x-request-id": request_id})


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise invalid("Required body invalid, please check the request body format.") from None


# --- tasks ----------------------------------------------------------------------------------------


@endpoint("poll")
async def get_task(request: Request, state: EmulatorState) -> Response:
    task_id = request.path_params["task_id"]
    task = state.tasks.get(task_id)
    if task is None or state.clock() - task.created > state.config.task_ttl:
        return _ok(state, {"output": {"task_id": task_id, "task_status": "UNKNOWN"}})
    await _advance(state, task)
    if task.status == "SUCCEEDED":
        await _render_once(state, task)
    body: dict[str, Any] = {"output": _output(state, task, _origin(request))}
    if task.status == "SUCCEEDED":
        body["usage"] = _usage(task)
    return _ok(state, body)


@endpoint("cancel")
async def cancel_task(request: Request, state: EmulatorState) -> Response:
    task = state.tasks.get(request.path_params["task_id"])
    if task is None or task.status != "PENDING":
        raise EmulatedError(
            400, "UnsupportedOperation", "Failed to cancel the task, please confirm if the task is in PENDING status."
        )
    task.status, task.finished = "CANCELED", state.clock()
    return _ok(state, {})


MAX_PAGE_SIZE = 100
"""The most tasks one list page holds (DashScope documents no maximum; the client asks for 100)."""


def _page_number(request: Request, name: str, default: int, most: int | None) -> int:
    """A whole-number paging parameter, or DashScope's 400 InvalidParameter saying which and why."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
    if value < 1 or (most is not None and value > most):
        limit = f"from 1 to {most}" if most is not None else "of at least 1"
        raise invalid(f"{name} must be a whole number {limit}, got {raw[:40]!r}.")
    return value


@endpoint("list")
async def list_tasks(request: Request, state: EmulatorState) -> Response:
    """``GET /tasks``: newest first, filtered by submit time (whole seconds, both ends included, in the service's
    zone), model and status, in pages; answered flat as the SDK's ``JobList`` reads it."""
    query = request.query_params
    page_no = _page_number(request, "page_no", 1, None)
    page_size = _page_number(request, "page_size", 10, MAX_PAGE_SIZE)
    start = _filter_time(state, "start_time", query.get("start_time"))
    end = _filter_time(state, "end_time", query.get("end_time"))
    model, status = query.get("model_name"), query.get("status")
    shown = [
        t
        for t in state.tasks.values()
        if (start is None or t.created >= start)
        and (end is None or t.created < end + 1)
        and (model is None or t.spec.name == model)
    ]
    for task in shown:  # a list observes every task it shows, like a query by id
        await _advance(state, task)
    tasks = sorted((t for t in shown if status is None or t.status == status), key=lambda t: t.created, reverse=True)
    page = tasks[(page_no - 1) * page_size : page_no * page_size]
    items = [
        {
            "task_id": t.task_id,
            "task_status": t.status,
            "model_name": t.spec.name,
            "submit_time": _service_time(state, t.created),
        }
        for t in page
    ]
    return _ok(state, {"total": len(tasks), "page_no": page_no, "page_size": page_size, "tasks": items})


# --- temporary uploads ----------------------------------------------------------------------------


@endpoint("policy")
async def get_policy(request: Request, state: EmulatorState) -> Response:
    if request.query_params.get("action") != "getPolicy":
        raise invalid("action must be getPolicy")
    model = request.query_params.get("model", "")
    if not model:
        raise invalid("model is required")
    data = state.new_policy(model)
    data["upload_host"] = f"{_origin(request)}/oss"
    return _ok(state, {"data": data})


def _oss_error(status: int, code: str, message: str) -> Response:
    xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(xml, status_code=status, media_type="application/xml")


@endpoint("upload", auth=False)
async def oss_upload(request: Request, state: EmulatorState) -> Response:
    async with request.form(max_part_size=state.config.max_upload_bytes) as form:
        fields_ = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _oss_error(400, "InvalidArgument", "The file field is required.")
        policy = state.read_policy(fields_.get("policy", ""), fields_.get("Signature", ""))
        if policy is None:
            return _oss_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
        if policy["expiration"] < state.clock():
            return _oss_error(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        key = fields_.get("key", "")
        if not key.startswith(policy["dir"] + "/"):
            return _oss_error(403, "AccessDenied", "Invalid according to Policy: Policy Condition failed.")
        if key in state.uploads and fields_.get("x-oss-forbid-overwrite") == "true":
            return _oss_error(409, "FileAlreadyExists", "The object you specified already exists.")
        data = await upload.read()
    state.uploads[key] = Upload(data=data, model=policy["model"], expires=state.clock() + state.config.upload_ttl)
    return Response(status_code=200)


# --- result files ---------------------------------------------------------------------------------


@endpoint("download", auth=False)
async def get_result(request: Request, state: EmulatorState) -> Response:
    name = request.path_params["name"]
    stored = state.files.get(name)
    expires = request.query_params.get("Expires", "")
    if stored is None:
        return _oss_error(404, "NoSuchKey", "The specified key does not exist.")
    if state.sign(f"{name}:{expires}") != request.query_params.get("Signature"):
        return _oss_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
    if stored.expires < state.clock():
        return _oss_error(403, "AccessDenied", "Request has expired.")
    if state.config.result_redirect:
        return Response(status_code=302, headers={"location": state.config.result_redirect})
    return Response(stored.data, media_type=stored.content_type)


# --- control API ----------------------------------------------------------------------------------


async def control_faults(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    raw = cast(dict[str, Any], await request.json())
    names = {f.name for f in fields(Fault)}
    state.add_fault(Fault(**{k: v for k, v in raw.items() if k in names}))
    return JSONResponse({"faults": [asdict(f) for f in state.faults]})


async def control_config(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    raw = cast(dict[str, Any], await request.json())
    for name in {f.name for f in fields(EmulatorConfig)} & raw.keys():
        setattr(state.config, name, raw[name])
    return JSONResponse({k: v for k, v in asdict(state.config).items() if k != "api_keys"})


async def control_expire(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    return JSONResponse({"expired": state.expire_results()})


async def control_requests(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    return JSONResponse([asdict(r) for r in state.requests])


async def control_release(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    return JSONResponse({"released": state.release()})


async def control_reset(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    state.tasks.clear()
    state.files.clear()
    state.uploads.clear()
    state.faults.clear()
    state.requests.clear()
    state.release()
    return JSONResponse({"reset": True})


def create_app(state: EmulatorState | None = None) -> Starlette:
    routes = [
        Route(f"{API}/services/aigc/multimodal-generation/generation", generate, methods=["POST"]),
        Route(f"{API}/services/aigc/image-generation/generation", create_messages_task, methods=["POST"]),
        Route(f"{API}/services/aigc/image2image/image-synthesis", create_prompt_task, methods=["POST"]),
        Route(f"{API}/tasks", list_tasks, methods=["GET"]),
        Route(f"{API}/tasks/{{task_id}}", get_task, methods=["GET"]),
        Route(f"{API}/tasks/{{task_id}}/cancel", cancel_task, methods=["POST"]),
        Route(f"{API}/uploads", get_policy, methods=["GET"]),
        Route("/oss", oss_upload, methods=["POST"]),
        Route("/results/{name}", get_result, methods=["GET"]),
        Route("/_emulator/faults", control_faults, methods=["POST"]),
        Route("/_emulator/config", control_config, methods=["POST"]),
        Route("/_emulator/expire-results", control_expire, methods=["POST"]),
        Route("/_emulator/requests", control_requests, methods=["GET"]),
        Route("/_emulator/release", control_release, methods=["POST"]),
        Route("/_emulator/reset", control_reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = state or EmulatorState()
    return app
