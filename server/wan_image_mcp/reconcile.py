"""Finding the task a create request made when its answer never came (a crash while it was in flight, a dropped
connection): which entry of DashScope's task list is that submission's.

A create request reaches the service between the journal row's ``created_at`` (written just before sending) and
its ``answer_by`` (the client's submit deadline, or when the answer was given up), so the task's ``submit_time``
lies in that window, give or take ``SKEW``. DashScope reports ``submit_time`` as a wall-clock time in its own zone
without naming it (UTC+8 today; nothing promises it), so the zone is learned from tasks the journal knows: their
``submit_time`` against when we sent them, rounded to the quarter hour (every zone is a whole number of quarter
hours from UTC). With no known task the list is read ±14 h around the window, and a task fits only if some
quarter-hour zone puts it inside the window.

A submission adopts a candidate only when it is the one task that fits (same model, unknown to the journal) and no
other unanswered submission could have made it; several, or one shared, leave the row AMBIGUOUS with the candidate
ids: never a guess. A candidate another submission still in flight could have made defers the decision.
"""

from __future__ import annotations

import calendar
import logging
import math
import time
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from .dashscope import DashScopeClient, ListedTask, TaskStatus
from .journal import DAY, UNCERTAIN, AsyncJournal, TaskRow
from .outcomes import iso_time

log = logging.getLogger("wan_image_mcp")
QUARTER: Final = 900.0
ZONES: Final = (-12 * 3600.0, 14 * 3600.0)
"""The zones there are, as seconds east of UTC."""
SKEW: Final = 5.0
"""Seconds allowed either side of the window for clock differences and the list's whole-second filters."""
MAX_RESIDUAL: Final = 120.0
"""A known task says nothing about the zone if its submit_time is further than this from a quarter hour after our
sending (e.g. a send retried on 429 for a while)."""
DEFAULT_ANSWER_WITHIN: Final = 60.0
"""For rows written before the journal recorded ``answer_by``."""


def service_seconds(text: str | None) -> float | None:
    """DashScope's ``YYYY-MM-DD HH:mm:ss[.SSS]`` read as if it were UTC: its zone's wall clock, as seconds."""
    if not text:
        return None
    head, _, fraction = text.strip().partition(".")
    try:
        whole = calendar.timegm(time.strptime(head, "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        return None
    return whole + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)


def filter_time(wall: float) -> str:
    """A wall-clock time in the service's zone as the list's ``start_time`` / ``end_time`` (whole seconds)."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(math.floor(wall)))


def learn_offset(known: Iterable[tuple[float, str]]) -> float | None:
    """The service's zone (seconds east of UTC) from known tasks, newest first: (when we sent it, its
    submit_time). The most common quarter hour wins; on a tie the newest (a zone that changed, as in summer time)."""
    votes: Counter[float] = Counter()
    for sent, submitted in known:
        wall = service_seconds(submitted)
        if wall is None:
            continue
        gap = wall - sent
        offset = round(gap / QUARTER) * QUARTER
        if abs(gap - offset) <= MAX_RESIDUAL and ZONES[0] <= offset <= ZONES[1]:
            votes[offset] += 1
    return votes.most_common(1)[0][0] if votes else None


@dataclass(frozen=True)
class Window:
    """When, on our clock, the service can have received a submission's create request."""

    start: float
    end: float

    @classmethod
    def of(cls, row: TaskRow) -> Window:
        due = row.answer_by
        if due is None:
            due = row.updated_at if row.status == UNCERTAIN else row.created_at + DEFAULT_ANSWER_WITHIN
        return cls(row.created_at - SKEW, max(due, row.created_at) + SKEW)

    def query(self, offset: float | None) -> tuple[str, str]:
        """The list's ``start_time`` and ``end_time`` that cover the window, in the service's zone (any zone when
        it is not known)."""
        if offset is None:
            return filter_time(self.start + ZONES[0]), filter_time(self.end + ZONES[1])
        return filter_time(self.start + offset), filter_time(self.end + offset)

    def fits(self, wall: float, offset: float | None) -> bool:
        """Whether a task submitted at ``wall`` (the service's clock) was submitted in the window: in the known
        zone, or, with none known, in some quarter-hour zone."""
        if offset is not None:
            return self.start <= wall - offset <= self.end
        low, high = max(ZONES[0], wall - self.end), min(ZONES[1], wall - self.start)
        return math.ceil(low / QUARTER) * QUARTER <= high


@dataclass(frozen=True)
class Verdict:
    kind: Literal["adopt", "ambiguous", "none", "wait"]
    """adopt ``task``; ambiguous between ``candidates``; none found (yet); wait: a submission still in flight
    could have made a candidate."""
    task: ListedTask | None = None
    candidates: tuple[str, ...] = ()
    shared_with: tuple[int, ...] = ()
    """Journal ids of the other unanswered submissions that could have made a candidate."""


def judge(
    row: TaskRow,
    listed: Iterable[ListedTask],
    *,
    offset: float | None,
    known: Collection[str],
    others: Sequence[tuple[TaskRow, bool]],
    contested: Collection[str] = (),
) -> Verdict:
    """Which listed task ``row``'s submission created. ``others``: every other unanswered submission, and
    whether it is being reconciled too (False: still in flight, here or in another process). ``contested``: task
    ids an earlier AMBIGUOUS submission could be, so never adopted silently by this one."""
    window = Window.of(row)
    candidates: dict[str, tuple[ListedTask, float]] = {}
    for task in listed:
        wall = service_seconds(task.submit_time)
        if task.task_id in known or wall is None or (task.model is not None and task.model != row.model):
            continue
        if window.fits(wall, offset):
            candidates[task.task_id] = (task, wall)
    if not candidates:
        return Verdict("none")
    shared: set[int] = set()
    for other, reconciling in others:
        if other.model != row.model:
            continue
        if any(Window.of(other).fits(wall, offset) for _, wall in candidates.values()):
            if not reconciling:
                return Verdict("wait")
            shared.add(other.id)
    ids = tuple(sorted(candidates))
    if len(candidates) == 1 and not shared and ids[0] not in contested:
        ((task, _),) = candidates.values()
        return Verdict("adopt", task=task, candidates=ids)
    return Verdict("ambiguous", candidates=ids, shared_with=tuple(sorted(shared)))


def ambiguity(verdict: Verdict) -> str:
    """What an AMBIGUOUS row says."""
    ids = ", ".join(verdict.candidates)
    if len(verdict.candidates) == 1:
        head = f"The answer to this submission was lost, and task {ids} could be its task"
    else:
        head = f"The answer to this submission was lost, and {len(verdict.candidates)} tasks could be its task: {ids}"
    rows = ", ".join(str(i) for i in verdict.shared_with)
    also = f" (or that of the submission(s) with journal id {rows}, whose answers were lost too)" if rows else ""
    return (
        f"{head}{also}. None was adopted, to avoid a guess. They may be billed: call check_task with a task_id to "
        "see it and save its images; do not resubmit before you have."
    )


# --- a pass over the journal -------------------------------------------------------------------------


NOT_CREATED_AFTER = 120.0
"""Seconds past its window after which an unanswered submission the task list never showed was not created."""
LIST_PAGE = 100
LIST_PAGES = 20
"""At most this many pages of the task list per submission and pass."""


@dataclass(frozen=True)
class Reconciled:
    adopted: list[str]
    """Task ids given to unanswered submissions."""
    unresolved: int
    """Unanswered submissions left (SUBMITTING, UNCERTAIN)."""


async def _listed_around(client: DashScopeClient, row: TaskRow, offset: float | None) -> list[ListedTask] | None:
    """Every task of ``row``'s model the list shows around its window (None: more than LIST_PAGES pages)."""
    start, end = Window.of(row).query(offset)
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


def _past_window(row: TaskRow) -> bool:
    return time.time() > Window.of(row).end + NOT_CREATED_AFTER


def _not_created(row: TaskRow) -> str:
    window = Window.of(row)
    return (
        f"The answer to this submission was lost, and DashScope's task list shows no {row.model} task submitted "
        f"between {iso_time(window.start)} and {iso_time(window.end)} that it could have made: no task was created, "
        "nothing is billed. Submit it again if it is still wanted."
    )


@dataclass
class Submissions:
    """The create requests this process sends, for reconciliation: which journal rows it began, which are in flight
    now (never reconciled), and how many began (a reconciliation during which one begins is discarded, as that
    task may be listed before the journal knows its id). ``begin`` must follow the row's insert with no await
    between, so that a reconciliation either read the row or sees the count change."""

    started: float = field(default_factory=time.time)
    begun: set[int] = field(default_factory=set[int])
    sending: set[int] = field(default_factory=set[int])
    count: int = 0

    def begin(self, row_id: int) -> None:
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
        return row.status == UNCERTAIN or row.id in self.begun or row.created_at < self.started or time.time() > due


class Reconciler:
    """One pass over the journal's unanswered create requests (see the module's docstring)."""

    def __init__(self, journal: AsyncJournal, submissions: Submissions) -> None:
        self._journal = journal
        self._submissions = submissions

    async def run(self, client: DashScopeClient) -> Reconciled:
        """Find in DashScope's task list the task each unanswered create request (SUBMITTING or UNCERTAIN, younger
        than 24 h, not in flight here) made: adopt it when exactly one task fits and no other submission could
        have made it, mark the row AMBIGUOUS with the candidates when several could, and REJECTED (NotCreated)
        when none did by ``NOT_CREATED_AFTER`` past its window, in any zone. Returns the adopted task ids."""
        sends = self._submissions.count
        journal = self._journal
        rows = await journal.run(journal.sync.unresolved, younger_than=time.time() - DAY)
        workable = [row for row in rows if self._reconcilable(row)]
        if not workable:
            return Reconciled(adopted=[], unresolved=len(rows))
        offset = learn_offset(await journal.run(journal.sync.submit_times))
        verdicts = await self._judge(client, rows, workable, offset)
        lost = [row for row in workable if verdicts.get(row.id) == Verdict("none") and _past_window(row)]
        if offset is not None and lost:  # before concluding, in any zone: the one learned may have changed
            verdicts.update(await self._judge(client, rows, lost, None))
        if self._submissions.count != sends:  # a submission began meanwhile: its task may be listed and not known yet
            return Reconciled(adopted=[], unresolved=len(rows))
        adopted: list[str] = []
        settled = 0
        for row in workable:
            verdict = verdicts.get(row.id)
            if verdict is not None and verdict.kind == "adopt":
                assert verdict.task is not None
                status = (verdict.task.status or TaskStatus.PENDING).value
                if await journal.run(journal.sync.reconciled, row.id, verdict.task.task_id, status):
                    log.warning("journal row %d: adopted task %s from the task list", row.id, verdict.task.task_id)
                    adopted.append(verdict.task.task_id)
                    settled += 1
            elif verdict is not None and verdict.kind == "ambiguous":
                await journal.run(journal.sync.ambiguous, row.id, verdict.candidates, ambiguity(verdict))
                log.warning("journal row %d: %d candidate tasks, none adopted", row.id, len(verdict.candidates))
                settled += 1
            elif verdict is not None and verdict.kind == "none" and _past_window(row):
                await journal.run(journal.sync.rejected, row.id, "NotCreated", _not_created(row))
                settled += 1
        return Reconciled(adopted=adopted, unresolved=len(rows) - settled)

    async def _judge(
        self, client: DashScopeClient, rows: list[TaskRow], workable: list[TaskRow], offset: float | None
    ) -> dict[int, Verdict]:
        """A verdict for each workable row whose surroundings the list showed whole (see reconcile.judge)."""
        journal = self._journal
        listed: dict[int, list[ListedTask]] = {}
        for row in workable:
            around = await _listed_around(client, row, offset)
            if around is not None:  # None: more tasks than a pass reads; this row waits
                listed[row.id] = around
        known = await journal.run(journal.sync.known, {t.task_id for tasks in listed.values() for t in tasks})
        contested = await journal.run(journal.sync.contested, younger_than=time.time() - DAY)
        verdicts: dict[int, Verdict] = {}
        for row in workable:
            if row.id in listed:
                others = [(other, other.id in listed) for other in rows if other.id != row.id]
                verdicts[row.id] = judge(
                    row, listed[row.id], offset=offset, known=known, others=others, contested=contested
                )
        return verdicts

    def _reconcilable(self, row: TaskRow) -> bool:
        return self._submissions.reconcilable(row)
