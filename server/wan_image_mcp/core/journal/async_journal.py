"""The journal for async code: ``AsyncJournal.run(fn, *args)`` runs a ``Journal`` method on the journal's own
worker thread, one call at a time, so that SQLite never blocks the event loop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

from .queries import Journal
from .sqlite import CORRUPT, damaged

T = TypeVar("T")
P = ParamSpec("P")


class AsyncJournal:
    """The journal for async code: each call runs on a worker thread, one call at a time."""

    def __init__(self, journal: Journal) -> None:
        self.sync = journal
        self._limiter = anyio.CapacityLimiter(1)
        self._lock = threading.Lock()

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on the journal's worker thread; pyright checks the arguments against ``fn``'s
        own signature (``run(journal.sync.saved, 123, "not a list")`` is an error). A damaged database raises
        ConfigurationError naming the file."""

        def call() -> T:
            import sqlite3

            with self._lock:
                try:
                    return fn(*args, **kwargs)
                except sqlite3.DatabaseError as exc:  # damaged while the server runs: every caller says so
                    if self.sync.path is not None and exc.sqlite_errorcode & 0xFF in CORRUPT:
                        raise damaged(self.sync.path, str(exc)) from None
                    raise

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)
