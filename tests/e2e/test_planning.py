"""What an agent can know before it pays, over stdio as a host runs the server: the output's shape (the last input's,
unless size says otherwise) stated in every result."""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from tests.support.helpers import ImageFactory, server_env, text
from wan_image_mcp.emulator import EmulatorConfig
from wan_image_mcp.emulator.serve import RunningEmulator

pytestmark = pytest.mark.anyio
KEY = "sk-planning"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}), polls_to_finish=1)) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(emulator: RunningEmulator) -> None:
    emulator.state.requests.clear()
    emulator.state.faults.clear()


@asynccontextmanager
async def stdio_server(emulator: RunningEmulator, folder: Path, **settings: str) -> AsyncGenerator[Client]:
    """The server over stdio on the emulator, reading images from ``folder``, without the harvester."""
    env = server_env(emulator.base_url, KEY, folder, WAN_MCP_HARVEST="0", WAN_MCP_ALLOWED_DIRS=str(folder), **settings)
    params = StdioServerParameters(command=sys.executable, args=["-m", "wan_image_mcp"], env=env, cwd=folder)
    async with Client(params) as client:
        yield client


def body(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text(result)
    return result.structured_content


def submitted_sizes(emulator: RunningEmulator) -> list[str]:
    """The ``size`` of each create request the emulator received, in order."""
    bodies: list[Any] = [r.body for r in emulator.state.requests]
    sent = [cast(dict[str, Any], b) for b in bodies if isinstance(b, dict) and "parameters" in b]
    return [str(b["parameters"].get("size", "")) for b in sent]


def produced(result: dict[str, Any]) -> list[str]:
    return [f"{image['width']}*{image['height']}" for image in result["images"]]


async def test_the_output_follows_the_last_input_and_every_result_says_its_size(
    emulator: RunningEmulator, make_image: ImageFactory, tmp_path: Path
) -> None:
    wide, tall = str(make_image("wide.jpg", (1600, 900))), str(make_image("tall.jpg", (900, 1600)))
    with anyio.fail_after(60):
        async with stdio_server(emulator, tmp_path) as client:
            one = body(await client.call_tool("edit_image", {"prompt": "image 1 as image 2", "images": [wide, tall]}))
            other = body(await client.call_tool("edit_image", {"prompt": "image 1 as image 2", "images": [tall, wide]}))
    width, height = (int(side) for side in one["output_size"].split("*"))
    assert width < height  # tall, as the last image
    assert other["output_size"] == f"{height}*{width}"
    assert produced(one) == [one["output_size"]]
    assert produced(other) == [other["output_size"]]


async def test_a_ratio_or_an_unrounded_size_is_sent_as_the_size_produced_and_said(
    emulator: RunningEmulator, make_image: ImageFactory, tmp_path: Path
) -> None:
    photo = str(make_image("photo.png", (1200, 1200)))
    # without images wan2.7-image-pro takes up to 4096² pixels: 2K at 16:9 rounds up to 2736*1536, not down
    asked: list[tuple[str, list[str], str]] = [
        ("16:9", [], "2736*1536"),
        ("2K 16:9", [photo], "2720*1536"),
        ("1920*1080", [photo], "1920*1088"),
    ]
    with anyio.fail_after(60):
        async with stdio_server(emulator, tmp_path) as client:
            results = [
                await client.call_tool("edit_image", {"prompt": "a poster", "images": images, "size": size})
                for size, images, _ in asked
            ]
            refused = await client.call_tool("edit_image", {"prompt": "a poster", "images": [photo], "size": "16:0"})
            sent_before_refusal = submitted_sizes(emulator)
    for (size, _, sent), result in zip(asked, results, strict=True):
        data = body(result)
        assert not result.is_error, text(result)
        assert any(note.startswith(f"size '{size}' sent as {sent}") for note in data["adjustments"])
        assert data["output_size"] == sent and produced(data) == [sent]
        assert f"Output size: {sent}." in text(result)
    assert sent_before_refusal == [sent for _, _, sent in asked]
    assert refused.is_error
    assert "size: '16:0' is not an aspect ratio" in text(refused)
    assert submitted_sizes(emulator) == sent_before_refusal  # the refusal sent nothing
