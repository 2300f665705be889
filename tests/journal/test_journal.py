"""The journal: written before a submission goes out, migrated forward, off the event loop."""

from __future__ import annotations

import base64
import inspect
import os
import re
import sqlite3
import threading
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from pydantic import SecretStr

from tests.support.helpers import EMULATOR_KEY, ImageFactory
from tests.support.postgres_server import PostgresServer
from wan_image_mcp.core.journal import AsyncJournal, Journal, NewTask, Status, migrations
from wan_image_mcp.core.journal.postgres import PostgresDatabase
from wan_image_mcp.dashscope import TaskStatus
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

pytestmark = pytest.mark.anyio


def test_a_new_journal_is_migrated_to_the_latest_schema_in_wal_mode(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    assert journal.version == len(migrations.STEPS)
    with sqlite3.connect(tmp_path / "j.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    journal.close()


def test_a_schema_change_migrates_forward_and_keeps_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.sqlite3"
    old = Journal(path)
    row_id = old.begin(NewTask(model="wan2.7-image", prompt="keep me", parameters={"n": 1}))
    old.submitted(row_id, "task-1", "req-1", Status.PENDING, next_poll_at=0)
    old.close()
    future = (*migrations.STEPS, "ALTER TABLE tasks ADD COLUMN note TEXT DEFAULT 'migrated'")
    monkeypatch.setattr(migrations, "STEPS", future)
    new = Journal(path)
    assert new.version == len(future)
    row = new.get("task-1")
    assert row is not None and (row.prompt, row.parameters, row.status) == ("keep me", {"n": 1}, "PENDING")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT note FROM tasks").fetchone()[0] == "migrated"
    new.close()


async def test_journal_calls_run_off_the_event_loop_one_at_a_time(tmp_path: Path) -> None:
    journal = AsyncJournal(Journal(tmp_path / "j.sqlite3"))
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def write(on: Journal, i: int) -> int:
        seen.append(threading.get_ident())
        return on.begin(NewTask(model="m", prompt=f"p{i}", parameters={}))

    ids: list[int] = []

    async def one(i: int) -> None:
        ids.append(await journal.call(write, i))

    async with anyio.create_task_group() as group:
        for i in range(20):
            group.start_soon(one, i)
    assert loop_thread not in seen
    assert sorted(ids) == list(range(1, 21))
    rows, total = journal.sync.recent(limit=50)
    assert total == 20 and rows[0].prompt == "p19"
    journal.sync.close()


@pytest.mark.usefixtures("no_retry_waits")
async def test_a_submission_is_journaled_before_it_is_sent(tmp_path: Path) -> None:
    """A submit that never reaches the API still leaves its row: the row was written first."""
    closed = "http://127.0.0.1:9/api/v1"  # the discard port: connection refused
    settings = Settings(
        api_key=SecretStr(EMULATOR_KEY),
        base_url=closed,
        output_dir=tmp_path,
        journal_path=tmp_path / "j.sqlite3",
        harvest=False,
    )
    async with httpx2.AsyncClient() as http, Client(build_app(settings, http)) as client:
        result = await client.call_tool("submit_task", {"prompt": "never sent"})
        assert result.is_error and "Nothing was sent" in str(result.content[0])
        listed = await client.call_tool("list_tasks", {})
    assert listed.structured_content is not None
    (row,) = listed.structured_content["tasks"]
    assert (row["status"], row["prompt"], row.get("task_id")) == ("REJECTED", "never sent", None)


async def test_rows_hold_no_image_bytes_and_no_key(
    mcp: Client, server_settings: Settings, make_image: ImageFactory
) -> None:
    photo = make_image("photo.png", (640, 480), colour=(12, 34, 56))
    data_url = "data:image/png;base64," + base64.b64encode(photo.read_bytes()).decode()
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [data_url, str(photo)], "size": "1K"})
    assert not result.is_error
    stored = b"".join(p.read_bytes() for p in server_settings.journal_path.parent.glob("journal.sqlite3*"))
    assert base64.b64encode(photo.read_bytes())[:200] not in stored
    assert b"data:image" not in stored
    assert EMULATOR_KEY.encode() not in stored


@pytest.mark.both_journals
async def test_an_input_whose_file_name_is_not_utf_8_is_journaled_and_read_back_exactly(
    mcp: Client, server_settings: Settings, make_image: ImageFactory, tmp_path: Path
) -> None:
    """Its resolved path holds lone surrogates (``os.fsdecode``): written as JSON escapes, never refused."""
    target = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"photo\xff.png"))
    make_image("photo.png", (640, 480)).rename(target)
    (tmp_path / "link.png").symlink_to(target)
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(tmp_path / "link.png")], "size": "1K"})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    journal = Journal(server_settings.journal_location)
    try:
        row = journal.get(result.structured_content["task_id"])
    finally:
        journal.close()
    assert row is not None
    assert [item["path"] for item in row.inputs] == [target]


def test_a_postgresql_journal_session_ends_a_transaction_left_idle_for_a_minute(postgres: PostgresServer) -> None:
    """So that a replica frozen inside the daily budget's check cannot hold its lock for longer."""
    database = PostgresDatabase(postgres.database())
    try:
        row = database.execute("SHOW idle_in_transaction_session_timeout").fetchone()
    finally:
        database.close()
    assert row is not None and row["idle_in_transaction_session_timeout"] == "1min"


def test_each_async_journal_method_takes_the_arguments_of_the_journal_method_it_runs() -> None:
    """The async face cannot drift from the journal: same parameters, defaults and result, method for method."""
    named = [name for name in vars(AsyncJournal) if not name.startswith("_") and name not in ("call", "sync")]
    assert len(named) > 20
    for name in named:
        ours, theirs = inspect.signature(getattr(AsyncJournal, name)), inspect.signature(getattr(Journal, name))
        assert ours == theirs, f"AsyncJournal.{name}{ours} runs Journal.{name}{theirs}"


def test_every_dashscope_status_is_a_journal_status_of_the_same_name() -> None:
    """One vocabulary: what the wire reports is read as the journal's status of that name, and nothing else."""
    for wire in TaskStatus:
        assert Status.of(wire) is Status[wire.name] and Status.of(wire) == wire
    assert Status.of("SOMETHING_NEWER") is Status.UNKNOWN


def test_every_status_spelled_in_the_journals_sql_is_a_status() -> None:
    """Statuses are bound as parameters; any a literal SQL string still spells must be one of ``Status``."""
    package = Path(migrations.__file__).parent
    spelled = {
        word
        for module in package.glob("*.py")
        for word in re.findall(r"'([A-Z][A-Z_]+)'", module.read_text(encoding="utf-8"))
    }
    assert spelled <= set(Status), spelled - set(Status)
