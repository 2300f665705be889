"""A clock for tests (``core.clock.Clock``): virtual time, which moves only when everything waits on it.

``sleep`` and ``wait`` set an alarm; ``running()`` starts the task that moves time to the earliest alarm once
every other task is blocked and no worker thread is busy (a journal call, a render). So seconds of polling cost
no real seconds, and the times the service, the harvester and the emulator (given ``clock.time``) see are exact
and repeatable. Waits on anything else (a real ``anyio.sleep``, a retry's back-off) let virtual time run on.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
from anyio._backends._asyncio import (  # pyright: ignore[reportPrivateUsage] - no public view of busy workers
    _threadpool_idle_workers,  # pyright: ignore[reportPrivateUsage]
    _threadpool_workers,  # pyright: ignore[reportPrivateUsage]
)

MONOTONIC_START = 1000.0
"""What ``monotonic()`` reads at the start (the real one is never near 0)."""


class VirtualClock:
    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start
        """Wall-clock seconds now; starts at the real time, so rows written by wall time stay comparable."""
        self.start = self.now
        self._alarms: list[tuple[float, anyio.Event]] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - self.start + MONOTONIC_START

    def elapsed(self, at: float) -> float:
        """Virtual seconds from the start to the wall-clock time ``at``, to the microsecond."""
        return round(at - self.start, 6)

    async def sleep(self, seconds: float) -> None:
        await self.wait(anyio.Event(), seconds)

    async def wait(self, event: anyio.Event, seconds: float) -> bool:
        if event.is_set() or seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return event.is_set()
        if math.isinf(seconds):
            await event.wait()
            return True
        alarm = (self.now + seconds, anyio.Event())
        self._alarms.append(alarm)
        try:
            async with anyio.create_task_group() as group:

                async def first(of: anyio.Event) -> None:
                    await of.wait()
                    group.cancel_scope.cancel()

                group.start_soon(first, event)
                group.start_soon(first, alarm[1])
        finally:
            self._alarms.remove(alarm)
        return event.is_set()

    async def until(self, check: Callable[[], Awaitable[bool]], *, within: float = 120, step: float = 0.1) -> None:
        """Wait for a background worker's effect: re-check every ``step`` virtual seconds, fail after ``within``
        virtual seconds (or 15 real ones)."""
        deadline = self.now + within
        with anyio.fail_after(15):
            while not await check():
                if self.now > deadline:
                    raise TimeoutError(f"not done within {within} virtual seconds")
                await self.sleep(step)

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[VirtualClock]:
        """Move time while the block runs."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._advance)
            yield self
            group.cancel_scope.cancel()

    async def _advance(self) -> None:
        while True:
            await _settled()
            if not self._alarms:
                await anyio.sleep(0.001)  # every task waits on something other than this clock
                continue
            self.now = max(self.now, min(at for at, _ in self._alarms))
            for at, alarm in self._alarms:
                if at <= self.now:
                    alarm.set()


async def _settled() -> None:
    """Return once every other task is blocked and no worker thread is busy."""
    this = asyncio.current_task()
    while True:
        await anyio.lowlevel.checkpoint()
        if _busy_workers() == 0 and all(_blocked(task) for task in asyncio.all_tasks() if task is not this):
            return
        await anyio.sleep(0.0005)


def _busy_workers() -> int:
    """anyio worker threads running a call now (``to_thread.run_sync``: the journal, renders, file writes)."""
    try:
        return len(_threadpool_workers.get()) - len(_threadpool_idle_workers.get())
    except LookupError:  # no worker thread yet
        return 0


def _blocked(task: asyncio.Task[object]) -> bool:
    waiter: asyncio.Future[object] | None = getattr(task, "_fut_waiter", None)  # what the task awaits, if anything
    return waiter is not None and not waiter.done()
