"""The task journal in PostgreSQL (``WAN_MCP_DB=postgresql://…``), for a team's server: the same rows, queries and
guarantees as the SQLite journal, through psycopg 3.

The migrations are SQLite's, written once (``migrations``) and spelled in PostgreSQL's types, and the
version reached is kept in ``journal_meta``; replicas starting together migrate once (an advisory lock). The
journal's queries are written once, with ``?`` placeholders, and run here as psycopg's ``%s``. The connection
is in autocommit, as the SQLite one is (``isolation_level=None``): a statement outside ``transaction`` commits
at once, so a row is durable before the create request is sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigurationError, JournalBusy
from .migrations import POSTGRES, migrations

if TYPE_CHECKING:
    import psycopg

SCHEMES: Final = ("postgresql://", "postgres://")
"""What a ``WAN_MCP_DB`` value starts with when it names a PostgreSQL database."""

IDLE_IN_TRANSACTION: Final = 60.0
"""Seconds after which PostgreSQL ends a journal session left idle inside a transaction, freeing its locks."""
_MIGRATION_LOCK: Final = 0x57414E4A  # "WANJ": the advisory lock replicas take to migrate one at a time


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Row(tuple[Any, ...]):
    """A result row readable by position and by column name, as ``sqlite3.Row`` is."""

    _names: tuple[str, ...]

    def __new__(cls, names: tuple[str, ...], values: Sequence[Any]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def keys(self) -> list[str]:
        return list(self._names)

    def __getitem__(self, key: Any) -> Any:  # pyright: ignore[reportIncompatibleMethodOverride]
        return super().__getitem__(self._names.index(key) if isinstance(key, str) else key)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    """psycopg's row factory: rows like ``sqlite3.Row``."""
    names = tuple(str(column.name) for column in cursor.description or ())

    def make(values: Sequence[Any]) -> Row:
        return Row(names, values)

    return make


_PLACEHOLDER = re.compile(r"\?")


class PostgresDatabase:
    """One connection to the journal's PostgreSQL database, used from one thread at a time."""

    def __init__(self, url: str) -> None:
        self.name = redacted(url)
        self._conn = _connect(url, self.name)
        import psycopg

        self.duplicate: tuple[type[Exception], ...] = (psycopg.errors.UniqueViolation,)
        """What a write that would give two rows one task id raises."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self._conn.execute(_PLACEHOLDER.sub("%s", sql), params)  # pyright: ignore[reportArgumentType]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(_PLACEHOLDER.sub("%s", sql), rows)  # pyright: ignore[reportArgumentType]

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT into ``tasks``; returns the new row's id."""
        found = self.execute(sql + " RETURNING id", params).fetchone()
        assert found is not None
        return int(found[0])

    @contextmanager
    def transaction(self) -> Generator[None]:
        with self._conn.transaction():
            yield

    @contextmanager
    def serialised(self, lock: int) -> Generator[None]:
        """A transaction holding the advisory lock ``lock`` until it ends; raises JournalBusy at once, having
        changed nothing, while another connection holds it (the caller waits and tries again, so that this
        connection is never stuck behind another replica's transaction while the server's other journal work waits
        for it). Each statement then reads what the transactions before it committed (read committed)."""
        with self._conn.transaction():
            taken = self._conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (lock,)).fetchone()
            if not (taken and taken[0]):
                raise JournalBusy(f"another server on the journal {self.name} holds lock {lock:#x}")
            yield

    @property
    def version(self) -> int:
        return _version(self._conn)

    def close(self) -> None:
        self._conn.close()


def _version(conn: psycopg.Connection[Any]) -> int:
    found = conn.execute("SELECT to_regclass('journal_meta') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return 0
    row = conn.execute("SELECT version FROM journal_meta").fetchone()
    return int(row[0]) if row else 0


def _connect(url: str, name: str) -> psycopg.Connection[Any]:
    """A connection in autocommit, migrated to the latest schema. Raises ConfigurationError naming the database
    (without its password) for one that cannot be reached, or holds tables that are not a journal's."""
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            f"WAN_MCP_DB={name} names a PostgreSQL database, but psycopg is not installed: "
            "pip install 'wan-image-mcp[postgres]'"
        ) from None
    try:
        conn = psycopg.connect(url, autocommit=True, row_factory=_row_factory, connect_timeout=10)
    except psycopg.Error as exc:
        raise ConfigurationError(f"cannot open the task journal at {name}: {str(exc).strip()[:300]}") from None
    try:
        # A replica frozen inside a transaction (SIGSTOP, a paused container, a suspended VM) would hold its locks,
        # the daily budget's among them, for as long as it is frozen: PostgreSQL ends such a session instead.
        conn.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, false)", (f"{IDLE_IN_TRANSACTION:.0f}s",)
        )
        _migrate(conn, name)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: psycopg.Connection[Any], name: str) -> None:
    import psycopg

    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS journal_meta (version INTEGER NOT NULL)")
            if conn.execute("SELECT version FROM journal_meta").fetchone() is None:
                tables = conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                    " AND table_name NOT IN ('journal_meta', 'query_places')"  # query_places.py's, maybe first
                ).fetchall()
                if tables:
                    listed = ", ".join(sorted(str(t[0]) for t in tables))
                    raise ConfigurationError(
                        f"the task journal {name} is not a wan-image-mcp journal: its schema holds other tables "
                        f"({listed}). It was left as it is: point WAN_MCP_DB at an empty database"
                    )
                conn.execute("INSERT INTO journal_meta (version) VALUES (0)")
            steps = migrations(POSTGRES)
            for version in range(_version(conn), len(steps)):
                for statement in steps[version]:
                    conn.execute(statement)  # pyright: ignore[reportArgumentType, reportCallIssue]
                conn.execute("UPDATE journal_meta SET version = %s", (version + 1,))
    except psycopg.Error as exc:
        raise ConfigurationError(f"cannot migrate the task journal at {name}: {str(exc).strip()[:300]}") from None
