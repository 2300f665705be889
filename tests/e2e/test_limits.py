"""The limits in force, as a client sees them before it pays: the server instructions name the folders images may
come from, the caps and the threshold the environment sets; ``n``'s schema never advertises more than the per-call
cap; over stdio the home folder (without its hidden folders) is read by default, over HTTP it is not."""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from tests.support.helpers import HTTP_KEY, ImageFactory, http_server, server_env, text
from wan_image_mcp.emulator import EmulatorConfig
from wan_image_mcp.emulator.serve import RunningEmulator
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

pytestmark = pytest.mark.anyio
KEY = "sk-limits"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY, HTTP_KEY}))) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(emulator: RunningEmulator) -> None:
    emulator.state.requests.clear()


@asynccontextmanager
async def stdio(emulator: RunningEmulator, folder: Path, **settings: str) -> AsyncGenerator[Client]:
    """The server over stdio, as a host starts it, in ``settings`` (WAN_MCP_ names, HOME)."""
    env = server_env(emulator.base_url, KEY, folder, WAN_MCP_HARVEST="0", **settings)
    params = StdioServerParameters(command=sys.executable, args=["-m", "wan_image_mcp"], env=env, cwd=folder)
    async with Client(params) as client:
        yield client


@pytest.fixture
def home(tmp_path: Path, make_image: ImageFactory) -> Path:
    """A user's home folder with a photo in Pictures and one in a hidden folder."""
    (tmp_path / "home" / "Pictures").mkdir(parents=True)
    (tmp_path / "home" / ".private").mkdir()
    make_image("cat.png", (400, 300)).rename(tmp_path / "home" / "Pictures" / "cat.png")
    make_image("key.png", (400, 300)).rename(tmp_path / "home" / ".private" / "key.png")
    return tmp_path / "home"


def _property(tool: Any, name: str) -> dict[str, Any]:
    return tool.input_schema["properties"][name]


async def test_the_instructions_name_the_folders_the_caps_and_the_threshold_the_environment_sets(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    settings = {
        "WAN_MCP_ALLOWED_DIRS": str(photos),
        "WAN_MCP_MAX_IMAGES_PER_CALL": "3",
        "WAN_MCP_MAX_IMAGES_PER_DAY": "20",
        "WAN_MCP_CONFIRM_ABOVE_IMAGES": "2",
    }
    async with stdio(emulator, tmp_path, HOME=str(tmp_path / "home"), **settings) as client:
        said = client.instructions or ""
    assert f"Local images may come from {photos}, {tmp_path / 'out'} and the folders the client shares" in said
    assert "(not its hidden folders)" not in said  # WAN_MCP_ALLOWED_DIRS replaces the home default
    assert "At most 3 paid images per call (n, or max_images): make a bigger set in several calls." in said
    assert "At most 20 paid images in any 24 h." in said
    assert "A call asking for more than 2 paid images waits for the user's yes." in said
    assert "A call waits at most 300 s (wait_seconds), then returns RUNNING with a task_id" in said


async def test_without_a_daily_limit_or_a_threshold_the_instructions_say_neither(
    emulator: RunningEmulator, tmp_path: Path, home: Path
) -> None:
    async with stdio(emulator, tmp_path, HOME=str(home)) as client:
        said = client.instructions or ""
    assert f"Local images may come from {home} (not its hidden folders), {tmp_path / 'out'}" in said
    assert "At most 4 paid images per call" in said
    assert "in any 24 h" not in said and "the user's yes" not in said


async def test_n_in_every_paid_tool_schema_is_the_per_call_cap_and_more_is_refused_saying_what_to_do(
    emulator: RunningEmulator, tmp_path: Path, home: Path
) -> None:
    async with stdio(emulator, tmp_path, HOME=str(home), WAN_MCP_MAX_IMAGES_PER_CALL="3") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        refused = await client.call_tool(
            "edit_image", {"prompt": "a set of six", "images": [str(home / "Pictures" / "cat.png")], "n": 6}
        )
    for name in ("edit_image", "submit_task"):
        assert _property(tools[name], "n")["maximum"] == 3, name
        assert _property(tools[name], "max_images")["maximum"] == 3, name
    assert "Here: ≤ 3 per call" in _property(tools["edit_image"], "n")["description"]
    assert refused.is_error
    said = text(refused)
    assert "n must be at most 3, the most paid images one call may request on this server" in said
    assert "WAN_MCP_MAX_IMAGES_PER_CALL" in said and "Split the set over several calls" in said
    assert emulator.state.requests == []


async def test_a_cap_above_the_models_maxima_leaves_their_maxima_in_the_schema(
    emulator: RunningEmulator, tmp_path: Path, home: Path
) -> None:
    async with stdio(emulator, tmp_path, HOME=str(home), WAN_MCP_MAX_IMAGES_PER_CALL="50") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert _property(tools["edit_image"], "n")["maximum"] == 12
    assert "per call" not in _property(tools["edit_image"], "n")["description"]


async def test_a_photo_in_pictures_under_home_is_accepted_over_stdio_with_no_setting(
    emulator: RunningEmulator, tmp_path: Path, home: Path
) -> None:
    async with stdio(emulator, tmp_path, HOME=str(home)) as client:
        result = await client.call_tool(
            "edit_image", {"prompt": "make it night", "images": [str(home / "Pictures" / "cat.png")], "size": "1K"}
        )
    assert not result.is_error, text(result)
    assert len(emulator.state.requests) >= 1


async def test_a_file_in_a_hidden_folder_of_home_is_refused_naming_the_rule_and_the_setting(
    emulator: RunningEmulator, tmp_path: Path, home: Path
) -> None:
    hidden = home / ".private" / "key.png"
    link = home / "Pictures" / "innocent.png"
    link.symlink_to(hidden)
    async with stdio(emulator, tmp_path, HOME=str(home)) as client:
        direct = await client.call_tool("edit_image", {"prompt": "x", "images": [str(hidden)]})
        through_a_link = await client.call_tool("edit_image", {"prompt": "x", "images": [str(link)]})
    for result in (direct, through_a_link):
        assert result.is_error
        assert f"is in a hidden folder of {home} (a name starting with '.')" in text(result)
        assert "WAN_MCP_ALLOWED_DIRS" in text(result)
    assert emulator.state.requests == []


async def test_over_http_the_same_photo_is_refused_naming_the_setting(
    emulator: RunningEmulator, tmp_path: Path, home: Path
) -> None:
    with http_server(emulator, tmp_path, HOME=str(home)) as url:
        async with Client(url) as client:
            said = client.instructions or ""
            result = await client.call_tool(
                "edit_image", {"prompt": "make it night", "images": [str(home / "Pictures" / "cat.png")]}
            )
    assert str(home) not in said
    assert result.is_error
    assert "is outside the allowed directories" in text(result)
    assert "WAN_MCP_ALLOWED_DIRS" in text(result)
    assert emulator.state.requests == []


async def test_servers_with_different_caps_in_one_process_each_keep_their_own(server_settings: Settings) -> None:
    # In process: the tools are built per server from one declaration; the refusals come before any request.
    one = build_app(server_settings.model_copy(update={"max_images_per_call": 1}))
    four = build_app(server_settings.model_copy(update={"max_images_per_call": 4}))
    for app, most in ((four, 4), (one, 1)):
        async with Client(app) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            refused = await client.call_tool("submit_task", {"prompt": "x", "n": most + 1})
        assert _property(tools["edit_image"], "n")["maximum"] == most
        assert _property(tools["edit_image"], "n")["description"].count("per call") == 1
        assert f"n must be at most {most}, the most paid images" in text(refused)
