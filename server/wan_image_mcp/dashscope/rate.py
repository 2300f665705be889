"""How fast task queries may go: DashScope counts them per account (docs/wan-api.md §1.3)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
import anyio.to_thread

from ..core.clock import SYSTEM_CLOCK, Clock

QUERY_LIMIT = 20
"""DashScope's task queries per second per account (docs/wan-api.md §1.3)."""


class SharedPlaces(Protocol):
    """Places in the account's query budget shared with other servers (replicas on one database): ``take``
    waits for one and returns its id, ``give_back`` marks its query answered. Both may block: they run on a
    worker thread."""

    def take(self, limit: int, window: float, now: float) -> tuple[int | None, float]:
        """A place (its id, and 0) when fewer than ``limit`` queries are in flight or were answered within
        ``window`` of ``now`` across every server; else (None, seconds to wait before asking again)."""
        ...

    def give_back(self, place: int, now: float) -> None:
        """The query of ``place`` was answered (or failed) at ``now``."""
        ...


class QueryRate:
    """At most ``limit`` task queries in any ``window`` seconds *as the service counts them*, shared by every
    caller. The service counts a query when it arrives, somewhere between its sending and its answer, so a query
    holds its place from being sent until ``window`` after its answer: however queries bunch up in transit, no
    window can see more than ``limit`` of them arrive. After a quiet moment a burst goes at once (a list showing
    ten tasks done fetches all ten together); a long run is held to ``limit`` per ``window`` plus a round trip.

    The default is 19 a second, one under the account's 20, for a service that counts both ends of its second.
    """

    def __init__(
        self,
        limit: int = QUERY_LIMIT - 1,
        window: float = 1.0,
        *,
        clock: Clock = SYSTEM_CLOCK,
        shared: SharedPlaces | None = None,
    ) -> None:
        self._clock = clock
        self._shared = shared
        """The budget other servers on the account use too (replicas): a place there is taken after one here."""
        self._limit = limit
        self._window = window
        self._answered: deque[float] = deque()  # when recent answers came, oldest first
        self._in_flight = 0
        self._turn = anyio.Lock()  # waiters go in turn
        self._answer = anyio.Event()  # set (and replaced) at each answer

    @asynccontextmanager
    async def query(self) -> AsyncGenerator[None]:
        """Wait for a place, then hold it while the query is sent and answered (or fails)."""
        async with self._turn:
            while True:
                now = self._clock.monotonic()
                while self._answered and self._answered[0] + self._window <= now:
                    self._answered.popleft()
                if self._in_flight + len(self._answered) < self._limit:
                    break
                answer = self._answer  # every place is taken: wait for the oldest answer to age, or a first answer
                await self._clock.wait(answer, self._answered[0] + self._window - now if self._answered else math.inf)
            self._in_flight += 1
        place = None
        try:
            place = await self._shared_place() if self._shared is not None else None
            yield
        finally:  # no await before this: a cancelled query gives back its place all the same
            self._in_flight -= 1
            self._answered.append(self._clock.monotonic())
            self._answer.set()
            self._answer = anyio.Event()
            if self._shared is not None and place is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._shared.give_back, place, self._clock.time())

    async def _shared_place(self) -> int:
        """A place in the shared budget, waiting (on this rate's clock) until one is free."""
        assert self._shared is not None
        while True:
            place, wait = await anyio.to_thread.run_sync(
                self._shared.take, self._limit, self._window, self._clock.time()
            )
            if place is not None:
                return place
            await self._clock.sleep(wait)
