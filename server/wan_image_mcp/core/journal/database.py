"""The journal's database, SQLite or PostgreSQL: the seam between ``journal.Journal``'s queries and a
connection. ``open_database`` opens the one a location names: a ``postgresql://`` URL
(``postgres.PostgresDatabase``) or a file's path (``sqlite.SqliteDatabase``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from .postgres import SCHEMES


class Row(Protocol):
    """A result row by column name (``sqlite3.Row``, ``postgres.Row``)."""

    def keys(self) -> Iterable[str]: ...
    def __getitem__(self, key: str, /) -> Any: ...


class Database(Protocol):
    """What the journal's queries need of a connection: SQLite's (``sqlite.SqliteDatabase``) or
    PostgreSQL's (``postgres.PostgresDatabase``). SQL is written once, with ``?`` placeholders."""

    name: str
    duplicate: tuple[type[Exception], ...]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def insert(self, sql: str, params: Sequence[Any]) -> int: ...
    def transaction(self) -> AbstractContextManager[None]: ...
    def serialised(self, lock: int) -> AbstractContextManager[None]:
        """A transaction that no other ``serialised(lock)`` transaction on this database runs beside, from any
        connection or process: a check read in one and the row written on its strength are one step to the others."""
        ...

    @property
    def version(self) -> int: ...
    def close(self) -> None: ...


def is_postgres(location: Path | str) -> bool:
    """Whether a journal location (``WAN_MCP_DB``) names a PostgreSQL database rather than a SQLite file."""
    return isinstance(location, str) and location.startswith(SCHEMES)


def open_database(location: Path | str) -> Database:
    """The journal's database at ``location``, opened and migrated. Raises ConfigurationError naming it (never
    with a password) when it cannot be opened, is damaged, or is not a wan-image-mcp journal."""
    if is_postgres(location):
        from .postgres import PostgresDatabase

        return PostgresDatabase(str(location))
    from .sqlite import SqliteDatabase

    return SqliteDatabase(Path(location))
