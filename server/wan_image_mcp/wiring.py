"""The one place that knows every part: the service built from ``Settings`` — its journal, the result sink, the
DashScope client and its query rate, the harvester — for ``serve`` (through ``mcp_server.app``'s lifespan), the
demo and the gallery alike.

May import the core, ``dashscope`` and ``settings``; never ``mcp`` or ``mcp_server`` (they call it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx2

from .core.clock import SYSTEM_CLOCK, Clock
from .core.errors import ConfigurationError
from .core.images.access import FileAccess
from .core.images.runtime import ImageRuntime, installed
from .core.journal import AsyncJournal, Journal
from .core.journal.query_places import PostgresPlaces
from .core.results.sinks import ResultSink
from .core.results.store import ResultStore
from .core.tasks.harvest import Harvester
from .core.tasks.service import WanService
from .dashscope import DashScopeClient, QueryRate, UnusableKey
from .dashscope.connections import http_client
from .dashscope.rate import SharedPlaces
from .settings import Settings

if TYPE_CHECKING:
    from .core.journal import Tenant

__all__ = [
    "build_service",
    "check_journal_folder",
    "gallery_page",
    "image_access",
    "open_journal",
    "result_sink",
    "running_service",
]

log = logging.getLogger("wan_image_mcp")


def image_access(settings: Settings, *, personal: bool = False) -> FileAccess:
    """The folders local input images may come from (the client's roots are added per call): the output folder and
    ``WAN_MCP_ALLOWED_DIRS``; when that is unset and the server is ``personal`` (stdio: one person's own machine),
    the user's home folder without its hidden folders too. A shared server (``--transport http``) reads no home."""
    home = [Path.home()] if personal and not settings.allowed_dirs else []
    return FileAccess.of([*settings.allowed_dirs, settings.output_dir], home)


def build_service(
    settings: Settings,
    http: httpx2.AsyncClient,
    journal: AsyncJournal,
    clock: Clock = SYSTEM_CLOCK,
    places: SharedPlaces | None = None,
    access: FileAccess | None = None,
) -> WanService:
    """The service and what it needs, for ``settings``; ``places`` is the query budget shared with replicas,
    ``access`` the folders images may come from (default ``image_access(settings)``)."""
    try:
        client: DashScopeClient | None = DashScopeClient(
            http,
            api_key=settings.require_api_key(),
            base_url=settings.base_url,
            workspace=settings.workspace,
            query_rate=QueryRate(clock=clock, shared=places),
        )
        missing = None
    except (ConfigurationError, UnusableKey) as exc:
        client, missing = None, ConfigurationError(str(exc))
        log.warning("%s; tools will say so when called", exc)
    return WanService(
        client,
        ResultStore(settings.output_dir, http, api_base_url=settings.base_url, sink=result_sink(settings)),
        journal,
        poll_interval=settings.poll_interval,
        poll_interval_max=settings.poll_interval_max,
        missing_key=missing,
        access=access or image_access(settings),
        max_images_per_call=settings.max_images_per_call,
        max_images_per_day=settings.max_images_per_day,
        confirm_above_images=settings.confirm_above_images,
        inline_max_bytes=settings.inline_max_bytes,
        clock=clock,
    )


@asynccontextmanager
async def running_service(
    settings: Settings,
    http: httpx2.AsyncClient | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    access: FileAccess | None = None,
) -> AsyncGenerator[WanService]:
    """The service while the block runs: its journal (opened on its worker thread by the first call), an HTTP
    client unless ``http`` is given, the query budget shared with replicas on a PostgreSQL journal, and the
    harvester in the background when there is a key to call the API with, and the process's image state (an
    ``ImageRuntime``: Pillow's guard is set on the first decode, so Pillow stays off the start path). All closed
    when the block ends."""
    journal = Journal(settings.journal_location, clock=clock)
    try:
        async with AsyncExitStack() as stack:
            stack.enter_context(installed(ImageRuntime()))
            client = http or await stack.enter_async_context(http_client())  # connects on its first request
            places = PostgresPlaces(settings.journal_url) if settings.journal_url else None
            if places is not None:  # replicas on one PostgreSQL journal share the account's query budget
                stack.callback(places.close)
            service = build_service(settings, client, AsyncJournal(journal), clock, places, access)
            async with anyio.create_task_group() as background:
                if settings.harvest and service.can_call_api:
                    background.start_soon(Harvester(service).run)
                yield service
                background.cancel_scope.cancel()
    finally:
        journal.close()


def result_sink(settings: Settings, *, at_start: bool = False) -> ResultSink | None:
    """The bucket WAN_MCP_OUTPUT_URL names, or None for the output folder; ``at_start``, checked once now with no
    retries. Raises ConfigurationError when the S3 client is not installed, refuses its settings, or (at start)
    cannot list the bucket."""
    if settings.output_url is None:
        return None
    try:
        from .core.results import object_sink
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


def gallery_page(settings: Settings, *, tenant: Tenant | None = None) -> Path:
    """The gallery of every saved result (only ``tenant``'s when given) written beside the results: the journal
    opened, the sink chosen, the page written, the journal closed. Raises ConfigurationError."""
    from .gallery import write_gallery  # Pillow: off the start path

    journal = open_journal(settings)
    try:
        return write_gallery(journal, settings.output_dir, tenant=tenant, sink=result_sink(settings))
    finally:
        journal.close()
