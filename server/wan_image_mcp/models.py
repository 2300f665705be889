"""What an edit, a check or a detection returns: one shape, the tools' output schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ImageFile(BaseModel):
    path: str = Field(description="absolute path of the saved image")
    url: str = Field(description="DashScope result URL (expires 24 h after generation)")
    width: int
    height: int
    bytes: int
    sha256: str


class ApiError(BaseModel):
    code: str
    message: str
    request_id: str | None = None


class EditResult(BaseModel):
    status: str = Field(description="PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED or UNKNOWN")
    task_id: str | None = None
    request_id: str | None = None
    model: str | None = None
    images: list[ImageFile] = Field(default_factory=list[ImageFile])
    texts: list[str] = Field(default_factory=list[str], description="text parts (wan2.6 interleave)")
    usage: dict[str, Any] | None = None
    actual_prompt: str | None = Field(default=None, description="prompt as rewritten by prompt_extend (wan2.5)")
    adjustments: list[str] = Field(default_factory=list[str], description="what was fixed in the inputs")
    instruction: str | None = Field(default=None, description="instruction sent (detect_segment)")
    requested_images: int | None = Field(default=None, description="most images this task can produce and bill")
    error: ApiError | None = None
    image_failures: list[ApiError] = Field(default_factory=list[ApiError], description="images that failed (wan2.5)")
    next_step: str | None = Field(default=None, description="what to do next when not finished")


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


ListedStatus = Literal[
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELED",
    "UNKNOWN",
    "SUBMITTING",
    "UNCERTAIN",
    "AMBIGUOUS",
    "REJECTED",
    "EXPIRED",
]
"""Every status ``list_tasks`` can show, so it can filter by each: DashScope's, and the journal's own for a
submission without its answer (SUBMITTING, UNCERTAIN, AMBIGUOUS, REJECTED) or images lost to expired URLs
(EXPIRED)."""


class TaskSummary(BaseModel):
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
    error: ApiError | None = None
    candidates: list[str] = Field(
        default_factory=list[str], description="AMBIGUOUS: task ids that could be this submission's (none adopted)"
    )


class TaskList(BaseModel):
    tasks: list[TaskSummary]
    total: int
    page: int
    page_size: int


class ImageInfo(BaseModel):
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


class InspectResult(BaseModel):
    images: list[ImageInfo]
