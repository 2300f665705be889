"""What the tools do, free of MCP: validate, journal, submit, wait within a bound, download, remember.

``WanService`` turns arguments into an ``EditResult``. Expected failures are raised as the package's own
errors (InvalidRequest, ConfigurationError, DashScopeError, SubmissionUncertain); a task that ended badly
is a result whose ``error`` says why. Every task is in the journal before its create request is sent, and its
images are downloaded once, whoever asks first: a ``check_task`` call or the harvester. Looking at a task and
saving its images is ``check``'s; this module sends the create requests and routes the other calls.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Collection, Sequence
from pathlib import Path

import anyio
import anyio.to_thread

from ...dashscope import APIConnectionError, APIStatusError, DashScopeClient, TaskStatus
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigurationError, InvalidRequest, JournalBusy, Problem, SubmissionUncertain
from ..images.access import FileAccess
from ..images.background import Background, background_problem
from ..images.references import PreparedImage, RefKind, classify, local_path
from ..journal import DAY, AsyncJournal, NewTask, Status, Tenant
from ..requests.declarations import EditArgs
from ..requests.spending import Confirm, SpendGate, SpendQuestion, begin_within_budget, check_budget
from ..requests.validation import PreparedRequest, check_task_id, prepare_request
from ..results.outcomes import (
    EditResult,
    ImageInfo,
    InspectResult,
    PaidResult,
    TaskList,
    check_hint,
    size_text,
    summary_of,
)
from ..results.probe import OutputProbe
from ..results.store import ResultStore
from .check import TaskCheck, no_progress
from .dry_run import Spending, rehearse
from .polling import Polling, Progress
from .reconcile import Reconciled, Reconciler, Submissions
from .uploads import Uploads

BUDGET_WAIT = 15.0
"""Seconds a paid call waits for another server's check of the daily budget on a shared journal."""

log = logging.getLogger("wan_image_mcp")


class WanService:
    """The tools' work, free of MCP: one per server, built by the lifespan (``wiring.build_service``).

    ``client`` is None when no key is set: every call that needs the API then raises ``missing_key`` (or a
    ConfigurationError saying DASHSCOPE_API_KEY is not set). ``store`` saves result images, ``journal`` records
    every task; ``access`` says which local files may be read (default: the output folder only). The two limits
    bound the paid images one call and the last 24 h may request (None: no limit); local images up to
    ``inline_max_bytes`` go inline, larger ones are uploaded. ``clock`` is what polling, reconciling and the
    times the service records go by (tests pass a virtual one). ``polling`` and ``submissions`` are shared with
    the harvester.
    """

    def __init__(
        self,
        client: DashScopeClient | None,
        store: ResultStore,
        journal: AsyncJournal,
        *,
        poll_interval: float,
        poll_interval_max: float,
        missing_key: ConfigurationError | None = None,
        access: FileAccess | None = None,
        max_images_per_call: int | None = None,
        max_images_per_day: int | None = None,
        confirm_above_images: int | None = None,
        inline_max_bytes: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock
        self._uploads = Uploads(journal, inline_max=inline_max_bytes, clock=clock)
        self._client = client
        self._access = access or FileAccess.of([store.root])
        self.gate = SpendGate(max_images_per_call, confirm_above_images)
        self._per_day = max_images_per_day
        self._store = store
        self.journal = journal
        self.polling = Polling(poll_interval, poll_interval_max, clock=clock)
        self._missing_key = missing_key
        self.submissions = Submissions(clock)
        self._tasks = TaskCheck(self._api, store, journal, self.polling, clock)
        self.output = OutputProbe(store.probe, clock)
        """Proves the output writable before a paid call (nothing is paid that cannot be saved)."""

    @property
    def store(self) -> ResultStore:
        """Where result images are saved (the output folder, or a bucket), for the resources that read them."""
        return self._store

    @property
    def can_call_api(self) -> bool:
        """Whether a key is set (without one, every call that needs the API raises ConfigurationError)."""
        return self._client is not None

    def _api(self) -> DashScopeClient:
        """The client; raises the ConfigurationError of a missing or unusable key when there is none."""
        if self._client is None:
            # A new error each time: raising the stored one would hang every call's frames on its traceback.
            raise ConfigurationError(str(self._missing_key or "DASHSCOPE_API_KEY is not set"))
        return self._client

    # --- tools --------------------------------------------------------------------------------------

    def needs_roots(self, refs: Sequence[str]) -> bool:
        """Whether ``refs`` (image references as given) name a local file outside the configured directories:
        then the client's roots are worth asking for. A path that cannot be resolved counts as inside (its
        error comes from validation). Raises nothing."""
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
        """Validate ``args`` against the model's spec and conform its images, in a worker thread (Pillow work must
        not block the event loop); ``roots`` (``file://`` URIs the client declared) widen the allowed folders
        for this call. Returns the request ready to send; raises InvalidRequest listing every problem (a file
        outside the allowed folders among them). Sends nothing."""
        access = self._access.with_roots(roots)
        return await anyio.to_thread.run_sync(
            lambda: prepare_request(args.model, args.prompt, args.images, args.params, cwd=Path.cwd(), access=access)
        )

    async def vet(self, request: PreparedRequest) -> SpendQuestion | None:
        """After validation, before anything is sent: refuse a call over a limit or without a key; the question
        for the user when the call is above WAN_MCP_CONFIRM_ABOVE_IMAGES (see ``spending``). Raises
        SpendLimitExceeded or ConfigurationError (OutputNotWritable: the output cannot be written)."""
        self._api()
        await self.output.ensure()
        question = self.gate.vet(request)
        if question is not None and self._per_day is not None:  # spares the user a question the budget would undo
            used = await self.journal.requested_since(self.clock.time() - DAY)
            check_budget(request.paid_images, used, self._per_day)
        return question

    async def dry_run(
        self, request: PreparedRequest, *, instruction: str | None = None, cannot_ask: str | None = None
    ) -> PaidResult:
        """``request`` (prepared as for a paid call) told as ``submit`` would send it: paid images, output size,
        inputs, wire parameters, and what would stop it (a limit, the confirmation, no key), reported, not raised.
        Sends nothing, uploads nothing, asks no one and writes nothing; reads the journal for the daily limit.
        ``cannot_ask`` says why the user could not be asked in this call, if so (a confirmation then refuses)."""
        used = await self.journal.requested_since(self.clock.time() - DAY) if self._per_day is not None else 0
        no_key = None
        try:
            self._api()
        except ConfigurationError as exc:
            no_key = str(exc)
        spending = Spending(self.gate, self._per_day, used, no_key, cannot_ask)
        return rehearse(request, spending, self._uploads.carriage, instruction=instruction)

    async def _begin(self, new: NewTask) -> int:
        """Record ``new`` within the daily budget. While another server on a shared journal holds the budget's
        check, wait (the journal's thread free for other work meanwhile) and try again, for up to ``BUDGET_WAIT``
        seconds; then JournalBusy, nothing written or sent."""
        deadline = self.clock.monotonic() + BUDGET_WAIT
        pause = 0.02
        while True:
            try:
                return await self.journal.call(begin_within_budget, new, self._per_day)
            except JournalBusy as exc:
                if self.clock.monotonic() >= deadline:
                    raise JournalBusy(
                        f"The daily image budget (WAN_MCP_MAX_IMAGES_PER_DAY) is checked on the shared task journal "
                        f"one call at a time, and another server has held that check for over {BUDGET_WAIT:.0f} s "
                        f"({exc}). Nothing was sent and nothing is billed: call again in a minute; if this persists, "
                        "another server on the journal is probably stuck (on PostgreSQL, its session is ended after "
                        "a minute idle in a transaction, freeing the check)."
                    ) from None
                await self.clock.sleep(pause)
                pause = min(pause * 2, 0.5)

    async def submit(
        self,
        args: EditArgs,
        *,
        instruction: str | None = None,
        roots: Sequence[str] = (),
        prepared: PreparedRequest | None = None,
        confirm: Confirm | None = None,
        tenant: Tenant | None = None,
    ) -> EditResult:
        """Validate ``args`` (or take them ``prepared``), confirm through ``confirm`` when the call needs it, record
        the task in the journal (as ``tenant``'s, when given), then send its create request; ``instruction`` is
        recorded for ``detect_segment``, ``roots`` as in ``prepare``.

        Returns at once with the task's id, its status as created, model, adjustments, requested images and a
        ``next_step`` naming ``check_task``. Raises what ``prepare`` raises; SpendLimitExceeded over either
        limit and ConfigurationError without a key (nothing sent then), OutputNotWritable (one) when the output
        cannot be written (nothing sent either); InputChanged when a local image changed
        after its check; SubmissionUncertain when the request was sent and its answer lost (the row is UNCERTAIN
        and reconciled later); the client's DashScopeError when an upload was refused (before any row), when the
        API refused the request (the row is REJECTED) or when its 5xx left the outcome open (the row is UNCERTAIN).
        """
        request = prepared or await self.prepare(args, roots=roots)
        await self.gate.clear(request, confirm)
        client = self._api()
        await self.output.ensure()  # nothing is paid that cannot be saved
        thumbs = await anyio.to_thread.run_sync(_sent_thumbnails, request.images)  # before place lets go of bytes
        request = await self._uploads.place(client, request)
        now = self.clock.time()
        new = _new_task(
            request, instruction, thumbs, answer_within=client.submit_deadline, created_at=now, tenant=tenant
        )
        journal_id = await self._begin(new)
        self.submissions.begin(journal_id)  # with no await since the row was written (see Submissions)
        answered = False
        try:
            try:
                task = await client.submit(request.to_wire())
            except APIConnectionError as exc:
                if exc.request_sent:
                    await self.journal.uncertain(journal_id, str(exc))
                    raise SubmissionUncertain(journal_id, exc) from None
                await self.journal.rejected(journal_id, "ConnectionError", str(exc))
                answered = True
                raise
            except APIStatusError as exc:
                if exc.status >= 500:  # the server failed somewhere: it may or may not have created the task
                    await self.journal.uncertain(journal_id, str(exc))
                else:
                    await self.journal.rejected(journal_id, exc.code, exc.message)
                    answered = True
                raise
            assert task.task_id is not None  # the client refuses a create response without one
            await self.journal.submitted(
                journal_id,
                task.task_id,
                task.request_id,
                Status.of(task.status),
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
            status=Status.of(task.status),
            task_id=task.task_id,
            request_id=task.request_id,
            model=request.model,
            adjustments=list(request.adjustments),
            instruction=instruction,
            requested_images=request.paid_images,
            next_step=check_hint(task.task_id),
            output_size=size_text(request.expected_size),
        )

    async def edit(
        self,
        args: EditArgs,
        *,
        wait_seconds: float,
        progress: Progress = no_progress,
        instruction: str | None = None,
        roots: Sequence[str] = (),
        prepared: PreparedRequest | None = None,
        confirm: Confirm | None = None,
        tenant: Tenant | None = None,
    ) -> EditResult:
        """``submit``, then ``check`` for up to ``wait_seconds``, reporting to ``progress`` (submitted,
        running, downloading, saved). Returns what ``check`` returns, with the create request's id when the
        query gave none; raises what ``submit`` raises (a task not done in time is a RUNNING result, not an
        error). ``tenant`` as in ``submit``."""
        submitted = await self.submit(
            args, instruction=instruction, roots=roots, prepared=prepared, confirm=confirm, tenant=tenant
        )
        assert submitted.task_id is not None
        await progress(0.05, f"submitted task {submitted.task_id}")
        checked = await self.check(submitted.task_id, wait_seconds=wait_seconds, progress=progress, tenant=tenant)
        return checked.model_copy(update={"request_id": checked.request_id or submitted.request_id})

    async def check(
        self,
        task_id: str,
        *,
        wait_seconds: float = 0,
        progress: Progress = no_progress,
        tenant: Tenant | None = None,
    ) -> EditResult:
        """Look at a task once, or wait up to ``wait_seconds`` for it to end; download its images once when it
        succeeded (``check.TaskCheck``).

        Returns the task as an EditResult: SUCCEEDED with its saved ``images`` (found in the journal or on disk
        without a query when they were saved before), still PENDING/RUNNING with a ``next_step`` to call again,
        ended badly with its ``error``, or with a DownloadFailed ``error`` when its images could not be saved. A
        task that could not be queried comes back with its last known status and a hint. Raises InvalidRequest
        for a malformed id, ConfigurationError without a key, and the query's DashScopeError only for an id this
        journal never saw. Given ``tenant``, another tenant's task (or one the journal never saw) is UNKNOWN, as
        DashScope answers for an id it does not know, and nothing is sent to DashScope for it.
        """
        return await self._tasks.check(task_id, wait_seconds=wait_seconds, progress=progress, tenant=tenant)

    async def inspect(
        self, refs: Sequence[str], *, roots: Sequence[str] = (), grid: bool = True, alpha_background: str = "white"
    ) -> tuple[InspectResult, list[bytes | None]]:
        """Report each image reference (size, format, orientation, per-model verdicts) as it would be sent, in
        order, with a JPEG grid preview each (None where it could not be read), transparency flattened onto
        ``alpha_background``. An image that cannot be read, or is outside the allowed folders, is a report with its
        ``problem``, not an error; InvalidRequest for a background it does not take. Sends nothing to DashScope."""
        from ..images.inspection import inspect_images  # Pillow's drawing, off the start path

        background = Background.parse(alpha_background)
        if background is None:
            raise InvalidRequest([background_problem(alpha_background)])
        access = self._access.with_roots(roots)
        reports, previews = await anyio.to_thread.run_sync(
            lambda: inspect_images(refs, access, Path.cwd(), grid=grid, background=background)
        )
        return InspectResult(images=[ImageInfo(**report.__dict__) for report in reports]), previews

    async def list_statuses(self, wanted: Collection[str]) -> dict[str, TaskStatus]:
        """Task id -> status for recent tasks in DashScope's task list, stopping once all of ``wanted`` are
        seen (the harvester's one query for many tasks). Raises ConfigurationError without a key and the
        client's DashScopeError."""
        return await self._api().list_statuses(wanted)

    async def reconcile(self) -> Reconciled:
        """Look for the tasks of create requests whose answer never came (SUBMITTING rows not in flight, and
        UNCERTAIN ones) in DashScope's task list: each is adopted, marked AMBIGUOUS, or REJECTED as never created
        (``reconcile.Reconciler``). Returns the task ids adopted and how many are left unresolved; raises
        ConfigurationError without a key and the client's DashScopeError."""
        return await Reconciler(self.journal, self.submissions, clock=self.clock).run(self._api())

    async def cancel(self, task_id: str, *, tenant: Tenant | None = None) -> str | None:
        """Cancel a PENDING task and journal it CANCELED; returns the cancel request's id. Raises InvalidRequest
        for a malformed id (and, given ``tenant``, for a task that is not that tenant's, whether another's or
        unknown: nothing is sent then), ConfigurationError without a key, and BadRequestError
        (``UnsupportedOperation``) for a task past PENDING."""
        check_task_id(task_id)
        if tenant is not None and await self.journal.get(task_id, tenant=tenant) is None:
            message = f"no task {task_id!r} of yours is in the journal; list_tasks shows yours"
            raise InvalidRequest([Problem("task_id", message)])
        request_id = await self._api().cancel_task(task_id)
        await self.journal.observed(task_id, status=Status.CANCELED, request_id=request_id)
        return request_id

    async def list_tasks(
        self, *, status: Status | None, page: int, page_size: int, tenant: Tenant | None = None
    ) -> TaskList:
        """Page ``page`` (from 1) of the tasks in the journal, newest first, ``page_size`` to a page, only
        ``status`` and only ``tenant``'s when given, with the total that match. Reads the journal only: no key
        needed, raises nothing of its own."""
        rows, total = await self.journal.recent(
            status=status, limit=page_size, offset=(page - 1) * page_size, tenant=tenant
        )
        return TaskList(tasks=[summary_of(row) for row in rows], total=total, page=page, page_size=page_size)


def _sent_thumbnails(images: Sequence[PreparedImage]) -> list[str | None]:
    """Each input's thumbnail as it is sent (``sent_thumbnail``), base64 for the journal; None for a remote one."""
    from .viewing import sent_thumbnail  # Pillow: call time, off the start path

    return [base64.b64encode(thumb).decode("ascii") if (thumb := sent_thumbnail(image)) else None for image in images]


def _new_task(
    request: PreparedRequest,
    instruction: str | None,
    thumbs: Sequence[str | None],
    *,
    answer_within: float,
    created_at: float,
    tenant: Tenant | None,
) -> NewTask:
    """What the journal records of ``request`` before it is sent (no image bytes but each input's small
    thumbnail as sent, ``thumbs``, base64: what the viewer shows of it later): its model, prompt, wire parameters
    with the negative prompt, adjustments, inputs, paid images, expected size and tenant."""
    parameters = dict(request.parameters)
    if request.negative_prompt is not None:
        parameters["negative_prompt"] = request.negative_prompt
    return NewTask(
        model=request.model,
        prompt=request.prompt,
        parameters=parameters,
        adjustments=request.adjustments,
        instruction=instruction,
        requested_images=request.paid_images,
        inputs=[
            {"ref": _input_label(image), "path": image.path, "thumb": thumb}
            for image, thumb in zip(request.images, thumbs, strict=True)
        ],
        answer_within=answer_within,
        expected_size=request.expected_size,
        created_at=created_at,
        tenant=tenant,
    )


def _input_label(image: PreparedImage) -> str:
    """How the journal names an input: the path or URL as given; an inline image only by its kind and size."""
    if image.kind is RefKind.DATA:
        return f"inline {image.format or 'image'} image, {image.width}×{image.height}"
    return image.source
