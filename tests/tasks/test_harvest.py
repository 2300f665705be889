"""The harvester saves every paid image without being asked, resumes after a restart, and shares the
account's query budget.

These tests run on a virtual clock (``tests/support/virtual_clock.py``) shared by the server and the emulator: polling
intervals, task latency and the harvester's schedule cost no real seconds, and the times asserted are exact."""

from __future__ import annotations

import itertools
import random
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager, closing
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from tests.support.virtual_clock import VirtualClock
from wan_image_mcp.core.journal import AsyncJournal, Journal, NewTask, Status, Tenant
from wan_image_mcp.core.requests.declarations import EditArgs, EditParams
from wan_image_mcp.core.tasks.harvest import Harvester
from wan_image_mcp.core.tasks.service import WanService
from wan_image_mcp.dashscope import QueryRate
from wan_image_mcp.dashscope.rate import Turns, on_behalf_of
from wan_image_mcp.emulator import EmulatorState, Fault
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings
from wan_image_mcp.wiring import build_service

pytestmark = pytest.mark.anyio


@pytest.fixture
def emulator(emulator: EmulatorState, clock: VirtualClock) -> EmulatorState:
    """The emulator on the test's clock: its task latency and request log run in the same virtual time."""
    emulator.clock = clock.time
    return emulator


@pytest.fixture
async def harvesting(http: httpx2.AsyncClient, server_settings: Settings, clock: VirtualClock) -> AsyncIterator[Client]:
    async with Client(build_app(server_settings.model_copy(update={"harvest": True}), http, clock=clock)) as client:
        yield client


async def task(client: Client, task_id: str) -> dict[str, Any]:
    listed = await client.call_tool("list_tasks", {"page_size": 50})
    assert listed.structured_content is not None
    return next(t for t in listed.structured_content["tasks"] if t["task_id"] == task_id)


def downloads(emulator: EmulatorState) -> int:
    return sum(r.path.startswith("/results/") for r in emulator.requests)


async def test_images_nobody_asked_for_are_saved(
    harvesting: Client, emulator: EmulatorState, clock: VirtualClock
) -> None:
    submitted = await harvesting.call_tool("submit_task", {"prompt": "x", "n": 2, "size": "1K"})
    assert submitted.structured_content is not None
    task_id = submitted.structured_content["task_id"]

    async def saved() -> bool:
        return len((await task(harvesting, task_id))["images"]) == 2

    await clock.until(saved)
    assert (await task(harvesting, task_id))["status"] == "SUCCEEDED"
    assert downloads(emulator) == 2


async def test_a_restart_resumes_tasks_younger_than_a_day(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    async with Client(build_app(server_settings, http, clock=clock)) as before:  # no harvester: tasks stay open
        fresh = (await before.call_tool("submit_task", {"prompt": "fresh", "size": "1K"})).structured_content
        old = (await before.call_tool("submit_task", {"prompt": "old", "size": "1K"})).structured_content
    assert fresh is not None and old is not None
    with closing(sqlite3.connect(server_settings.journal_path)) as db, db:  # the second one is 25 hours old
        db.execute("UPDATE tasks SET created_at = ? WHERE task_id = ?", (clock.time() - 25 * 3600, old["task_id"]))

    async with Client(build_app(server_settings.model_copy(update={"harvest": True}), http, clock=clock)) as after:

        async def saved() -> bool:
            return bool((await task(after, fresh["task_id"]))["images"])

        await clock.until(saved)
        assert (await task(after, old["task_id"]))["status"] == "PENDING"
    assert not any(old["task_id"] in r.path for r in emulator.requests)


async def test_the_harvester_and_check_task_download_once(
    harvesting: Client, emulator: EmulatorState, clock: VirtualClock
) -> None:
    submitted = (await harvesting.call_tool("submit_task", {"prompt": "x", "size": "1K"})).structured_content
    assert submitted is not None
    checked = await harvesting.call_tool("check_task", {"task_id": submitted["task_id"], "wait_seconds": 10})
    assert checked.structured_content is not None and checked.structured_content["images"]

    async def settled() -> bool:
        return bool((await task(harvesting, submitted["task_id"]))["images"])

    await clock.until(settled)
    await clock.sleep(5)  # long enough for a harvest, had one been due
    assert downloads(emulator) == 1


async def test_a_failed_download_is_retried_without_being_asked(
    harvesting: Client, emulator: EmulatorState, clock: VirtualClock
) -> None:
    emulator.add_fault(Fault("error", target="download", status=404, code="NoSuchKey", message="gone", count=2))
    submitted = (await harvesting.call_tool("submit_task", {"prompt": "x", "size": "1K"})).structured_content
    assert submitted is not None

    async def saved() -> bool:
        return bool((await task(harvesting, submitted["task_id"]))["images"])

    await clock.until(saved)
    assert downloads(emulator) == 3  # two refusals, then the image


async def test_task_queries_never_exceed_the_limit_in_any_window(clock: VirtualClock) -> None:
    rate = QueryRate(limit=5, window=0.2, clock=clock)
    sent: list[float] = []

    async def query() -> None:
        async with rate.query():
            sent.append(clock.monotonic())

    async with anyio.create_task_group() as group:
        for _ in range(16):
            group.start_soon(query)
    assert sent[4] == sent[0]  # the first five go at once
    for first, sixth in itertools.pairwise(sent[::5]):
        assert sixth - first == pytest.approx(0.2)  # the sixth exactly once the first has left the window
    assert max(sum(1 for t in sent if start <= t < start + 0.2 - 1e-9) for start in sent) == 5


async def test_no_window_sees_more_than_the_limit_arrive_however_long_answers_take(clock: VirtualClock) -> None:
    rate = QueryRate(limit=4, window=0.2, clock=clock)
    rng = random.Random(7)
    spans: list[tuple[float, float]] = []

    async def query() -> None:
        async with rate.query():
            sent = clock.monotonic()
            await clock.sleep(rng.uniform(0, 0.1))  # the round trip
            spans.append((sent, clock.monotonic()))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for _ in range(24):
                group.start_soon(query)
    # The service counts a query when it arrives: anywhere between its sending and its answer. At worst, every
    # query whose span meets a window arrives within it; the fullest such window starts at some answer.
    for start in (answered for _, answered in spans):
        assert sum(1 for sent, answered in spans if sent < start + 0.2 and answered >= start) <= 4


async def test_queued_queries_go_by_owner_in_turn_so_a_second_owner_waits_one_turn_not_for_all_of_the_first(
    clock: VirtualClock,
) -> None:
    rate = QueryRate(limit=1, window=1.0, clock=clock)
    sent: list[tuple[str, float]] = []

    async def query(owner: str) -> None:
        with on_behalf_of(owner):
            async with rate.query():
                sent.append((owner, clock.elapsed(clock.time())))

    async with anyio.create_task_group() as group:
        for owner in ["busy"] * 6 + ["lone"]:
            group.start_soon(query, owner)
    # busy's first goes at once and its second holds the turn; then owners alternate while both have some waiting
    assert sent == [("busy", 0), ("busy", 1), ("busy", 2), ("lone", 3), ("busy", 4), ("busy", 5), ("busy", 6)]


async def test_a_waiter_cancelled_while_waiting_or_as_its_turn_comes_loses_no_place() -> None:
    turns = Turns(1)
    got: list[str] = []

    async def hold(name: str, until: anyio.Event) -> None:
        async with turns.hold(name):
            got.append(name)
            await until.wait()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            first_done, never = anyio.Event(), anyio.Event()
            group.start_soon(hold, "first", first_done)
            await anyio.wait_all_tasks_blocked()
            with anyio.CancelScope() as waiting:
                waiting.cancel()  # cancelled while it waits: it leaves the queue
                await hold("cancelled waiting", never)
            async with anyio.create_task_group() as second:
                second.start_soon(hold, "cancelled as its turn comes", never)
                await anyio.wait_all_tasks_blocked()
                first_done.set()  # "first" gives its place to the waiter, which is being cancelled: passed on
                second.cancel_scope.cancel()
            third_done = anyio.Event()
            group.start_soon(hold, "third", third_done)
            await anyio.wait_all_tasks_blocked()
            assert got == ["first", "third"]  # the place was not lost
            third_done.set()


def test_journal_rows_from_other_servers_are_adopted(tmp_path: Any) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.observed("someone-elses-task", status=Status.RUNNING)
    row = journal.get("someone-elses-task")
    assert row is not None and row.status == "RUNNING" and row.model == ""
    journal.begin(NewTask(model="m", prompt="p", parameters={}))
    assert journal.recent(limit=10)[1] == 2
    journal.close()


async def submit_tasks(client: Client, count: int) -> list[str]:
    ids: list[str] = []
    for _ in range(count):
        submitted = (await client.call_tool("submit_task", {"prompt": "x", "size": "1K"})).structured_content
        assert submitted is not None
        ids.append(submitted["task_id"])
    return ids


async def all_saved(client: Client, ids: list[str]) -> bool:
    return all([bool((await task(client, task_id))["images"]) for task_id in ids])


async def test_open_tasks_are_watched_through_the_task_list(
    harvesting: Client, emulator: EmulatorState, clock: VirtualClock
) -> None:
    ids = await submit_tasks(harvesting, 5)
    await clock.until(lambda: all_saved(harvesting, ids))
    by_id = [r for r in emulator.requests if r.method == "GET" and r.path.startswith("/api/v1/tasks/")]
    listed = [r for r in emulator.requests if r.method == "GET" and r.path == "/api/v1/tasks"]
    assert len(by_id) == len(ids)  # one query of its own per task, once it is done
    assert listed  # the rest came from the list


async def test_edit_queries_its_task_right_after_submitting_it(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    emulator.config.polls_to_finish = 1  # done on its first query
    slow = server_settings.model_copy(update={"poll_interval": 30.0, "poll_interval_max": 30.0})
    async with Client(build_app(slow, http, clock=clock)) as client:
        result = await client.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert result.structured_content is not None
    assert result.structured_content["status"] == "SUCCEEDED" and len(result.structured_content["images"]) == 1
    assert clock.elapsed(clock.time()) == 0  # queried at once, not after a 30 s poll interval


async def test_a_task_is_never_queried_twice_within_the_poll_interval_whoever_asks(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    emulator.config.polls_to_finish = 5
    spaced = server_settings.model_copy(update={"poll_interval": 0.3, "poll_interval_max": 0.3})
    async with Client(build_app(spaced, http, clock=clock)) as client:
        first = await client.call_tool("edit_image", {"prompt": "x", "size": "1K", "wait_seconds": 0})
        assert first.structured_content is not None
        task_id = first.structured_content["task_id"]
        for _ in range(3):  # an agent checking again at once, without waiting
            await client.call_tool("check_task", {"task_id": task_id})
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
    assert done.structured_content is not None and done.structured_content["status"] == "SUCCEEDED"
    queries = [clock.elapsed(r.at) for r in emulator.requests if r.path == f"/api/v1/tasks/{task_id}"]
    assert queries == [0, 0.3, 0.6, 0.9, 1.2]  # each call waits out the interval since the last query


async def test_a_failing_task_list_falls_back_to_one_query_per_task_and_is_not_retried_at_once(
    harvesting: Client, emulator: EmulatorState, clock: VirtualClock
) -> None:
    emulator.add_fault(Fault("error", target="list", status=403, code="AccessDenied", message="no", count=100))
    ids = await submit_tasks(harvesting, 2)
    await clock.until(lambda: all_saved(harvesting, ids))
    assert sum(1 for r in emulator.requests if r.path == "/api/v1/tasks") == 1  # tried once, then left alone


async def test_a_waiting_edit_ends_as_soon_as_the_task_list_shows_its_task_done(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    """An edit's own queries back off (1, 1.5, 2.25, 3.4 s, ...); the harvester's list, once a second, sees the
    end sooner, and the edit queries then instead of at its next step."""
    emulator.config.latency = 5.5  # own queries at 0, 1, 2.5, 4.75, then 8.125 s; lists every second from 1 s
    settings = server_settings.model_copy(update={"harvest": True, "poll_interval": 1.0, "poll_interval_max": 10.0})
    async with Client(build_app(settings, http, clock=clock)) as client:
        result = await client.call_tool("edit_image", {"prompt": "x", "size": "1K", "wait_seconds": 30})
    assert result.structured_content is not None and result.structured_content["status"] == "SUCCEEDED"
    task_id = result.structured_content["task_id"]
    own = [clock.elapsed(r.at) for r in emulator.requests if r.path == f"/api/v1/tasks/{task_id}"]
    lists = [clock.elapsed(r.at) for r in emulator.requests if r.path == "/api/v1/tasks"]
    assert own == [0, 1, 2.5, 4.75, 6]  # not its own next step (8.125 s), but at the list of 6 s
    assert lists[:6] == [1, 2, 3, 4, 5, 6]  # the first list to see it done (5.5 s) is that of 6 s


BUSY, LONE = Tenant("https://login.example", "busy"), Tenant("https://login.example", "lone")


@asynccontextmanager
async def two_tenants(
    http: httpx2.AsyncClient, settings: Settings, clock: VirtualClock
) -> AsyncGenerator[tuple[WanService, AsyncJournal, list[str], str]]:
    """A service on ``clock`` in which BUSY has just submitted 200 tasks and LONE one: the service, its journal,
    BUSY's task ids and LONE's."""
    journal = AsyncJournal(Journal(settings.journal_location, clock=clock))
    args = EditArgs(prompt="one of many", images=[], model="wan2.7-image", params=EditParams(size="1K"))
    try:
        service = build_service(settings, http, journal, clock)
        busy = [str((await service.submit(args, tenant=BUSY)).task_id) for _ in range(200)]
        yield service, journal, busy, str((await service.submit(args, tenant=LONE)).task_id)
    finally:
        journal.sync.close()


@pytest.mark.slow  # about 3.5 s: 200 tasks submitted and some harvested
async def test_a_tenant_with_200_tasks_due_never_delays_another_tenants_lone_task_by_more_than_a_few_seconds(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    """200 tasks of one tenant, then one of another, all ending 4 s later: at 19 queries a second the 200 take over
    10 s to query, and the lone task is queried and saved in its tenant's turn, within a few seconds of its end."""
    emulator.config.latency = 4.0
    settings = server_settings.model_copy(update={"harvest": True, "poll_interval": 1.0, "poll_interval_max": 5.0})
    async with two_tenants(http, settings, clock) as (service, journal, _, task_id), anyio.create_task_group() as group:
        group.start_soon(Harvester(service).run)

        async def saved() -> bool:
            row = await journal.get(task_id)
            return row is not None and row.saved_at is not None

        await clock.until(saved, within=30)
        on_disk = clock.elapsed(clock.time())
        queried = [clock.elapsed(r.at) for r in emulator.requests if r.path == f"/api/v1/tasks/{task_id}"]
        busy_queries = sum(r.path.startswith("/api/v1/tasks/") for r in emulator.requests) - len(queried)
        assert queried and queried[0] <= 4 + 3 and on_disk <= 4 + 3  # within 3 s of its end
        assert busy_queries < 200  # while the other tenant's were still being queried
        group.cancel_scope.cancel()


async def test_a_tenants_check_task_is_not_queued_behind_another_tenants_200_waiting_check_tasks(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    """200 check_task calls of one tenant wait on long tasks, their queries queued at 19 a second (over 10 s for
    one round); another tenant's one look goes in its own turn."""
    emulator.config.latency = 120.0
    settings = server_settings.model_copy(update={"poll_interval": 1.0, "poll_interval_max": 5.0})
    async with two_tenants(http, settings, clock) as (service, _, busy, lone), anyio.create_task_group() as group:
        for task_id in busy:
            group.start_soon(lambda task_id=task_id: service.check(task_id, wait_seconds=60, tenant=BUSY))
        await clock.sleep(2)  # their first round of queries is queued
        asked = clock.time()
        looked = await service.check(lone, tenant=LONE)
        assert looked.status in ("PENDING", "RUNNING") and clock.time() - asked < 2  # next second, not ~8 s later
        group.cancel_scope.cancel()


@pytest.mark.both_journals
async def test_a_task_failed_with_half_an_emoji_in_its_message_is_concluded_failed_by_the_harvester(
    harvesting: Client, emulator: EmulatorState, clock: VirtualClock
) -> None:
    emulator.add_fault(Fault("fail_task", code="InternalError.Algo", message="near \ud83d"))  # JSON: "near \\ud83d"
    submitted = await harvesting.call_tool("submit_task", {"prompt": "x", "size": "1K"})
    assert submitted.structured_content is not None
    task_id = submitted.structured_content["task_id"]

    async def failed() -> bool:
        return (await task(harvesting, task_id))["status"] == "FAILED"

    await clock.until(failed)
    assert (await task(harvesting, task_id))["error"]["message"] == "near \ufffd"
