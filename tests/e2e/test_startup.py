"""Quick start: the server answers tools/list without Pillow, SQLite or the emulator, and a journal that
cannot be used is one clear line, at start when it can be told then, or as a tool error."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.support.helpers import server_env, text
from tests.support.virtual_clock import VirtualClock
from wan_image_mcp.core.images.runtime import BLOCK_BYTES
from wan_image_mcp.core.journal import Journal, NewTask, Status
from wan_image_mcp.core.journal.migrations import STEPS
from wan_image_mcp.core.journal.sqlite import check_journal
from wan_image_mcp.core.specs import MAX_DECODE_PIXELS
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

LAZY = (
    "PIL",
    "sqlite3",
    "stamina",
    "wan_image_mcp.emulator",
    "wan_image_mcp.core.images.inspection",
    "jwt",
    "httpcore2",
)
"""Not loaded on the way to ``tools/list``: what only a call decodes, journals or retries with; PyJWT (and the
cryptography it loads) with OAuth off; httpcore, which only an HTTP client that has sent a request has loaded."""

PROBE = f"""
import anyio, json, sys
from mcp import Client
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings
from wan_image_mcp.core.journal import Journal, NewTask

async def main():
    async with Client(build_app(Settings.from_env())) as client:
        tools = (await client.list_tools()).tools
        print(json.dumps({{"tools": len(tools), "loaded": [m for m in {LAZY!r} if m in sys.modules]}}))

anyio.run(main)
"""


def test_tools_list_is_answered_before_pillow_sqlite_the_emulator_jwt_or_a_connection_are_loaded(
    tmp_path: Path,
) -> None:
    env = server_env("http://127.0.0.1:9", "sk-test", tmp_path, WAN_MCP_HARVEST="0")
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer == {"tools": 7, "loaded": []}
    assert not (tmp_path / "journal.sqlite3").exists()  # not even opened


def test_images_are_read_by_a_python_built_without_ctypes() -> None:
    """ctypes is optional (a CPython built without libffi has none); only the glibc malloc tuning needs it."""
    probe = (
        "import sys\n"
        "sys.modules['ctypes'] = None  # what a build without _ctypes raises: ImportError\n"
        "from wan_image_mcp.core.images.pillow import Image\n"
        "from wan_image_mcp.core.images.runtime import imaging\n"
        "imaging()\n"
        "print(Image.new('RGB', (2, 2)).size)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(2,", "2)"]


IMPORT_EVERYTHING = """
import ctypes, importlib, json, pkgutil, threading

asked = []


class Watched(ctypes.CDLL):
    def __getattr__(self, name):
        asked.append(name)
        return super().__getattr__(name)


ctypes.CDLL = Watched
from PIL import Image

def settings():
    return {"max_pixels": Image.MAX_IMAGE_PIXELS, "block": Image.core.get_block_size(), "mallopt": "mallopt" in asked}

before, threads = settings(), threading.active_count()
import wan_image_mcp

modules = [m.name for m in pkgutil.walk_packages(wan_image_mcp.__path__, "wan_image_mcp.")]
for name in modules:
    if not name.endswith("__main__"):  # python -m: it runs the command line
        importlib.import_module(name)
imported = {"settings": settings(), "threads": threading.active_count() - threads, "modules": len(modules)}
from wan_image_mcp.core.images.runtime import imaging

imaging()
print(json.dumps({"before": before, "imported": imported, "first_decode": settings()}))
"""


def test_importing_every_module_changes_no_pillow_setting_starts_no_thread_and_calls_no_mallopt() -> None:
    """Process-wide image state belongs to the ImageRuntime the server's lifespan makes: importing the package
    (every module, the emulator and the OAuth verifier too) sets nothing; the first decode sets the guard."""
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["imported"] == {"settings": seen["before"], "threads": 0, "modules": seen["imported"]["modules"]}
    assert seen["imported"]["modules"] > 60
    assert seen["before"]["max_pixels"] != MAX_DECODE_PIXELS and not seen["before"]["mallopt"]
    assert seen["first_decode"] == {"max_pixels": MAX_DECODE_PIXELS, "block": BLOCK_BYTES, "mallopt": True}


def test_a_journal_folder_that_cannot_exist_stops_the_server_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    env = server_env(None, "sk-test", tmp_path, WAN_MCP_DB=str(tmp_path / "a-file" / "journal.sqlite3"))
    done = subprocess.run(
        [sys.executable, "-m", "wan_image_mcp"], env=env, capture_output=True, text=True, timeout=30, input=""
    )
    assert done.returncode == 2
    assert done.stderr.startswith("wan-image-mcp: cannot create the task journal's folder")
    assert "WAN_MCP_DB" in done.stderr and "Traceback" not in done.stderr


def test_an_output_folder_whose_name_is_not_utf_8_stops_the_server_in_one_line(tmp_path: Path) -> None:
    """Every saved image's path is given to the model and written in the journal and sidecars: all text."""
    latin1 = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"images\xe9"))  # "images\udce9"
    env = server_env(None, "sk-test", tmp_path, WAN_MCP_OUTPUT_DIR=latin1)
    done = subprocess.run([sys.executable, "-m", "wan_image_mcp"], env=env, capture_output=True, timeout=30, input=b"")
    said = done.stderr.decode()
    assert done.returncode == 2
    assert said.startswith(f"wan-image-mcp: the output folder {tmp_path}/images\ufffd (WAN_MCP_OUTPUT_DIR) has a")
    assert "not UTF-8" in said and "Traceback" not in said


@pytest.mark.anyio
async def test_a_journal_that_cannot_be_opened_is_a_tool_error_naming_it(
    http: httpx2.AsyncClient, server_settings: Settings, tmp_path: Path
) -> None:
    unopenable = tmp_path / "journal-is-a-folder"
    unopenable.mkdir()
    async with Client(build_app(server_settings.model_copy(update={"journal_path": unopenable}), http)) as client:
        result = await client.call_tool("list_tasks", {})
    assert result.is_error
    assert f"the task journal {unopenable} is a directory, not a file" in text(result)


PAGE = 4096


def damaged_journal(path: Path, damage: str) -> str:
    """A real journal with tasks in it, then damaged; returns its sha256."""
    journal = Journal(path).open()
    for n in range(200):
        row = journal.begin(NewTask(model="wan2.7-image", prompt=f"task {n} " * 40, parameters={"n": 1}))
        journal.submitted(row, f"task-{n}", None, Status.RUNNING, next_poll_at=0)
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


def refused_at_start(journal: Path) -> str:
    """Start the server (stdio, calls waiting on its input) with ``journal`` beside its output folder; it must
    stop at start with exit 2 and one line, answer nothing and write nothing. Returns the line."""
    files = sorted(journal.parent.iterdir())
    done = subprocess.run(
        [sys.executable, "-m", "wan_image_mcp"],
        env=server_env(None, "sk-test", journal.parent),
        capture_output=True,
        text=True,
        timeout=30,
        input="".join(json.dumps(call) + "\n" for call in CALLS),
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr
    assert done.stdout == ""  # no call was taken in, so none is left without an answer
    # nothing else written: at most SQLite's own empty -wal and -shm files of a read-only look
    wal = journal.with_name(journal.name + "-wal")
    assert set(journal.parent.iterdir()) - set(files) <= {wal, journal.with_name(journal.name + "-shm")}
    assert not wal.exists() or wal.stat().st_size == 0
    return line


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_journal_stops_the_server_at_start_in_one_line_and_is_left_as_it_is(
    damage: str, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite3"
    before = damaged_journal(journal, damage)
    line = refused_at_start(journal)
    assert line.startswith(f"wan-image-mcp: the task journal {journal} is damaged ("), line
    assert "left as it is: move it aside (or restore a backup)" in line and "WAN_MCP_DB" in line
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == before


def foreign_journal(path: Path, kind: str) -> None:
    """Something at the journal's path that is not a wan-image-mcp journal."""
    if kind == "a directory":
        path.mkdir()
        return
    if kind == "a FIFO":
        os.mkfifo(path)
        return
    db = sqlite3.connect(path)
    if kind == "another app's database":
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO photos VALUES (1, 'beach')")
    elif kind == "another app's, user_version 999":
        db.execute("PRAGMA user_version = 999")
    elif kind == "another app's tasks table":
        db.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT, done INTEGER)")
        db.execute("PRAGMA user_version = 3")
    else:  # our journal with a table of someone else's added
        db.close()
        Journal(path).open().close()
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    db.commit()
    db.close()


FOREIGN = {
    "a directory": "is a directory, not a file. It was left as it is: point WAN_MCP_DB at a file",
    "a FIFO": "is a FIFO, not a file. It was left as it is: point WAN_MCP_DB at a file",
    "another app's database": "is not a wan-image-mcp journal: it has no tasks table (user_version 0, tables: photos)",
    "another app's, user_version 999": "is not a wan-image-mcp journal: it has no tasks table (user_version 999",
    "another app's tasks table": "is not a wan-image-mcp journal: its tables are not a journal's of version 3",
    "a journal with another app's table": "is not a wan-image-mcp journal: its tables are not a journal's of version",
}


def fingerprint(path: Path) -> str:
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{path.stat().st_mode:o} {sorted(path.iterdir()) if path.is_dir() else ''}"


@pytest.mark.parametrize("kind", FOREIGN)
def test_a_journal_path_holding_something_else_stops_the_server_at_start_in_one_line_and_is_left_as_it_is(
    kind: str, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite3"
    foreign_journal(journal, kind)
    before = fingerprint(journal)
    line = refused_at_start(journal)
    assert line.startswith(f"wan-image-mcp: the task journal {journal} {FOREIGN[kind]}"), line
    assert "WAN_MCP_DB" in line
    assert fingerprint(journal) == before


def test_a_newer_journal_with_our_tables_is_taken_and_an_empty_file_begins_one(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite3"
    Journal(newer).open().close()
    db = sqlite3.connect(newer)
    db.execute("ALTER TABLE tasks ADD COLUMN future TEXT")
    db.execute("CREATE TABLE future_things (id INTEGER)")
    db.execute("PRAGMA user_version = 999")
    db.commit()
    db.close()
    check_journal(newer)  # read-only compatible: a later version's columns and tables are its own
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    check_journal(empty)
    assert Journal(empty).open().version == len(STEPS)


@pytest.mark.anyio
async def test_a_foreign_journal_stops_the_harvester_of_a_server_started_anyway_in_one_log_line(
    http: httpx2.AsyncClient, server_settings: Settings, caplog: pytest.LogCaptureFixture, clock: VirtualClock
) -> None:
    foreign_journal(server_settings.journal_path, "another app's, user_version 999")
    before = fingerprint(server_settings.journal_path)
    with anyio.fail_after(30):
        async with Client(build_app(server_settings.model_copy(update={"harvest": True}), http, clock=clock)) as client:
            result = await client.call_tool("list_tasks", {})
            assert result.is_error and "is not a wan-image-mcp journal" in text(result), text(result)

            async def stopped() -> bool:
                return "harvester stopped" in caplog.text

            await clock.until(stopped, within=10)
    assert "Traceback" not in caplog.text and "failed unexpectedly" not in caplog.text
    assert fingerprint(server_settings.journal_path) == before


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
    settings = server_settings.model_copy(
        update={"harvest": True}
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
