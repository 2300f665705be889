"""MCP resources: the spec tables, journal entries and result images. Like tools.py, only translation.

wan://models            every model's limits and capabilities (JSON, from specs.py)
wan://models/{model}    one model
wan://tasks/{task_id}   the journal's entry for a task (JSON)
wan://images/{name}     a result image from the output folder (each tool result links to its images)

The four readers' docstrings are also the resources' descriptions: the SDK sends ``fn.__doc__`` to clients, so
they are written for an agent as much as for a maintainer.
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

from ..core.requests.catalog import catalog_json, spec_json
from ..core.results.outcomes import ImageFile
from ..core.specs import get_spec
from .appstate import AppState
from .transports.oauth import caller

IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.(png|jpg|webp|bmp)$")
"""What a result image's file name may be (the names ``local_folder.result_stem`` gives): nothing else is looked
up, so a name can never walk out of the output folder."""
MIME = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "bmp": "image/bmp"}
"""Extension -> media type of the result images served."""


def image_uri(image: ImageFile) -> str:
    """The ``wan://images/{name}`` URI of a saved result image."""
    return f"wan://images/{Path(image.path).name}"


def image_link(image: ImageFile) -> ResourceLink:
    """A tool result's link to a saved image: its URI, file name, media type and size in bytes."""
    name = Path(image.path).name
    return ResourceLink(
        type="resource_link",
        uri=image_uri(image),  # pyright: ignore[reportArgumentType]  # pydantic validates the str as a URL
        name=name,
        mime_type=MIME[name.rsplit(".", 1)[1]],
        size=image.bytes,
    )


def models() -> str:
    """Every Wan model this server offers, with its limits and capabilities (JSON)."""
    return json.dumps(catalog_json(), ensure_ascii=False, indent=1)


def model(model: str) -> str:
    """One model's limits and capabilities (JSON). An unknown model is not found; wan://models lists them."""
    spec = get_spec(model)
    if spec is None:
        raise ResourceNotFoundError(f"no model {model!r}; wan://models lists them")
    return json.dumps(spec_json(spec), ensure_ascii=False, indent=1)


async def task(task_id: str, ctx: Context[AppState]) -> str:
    """The journal's entry for a task this server started (JSON): status, model, prompt, parameters, times,
    result URLs, saved images and errors. A task the journal does not know (or, with OAuth, another user's) is not
    found."""
    service = ctx.request_context.lifespan_context.service
    row = await service.journal.get(task_id, tenant=caller())
    if row is None:
        raise ResourceNotFoundError(f"no task {task_id!r} in the journal; list_tasks shows the known ones")
    return json.dumps(row.__dict__, ensure_ascii=False, indent=1, default=str)


async def image(name: str, ctx: Context[AppState]) -> bytes:
    """A result image this server saved (the journal knows it), as its bytes, from the output folder or the
    bucket; never any other file there, nor (with OAuth) another user's. Any other name is not found."""
    state = ctx.request_context.lifespan_context
    if not IMAGE_NAME.match(name):
        raise ResourceNotFoundError(f"no result image {name!r}")
    journal, sink = state.service.journal, state.service.store.sink
    location = await journal.call(sink.lookup, name, caller())
    if location is None:
        raise ResourceNotFoundError(f"no result image {name!r} saved by this server in {sink.where}")
    return await anyio.to_thread.run_sync(sink.read, location)


def register(server: MCPServer[AppState]) -> None:
    """Add the four resources to ``server`` (called once by ``app.build_app``)."""
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
