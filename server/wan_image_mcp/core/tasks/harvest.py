"""The harvester: while the server runs, every unfinished task in the journal is polled and its images
downloaded as soon as it succeeds, whether or not an agent ever asks again.

On start it resumes every task younger than 24 h (task ids and result URLs live that long). Queries go through the
client's shared QueryRate. Tenants take turns, for the harvests running at once and for the queries' places, so one
tenant with hundreds of tasks due delays another's by a turn, not by hundreds. While tasks over a second old are
open, one ``GET /tasks`` list query a second gives the status of many tasks at once: a task it shows finished is
fetched at once, a task it shows still running is queried on its own only as a fallback (every 6 ×
poll_interval_max). Tasks the list does not show keep their own schedule, often while young and every
poll_interval_max once old. So a hundred tasks cost about one query a second plus one per finished task, not a
hundred. The same list wakes an edit_image or check_task waiting on a task it shows finished, so the wait ends
within a list interval of the task's end instead of at its next backoff step (up to poll_interval_max later).
Harvests run beside the loop, so a slow download never delays the next list; a failing list is left alone for
LIST_BACKOFF. Failed downloads are retried with backoff until their URLs expire. A failure with one task never
stops the others, nor the server.

Create requests whose answer never came (a row still SUBMITTING after a crash or a cancelled call, or UNCERTAIN
after a lost answer) are reconciled against the task list (``WanService.reconcile``): at start, as soon as one
ends unanswered, and every RECONCILE_EVERY while any is left; a task found for one is harvested like any other.

Its schedule runs on the service's ``Clock`` (``clock.py``), so tests can run it in virtual time.
"""

from __future__ import annotations

import logging
import math
import uuid

import anyio
from anyio.abc import TaskGroup

from ...dashscope import DashScopeError
from ...dashscope.rate import Turns, on_behalf_of
from ..clock import Clock
from ..errors import ConfigurationError
from ..journal import OPEN_STATUSES, TaskRow
from ..results.local_folder import owner_gone, temp_owner
from .service import WanService

log = logging.getLogger("wan_image_mcp.harvest")
MAX_AGE = 24 * 3600.0
IDLE = 60.0
"""Longest sleep when nothing is due (a new task wakes the harvester at once)."""
CONCURRENCY = 8
LIST_EVERY = 1.0
"""Seconds between task-list queries while tasks are open."""
LIST_BACKOFF = 60.0
"""After a failed list query, tasks are queried one by one for this long before the list is tried again."""
CLAIM = 600.0
"""Seconds a harvester holds a task it harvests: another server on the same journal (a replica) leaves it alone
meanwhile, and takes it over once the claim runs out (the holder died)."""
RECONCILE_EVERY = 10.0
"""Seconds between reconciliations while submissions without their answer are left (a lost answer starts one at
once); after a failed one, LIST_BACKOFF."""


class Harvester:
    """Polls every unfinished task in the journal and saves its images, unasked (see the module's docstring)."""

    def __init__(self, service: WanService, *, max_age: float = MAX_AGE, clock: Clock | None = None) -> None:
        self._service = service
        self._clock = clock or service.clock
        self._max_age = max_age
        self._wake = anyio.Event()
        self._slots = Turns(CONCURRENCY)
        """Harvests running at once, taken by tenant in turn: one with hundreds due never delays another's by more
        than a turn (the queries inside take their places by tenant in turn too: ``on_behalf_of``)."""
        self._listed = 0.0
        self._busy: set[str] = set()
        """Tasks being harvested now."""
        self._owner = f"{temp_owner()}#{uuid.uuid4().hex[:8]}"
        """This harvester's name in the journal's claims: its process (so that a server restarted after a kill
        takes over its own tasks at once, see ``owner_gone``) and which harvester of it."""
        self._reconcile_at = 0.0
        """When (monotonic) to reconcile unanswered submissions next: at once on start."""
        self._polling = service.polling
        self._polling.listen(submitted=self.wake, unanswered=self.reconcile_soon, list_every=LIST_EVERY)

    def wake(self) -> None:
        """Look at the journal now (a new task, a finished harvest)."""
        self._wake.set()

    def reconcile_soon(self) -> None:
        """Reconcile unanswered submissions at the next look (a create request just ended without its answer)."""
        self._reconcile_at = 0.0
        self.wake()

    async def run(self) -> None:
        """Harvest until cancelled; a journal that cannot be opened stops it with one log line."""
        log.info("harvester started")
        try:
            await self._loop()
        except* ConfigurationError as group:  # the journal cannot be opened; each tool call says so too
            log.error("harvester stopped: %s", group.exceptions[0])  # noqa: TRY400 - one line; the cause is in it

    async def _loop(self) -> None:
        """List, start the harvest of every due task without waiting for it (so the next list is never late),
        and sleep until the next list, the next due task, a new submission or a finished harvest."""
        journal = self._service.journal
        async with anyio.create_task_group() as group:
            while True:
                self._wake = anyio.Event()
                if self._clock.monotonic() >= self._reconcile_at:
                    await self._reconcile(group)
                rows = await journal.to_harvest(younger_than=self._clock.time() - self._max_age)
                open_rows = [row for row in rows if row.status in OPEN_STATUSES]
                # Only a task submitted over LIST_EVERY ago calls for a list (a younger one is not done yet, and
                # edit_image watches its own); a list then covers every open task, the young ones too.
                settled = any(row.created_at <= self._clock.time() - LIST_EVERY for row in open_rows)
                if settled and self._clock.monotonic() - self._listed >= LIST_EVERY:
                    await self._from_list(open_rows)
                    rows = await journal.to_harvest(younger_than=self._clock.time() - self._max_age)
                rows = [row for row in rows if row.task_id not in self._busy]
                now = self._clock.time()
                for row in rows:
                    if (row.next_poll_at or 0) <= now:
                        await self._start(group, row)
                later = [row.next_poll_at for row in rows if row.next_poll_at and row.next_poll_at > now]
                if open_rows:
                    next_list = self._clock.time() + LIST_EVERY - (self._clock.monotonic() - self._listed)
                    later.append(max(next_list, min(row.created_at for row in open_rows) + LIST_EVERY))
                if self._reconcile_at < math.inf:
                    later.append(self._clock.time() + self._reconcile_at - self._clock.monotonic())
                await self._clock.wait(self._wake, max(0.0, min([IDLE, *(at - self._clock.time() for at in later)])))

    async def _reconcile(self, group: TaskGroup) -> None:
        """Reconcile unanswered submissions; each task adopted is made due now (to_harvest then picks it up, and
        check() records a FAILED or CANCELED one's code as it does for any task)."""
        journal = self._service.journal
        try:
            reconciled = await self._service.reconcile()
        except DashScopeError as exc:
            log.warning("reconciling unanswered submissions failed; trying again in %.0f s: %s", LIST_BACKOFF, exc)
            self._reconcile_at = self._clock.monotonic() + LIST_BACKOFF
            return
        except ConfigurationError:  # the journal cannot be used: run() says so in one line and stops
            raise
        except Exception:  # never let reconciliation stop the harvest
            log.exception("reconciling unanswered submissions failed unexpectedly")
            self._reconcile_at = self._clock.monotonic() + LIST_BACKOFF
            return
        self._reconcile_at = self._clock.monotonic() + RECONCILE_EVERY if reconciled.unresolved else math.inf
        for task_id in reconciled.adopted:
            row = await journal.get(task_id)
            if row is not None and not row.needs_harvest:  # FAILED or CANCELED: one look records why
                await self._start(group, row)

    async def _from_list(self, rows: list[TaskRow]) -> None:
        """One list query for many tasks: finished ones become due now, running ones need no query of their own."""
        self._listed = self._clock.monotonic()
        journal = self._service.journal
        try:
            statuses = await self._service.list_statuses([row.task_id for row in rows if row.task_id])
        except DashScopeError as exc:  # the list is an optimisation: per-task polling still covers every task
            log.warning("listing tasks failed; tasks are queried one by one for %.0f s: %s", LIST_BACKOFF, exc)
            self._listed += LIST_BACKOFF
            return
        self._polling.seen_finished(task_id for task_id, status in statuses.items() if status.terminal)
        now = self._clock.time()
        times: dict[str, float] = {}
        for row in rows:
            assert row.task_id is not None
            status = statuses.get(row.task_id)
            if status is not None and status.terminal:
                times[row.task_id] = now
            elif status is not None and (row.next_poll_at or 0) < now + 2 * LIST_EVERY:  # due soon: put it off
                times[row.task_id] = now + self._polling.fallback
        await journal.schedule_many(times)

    async def _start(self, group: TaskGroup, row: TaskRow) -> None:
        """Harvest ``row``'s task beside the loop, unless another server on the journal is harvesting it."""
        assert row.task_id is not None
        journal, now = self._service.journal, self._clock.time()
        claimed = await journal.claim(row.task_id, self._owner, now=now, until=now + CLAIM)
        if not claimed and (holder := await journal.claimant(row.task_id)) and owner_gone(holder):
            claimed = await journal.claim(row.task_id, self._owner, now=now, until=now + CLAIM, over=holder)
        if claimed:
            self._busy.add(row.task_id)
            group.start_soon(self._harvest, row)

    async def _harvest(self, row: TaskRow) -> None:
        assert row.task_id is not None
        try:
            async with self._slots.hold(row.owner):
                with on_behalf_of(row.owner):
                    await self._service.check(row.task_id)
        except (DashScopeError, OSError) as exc:
            log.warning("harvesting %s: %s", row.task_id, exc)
            await self._later(row)
        except ConfigurationError:
            raise
        except Exception:  # never let one task stop the harvest
            log.exception("harvesting %s failed unexpectedly", row.task_id)
            await self._later(row)
        finally:
            self._busy.discard(row.task_id)
            with anyio.CancelScope(shield=True):
                await self._service.journal.release(row.task_id, self._owner)
            self.wake()

    async def _later(self, row: TaskRow) -> None:
        assert row.task_id is not None
        journal = self._service.journal
        await journal.schedule(row.task_id, self._polling.next_poll(row.created_at))
