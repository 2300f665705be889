"""build_app(settings, http=None) -> the MCPServer, whose lifespan runs the service ``wiring`` builds."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CompleteRequestParams,
    CompleteResult,
    Completion,
    GetPromptResult,
    InputRequiredResult,
)
from mcp.types import Prompt as MCPPrompt

from .. import __version__
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.errors import WanError
from ..core.images.access import FileAccess
from ..core.requests.arguments import problems as argument_problems
from ..core.requests.catalog import limits_in_force, model_limits, shape_rule
from ..core.requests.declarations import MAX_WAIT
from ..dashscope import DashScopeError
from ..settings import Settings
from ..wiring import image_access, running_service
from .apps.extension import WanApps, apps_listing, bind_pages
from .apps.picker import picker_tools
from .appstate import AppState
from .completions import complete
from .prompts import register as register_prompts
from .resources import register as register_resources
from .tools import build_tools
from .transports.oauth import oauth_kwargs
from .transports.stdio import lone_surrogates, serve_stdio

log = logging.getLogger("wan_image_mcp")

SERVER_INSTRUCTIONS = f"""\
Edit, fuse and generate images with Alibaba Cloud's Wan models. Pass input images as local paths or URLs;
refer to them in the prompt as image 1, image 2 (圖1, 圖2) in order. Results are saved locally and their
paths returned. Each generated image is billed: n defaults to 1. Long tasks return RUNNING with a task_id:
call check_task to finish them. Arguments are checked strictly: an unknown name or a value out of range is
refused before anything is sent. Per-model limits (modes: edit, text-to-image, image-set = enable_sequential,
interleave = enable_interleave):
{model_limits()}
{shape_rule()}"""


def server_instructions(settings: Settings, access: FileAccess) -> str:
    """``SERVER_INSTRUCTIONS`` and, after them, this server's own limits: its folders, caps, threshold and longest
    wait, from ``settings`` and ``access`` as the service holds them."""
    own = limits_in_force(
        folders=[str(folder) for folder in access.directories],
        visible_folders=[str(folder) for folder in access.visible],
        per_call=settings.max_images_per_call,
        per_day=settings.max_images_per_day,
        confirm_above=settings.confirm_above_images,
        longest_wait=MAX_WAIT,
    )
    return f"{SERVER_INSTRUCTIONS}\nThis server's limits: {own}"


class WanServer(MCPServer[AppState]):
    """MCPServer whose prompt errors are protocol errors: an unknown prompt, a missing required argument or an
    unknown one is JSON-RPC -32602 (invalid params) naming them, where the SDK answers an internal error. Its
    prompts are registered when first listed or asked for (``register_prompts_when_asked``), off the start path."""

    _unregistered_prompts: Callable[[MCPServer[AppState]], None] | None = None

    def register_prompts_when_asked(self, register: Callable[[MCPServer[AppState]], None]) -> None:
        """``register(self)`` runs when the prompts are first listed or asked for, not at start: pydantic builds
        each prompt's argument model and validator, which a client that only asks for tools never needs."""
        self._unregistered_prompts = register

    async def list_prompts(self) -> list[MCPPrompt]:
        if (register := self._unregistered_prompts) is not None:
            self._unregistered_prompts = None
            register(self)
        return await super().list_prompts()

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[AppState, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        prompts = {prompt.name: prompt for prompt in await self.list_prompts()}
        prompt = prompts.get(name)
        if prompt is None:
            raise MCPError(INVALID_PARAMS, f"unknown prompt '{name}': the prompts are {', '.join(sorted(prompts))}")
        given = arguments or {}
        declared = prompt.arguments or []
        missing = sorted(arg.name for arg in declared if arg.required and arg.name not in given)
        blank = sorted(
            arg.name for arg in declared if arg.required and arg.name in given and not given[arg.name].strip()
        )
        unknown = sorted(argument_problems(given, [arg.name for arg in declared], []))
        said = [f"missing required argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}"] if missing else []
        said += [f"required argument{'s' if len(blank) > 1 else ''} {', '.join(blank)} empty"] if blank else []
        if said or unknown:
            raise MCPError(INVALID_PARAMS, f"prompt '{name}': {'; '.join(said + unknown)}")
        return await super().get_prompt(name, arguments, context)

    def answer_completions(self, complete: Callable[[AppState, CompleteRequestParams], Awaitable[Completion]]) -> None:
        """Serve completion/complete, which declares the completions capability, with the lifespan's state (the
        SDK's ``completion()`` decorator does not pass it to the handler). A failure is an error in our words."""

        async def handler(ctx: ServerRequestContext[AppState], params: CompleteRequestParams) -> CompleteResult:
            try:
                return CompleteResult(completion=await complete(ctx.lifespan_context, params))
            except (WanError, DashScopeError) as exc:
                raise MCPError(INTERNAL_ERROR, f"cannot complete {params.argument.name}: {exc}") from None

        self._lowlevel_server.add_request_handler("completion/complete", CompleteRequestParams, handler)

    async def run_stdio_async(self) -> None:
        """Over stdio, our reader in front of the SDK's parser: every line gets an answer (stdio.py)."""
        await serve_stdio(self._lowlevel_server)


def build_app(
    settings: Settings | None = None,
    http: httpx2.AsyncClient | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    personal: bool = False,
) -> MCPServer[AppState]:
    """The server. ``http`` lets tests route DashScope traffic to the in-process emulator, ``clock`` run its
    schedules (polling, the harvester, the query rate) in virtual time. ``personal`` (stdio: one person's machine)
    lets images come from the home folder when WAN_MCP_ALLOWED_DIRS is unset (``wiring.image_access``)."""
    resolved = settings or Settings.from_env()
    access = image_access(resolved, personal=personal)

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncGenerator[AppState]:
        async with running_service(resolved, http, clock=clock, access=access) as service:
            yield AppState(service=service, settings=resolved)

    server = WanServer(
        name="wan-image-mcp",
        title="Wan image models",
        version=__version__,
        instructions=server_instructions(resolved, access),
        lifespan=lifespan,
        log_level="WARNING",
        tools=bind_pages(build_tools(resolved.max_images_per_call) + picker_tools()),
        extensions=[WanApps()],  # MCP Apps: the viewer and the box picker (apps/extension.py)
        middleware=[apps_listing, lone_surrogates],
        **oauth_kwargs(resolved),
    )
    register_resources(server)
    server.register_prompts_when_asked(register_prompts)
    server.answer_completions(complete)
    return server
