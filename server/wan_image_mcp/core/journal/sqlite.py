"""The task journal's file: its schema, migrated forward, opened, and checked at start.

The schema is migrated forward by the migrations written once for both dialects (``migrations``; ``PRAGMA
user_version`` says how far), never dropped; a newer journal can still be read by an older server. ``connect``
opens a journal (WAL, ``synchronous=FULL``) and migrates it. A journal SQLite cannot read (random bytes, a zeroed
page) is never written to or replaced: ``check_journal`` (run by ``serve`` at start, and by ``connect``) reads it
read-only with ``PRAGMA quick_check`` and raises one ConfigurationError naming the file, what is wrong and what to
do; damage found later says the same (``damaged``). So is anything else at the journal's path that is not a
wan-image-mcp journal: a directory, a FIFO, another application's database (tables that are not ours, or no
``tasks`` table) is refused, never migrated into.
"""

from __future__ import annotations

import contextlib
import functools
import stat
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, JournalBusy
from .migrations import SQLITE, migrations

if TYPE_CHECKING:
    import sqlite3


def schema_version(db: sqlite3.Connection) -> int:
    """How many of the migrations (``migrations.STEPS``) the database has had (its ``PRAGMA user_version``; 0 for a
    new one)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


@contextmanager
def transaction(db: sqlite3.Connection) -> Generator[None]:
    """One write transaction: committed if the block ends, rolled back if it raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def migrate(db: sqlite3.Connection) -> None:
    """Apply every migration past the database's version, each in its own transaction."""
    steps = migrations(SQLITE)
    for version in range(schema_version(db), len(steps)):
        with transaction(db):
            if schema_version(db) != version:  # another process migrated meanwhile
                continue
            for statement in steps[version]:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")


CORRUPT = (11, 26)
"""SQLITECORRUPT and SQLITE_NOTADB: the file is damaged, or is not a database at all."""


def damaged(path: Path, why: str) -> ConfigurationError:
    """The one-line error for a journal SQLite cannot read, saying what to do."""
    why = "; ".join(line.strip() for line in why.splitlines() if line.strip() and not line.startswith("***"))
    return ConfigurationError(
        f"the task journal {path} is damaged ({why[:200]}). It was left as it is: move it aside (or restore a backup) "
        "and start again to begin a new one, or point WAN_MCP_DB at another file"
    )


def _tables(db: sqlite3.Connection) -> frozenset[str]:
    """The database's own tables (not SQLite's, such as ``sqlite_sequence``)."""
    rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")
    return frozenset(str(row[0]) for row in rows)


def _task_columns(db: sqlite3.Connection) -> frozenset[str]:
    return frozenset(str(row[1]) for row in db.execute("PRAGMA table_info(tasks)"))


@functools.cache
def _schema(version: int) -> tuple[frozenset[str], frozenset[str]]:
    """The tables, and the tasks table's columns, that the migrations make up to ``version``."""
    import sqlite3

    db = sqlite3.connect(":memory:")
    try:
        for step in migrations(SQLITE)[:version]:
            for statement in step:
                db.execute(statement)
        return _tables(db), _task_columns(db)
    finally:
        db.close()


def _not_ours(db: sqlite3.Connection) -> str | None:
    """Why this database is not a wan-image-mcp journal, or None if it is one (or is empty: a new journal).

    A journal of a version this server knows has exactly that version's tables and columns; one of a newer
    version (read-only compatible) has at least this version's; anything else belongs to someone else."""
    version, tables = schema_version(db), _tables(db)
    if version == 0 and not tables:
        return None
    listed = f"user_version {version}, tables: {', '.join(sorted(tables)) or 'none'}"
    if "tasks" not in tables:
        return f"it has no tasks table ({listed})"
    latest = len(migrations(SQLITE))
    ours, columns = _schema(min(version, latest)), (tables, _task_columns(db))
    fits = columns == ours if version <= latest else columns[0] >= ours[0] and columns[1] >= ours[1]
    return None if fits else f"its tables are not a journal's of version {version} ({listed})"


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def check_journal(path: Path) -> None:
    """Refuse, in one ConfigurationError naming the file and what is wrong, a journal path that is not a regular
    file (a directory, a FIFO), a database SQLite cannot read (random bytes, a zeroed page: ``damaged``) and one
    that is not a wan-image-mcp journal (another application's), opening it read-only so the file is never
    written. A journal that does not exist yet is fine: it is created on first use."""
    import sqlite3

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigurationError(f"cannot open the task journal at {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise ConfigurationError(
            f"the task journal {path} is {kind}, not a file. It was left as it is: point WAN_MCP_DB at a file "
            "(one that does not exist yet begins a new journal)"
        )
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            verdict = [str(row[0]) for row in db.execute("PRAGMA quick_check")]
            foreign = _not_ours(db) if verdict == ["ok"] else None
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorcode & 0xFF in CORRUPT:
            raise damaged(path, str(exc)) from None
        raise ConfigurationError(f"cannot open the task journal at {path}: {exc}") from None
    if verdict != ["ok"]:
        raise damaged(path, "\n".join(verdict))
    if foreign is not None:
        raise ConfigurationError(
            f"the task journal {path} is not a wan-image-mcp journal: {foreign}. It was left as it is: point "
            "WAN_MCP_DB at another file (one that does not exist yet begins a new journal)"
        )


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the journal at ``path`` (created if missing), in WAL mode with ``synchronous=FULL``, migrated
    to the latest schema; usable from any thread, one at a time. Raises ConfigurationError for a path that is not
    a readable wan-image-mcp journal (``check_journal``), or that cannot be opened or migrated."""
    import sqlite3

    check_journal(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=30000")
        migrate(db)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigurationError(f"cannot open the task journal at {path}: {exc}") from exc
    return db


class SqliteDatabase:
    """The journal's SQLite connection (``connect``), with the few calls the journal's queries need, as
    ``postgres.PostgresDatabase`` offers them for PostgreSQL."""

    def __init__(self, path: Path) -> None:
        import sqlite3

        self.name = str(path)
        self._db = connect(path)
        self.duplicate: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
        """What a write that would give two rows one task id raises."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT into ``tasks``; returns the new row's id."""
        cursor = self._db.execute(sql, params)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return transaction(self._db)

    @contextlib.contextmanager
    def serialised(self, lock: int) -> Generator[None]:
        """Any write transaction: ``BEGIN IMMEDIATE`` takes the database's one write lock at its start (waiting up to
        the busy timeout for another connection's), so every such transaction, whatever ``lock``, runs alone.
        JournalBusy when the busy timeout ran out."""
        import sqlite3

        del lock
        try:
            with transaction(self._db):
                yield
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            raise JournalBusy(f"another process has held the journal {self.name} for writing too long") from None

    @property
    def version(self) -> int:
        return schema_version(self._db)

    def close(self) -> None:
        self._db.close()
