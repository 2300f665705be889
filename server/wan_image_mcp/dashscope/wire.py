"""The exact JSON shapes of the DashScope image API: requests (``ImageRequest``) and their bodies out, typed
results in; and what a task id may be (docs/dashscope-api.md#request-bodies, #task-life-cycle)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

from pydantic import BaseModel, ConfigDict

from .endpoints import Endpoints, Protocol
from .errors import InvalidTaskId

JSON = Any
"""A decoded JSON value (pydantic and ``json`` give ``Any``; the parsers below check what they read)."""


class TaskStatus(StrEnum):
    """A task's ``task_status`` as DashScope reports it; a status this client does not know reads as UNKNOWN."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"

    @property
    def terminal(self) -> bool:
        """Whether the task has ended (anything but PENDING and RUNNING): it will not change again."""
        return self not in (TaskStatus.PENDING, TaskStatus.RUNNING)


# --- requests -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRequest:
    """One image request as DashScope takes it: what ``build_body`` writes and the client sends. Built from a
    validated request (``validation.PreparedRequest.to_wire``); nothing here is checked again."""

    model: str
    protocol: Protocol
    """Where prompt, images and ``negative_prompt`` go in the body."""
    endpoints: Endpoints
    """The model's create-task path and its synchronous path (None when it has none)."""
    prompt: str
    images: tuple[str, ...] = ()
    """Each input image as sent, in order: its ``http(s)://`` or ``oss://`` URL, or a base64 ``data:`` URL."""
    parameters: Mapping[str, JSON] = field(default_factory=dict[str, JSON])
    """Wire ``parameters`` (``negative_prompt`` excluded: its place depends on the protocol)."""
    negative_prompt: str | None = None
    """Sent in ``parameters`` (messages protocol) or in ``input`` (prompt protocol); None: not sent."""
    interleave: bool = False
    """Text and images interleaved in the answer: only a task serves it (synchronously it needs streaming)."""

    @property
    def oss_resolve(self) -> bool:
        """Whether an image is an ``oss://`` temporary upload, which needs ``X-DashScope-OssResourceResolve``."""
        return any(image.startswith("oss://") for image in self.images)


def build_body(request: ImageRequest) -> dict[str, JSON]:
    """The JSON body for ``request`` in its model's protocol."""
    parameters = dict(request.parameters)
    if request.protocol is Protocol.MESSAGES:
        if request.negative_prompt is not None:
            parameters["negative_prompt"] = request.negative_prompt
        content: list[dict[str, str]] = [{"image": image} for image in request.images]
        content.append({"text": request.prompt})
        payload: dict[str, JSON] = {"messages": [{"role": "user", "content": content}]}
    else:
        payload = {"prompt": request.prompt, "images": list(request.images)}
        if request.negative_prompt is not None:
            payload["negative_prompt"] = request.negative_prompt
    return {"model": request.model, "input": payload, "parameters": parameters}


TASK_ID_MAX = 128
"""Longest task id accepted (DashScope's are 36-character UUIDs)."""
_TASK_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{TASK_ID_MAX - 1}}}")


def check_task_id(task_id: str) -> str:
    """``task_id`` if it can be a DashScope task id: one URL path segment that needs no quoting (DashScope's are
    UUIDs), never ``.``, ``..``, a slash, a query, a fragment, whitespace or a control character. Checked before
    any request and any journal row; anything else raises InvalidTaskId saying the rule."""
    if _TASK_ID.fullmatch(task_id):
        return task_id
    shown = repr(task_id) if len(task_id) <= 60 else f"{task_id[:60]!r}… ({len(task_id)} characters)"
    raise InvalidTaskId(
        f"{shown} is not a task id: it must be 1-{TASK_ID_MAX} letters, digits, '-', '_' or '.', starting "
        "with a letter or digit, as edit_image, submit_task and list_tasks give it"
    )


# --- responses ------------------------------------------------------------------------------------


# The response models below read DashScope's answers leniently: every field is optional and fields they do not
# name are ignored, so a new field in an answer never breaks a parse; ``parse_result`` decides what is missing.


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentItem(_Model):
    """One item of a choice's message (wan2.7/2.6): an ``image`` URL or a piece of ``text``."""

    type: str | None = None
    image: str | None = None
    text: str | None = None


class Message(_Model):
    """A choice's message: its ``content`` items in order."""

    role: str | None = None
    content: list[ContentItem] | None = None


class Choice(_Model):
    """One choice of ``output.choices`` (wan2.7/2.6); several images come as several choices or content items."""

    finish_reason: str | None = None
    message: Message | None = None


class ResultItem(_Model):
    """One entry of ``output.results`` (wan2.5): an image ``url`` with the prompt as given and as rewritten, or
    the ``code`` and ``message`` of an image that failed."""

    url: str | None = None
    orig_prompt: str | None = None
    actual_prompt: str | None = None
    code: str | None = None
    message: str | None = None


class Output(_Model):
    """An envelope's ``output``: the task's id and status, its results in either shape, its error, its times (as
    DashScope writes them, in its own zone)."""

    task_id: str | None = None
    task_status: str | None = None
    choices: list[Choice] | None = None
    results: list[ResultItem] | None = None
    code: str | None = None
    message: str | None = None
    submit_time: str | None = None
    end_time: str | None = None


class Envelope(_Model):
    """Every DashScope answer: ``request_id``, and ``output`` and ``usage`` on success or ``code`` and
    ``message`` on an error."""

    request_id: str | None = None
    output: Output | None = None
    usage: dict[str, JSON] | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class ImageFailure:
    """One image of a wan2.5 task that failed while others succeeded."""

    code: str
    message: str


@dataclass(frozen=True)
class TaskResult:
    """A task (or a sync call) as the API last described it: ``image_urls`` (and wan2.6 interleave's ``texts``)
    in order, per-image ``failures``, ``usage``, the ``code`` and ``message`` of a task that ended badly, and
    ``submit_time``/``end_time`` as DashScope wrote them."""

    status: TaskStatus
    task_id: str | None = None
    request_id: str | None = None
    image_urls: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    text_places: tuple[int, ...] = ()
    """Where each of ``texts`` stood among the images: how many images came before it in the answer's order
    (wan2.6 interleave answers text, image, text, image…)."""
    failures: tuple[ImageFailure, ...] = ()
    usage: Mapping[str, JSON] | None = None
    actual_prompt: str | None = None
    orig_prompt: str | None = None
    """The prompt as the task was given it (wan2.5's ``results[].orig_prompt``; None for the other models)."""
    code: str | None = None
    message: str | None = None
    submit_time: str | None = None
    end_time: str | None = None


def parse_result(envelope: Envelope, *, default_status: TaskStatus = TaskStatus.SUCCEEDED) -> TaskResult:
    """Read either result shape: ``choices[].message.content[]`` (wan2.7/2.6) or ``results[]`` (wan2.5).

    Several images may come as several choices or as several content items of one choice; both are read.
    ``default_status`` is the status of an answer without ``task_status`` (a synchronous call's); a status
    this client does not know is UNKNOWN. Raises nothing: what is missing is left empty.
    """
    output = envelope.output or Output()
    try:
        status = TaskStatus(output.task_status) if output.task_status else default_status
    except ValueError:
        status = TaskStatus.UNKNOWN
    urls: list[str] = []
    texts: list[str] = []
    places: list[int] = []
    failures: list[ImageFailure] = []
    actual_prompt: str | None = None
    orig_prompt: str | None = None
    for choice in output.choices or ():
        for item in (choice.message.content if choice.message else None) or ():
            if item.image and item.image not in urls:
                urls.append(item.image)
            elif item.text:
                texts.append(item.text)
                places.append(len(urls))
    for result in output.results or ():
        orig_prompt = orig_prompt or result.orig_prompt
        if result.url:
            urls.append(result.url)
            actual_prompt = actual_prompt or result.actual_prompt
        elif result.code or result.message:
            failures.append(ImageFailure(code=result.code or "Unknown", message=result.message or ""))
    return TaskResult(
        status=status,
        task_id=output.task_id,
        request_id=envelope.request_id,
        image_urls=tuple(urls),
        texts=tuple(texts),
        text_places=tuple(places),
        failures=tuple(failures),
        usage=envelope.usage,
        actual_prompt=actual_prompt,
        orig_prompt=orig_prompt,
        code=output.code,
        message=output.message,
        submit_time=output.submit_time,
        end_time=output.end_time,
    )


# --- the task list --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedTask:
    """One entry of ``GET /tasks``. ``submit_time`` is in the service's own zone, which it does not name."""

    task_id: str
    status: TaskStatus | None
    """None for a status this client does not know (e.g. SUSPENDED)."""
    model: str | None = None
    submit_time: str | None = None


@dataclass(frozen=True)
class TaskPage:
    """One page of ``GET /tasks``: ``total`` tasks in all, page ``page_no`` (from 1) of ``page_size``."""

    total: int
    page_no: int
    page_size: int
    tasks: tuple[ListedTask, ...]


def parse_task_page(data: Mapping[str, JSON]) -> TaskPage:
    """The list answer, flat ``{total, page_no, page_size, tasks}`` as the SDK's ``JobList`` reads it (an
    ``output``-wrapped variant is read too, as the SDK does). Entries without a task id are skipped."""
    output = data.get("output")
    flat: dict[str, JSON] = {**cast(dict[str, JSON], output), **data} if isinstance(output, dict) else dict(data)
    raw = flat.get("tasks")
    tasks: list[ListedTask] = []
    for item in cast(list[JSON], raw) if isinstance(raw, list) else []:
        entry = cast(dict[str, JSON], item) if isinstance(item, dict) else {}
        task_id = entry.get("task_id")
        if not isinstance(task_id, str):
            continue
        status, model, submitted = entry.get("task_status"), entry.get("model_name"), entry.get("submit_time")
        tasks.append(
            ListedTask(
                task_id=task_id,
                status=TaskStatus(status) if status in TaskStatus.__members__ else None,
                model=model if isinstance(model, str) else None,
                submit_time=submitted if isinstance(submitted, str) else None,
            )
        )

    def number(name: str, default: int) -> int:
        value = flat.get(name)
        return value if isinstance(value, int) else default

    return TaskPage(number("total", len(tasks)), number("page_no", 1), number("page_size", 10), tuple(tasks))
