"""The time the client's query rate goes by, and with it the service, its polling, the harvester, the reconciler and
the journal's timestamps (``core.clock`` names this one for the core): the wall clock, a monotonic clock, and
waiting.

Production code uses ``SYSTEM_CLOCK`` (``time.time``, ``time.monotonic``, ``anyio.sleep``). Tests pass a clock of
their own so that schedules run in virtual time: seconds of waiting cost no real seconds, and the times seen are
exact (see ``tests/support/virtual_clock.py``).
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch: what the journal records and compares (``created_at``, next polls)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: for intervals (last queried, last listed)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...

    async def wait(self, event: anyio.Event, seconds: float) -> bool:
        """Wait until ``event`` is set or ``seconds`` pass (``math.inf``: no bound); whether it was set."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def wait(self, event: anyio.Event, seconds: float) -> bool:
        with anyio.move_on_after(seconds):
            await event.wait()
        return event.is_set()


SYSTEM_CLOCK: Clock = SystemClock()
