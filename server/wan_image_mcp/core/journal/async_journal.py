"""The journal for async code: ``AsyncJournal`` has one awaitable method per ``Journal`` operation
(``await journal.get(task_id, tenant=…)``, ``await journal.saved(…)``), each run on the journal's own worker
thread, one call at a time, so that SQLite never blocks the event loop.

Functions of other rooms that read the journal in several steps (``begin_within_budget``, a sink's ``lookup``, the
completion suggestions) run on that thread through the one escape hatch, ``AsyncJournal.call``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio
import anyio.to_thread

from .queries import Journal
from .rows import Status, TaskRow, Tenant
from .sqlite import CORRUPT, damaged

__all__ = ["AsyncJournal"]

T = TypeVar("T")
P = ParamSpec("P")


class AsyncJournal:
    """The journal for async code: each call runs on a worker thread, one call at a time. ``sync`` is the
    ``Journal`` itself, for code already off the event loop (set-up, tests, closing it)."""

    def __init__(self, journal: Journal) -> None:
        self.sync = journal
        self._limiter = anyio.CapacityLimiter(1)
        self._lock = threading.Lock()

    async def _run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on the journal's worker thread, alone. A damaged database raises
        ConfigurationError naming the file."""

        def run() -> T:
            import sqlite3

            with self._lock:
                try:
                    return fn(*args, **kwargs)
                except sqlite3.DatabaseError as exc:  # damaged while the server runs: every caller says so
                    if self.sync.path is not None and exc.sqlite_errorcode & 0xFF in CORRUPT:
                        raise damaged(self.sync.path, str(exc)) from None
                    raise

        return await anyio.to_thread.run_sync(run, limiter=self._limiter)

    async def call(self, fn: Callable[Concatenate[Journal, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(journal, *args, **kwargs)`` on the journal's worker thread, as one step no other journal call
        interleaves with: for a function of another room that reads or writes the journal in several steps.
        Pyright checks the arguments against ``fn``'s own signature."""
        return await self._run(fn, self.sync, *args, **kwargs)

    # --- writing (``Journal``'s docstrings say what each records) -----------------------------------

    async def submitted(
        self, row_id: int, task_id: str, request_id: str | None, status: Status, *, next_poll_at: float
    ) -> None:
        await self._run(self.sync.submitted, row_id, task_id, request_id, status, next_poll_at=next_poll_at)

    async def uncertain(self, row_id: int, message: str) -> None:
        await self._run(self.sync.uncertain, row_id, message)

    async def reconciled(self, row_id: int, task_id: str, status: Status) -> bool:
        return await self._run(self.sync.reconciled, row_id, task_id, status)

    async def ambiguous(self, row_id: int, candidates: Sequence[str], message: str, *, unlike: bool = False) -> None:
        await self._run(self.sync.ambiguous, row_id, candidates, message, unlike=unlike)

    async def harvest_candidates(self, *, younger_than: float) -> None:
        await self._run(self.sync.harvest_candidates, younger_than=younger_than)

    async def rejected(self, row_id: int, code: str, message: str) -> None:
        await self._run(self.sync.rejected, row_id, code, message)

    async def observed(
        self,
        task_id: str,
        *,
        status: Status,
        request_id: str | None = None,
        result_urls: Sequence[str] = (),
        usage: dict[str, Any] | None = None,
        actual_prompt: str | None = None,
        texts: Sequence[str] = (),
        text_places: Sequence[int] = (),
        error_code: str | None = None,
        error_message: str | None = None,
        next_poll_at: float | None = None,
        submit_time: str | None = None,
    ) -> None:
        await self._run(
            self.sync.observed,
            task_id,
            status=status,
            request_id=request_id,
            result_urls=result_urls,
            usage=usage,
            actual_prompt=actual_prompt,
            texts=texts,
            text_places=text_places,
            error_code=error_code,
            error_message=error_message,
            next_poll_at=next_poll_at,
            submit_time=submit_time,
        )

    async def saved(self, task_id: str, images: Sequence[dict[str, Any]]) -> None:
        await self._run(self.sync.saved, task_id, images)

    async def download_failed(self, task_id: str, message: str, *, retry_at: float | None) -> None:
        await self._run(self.sync.download_failed, task_id, message, retry_at=retry_at)

    async def schedule(self, task_id: str, at: float | None) -> None:
        await self._run(self.sync.schedule, task_id, at)

    async def schedule_many(self, times: Mapping[str, float | None]) -> None:
        await self._run(self.sync.schedule_many, times)

    async def claim(self, task_id: str, owner: str, *, now: float, until: float, over: str | None = None) -> bool:
        return await self._run(self.sync.claim, task_id, owner, now=now, until=until, over=over)

    async def claimant(self, task_id: str) -> str | None:
        return await self._run(self.sync.claimant, task_id)

    async def release(self, task_id: str, owner: str) -> None:
        await self._run(self.sync.release, task_id, owner)

    async def remember_upload(self, sha256: str, model: str, url: str, size: int) -> None:
        await self._run(self.sync.remember_upload, sha256, model, url, size)

    # --- reading ------------------------------------------------------------------------------------

    async def get(self, task_id: str, *, tenant: Tenant | None = None) -> TaskRow | None:
        return await self._run(self.sync.get, task_id, tenant=tenant)

    async def to_harvest(self, *, younger_than: float) -> list[TaskRow]:
        return await self._run(self.sync.to_harvest, younger_than=younger_than)

    async def unresolved(self, *, younger_than: float) -> list[TaskRow]:
        return await self._run(self.sync.unresolved, younger_than=younger_than)

    async def contested(self, *, younger_than: float) -> set[str]:
        return await self._run(self.sync.contested, younger_than=younger_than)

    async def known(self, task_ids: Collection[str]) -> set[str]:
        return await self._run(self.sync.known, task_ids)

    async def submit_times(self, *, limit: int = 50) -> list[tuple[float, str]]:
        return await self._run(self.sync.submit_times, limit=limit)

    async def cached_upload(self, sha256: str, model: str, *, since: float) -> str | None:
        return await self._run(self.sync.cached_upload, sha256, model, since=since)

    async def requested_since(self, since: float) -> int:
        return await self._run(self.sync.requested_since, since)

    async def recent(
        self, *, status: Status | None = None, limit: int = 20, offset: int = 0, tenant: Tenant | None = None
    ) -> tuple[list[TaskRow], int]:
        return await self._run(self.sync.recent, status=status, limit=limit, offset=offset, tenant=tenant)
