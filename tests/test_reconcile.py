"""A create request whose answer never came is reconciled against DashScope's task list: its task is adopted and
its images saved when exactly one task can be it, and named, not adopted, when several can."""

from __future__ import annotations

import calendar
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

from tests.conftest import until
from wan_image_mcp.app import build_app, build_state
from wan_image_mcp.config import Settings
from wan_image_mcp.dashscope import DashScopeClient, ListedTask, TaskStatus
from wan_image_mcp.emulator import EmulatorState, Fault
from wan_image_mcp.journal import AsyncJournal, Journal, NewTask
from wan_image_mcp.outcomes import EditResult
from wan_image_mcp.reconcile import judge, learn_offset
from wan_image_mcp.service import EditArgs, WanService
from wan_image_mcp.validation import EditParams, prepare_request

pytestmark = pytest.mark.anyio
MODEL = "wan2.7-image"


def body(result: Any) -> dict[str, Any]:
    assert result.structured_content is not None, result.content
    return result.structured_content


async def crashed(settings: Settings, client: DashScopeClient, *, creates: int = 1, ago: float = 0.0) -> list[str]:
    """What a server killed between sending a create request and reading its answer leaves: a SUBMITTING row,
    and in DashScope the task(s) its request made. Returns their ids."""
    journal = Journal(settings.journal_path)
    try:
        journal.begin(NewTask(model=MODEL, prompt="lost answer", parameters={"n": 1}, created_at=time.time() - ago))
    finally:
        journal.close()
    ids: list[str] = []
    for _ in range(creates):
        task = await client.submit(prepare_request(MODEL, "lost answer", [], EditParams(size="1K")).to_wire())
        assert task.task_id is not None
        ids.append(task.task_id)
    return ids


@asynccontextmanager
async def restarted(http: httpx2.AsyncClient, settings: Settings) -> AsyncGenerator[Client]:
    async with Client(build_app(replace(settings, harvest=True), http)) as client:
        yield client


async def row(client: Client, journal_id: int) -> dict[str, Any]:
    listed = body(await client.call_tool("list_tasks", {"page_size": 50}))
    return next(t for t in listed["tasks"] if t["journal_id"] == journal_id)


async def saved(client: Client, journal_id: int, images: int = 1) -> dict[str, Any]:
    async def done() -> bool:
        return len((await row(client, journal_id))["images"]) == images

    await until(done, within=10)
    return await row(client, journal_id)


@asynccontextmanager
async def held_edit(
    http: httpx2.AsyncClient, settings: Settings, emulator: EmulatorState, args: EditArgs
) -> AsyncGenerator[tuple[TaskGroup, WanService, list[EditResult]]]:
    """An edit whose create request DashScope has taken and whose answer it holds: yields while it is held."""
    emulator.add_fault(Fault("hold", target="submit"))
    journal = AsyncJournal(Journal(settings.journal_path))
    service = build_state(settings, http, journal).service
    results: list[EditResult] = []

    async def edit() -> None:
        results.append(await service.edit(args, wait_seconds=5))

    async def held() -> bool:
        return emulator.holding == 1

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(edit)
                await until(held)
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
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState
) -> None:
    """The create request reaches DashScope, its answer is held, and the call is cancelled before it comes: the
    journal row stays SUBMITTING with no task id, as after a SIGKILL."""
    args = EditArgs(prompt="paid for", images=[], model=MODEL, params=EditParams(size="1K", n=2))
    async with held_edit(http, server_settings, emulator, args) as (group, _, _):
        group.cancel_scope.cancel()  # the answer never arrives
    ((task_id, task),) = emulator.tasks.items()
    assert task.count == 2

    async with restarted(http, server_settings) as after:
        assert (await row(after, 1)).get("task_id") in (None, task_id)
        adopted = await saved(after, 1, images=2)
    assert (adopted["task_id"], adopted["status"], adopted["prompt"]) == (task_id, "SUCCEEDED", "paid for")
    assert len(emulator.tasks) == 1  # found, never resubmitted


async def test_a_lost_answer_is_reconciled_by_the_running_server_and_its_image_saved(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState
) -> None:
    emulator.add_fault(Fault("drop", target="submit", after_processing=True))
    async with restarted(http, server_settings) as mcp:
        lost = await mcp.call_tool("edit_image", {"prompt": "draw a fox", "size": "1K"})
        assert lost.is_error and "UNCERTAIN" in str(lost.content)
        adopted = await saved(mcp, 1)
    (task_id,) = emulator.tasks
    assert (adopted["task_id"], adopted["status"], adopted.get("error")) == (task_id, "SUCCEEDED", None)


async def test_a_row_that_is_being_sent_now_is_never_reconciled(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState
) -> None:
    args = EditArgs(prompt="in flight", images=[], model=MODEL, params=EditParams(size="1K"))
    async with held_edit(http, server_settings, emulator, args) as (_, service, results):
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
) -> None:
    emulator.config.tz_offset_hours = hours  # this machine runs on UTC
    async with Client(build_app(server_settings, http)) as before:  # a known task teaches the zone
        known = body(await before.call_tool("edit_image", {"prompt": "known", "model": MODEL, "size": "1K"}))
    (task_id,) = await crashed(server_settings, client)
    async with restarted(http, server_settings) as after:
        adopted = await saved(after, 2)
    assert adopted["task_id"] == task_id != known["task_id"]
    (query,) = list_queries(emulator)
    start, end = (calendar.timegm(time.strptime(query[k], "%Y%m%d%H%M%S")) for k in ("start_time", "end_time"))
    assert end - start < 120  # the window around the send, in the service's zone: not ±14 h
    assert abs(start - (time.time() + hours * 3600)) < 120
    assert query["model_name"] == MODEL


async def test_with_no_known_task_any_zone_is_searched_and_one_fitting_task_adopted(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, client: DashScopeClient
) -> None:
    emulator.config.tz_offset_hours = -9.5
    (task_id,) = await crashed(server_settings, client)
    async with restarted(http, server_settings) as after:
        assert (await saved(after, 1))["task_id"] == task_id
    (query,) = list_queries(emulator)
    start, end = (calendar.timegm(time.strptime(query[k], "%Y%m%d%H%M%S")) for k in ("start_time", "end_time"))
    assert end - start > 26 * 3600


async def test_two_fitting_tasks_are_not_adopted_and_list_tasks_names_both(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, client: DashScopeClient
) -> None:
    ids = await crashed(server_settings, client, creates=2)
    async with restarted(http, server_settings) as after:

        async def judged() -> bool:
            return (await row(after, 1))["status"] == "AMBIGUOUS"

        await until(judged, within=10)
        listed = body(await after.call_tool("list_tasks", {"status": "AMBIGUOUS"}))
    (ambiguous,) = listed["tasks"]
    assert ambiguous.get("task_id") is None and ambiguous["candidates"] == sorted(ids)
    assert all(task_id in ambiguous["error"]["message"] for task_id in ids)
    assert "None was adopted" in ambiguous["error"]["message"]
    assert not any(r.path.startswith("/api/v1/tasks/") for r in emulator.requests)  # neither was taken


async def test_one_task_that_two_lost_submissions_could_have_made_is_adopted_by_neither(
    http: httpx2.AsyncClient, server_settings: Settings, client: DashScopeClient
) -> None:
    journal = Journal(server_settings.journal_path)
    journal.begin(NewTask(model=MODEL, prompt="first", parameters={}))
    journal.close()
    (task_id,) = await crashed(server_settings, client)
    async with restarted(http, server_settings) as after:

        async def judged() -> bool:
            return (await row(after, 1))["status"] == (await row(after, 2))["status"] == "AMBIGUOUS"

        await until(judged, within=10)
        first, second = await row(after, 1), await row(after, 2)
    assert first["candidates"] == second["candidates"] == [task_id]
    assert "journal id 2" in first["error"]["message"] and "journal id 1" in second["error"]["message"]


async def test_a_task_the_journal_knows_is_never_adopted_twice(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState
) -> None:
    journal = Journal(server_settings.journal_path)
    journal.begin(NewTask(model=MODEL, prompt="never sent", parameters={}))  # killed before sending
    journal.close()
    async with Client(build_app(server_settings, http)) as before:  # then a task of the same model, answered
        known = body(await before.call_tool("submit_task", {"prompt": "known", "model": MODEL, "size": "1K"}))
    async with restarted(http, server_settings) as after:
        await saved(after, 2)

        async def looked() -> bool:
            return bool(list_queries(emulator))

        await until(looked, within=10)
        listed = body(await after.call_tool("list_tasks", {"status": "SUBMITTING"}))
    (unanswered,) = listed["tasks"]
    assert (unanswered["journal_id"], unanswered.get("task_id")) == (1, None)
    assert known["task_id"] in emulator.tasks and len(emulator.tasks) == 1


async def test_a_lost_submission_the_list_never_shows_was_not_created(
    http: httpx2.AsyncClient, server_settings: Settings, client: DashScopeClient
) -> None:
    await crashed(server_settings, client, creates=0, ago=600)  # killed before sending, ten minutes ago
    async with restarted(http, server_settings) as after:

        async def concluded() -> bool:
            return (await row(after, 1))["status"] == "REJECTED"

        await until(concluded, within=10)
        rejected = await row(after, 1)
    assert rejected["error"]["code"] == "NotCreated" and "nothing is billed" in rejected["error"]["message"]


def test_the_zone_is_the_most_common_quarter_hour_and_odd_sends_say_nothing() -> None:
    sent = 1_800_000_000.0

    def at(offset: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S.123", time.gmtime(sent + offset))

    assert learn_offset([]) is None
    assert learn_offset([(sent, at(8 * 3600 + 0.4))]) == 8 * 3600
    assert learn_offset([(sent, at(5.75 * 3600 - 3))]) == 5.75 * 3600
    assert learn_offset([(sent, at(8 * 3600 + 400))]) is None  # 6 min 40 s past a quarter hour: a retried send
    assert learn_offset([(sent, at(3600)), (sent, at(0)), (sent, at(0))]) == 0
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


async def test_a_zone_that_changed_since_it_was_learned_does_not_make_a_lost_task_look_never_created(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, client: DashScopeClient
) -> None:
    async with Client(build_app(server_settings, http)) as before:  # learned: UTC+8
        await before.call_tool("edit_image", {"prompt": "known", "model": MODEL, "size": "1K"})
    emulator.config.tz_offset_hours = 9  # then the service's clock moves an hour
    sent = time.time() - 600  # ten minutes ago: past the window, so nothing found would mean never created
    emulator.clock = lambda: sent
    (task_id,) = await crashed(server_settings, client, ago=600)
    emulator.clock = time.time
    async with restarted(http, server_settings) as after:
        adopted = await saved(after, 2)
    assert adopted["task_id"] == task_id
    narrow, wide = list_queries(emulator)
    assert narrow["start_time"] != wide["start_time"]
