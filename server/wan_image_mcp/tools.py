"""The MCP tools: arguments in, ``WanService`` calls, results out. Nothing else happens here.

Schemas come from type hints whose enums and bounds come from ``specs`` and whose text from ``tool_schemas``,
so a change in a table changes the schema. Arguments are checked strictly before a tool runs (``StrictTool``):
an unknown name or a wrong value is refused in our words, naming the argument and the limit. Every expected
failure becomes a ``ToolError`` the model can read and act on.
"""

from __future__ import annotations

import base64
import inspect
import io
import json
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Annotated, Any, Literal, cast, get_type_hints

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, ListRoots, Resolve
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, ContentBlock, ImageContent, ListRootsResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from .appstate import AppState
from .arguments import problems as argument_problems
from .arguments import refusal
from .config import Settings
from .dashscope import APIConnectionError, APIStatusError, ContentModerationError, DashScopeError
from .errors import ConfigurationError, InvalidRequest, SpendLimitExceeded, SubmissionUncertain
from .outcomes import EditResult, InspectResult, ListedStatus, TaskList, TaskStarted
from .resources import image_link
from .service import EditArgs
from .specs import DEFAULT_MODEL, SEED_RANGE, ModelName
from .tool_schemas import MAX_IMAGES, MAX_INPUT_IMAGES, MAX_N, describe, portable
from .validation import EditParams

PREVIEW_SIDE = 512
PREVIEW_WORKERS = 2
MAX_WAIT = 300
_NO_ROOTS = ListRootsResult(roots=[])


# --- argument types: their schemas come from these hints, their text from tool_schemas ----------------


class PaletteColor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hex: str
    ratio: str


def _described(name: str, **limits: Any) -> Any:
    return Field(description=describe[name], **limits)


Prompt = Annotated[str, _described("prompt")]
Images = Annotated[list[str], _described("images", max_length=MAX_INPUT_IMAGES)]
Model = Annotated[ModelName, _described("model")]
Size = Annotated[str | None, _described("size")]
N = Annotated[int, _described("n", ge=1, le=MAX_N)]
NegativePrompt = Annotated[str | None, _described("negative_prompt")]
Seed = Annotated[int | None, _described("seed", ge=SEED_RANGE[0], le=SEED_RANGE[1])]
Watermark = Annotated[bool, _described("watermark")]
PromptExtend = Annotated[bool | None, _described("prompt_extend")]
ThinkingMode = Annotated[bool | None, _described("thinking_mode")]
BboxList = Annotated[list[list[list[int]]] | None, _described("bbox_list")]
Sequential = Annotated[bool | None, _described("enable_sequential")]
Palette = Annotated[list[PaletteColor] | None, _described("color_palette")]
Interleave = Annotated[bool | None, _described("enable_interleave")]
MaxImages = Annotated[int | None, _described("max_images", ge=MAX_IMAGES.lo, le=MAX_IMAGES.hi)]
Wait = Annotated[float, _described("wait_seconds", ge=0, le=MAX_WAIT)]
TaskId = Annotated[str, _described("task_id", min_length=1, max_length=128)]

EDIT_ANNOTATIONS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)


# --- results and errors -------------------------------------------------------------------------------


@contextmanager
def tool_errors() -> Generator[None]:
    """Expected failures -> ToolError with a message that says what to change; never a traceback or the key."""
    try:
        yield
    except InvalidRequest as exc:
        if len(exc.problems) > 1:
            raise ToolError(f"{exc}\nNothing was sent; fix these and call again.") from None
        raise ToolError(f"{exc}. Nothing was sent; fix it and call again.") from None
    except (SubmissionUncertain, SpendLimitExceeded) as exc:
        raise ToolError(str(exc)) from None
    except ConfigurationError as exc:
        raise ToolError(str(exc)) from None
    except ContentModerationError as exc:
        raise ToolError(f"{_api(exc)} The content filter refused the input: change the prompt or images.") from None
    except APIStatusError as exc:
        raise ToolError(f"{_api(exc)}{_hint(exc)}") from None
    except APIConnectionError as exc:
        if exc.request_sent:
            raise ToolError(
                f"DashScope's answer was lost ({exc}). The request may have been received and a task created (and "
                "billed). Do not resubmit blindly: check the task list in the Model Studio console first."
            ) from None
        raise ToolError(
            f"Cannot reach DashScope: {exc}. Nothing was sent. Check the network or the base URL."
        ) from None
    except DashScopeError as exc:
        raise ToolError(str(exc)) from None


def _api(exc: APIStatusError) -> str:
    rid = f", request_id {exc.request_id}" if exc.request_id else ""
    return f"DashScope error {exc.code}: {exc.message} (HTTP {exc.status}{rid})."


def _hint(exc: APIStatusError) -> str:
    if exc.code == "InvalidApiKey":
        return " Check DASHSCOPE_API_KEY and that it belongs to the region of the base URL (WAN_MCP_REGION)."
    if exc.status == 429:
        return " Rate or quota limit: wait a while and try again."
    if exc.status >= 500:
        return (
            " A server-side failure. Nothing was retried automatically, because a retry could be billed twice; "
            "if this was a submission, it is recorded as UNCERTAIN in list_tasks."
        )
    return ""


def _summary(result: EditResult) -> str:
    head = f"{result.status}: " + " ".join(part for part in (result.model, "task", result.task_id) if part)
    lines = [head]
    for image in result.images:
        lines.append(f"- {image.path} ({image.width}×{image.height}, {image.bytes} bytes)")
    lines += [f"- text: {text}" for text in result.texts]
    if result.instruction:
        lines.append(f"Instruction: {result.instruction}")
    if result.actual_prompt:
        lines.append(f"Prompt as rewritten: {result.actual_prompt}")
    if result.adjustments:
        lines.append("Inputs adjusted: " + "; ".join(result.adjustments))
    if result.requested_images is not None and result.status in ("PENDING", "RUNNING"):
        lines.append(f"Requested up to {result.requested_images} paid image(s).")
    for failure in result.image_failures:
        lines.append(f"One image failed: {failure.code}: {failure.message}")
    if result.error:
        rid = f" (request_id {result.error.request_id})" if result.error.request_id else ""
        lines.append(f"Error {result.error.code}: {result.error.message}{rid}")
    if result.next_step:
        lines.append(result.next_step)
    return "\n".join(lines)


def _preview(path: str) -> ImageContent | None:
    from .pillow import Image

    try:
        with Image.open(path) as image:
            # Box-reduced to within 1x of the preview, then resampled: twice as fast as the default 2x, and
            # indistinguishable at this size.
            image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), reducing_gap=1.0)
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=80)
    except OSError:
        return None
    return ImageContent(type="image", data=base64.b64encode(buffer.getvalue()).decode(), mime_type="image/jpeg")


async def _previews(paths: list[str]) -> list[ImageContent | None]:
    """One preview per image, two at a time: decoding a 2K PNG takes ~0.1 s, outside the GIL."""
    previews: list[ImageContent | None] = [None] * len(paths)
    limiter = anyio.CapacityLimiter(PREVIEW_WORKERS)

    async def one(index: int) -> None:
        previews[index] = await anyio.to_thread.run_sync(_preview, paths[index], limiter=limiter)

    async with anyio.create_task_group() as group:
        for index in range(len(paths)):
            group.start_soon(one, index)
    return previews


async def respond(result: EditResult, settings: Settings, shape: type[BaseModel] = EditResult) -> CallToolResult:
    """The summary, a link and a preview per image, and ``result`` as ``shape`` (the tool's output schema)."""
    content: list[ContentBlock] = [TextContent(type="text", text=_summary(result))]
    content.extend(image_link(image) for image in result.images)
    if settings.previews and result.images:
        previews = await _previews([image.path for image in result.images])
        content.extend(p for p in previews if p is not None)
    failed = result.error is not None
    data = structured(shape.model_validate(result.model_dump()))
    return CallToolResult(content=content, structured_content=data, is_error=failed)


def structured(result: BaseModel) -> dict[str, Any]:
    """A result as its output schema says: unset fields are left out, never ``null`` (see ``portable``)."""
    return result.model_dump(mode="json", exclude_none=True)


def _state(ctx: Context[AppState]) -> AppState:
    return ctx.request_context.lifespan_context


def _progress(ctx: Context[AppState]) -> Any:
    async def report(fraction: float, message: str) -> None:
        await ctx.report_progress(fraction, 1.0, message)

    return report


def _edit_args(prompt: str, images: list[str], model: str, **params: Any) -> EditArgs:
    palette = params.pop("color_palette", None)
    return EditArgs(
        prompt=prompt,
        images=images,
        model=model,
        params=EditParams(color_palette=[c.model_dump() for c in palette] if palette else None, **params),
    )


# --- the client's roots, asked for only when a call needs them ----------------------------------------------


def _roots(ctx: Context[AppState], refs: list[str]) -> ListRoots | ListRootsResult:
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None or not _state(ctx).service.needs_roots(refs):
        return ListRootsResult(roots=[])
    return ListRoots()


def _roots_for_images(ctx: Context[AppState], images: list[str]) -> ListRoots | ListRootsResult:
    return _roots(ctx, images)


def _roots_for_image(ctx: Context[AppState], image: str) -> ListRoots | ListRootsResult:
    return _roots(ctx, [image])


def _uris(roots: ListRootsResult) -> list[str]:
    return [str(root.uri) for root in roots.roots]


# --- the tools ------------------------------------------------------------------------------------------


async def edit_image(
    ctx: Context[AppState],
    prompt: Prompt,
    images: Images = [],  # noqa: B006 - pydantic copies defaults; an empty list is the documented default
    model: Model = DEFAULT_MODEL,
    size: Size = None,
    n: N = 1,
    negative_prompt: NegativePrompt = None,
    seed: Seed = None,
    watermark: Watermark = False,
    prompt_extend: PromptExtend = None,
    thinking_mode: ThinkingMode = None,
    bbox_list: BboxList = None,
    enable_sequential: Sequential = None,
    color_palette: Palette = None,
    enable_interleave: Interleave = None,
    max_images: MaxImages = None,
    wait_seconds: Wait = 50,
    roots: Annotated[ListRootsResult, Resolve(_roots_for_images)] = _NO_ROOTS,
) -> Annotated[CallToolResult, EditResult]:
    """Edit, fuse or generate images with a Wan model and save them locally.

    Refer to the inputs as image 1, image 2 (圖1, 圖2) in the prompt, in the order of `images`. Waits up to
    wait_seconds; if the task is not done by then, returns status RUNNING with a task_id for check_task.
    """
    arguments = {k: v for k, v in locals().items() if k not in ("ctx", "wait_seconds", "roots")}  # the edit arguments
    state = _state(ctx)
    with tool_errors():
        args = _edit_args(**arguments)
        result = await state.service.edit(args, wait_seconds=wait_seconds, progress=_progress(ctx), roots=_uris(roots))
    return await respond(result, state.settings)


async def submit_task(ctx: Context[AppState], **arguments: Any) -> Annotated[CallToolResult, TaskStarted]:
    """Start an image task and return at once with its task_id. Takes edit_image's arguments (as described
    there) except wait_seconds. Use check_task to wait for it and get the images.
    """
    state = _state(ctx)
    roots: ListRootsResult = arguments.pop("roots", _NO_ROOTS)
    with tool_errors():
        result = await state.service.submit(_edit_args(**arguments), roots=_uris(roots))
    return await respond(result, state.settings, TaskStarted)


# submit_task takes exactly edit_image's arguments but wait_seconds: one parameter list, not two. mcp reads a
# tool's parameters from its signature and its resolvers from its annotations, so both are derived.
_edit_signature = inspect.signature(edit_image, eval_str=True)
_started = Annotated[CallToolResult, TaskStarted]
setattr(  # noqa: B010 - inspect reads __signature__; pyright does not know the attribute
    submit_task,
    "__signature__",
    _edit_signature.replace(
        parameters=[p for n, p in _edit_signature.parameters.items() if n != "wait_seconds"],
        return_annotation=_started,
    ),
)
submit_task.__annotations__ = {
    name: hint for name, hint in get_type_hints(edit_image, include_extras=True).items() if name != "wait_seconds"
} | {"return": _started}


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
        result = await state.service.check(task_id, wait_seconds=wait_seconds, progress=_progress(ctx))
    return await respond(result, state.settings)


async def cancel_task(ctx: Context[AppState], task_id: TaskId) -> str:
    """Cancel a task that is still PENDING (queued). A task already RUNNING cannot be cancelled."""
    state = _state(ctx)
    with tool_errors():
        try:
            request_id = await state.service.cancel(task_id)
        except APIStatusError as exc:
            if exc.code == "UnsupportedOperation":
                raise ToolError(
                    f"Task {task_id} cannot be cancelled: only PENDING tasks can, and this one has started or "
                    f"finished (DashScope {exc.code}: {exc.message}, request_id {exc.request_id}). "
                    "Use check_task to see its status."
                ) from None
            raise
    return f"Task {task_id} cancelled (request_id {request_id}). It will not be billed."


async def detect_segment(
    ctx: Context[AppState],
    image: Annotated[str, Field(description="The image: a local path, file://, http(s):// or data: URL.")],
    targets: Annotated[
        list[str],
        Field(
            min_length=1,
            max_length=20,
            description="What to find, e.g. ['laptop', 'clock'] or ['玻璃杯'].",
        ),
    ],
    mode: Annotated[
        Literal["detect", "segment"],
        Field(description="detect: labelled boxes; segment: segmentation."),
    ] = "detect",
    labels: Annotated[
        list[str] | None,
        Field(description="Text for each box, one per target; default the target names."),
    ] = None,
    model: Model = DEFAULT_MODEL,
    wait_seconds: Wait = 50,
    roots: Annotated[ListRootsResult, Resolve(_roots_for_image)] = _NO_ROOTS,
) -> Annotated[CallToolResult, EditResult]:
    """Detect objects (labelled boxes) or segment them in an image; returns the result image and the instruction.

    The instruction is written in the language of the targets, the way Wan's own examples are.
    """
    state = _state(ctx)
    with tool_errors():
        result = await state.service.detect_segment(
            image,
            targets,
            mode=mode,
            labels=labels,
            model=model,
            wait_seconds=wait_seconds,
            progress=_progress(ctx),
            roots=_uris(roots),
        )
    return await respond(result, state.settings)


async def inspect_image(
    ctx: Context[AppState],
    images: Annotated[
        list[str], Field(min_length=1, max_length=MAX_INPUT_IMAGES, description="Image references, as for edit_image.")
    ],
    roots: Annotated[ListRootsResult, Resolve(_roots_for_images)] = _NO_ROOTS,
) -> Annotated[CallToolResult, InspectResult]:
    """Before editing: each image's size, format, EXIF orientation and bytes, which models take it as it is
    (and what would be adjusted or refused for the others), and a preview with a pixel grid for choosing
    bbox_list coordinates in the image's own pixels. Costs nothing: nothing is sent to DashScope."""
    state = _state(ctx)
    result, previews = await state.service.inspect(images, roots=_uris(roots))
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
    content += [
        ImageContent(type="image", data=base64.b64encode(p).decode(), mime_type="image/jpeg") for p in previews if p
    ]
    return CallToolResult(content=content, structured_content=structured(result))


async def list_tasks(
    ctx: Context[AppState],
    status: Annotated[
        ListedStatus | None,
        Field(
            description="Only tasks in this status (SUBMITTING, UNCERTAIN: answer lost, being looked for; AMBIGUOUS: "
            "several tasks could be it, see candidates; EXPIRED: URLs expired unsaved)."
        ),
    ] = None,
    page: Annotated[int, Field(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Field(ge=1, le=50)] = 20,
) -> Annotated[CallToolResult, TaskList]:
    """Tasks this server started, newest first: status, model, prompt excerpt and local image paths.

    Use it to find work from an earlier session; check_task takes any task_id listed here.
    """
    with tool_errors():
        listed = await _state(ctx).service.list_tasks(status=status, page=page, page_size=page_size)
    data = structured(listed)
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(data, ensure_ascii=False))], structured_content=data
    )


class StrictTool(Tool):
    """A tool whose arguments are checked before anything runs: an unknown name is refused with the closest
    valid one, a wrong value in our words (``arguments``), and its schemas are the portable subset."""

    @classmethod
    def of(
        cls, fn: Callable[..., Any], title: str, annotations: ToolAnnotations, *, described: bool = True
    ) -> StrictTool:
        """``fn`` as a tool. ``described=False`` leaves the argument descriptions out, for a tool whose
        description points to another tool's arguments (submit_task: edit_image's, without wait_seconds)."""
        description = inspect.cleandoc(fn.__doc__ or "")
        tool = cast(StrictTool, cls.from_function(fn, title=title, description=description, annotations=annotations))
        tool.parameters = portable(tool.parameters, closed=True, described=described)
        metadata = tool.fn_metadata
        if metadata.output_schema is not None:  # read live by Tool.output_schema on first use
            metadata.output_schema = portable(metadata.output_schema, described=False)
        return tool

    async def run(self, arguments: dict[str, Any], context: Context[Any, Any], convert_result: bool = False) -> Any:
        fields = self.fn_metadata.arg_model.model_fields
        known = [field.alias or name for name, field in fields.items()]
        try:
            self.fn_metadata.validate_arguments(arguments)
            errors: list[ErrorDetails] = []
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        except Exception as exc:  # a crash in validation: its text stays on the server, as the SDK does
            raise UnexpectedToolError(f"Error executing tool {self.name}") from exc
        found = argument_problems(arguments, known, errors)
        if found:
            raise ToolError(refusal(found))
        try:
            return await super().run(arguments, context, convert_result=convert_result)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            # The SDK prefixes "Error executing tool NAME: "; the model reads our own sentence.
            if isinstance(exc.__cause__, ToolError) and not isinstance(exc.__cause__, UnexpectedToolError):
                raise exc.__cause__ from None
            raise


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
