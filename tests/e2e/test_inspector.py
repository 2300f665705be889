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

from tests.support.helpers import TOOL_NAMES, server_env
from wan_image_mcp.emulator import EmulatorConfig
from wan_image_mcp.emulator.serve import RunningEmulator

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("npx") is None, reason="npx (Node.js) is not installed"),
]
KEY = "sk-inspector"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}))) as running:
        yield running


PORTABILITY_CHECKER = "@modelcontextprotocol/inspector@2.12.0"
"""The first Inspector CLI with a schema-portability report (it runs on Node 20 despite asking for 22)."""


def inspector(emulator: RunningEmulator, folder: Path, *method: str) -> dict[str, Any]:
    done = run_inspector(emulator, folder, "@modelcontextprotocol/inspector", *method)
    return json.loads(done.stdout)


def run_inspector(
    emulator: RunningEmulator, folder: Path, package: str, *method: str
) -> subprocess.CompletedProcess[str]:
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
        ["npx", "-y", package, "--cli", *passed, command, "--method", *method],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


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


CONTROL_SERVER = """
from mcp.server import MCPServer
from mcp.server.mcpserver.tools import Tool


def nullable(x: str | None = None) -> None:
    del x


tool = Tool.from_function(nullable, structured_output=False)
tool.parameters = {"type": "object", "properties": {"x": {"type": ["string", "null"]}}}
MCPServer("control", tools=[tool]).run()
"""


def test_every_schema_passes_the_inspectors_portability_report(emulator: RunningEmulator, tmp_path: Path) -> None:
    """The report lists each finding, then 'N errors, M warnings'; with none it prints nothing. The control, a
    server with one nullable argument, shows that the checker runs and speaks."""
    done = run_inspector(emulator, tmp_path, PORTABILITY_CHECKER, "tools/list", "--strict")
    assert {tool["name"] for tool in json.loads(done.stdout)["tools"]} == TOOL_NAMES
    assert "Warning: tool" not in done.stderr and "Error: tool" not in done.stderr, done.stderr[-3000:]
    assert "Schema portability" not in done.stderr and "warning" not in done.stderr.lower().replace("npm warn", "")

    control = tmp_path / "control.py"
    control.write_text(CONTROL_SERVER, encoding="utf-8")
    npm_cache = os.environ.get("NPM_CONFIG_CACHE") or str(Path.home() / ".npm")
    checked = subprocess.run(
        ["npx", "-y", PORTABILITY_CHECKER, "--cli", sys.executable, str(control), "--method", "tools/list"],
        env=server_env(None, None, None, HOME=str(tmp_path), NPM_CONFIG_CACHE=npm_cache),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Schema portability: 0 errors, 1 warning across 1 tool" in checked.stderr, checked.stderr[-3000:]
