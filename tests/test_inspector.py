"""A real client: the official MCP Inspector CLI (from the npm registry) drives the stdio server, pointed at
the emulator. Skipped only when npx is absent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOOL_NAMES, server_env
from wan_image_mcp.emulator import EmulatorConfig
from wan_image_mcp.emulator.serve import RunningEmulator

pytestmark = pytest.mark.skipif(shutil.which("npx") is None, reason="npx (Node.js) is not installed")
KEY = "sk-inspector"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}))) as running:
        yield running


def inspector(emulator: RunningEmulator, folder: Path, *method: str) -> dict[str, Any]:
    settings = server_env(emulator.base_url, KEY, folder)
    passed = [
        arg
        for key in (
            "DASHSCOPE_HTTP_BASE_URL",
            "DASHSCOPE_API_KEY",
            "WAN_MCP_OUTPUT_DIR",
            "WAN_MCP_DB",
            "WAN_MCP_POLL_INTERVAL",
        )
        for arg in ("-e", f"{key}={settings[key]}")
    ]
    command = str(Path(sys.executable).parent / "wan-image-mcp")
    # The Inspector keeps state under ~/.mcp-inspector, so HOME is the test's own; npm's download cache stays the
    # user's, so the Inspector is fetched from the registry once per machine rather than once per run.
    npm_cache = os.environ.get("NPM_CONFIG_CACHE") or str(Path.home() / ".npm")
    env = server_env(None, None, None, HOME=str(folder), NPM_CONFIG_CACHE=npm_cache)
    done = subprocess.run(
        ["npx", "-y", "@modelcontextprotocol/inspector", "--cli", *passed, command, "--method", *method],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_inspector_lists_the_tools_and_edits_then_checks(emulator: RunningEmulator, tmp_path: Path) -> None:
    listed = inspector(emulator, tmp_path, "tools/list")
    assert {tool["name"] for tool in listed["tools"]} == TOOL_NAMES

    edited = inspector(
        emulator,
        tmp_path,
        "tools/call",
        "--tool-name",
        "edit_image",
        "--tool-arg",
        "prompt=from the inspector",
        "--tool-arg",
        "size=1K",
    )
    assert not edited.get("isError")
    result = edited["structuredContent"]
    assert result["status"] == "SUCCEEDED"
    assert Path(result["images"][0]["path"]).is_file()

    checked = inspector(
        emulator, tmp_path, "tools/call", "--tool-name", "check_task", "--tool-arg", f"task_id={result['task_id']}"
    )
    assert checked["structuredContent"]["images"] == result["images"]  # found in the journal, not downloaded again
