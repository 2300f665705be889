"""What the tools do, free of MCP: validate, submit, wait within a bound, download, remember.

``WanService`` turns arguments into an ``EditResult``. Expected failures are raised as the package's own
errors (InvalidRequest, ConfigurationError, DashScopeError); a task that ended badly is a result whose
``error`` says why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from .dashscope import DashScopeClient, TaskResult, TaskStatus
from .errors import ConfigurationError
from .instructions import Mode, build_instruction
from .models import ApiError, EditResult
from .results import DownloadError, ResultStore, TaskRecord
from .validation import EditParams, PreparedRequest, prepare_request

log = logging.getLogger("wan_image_mcp")
Progress = Callable[[float, str], Awaitable[None]]


async def _no_progress(fraction: float, message: str) -> None:
    del fraction, message


@dataclass(frozen=True)
class EditArgs:
    prompt: str
    images: Sequence[str]
    model: str
    params: EditParams


def check_hint(task_id: str) -> str:
    return f"Not finished yet. Call check_task with task_id={task_id!r} (wait_seconds up to 50) to get the images."


class WanService:
    def __init__(
        self,
        client: DashScopeClient | None,
        store: ResultStore,
        *,
        poll_interval: float = 1.0,
        poll_interval_max: float = 5.0,
        missing_key: ConfigurationError | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._poll = poll_interval
        self._poll_max = max(poll_interval, poll_interval_max)
        self._missing_key = missing_key
        self._records: dict[str, TaskRecord] = {}
        self._done: dict[str, EditResult] = {}
        self._locks: dict[str, anyio.Lock] = {}

    def _api(self) -> DashScopeClient:
        if self._client is None:
            raise self._missing_key or ConfigurationError("DASHSCOPE_API_KEY is not set")
        return self._client

    # --- tools --------------------------------------------------------------------------------------

    async def prepare(self, args: EditArgs) -> PreparedRequest:
        """Validate and conform in a worker thread (Pillow work must not block the event loop)."""
        return await anyio.to_thread.run_sync(
            lambda: prepare_request(args.model, args.prompt, args.images, args.params, cwd=Path.cwd())
        )

    async def submit(self, args: EditArgs, *, instruction: str | None = None) -> EditResult:
        request = await self.prepare(args)
        task = await self._api().submit(request)
        assert task.task_id is not None  # the client refuses a create response without one
        parameters = dict(request.parameters)
        if request.negative_prompt is not None:
            parameters["negative_prompt"] = request.negative_prompt
        self._records[task.task_id] = TaskRecord(
            model=request.model,
            prompt=request.prompt,
            parameters=parameters,
            adjustments=request.adjustments,
            instruction=instruction,
        )
        log.info("submitted %s task %s (%d paid images at most)", request.model, task.task_id, request.paid_images)
        return EditResult(
            status=task.status.value,
            task_id=task.task_id,
            request_id=task.request_id,
            model=request.model,
            adjustments=list(request.adjustments),
            instruction=instruction,
            requested_images=request.paid_images,
            next_step=check_hint(task.task_id),
        )

    async def edit(
        self, args: EditArgs, *, wait_seconds: float, progress: Progress = _no_progress, instruction: str | None = None
    ) -> EditResult:
        submitted = await self.submit(args, instruction=instruction)
        assert submitted.task_id is not None
        await progress(0.05, f"submitted task {submitted.task_id}")
        checked = await self.check(submitted.task_id, wait_seconds=wait_seconds, progress=progress, first_look=False)
        return checked.model_copy(
            update={
                "adjustments": submitted.adjustments,
                "requested_images": submitted.requested_images,
                "instruction": instruction,
                "request_id": checked.request_id or submitted.request_id,
            }
        )

    async def detect_segment(
        self,
        image: str,
        targets: Sequence[str],
        *,
        mode: Mode,
        labels: Sequence[str] | None,
        model: str,
        wait_seconds: float,
        progress: Progress = _no_progress,
    ) -> EditResult:
        instruction = build_instruction(targets, mode, labels)
        args = EditArgs(prompt=instruction, images=[image], model=model, params=EditParams())
        return await self.edit(args, wait_seconds=wait_seconds, progress=progress, instruction=instruction)

    async def check(
        self,
        task_id: str,
        *,
        wait_seconds: float = 0,
        progress: Progress = _no_progress,
        first_look: bool = True,
    ) -> EditResult:
        """Look at a task (waiting up to ``wait_seconds``); download its images once when it succeeded."""
        lock = self._locks.setdefault(task_id, anyio.Lock())
        async with lock:
            if task_id in self._done:
                return self._done[task_id]
            record = self._records.get(task_id)
            saved = await anyio.to_thread.run_sync(self._store.find, task_id)
            if saved:
                done = EditResult(
                    status="SUCCEEDED", task_id=task_id, model=record.model if record else None, images=saved
                )
                self._done[task_id] = done
                return done
            task = await self._wait(task_id, wait_seconds, progress, first_look=first_look)
            result = self._result(task_id, task, record)
            if task.status is not TaskStatus.SUCCEEDED:
                return result
            await progress(0.9, f"downloading {len(task.image_urls)} image(s)")
            try:
                images = await self._store.save(
                    task_id, task.image_urls, record, {"request_id": task.request_id, "usage": task.usage}
                )
            except (DownloadError, OSError) as exc:
                why = exc.args[0] if exc.args else repr(exc)
                if isinstance(exc, OSError):
                    why = f"cannot write to the output directory {self._store.root}: {exc.strerror or exc}"
                return result.model_copy(
                    update={
                        "error": ApiError(code="DownloadFailed", message=str(why), request_id=task.request_id),
                        "next_step": "The task succeeded and is paid for, but its images are not saved yet. Fix the "
                        "cause and call check_task again within 24 h of the task's end.",
                    }
                )
            await progress(1.0, f"saved {len(images)} image(s)")
            done = result.model_copy(update={"images": images, "next_step": None})
            self._done[task_id] = done
            return done

    async def cancel(self, task_id: str) -> str | None:
        return await self._api().cancel_task(task_id)

    # --- plumbing -----------------------------------------------------------------------------------

    async def _wait(self, task_id: str, wait_seconds: float, progress: Progress, *, first_look: bool) -> TaskResult:
        client = self._api()
        started = time.monotonic()
        deadline = started + wait_seconds
        interval = self._poll
        if not first_look:
            await anyio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        while True:
            task = await client.get_task(task_id)
            elapsed = time.monotonic() - started
            if task.status.terminal:
                return task
            remaining = deadline - time.monotonic()
            fraction = 0.1 + 0.75 * min(1.0, elapsed / wait_seconds) if wait_seconds else 0.1
            await progress(fraction, f"{task.status.value} after {elapsed:.0f} s")
            if remaining <= 0:
                return task
            await anyio.sleep(min(interval, remaining))
            interval = min(interval * 1.5, self._poll_max)

    def _result(self, task_id: str, task: TaskResult, record: TaskRecord | None) -> EditResult:
        result = EditResult(
            status=task.status.value,
            task_id=task_id,
            request_id=task.request_id,
            model=record.model if record else None,
            texts=list(task.texts),
            usage=dict(task.usage) if task.usage else None,
            actual_prompt=task.actual_prompt,
            adjustments=list(record.adjustments) if record else [],
            instruction=record.instruction if record else None,
            image_failures=[ApiError(code=f.code, message=f.message) for f in task.failures],
        )
        if task.status is TaskStatus.FAILED:
            error = ApiError(code=task.code or "Unknown", message=task.message or "", request_id=task.request_id)
            return result.model_copy(update={"error": error})
        if task.status is TaskStatus.UNKNOWN:
            message = "DashScope does not know this task: the id is wrong, older than 24 h, or from another account"
            return result.model_copy(
                update={"error": ApiError(code="UNKNOWN", message=message, request_id=task.request_id)}
            )
        if task.status is TaskStatus.CANCELED:
            return result
        if not task.status.terminal:
            return result.model_copy(update={"next_step": check_hint(task_id)})
        return result
