"""The MCP tools: arguments in, ``WanService`` calls, results out. Nothing else happens here.

The paid tools' parameters are the arguments the core declares (``core.requests.declarations``: type, default,
bounds from ``specs`` and text), given to them by ``taking``; the others' come from their own type hints. A change
in a table changes the schema. Arguments are checked strictly before a tool runs (``StrictTool``):
an unknown name or a wrong value is refused in our words, naming the argument and the limit. Every expected
failure becomes a ``ToolError`` the model can read and act on.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from ..core.requests.declarations import (
    MAX_INPUT_IMAGES,
    MAX_WAIT,
    AlphaBackground,
    DetectArgs,
    DryRun,
    EditArgs,
    TaskId,
    Waiting,
    arguments,
)
from ..core.results.listing import task_list_text
from ..core.results.outcomes import (
    EditResult,
    InspectResult,
    ListedStatus,
    PaidResult,
    TaskList,
    TaskStarted,
    failed,
    summary_text,
)
from ..core.results.previews import Reader, previews
from ..dashscope import APIStatusError
from ..settings import Settings
from .appstate import AppState
from .boundary import StrictTool, capped_to, taking, tool_errors
from .ordered import in_order
from .resolvers import NO_ROOTS, CheckedDetect, CheckedEdit, Prepared, RootsForImages, cannot_elicit, uris
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


async def rehearsed(ctx: Context[AppState], prepared: Prepared, shape: type[BaseModel] = PaidResult) -> CallToolResult:
    """A paid tool's dry run: what the call would send, bill and produce, and what would stop it (a confirmation
    this client cannot be asked for among them). Free."""
    state = _state(ctx)
    with tool_errors():
        result = await state.service.dry_run(
            prepared.request, instruction=prepared.instruction, cannot_ask=cannot_elicit(ctx)
        )
    return await respond(result, state.settings, shape)


@taking(arguments(EditArgs, DryRun, Waiting))
async def edit_image(
    ctx: Context[AppState], *, checked: CheckedEdit, wait_seconds: float, **_arguments: Any
) -> Annotated[CallToolResult, PaidResult]:
    """Edit, fuse or generate images with a Wan model; results are saved locally.

    Several images in one call make one combined result; to edit photos separately, make one call per photo.
    Waits up to wait_seconds, then returns RUNNING with a task_id for check_task.
    """
    # The declared arguments reach the core through `checked` (resolvers.py): validated, and confirmed when they
    # must be; the body reads only wait_seconds of them.
    state = _state(ctx)
    if checked.prepared.dry_run:
        return await rehearsed(ctx, checked.prepared)
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


@taking(arguments(EditArgs, DryRun))
async def submit_task(
    ctx: Context[AppState], *, checked: CheckedEdit, **_arguments: Any
) -> Annotated[CallToolResult, TaskStarted]:
    """Start an image task; returns at once with its task_id. Takes edit_image's arguments (described there)
    but wait_seconds; check_task waits for it and saves the images."""
    # The declared arguments reach the core through `checked` (resolvers.py): validated, and confirmed when they
    # must be; the body reads only wait_seconds of them.
    state = _state(ctx)
    if checked.prepared.dry_run:
        return await rehearsed(ctx, checked.prepared, TaskStarted)
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
    """Look at a task; once SUCCEEDED, its images are downloaded once and their local paths returned (the
    same files on later calls). FAILED, CANCELED and UNKNOWN come with DashScope's code and message."""
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


@taking(arguments(DetectArgs, DryRun, Waiting))
async def detect_segment(
    ctx: Context[AppState], *, checked: CheckedDetect, wait_seconds: float, **_arguments: Any
) -> Annotated[CallToolResult, PaidResult]:
    """Detect objects (labelled boxes) or segment them in one image. Returns one new picture, billed as one
    image, with them drawn in, at the image's aspect ratio: no masks, no coordinates."""
    # The declared arguments reach the core through `checked` (resolvers.py): validated, and confirmed when they
    # must be.
    state = _state(ctx)
    call = checked.prepared
    if call.dry_run:
        return await rehearsed(ctx, call)
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
    alpha_background: AlphaBackground = "white",
) -> Annotated[CallToolResult, InspectResult]:
    """Free, sends nothing: each image's size, format, orientation and bytes, per model whether it is taken
    as is, adjusted or refused, and a preview with a pixel grid for bbox_list coordinates."""
    state = _state(ctx)
    with tool_errors():
        result, grids = await state.service.inspect(images, roots=uris(roots), alpha_background=alpha_background)
    lines: list[str] = []
    for info in result.images:
        if info.problem:
            lines.append(f"image {info.index}: {info.problem}")
        elif info.width is None:
            lines.append(f"image {info.index}: remote, not fetched here")
        else:
            lines.append(f"image {info.index}: {info.width}×{info.height} {info.format}, {info.bytes} bytes")
            if info.alpha_background:
                lines.append(f"  has transparency: flattened onto {info.alpha_background} (alpha_background)")
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
    """Tasks this server started, newest first: status, model, prompt excerpt, local image paths. Finds work
    from an earlier session; check_task takes any task_id listed."""
    with tool_errors():
        listed = await _state(ctx).service.list_tasks(status=status, page=page, page_size=page_size, tenant=caller())
    said = task_list_text(listed, status=None if status is None else status.value)
    return CallToolResult(content=[TextContent(type="text", text=said)], structured_content=structured(listed))


_CHECK = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
_INSPECT = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
_LIST = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
_CANCEL = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)


def build_tools(most_per_call: int | None = None) -> list[Tool]:
    """The tools; a paid tool's paid counts (n, max_images) capped at ``most_per_call`` (the server's
    WAN_MCP_MAX_IMAGES_PER_CALL; None: the models' own maxima)."""
    return [
        StrictTool.of(capped_to(edit_image, most_per_call), "Edit or generate images", EDIT_ANNOTATIONS),
        StrictTool.of(capped_to(submit_task, most_per_call, brief=True), "Start an image task", EDIT_ANNOTATIONS),
        StrictTool.of(check_task, "Check an image task", _CHECK),
        StrictTool.of(cancel_task, "Cancel a queued task", _CANCEL),
        StrictTool.of(capped_to(detect_segment, most_per_call), "Detect or segment objects", EDIT_ANNOTATIONS),
        StrictTool.of(list_tasks, "List image tasks", _LIST),
        StrictTool.of(inspect_image, "Inspect images before editing", _INSPECT),
    ]
