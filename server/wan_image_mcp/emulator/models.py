"""What the emulated DashScope does, apart from HTTP: the class the routes call (moto's backend).

``EmulatorBackend`` wraps an ``EmulatorState`` (what the service remembers) and holds every rule of the
service: tasks created from a request body, moved along by queries and lists, rendered once; the task list's
filtering and paging; cancelling; upload policies and the upload host's bookkeeping; signed result files;
the request log, faults and the control API's operations. Its methods take parsed values (a JSON body, a
query's typed fields) and return plain values: the handlers in ``responses`` put them in DashScope's envelope.
Refusals are raised as ``EmulatedError`` (a DashScope JSON error) or ``OssError`` (an object-store error).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, cast

import anyio

from ..core.specs import Protocol
from . import wire
from .checks import parse_job
from .exceptions import EmulatedError, OssError, invalid
from .state import EmulatorConfig, EmulatorState, Fault, FaultKind, LoggedRequest, StoredFile, Target, Upload
from .tasks import advance, load_inputs, new_task, render_locked, render_once

MAX_PAGE_SIZE = 100
"""The most tasks one list page holds (DashScope documents no maximum; the client asks for 100)."""

_NOT_PENDING = "Failed to cancel the task, please confirm if the task is in PENDING status."
_SIGNATURE = "The request signature we calculated does not match."


@dataclass(frozen=True)
class TaskFilter:
    """A ``GET /tasks`` query, parsed: submit-time bounds as wall-clock seconds in the service's zone (whole
    seconds, both ends included; None for no bound), a model name and a status (None for any), one page."""

    start: int | None = None
    end: int | None = None
    model: str | None = None
    status: str | None = None
    page_no: int = 1
    page_size: int = 10


def loggable(body: Any) -> Any:
    """``body`` (a decoded JSON value) with every long data URL shortened, so the request log stays small."""
    if isinstance(body, str):
        return body if not body.startswith("data:") or len(body) < 80 else f"{body[:40]}…({len(body)} chars)"
    if isinstance(body, list):
        return [loggable(v) for v in cast(list[Any], body)]
    if isinstance(body, dict):
        return {k: loggable(v) for k, v in cast(dict[str, Any], body).items()}
    return body


class EmulatorBackend:
    """The emulated service's behaviour over ``state``; every handler of ``responses`` calls one of these methods."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    # --- requests, keys and faults ------------------------------------------------------------------

    def new_request_id(self) -> str:
        """A fresh ``request_id`` for an answer."""
        return self.state.new_id()

    def record(self, method: str, path: str, query: str, headers: Mapping[str, str], body: Any, size: int) -> None:
        """Log a request as received, at the emulator's clock: ``headers`` without ``Authorization``, ``body``
        (decoded JSON, a text prefix or None) with data URLs shortened, ``size`` the bytes of its body."""
        kept = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        entry = LoggedRequest(method, path, query, kept, loggable(body), at=self.state.clock())
        entry.size = size
        self.state.log(entry)

    def authorized(self, token: str) -> bool:
        """Whether ``token`` (the bearer token, possibly empty) is one of the configured API keys."""
        return token in self.state.config.api_keys

    def workspace_allowed(self, workspace: str | None) -> bool:
        """Whether a request's ``X-DashScope-WorkSpace`` header (None when absent) names a workspace the keys
        may use: any, when the emulator is configured with none."""
        allowed = self.state.config.workspaces
        return not allowed or workspace is None or workspace in allowed

    def take_fault(self, target: Target, kinds: tuple[FaultKind, ...]) -> Fault | None:
        """The first queued fault of one of ``kinds`` aimed at ``target`` (or any), one of its count used up."""
        return self.state.take_fault(target, kinds)

    async def hold(self) -> None:
        """Wait until the held answers are released (``release``); cancelled if the caller goes away."""
        await self.state.hold()

    # --- generation ---------------------------------------------------------------------------------

    async def create_task(self, body: object, protocol: Protocol, *, resolve_oss: bool) -> str:
        """Create a task from a create request's JSON ``body`` on the endpoint serving ``protocol``; returns its
        id. With a latency, its images are rendered in the background while it "runs", as the real service
        has them ready when done. ``resolve_oss``: the request asked for ``oss://`` references to be resolved.

        Raises ``EmulatedError`` for a body or an input image DashScope refuses (see ``checks``, ``tasks``)."""
        state = self.state
        job = parse_job(body, protocol)
        task = new_task(state, job, await load_inputs(state, job, resolve_oss=resolve_oss))
        if state.config.latency > 0 and not task.failure:
            state.in_background(lambda: render_locked(state, task))
        return task.task_id

    async def generate(self, body: object, origin: str, *, stream: bool, resolve_oss: bool) -> dict[str, Any]:
        """A synchronous generation from the JSON ``body``; returns the answer's ``output`` and ``usage`` once
        the images are rendered (with a latency, when the task would be done), result URLs on ``origin``
        (``scheme://host:port``). No task is left behind. ``stream``: the request asked for SSE (the SDK's
        ``stream=True``), which an interleave request needs unless its ``parameters.stream`` is true.

        Raises ``EmulatedError``: a refused body or image; a queued ``fail_task`` fault as a 400 when its code
        is ``InvalidParameter``, else as a 500 with its code and message."""
        state = self.state
        job = parse_job(body, Protocol.MESSAGES)
        # The official SDK's stream=True sends the SSE header and no parameters.stream; the docs' curl sends both.
        if job.mode.name == "interleave" and not stream and job.parameters.get("stream") is not True:
            raise invalid("enable_interleave on the synchronous endpoint needs stream=true and X-DashScope-Sse: enable")
        task = new_task(state, job, await load_inputs(state, job, resolve_oss=resolve_oss))
        if task.failure:
            del state.tasks[task.task_id]
            code, message = task.failure
            raise invalid(message) if code == "InvalidParameter" else EmulatedError(500, code, message)
        left = task.created + state.duration(task) - state.clock() if state.config.latency else 0.0
        async with anyio.create_task_group() as group:  # with a latency, answer when the task would be done
            group.start_soon(render_once, state, task)
            await anyio.sleep(max(0.0, left))
        del state.tasks[task.task_id]  # sync calls leave no task behind
        urls = [state.signed_file_url(origin, name) for name in task.outputs]
        return {"output": {"choices": wire.choices(task, urls), "finished": True}, "usage": wire.usage(task)}

    # --- tasks --------------------------------------------------------------------------------------

    async def query(self, task_id: str, origin: str) -> dict[str, Any]:
        """A query of ``task_id``, which moves the task one step along; returns the answer's ``output`` (and
        ``usage`` once SUCCEEDED, its images rendered first, URLs on ``origin``). An unknown id, or one older
        than ``task_ttl``, is UNKNOWN. Raises nothing."""
        state = self.state
        task = state.tasks.get(task_id)
        if task is None or state.clock() - task.created > state.config.task_ttl:
            return {"output": {"task_id": task_id, "task_status": "UNKNOWN"}}
        advance(state, task)
        if task.status == "SUCCEEDED":
            await render_once(state, task)
        body: dict[str, Any] = {"output": wire.output(state, task, origin)}
        if task.status == "SUCCEEDED":
            body["usage"] = wire.usage(task)
        return body

    def cancel(self, task_id: str) -> None:
        """Cancel the PENDING task ``task_id``. Raises ``EmulatedError`` 400 ``UnsupportedOperation`` for an
        unknown task or one no longer PENDING."""
        task = self.state.tasks.get(task_id)
        if task is None or task.status != "PENDING":
            raise EmulatedError(400, "UnsupportedOperation", _NOT_PENDING)
        task.status, task.finished = "CANCELED", self.state.clock()

    def list_tasks(self, query: TaskFilter) -> dict[str, Any]:
        """``GET /tasks``: the tasks submitted within ``query``'s bounds for its model, each moved one step along
        as a query by id would (never rendered), then those of its status, newest first, one page of them;
        returns the flat body the SDK's ``JobList`` reads (``total``, ``page_no``, ``page_size``, ``tasks``)."""
        state = self.state
        offset = state.config.tz_offset_hours * 3600
        start = None if query.start is None else query.start - offset
        end = None if query.end is None else query.end - offset
        shown = [
            t
            for t in state.tasks.values()
            if (start is None or t.created >= start)
            and (end is None or t.created < end + 1)
            and (query.model is None or t.spec.name == query.model)
        ]
        for task in shown:  # a list observes every task it shows, like a query by id
            advance(state, task)
        status = query.status
        kept = (t for t in shown if status is None or t.status == status)
        tasks = sorted(kept, key=lambda t: t.created, reverse=True)
        page = tasks[(query.page_no - 1) * query.page_size : query.page_no * query.page_size]
        rows = [wire.list_row(state, t) for t in page]
        return {"total": len(tasks), "page_no": query.page_no, "page_size": query.page_size, "tasks": rows}

    # --- temporary uploads --------------------------------------------------------------------------

    def new_policy(self, model: str, upload_host: str) -> dict[str, Any]:
        """A signed upload policy for ``model``, its files to go to ``upload_host``; returns the answer's
        ``data``. Raises ``EmulatedError`` 400 ``InvalidParameter`` when ``model`` is empty."""
        if not model:
            raise invalid("model is required")
        data = self.state.new_policy(model)
        data["upload_host"] = upload_host
        return data

    def accept_upload(self, form: Mapping[str, str], data: bytes) -> None:
        """Keep ``data`` under the form's ``key`` for the policy's model, until ``upload_ttl``. ``form``: the
        upload's text fields (``policy``, ``Signature``, ``key``, ``x-oss-forbid-overwrite``).

        Raises ``OssError``: 403 for a bad signature, an expired policy or a key outside the policy's
        directory; 409 ``FileAlreadyExists`` for an existing key when overwriting is forbidden."""
        state = self.state
        policy = state.read_policy(form.get("policy", ""), form.get("Signature", ""))
        if policy is None:
            raise OssError(403, "SignatureDoesNotMatch", _SIGNATURE)
        if policy["expiration"] < state.clock():
            raise OssError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        key = form.get("key", "")
        if not key.startswith(policy["dir"] + "/"):
            raise OssError(403, "AccessDenied", "Invalid according to Policy: Policy Condition failed.")
        if key in state.uploads and form.get("x-oss-forbid-overwrite") == "true":
            raise OssError(409, "FileAlreadyExists", "The object you specified already exists.")
        state.uploads[key] = Upload(data=data, model=policy["model"], expires=state.clock() + state.config.upload_ttl)

    # --- result files -------------------------------------------------------------------------------

    def result_file(self, name: str, expires: str, signature: str | None) -> StoredFile:
        """The result file ``name`` of a signed URL (its ``Expires`` and ``Signature``). Raises ``OssError``:
        404 ``NoSuchKey`` for an unknown file, 403 for a bad signature or an expired URL."""
        state = self.state
        stored = state.files.get(name)
        if stored is None:
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        if state.sign(f"{name}:{expires}") != signature:
            raise OssError(403, "SignatureDoesNotMatch", _SIGNATURE)
        if stored.expires < state.clock():
            raise OssError(403, "AccessDenied", "Request has expired.")
        return stored

    @property
    def result_redirect(self) -> str | None:
        """Where result downloads are redirected instead of answered (a hostile redirect), or None."""
        return self.state.config.result_redirect

    # --- control API --------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> list[Fault]:
        """Queue ``fault``; returns every fault queued now."""
        self.state.add_fault(fault)
        return self.state.faults

    def configure(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """Set the configuration fields named in ``changes`` (other names are ignored); returns the config."""
        config = self.state.config
        for name in {f.name for f in fields(EmulatorConfig)} & changes.keys():
            value = changes[name]
            setattr(config, name, frozenset(value) if name in ("api_keys", "workspaces") else value)  # JSON lists
        return config

    def expire_results(self) -> int:
        """Make every result URL expire now; returns how many files there are."""
        return self.state.expire_results()

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request received since the last reset, oldest first."""
        return self.state.requests

    def release(self) -> int:
        """Let every held answer go; returns how many were held."""
        return self.state.release()

    def reset(self) -> None:
        """Forget every task, file, upload, fault and logged request, and release held answers."""
        state = self.state
        state.tasks.clear()
        state.files.clear()
        state.uploads.clear()
        state.faults.clear()
        state.requests.clear()
        state.release()
