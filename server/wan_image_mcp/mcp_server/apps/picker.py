"""The box picker's tools: ``pick_boxes`` (the model opens the picker) and ``record_boxes`` (the page records
what the user drew). Only translation: the images and the checks are ``core.requests.picking``'s.

How boxes reach the model: ``pick_boxes`` inspects the images (as ``inspect_image`` does, without the grid), remembers
the pick (its id, model and the images' sizes) and returns them, with the previews for the page in the result's
``_meta``. The page draws the boxes in each image's own pixels and, on confirm, calls ``record_boxes`` (visible to
the app only), which checks them against that pick as ``edit_image`` will and answers with the ``bbox_list``; the
page puts that answer into the model's context (``ui/update-model-context``) and sends a one-line user message
(``ui/message``) saying to use it, so that the model's next ``edit_image`` passes it.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from mcp.server.apps import client_supports_apps
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ListRootsResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from ...core.errors import InvalidRequest
from ...core.requests.declarations import MAX_INPUT_IMAGES, Model
from ...core.requests.picking import Pick, boxes_text, check_picked, pick
from ...core.specs import DEFAULT_MODEL
from ..appstate import AppState
from ..boundary import StrictTool
from ..tools import RootsForImages, structured
from .extension import data_url

PICKER_KEY = "wan-image-mcp/picker"
NO_APPS = (
    "The box picker is a page that only clients showing MCP Apps can open, and this one did not negotiate them. "
    "Use inspect_image instead: its preview has a pixel grid in the coordinates bbox_list takes."
)
_NO_ROOTS = ListRootsResult(roots=[])


class PickedImageInfo(BaseModel):
    index: int
    source: str
    width: int = Field(description="as shown (EXIF orientation applied): bbox_list's space")
    height: int


class PickOpened(BaseModel):
    """What pick_boxes returns: the picker's id, its model and the images it shows."""

    pick_id: str
    model: str
    max_boxes_per_image: int
    images: list[PickedImageInfo]
    next_step: str


class BoxesRecorded(BaseModel):
    """What record_boxes returns: the boxes drawn, checked, as edit_image's bbox_list."""

    pick_id: str
    model: str
    images: list[str]
    bbox_list: list[list[list[int]]]


def _refused(exc: InvalidRequest) -> ToolError:
    return ToolError(f"{exc}. Fix it and call again.")


async def pick_boxes(
    ctx: Context[AppState],
    images: Annotated[
        list[str], Field(min_length=1, max_length=MAX_INPUT_IMAGES, description="Image references, as for edit_image.")
    ],
    model: Model = DEFAULT_MODEL,
    roots: RootsForImages = _NO_ROOTS,
) -> Annotated[CallToolResult, PickOpened]:
    """Let the user draw the boxes for bbox_list: opens a picker showing the images as they are sent, where the
    user draws up to the model's boxes per image and confirms. Their bbox_list then comes back as a message;
    wait for it rather than guessing boxes. Costs nothing."""
    if not client_supports_apps(ctx):
        raise ToolError(NO_APPS)
    state = ctx.request_context.lifespan_context
    result, previews = await state.service.inspect(images, roots=[str(r.uri) for r in roots.roots], grid=False)
    try:
        opened = pick(uuid.uuid4().hex[:16], model, result.images, previews)
    except InvalidRequest as exc:
        raise _refused(exc) from None
    state.picks.add(opened)
    return _opened(opened)


def _opened(opened: Pick) -> CallToolResult:
    shown = ", ".join(f"image {i.index} ({i.width}×{i.height})" for i in opened.images)
    next_step = (
        f"The picker is open with {shown}: the user draws up to {opened.max_boxes} boxes per image. When they "
        "confirm, their bbox_list reaches you as a message; pass it to edit_image with the same images in order."
    )
    data = PickOpened(
        pick_id=opened.pick_id,
        model=opened.model,
        max_boxes_per_image=opened.max_boxes,
        images=[PickedImageInfo(index=i.index, source=i.source, width=i.width, height=i.height) for i in opened.images],
        next_step=next_step,
    )
    return CallToolResult(
        content=[TextContent(type="text", text=next_step)],
        structured_content=structured(data),
        _meta={PICKER_KEY: {"previews": [data_url(i.preview) for i in opened.images]}},
    )


async def record_boxes(
    ctx: Context[AppState],
    pick_id: Annotated[str, Field(min_length=1, max_length=64, description="pick_boxes' pick_id.")],
    bbox_list: Annotated[
        list[list[list[int]]], Field(description="Per image, in order, its boxes [x1, y1, x2, y2]; [] for none.")
    ],
) -> Annotated[CallToolResult, BoxesRecorded]:
    """For the box picker page: record the boxes the user drew and answer with them as edit_image's bbox_list."""
    if not client_supports_apps(ctx):
        raise ToolError(NO_APPS)
    opened = ctx.request_context.lifespan_context.picks.get(pick_id)
    if opened is None:
        raise ToolError(f"pick_id: no open picker {pick_id!r} on this server (it restarted?); call pick_boxes again.")
    try:
        checked = check_picked(opened, bbox_list)
    except InvalidRequest as exc:
        raise _refused(exc) from None
    data = BoxesRecorded(
        pick_id=pick_id, model=opened.model, images=[i.source for i in opened.images], bbox_list=checked
    )
    return CallToolResult(
        content=[TextContent(type="text", text=boxes_text(opened, checked))], structured_content=structured(data)
    )


_PICK = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
_RECORD = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def picker_tools() -> list[StrictTool]:
    return [
        StrictTool.of(pick_boxes, "Let the user draw boxes", _PICK),
        StrictTool.of(record_boxes, "Record the boxes drawn", _RECORD),
    ]
