"""The time the service, its polling, the harvester, the reconciler and the journal's own timestamps go by: the wall
clock, a monotonic clock, and waiting, as the DashScope client's query rate goes by it (``dashscope.clock``, where
it is defined, since the client imports nothing of the project).

Production code uses ``SYSTEM_CLOCK`` (``time.time``, ``time.monotonic``, ``anyio.sleep``). Tests pass a clock of
their own so that schedules run in virtual time: seconds of waiting cost no real seconds, and the times seen are
exact (see ``tests/support/virtual_clock.py``).
"""

from __future__ import annotations

from ..dashscope.clock import SYSTEM_CLOCK, Clock, SystemClock

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]
