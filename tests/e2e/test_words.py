"""Words an agent can act on, as a client over stdio reads them: list_tasks as lines a model reads, and an
unreachable DashScope said in our words, soon, with one log line (stderr) per retry that says what is retried."""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.support.helpers import ImageFactory, server_env, text
from wan_image_mcp.dashscope import RetryPolicy
from wan_image_mcp.emulator import EmulatorConfig
from wan_image_mcp.emulator.serve import RunningEmulator

pytestmark = pytest.mark.anyio
KEY = "sk-words"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}))) as running:
        yield running


@asynccontextmanager
async def stdio(base_url: str, folder: Path, errlog: TextIO) -> AsyncGenerator[Client]:
    """The server over stdio, as a host starts it, its stderr written to ``errlog``."""
    env = server_env(base_url, KEY, folder, WAN_MCP_HARVEST="0", WAN_MCP_ALLOWED_DIRS=str(folder))
    params = StdioServerParameters(command=sys.executable, args=["-m", "wan_image_mcp"], env=env, cwd=folder)
    async with Client(stdio_client(params, errlog=errlog)) as client:
        yield client


async def test_list_tasks_answers_one_readable_line_per_task_beside_its_structured_content(
    emulator: RunningEmulator, tmp_path: Path, make_image: ImageFactory
) -> None:
    photo = make_image("street.png", (640, 480))
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with stdio(emulator.base_url, tmp_path, errlog) as client:
            made = await client.call_tool(
                "edit_image", {"prompt": "make it a rainy night with neon reflections", "images": [str(photo)]}
            )
            listed = await client.call_tool("list_tasks", {})
    assert not made.is_error, text(made)
    assert made.structured_content is not None and listed.structured_content is not None
    task_id, saved = made.structured_content["task_id"], made.structured_content["images"][0]["path"]
    said = text(listed)
    assert not said.lstrip().startswith("{")  # words, not a JSON dump
    assert said.splitlines() == [
        "1 task, newest first:",
        f'- SUCCEEDED {task_id} · wan2.7-image-pro · "make it a rainy night with neon reflections" · 1 image: {saved}',
    ]
    assert [task["task_id"] for task in listed.structured_content["tasks"]] == [task_id]


async def test_an_unreachable_dashscope_is_said_in_our_words_soon_with_one_log_line_per_retry(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/api/v1"
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with stdio(base_url, tmp_path, errlog) as client:
            result = await client.call_tool("edit_image", {"prompt": "a red kite over the sea", "size": "1K"})
    assert result.is_error
    said = text(result)
    assert said.startswith(f"Cannot reach DashScope: could not connect to {base_url} (the connection was refused")
    assert "Nothing was sent and nothing is billed" in said and "WAN_MCP_REGION, DASHSCOPE_HTTP_BASE_URL" in said
    assert "Error(" not in said and "Traceback" not in said  # no Python repr
    logged = (tmp_path / "stderr.log").read_text()
    retries = [line for line in logged.splitlines() if "retrying" in line]
    assert len(retries) == RetryPolicy().connect_attempts - 1  # soon: refused connections are tried a few times
    for number, line in enumerate(retries, start=2):
        assert f"retrying POST /services/aigc/image-generation/generation (attempt {number}): could not connect" in line
    assert "stamina.retry_scheduled" not in logged  # stamina's own line, which says nothing of what is retried
