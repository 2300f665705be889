"""Checking a task: one look or a bounded wait, its answer journaled, its images downloaded once.

``TaskCheck.check`` is what ``check_task``, the end of ``edit_image`` and the harvester all call, so a task's
images are saved by whoever asks first and found again (in the journal, or on disk) by whoever asks next. Calls
for one task are serialised by a per-task lock, kept only while a call holds or waits for it. A task that could
not be queried comes back with its last known status and a hint to call ``check_task`` again, never as a bare API
error.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread

from ...dashscope import DashScopeClient, TaskResult, TaskStatus
from ...dashscope.errors import DownloadError
from ...dashscope.rate import on_behalf_of, query_owner
from ..clock import Clock
from ..errors import ImagesNotSaved
from ..journal import AsyncJournal, Status, TaskRow, Tenant
from ..requests.validation import check_task_id
from ..results.document import markdown, with_parts
from ..results.outcomes import (
    ApiError,
    EditResult,
    ImageFile,
    MissingImage,
    from_row,
    from_task,
    not_saved_hint,
    origin,
    output_size,
    unqueried_hint,
)
from ..results.store import LocalFolder, ResultStore, TaskRecord
from .polling import PollFailed, Polling, Progress

log = logging.getLogger("wan_image_mcp")


async def no_progress(fraction: float, message: str) -> None:
    """A ``Progress`` that reports nowhere (a call without an MCP progress token, the harvester)."""
    del fraction, message


@dataclass
class _Held:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0
    """Calls holding or waiting for ``lock``."""


class TaskLocks:
    """One lock per task id, there only while a call holds or waits for it: a server checks thousands of tasks
    over its life and keeps no lock for any it is not checking now."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}

    def __len__(self) -> int:
        """Task ids with a lock now."""
        return len(self._held)

    @asynccontextmanager
    async def holding(self, task_id: str) -> AsyncGenerator[None]:
        """Hold ``task_id``'s lock for the block, once the calls before this one are done with it; its lock is
        gone when the last call holding or waiting for it leaves, however it leaves (a cancelled wait too)."""
        held = self._held.setdefault(task_id, _Held())
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:
            held.users -= 1
            if held.users == 0:
                del self._held[task_id]


class TaskCheck:
    """Looks at tasks for the service: queries DashScope through ``api()``, records what it saw in the journal and
    saves a succeeded task's images into the store."""

    def __init__(
        self,
        api: Callable[[], DashScopeClient],
        store: ResultStore,
        journal: AsyncJournal,
        polling: Polling,
        clock: Clock,
    ) -> None:
        self._api = api
        self._store = store
        self._journal = journal
        self._polling = polling
        self._clock = clock
        self.locks = TaskLocks()
        """The per-task locks that serialise calls for one task."""

    async def check(
        self, task_id: str, *, wait_seconds: float = 0, progress: Progress = no_progress, tenant: Tenant | None = None
    ) -> EditResult:
        """The task's state after one look, or after waiting up to ``wait_seconds`` for it to end (the service's
        ``check``, which documents what is returned and raised); each image with its ``download_url`` where the
        store gives one (signed now: the journal never keeps one, as they expire). Given ``tenant``, a task that is
        not that tenant's is UNKNOWN, as DashScope answers for an id it does not know, and nothing is sent for it."""
        # its queries wait in their tenant's turn (as TaskRow.owner), not behind another tenant's; the harvester
        # says whose a task is before it asks
        owner = (tenant.issuer, tenant.subject) if tenant is not None else query_owner()
        with on_behalf_of(owner):
            result = await self._check(task_id, wait_seconds, progress, tenant)
        if not result.images:
            return result
        return result.model_copy(update={"images": self._store.linked(result.images)})

    async def _check(self, task_id: str, wait_seconds: float, progress: Progress, tenant: Tenant | None) -> EditResult:
        check_task_id(task_id)
        if tenant is not None and await self._journal.get(task_id, tenant=tenant) is None:
            return from_task(task_id, TaskResult(status=TaskStatus.UNKNOWN), None)
        async with self.locks.holding(task_id):
            row = await self._journal.get(task_id)
            if (
                row is not None
                and row.saved_at is not None
                and await anyio.to_thread.run_sync(self._store.kept, row.images)
            ):
                return with_parts(from_row(row), row.texts, row.text_places)
            # Images can only be on disk already if the journal does not know the task (saved by an earlier run
            # whose row is gone, or under another journal) or if it had seen the result URLs: then look, which
            # reads the whole output folder. A task this journal has never seen succeed skips that.
            earlier = row is None or bool(row.result_urls)
            saved = await anyio.to_thread.run_sync(self._store.find, task_id) if earlier else None
            if saved:
                await self._journal.observed(task_id, status=Status.SUCCEEDED)
                await self._journal.saved(task_id, _recorded(saved))
                return EditResult(
                    status=Status.SUCCEEDED,
                    task_id=task_id,
                    model=row.model if row else None,
                    images=saved,
                    output_size=output_size(row, row.usage if row else None),
                )
            if row is not None and row.status is Status.EXPIRED:
                return from_row(row)
            try:
                client = self._api()
                task = await self._polling.wait(task_id, lambda: client.get_task(task_id), wait_seconds, progress)
            except PollFailed as failed:
                return await self._unqueried(task_id, row, failed)
            if row is not None or task.status is not TaskStatus.UNKNOWN:  # an id DashScope does not know either
                row = await self._record(task_id, task, row)  # is no task of ours: nothing to remember
            result = from_task(task_id, task, row)
            if task.status is not TaskStatus.SUCCEEDED:
                return result
            await progress(0.9, f"downloading {len(task.image_urls)} image(s)")
            return await self._save(task_id, task, row, result, progress, resume=earlier)

    async def _record(self, task_id: str, task: TaskResult, row: TaskRow | None) -> TaskRow | None:
        """Journal what a query of the task answered (and when to query it next); its row as it is now."""
        created = row.created_at if row else self._clock.time()
        failed = task.status in (TaskStatus.FAILED, TaskStatus.UNKNOWN)
        await self._journal.observed(
            task_id,
            status=Status.of(task.status),
            request_id=task.request_id,
            result_urls=task.image_urls,
            usage=dict(task.usage) if task.usage else None,
            actual_prompt=task.actual_prompt,
            texts=task.texts,
            text_places=task.text_places,
            submit_time=task.submit_time,
            error_code=(task.code or task.status.value) if failed else None,
            error_message=task.message if failed else None,
            next_poll_at=self._polling.next_poll(created) if not task.status.terminal else None,
        )
        return await self._journal.get(task_id)

    async def _save(
        self,
        task_id: str,
        task: TaskResult,
        row: TaskRow | None,
        result: EditResult,
        progress: Progress,
        *,
        resume: bool,
    ) -> EditResult:
        """Download a succeeded task's images: ``result`` with them, or with a DownloadFailed error and a hint (the
        download is then scheduled again, unless its URLs expired)."""
        record = TaskRecord.of(row)
        try:
            images = await self._store.save(
                task_id, task.image_urls, record, {"request_id": task.request_id, "usage": task.usage}, resume=resume
            )
        except (ImagesNotSaved, OSError) as exc:
            failures = (
                exc.failures
                if isinstance(exc, ImagesNotSaved)
                else dict.fromkeys(range(1, len(task.image_urls) + 1), exc)
            )
            kept = list(exc.saved) if isinstance(exc, ImagesNotSaved) else []
            missing = [MissingImage(index=index, reason=self._why(cause)) for index, cause in failures.items()]
            expired = any(isinstance(cause, DownloadError) and cause.expired for cause in failures.values())
            why = "; ".join(f"image {image.index}: {image.reason}" for image in missing)
            attempts = row.download_attempts if row else 0
            retry_at = None if expired else self._polling.retry_download(attempts)
            await self._journal.download_failed(task_id, why, retry_at=retry_at)
            if expired:
                await self._journal.observed(task_id, status=Status.EXPIRED)
            error = ApiError(code="DownloadFailed", message=why, request_id=task.request_id)
            hint = not_saved_hint(task_id, len(task.image_urls), missing, expired=expired)
            update = {"images": kept, "missing_images": missing, "error": error, "next_step": hint}
            return result.model_copy(update=update)
        await self._journal.saved(task_id, _recorded(images))
        await progress(1.0, f"saved {len(images)} image(s)")
        done = with_parts(
            result.model_copy(update={"images": images, "next_step": origin(row)}), task.texts, task.text_places
        )
        return await self._write_markdown(done, row) if done.markdown else done

    async def _write_markdown(self, result: EditResult, row: TaskRow | None) -> EditResult:
        """Write the Markdown page of an interleaved answer beside its images; ``result`` without its ``markdown``
        when it could not be written (the images, which are what is paid, are saved all the same)."""
        assert result.markdown is not None and result.task_id is not None
        page = markdown(result.parts, task_id=result.task_id, model=result.model, prompt=row.prompt if row else None)
        try:
            await anyio.to_thread.run_sync(self._store.sink.write_document, result.markdown, page.encode())
        except OSError as exc:
            log.warning("could not write the page %s of task %s: %s", result.markdown, result.task_id, exc)
            return result.model_copy(update={"markdown": None})
        return result

    def _why(self, cause: Exception) -> str:
        """Why one image was not saved, in words: a refused or failed download as it was said, a write that failed
        naming the place, what to do and the setting that chooses it."""
        if not isinstance(cause, OSError):
            return str(cause)
        if cause.filename is not None or isinstance(self._store.sink, LocalFolder):  # the folder (temp files too)
            return (
                f"cannot write to the output folder {self._store.root}: {cause.strerror or cause} (free space or "
                "fix its permissions; WAN_MCP_OUTPUT_DIR chooses the folder)"
            )
        return f"{cause} (check the bucket and its credentials; WAN_MCP_OUTPUT_URL chooses it)"

    async def _unqueried(self, task_id: str, row: TaskRow | None, failed: PollFailed) -> EditResult:
        """A task that exists but could not be queried (throttled, an outage): its last known status, its id, and
        to call check_task; never a bare API error that reads as if nothing had been started."""
        if failed.last is not None:
            row = await self._record(task_id, failed.last, row)
        elif row is not None:
            await self._journal.schedule(task_id, self._polling.next_poll(row.created_at))
        if row is None:  # an id this journal never saw, and no answer about it: nothing known to report
            raise failed.cause
        log.warning("querying task %s failed: %s", task_id, failed.cause)
        result = from_row(row)
        return result.model_copy(update={"next_step": unqueried_hint(task_id, result.status, failed.cause)})


def _recorded(images: list[ImageFile]) -> list[dict[str, Any]]:
    """What the journal keeps of saved images: all but the presigned URL, which expires."""
    return [image.model_dump(exclude={"download_url"}) for image in images]
