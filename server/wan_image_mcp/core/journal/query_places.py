"""The account's task-query budget shared by every replica on one PostgreSQL journal: DashScope allows 20 task
queries a second per account, not per server, so replicas take their places from one table.

A place is a row: taken when a query is sent, given back (``answered_at``) when it is answered, and gone once
it is ``window`` old, as ``QueryRate`` counts them in one process. Places are taken one at a time under an
advisory lock, held only for the statements that count and insert (never across a query). A place whose
replica died before giving it back is freed after ``STALE`` seconds. Times are the servers' own clocks (NTP
keeps them within milliseconds; the budget keeps one query of margin).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Final

from .postgres import redacted

if TYPE_CHECKING:
    import psycopg

TABLE: Final = "query_places"
_LOCK: Final = 0x57414E51  # "WANQ"
STALE: Final = 120.0
"""Seconds after which a place never given back (its replica was killed mid-query) counts no more."""


class PostgresPlaces:
    """``dashscope.rate.SharedPlaces`` in a PostgreSQL database (the journal's), for any thread."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.name = redacted(url)
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            import psycopg

            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
            with conn.transaction():  # replicas starting together: IF NOT EXISTS alone races in PostgreSQL
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS query_places (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                    " taken_at DOUBLE PRECISION NOT NULL, answered_at DOUBLE PRECISION)"
                )
            self._conn = conn
        return self._conn

    def take(self, limit: int, window: float, now: float) -> tuple[int | None, float]:
        """A place (its id, 0.0) when fewer than ``limit`` are held across every server; else (None, the seconds
        until the oldest answered place ages out, or a short poll while all are in flight)."""
        with self._lock:
            db = self._db()
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                db.execute(
                    "DELETE FROM query_places WHERE answered_at <= %s OR taken_at <= %s", (now - window, now - STALE)
                )
                found = db.execute("SELECT count(*), min(answered_at) FROM query_places").fetchone()
                assert found is not None
                held, oldest = int(found[0]), found[1]
                if held < limit:
                    row = db.execute("INSERT INTO query_places (taken_at) VALUES (%s) RETURNING id", (now,)).fetchone()
                    assert row is not None
                    return int(row[0]), 0.0
        return None, max(0.01, oldest + window - now) if oldest is not None else 0.05

    def give_back(self, place: int, now: float) -> None:
        """The query of ``place`` was answered (or failed) at ``now``."""
        with self._lock:
            self._db().execute("UPDATE query_places SET answered_at = %s WHERE id = %s", (now, place))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
