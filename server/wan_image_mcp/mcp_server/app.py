"""build_app(settings, http=None) -> the MCPServer, with a lifespan that owns the HTTP client."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
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

from .. import __version__
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.errors import ConfigurationError, WanError
from ..core.images.access import FileAccess
from ..core.journal.async_journal import AsyncJournal
from ..core.journal.queries import Journal
from ..core.journal.query_places import PostgresPlaces
from ..core.requests.arguments import problems as argument_problems
from ..core.requests.catalog import model_limits
from ..core.results.sinks import ResultSink
from ..core.results.store import ResultStore
from ..core.tasks.harvest import Harvester
from ..core.tasks.service import WanService
from ..dashscope import DashScopeClient, QueryRate
from ..dashscope.rate import SharedPlaces
from ..settings import Settings
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
{model_limits()}"""


def build_state(
    settings: Settings,
    http: httpx2.AsyncClient,
    journal: AsyncJournal,
    clock: Clock = SYSTEM_CLOCK,
    places: SharedPlaces | None = None,
) -> AppState:
    """The service and what it needs, for ``settings``; ``places`` is the query budget shared with replicas."""
    try:
        client: DashScopeClient | None = DashScopeClient(
            http,
            api_key=settings.require_api_key(),
            base_url=settings.base_url,
            workspace=settings.workspace,
            query_rate=QueryRate(clock=clock, shared=places),
        )
        missing = None
    except ConfigurationError as exc:
        client, missing = None, exc
        log.warning("%s; tools will say so when called", exc)
    service = WanService(
        client,
        ResultStore(settings.output_dir, http, api_base_url=settings.base_url, sink=result_sink(settings)),
        journal,
        poll_interval=settings.poll_interval,
        poll_interval_max=settings.poll_interval_max,
        missing_key=missing,
        access=FileAccess.of([*settings.allowed_dirs, settings.output_dir]),
        max_images_per_call=settings.max_images_per_call,
        max_images_per_day=settings.max_images_per_day,
        confirm_above_images=settings.confirm_above_images,
        inline_max_bytes=settings.inline_max_bytes,
        clock=clock,
    )
    return AppState(service=service, settings=settings)


def result_sink(settings: Settings, *, at_start: bool = False) -> ResultSink | None:
    """The bucket WAN_MCP_OUTPUT_URL names, or None for the output folder; ``at_start``, checked once now with no
    retries. Raises ConfigurationError when the S3 client is not installed, refuses its settings, or (at start)
    cannot list the bucket."""
    if settings.output_url is None:
        return None
    try:
        from ..core.results import object_sink
    except ImportError:
        raise ConfigurationError("WAN_MCP_OUTPUT_URL needs obstore: pip install 'wan-image-mcp[s3]'") from None
    from obstore.exceptions import BaseError

    retry = object_sink.AT_START if at_start else object_sink.RETRY
    try:
        sink = object_sink.ObjectSink(
            settings.output_url, options=dict(settings.object_store), expires=settings.download_url_seconds, retry=retry
        )
        if at_start:
            sink.check()
    except (BaseError, OSError) as exc:
        said = object_sink.said(exc)
        raise ConfigurationError(f"cannot use {settings.output_url} (WAN_MCP_OUTPUT_URL, AWS_*): {said}") from None
    return sink


def open_journal(settings: Settings) -> Journal:
    """The journal, opened now. Raises ConfigurationError naming the file and WAN_MCP_DB."""
    try:
        return Journal(settings.journal_location).open()
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} (WAN_MCP_DB)") from exc


def check_journal_folder(settings: Settings) -> None:
    """Fail at start, in one line, on a journal folder that cannot exist, without opening the journal (that
    happens on first use, off the start path). A PostgreSQL journal has no folder."""
    if settings.journal_url is not None:
        return
    folder = settings.journal_path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the task journal's folder {folder} (WAN_MCP_DB): {exc}") from exc
    if not os.access(folder, os.W_OK):
        raise ConfigurationError(f"cannot write to the task journal's folder {folder} (WAN_MCP_DB)")


class WanServer(MCPServer[AppState]):
    """MCPServer whose prompt errors are protocol errors: an unknown prompt, a missing required argument or an
    unknown one is JSON-RPC -32602 (invalid params) naming them, where the SDK answers an internal error."""

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
            except WanError as exc:
                raise MCPError(INTERNAL_ERROR, f"cannot complete {params.argument.name}: {exc}") from None

        self._lowlevel_server.add_request_handler("completion/complete", CompleteRequestParams, handler)

    async def run_stdio_async(self) -> None:
        """Over stdio, our reader in front of the SDK's parser: every line gets an answer (stdio.py)."""
        await serve_stdio(self._lowlevel_server)


def build_app(
    settings: Settings | None = None, http: httpx2.AsyncClient | None = None, *, clock: Clock = SYSTEM_CLOCK
) -> MCPServer[AppState]:
    """The server. ``http`` lets tests route DashScope traffic to the in-process emulator, ``clock`` run its
    schedules (polling, the harvester, the query rate) in virtual time."""
    resolved = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncGenerator[AppState]:
        journal = Journal(resolved.journal_location, clock=clock)  # opened on its worker thread by the first call
        try:
            async with AsyncExitStack() as stack:
                client = http or await stack.enter_async_context(
                    httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, connect=10.0), follow_redirects=False)
                )
                places = PostgresPlaces(resolved.journal_url) if resolved.journal_url else None
                if places is not None:  # replicas on one PostgreSQL journal share the account's query budget
                    stack.callback(places.close)
                state = build_state(resolved, client, AsyncJournal(journal), clock, places)
                async with anyio.create_task_group() as background:
                    if resolved.harvest and state.service.can_call_api:
                        background.start_soon(Harvester(state.service).run)
                    yield state
                    background.cancel_scope.cancel()
        finally:
            journal.close()

    server = WanServer(
        name="wan-image-mcp",
        title="Wan image models",
        version=__version__,
        instructions=SERVER_INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
        tools=bind_pages(build_tools() + picker_tools()),
        extensions=[WanApps()],  # MCP Apps: the viewer and the box picker (apps/extension.py)
        middleware=[apps_listing, lone_surrogates],
        **oauth_kwargs(resolved),
    )
    register_resources(server)
    register_prompts(server)
    server.answer_completions(complete)
    return server
