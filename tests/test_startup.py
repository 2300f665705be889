"""Quick start: the server answers tools/list without Pillow, SQLite or the emulator, and a journal that
cannot be used is one clear line, at start when it can be told then, or as a tool error."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest
from mcp import Client

from tests.conftest import server_env, text
from wan_image_mcp.app import build_app
from wan_image_mcp.config import Settings

LAZY = ("PIL", "sqlite3", "stamina", "wan_image_mcp.emulator", "wan_image_mcp.inspection")

PROBE = f"""
import anyio, json, sys
from mcp import Client
from wan_image_mcp.app import build_app
from wan_image_mcp.config import Settings

async def main():
    async with Client(build_app(Settings.from_env())) as client:
        tools = (await client.list_tools()).tools
        print(json.dumps({{"tools": len(tools), "loaded": [m for m in {LAZY!r} if m in sys.modules]}}))

anyio.run(main)
"""


def test_tools_list_is_answered_before_pillow_sqlite_or_the_emulator_are_loaded(tmp_path: Path) -> None:
    env = server_env("http://127.0.0.1:9", "sk-test", tmp_path, WAN_MCP_HARVEST="0")
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer == {"tools": 7, "loaded": []}
    assert not (tmp_path / "journal.sqlite3").exists()  # not even opened


def test_a_journal_folder_that_cannot_exist_stops_the_server_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    env = server_env(None, "sk-test", tmp_path, WAN_MCP_DB=str(tmp_path / "a-file" / "journal.sqlite3"))
    done = subprocess.run(
        [sys.executable, "-m", "wan_image_mcp"], env=env, capture_output=True, text=True, timeout=30, input=""
    )
    assert done.returncode == 2
    assert done.stderr.startswith("wan-image-mcp: cannot create the task journal's folder")
    assert "WAN_MCP_DB" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.anyio
async def test_a_journal_that_cannot_be_opened_is_a_tool_error_naming_it(
    http: httpx2.AsyncClient, server_settings: Settings, tmp_path: Path
) -> None:
    unopenable = tmp_path / "journal-is-a-folder"
    unopenable.mkdir()
    async with Client(build_app(replace(server_settings, journal_path=unopenable), http)) as client:
        result = await client.call_tool("list_tasks", {})
    assert result.is_error
    assert f"cannot open the task journal at {unopenable}: unable to open database file" in text(result)
