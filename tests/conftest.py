"""Shared fixtures: a clean environment, the emulator in-process, a client on it, real image files.

Tests talk to the emulator unless ``DASHSCOPE_API_KEY`` and ``WAN_MCP_LIVE_TESTS=1`` are both set; then the
client tests marked ``live`` run against the real API (and tests that need the emulator's controls skip).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import cast

import httpx2
import pytest
import stamina
from mcp import Client
from PIL import Image
from pydantic import SecretStr

from tests.support.helpers import EMULATOR_BASE, EMULATOR_KEY, FAST_RETRY, ImageFactory
from tests.support.postgres_server import PostgresServer, binaries
from tests.support.virtual_clock import VirtualClock
from wan_image_mcp.dashscope import DashScopeClient
from wan_image_mcp.emulator import EmulatorConfig, EmulatorState, create_app
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

LIVE_KEY = os.environ.get("DASHSCOPE_API_KEY", "")
LIVE = bool(LIVE_KEY) and os.environ.get("WAN_MCP_LIVE_TESTS") == "1"
LIVE_SETTINGS = Settings.from_env() if LIVE else None


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A report's captured output with its lone surrogates escaped (``\\udcff``): a test of text that is not UTF-8
    logs some, and pytest-xdist's workers can send only UTF-8 to the main process."""
    report = yield
    report.sections = [(title, _writable(text)) for title, text in report.sections]
    return report


def _writable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
