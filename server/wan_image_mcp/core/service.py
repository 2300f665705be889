"""What the tools do, free of MCP: validate, journal, submit, wait within a bound, download, remember.

``WanService`` turns arguments into an ``EditResult``. Expected failures are raised as the package's own
errors (InvalidRequest, ConfigurationError, DashScopeError, SubmissionUncertain); a task that ended badly
is a result whose ``error`` says why. Every task is in the journal before its id is returned, and its
images are downloaded once, whoever asks first: a ``check_task`` call or the harvester.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from ..dashscope import (
    APIConnectionError,
    APIStatusError,
    DashScopeClient,
    TaskResult,
    TaskStatus,
)
from ..dashscope.errors import DownloadError
from .access import FileAccess
from .async_journal import AsyncJournal
from .clock import SYSTEM_CLOCK, Clock
from .detection import Mode, build_instruction
from .errors import ConfigurationError, SpendLimitExceeded, SubmissionUncertain
from .journal import DAY, EXPIRED, Journal, NewTask, TaskRow
from .outcomes import (
    ApiError,
    EditResult,
    ImageInfo,
    InspectResult,
    TaskList,
    check_hint,
    from_row,
    from_task,
    summary_of,
    unqueried_hint,
)
from .polling import PollFailed, Polling, Progress
from .reconcile import Reconciled, Reconciler, Submissions
from .references import PreparedImage, RefKind, classify, local_path
from .results import ResultStore, TaskRecord
from .uploads import Uploads
from .validation import EditParams, PreparedRequest, check_task_id, prepare_request

log = logging.getLogger("wan_image_mcp")


async def _no_progress(fraction: float, message: str) -> None:
    del fraction, message


def _begin_within_budget(journal: Journal, task: NewTask, per_day: int | None) -> int:
    """Check the daily budget (the 24 h before the task's creation) and record the task in one journal call, so
    concurrent submissions cannot both slip under the limit."""
    if per_day is not None:
        used = journal.requested_since(task.created_at - DAY)
        asked = task.requested_images or 0
        if used + asked > per_day:
            raise SpendLimitExceeded(
                f"This call would request {asked} paid image(s); {used} were requested in the last 24 h and "
                f"WAN_MCP_MAX_IMAGES_PER_DAY is {per_day}. Nothing was sent. To allow more, raise "
                "WAN_MCP_MAX_IMAGES_PER_DAY in the server's environment."
            )
    return journal.begin(task)


@dataclass(frozen=True)
class EditArgs:
    """What edit_image and submit_task are asked: the prompt, the image references in order, the model and the
    other parameters."""

    prompt: str
    images: Sequence[str]
    model: str
    params: EditParams


class WanService:
    def __init__(
        self,
        client: DashScopeClient | None,
        store: ResultStore,
        journal: AsyncJournal,
        *,
        poll_interval: float = 1.0,
        poll_interval_max: float = 5.0,
        missing_key: ConfigurationError | None = None,
        access: FileAccess | None = None,
        max_images_per_call: int | None = None,
        max_images_per_day: int | None = None,
        inline_max_bytes: int = 1_000_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock
        self._uploads = Uploads(journal, inline_max=inline_max_bytes)
        self._client = client
        self._access = access or FileAccess.of([store.root])
        self._per_call = max_images_per_call
        self._per_day = max_images_per_day
        self._store = store
        self.journal = journal
        self.polling = Polling(poll_interval, poll_interval_max, clock=clock)
        self._missing_key = missing_key
        self._locks: dict[str, anyio.Lock] = {}
        self.submissions = Submissions()

    @property
    def can_call_api(self) -> bool:
        return self._client is not None

    def _api(self) -> DashScopeClient:
        if self._client is None:
            raise self._missing_key or ConfigurationError("DASHSCOPE_API_KEY is not set")
        return self._client

    # --- tools --------------------------------------------------------------------------------------

    def needs_roots(self, refs: Sequence[str]) -> bool:
        """Whether a call names a local file outside the configured directories (then the client's roots
        are worth asking for)."""
        cwd = Path.cwd()
        for ref in refs:
            if classify(ref) is RefKind.LOCAL:
                try:
                    if not self._access.allows(local_path(ref, cwd)):
                        return True
                except (OSError, ValueError):
                    continue
        return False

    async def prepare(self, args: EditArgs, *, roots: Sequence[str] = ()) -> PreparedRequest:
        """Validate and conform in a worker thread (Pillow work must not block the event loop)."""
        access = self._access.with_roots(roots)
        return await anyio.to_thread.run_sync(
            lambda: prepare_request(args.model, args.prompt, args.images, args.params, cwd=Path.cwd(), access=access)
        )

    async def submit(self, args: EditArgs, *, instruction: str | None = None, roots: Sequence[str] = ()) -> EditResult:
        request = await self.prepare(args, roots=roots)
        if self._per_call is not None and request.paid_images > self._per_call:
            raise SpendLimitExceeded(
                f"This call would request {request.paid_images} paid images; WAN_MCP_MAX_IMAGES_PER_CALL is "
                f"{self._per_call}. Nothing was sent. Ask for fewer (n / max_images), or raise "
                "WAN_MCP_MAX_IMAGES_PER_CALL in the server's environment."
            )
        client = self._api()
        request = await self._uploads.place(client, request)
        parameters = dict(request.parameters)
        if request.negative_prompt is not None:
            parameters["negative_prompt"] = request.negative_prompt
        new = NewTask(
            model=request.model,
            prompt=request.prompt,
            parameters=parameters,
            adjustments=request.adjustments,
            instruction=instruction,
            requested_images=request.paid_images,
            inputs=[{"ref": _input_label(image), "path": image.path} for image in request.images],
            answer_within=client.submit_deadline,
            expected_size=request.expected_size,
            created_at=self.clock.time(),
        )
        journal_id = await self.journal.run(_begin_within_budget, self.journal.sync, new, self._per_day)
        self.submissions.begin(journal_id)  # with no await since the row was written (see Submissions)
        answered = False
        try:
            try:
                task = await client.submit(request.to_wire())
            except APIConnectionError as exc:
                if exc.request_sent:
                    await self.journal.run(self.journal.sync.uncertain, journal_id, str(exc))
                    raise SubmissionUncertain(journal_id, exc) from None
                await self.journal.run(self.journal.sync.rejected, journal_id, "ConnectionError", str(exc))
                answered = True
                raise
            except APIStatusError as exc:
                if exc.status >= 500:  # the server failed somewhere: it may or may not have created the task
                    await self.journal.run(self.journal.sync.uncertain, journal_id, str(exc))
                else:
                    await self.journal.run(self.journal.sync.rejected, journal_id, exc.code, exc.message)
                    answered = True
                raise
            assert task.task_id is not None  # the client refuses a create response without one
            await self.journal.run(
                self.journal.sync.submitted,
                journal_id,
                task.task_id,
                task.request_id,
                task.status.value,
                next_poll_at=self.polling.first_poll(new.created_at),
            )
            answered = True
        finally:
            self.submissions.answered(journal_id)
            if not answered:  # UNCERTAIN, or cancelled in flight (still SUBMITTING): reconciled from the task list
                self.polling.unanswered()
        self.polling.submitted()
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
        self,
        args: EditArgs,
        *,
        wait_seconds: float,
        progress: Progress = _no_progress,
        instruction: str | None = None,
        roots: Sequence[str] = (),
    ) -> EditResult:
        submitted = await self.submit(args, instruction=instruction, roots=roots)
        assert submitted.task_id is not None
        await progress(0.05, f"submitted task {submitted.task_id}")
        checked = await self.check(submitted.task_id, wait_seconds=wait_seconds, progress=progress)
        return checked.model_copy(update={"request_id": checked.request_id or submitted.request_id})

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
        roots: Sequence[str] = (),
    ) -> EditResult:
        instruction = build_instruction(targets, mode, labels)
        args = EditArgs(prompt=instruction, images=[image], model=model, params=EditParams())
        return await self.edit(args, wait_seconds=wait_seconds, progress=progress, instruction=instruction, roots=roots)

    async def check(
        self,
        task_id: str,
        *,
        wait_seconds: float = 0,
        progress: Progress = _no_progress,
    ) -> EditResult:
        """Look at a task (waiting up to ``wait_seconds``); download its images once when it succeeded."""
        check_task_id(task_id)
        lock = self._locks.setdefault(task_id, anyio.Lock())
        async with lock:
            row = await self.journal.run(self.journal.sync.get, task_id)
            if row is not None and row.saved_at is not None and _on_disk(row):
                return from_row(row)
            # Images can only be on disk already if the journal does not know the task (saved by an earlier run
            # whose row is gone, or under another journal) or if it had seen the result URLs: then look, which
            # reads the whole output folder. A task this journal has never seen succeed skips that.
            earlier = row is None or bool(row.result_urls)
            saved = await anyio.to_thread.run_sync(self._store.find, task_id) if earlier else None
            if saved:
                await self.journal.run(self.journal.sync.observed, task_id, status="SUCCEEDED")
                await self.journal.run(self.journal.sync.saved, task_id, [i.model_dump() for i in saved])
                return EditResult(status="SUCCEEDED", task_id=task_id, model=row.model if row else None, images=saved)
            if row is not None and row.status == EXPIRED:
                return from_row(row)
            try:
                client = self._api()
                task = await self.polling.wait(task_id, lambda: client.get_task(task_id), wait_seconds, progress)
            except PollFailed as failed:
                return await self._unqueried(task_id, row, failed)
            if row is not None or task.status is not TaskStatus.UNKNOWN:  # an id DashScope does not know either
                row = await self._record(task_id, task, row)  # is no task of ours: nothing to remember
            result = from_task(task_id, task, row)
            if task.status is not TaskStatus.SUCCEEDED:
                return result
            await progress(0.9, f"downloading {len(task.image_urls)} image(s)")
            return await self._save(task_id, task, row, result, progress, resume=earlier)

    async def inspect(
        self, refs: Sequence[str], *, roots: Sequence[str] = (), grid: bool = True
    ) -> tuple[InspectResult, list[bytes | None]]:
        from .inspection import inspect_images  # Pillow's drawing, off the start path

        access = self._access.with_roots(roots)
        reports, previews = await anyio.to_thread.run_sync(lambda: inspect_images(refs, access, Path.cwd(), grid=grid))
        return InspectResult(images=[ImageInfo(**report.__dict__) for report in reports]), previews

    async def list_statuses(self, wanted: Collection[str]) -> dict[str, TaskStatus]:
        return await self._api().list_statuses(wanted)

    async def reconcile(self) -> Reconciled:
        """Find the tasks of create requests whose answer never came (see ``reconcile.Reconciler``)."""
        return await Reconciler(self.journal, self.submissions).run(self._api())

    async def cancel(self, task_id: str) -> str | None:
        check_task_id(task_id)
        request_id = await self._api().cancel_task(task_id)
        await self.journal.run(self.journal.sync.observed, task_id, status="CANCELED", request_id=request_id)
        return request_id

    async def list_tasks(self, *, status: str | None, page: int, page_size: int) -> TaskList:
        rows, total = await self.journal.run(
            self.journal.sync.recent, status=status, limit=page_size, offset=(page - 1) * page_size
        )
        return TaskList(tasks=[summary_of(row) for row in rows], total=total, page=page, page_size=page_size)

    # --- plumbing -----------------------------------------------------------------------------------

    async def _record(self, task_id: str, task: TaskResult, row: TaskRow | None) -> TaskRow | None:
        created = row.created_at if row else self.clock.time()
        failed = task.status in (TaskStatus.FAILED, TaskStatus.UNKNOWN)
        await self.journal.run(
            self.journal.sync.observed,
            task_id,
            status=task.status.value,
            request_id=task.request_id,
            result_urls=task.image_urls,
            usage=dict(task.usage) if task.usage else None,
            actual_prompt=task.actual_prompt,
            texts=task.texts,
            submit_time=task.submit_time,
            error_code=(task.code or task.status.value) if failed else None,
            error_message=task.message if failed else None,
            next_poll_at=self.polling.next_poll(created) if not task.status.terminal else None,
        )
        return await self.journal.run(self.journal.sync.get, task_id)

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
        record = TaskRecord.of(row)
        try:
            images = await self._store.save(
                task_id, task.image_urls, record, {"request_id": task.request_id, "usage": task.usage}, resume=resume
            )
        except (DownloadError, OSError) as exc:
            expired = isinstance(exc, DownloadError) and exc.expired
            why = str(exc)
            if isinstance(exc, OSError):
                why = f"cannot write to the output directory {self._store.root}: {exc.strerror or exc}"
            attempts = row.download_attempts if row else 0
            retry_at = None if expired else self.polling.retry_download(attempts)
            await self.journal.run(self.journal.sync.download_failed, task_id, why, retry_at=retry_at)
            if expired:
                await self.journal.run(self.journal.sync.observed, task_id, status=EXPIRED)
            hint = (
                "The result URLs have expired; these images cannot be recovered."
                if expired
                else "The task succeeded and is paid for, but its images are not saved yet. Fix the cause and "
                "call check_task again within 24 h of the task's end (the server also retries by itself)."
            )
            error = ApiError(code="DownloadFailed", message=why, request_id=task.request_id)
            return result.model_copy(update={"error": error, "next_step": hint})
        await self.journal.run(self.journal.sync.saved, task_id, [image.model_dump() for image in images])
        await progress(1.0, f"saved {len(images)} image(s)")
        return result.model_copy(update={"images": images, "next_step": None})

    async def _unqueried(self, task_id: str, row: TaskRow | None, failed: PollFailed) -> EditResult:
        """A task that exists but could not be queried (throttled, an outage): its last known status, its id, and
        to call check_task; never a bare API error that reads as if nothing had been started."""
        if failed.last is not None:
            row = await self._record(task_id, failed.last, row)
        elif row is not None:
            await self.journal.run(self.journal.sync.schedule, task_id, self.polling.next_poll(row.created_at))
        if row is None:  # an id this journal never saw, and no answer about it: nothing known to report
            raise failed.cause
        log.warning("querying task %s failed: %s", task_id, failed.cause)
        result = from_row(row)
        return result.model_copy(update={"next_step": unqueried_hint(task_id, result.status, failed.cause)})


def _input_label(image: PreparedImage) -> str:
    """How the journal names an input: the path or URL as given; an inline image only by its kind and size."""
    if image.kind is RefKind.DATA:
        return f"inline {image.format or 'image'} image, {image.width}×{image.height}"
    return image.source


def _on_disk(row: TaskRow) -> bool:
    return all(Path(image["path"]).is_file() for image in row.images)
