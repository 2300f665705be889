"""The journal's schema, written once (``core/journal/migrations.py``): SQLite and PostgreSQL reach the same tables
and columns, and a journal left at any earlier version by an older server migrates forward keeping its rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.support.postgres_server import PostgresServer
from wan_image_mcp.core.journal import Journal, NewTask, Status
from wan_image_mcp.core.journal.migrations import POSTGRES, SQLITE, STEPS, migrations

Schema = dict[str, set[str]]
"""Each table and its columns."""


def sqlite_schema(path: Path) -> Schema:
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            table: {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            for table in tables
            if not table.startswith("sqlite_")
        }


def postgres_schema(url: str) -> Schema:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name NOT IN ('journal_meta', 'query_places')"  # the version kept, and the replicas' places
        ).fetchall()
    schema: Schema = {}
    for table, column in rows:
        schema.setdefault(str(table), set()).add(str(column))
    return schema


OLD_ROW = "INSERT INTO tasks (task_id, model, prompt, status, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s)"
OLD_VALUES = ("old-task", "wan2.7-image", "written by an older server", "SUCCEEDED", 1.0, 2.0)
"""A row as a server of any version wrote it (these columns are version 1's)."""


def sqlite_at(path: Path, version: int) -> str:
    """A SQLite journal as a server of schema ``version`` left it."""
    with sqlite3.connect(path) as db:
        for step in migrations(SQLITE)[:version]:
            for statement in step:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")
        if version:
            db.execute(OLD_ROW.replace("%s", "?"), OLD_VALUES)
    db.close()
    return str(path)


def postgres_at(database: str, version: int) -> str:
    """A PostgreSQL journal as a server of schema ``version`` left it, in a schema of its own in ``database``."""
    with psycopg.connect(database, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA v{version}")  # pyright: ignore[reportArgumentType, reportCallIssue]
    url = f"{database}?options=-csearch_path%3Dv{version}"
    with psycopg.connect(url, autocommit=True) as db:
        for step in migrations(POSTGRES)[:version]:
            for statement in step:
                db.execute(statement)  # pyright: ignore[reportArgumentType, reportCallIssue]
        db.execute("CREATE TABLE journal_meta (version INTEGER NOT NULL)")
        db.execute("INSERT INTO journal_meta (version) VALUES (%s)", (version,))
        if version:
            db.execute(OLD_ROW, OLD_VALUES)
    return url


def test_sqlite_and_postgresql_journals_have_the_same_tables_and_columns(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    url = postgres.database()
    Journal(tmp_path / "j.sqlite3").open().close()
    Journal(url).open().close()
    ours = sqlite_schema(tmp_path / "j.sqlite3")
    assert postgres_schema(url) == ours
    assert {"tasks", "uploads"} <= set(ours) and {"status", "candidate_of", "tenant_subject"} <= ours["tasks"]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_journal_at_every_earlier_version_migrates_to_the_latest_keeping_its_rows(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if dialect == "sqlite":
        make: Callable[[int], str] = lambda version: sqlite_at(tmp_path / f"v{version}.sqlite3", version)  # noqa: E731
        schema: Callable[[str], Schema] = lambda location: sqlite_schema(Path(location))  # noqa: E731
    else:
        database = request.getfixturevalue("postgres").database()
        make = lambda version: postgres_at(database, version)  # noqa: E731
        schema = postgres_schema
    latest = make(len(STEPS))
    for version in range(len(STEPS)):
        location = make(version)
        journal = Journal(location).open()
        try:
            assert journal.version == len(STEPS), version
            old = journal.get("old-task")
            assert version == 0 or (old is not None and (old.prompt, old.status) == (OLD_VALUES[2], Status.SUCCEEDED))
            row_id = journal.begin(NewTask(model="wan2.7-image", prompt=f"at {version}", parameters={}))
            journal.submitted(row_id, f"task-{version}", None, Status.PENDING, next_poll_at=0)
        finally:
            journal.close()
        assert schema(location) == schema(latest), version
