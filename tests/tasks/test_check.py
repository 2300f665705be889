"""Checking a task: calls for one task take turns, and no task's lock outlives the calls that need it."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2
import pytest
from anyio.abc import TaskStatus

from tests.support.helpers import EMULATOR_BASE
from wan_image_mcp.core.clock import SYSTEM_CLOCK
from wan_image_mcp.core.journal import AsyncJournal, Journal
from wan_image_mcp.core.requests.validation import prepare_request
from wan_image_mcp.core.results.store import ResultStore
from wan_image_mcp.core.tasks.check import TaskCheck, TaskLocks
from wan_image_mcp.core.tasks.polling import Polling
from wan_image_mcp.dashscope import DashScopeClient

pytestmark = pytest.mark.anyio


async def test_many_distinct_task_checks_leave_no_lock_behind(
    client: DashScopeClient, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    journal = AsyncJournal(Journal(tmp_path / "journal.db"))
    try:
        store = ResultStore(tmp_path / "out", http, api_base_url=EMULATOR_BASE)
        check = TaskCheck(lambda: client, store, journal, Polling(1.0, 5.0), SYSTEM_CLOCK)
        request = prepare_request("wan2.7-image", "one of many", []).to_wire()
        ids = [str((await client.submit(request)).task_id) for _ in range(30)]
        with anyio.fail_after(30):
            for task_id in ids:
                assert (await check.check(task_id)).task_id == task_id
        assert len(check.locks) == 0
    finally:
        journal.sync.close()


async def test_calls_for_one_task_take_turns_and_its_lock_goes_with_the_last() -> None:
    locks = TaskLocks()
    entered: list[str] = []
    release = anyio.Event()

    async def hold(name: str, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with locks.holding("task-1"):
            entered.append(name)
            task_status.started()
            await release.wait()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(hold, "first")
            group.start_soon(hold, "second")
            await anyio.wait_all_tasks_blocked()
            assert (entered, len(locks)) == (["first"], 1)  # the second waits for the first
            release.set()
    assert (entered, len(locks)) == (["first", "second"], 0)


async def test_a_call_cancelled_while_it_waits_leaves_the_lock_to_its_holder_and_then_none() -> None:
    locks = TaskLocks()
    release = anyio.Event()

    async def holder(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with locks.holding("task-1"):
            task_status.started()
            await release.wait()

    async def waiter(scope: anyio.CancelScope) -> None:
        with scope:
            async with locks.holding("task-1"):
                pytest.fail("entered while another call held the lock")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(holder)
            waiting = anyio.CancelScope()
            group.start_soon(waiter, waiting)
            await anyio.wait_all_tasks_blocked()
            waiting.cancel()
            await anyio.wait_all_tasks_blocked()
            assert len(locks) == 1  # the holder's
            release.set()
    assert len(locks) == 0
