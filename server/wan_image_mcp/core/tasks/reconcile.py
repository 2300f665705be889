"""A pass over the journal's create requests whose answer never came (a crash while one was in flight, a dropped
connection): each is looked up in DashScope's task list and adopted, marked AMBIGUOUS, or REJECTED as never
created, by the rules of ``matching`` (whose docstring explains them). ``Submissions`` tracks the create
requests this process sends, so that one in flight is never reconciled. "Now" is the service's ``Clock``
(``clock.py``), the one the journal's times were written by.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ...dashscope import DashScopeClient, ListedTask, TaskResult, TaskStatus
from ..clock import SYSTEM_CLOCK, Clock
from ..journal import DAY, AsyncJournal, Status, TaskRow
from ..results.outcomes import iso_time
from .matching import MAX_SKEW, Verdict, Window, ambiguity, fitting, judge, learn_offset, paired

log = logging.getLogger("wan_image_mcp")


NOT_CREATED_AFTER = 120.0
"""Seconds past its window after which an unanswered submission the task list never showed was not created."""
LIST_PAGE = 100
LIST_PAGES = 20
"""At most this many pages of the task list per submission and pass."""
QUERY_AT_MOST = 5
"""A submission with more candidates than this is judged by the list alone (it is AMBIGUOUS whatever they made)."""
QUERIES = 20
"""At most this many candidate tasks queried by id per pass."""


@dataclass(frozen=True)
class Reconciled:
    adopted: list[str]
    """Task ids given to unanswered submissions."""
    unresolved: int
    """Unanswered submissions left (SUBMITTING, UNCERTAIN)."""


async def _listed_around(
    client: DashScopeClient, row: TaskRow, offset: float | None, *, any_zone: bool
) -> list[ListedTask] | None:
    """Every task of ``row``'s model the list shows around its window (None: more than LIST_PAGES pages)."""
    start, end = Window.of(row).query(offset, any_zone=any_zone)
    tasks: list[ListedTask] = []
    for page_no in range(1, LIST_PAGES + 1):
        page = await client.list_tasks(
            start_time=start, end_time=end, model_name=row.model or None, page_no=page_no, page_size=LIST_PAGE
        )
        tasks += page.tasks
        if len(page.tasks) < LIST_PAGE or len(tasks) >= page.total:
            return tasks
    log.warning("journal row %d: over %d tasks around its submission; it is left for later", row.id, len(tasks))
    return None


def _past_window(row: TaskRow, now: float) -> bool:
    """Whether ``now`` is ``NOT_CREATED_AFTER`` past the row's window: long enough for its task to be listed."""
    return now > Window.of(row).end + NOT_CREATED_AFTER


def _not_created(row: TaskRow) -> str:
    window = Window.of(row)
    return (
        f"The answer to this submission was lost, and DashScope's task list shows no {row.model} task submitted "
        f"between {iso_time(window.start)} and {iso_time(window.end)} (in any time zone, allowing for its clock being "
        f"up to {MAX_SKEW / 60:.0f} min off) that it could have made: no task was created, nothing is billed. Submit "
        "it again if it is still wanted."
    )


def _unlike(verdict: Verdict) -> str:
    """What an AMBIGUOUS row says when the only tasks submitted in its window are unlike what it asked for."""
    why = "; ".join(f"task {task_id}: {reason}" for task_id, reason in verdict.ruled_out)
    return (
        f"The answer to this submission was lost. The only tasks of its model submitted when it was sent are unlike "
        f"what it asked for ({why}), so they are probably another client's on the same API key, and none was "
        "adopted. Call check_task with a task_id to see it; if none is this submission's, it made no task and "
        "nothing of it is billed."
    )


@dataclass
class Submissions:
    """The create requests this process sends, for reconciliation: which journal rows it began, which are in flight
    now (never reconciled), and how many began (a reconciliation during which one begins is discarded, as that
    task may be listed before the journal knows its id). ``begin`` must follow the row's insert with no await
    between, so that a reconciliation either read the row or sees the count change. ``clock`` is the service's."""

    clock: Clock = SYSTEM_CLOCK
    started: float = field(init=False)
    """When this process began (``clock.time()`` when the Submissions was made): older rows are a past process's."""
    begun: set[int] = field(default_factory=set[int])
    sending: set[int] = field(default_factory=set[int])
    count: int = 0

    def __post_init__(self) -> None:
        self.started = self.clock.time()

    def begin(self, row_id: int) -> None:
        """Row ``row_id`` was just inserted and its create request is about to be sent."""
        self.count += 1
        self.begun.add(row_id)
        self.sending.add(row_id)

    def answered(self, row_id: int) -> None:
        """The create request ended, answered or not."""
        self.sending.discard(row_id)

    def reconcilable(self, row: TaskRow) -> bool:
        """Not in flight here, and not possibly in flight elsewhere: made by this process, by one that ran before
        it (a restart), or past its answer's deadline."""
        if row.id in self.sending:
            return False
        due = row.answer_by if row.answer_by is not None else row.created_at
        return (
            row.status is Status.UNCERTAIN
            or row.id in self.begun
            or row.created_at < self.started
            or self.clock.time() > due
        )


class Reconciler:
    """One pass over the journal's unanswered create requests (see the module's docstring)."""

    def __init__(self, journal: AsyncJournal, submissions: Submissions, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._journal = journal
        self._submissions = submissions
        self._clock = clock

    async def run(self, client: DashScopeClient) -> Reconciled:
        """Find in DashScope's task list the task each unanswered create request (SUBMITTING or UNCERTAIN, younger
        than 24 h, not in flight here) made: adopt it when exactly one task fits, DashScope's report of it does not
        contradict the request, and no other submission could have made it; mark the row AMBIGUOUS with the
        candidates when several could, or when by ``NOT_CREATED_AFTER`` past its window the only tasks there are
        ones DashScope's report rules out, and REJECTED (NotCreated) when by then no task of its model was
        submitted in its window, in any zone and allowing ``MAX_SKEW`` of clock skew. Identical submissions of one
        tenant ambiguous between as many tasks are paired by time and each adopts one (``paired``); every candidate
        of an AMBIGUOUS row (and of one an older version left without) gets a row to harvest. Returns the adopted task
        ids and how many unanswered create requests are left. Raises the client's DashScopeError."""
        sends = self._submissions.count
        journal = self._journal
        await journal.harvest_candidates(younger_than=self._clock.time() - DAY)
        rows = await journal.unresolved(younger_than=self._clock.time() - DAY)
        workable = [row for row in rows if self._reconcilable(row)]
        if not workable:
            return Reconciled(adopted=[], unresolved=len(rows))
        offset = learn_offset(await journal.submit_times())
        verdicts = await self._judge(client, rows, workable, offset, any_zone=offset is None)
        lost = [row for row in workable if row.id in verdicts and verdicts[row.id].kind == "none" and self._past(row)]
        if offset is not None and lost:  # before concluding, in any zone: the learned offset may have changed
            verdicts.update(await self._judge(client, rows, lost, offset, any_zone=True))
        if self._submissions.count != sends:  # a submission began meanwhile: its task may be listed and not known yet
            return Reconciled(adopted=[], unresolved=len(rows))
        adopted: list[str] = []
        settled = 0
        for row in workable:
            verdict = verdicts.get(row.id)
            if verdict is not None and verdict.kind == "adopt":
                assert verdict.task is not None
                status = Status.of(verdict.status or TaskStatus.PENDING)
                if await journal.reconciled(row.id, verdict.task.task_id, status):
                    log.warning("journal row %d: adopted task %s from the task list", row.id, verdict.task.task_id)
                    adopted.append(verdict.task.task_id)
                    settled += 1
            elif verdict is not None and verdict.kind == "ambiguous":
                await journal.ambiguous(row.id, verdict.candidates, ambiguity(verdict))
                log.warning("journal row %d: %d candidate tasks, none adopted", row.id, len(verdict.candidates))
                settled += 1
            elif verdict is not None and verdict.kind == "none" and self._past(row) and verdict.ruled_out:
                # a task of its model was submitted then: "nothing is billed" is not said on our reading alone
                candidates = [task_id for task_id, _ in verdict.ruled_out]
                await journal.ambiguous(row.id, candidates, _unlike(verdict), unlike=True)
                settled += 1
            elif verdict is not None and verdict.kind == "none" and self._past(row):
                await journal.rejected(row.id, "NotCreated", _not_created(row))
                settled += 1
        return Reconciled(adopted=adopted, unresolved=len(rows) - settled)

    async def _judge(
        self,
        client: DashScopeClient,
        rows: list[TaskRow],
        workable: list[TaskRow],
        offset: float | None,
        *,
        any_zone: bool,
    ) -> dict[int, Verdict]:
        """A verdict for each workable row whose surroundings the list showed whole (see reconcile.judge), its
        candidates queried by id first (see ``QUERY_AT_MOST``, ``QUERIES``)."""
        journal = self._journal
        listed: dict[int, list[ListedTask]] = {}
        for row in workable:
            around = await _listed_around(client, row, offset, any_zone=any_zone)
            if around is not None:  # None: more tasks than a pass reads; this row waits
                listed[row.id] = around
        known = await journal.known({t.task_id for tasks in listed.values() for t in tasks})
        contested = await journal.contested(younger_than=self._clock.time() - DAY)
        queried: dict[str, TaskResult] = {}
        for row in workable:
            if row.id not in listed:
                continue
            candidates = fitting(row, listed[row.id], offset=offset, known=known, any_zone=any_zone)
            if len(candidates) > QUERY_AT_MOST:
                continue
            for task_id in candidates:
                if task_id not in queried and len(queried) < QUERIES:
                    queried[task_id] = await client.get_task(task_id)
        verdicts: dict[int, Verdict] = {}
        for row in workable:
            if row.id in listed:
                others = [(other, other.id in listed) for other in rows if other.id != row.id]
                verdicts[row.id] = judge(
                    row,
                    listed[row.id],
                    offset=offset,
                    known=known,
                    others=others,
                    contested=contested,
                    queried=queried,
                    any_zone=any_zone,
                )
        by_id = {task.task_id: task for tasks in listed.values() for task in tasks}
        verdicts.update(paired(workable, verdicts, by_id, queried, contested))
        return verdicts

    def _reconcilable(self, row: TaskRow) -> bool:
        return self._submissions.reconcilable(row)

    def _past(self, row: TaskRow) -> bool:
        return _past_window(row, self._clock.time())
