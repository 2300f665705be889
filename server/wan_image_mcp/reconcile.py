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
import math
import time
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from .dashscope import ListedTask
from .journal import UNCERTAIN, TaskRow

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
