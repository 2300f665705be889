"""Which task in DashScope's list a create request made when its answer never came: the window it was sent in,
the service's clock offset, the candidates that fit and what rules one out, and the verdict. Pure functions of
journal rows and list entries; ``reconcile`` runs them over the journal.
Finding the task a create request made when its answer never came (a crash while it was in flight, a dropped
connection): which entry of DashScope's task list is that submission's.

A create request reaches the service between the journal row's ``created_at`` (written just before sending) and
its ``answer_by`` (the client's submit deadline, or when the answer was given up), so the task's ``submit_time``
lies in that window, give or take ``SKEW``. DashScope reports ``submit_time`` as a wall-clock time in its own zone
without naming it (UTC+8 today; nothing promises it), on its own clock, which may be minutes from ours (a VM after
suspend, no NTP). So the offset (zone and clock skew together, never rounded) is learned from tasks the journal
knows: the central value of their ``submit_time`` against when we sent them, sends that disagree with the rest
(e.g. retried for a while) left out. With no known task, and before concluding that a submission made no task,
the list is read ±14 h around the window, and a task fits when some quarter-hour zone, give or take
``MAX_SKEW`` of clock skew, puts it inside the window.

Before a candidate is adopted it is queried by id, and what DashScope says it made is compared with what the row
asked for: more images than requested, another output size, or (wan2.5) another prompt rule it out; a candidate
still running is waited for. A submission adopts a candidate only when it is the one task that fits (same model,
unknown to the journal, not ruled out) and no other unanswered submission could have made it; several, or one
shared, leave the row AMBIGUOUS with the candidate ids: never a guess (the journal still harvests each candidate,
as the row's tenant's). A candidate another submission still in flight could have made defers the decision. Two
requests with the same model and parameters sent within the same few seconds (another process or script on the
same key) cannot be told apart; when they are one tenant's own, and as many tasks could each be any of theirs,
``paired`` matches them one to one by time, since which is whose changes nothing.
"""

from __future__ import annotations

import calendar
import logging
import math
import statistics
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from ...dashscope import ListedTask, TaskResult, TaskStatus
from ..journal import Status, TaskRow

log = logging.getLogger("wan_image_mcp")
QUARTER: Final = 900.0
ZONES: Final = (-12 * 3600.0, 14 * 3600.0)
"""The zones there are, as seconds east of UTC."""
SKEW: Final = 5.0
"""Seconds allowed either side of the window with a learned offset: jitter of the network and of the clocks since
it was learned, and the list's whole-second filters."""
MAX_SKEW: Final = 300.0
"""How far DashScope's clock may be from a quarter-hour zone after ours: the any-zone search allows this either side
of each zone, and a known task further than this from a quarter hour after our sending says nothing."""
AGREE: Final = 10.0
"""Seconds within which the offsets of two known tasks agree (the rest: sends retried for a while, a zone or clock
that changed since)."""
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
    """The service's clock against ours (seconds to add to our time to get its ``submit_time`` wall clock: its zone
    and its skew together) from known tasks, newest first: (when we sent it, its submit_time). The largest group of
    known tasks whose offsets agree within ``AGREE`` wins, on a tie the newest (a zone or clock that changed); its
    median is the offset. A task more than ``MAX_SKEW`` from a quarter-hour zone says nothing."""
    gaps: list[float] = []
    for sent, submitted in known:
        wall = service_seconds(submitted)
        if wall is None:
            continue
        gap = wall - sent
        zone = round(gap / QUARTER) * QUARTER
        if abs(gap - zone) <= MAX_SKEW and ZONES[0] <= zone <= ZONES[1]:
            gaps.append(gap)
    best: list[float] = []
    for gap in gaps:
        group = [other for other in gaps if abs(other - gap) <= AGREE]
        if len(group) > len(best):
            best = group
    return statistics.median(best) if best else None


@dataclass(frozen=True)
class Window:
    """When, on our clock, the service can have received a submission's create request."""

    start: float
    end: float

    @classmethod
    def of(cls, row: TaskRow) -> Window:
        due = row.answer_by
        if due is None:
            due = row.updated_at if row.status is Status.UNCERTAIN else row.created_at + DEFAULT_ANSWER_WITHIN
        return cls(row.created_at - SKEW, max(due, row.created_at) + SKEW)

    def query(self, offset: float | None, *, any_zone: bool = False) -> tuple[str, str]:
        """The list's ``start_time`` and ``end_time`` that cover the window, in the service's zone (any zone, give
        or take ``MAX_SKEW``, when it is not known or ``any_zone``)."""
        if offset is None or any_zone:
            return filter_time(self.start + ZONES[0] - MAX_SKEW), filter_time(self.end + ZONES[1] + MAX_SKEW)
        return filter_time(self.start + offset), filter_time(self.end + offset)

    def fits(self, wall: float, offset: float | None, *, any_zone: bool = False) -> bool:
        """Whether a task submitted at ``wall`` (the service's clock) was submitted in the window: with the learned
        offset, or, with none known or ``any_zone``, in some quarter-hour zone give or take ``MAX_SKEW`` (around the
        learned skew, when there is one)."""
        if offset is not None and not any_zone:
            return self.start <= wall - offset <= self.end
        skew = 0.0 if offset is None else offset - round(offset / QUARTER) * QUARTER
        low = max(ZONES[0], wall - skew - self.end - MAX_SKEW)
        high = min(ZONES[1], wall - skew - self.start + MAX_SKEW)
        return math.ceil(low / QUARTER) * QUARTER <= high


def _size(text: object) -> tuple[int, int] | None:
    if not isinstance(text, str):
        return None
    width, star, height = text.partition("*")
    return (int(width), int(height)) if star and width.isdigit() and height.isdigit() else None


def _near(actual: tuple[int, int], expected: tuple[int, int]) -> bool:
    """DashScope's output may be a little off the size asked for (2976*1408 for an expected 2985*1405)."""
    return all(abs(a - e) <= max(32, 0.05 * e) for a, e in zip(actual, expected, strict=True))


def contradiction(row: TaskRow, task: TaskResult) -> str | None:
    """What DashScope reports about ``task`` that ``row``'s request cannot have made, or None: more images than
    it asked for, images of another size than it should produce, another prompt (wan2.5 reports it)."""
    usage = task.usage or {}
    count = usage.get("image_count")
    if isinstance(count, int) and row.requested_images is not None and count > row.requested_images:
        return f"it made {count} images, more than the {row.requested_images} this submission asked for"
    size, expected = _size(usage.get("size")), _size(row.expected_size)
    if size is not None and expected is not None and not _near(size, expected):
        return f"its images are {size[0]}*{size[1]}, and this submission's would be about {row.expected_size}"
    if task.orig_prompt is not None and task.orig_prompt.strip() != row.prompt.strip():
        return "it was given another prompt"
    return None


@dataclass(frozen=True)
class Verdict:
    kind: Literal["adopt", "ambiguous", "none", "wait"]
    """adopt ``task``; ambiguous between ``candidates``; none found (yet); wait: a submission still in flight
    could have made a candidate, or a candidate is still running (what it made is not known yet)."""
    task: ListedTask | None = None
    candidates: tuple[str, ...] = ()
    shared_with: tuple[int, ...] = ()
    """Journal ids of the other unanswered submissions that could have made a candidate."""
    ruled_out: tuple[tuple[str, str], ...] = ()
    """(task id, why) of tasks that fit the window but that DashScope says this submission cannot have made."""
    status: TaskStatus | None = None
    """adopt: the task's status as its query reported it."""


def fitting(
    row: TaskRow, listed: Iterable[ListedTask], *, offset: float | None, known: Collection[str], any_zone: bool = False
) -> dict[str, tuple[ListedTask, float]]:
    """The listed tasks ``row``'s submission may have made (its model, unknown to the journal, submitted in its
    window), with their submit time on the service's clock."""
    window = Window.of(row)
    found: dict[str, tuple[ListedTask, float]] = {}
    for task in listed:
        wall = service_seconds(task.submit_time)
        if task.task_id in known or wall is None or (task.model is not None and task.model != row.model):
            continue
        if window.fits(wall, offset, any_zone=any_zone):
            found[task.task_id] = (task, wall)
    return found


def judge(
    row: TaskRow,
    listed: Iterable[ListedTask],
    *,
    offset: float | None,
    known: Collection[str],
    others: Sequence[tuple[TaskRow, bool]],
    contested: Collection[str] = (),
    queried: Mapping[str, TaskResult] | None = None,
    any_zone: bool = False,
) -> Verdict:
    """Which listed task ``row``'s submission created. ``others``: every other unanswered submission, and
    whether it is being reconciled too (False: still in flight, here or in another process). ``contested``: task
    ids an earlier AMBIGUOUS submission could be, so never adopted silently by this one. ``queried``: what the
    query by id of some candidates said (a candidate not queried is judged by the list alone)."""
    details = queried or {}
    candidates = fitting(row, listed, offset=offset, known=known, any_zone=any_zone)
    ruled_out: list[tuple[str, str]] = []
    for task_id in list(candidates):
        why = contradiction(row, details[task_id]) if task_id in details else None
        if why is not None:
            ruled_out.append((task_id, why))
            del candidates[task_id]
    if not candidates:
        return Verdict("none", ruled_out=tuple(ruled_out))
    shared: set[int] = set()
    for other, reconciling in others:
        if other.model != row.model:
            continue
        if any(
            Window.of(other).fits(wall, offset, any_zone=any_zone)
            and (task_id not in details or contradiction(other, details[task_id]) is None)
            for task_id, (_, wall) in candidates.items()
        ):
            if not reconciling:
                return Verdict("wait")
            shared.add(other.id)
    if any(task_id in details and not details[task_id].status.terminal for task_id in candidates):
        return Verdict("wait")  # what it made, and so whether it can be this submission's, is not known yet
    ids = tuple(sorted(candidates))
    if len(candidates) == 1 and not shared and ids[0] not in contested:
        ((task, _),) = candidates.values()
        status = details[task.task_id].status if task.task_id in details else task.status
        return Verdict("adopt", task=task, candidates=ids, ruled_out=tuple(ruled_out), status=status)
    return Verdict("ambiguous", candidates=ids, shared_with=tuple(sorted(shared)), ruled_out=tuple(ruled_out))


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
        f"{head}{also}. None was adopted, to avoid a guess. They may be billed, so each is kept as this "
        "submission's candidate and its images saved (list_tasks shows them, check_task gives them and says "
        "whose candidate each is): do not resubmit before you have looked at them."
    )


def same_request(row: TaskRow, other: TaskRow) -> bool:
    """Whether two submissions asked for the same thing, for the same tenant: the tasks they made cannot be told
    apart, and which of them is whose changes nothing."""

    def asked(r: TaskRow) -> tuple[object, ...]:
        return (
            r.model,
            r.prompt,
            r.parameters,
            r.adjustments,
            r.inputs,
            r.instruction,
            r.requested_images,
            r.expected_size,
            r.tenant_issuer,
            r.tenant_subject,
        )

    return asked(row) == asked(other)


def paired(
    rows: Sequence[TaskRow],
    verdicts: Mapping[int, Verdict],
    listed: Mapping[str, ListedTask],
    queried: Mapping[str, TaskResult],
    contested: Collection[str] = (),
) -> dict[int, Verdict]:
    """Identical submissions (``same_request``) left AMBIGUOUS between as many candidates as they are, each naming
    the same ones and no other submission sharing them, matched one to one by time: the one sent first adopts the
    task DashScope received first (its ``submit_time``), and so on. Every candidate must have been queried (none
    ruled out, all ended) and none be contested by an earlier AMBIGUOUS submission. Returns an adopt verdict for
    each row so matched."""
    by_id = {row.id: row for row in rows}
    groups: dict[tuple[str, ...], list[TaskRow]] = {}
    for row_id, verdict in verdicts.items():
        if verdict.kind == "ambiguous" and len(verdict.candidates) > 1:
            groups.setdefault(verdict.candidates, []).append(by_id[row_id])
    adopted: dict[int, Verdict] = {}
    for candidates, group in groups.items():
        ids = {row.id for row in group}
        if (
            len(group) != len(candidates)
            or any(not same_request(row, group[0]) for row in group)
            or any(not set(verdicts[row.id].shared_with) <= ids for row in group)
            or any(task_id not in queried or task_id not in listed or task_id in contested for task_id in candidates)
        ):
            continue
        tasks = sorted(candidates, key=lambda task_id: (service_seconds(listed[task_id].submit_time) or 0, task_id))
        for row, task_id in zip(sorted(group, key=lambda r: (r.created_at, r.id)), tasks, strict=True):
            adopted[row.id] = Verdict(
                "adopt", task=listed[task_id], candidates=candidates, status=queried[task_id].status
            )
    return adopted
