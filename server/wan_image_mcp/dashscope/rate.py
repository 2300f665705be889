"""How fast task queries may go: DashScope counts them per account (docs/dashscope-api.md#task-life-cycle), and who
goes first when they queue: each owner (a tenant) in turn (``Turns``), so that one with hundreds of tasks waiting
delays another's next query by a turn, not by hundreds. Whose a query is comes from the context it is made in
(``on_behalf_of``)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncGenerator, Generator, Hashable
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Protocol

import anyio
import anyio.to_thread

from .clock import SYSTEM_CLOCK, Clock

QUERY_LIMIT = 20
"""DashScope's task queries per second per account (docs/dashscope-api.md#task-life-cycle)."""


_OWNER: ContextVar[Hashable] = ContextVar("wan_query_owner", default=None)


@contextmanager
def on_behalf_of(owner: Hashable) -> Generator[None]:
    """Task queries made inside the block are ``owner``'s (a tenant; None: the server's own, or no one's)."""
    token = _OWNER.set(owner)
    try:
        yield
    finally:
        _OWNER.reset(token)


def query_owner() -> Hashable:
    """Whose the task queries made here are (``on_behalf_of``)."""
    return _OWNER.get()


class Turns:
    """At most ``capacity`` holders at a time, shared fairly between owners: while some wait, each place given back
    goes to the next owner in a rotation that has one waiting, and each owner's waiters go in the order they came.
    With one owner it is a FIFO semaphore."""

    def __init__(self, capacity: int) -> None:
        self._free = capacity
        self._waiting: dict[Hashable, deque[anyio.Event]] = {}
        """Waiters by owner; the owners in the order of their next turn."""

    @asynccontextmanager
    async def hold(self, owner: Hashable = None) -> AsyncGenerator[None]:
        """Wait for a place (``owner``'s turn), and hold it while the block runs."""
        await self._take(owner)
        try:
            yield
        finally:
            self._give_back()

    async def _take(self, owner: Hashable) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        turn = anyio.Event()
        self._waiting.setdefault(owner, deque()).append(turn)
        try:
            await turn.wait()
        except BaseException:
            if turn.is_set():  # given a place as it was cancelled: it goes to the next in turn
                self._give_back()
            else:
                queue = self._waiting[owner]
                queue.remove(turn)
                if not queue:
                    del self._waiting[owner]
            raise

    def _give_back(self) -> None:
        if not self._waiting:
            self._free += 1
            return
        owner = next(iter(self._waiting))
        queue = self._waiting.pop(owner)
        turn = queue.popleft()
        if queue:  # its next waiter waits for every other owner's turn
            self._waiting[owner] = queue
        turn.set()


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
        self._turn = Turns(1)  # waiters go in turn, each owner's (``on_behalf_of``) in a rotation
        self._answer = anyio.Event()  # set (and replaced) at each answer

    @asynccontextmanager
    async def query(self) -> AsyncGenerator[None]:
        """Wait for a place, then hold it while the query is sent and answered (or fails). Queries queue per owner
        (``on_behalf_of``), the owners taking turns."""
        async with self._turn.hold(query_owner()):
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
