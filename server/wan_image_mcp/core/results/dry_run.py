"""What a dry run comes to: each input as it would be sent, what would stop the paid call, and the summary a model
reads. A dry run is a ``PaidResult`` (or ``TaskStarted``) with ``dry_run: true`` and the fields below set: one
output schema per tool serves both, with optional fields, because a client validates or types a tool's
``structuredContent`` against its one ``outputSchema``, and a root ``anyOf`` is what portable schemas and typed
clients handle worst."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from pydantic import BaseModel, Field, WithJsonSchema

if TYPE_CHECKING:
    from .outcomes import PaidResult, TaskStarted

Item = TypeVar("Item", bound=BaseModel)
Listed = Annotated[list[Item], WithJsonSchema({"items": {"type": "object"}, "type": "array"})]
"""A list of a result's objects (a dry run's inputs and stops, an answer's parts, missing images), typed here; in the
output schema only "a list of objects", whose fields docs/tools.md names: spelled out, each would cost three tools'
output schemas ~300 bytes of ``tools/list``, which every client reads."""
Detailed = Annotated[Item, WithJsonSchema({"type": "object"})]
"""One object of a result (an error), typed here; in the output schema only "an object", as ``Listed``."""

DRY_RUN_STATUS = "DRY_RUN"
"""The ``status`` of a dry run's result: no task exists."""
FREE = "Dry run: nothing was sent and nothing is billed."


class SentInput(BaseModel):
    """One input image as a paid call would send it."""

    index: int = Field(description="1-based, as image 1 / 圖1")
    source: str = Field(description="the reference as given (a data: URL only by its kind)")
    width: int | None = Field(default=None, description="as sent, after conforming; none for a URL (not fetched)")
    height: int | None = None
    format: str | None = None
    bytes: int | None = None
    sent_as: Literal["inline", "upload", "url"] = Field(
        description="inline: a data: URL in the request; upload: a temporary upload first; url: DashScope fetches it"
    )
    adjustments: list[str] = Field(default_factory=list[str])


class Stop(BaseModel):
    """Something that would stop the paid call: a limit that refuses it, or the user's confirmation it needs."""

    setting: str = Field(description="the setting that decides it, e.g. WAN_MCP_MAX_IMAGES_PER_CALL")
    effect: Literal["refused", "asks the user"]
    limit: int | None = None
    used: int | None = Field(default=None, description="paid images requested in the last 24 h (the daily limit)")
    message: str


def dry_run_text(result: PaidResult | TaskStarted) -> str:
    """A dry run in a few lines: that it is free, what the call would bill and produce, each input and the
    parameters as they would be sent, what was adjusted, and what would stop it."""
    lines = [FREE, f"A paid call would bill at most {result.paid_images} image(s) with {result.model}."]
    if result.instruction:
        lines.append(f"Instruction: {result.instruction}")
    if result.output_size:
        lines.append(f"Output size: {result.output_size}.")
    elif result.inputs:
        lines.append(
            f"Output size: the aspect ratio of image {result.inputs[-1].index}, a URL not read here; "
            "give size as W*H or a ratio to fix it."
        )
    for image in result.inputs or []:
        shown = f"{image.width}×{image.height} {image.format}, {image.bytes} bytes" if image.width else "not read"
        lines.append(f"- image {image.index}: {image.source} ({shown}; sent {image.sent_as})")
    lines.append("Parameters: " + json.dumps(result.parameters, ensure_ascii=False))
    if result.adjustments:
        lines.append("Inputs adjusted: " + "; ".join(result.adjustments))
    if result.would_stop:
        lines += [f"Would stop it ({stop.setting}): {stop.message}" for stop in result.would_stop]
    else:
        lines.append("Nothing would stop it: call again without dry_run to run it.")
    return "\n".join(lines)
