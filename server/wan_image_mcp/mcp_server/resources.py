"""MCP resources: the spec tables, journal entries and result images. Like tools.py, only translation.

wan://models            every model's limits and capabilities (JSON, from specs.py)
wan://models/{model}    one model
wan://tasks/{task_id}   the journal's entry for a task (JSON)
wan://images/{name}     a result image from the output folder (each tool result links to its images)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio.to_thread
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.types import ResourceLink

from ..core.catalog import catalog_json, spec_json
from ..core.outcomes import ImageFile
from ..core.output_folder import saved_image
from ..core.specs import get_spec
from .appstate import AppState

IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.(png|jpg|webp|bmp)$")
MIME = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "bmp": "image/bmp"}


def image_uri(image: ImageFile) -> str:
    return f"wan://images/{Path(image.path).name}"


def image_link(image: ImageFile) -> ResourceLink:
    name = Path(image.path).name
    return ResourceLink(
        type="resource_link",
        uri=image_uri(image),  # pyright: ignore[reportArgumentType]  # pydantic validates the str as a URL
        name=name,
        mime_type=MIME[name.rsplit(".", 1)[1]],
        size=image.bytes,
    )


def models() -> str:
    return json.dumps(catalog_json(), ensure_ascii=False, indent=1)


def model(model: str) -> str:
    spec = get_spec(model)
    if spec is None:
        raise ResourceNotFoundError(f"no model {model!r}; wan://models lists them")
    return json.dumps(spec_json(spec), ensure_ascii=False, indent=1)


async def task(task_id: str, ctx: Context[AppState]) -> str:
    service = ctx.request_context.lifespan_context.service
    row = await service.journal.run(service.journal.sync.get, task_id)
    if row is None:
        raise ResourceNotFoundError(f"no task {task_id!r} in the journal; list_tasks shows the known ones")
    return json.dumps(row.__dict__, ensure_ascii=False, indent=1, default=str)


async def image(name: str, ctx: Context[AppState]) -> bytes:
    """Only an image the server saved (the journal knows it), never any other file in the output folder."""
    state = ctx.request_context.lifespan_context
    if not IMAGE_NAME.match(name):
        raise ResourceNotFoundError(f"no result image {name!r}")
    journal = state.service.journal
    path = await journal.run(saved_image, journal.sync, state.settings.output_dir, name)
    if path is None:
        raise ResourceNotFoundError(f"no result image {name!r} saved by this server in the output folder")
    return await anyio.to_thread.run_sync(path.read_bytes)


def register(server: MCPServer[AppState]) -> None:
    server.resource("wan://models", name="models", title="Wan models and their limits", mime_type="application/json")(
        models
    )
    server.resource("wan://models/{model}", name="model", title="One model's limits", mime_type="application/json")(
        model
    )
    server.resource("wan://tasks/{task_id}", name="task", title="A task in the journal", mime_type="application/json")(
        task
    )
    server.resource("wan://images/{name}", name="image", title="A result image", mime_type="image/png")(image)
