"""MCP Apps (``io.modelcontextprotocol/ui``): the result viewer and the box picker, for clients that render them.

* ``WanApps`` is the SDK's ``Apps`` extension with our two ``ui://`` pages, passed to ``MCPServer(extensions=…)``:
  it advertises the extension and serves the pages as ``text/html;profile=mcp-app``. Its ``tools/call``
  interceptor adds, for a client that negotiated Apps only, the viewer's data (``VIEW_KEY`` in the result's
  ``_meta``: prompt, model, inputs and outputs with data-URL thumbnails) to the results of the ``VIEWED`` tools.
* ``bind_pages`` stamps ``_meta.ui.resourceUri`` on our own ``StrictTool``s (the viewed ones and the picker's).
* ``apps_listing`` is middleware: a client that did not negotiate Apps lists exactly what it listed before there
  were pages (no picker tools, no ``_meta.ui``, no ``ui://`` resources), so its results and budget are unchanged.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio.to_thread
from mcp.server.apps import APP_MIME_TYPE, Apps, client_supports_apps
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.resources import FunctionResource
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolRequestParams, CallToolResult

from ...core.results.outcomes import EditResult
from ..appstate import AppState
from ..transports.oauth import caller
from .pages import page

if TYPE_CHECKING:
    from ...core.tasks.viewing import TaskView

PICKER_URI = "ui://wan-image-mcp/picker.html"
VIEWER_URI = "ui://wan-image-mcp/viewer.html"
VIEW_KEY = "wan-image-mcp/view"
VIEWED = frozenset({"edit_image", "check_task", "detect_segment"})
PICKER_TOOLS = frozenset({"pick_boxes", "record_boxes"})
"""Listed only to clients that negotiated Apps; record_boxes is for the picker page only (visibility app)."""
APP_ONLY = frozenset({"record_boxes"})


def data_url(jpeg: bytes | None) -> str | None:
    return f"data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}" if jpeg else None


class WanApps(Apps):
    """The Apps extension with the viewer and the picker, adding the viewer's data to viewed results."""

    def __init__(self) -> None:
        super().__init__()
        self.add_page(
            VIEWER_URI,
            "viewer",
            "Wan result viewer",
            "Shows an edit's inputs and results, with 'use as input of next edit'.",
        )
        self.add_page(
            PICKER_URI,
            "picker",
            "Wan box picker",
            "Draw up to the model's boxes per image on the images as they are sent.",
        )

    def add_page(self, uri: str, name: str, title: str, description: str) -> None:
        """``ui/<name>.html`` as an Apps resource, as ``add_html_resource`` serves one (bordered), but put together
        (the SDK inlined) when a client first reads it: a server that only lists its tools never builds a page."""
        meta = {"ui": {"prefersBorder": True}}
        read = functools.partial(page, name)
        self.add_resource(
            FunctionResource(
                uri=uri, name=name, title=title, description=description, mime_type=APP_MIME_TYPE, meta=meta, fn=read
            )
        )

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        from ...core.tasks.viewing import task_view  # thumbnails, Pillow: call time, off the start path

        result = await call_next(ctx)
        if params.name not in VIEWED or not isinstance(result, CallToolResult) or not client_supports_apps(ctx):
            return result
        if result.structured_content is None:
            return result  # a refusal (ToolError): the page shows its text
        state: AppState = ctx.lifespan_context
        edit = EditResult.model_validate(result.structured_content)
        journal = state.service.journal
        # With OAuth, only the caller's own row: another's task (answered as unknown) shows nothing of it here either.
        row = await journal.get(edit.task_id, tenant=caller()) if edit.task_id else None
        view = await anyio.to_thread.run_sync(task_view, edit, row, state.service.store.reader)
        return result.model_copy(update={"meta": {**(result.meta or {}), VIEW_KEY: view_json(view)}})


def view_json(view: TaskView) -> dict[str, Any]:
    """What the viewer page reads: the view with its thumbnails as data URLs and each output's resource URI."""
    return {
        "status": view.status,
        "model": view.model,
        "task_id": view.task_id,
        "prompt": view.prompt,
        "instruction": view.instruction,
        "inputs": [{"index": i.index, "source": i.source, "thumb": data_url(i.thumb)} for i in view.inputs],
        "outputs": [
            {
                "name": Path(o.path).name,
                "path": o.path,
                "uri": f"wan://images/{Path(o.path).name}",  # as resources.image_uri names it
                "width": o.width,
                "height": o.height,
                "thumb": data_url(o.thumb),
                "text": o.text,
            }
            for o in view.outputs
        ],
        "texts": list(view.texts),
    }


def bind_pages(tools: list[Tool]) -> list[Tool]:
    """``tools`` with ``_meta.ui`` stamped: the viewed ones show the viewer, the picker's the picker."""
    for tool in tools:
        if tool.name in VIEWED:
            ui: dict[str, Any] = {"resourceUri": VIEWER_URI}
        elif tool.name in PICKER_TOOLS:
            ui = {"resourceUri": PICKER_URI, "visibility": ["app"] if tool.name in APP_ONLY else ["model", "app"]}
        else:
            continue
        tool.meta = {**(tool.meta or {}), "ui": ui}
    return tools


async def apps_listing(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Middleware: for a client that did not negotiate Apps, tools/list and resources/list as they were before
    the pages (no picker tools, no ``_meta.ui``, no ``ui://`` resources). Results reach middleware in wire form."""
    result = await call_next(ctx)
    if ctx.method not in ("tools/list", "resources/list") or not isinstance(result, dict):
        return result
    if client_supports_apps(ctx):
        return result
    listed: dict[str, Any] = result
    if ctx.method == "tools/list":
        tools = cast(list[dict[str, Any]], listed.get("tools", []))
        return {**listed, "tools": [_plain(tool) for tool in tools if tool.get("name") not in PICKER_TOOLS]}
    resources = cast(list[dict[str, Any]], listed.get("resources", []))
    return {**listed, "resources": [r for r in resources if not str(r.get("uri", "")).startswith("ui://")]}


def _plain(tool: dict[str, Any]) -> dict[str, Any]:
    plain = {key: value for key, value in tool.items() if key != "_meta"}
    meta = {key: value for key, value in cast(dict[str, Any], tool.get("_meta") or {}).items() if key != "ui"}
    return {**plain, "_meta": meta} if meta else plain
