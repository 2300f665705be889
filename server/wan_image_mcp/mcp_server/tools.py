"""The MCP tools: arguments in, ``WanService`` calls, results out. Nothing else happens here.

The paid tools' parameters are the arguments the core declares (``core.requests.declarations``: type, default,
bounds from ``specs`` and text), given to them by ``taking``; the others' come from their own type hints. A change
in a table changes the schema. Arguments are checked strictly before a tool runs (``StrictTool``):
an unknown name or a wrong value is refused in our words, naming the argument and the limit. Every expected
failure becomes a ``ToolError`` the model can read and act on.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from ..core.requests.declarations import MAX_INPUT_IMAGES, MAX_WAIT, DetectArgs, EditArgs, TaskId, Waiting, arguments
from ..core.results.outcomes import (
    EditResult,
    InspectResult,
    ListedStatus,
    TaskList,
    TaskStarted,
    failed,
    summary_text,
)
from ..core.results.previews import Reader, previews
from ..dashscope import APIStatusError
from ..settings import Settings
from .appstate import AppState
from .boundary import StrictTool, taking, tool_errors
from .ordered import in_order
from .resolvers import NO_ROOTS, CheckedDetect, CheckedEdit, RootsForImages, uris
from .resources import image_link
from .transports.oauth import caller

EDIT_ANNOTATIONS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)


# --- results -----------------------------------------------------------------------------------------------


async def respond(
    result: EditResult, settings: Settings, shape: type[BaseModel] = EditResult, *, read: Reader | None = None
) -> CallToolResult:
    """The summary, a link and a preview per image (read by ``read`` when given: ``ResultStore.reader``), and
    ``result`` as ``shape`` (the tool's output schema)."""
    content: list[ContentBlock] = [TextContent(type="text", text=summary_text(result))]
    made = await previews([image.path for image in result.images], read) if settings.previews and result.images else []
    if result.parts:  # an interleaved answer: texts and images in DashScope's order
        content.extend(in_order(result, dict(zip((image.path for image in result.images), made, strict=False))))
    else:
        content.extend(image_link(image) for image in result.images)
        content.extend(_jpeg(data) for data in made if data is not None)
    shaped = result if isinstance(result, shape) else shape.model_validate(result.model_dump())  # TaskStarted
    data = structured(shaped)
    return CallToolResult(content=content, structured_content=data, is_error=failed(result))


def _jpeg(data: bytes) -> ImageContent:
    return ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type="image/jpeg")


def structured(result: BaseModel) -> dict[str, Any]:
    """A result as its output schema says: unset fields are left out, never ``null`` (see ``portable``)."""
    return result.model_dump(mode="json", exclude_none=True)


def _state(ctx: Context[AppState]) -> AppState:
    return ctx.request_context.lifespan_context


def _progress(ctx: Context[AppState]) -> Any:
    async def report(fraction: float, message: str) -> None:
        await ctx.report_progress(fraction, 1.0, message)

    return report


# --- the tools ------------------------------------------------------------------------------------------


@taking(arguments(EditArgs, Waiting))
async def edit_image(
    ctx: Context[AppState], *, checked: CheckedEdit, wait_seconds: float, **_arguments: Any
) -> Annotated[CallToolResult, EditResult]:
    """Edit, fuse or generate images with a Wan model and save them locally.

    Refer to the inputs as image 1, image 2 (圖1, 圖2) in the prompt, in the order of `images`. Waits up to
    wait_seconds; if the task is not done by then, returns status RUNNING with a task_id for check_task.
    """
    # The declared arguments reach the core through `checked` (resolvers.py): validated, and confirmed when they
    # must be; the body reads only wait_seconds of them.
    state = _state(ctx)
    with tool_errors():
        result = await state.service.edit(
            checked.prepared.args,
            wait_seconds=wait_seconds,
            progress=_progress(ctx),
            prepared=checked.prepared.request,
            confirm=checked.confirm,
            tenant=caller(),
        )
    return await respond(result, state.settings, read=state.service.store.reader)


@taking(arguments(EditArgs))
async def submit_task(
    ctx: Context[AppState], *, checked: CheckedEdit, **_arguments: Any
) -> Annotated[CallToolResult, TaskStarted]:
    """Start an image task and return at once with its task_id. Takes edit_image's arguments (as described
    there) except wait_seconds. Use check_task to wait for it and get the images.
    """
    # The declared arguments reach the core through `checked` (resolvers.py): validated, and confirmed when they
    # must be; the body reads only wait_seconds of them.
    state = _state(ctx)
    with tool_errors():
        result = await state.service.submit(
            checked.prepared.args, prepared=checked.prepared.request, confirm=checked.confirm, tenant=caller()
        )
    return await respond(result, state.settings, TaskStarted, read=state.service.store.reader)


async def check_task(
    ctx: Context[AppState],
    task_id: TaskId,
    wait_seconds: Annotated[
        float,
        Field(ge=0, le=MAX_WAIT, description="Seconds to wait for it to finish; 0 = one look."),
    ] = 0,
) -> Annotated[CallToolResult, EditResult]:
    """Look at a task; when it has succeeded, its images are downloaded once and their local paths returned.

    Calling it again returns the same files. FAILED, CANCELED and UNKNOWN come back with DashScope's code and message.
    """
    state = _state(ctx)
    with tool_errors():
        result = await state.service.check(task_id, wait_seconds=wait_seconds, progress=_progress(ctx), tenant=caller())
    return await respond(result, state.settings, read=state.service.store.reader)


async def cancel_task(ctx: Context[AppState], task_id: TaskId) -> str:
    """Cancel a task that is still PENDING (queued). A task already RUNNING cannot be cancelled."""
    state = _state(ctx)
    with tool_errors():
        try:
            request_id = await state.service.cancel(task_id, tenant=caller())
        except APIStatusError as exc:
            if exc.code == "UnsupportedOperation":
                raise ToolError(
                    f"Task {task_id} cannot be cancelled: only PENDING tasks can, and this one has started or "
                    f"finished (DashScope {exc.code}: {exc.message}, request_id {exc.request_id}). "
                    "Use check_task to see its status."
                ) from None
            raise
    return f"Task {task_id} cancelled (request_id {request_id}). It will not be billed."


@taking(arguments(DetectArgs, Waiting))
async def detect_segment(
    ctx: Context[AppState], *, checked: CheckedDetect, wait_seconds: float, **_arguments: Any
) -> Annotated[CallToolResult, EditResult]:
    """Detect objects (labelled boxes) or segment them in an image; returns the result image and the instruction.

    The instruction is written in the language of the targets, the way Wan's own examples are.
    """
    # The declared arguments reach the core through `checked` (resolvers.py): validated, and confirmed when they
    # must be.
    state = _state(ctx)
    call = checked.prepared
    with tool_errors():
        result = await state.service.edit(
            call.args,
            wait_seconds=wait_seconds,
            progress=_progress(ctx),
            instruction=call.instruction,
            prepared=call.request,
            confirm=checked.confirm,
            tenant=caller(),
        )
    return await respond(result, state.settings, read=state.service.store.reader)


async def inspect_image(
    ctx: Context[AppState],
    images: Annotated[
        list[str], Field(min_length=1, max_length=MAX_INPUT_IMAGES, description="Image references, as for edit_image.")
    ],
    roots: RootsForImages = NO_ROOTS,
) -> Annotated[CallToolResult, InspectResult]:
    """Before editing: each image's size, format, EXIF orientation and bytes, which models take it as it is
    (and what would be adjusted or refused for the others), and a preview with a pixel grid for choosing
    bbox_list coordinates in the image's own pixels. Costs nothing: nothing is sent to DashScope."""
    state = _state(ctx)
    result, grids = await state.service.inspect(images, roots=uris(roots))
    lines: list[str] = []
    for info in result.images:
        if info.problem:
            lines.append(f"image {info.index}: {info.problem}")
        elif info.width is None:
            lines.append(f"image {info.index}: remote, not fetched here")
        else:
            lines.append(f"image {info.index}: {info.width}×{info.height} {info.format}, {info.bytes} bytes")
            lines += [f"  {model}: {verdict}" for model, verdict in info.models.items()]
    content: list[ContentBlock] = [TextContent(type="text", text="\n".join(lines))]
    content += [_jpeg(grid) for grid in grids if grid]
    return CallToolResult(content=content, structured_content=structured(result))


async def list_tasks(
    ctx: Context[AppState],
    status: Annotated[
        ListedStatus | None,
        Field(
            description="Only this status (SUBMITTING/UNCERTAIN: answer lost, being looked for; AMBIGUOUS: see "
            "candidates; EXPIRED: URLs expired unsaved)."
        ),
    ] = None,
    page: Annotated[int, Field(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Field(ge=1, le=50)] = 20,
) -> Annotated[CallToolResult, TaskList]:
    """Tasks this server started, newest first: status, model, prompt excerpt and local image paths.

    Use it to find work from an earlier session; check_task takes any task_id listed here.
    """
    with tool_errors():
        listed = await _state(ctx).service.list_tasks(status=status, page=page, page_size=page_size, tenant=caller())
    data = structured(listed)
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(data, ensure_ascii=False))], structured_content=data
    )


_CHECK = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
_INSPECT = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
_LIST = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
_CANCEL = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)


def build_tools() -> list[Tool]:
    return [
        StrictTool.of(edit_image, "Edit or generate images", EDIT_ANNOTATIONS),
        StrictTool.of(submit_task, "Start an image task", EDIT_ANNOTATIONS, described=False),
        StrictTool.of(check_task, "Check an image task", _CHECK),
        StrictTool.of(cancel_task, "Cancel a queued task", _CANCEL),
        StrictTool.of(detect_segment, "Detect or segment objects", EDIT_ANNOTATIONS),
        StrictTool.of(list_tasks, "List image tasks", _LIST),
        StrictTool.of(inspect_image, "Inspect images before editing", _INSPECT),
    ]
