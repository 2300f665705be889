"""How fast task queries may go: DashScope counts them per account (docs/wan-api.md §1.3)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import anyio

from ..core.clock import SYSTEM_CLOCK, Clock

QUERY_LIMIT = 20
"""DashScope's task queries per second per account (docs/wan-api.md §1.3)."""


class QueryRate:
    """At most ``limit`` task queries in any ``window`` seconds *as the service counts them*, shared by every
    caller. The service counts a query when it arrives, somewhere between its sending and its answer, so a query
    holds its place from being sent until ``window`` after its answer: however queries bunch up in transit, no
    window can see more than ``limit`` of them arrive. After a quiet moment a burst goes at once (a list showing
    ten tasks done fetches all ten together); a long run is held to ``limit`` per ``window`` plus a round trip.

    The default is 19 a second, one under the account's 20, for a service that counts both ends of its second.
    """

    def __init__(self, limit: int = QUERY_LIMIT - 1, window: float = 1.0, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
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
        try:
            yield
        finally:  # no await here: a cancelled query gives back its place all the same
            self._in_flight -= 1
            self._answered.append(self._clock.monotonic())
            self._answer.set()
            self._answer = anyio.Event()
