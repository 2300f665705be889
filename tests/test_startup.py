"""Quick start: the server answers tools/list without Pillow, SQLite or the emulator, and a journal that
cannot be used is one clear line, at start when it can be told then, or as a tool error."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.conftest import server_env, text
from wan_image_mcp.app import build_app
from wan_image_mcp.config import Settings
from wan_image_mcp.journal import Journal, NewTask

LAZY = ("PIL", "sqlite3", "stamina", "wan_image_mcp.emulator", "wan_image_mcp.inspection")

PROBE = f"""
import anyio, json, sys
from mcp import Client
from wan_image_mcp.app import build_app
from wan_image_mcp.config import Settings
from wan_image_mcp.journal import Journal, NewTask

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


PAGE = 4096


def damaged_journal(path: Path, damage: str) -> str:
    """A real journal with tasks in it, then damaged; returns its sha256."""
    journal = Journal(path).open()
    for n in range(200):
        row = journal.begin(NewTask(model="wan2.7-image", prompt=f"task {n} " * 40, parameters={"n": 1}))
        journal.submitted(row, f"task-{n}", None, "RUNNING", next_poll_at=0)
    journal.close()
    assert path.stat().st_size > 20 * PAGE and not path.with_name(path.name + "-wal").exists()
    if damage == "random bytes":
        path.write_bytes(os.urandom(path.stat().st_size))
    else:
        with path.open("r+b") as file:  # one page of the tasks table, zeroed
            file.seek(5 * PAGE)
            file.write(bytes(PAGE))
    return hashlib.sha256(path.read_bytes()).hexdigest()


DAMAGE = ["random bytes", "a zeroed page"]
CALLS: list[dict[str, Any]] = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_tasks", "arguments": {}}},
]


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_journal_stops_the_server_at_start_in_one_line_and_is_left_as_it_is(
    damage: str, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite3"
    before = damaged_journal(journal, damage)
    files = sorted(tmp_path.iterdir())
    env = server_env(None, "sk-test", tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "wan_image_mcp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        input="".join(json.dumps(call) + "\n" for call in CALLS),
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"wan-image-mcp: the task journal {journal} is damaged ("), line
    assert "left as it is: move it aside (or restore a backup)" in line and "WAN_MCP_DB" in line
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr
    assert done.stdout == ""  # no call was taken in, so none is left without an answer
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == before
    # nothing else written: at most SQLite's own empty -wal and -shm files of a read-only look
    wal = journal.with_name(journal.name + "-wal")
    assert set(tmp_path.iterdir()) - set(files) <= {wal, journal.with_name(journal.name + "-shm")}
    assert not wal.exists() or wal.stat().st_size == 0


@pytest.mark.anyio
async def test_a_client_of_a_server_with_a_damaged_journal_hears_the_connection_close_at_once(
    tmp_path: Path,
) -> None:
    before = damaged_journal(tmp_path / "journal.sqlite3", "a zeroed page")
    env = server_env(None, "sk-test", tmp_path)
    params = StdioServerParameters(command=sys.executable, args=["-m", "wan_image_mcp"], env=env)
    with anyio.fail_after(30), pytest.raises(ExceptionGroup) as caught:
        async with Client(params) as client:
            await client.list_tools()
    assert caught.group_contains(MCPError, match="Connection closed")
    assert hashlib.sha256((tmp_path / "journal.sqlite3").read_bytes()).hexdigest() == before


@pytest.mark.anyio
@pytest.mark.parametrize("damage", DAMAGE)
async def test_a_damaged_journal_makes_every_call_a_clean_tool_error_when_the_server_runs_anyway(
    damage: str, http: httpx2.AsyncClient, server_settings: Settings
) -> None:
    before = damaged_journal(server_settings.journal_path, damage)
    settings = replace(
        server_settings, harvest=True
    )  # the harvester meets it first, and must not bring down the server
    with anyio.fail_after(30):
        async with Client(build_app(settings, http)) as client:
            for tool, arguments in (
                ("list_tasks", {}),
                ("check_task", {"task_id": "task-3"}),
                ("edit_image", {"prompt": "x", "size": "1K"}),
            ):
                result = await client.call_tool(tool, arguments)
                assert result.is_error, tool
                assert f"the task journal {server_settings.journal_path} is damaged (" in text(result), text(result)
    assert hashlib.sha256(server_settings.journal_path.read_bytes()).hexdigest() == before


def test_every_module_takes_pillow_from_pillow_py_with_its_bomb_guard() -> None:
    package = Path(__file__).parent.parent / "server" / "wan_image_mcp"
    direct = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if path.name != "pillow.py"
        and any(line.startswith(("from PIL", "import PIL")) for line in path.read_text(encoding="utf-8").splitlines())
    ]
    assert direct == []


MCP_ADAPTERS = {"app.py", "boundary.py", "tools.py", "resources.py", "prompts.py", "http_server.py", "demo.py"}
"""The modules that speak MCP (demo.py is an MCP client); the core, the client and the emulator know nothing of it."""


def test_only_the_mcp_adapters_import_mcp() -> None:
    package = Path(__file__).parent.parent / "server" / "wan_image_mcp"
    speaking = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if any(
            line.strip().startswith(("from mcp", "import mcp"))
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    }
    assert speaking <= MCP_ADAPTERS, sorted(speaking - MCP_ADAPTERS)
    assert {"app.py", "tools.py", "boundary.py"} <= speaking  # the check sees imports at all
