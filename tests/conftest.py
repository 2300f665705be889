"""Shared fixtures: a clean environment, the emulator in-process, a client on it, real image files.

Tests talk to the emulator unless ``DASHSCOPE_API_KEY`` and ``WAN_MCP_LIVE_TESTS=1`` are both set; then the
client tests marked ``live`` run against the real API (and tests that need the emulator's controls skip).
"""

from __future__ import annotations

import itertools
import os
import selectors
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen
from typing import cast

import anyio
import httpx2
import pytest
import stamina
from mcp import Client
from mcp.types import CallToolResult, TextContent
from PIL import Image
from pydantic import SecretStr

from tests.postgres_server import PostgresServer, binaries
from tests.virtual_clock import VirtualClock
from wan_image_mcp.core.config import Settings
from wan_image_mcp.dashscope import DashScopeClient, RetryPolicy
from wan_image_mcp.emulator import EmulatorConfig, EmulatorState, create_app
from wan_image_mcp.mcp_server.app import build_app

LIVE_KEY = os.environ.get("DASHSCOPE_API_KEY", "")
LIVE = bool(LIVE_KEY) and os.environ.get("WAN_MCP_LIVE_TESTS") == "1"
LIVE_SETTINGS = Settings.from_env() if LIVE else None
EMULATOR_KEY = "sk-emulator"
EMULATOR_BASE = "http://emulator.test/api/v1"
TOOL_NAMES = frozenset(
    {"edit_image", "submit_task", "check_task", "cancel_task", "detect_segment", "list_tasks", "inspect_image"}
)
FAST_RETRY = RetryPolicy(attempts=4, timeout=10, wait_initial=0.001, wait_max=0.01, wait_jitter=0.0)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in list(os.environ):
        if name.startswith(("DASHSCOPE_", "WAN_MCP_")):
            monkeypatch.delenv(name)
    # Default output folders and journal resolve here, never in the real user data directory.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def emulator() -> EmulatorState:
    if LIVE:
        pytest.skip("needs the emulator's controls; this run talks to the real API")
    return EmulatorState(EmulatorConfig(api_keys=frozenset({EMULATOR_KEY})))


@pytest.fixture
async def http(emulator: EmulatorState) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=create_app(emulator))
    async with httpx2.AsyncClient(transport=transport, base_url="http://emulator.test") as client:
        yield client


@pytest.fixture
def client(http: httpx2.AsyncClient) -> DashScopeClient:
    return DashScopeClient(http, api_key=EMULATOR_KEY, base_url=EMULATOR_BASE, retry=FAST_RETRY)


@pytest.fixture
async def live_client() -> AsyncIterator[DashScopeClient]:
    if LIVE_SETTINGS is None:
        pytest.skip("live tests need DASHSCOPE_API_KEY and WAN_MCP_LIVE_TESTS=1")
    async with httpx2.AsyncClient(timeout=60) as http:
        yield DashScopeClient(http, api_key=LIVE_SETTINGS.require_api_key(), base_url=LIVE_SETTINGS.base_url)


@pytest.fixture
def no_retry_waits() -> Iterator[None]:
    stamina.set_testing(True, attempts=4)
    yield
    stamina.set_testing(False)


ImageFactory = Callable[..., Path]


@pytest.fixture
def make_image(tmp_path: Path) -> ImageFactory:
    """``make_image("a.png", (640, 480), fmt="PNG", mode="RGB", exif_orientation=None)`` -> a real file."""

    def make(
        name: str,
        size: tuple[int, int],
        *,
        fmt: str | None = None,
        mode: str = "RGB",
        colour: object = (200, 80, 40),
        exif_orientation: int | None = None,
    ) -> Path:
        path = tmp_path / name
        image = Image.new(mode, size, colour)  # pyright: ignore[reportArgumentType]
        kwargs: dict[str, object] = {}
        if exif_orientation is not None:
            exif = Image.Exif()
            exif[0x0112] = exif_orientation
            kwargs["exif"] = exif
        image.save(path, fmt or path.suffix.lstrip(".").upper().replace("JPG", "JPEG"), **kwargs)
        return path

    return make


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module marked ``both_journals`` runs each test that has a server twice: on SQLite and on PostgreSQL."""
    if metafunc.definition.get_closest_marker("both_journals") and "server_settings" in metafunc.fixturenames:
        metafunc.parametrize("server_settings", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (``.ci/run`` installs it); tests take a database each."""
    if binaries() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql package)")
    with PostgresServer() as server:
        yield server


@pytest.fixture
def server_settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The server's settings for a test: the emulator, a quick poll, the journal in SQLite under ``tmp_path``
    or (parametrized ``"postgres"``, see ``both_journals``) in a new PostgreSQL database."""
    journal_url = None
    if getattr(request, "param", "sqlite") == "postgres":
        journal_url = cast(PostgresServer, request.getfixturevalue("postgres")).database()
    return Settings(
        api_key=SecretStr(EMULATOR_KEY),
        base_url=EMULATOR_BASE,
        output_dir=tmp_path / "out",
        poll_interval=0.01,
        poll_interval_max=0.05,
        journal_path=tmp_path / "journal.sqlite3",
        journal_url=journal_url,
        harvest=False,  # tests that need the harvester turn it on
        allowed_dirs=(tmp_path,),  # where make_image writes
    )


@pytest.fixture
async def mcp(http: httpx2.AsyncClient, server_settings: Settings) -> AsyncIterator[Client]:
    """An MCP client connected in-process to the server, whose DashScope traffic goes to the emulator."""
    async with Client(build_app(server_settings, http)) as client:
        yield client


@pytest.fixture
async def clock() -> AsyncIterator[VirtualClock]:
    """Virtual time for a test that waits on the server's own schedules (polling, harvesting, reconciling): pass it to
    ``build_app(..., clock=clock)`` and wait with ``clock.until``."""
    async with VirtualClock().running() as clock:
        yield clock


async def until(check: Callable[[], Awaitable[bool]], *, within: float = 15, step: float = 0.02) -> None:
    """Wait on the wall clock for what no virtual clock can move: a subprocess, the OS. Re-check every ``step``
    seconds, fail after ``within`` s. (A wait for the server's own schedules is ``VirtualClock.until``.)"""
    with anyio.fail_after(within):
        for _ in itertools.count():
            if await check():
                return
            await anyio.sleep(step)


def server_env(base_url: str | None, key: str | None, folder: Path | None, **settings: str) -> dict[str, str]:
    """The environment for a server subprocess: ours without any DASHSCOPE_/WAN_MCP_ variable, then the API,
    output folder, journal and a quick poll for tests, then ``settings`` (WAN_MCP_ names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "WAN_MCP_"))}
    if base_url is not None:
        env["DASHSCOPE_HTTP_BASE_URL"] = base_url
    if key is not None:
        env["DASHSCOPE_API_KEY"] = key
    if folder is not None:
        env.update(
            WAN_MCP_OUTPUT_DIR=str(folder / "out"),
            WAN_MCP_DB=str(folder / "journal.sqlite3"),
            WAN_MCP_POLL_INTERVAL="0.05",
        )
    env.update(settings)
    return env


def text(result: CallToolResult) -> str:
    """The text summary (first content block) of a tool result."""
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


@contextmanager
def http_serving(env: dict[str, str], *args: str, stderr: list[str] | None = None) -> Generator[tuple[str, Popen[str]]]:
    """``wan-image-mcp serve --transport http --port 0`` (and ``args``) in ``env``: yields the /mcp URL it announced
    and its process; ends it when the block ends (unless it has ended already). What it wrote to stderr after its
    first line goes into ``stderr`` once it has stopped."""
    command = [sys.executable, "-m", "wan_image_mcp", "serve", "--transport", "http", "--port", "0", *args]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stderr, selectors.EVENT_READ)
            assert selector.select(timeout=30), "the server said nothing within 30 s"
        line = process.stderr.readline()
        assert "serving MCP over HTTP at " in line, line
        yield line.rsplit(" ", 1)[1].strip(), process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            if stderr is not None:
                stderr.append(process.stderr.read())
            process.stderr.close()
