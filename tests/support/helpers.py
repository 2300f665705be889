"""What tests share besides fixtures: the emulator's key and address, the tools' names, waits on the wall
clock, a server subprocess's environment and HTTP server, a tool result's text."""

from __future__ import annotations

import itertools
import os
import selectors
import subprocess
import sys
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen

import anyio
from mcp.types import CallToolResult, TextContent

from wan_image_mcp.dashscope import RetryPolicy
from wan_image_mcp.emulator.serve import RunningEmulator

EMULATOR_KEY = "sk-emulator"
EMULATOR_BASE = "http://emulator.test/api/v1"
TOOL_NAMES = frozenset(
    {"edit_image", "submit_task", "check_task", "cancel_task", "detect_segment", "list_tasks", "inspect_image"}
)
FAST_RETRY = RetryPolicy(attempts=4, timeout=10, wait_initial=0.001, wait_max=0.01, wait_jitter=0.0)
ImageFactory = Callable[..., Path]


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


HTTP_KEY = "sk-http"
"""The key the emulator of the HTTP server's tests takes (``http_server``)."""


@contextmanager
def http_server(
    emulator: RunningEmulator, folder: Path, *args: str, stderr: list[str] | None = None, **settings: str
) -> Generator[str]:
    """Start the server over HTTP on a free port; yields its /mcp URL. What it wrote to stderr after its first
    line goes into ``stderr`` when it has stopped."""
    env = server_env(emulator.base_url, HTTP_KEY, folder, WAN_MCP_HARVEST="0", **settings)
    with http_serving(env, *args, stderr=stderr) as (url, _):
        yield url.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]")
