"""A create request whose answer never came is reconciled against DashScope's task list: its task is adopted and
its images saved when exactly one task can be it, and named, not adopted, when several can.

Tests that wait for the harvester's reconciliation run the server and the emulator on a virtual clock
(``tests/support/virtual_clock.py``, the ``clock`` fixture): its passes and the polling cost no real seconds."""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.abc import TaskGroup
from mcp import Client

from tests.support.virtual_clock import VirtualClock
from wan_image_mcp.core.errors import SubmissionUncertain
from wan_image_mcp.core.journal import AsyncJournal, Journal, NewTask, Tenant
from wan_image_mcp.core.journal.database import open_database
from wan_image_mcp.core.journal.queries import UNLIKE
from wan_image_mcp.core.requests.declarations import EditArgs, EditParams
from wan_image_mcp.core.requests.validation import prepare_request
from wan_image_mcp.core.results.outcomes import EditResult, summary_text
from wan_image_mcp.core.specs import ModelName
from wan_image_mcp.core.tasks.matching import contradiction, judge, learn_offset
from wan_image_mcp.core.tasks.service import WanService
from wan_image_mcp.dashscope import DashScopeClient, ListedTask, TaskResult, TaskStatus
from wan_image_mcp.emulator import EmulatorState, Fault
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings
from wan_image_mcp.wiring import build_service

pytestmark = [pytest.mark.anyio, pytest.mark.both_journals]
MODEL: ModelName = "wan2.7-image"
ALICE, BOB = Tenant("https://login.example", "alice"), Tenant("https://login.example", "bob")


def body(result: Any) -> dict[str, Any]:
    assert result.structured_content is not None, result.content
    return result.structured_content


async def crashed(
    settings: Settings,
    client: DashScopeClient,
    clock: VirtualClock,
    *,
    creates: int = 1,
    ago: float = 0.0,
    made: EditParams | None = None,
    tenant: Tenant | None = None,
) -> list[str]:
    """What a server killed between sending a create request (1K, one image) and reading its answer leaves: a
    SUBMITTING row (``tenant``'s), and in DashScope the task(s) its request made (or ones with the parameters
    ``made``, as another client's would be), its row created ``ago`` seconds ago on ``clock``, which then moves on
    a second (the restart comes after the crash: at one instant the row would look made by the restarted process).
    Returns their ids."""
    journal = Journal(settings.journal_location)
    try:
        journal.begin(
            NewTask(
                model=MODEL,
                prompt="lost answer",
                parameters={"n": 1},
                requested_images=1,
                created_at=clock.time() - ago,
                expected_size=(1024, 1024),
                tenant=tenant,
            )
        )
    finally:
        journal.close()
    ids: list[str] = []
    for _ in range(creates):
        params = made or EditParams(size="1K")
        task = await client.submit(prepare_request(MODEL, "lost answer", [], params).to_wire())
        assert task.task_id is not None
        ids.append(task.task_id)
    await clock.sleep(1)
    return ids


@pytest.fixture
def emulator(emulator: EmulatorState, clock: VirtualClock) -> EmulatorState:
    """The emulator on the test's clock: the submit times the task list shows run in the server's virtual time."""
    emulator.clock = clock.time
    return emulator


@asynccontextmanager
async def restarted(http: httpx2.AsyncClient, settings: Settings, clock: VirtualClock) -> AsyncGenerator[Client]:
    async with Client(build_app(settings.model_copy(update={"harvest": True}), http, clock=clock)) as client:
        yield client


async def row(client: Client, journal_id: int) -> dict[str, Any]:
    listed = body(await client.call_tool("list_tasks", {"page_size": 50}))
    missing: dict[str, Any] = {}  # not written yet
    return next((t for t in listed["tasks"] if t["journal_id"] == journal_id), missing)


async def saved(client: Client, clock: VirtualClock, journal_id: int, images: int = 1) -> dict[str, Any]:
    async def done() -> bool:
        return len((await row(client, journal_id)).get("images", [])) == images

    await clock.until(done, within=10)
    return await row(client, journal_id)


async def concluded(http: httpx2.AsyncClient, settings: Settings, clock: VirtualClock) -> dict[str, Any]:
    """Journal row 1 once a restarted server has concluded that its submission made no task."""
    async with restarted(http, settings, clock) as after:

        async def rejected() -> bool:
            return (await row(after, 1))["status"] == "REJECTED"

        await clock.until(rejected, within=10)
        return await row(after, 1)


@asynccontextmanager
async def held_edit(
    http: httpx2.AsyncClient, settings: Settings, emulator: EmulatorState, args: EditArgs, clock: VirtualClock
) -> AsyncGenerator[tuple[TaskGroup, WanService, list[EditResult]]]:
    """An edit whose create request DashScope has taken and whose answer it holds: yields while it is held."""
    emulator.add_fault(Fault("hold", target="submit"))
    journal = AsyncJournal(Journal(settings.journal_location, clock=clock))
    service = build_service(settings, http, journal, clock)
    results: list[EditResult] = []

    async def edit() -> None:
        results.append(await service.edit(args, wait_seconds=5))

    async def held() -> bool:
        return emulator.holding == 1

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(edit)
                await clock.until(held)
                yield group, service, results
    finally:
        journal.sync.close()


def list_queries(emulator: EmulatorState) -> list[dict[str, str]]:
    return [
        dict(part.split("=", 1) for part in r.query.split("&") if part)
        for r in emulator.requests
        if r.path == "/api/v1/tasks" and "start_time" in r.query
    ]


async def test_a_submission_cut_off_in_flight_is_adopted_on_restart_and_its_images_saved(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    """The create request reaches DashScope, its answer is held, and the call is cancelled before it comes: the
    journal row stays SUBMITTING with no task id, as after a SIGKILL."""
    args = EditArgs(prompt="paid for", images=[], model=MODEL, params=EditParams(size="1K", n=2))
    async with held_edit(http, server_settings, emulator, args, clock) as (group, _, _):
        group.cancel_scope.cancel()  # the answer never arrives
    ((task_id, task),) = emulator.tasks.items()
    assert task.count == 2

    async with restarted(http, server_settings, clock) as after:
        assert (await row(after, 1)).get("task_id") in (None, task_id)
        adopted = await saved(after, clock, 1, images=2)
    assert (adopted["task_id"], adopted["status"], adopted["prompt"]) == (task_id, "SUCCEEDED", "paid for")
    assert len(emulator.tasks) == 1  # found, never resubmitted


async def test_a_lost_answer_is_reconciled_by_the_running_server_and_its_image_saved(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    emulator.add_fault(Fault("drop", target="submit", after_processing=True))
    async with restarted(http, server_settings, clock) as mcp:
        lost = await mcp.call_tool("edit_image", {"prompt": "draw a fox", "size": "1K"})
        assert lost.is_error and "UNCERTAIN" in str(lost.content)
        adopted = await saved(mcp, clock, 1)
    (task_id,) = emulator.tasks
    assert (adopted["task_id"], adopted["status"], adopted.get("error")) == (task_id, "SUCCEEDED", None)


async def test_a_row_that_is_being_sent_now_is_never_reconciled(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    args = EditArgs(prompt="in flight", images=[], model=MODEL, params=EditParams(size="1K"))
    async with held_edit(http, server_settings, emulator, args, clock) as (_, service, results):
        reconciled = await service.reconcile()  # the task exists, its answer is on its way
        assert reconciled.adopted == [] and reconciled.unresolved == 1
        assert list_queries(emulator) == []
        emulator.release()
    (task_id,) = emulator.tasks
    assert results[0].task_id == task_id and results[0].status == "SUCCEEDED"


@pytest.mark.parametrize("hours", [8.0, -5.0, 5.75])
async def test_the_service_zone_is_learned_from_known_tasks_and_the_window_stays_narrow(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    hours: float,
    clock: VirtualClock,
) -> None:
    emulator.config.tz_offset_hours = hours  # this machine runs on UTC
    async with Client(build_app(server_settings, http, clock=clock)) as before:  # a known task teaches the zone
        known = body(await before.call_tool("edit_image", {"prompt": "known", "model": MODEL, "size": "1K"}))
    (task_id,) = await crashed(server_settings, client, clock)
    async with restarted(http, server_settings, clock) as after:
        adopted = await saved(after, clock, 2)
    assert adopted["task_id"] == task_id != known["task_id"]
    (query,) = list_queries(emulator)
    start, end = (calendar.timegm(time.strptime(query[k], "%Y%m%d%H%M%S")) for k in ("start_time", "end_time"))
    assert end - start < 120  # the window around the send, in the service's zone: not ±14 h
    assert abs(start - (time.time() + hours * 3600)) < 120
    assert query["model_name"] == MODEL


async def test_with_no_known_task_any_zone_is_searched_and_one_fitting_task_adopted(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    clock: VirtualClock,
) -> None:
    emulator.config.tz_offset_hours = -9.5
    (task_id,) = await crashed(server_settings, client, clock)
    async with restarted(http, server_settings, clock) as after:
        assert (await saved(after, clock, 1))["task_id"] == task_id
    (query,) = list_queries(emulator)
    start, end = (calendar.timegm(time.strptime(query[k], "%Y%m%d%H%M%S")) for k in ("start_time", "end_time"))
    assert end - start > 26 * 3600


async def test_two_fitting_tasks_are_not_adopted_and_each_is_saved_as_the_submissions_candidate(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    clock: VirtualClock,
) -> None:
    ids = await crashed(server_settings, client, clock, creates=2)
    async with restarted(http, server_settings, clock) as after:

        async def judged() -> bool:
            return (await row(after, 1))["status"] == "AMBIGUOUS"

        await clock.until(judged, within=10)
        listed = body(await after.call_tool("list_tasks", {"status": "AMBIGUOUS"}))
        candidates = [await saved(after, clock, journal_id) for journal_id in (2, 3)]
    (ambiguous,) = listed["tasks"]
    assert ambiguous.get("task_id") is None and ambiguous["candidates"] == sorted(ids)
    assert all(task_id in ambiguous["error"]["message"] for task_id in ids)
    assert "None was adopted" in ambiguous["error"]["message"]
    assert sorted(c["task_id"] for c in candidates) == sorted(ids)  # neither adopted, neither lost
    for candidate in candidates:  # the submission's own, not counted again against the budget
        assert (candidate["prompt"], candidate.get("requested_images")) == ("lost answer", None)
    assert sum(r.path.startswith("/results/") for r in emulator.requests) == 2


@asynccontextmanager
async def service_of(settings: Settings, http: httpx2.AsyncClient, clock: VirtualClock) -> AsyncGenerator[WanService]:
    """A second server's service on the same journal, without a harvester: check_task as a tenant calls it."""
    journal = AsyncJournal(Journal(settings.journal_location, clock=clock))
    try:
        yield build_service(settings, http, journal, clock)
    finally:
        journal.sync.close()


async def test_a_tenants_ambiguous_submission_has_every_candidate_saved_as_its_own_and_no_one_elses(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    clock: VirtualClock,
) -> None:
    ids = await crashed(server_settings, client, clock, creates=2, tenant=ALICE)
    async with restarted(http, server_settings, clock) as after, service_of(server_settings, http, clock) as service:
        candidates = [await saved(after, clock, journal_id) for journal_id in (2, 3)]
        assert (await row(after, 1))["status"] == "AMBIGUOUS"
        before = len(emulator.requests)
        theirs = [await service.check(task_id, tenant=ALICE) for task_id in ids]
        others = [await service.check(task_id, tenant=BOB) for task_id in ids]
        assert len(emulator.requests) == before  # saved already: nothing sent, for alice or for bob
    assert sorted(c["task_id"] for c in candidates) == sorted(ids)
    for checked in theirs:
        assert (checked.status, len(checked.images)) == ("SUCCEEDED", 1)
        assert "candidate of the submission with journal id 1" in summary_text(checked)
        sidecar = json.loads(Path(checked.images[0].path).with_suffix(".json").read_text(encoding="utf-8"))
        assert (sidecar["candidate_of"], sidecar["prompt"]) == (1, "lost answer")
    assert all((o.status, o.images, o.next_step) == ("UNKNOWN", [], None) for o in others)


async def test_candidates_an_older_version_left_unharvested_are_saved_for_their_tenant_on_restart(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    clock: VirtualClock,
) -> None:
    ids = await crashed(server_settings, client, clock, creates=2, tenant=ALICE)
    journal = Journal(server_settings.journal_location)
    journal.ambiguous(1, ids, "either could be it")
    journal.close()
    db = open_database(server_settings.journal_location)
    db.execute("DELETE FROM tasks WHERE candidate_of IS NOT NULL")  # as a version before candidate rows left it
    db.close()
    async with restarted(http, server_settings, clock) as after, service_of(server_settings, http, clock) as service:

        async def both_saved() -> bool:
            tasks = body(await after.call_tool("list_tasks", {}))["tasks"]
            return sorted(t.get("task_id") or "" for t in tasks if t["images"]) == sorted(ids)

        await clock.until(both_saved, within=10)
        checked = [await service.check(task_id, tenant=ALICE) for task_id in ids]
    assert all(c.status == "SUCCEEDED" and c.images and "journal id 1" in (c.next_step or "") for c in checked)


async def test_identical_lost_submissions_of_a_tenant_each_adopt_one_of_their_tasks_in_order_of_time(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    clock: VirtualClock,
) -> None:
    """Two identical submit_task calls whose answers were lost: two rows, two tasks, each of which could be either
    row's. Which is whose changes nothing (same tenant, same request): the first sent takes the first received."""
    first = await crashed(server_settings, client, clock, tenant=ALICE)
    second = await crashed(server_settings, client, clock, tenant=ALICE)
    async with restarted(http, server_settings, clock) as after, service_of(server_settings, http, clock) as service:
        adopted = [await saved(after, clock, journal_id) for journal_id in (1, 2)]
        checked = [await service.check(task_id, tenant=ALICE) for task_id in first + second]
        listed = body(await after.call_tool("list_tasks", {}))
    assert [a["task_id"] for a in adopted] == first + second
    assert all(a["status"] == "SUCCEEDED" and not a["candidates"] and "error" not in a for a in adopted)
    assert [c.status for c in checked] == ["SUCCEEDED"] * 2 and all(c.images for c in checked)
    assert listed["total"] == 2  # no AMBIGUOUS row, no candidate rows: resolved
    assert sum(r.path.startswith("/results/") for r in emulator.requests) == 2


async def test_one_task_that_two_lost_submissions_could_have_made_is_adopted_by_neither(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    clock: VirtualClock,
) -> None:
    journal = Journal(server_settings.journal_location)
    journal.begin(NewTask(model=MODEL, prompt="first", parameters={}, created_at=clock.time()))
    journal.close()
    (task_id,) = await crashed(server_settings, client, clock)
    async with restarted(http, server_settings, clock) as after:

        async def judged() -> bool:
            return (await row(after, 1))["status"] == (await row(after, 2))["status"] == "AMBIGUOUS"

        await clock.until(judged, within=10)
        first, second = await row(after, 1), await row(after, 2)
    assert first["candidates"] == second["candidates"] == [task_id]
    assert "journal id 2" in first["error"]["message"] and "journal id 1" in second["error"]["message"]


async def test_a_task_the_journal_knows_is_never_adopted_twice(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    journal = Journal(server_settings.journal_location)
    journal.begin(
        NewTask(model=MODEL, prompt="never sent", parameters={}, created_at=clock.time())
    )  # killed before sending
    journal.close()
    async with Client(
        build_app(server_settings, http, clock=clock)
    ) as before:  # then a task of the same model, answered
        known = body(await before.call_tool("submit_task", {"prompt": "known", "model": MODEL, "size": "1K"}))
    await clock.sleep(1)  # then a restart (at the same instant, row 1 would look made by the restarted process)
    async with restarted(http, server_settings, clock) as after:
        await saved(after, clock, 2)

        async def looked() -> bool:
            return bool(list_queries(emulator))

        await clock.until(looked, within=10)
        listed = body(await after.call_tool("list_tasks", {"status": "SUBMITTING"}))
    (unanswered,) = listed["tasks"]
    assert (unanswered["journal_id"], unanswered.get("task_id")) == (1, None)
    assert known["task_id"] in emulator.tasks and len(emulator.tasks) == 1


async def test_a_lost_submission_the_list_never_shows_was_not_created(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    clock: VirtualClock,
) -> None:
    await crashed(server_settings, client, clock, creates=0, ago=600)  # killed before sending, ten minutes ago
    rejected = await concluded(http, server_settings, clock)
    assert rejected["error"]["code"] == "NotCreated" and "nothing is billed" in rejected["error"]["message"]


def test_the_offset_is_the_median_of_the_largest_agreeing_group_never_rounded_and_odd_sends_say_nothing() -> None:
    sent = 1_800_000_000.0

    def at(offset: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S.%%03d", time.gmtime(sent + offset)) % round(offset * 1000 % 1000)

    assert learn_offset([]) is None
    assert learn_offset([(sent, at(8 * 3600 + 0.4))]) == pytest.approx(8 * 3600 + 0.4, abs=0.01)
    assert learn_offset([(sent, at(5.75 * 3600 - 3))]) == pytest.approx(5.75 * 3600 - 3, abs=0.01)
    assert learn_offset([(sent, at(8 * 3600 + 30))]) == pytest.approx(8 * 3600 + 30, abs=0.01)  # a clock 30 s ahead
    assert learn_offset([(sent, at(8 * 3600 - 200))]) == pytest.approx(8 * 3600 - 200, abs=0.01)
    assert learn_offset([(sent, at(8 * 3600 + 400))]) is None  # 6 min 40 s past a quarter hour: a retried send
    retried = [(sent, at(30.2)), (sent, at(90)), (sent, at(30.6)), (sent, at(30.4))]
    assert learn_offset(retried) == pytest.approx(30.4, abs=0.01)  # the send retried for a minute is left out
    assert learn_offset([(sent, at(3600)), (sent, at(0)), (sent, at(0))]) == pytest.approx(0, abs=0.01)
    assert learn_offset([(sent, at(9 * 3600)), (sent, at(8 * 3600))]) == pytest.approx(9 * 3600, abs=0.01)  # newest
    assert learn_offset([(sent, "not a time"), (sent, at(-20 * 3600))]) is None


def test_a_task_an_ambiguous_submission_could_be_is_never_adopted_silently_by_another(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.begin(NewTask(model=MODEL, prompt="p", parameters={}))
    (unanswered,) = journal.unresolved(younger_than=0)
    journal.close()
    at = time.strftime("%Y-%m-%d %H:%M:%S.000", time.gmtime(unanswered.created_at + 8 * 3600))
    listed = [ListedTask("t1", TaskStatus.PENDING, MODEL, at)]
    assert judge(unanswered, listed, offset=8 * 3600, known=set(), others=[]).kind == "adopt"
    assert judge(unanswered, listed, offset=8 * 3600, known={"t1"}, others=[]).kind == "none"
    contested = judge(unanswered, listed, offset=8 * 3600, known=set(), others=[], contested={"t1"})
    assert (contested.kind, contested.candidates) == ("ambiguous", ("t1",))
    assert judge(unanswered, listed, offset=5 * 3600, known=set(), others=[]).kind == "none"  # another zone
    assert judge(unanswered, listed, offset=None, known=set(), others=[]).kind == "adopt"


@pytest.mark.parametrize("hours", [9.0, 8 + 150 / 3600], ids=["zone moved an hour", "clock 2.5 min ahead"])
async def test_a_zone_or_clock_that_changed_since_it_was_learned_does_not_make_a_lost_task_look_never_created(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    hours: float,
    clock: VirtualClock,
) -> None:
    async with Client(build_app(server_settings, http, clock=clock)) as before:  # learned: UTC+8, clocks agreeing
        await before.call_tool("edit_image", {"prompt": "known", "model": MODEL, "size": "1K"})
    emulator.config.tz_offset_hours = hours  # then the service's zone or clock moves (summer time, a VM resumed)
    sent = clock.time() - 600  # ten minutes ago: past the window, so nothing found would mean never created
    emulator.clock = lambda: sent
    (task_id,) = await crashed(server_settings, client, clock, ago=600)
    emulator.clock = clock.time
    async with restarted(http, server_settings, clock) as after:
        adopted = await saved(after, clock, 2)
    assert adopted["task_id"] == task_id
    narrow, wide = list_queries(emulator)
    assert narrow["start_time"] != wide["start_time"]


@pytest.mark.parametrize("skew", [30.0, 60.0, 200.0, -45.0])
async def test_a_lost_answer_is_adopted_when_dashscopes_clock_is_off_by_minutes(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, skew: float, clock: VirtualClock
) -> None:
    """DashScope's clock `skew` seconds from this machine's: the offset learned from a known task keeps it."""
    emulator.config.tz_offset_hours = 8 + skew / 3600
    async with restarted(http, server_settings, clock) as mcp:
        known = body(await mcp.call_tool("edit_image", {"prompt": "known", "model": MODEL, "size": "1K"}))
        emulator.add_fault(Fault("drop", target="submit", after_processing=True))
        lost = await mcp.call_tool("edit_image", {"prompt": "paid, answer lost", "model": MODEL, "size": "1K"})
        assert lost.is_error and "UNCERTAIN" in str(lost.content)
        adopted = await saved(mcp, clock, 2)
    (task_id,) = set(emulator.tasks) - {known["task_id"]}
    assert (adopted["task_id"], adopted["status"], adopted["prompt"]) == (task_id, "SUCCEEDED", "paid, answer lost")
    assert Path(adopted["images"][0]).is_file()


@pytest.mark.parametrize("skew", [60.0, -200.0])
async def test_with_no_known_task_a_clock_minutes_off_still_fits_its_zone(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    skew: float,
    clock: VirtualClock,
) -> None:
    emulator.config.tz_offset_hours = -9.5 + skew / 3600
    (task_id,) = await crashed(server_settings, client, clock)
    async with restarted(http, server_settings, clock) as after:
        assert (await saved(after, clock, 1))["task_id"] == task_id


async def lost_then_foreign(
    http: httpx2.AsyncClient,
    settings: Settings,
    emulator: EmulatorState,
    other: DashScopeClient,
    foreign: EditParams,
    clock: VirtualClock,
    *,
    model: ModelName = MODEL,
    images: tuple[str, ...] = (),
    prompt: str = "a blue whale",
    size: str = "1K",
) -> tuple[WanService, str]:
    """Our create request (``size``, one image) never reaches DashScope (no task), and ``other`` client on the same key
    (a second replica with its own journal, a script) then submits ``prompt`` with ``foreign`` parameters, in our
    submission's window. Returns our service and the foreign task id."""
    emulator.add_fault(Fault("drop", target="submit", after_processing=False))
    service = build_service(settings, http, AsyncJournal(Journal(settings.journal_location, clock=clock)), clock)
    args = EditArgs(prompt="MY prompt: a red fox", images=list(images), model=model, params=EditParams(size=size))
    with pytest.raises(SubmissionUncertain):
        await service.submit(args)
    assert emulator.tasks == {}
    task = await other.submit(prepare_request(model, prompt, list(images), foreign).to_wire())
    assert task.task_id is not None
    return service, task.task_id


async def adopted_in(service: WanService, passes: int = 3) -> list[str]:
    """Task ids adopted over a few passes (the first may find a candidate still running and wait for it)."""
    adopted: list[str] = []
    for _ in range(passes):
        reconciled = await service.reconcile()
        adopted += reconciled.adopted
    return adopted


@pytest.mark.parametrize("foreign", [EditParams(size="2K"), EditParams(size="1K", n=2)], ids=["2K", "n=2"])
async def test_a_lost_submission_does_not_adopt_another_clients_task_that_made_another_size_or_count(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    foreign: EditParams,
    clock: VirtualClock,
) -> None:
    service, foreign_id = await lost_then_foreign(http, server_settings, emulator, client, foreign, clock)
    (row,) = service.journal.sync.unresolved(younger_than=0)
    assert row.expected_size == "1024*1024" and row.requested_images == 1  # recorded when it was sent
    assert await adopted_in(service) == []
    assert emulator.tasks[foreign_id].status == "SUCCEEDED"  # DashScope said what it made
    (still,) = service.journal.sync.unresolved(younger_than=0)
    assert (still.status, still.task_id) == ("UNCERTAIN", None)
    service.journal.sync.close()


async def test_another_clients_task_with_the_same_model_and_parameters_cannot_be_told_apart_and_is_adopted(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    clock: VirtualClock,
) -> None:
    """Documented in docs/reliability.md: DashScope reports no prompt for wan2.7 and 2.6, so the same size and count
    in the same seconds is indistinguishable."""
    service, foreign_id = await lost_then_foreign(http, server_settings, emulator, client, EditParams(size="1K"), clock)
    assert await adopted_in(service) == [foreign_id]
    service.journal.sync.close()


@pytest.mark.parametrize(("prompt", "adopted"), [("a blue whale", False), ("MY prompt: a red fox", True)])
async def test_a_wan25_task_is_told_apart_by_the_prompt_it_reports(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    prompt: str,
    adopted: bool,
    clock: VirtualClock,
) -> None:
    """wan2.5 reports each image's orig_prompt: another prompt with the same parameters is not ours."""
    car = "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251229/pjeqdf/car.webp"
    same = EditParams(size="1024*1024")
    service, foreign_id = await lost_then_foreign(
        http,
        server_settings,
        emulator,
        client,
        same,
        clock,
        model="wan2.5-i2i-preview",
        images=(car,),
        size="1024*1024",
        prompt=prompt,
    )
    assert await adopted_in(service) == ([foreign_id] if adopted else [])
    service.journal.sync.close()


async def test_a_lost_submission_whose_only_candidate_made_another_size_is_ambiguous_not_called_unbilled(
    http: httpx2.AsyncClient,
    server_settings: Settings,
    emulator: EmulatorState,
    client: DashScopeClient,
    clock: VirtualClock,
) -> None:
    sent = clock.time() - 600  # ten minutes ago: past the window
    emulator.clock = lambda: sent
    (foreign,) = await crashed(server_settings, client, clock, ago=600, made=EditParams(size="2K"))
    emulator.clock = clock.time
    async with restarted(http, server_settings, clock) as after:

        async def judged() -> bool:
            return (await row(after, 1))["status"] == "AMBIGUOUS"

        await clock.until(judged, within=10)
        unlike = await row(after, 1)
    assert unlike.get("task_id") is None and unlike["candidates"] == [foreign]
    message = unlike["error"]["message"]
    assert f"task {foreign}: its images are 2048*2048" in message and "1024*1024" in message
    assert "probably another client's" in message and "none was adopted" in message
    assert unlike["error"]["code"] == UNLIKE
    journal = Journal(server_settings.journal_location)
    assert journal.get(foreign) is None, "a task ruled out is not this submission's: it gets no row, is not harvested"
    journal.harvest_candidates(younger_than=0)
    assert journal.get(foreign) is None, "nor later, when candidates left without rows are given them"
    journal.close()


def test_what_dashscope_reports_of_a_task_rules_it_out_when_the_request_cannot_have_made_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.begin(NewTask(model=MODEL, prompt="a fox", parameters={}, requested_images=2, expected_size=(2985, 1405)))
    (asked,) = journal.unresolved(younger_than=0)
    journal.close()

    def made(**fields: Any) -> TaskResult:
        return TaskResult(status=TaskStatus.SUCCEEDED, **fields)

    assert contradiction(asked, made(usage={"image_count": 2, "size": "2976*1408"})) is None  # a little off: fine
    assert contradiction(asked, made(usage={"image_count": 1})) is None
    assert contradiction(asked, made()) is None  # nothing reported, nothing ruled out
    assert "3 images" in (contradiction(asked, made(usage={"image_count": 3})) or "")
    assert "2048*2048" in (contradiction(asked, made(usage={"image_count": 1, "size": "2048*2048"})) or "")
    assert contradiction(asked, made(orig_prompt="a fox")) is None
    assert "another prompt" in (contradiction(asked, made(orig_prompt="a whale")) or "")
    unknown_size = replace(asked, expected_size=None)
    assert contradiction(unknown_size, made(usage={"size": "2048*2048"})) is None


def test_a_candidate_still_running_is_waited_for_and_a_ruled_out_one_never_adopted(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.begin(NewTask(model=MODEL, prompt="p", parameters={}, requested_images=1, expected_size=(1024, 1024)))
    (unanswered,) = journal.unresolved(younger_than=0)
    journal.close()
    at = time.strftime("%Y-%m-%d %H:%M:%S.000", time.gmtime(unanswered.created_at + 8 * 3600))
    listed = [ListedTask("t1", TaskStatus.RUNNING, MODEL, at)]

    def verdict(result: TaskResult) -> str:
        return judge(unanswered, listed, offset=8 * 3600, known=set(), others=[], queried={"t1": result}).kind

    assert verdict(TaskResult(TaskStatus.RUNNING)) == "wait"
    assert verdict(TaskResult(TaskStatus.SUCCEEDED, usage={"image_count": 1, "size": "1024*1024"})) == "adopt"
    assert verdict(TaskResult(TaskStatus.SUCCEEDED, usage={"image_count": 1, "size": "2048*2048"})) == "none"
    assert verdict(TaskResult(TaskStatus.FAILED)) == "adopt"  # nothing it reports contradicts the request
