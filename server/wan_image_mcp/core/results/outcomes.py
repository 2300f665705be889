"""What a call comes to: ``EditResult`` and friends (the tools' output schemas), and how a journal row or a
task's answer becomes one (``from_row``, ``from_task``, ``summary_of``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from ...dashscope import TaskResult, TaskStatus
from ..journal import OPEN_STATUSES, Status, TaskRow
from .dry_run import Detailed, Listed, SentInput, Stop, dry_run_text


class ImageFile(BaseModel):
    """One saved result image: where it is, where it came from, its size and hash."""

    path: str = Field(description="absolute path of the saved image")
    url: str = Field(description="DashScope result URL (expires 24 h after generation)")
    width: int
    height: int
    bytes: int
    sha256: str
    download_url: str | None = Field(
        default=None, description="a presigned URL to fetch the image from object storage (expires; S3 output only)"
    )


class ResultPart(BaseModel):
    """One part of an interleaved answer, in DashScope's order: a text, or a saved image (its ``path``)."""

    type: Literal["text", "image"]
    text: str | None = None
    path: str | None = None


class ApiError(BaseModel):
    """Why something failed: DashScope's (or our) code and message, with the request_id when there is one."""

    code: str
    message: str
    request_id: str | None = None


class MissingImage(BaseModel):
    """An image of a succeeded (paid) task that is not saved yet: its 1-based index and why."""

    index: int
    reason: str


class EditResult(BaseModel):
    """What edit_image, check_task and detect_segment return: a task's status, its saved images and what to do next."""

    status: str = Field(description="PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED or UNKNOWN")
    task_id: str | None = None
    request_id: str | None = None
    model: str | None = None
    images: list[ImageFile] = Field(default_factory=list[ImageFile])
    usage: dict[str, Any] | None = None
    actual_prompt: str | None = Field(default=None, description="prompt as rewritten by prompt_extend (wan2.5)")
    adjustments: list[str] = Field(default_factory=list[str], description="what was fixed in the inputs")
    instruction: str | None = Field(default=None, description="instruction sent (detect_segment)")
    requested_images: int | None = Field(default=None, description="most images this task can produce and bill")
    error: Detailed[ApiError] | None = None
    image_failures: Listed[ApiError] = Field(default_factory=list[ApiError], description="images that failed (wan2.5)")
    next_step: str | None = Field(default=None, description="what to do next when not finished")
    parts: Listed[ResultPart] = Field(
        default_factory=list[ResultPart], description="wan2.6 interleave: texts and images in the answer's order"
    )
    markdown: str | None = Field(
        default=None, description="interleave: a Markdown page of the parts, beside the images"
    )
    missing_images: Listed[MissingImage] = Field(
        default_factory=list[MissingImage], description="SUCCEEDED (paid) but not saved yet: call check_task"
    )
    output_size: str | None = Field(
        default=None, description="W*H of each output image: as produced once SUCCEEDED, else as expected"
    )


class PaidResult(EditResult):
    """What a paid tool (edit_image, detect_segment) returns: an EditResult, or its dry run (``dry_run.py``); check_task
    never dry-runs, and its output schema is spared these fields."""

    dry_run: bool | None = Field(default=None, description="true: nothing was sent or billed (status DRY_RUN)")
    paid_images: int | None = Field(default=None, description="dry run: most images the call would bill")
    inputs: Listed[SentInput] | None = Field(default=None, description="dry run: each input as it would be sent")
    parameters: dict[str, Any] | None = Field(default=None, description="dry run: the wire parameters")
    would_stop: Listed[Stop] | None = Field(default=None, description="dry run: limits or a confirmation in the way")


class TaskStarted(BaseModel):
    """What submit_task returns: the fields of an EditResult a task has before it runs."""

    status: str
    task_id: str | None = None
    request_id: str | None = None
    model: str | None = None
    adjustments: list[str] = Field(default_factory=list[str])
    instruction: str | None = None
    requested_images: int | None = None
    next_step: str | None = None
    output_size: str | None = None
    dry_run: bool | None = None
    paid_images: int | None = None
    inputs: Listed[SentInput] | None = None
    parameters: dict[str, Any] | None = None
    would_stop: Listed[Stop] | None = None


ListedStatus = Annotated[Status, WithJsonSchema({"enum": [status.value for status in Status], "type": "string"})]
"""Every status ``list_tasks`` can show, so it can filter by each (``Status``): DashScope's, and the journal's own for
a submission without its answer (SUBMITTING, UNCERTAIN, AMBIGUOUS, REJECTED) or images lost to expired URLs
(EXPIRED). Its schema lists the values in place (no ``$ref``), as a client's form shows them."""


class TaskSummary(BaseModel):
    """One journal row as list_tasks shows it."""

    task_id: str | None = Field(
        default=None,
        description="None while a submission's answer is missing (SUBMITTING, UNCERTAIN, AMBIGUOUS, REJECTED)",
    )
    journal_id: int
    status: str
    model: str
    prompt: str = Field(description="the first 120 characters")
    created: str
    finished: str | None = None
    requested_images: int | None = None
    images: list[str] = Field(default_factory=list[str], description="local paths")
    error: Detailed[ApiError] | None = None
    candidates: list[str] = Field(
        default_factory=list[str], description="AMBIGUOUS: task ids that could be this submission's (none adopted)"
    )


class TaskList(BaseModel):
    """A page of list_tasks, newest first, with the total number of matching rows."""

    tasks: list[TaskSummary]
    total: int
    page: int
    page_size: int


class ImageInfo(BaseModel):
    """inspect_image's report on one image: size, format, orientation and a verdict per model."""

    index: int = Field(description="1-based, as image 1 / 圖1")
    source: str
    kind: str = Field(description="local, data, remote or oss")
    width: int | None = Field(default=None, description="as shown (EXIF orientation applied): bbox_list's space")
    height: int | None = None
    format: str | None = None
    orientation: int | None = Field(default=None, description="EXIF orientation tag (1 = upright)")
    bytes: int | None = None
    models: dict[str, str] = Field(
        default_factory=dict[str, str], description="per model: as is, adjusted: …, refused: …"
    )
    problem: str | None = None
    alpha_background: str | None = Field(default=None, description="has transparency: flattened onto this")


class InspectResult(BaseModel):
    """What inspect_image returns: one report per image, in order."""

    images: Listed[ImageInfo]


# --- journal rows and task answers as results -------------------------------------------------------


def check_hint(task_id: str) -> str:
    """What to do with a task that is not finished yet."""
    return (
        f"Not finished yet. Call check_task with task_id={task_id!r} (e.g. wait_seconds=50, under your client's "
        "timeout) to get the images."
    )


def unqueried_hint(task_id: str, status: str, cause: Exception) -> str:
    """What to do with a task that exists but whose status could not be queried."""
    return (
        f"The task exists (it may be billed) but its status could not be queried just now ({cause}); it was "
        f"{status} when last seen. Do not resubmit; call check_task with task_id={task_id!r} (e.g. "
        "wait_seconds=50, under your client's timeout) to get the images."
    )


def size_text(size: tuple[int, int] | None) -> str | None:
    """An output size as results state it: ``"W*H"``, or None when it is not known."""
    return f"{size[0]}*{size[1]}" if size else None


def output_size(row: TaskRow | None, usage: Mapping[str, Any] | None) -> str | None:
    """A task's output size: as DashScope reported it once produced (``usage.size``), else as expected when it
    was sent (the journal's)."""
    produced = usage.get("size") if usage else None
    return produced if isinstance(produced, str) and produced else (row.expected_size if row else None)


def not_saved_hint(task_id: str, count: int, missing: list[MissingImage], *, expired: bool) -> str:
    """What to do with a succeeded (paid) task of ``count`` images whose ``missing`` ones could not be saved."""
    which = ", ".join(str(image.index) for image in missing)
    if expired:
        return (
            f"The task SUCCEEDED and is paid for, but its result URLs have expired (they last 24 h): image(s) {which} "
            f"of {count} cannot be recovered."
        )
    return (
        f"The task SUCCEEDED and is paid for; image(s) {which} of {count} are not saved yet (missing_images says "
        f"why). Do not submit it again (that is paid again): fix the cause and call check_task with "
        f"task_id={task_id!r} to save them, within 24 h of the task's end (the server also retries by itself)."
    )


def origin(row: TaskRow | None) -> str | None:
    """What is said of a task that an AMBIGUOUS submission may have made (its ``next_step``), or None."""
    if row is None or row.candidate_of is None:
        return None
    return (
        f"This task is a candidate of the submission with journal id {row.candidate_of}, whose answer was lost: it "
        "may be that submission's task, or another identical submission's. Its images are saved all the same."
    )


def iso_time(ts: float | None) -> str | None:
    """A journal time (seconds since the epoch) as local ISO 8601, or None."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts)) if ts else None


_ERRED = (Status.FAILED, Status.UNKNOWN, Status.EXPIRED, Status.UNCERTAIN, Status.REJECTED, Status.AMBIGUOUS)
"""The statuses whose row's error code says why the task ended badly (or has no task)."""


def error_of(row: TaskRow) -> ApiError | None:
    """Why a journal row's task ended badly (or its images could not be saved), or None."""
    if row.status in _ERRED and row.error_code:
        return ApiError(code=row.error_code, message=row.error_message or "", request_id=row.request_id)
    if row.status is Status.EXPIRED or (row.download_error and row.saved_at is None):
        return ApiError(code="DownloadFailed", message=row.download_error or "", request_id=row.request_id)
    return None


def from_row(row: TaskRow) -> EditResult:
    """A task as the journal knows it (an EXPIRED one reads SUCCEEDED, with its error)."""
    return EditResult(
        status=Status.SUCCEEDED if row.status is Status.EXPIRED else row.status,
        task_id=row.task_id,
        request_id=row.request_id,
        model=row.model or None,
        images=[ImageFile.model_validate(image) for image in row.images],
        usage=row.usage,
        actual_prompt=row.actual_prompt,
        adjustments=row.adjustments,
        instruction=row.instruction,
        requested_images=row.requested_images,
        error=error_of(row),
        next_step=origin(row),
        output_size=output_size(row, row.usage),
    )


def from_task(task_id: str, task: TaskResult, row: TaskRow | None) -> EditResult:
    """A task as DashScope answered it, with what the journal adds (model, adjustments, instruction); no images."""
    result = EditResult(
        status=Status.of(task.status),
        task_id=task_id,
        request_id=task.request_id,
        model=row.model if row and row.model else None,
        usage=dict(task.usage) if task.usage else None,
        actual_prompt=task.actual_prompt,
        adjustments=row.adjustments if row else [],
        instruction=row.instruction if row else None,
        requested_images=row.requested_images if row else None,
        image_failures=[ApiError(code=f.code, message=f.message) for f in task.failures],
        next_step=origin(row),
        output_size=output_size(row, task.usage),
    )
    if task.status is TaskStatus.FAILED:
        error = ApiError(code=task.code or "Unknown", message=task.message or "", request_id=task.request_id)
        return result.model_copy(update={"error": error})
    if task.status is TaskStatus.UNKNOWN:
        message = "DashScope does not know this task: the id is wrong, older than 24 h, or from another account"
        return result.model_copy(
            update={"error": ApiError(code="UNKNOWN", message=message, request_id=task.request_id)}
        )
    if Status.of(task.status) in OPEN_STATUSES:
        return result.model_copy(update={"next_step": " ".join(filter(None, (origin(row), check_hint(task_id))))})
    return result


def summary_of(row: TaskRow) -> TaskSummary:
    """A journal row as list_tasks shows it (the prompt cut to 120 characters)."""
    prompt = row.prompt if len(row.prompt) <= 120 else row.prompt[:119] + "…"
    return TaskSummary(
        task_id=row.task_id,
        journal_id=row.id,
        status=row.status,
        model=row.model,
        prompt=prompt,
        created=iso_time(row.created_at) or "",
        finished=iso_time(row.finished_at),
        requested_images=row.requested_images,
        images=[image["path"] for image in row.images],
        error=error_of(row),
        candidates=row.candidates,
    )


def failed(result: EditResult) -> bool:
    """Whether a result is a failure (a tool error): it has an error and its task did not succeed. A succeeded task
    is paid for, so it is never one, even with images not saved: an agent reading an error would submit again and
    pay twice (its ``next_step`` says to call check_task)."""
    return result.error is not None and result.status != Status.SUCCEEDED


def summary_text(result: EditResult) -> str:
    """A result in a few lines for the model to read: status, task, each image (an interleaved answer's parts
    follow it in blocks of their own), errors, what to do next."""
    if isinstance(result, PaidResult) and result.dry_run:
        return dry_run_text(result)
    head = f"{result.status}: " + " ".join(part for part in (result.model, "task", result.task_id) if part)
    lines = [head]
    if result.parts:  # the parts follow in their own blocks, in DashScope's order
        page = f" Markdown page: {result.markdown}" if result.markdown else ""
        lines.append(
            f"{len(result.parts) - len(result.images)} text(s) and {len(result.images)} image(s), in the answer's "
            f"order below.{page}"
        )
    else:
        for image in result.images:
            lines.append(f"- {image.path} ({image.width}×{image.height}, {image.bytes} bytes)")
    if result.output_size:
        lines.append(f"Output size: {result.output_size}.")
    if result.instruction:
        lines.append(f"Instruction: {result.instruction}")
    if result.actual_prompt:
        lines.append(f"Prompt as rewritten: {result.actual_prompt}")
    if result.adjustments:
        lines.append("Inputs adjusted: " + "; ".join(result.adjustments))
    if result.requested_images is not None and result.status in OPEN_STATUSES:
        lines.append(f"Requested up to {result.requested_images} paid image(s).")
    for failure in result.image_failures:
        lines.append(f"One image failed: {failure.code}: {failure.message}")
    if result.error:
        rid = f" (request_id {result.error.request_id})" if result.error.request_id else ""
        said = "Images not saved:" if result.status == Status.SUCCEEDED else "Error"  # paid: not a failure
        lines.append(f"{said} {result.error.code}: {result.error.message}{rid}")
    if result.next_step:
        lines.append(result.next_step)
    return "\n".join(lines)
