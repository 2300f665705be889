"""When each task is queried, shared by the service (its bounded waits) and the harvester (its task list).

A new task is queried at once, then every ``interval`` seconds growing ×1.5 to ``interval_max``; whoever asks,
one task is never queried twice within ``interval``. The harvester's once-a-second task list tells a waiting call
that its task has finished (``seen_finished``), so the wait queries it then, not at its next backoff step. The
harvester also hears of every new submission and of every create request that ended without its answer
(``listen``). Its times and waits come from a ``Clock`` (``clock.py``): the real one unless a test passes its own.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable

import anyio

from ...dashscope import DashScopeError, TaskResult
from ..clock import SYSTEM_CLOCK, Clock

Progress = Callable[[float, str], Awaitable[None]]


class PollFailed(Exception):
    """A task query failed after its retries; ``last`` is what the wait saw before, if anything."""

    def __init__(self, cause: DashScopeError, last: TaskResult | None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.last = last


class Polling:
    """The query schedule of every open task, and the signals between the calls that wait and the harvester."""

    def __init__(self, interval: float, interval_max: float, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.interval = interval
        self.interval_max = max(interval, interval_max)
        self._first_delay = 0.0
        self._queried: dict[str, float] = {}
        """Open task -> when it was last queried (monotonic)."""
        self._waiting: dict[str, anyio.Event] = {}
        """Task being waited on -> set when something else (the harvester's task list) saw it finish."""
        self._submitted: Callable[[], None] = lambda: None
        self._unanswered: Callable[[], None] = lambda: None

    # --- the harvester's side -------------------------------------------------------------------------

    def listen(self, *, submitted: Callable[[], None], unanswered: Callable[[], None], list_every: float) -> None:
        """The harvester runs: ``submitted`` after every new task, ``unanswered`` when a create request ends
        without its answer; a new task's own first query waits two list intervals (a list sees it first)."""
        self._submitted, self._unanswered = submitted, unanswered
        self._first_delay = 2 * list_every

    def seen_finished(self, task_ids: Iterable[str]) -> None:
        """Tasks another look (the task list) found finished: a call waiting on one queries it now, not at its next
        backoff step (still never within ``interval`` of its last query)."""
        for task_id in task_ids:
            if (event := self._waiting.get(task_id)) is not None:
                event.set()

    @property
    def fallback(self) -> float:
        """How often a task the task list already covers is still queried on its own."""
        return 6 * self.interval_max

    # --- the service's side ---------------------------------------------------------------------------

    def submitted(self) -> None:
        self._submitted()

    def unanswered(self) -> None:
        self._unanswered()

    def next_poll(self, created_at: float) -> float:
        """When to query a task next (epoch seconds): often while it is young, every interval_max once it is old."""
        age = self.clock.time() - created_at
        return self.clock.time() + min(self.interval_max, max(self.interval, age / 10))

    def first_poll(self, created_at: float) -> float:
        """When a new task is first queried by the harvester."""
        return max(self.next_poll(created_at), self.clock.time() + self._first_delay)

    def retry_download(self, attempts: int) -> float:
        """When (epoch seconds) to try a failed download again after ``attempts`` failures: doubling, ≤ 5 min."""
        return self.clock.time() + min(300.0, self.interval * 2.0**attempts)

    async def wait(
        self,
        task_id: str,
        query: Callable[[], Awaitable[TaskResult]],
        wait_seconds: float,
        progress: Progress,
    ) -> TaskResult:
        """``query`` the task at once, then on the schedule, until it ends or ``wait_seconds`` pass; at once when
        the task list shows it finished. Returns the last answer; raises PollFailed when a query fails after its
        retries (429, 5xx, connection)."""
        started = self.clock.monotonic()
        deadline = started + wait_seconds
        step = self.interval
        task: TaskResult | None = None
        try:
            while True:
                seen = self._waiting[task_id] = anyio.Event()  # before the query: a list seen during it counts
                too_soon = self._queried.get(task_id, -math.inf) + self.interval - self.clock.monotonic()
                if too_soon > 0:
                    await self.clock.sleep(too_soon)
                try:
                    task = await query()
                except DashScopeError as exc:  # retried already: give up this wait
                    self._queried[task_id] = self.clock.monotonic()
                    raise PollFailed(exc, task) from None
                self._queried[task_id] = self.clock.monotonic()
                elapsed = self.clock.monotonic() - started
                if task.status.terminal:
                    del self._queried[task_id]
                    return task
                remaining = deadline - self.clock.monotonic()
                fraction = 0.1 + 0.75 * min(1.0, elapsed / wait_seconds) if wait_seconds else 0.1
                await progress(fraction, f"{task.status.value} after {elapsed:.0f} s")
                if remaining <= 0:
                    return task
                await self.clock.wait(seen, min(step, remaining))  # seen_finished: query now, not at the next step
                step = min(step * 1.5, self.interval_max)
        finally:
            self._waiting.pop(task_id, None)
