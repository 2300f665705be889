"""The spending rules in the core (which calls need the user's yes; only a yes spends) and the MCP side's reply,
which answers only the question that was asked."""

from __future__ import annotations

from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from threading import Barrier
from typing import Any

import anyio
import httpx2
import psycopg
import pytest
from mcp import Client
from mcp.types import CallToolResult

from tests.support.helpers import text, until
from tests.support.postgres_server import PostgresServer
from wan_image_mcp.core.errors import JournalBusy, NotConfirmed, SpendLimitExceeded
from wan_image_mcp.core.journal import Journal, NewTask
from wan_image_mcp.core.journal.queries import BUDGET_LOCK
from wan_image_mcp.core.requests.declarations import EditArgs, EditParams
from wan_image_mcp.core.requests.spending import (
    Answer,
    CannotAsk,
    Confirm,
    Reply,
    SpendGate,
    SpendQuestion,
    begin_within_budget,
)
from wan_image_mcp.core.requests.validation import PreparedRequest, prepare_request
from wan_image_mcp.core.tasks import service
from wan_image_mcp.emulator import EmulatorState
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.mcp_server.resolvers import Checked, Prepared
from wan_image_mcp.settings import Settings

pytestmark = pytest.mark.anyio


def request(model: str = "wan2.7-image-pro", **params: Any) -> PreparedRequest:
    params.setdefault("size", "1K")
    return prepare_request(model, "a lighthouse", [], EditParams(**params), cwd=Path.cwd())


def replying(reply: Reply, asked: list[SpendQuestion]) -> Confirm:
    async def confirm(question: SpendQuestion) -> Reply:
        asked.append(question)
        return reply

    return confirm


@pytest.mark.parametrize(
    ("threshold", "n", "asks"), [(None, 4, False), (2, 1, False), (2, 2, False), (2, 3, True), (0, 1, True)]
)
def test_only_a_call_above_the_threshold_needs_a_question(threshold: int | None, n: int, asks: bool) -> None:
    question = SpendGate(per_call=4, confirm_above=threshold).vet(request(n=n))
    assert (question is not None) is asks
    if question is not None:
        assert question == SpendQuestion(images=n, model="wan2.7-image-pro", threshold=threshold or 0)


def test_the_count_is_what_the_api_bills_n_or_max_images_for_interleave() -> None:
    gate = SpendGate(confirm_above=1)
    assert (gate.vet(request(n=3, enable_sequential=True)) or SpendQuestion(0, "", 0)).images == 3
    interleave = request("wan2.6-image", enable_interleave=True, size="1024*1024")
    assert (gate.vet(interleave) or SpendQuestion(0, "", 0)).images == 5  # the API's default max_images
    assert gate.vet(request("wan2.6-image", enable_interleave=True, size="1024*1024", max_images=1)) is None


def test_the_per_call_limit_refuses_before_any_question() -> None:
    with pytest.raises(SpendLimitExceeded, match="WAN_MCP_MAX_IMAGES_PER_CALL is 3"):
        SpendGate(per_call=3, confirm_above=1).vet(request(n=4))


async def test_only_an_accepted_answer_spends() -> None:
    gate = SpendGate(confirm_above=1)
    asked: list[SpendQuestion] = []
    await gate.clear(request(n=2), replying(Answer.ACCEPTED, asked))
    assert [q.text for q in asked] == ["This will generate 2 paid images with wan2.7-image-pro. Proceed?"]
    for reply in (Answer.DECLINED, Answer.CANCELLED, CannotAsk("this client cannot")):
        with pytest.raises(NotConfirmed, match="Nothing was sent"):
            await gate.clear(request(n=2), replying(reply, asked))
    with pytest.raises(NotConfirmed, match="there is no way to ask the user"):
        await gate.clear(request(n=2), None)
    await gate.clear(request(n=1), None)  # at the threshold: nothing to ask


async def test_the_adapters_reply_answers_only_the_question_that_was_asked() -> None:
    asked = SpendQuestion(images=2, model="wan2.7-image-pro", threshold=1)
    call = Prepared(EditArgs("a lighthouse", [], "wan2.7-image-pro", EditParams(n=2)), request(n=2))
    checked = Checked(call, asked, Answer.ACCEPTED)
    assert await checked.confirm(asked) is Answer.ACCEPTED
    other = await checked.confirm(SpendQuestion(images=4, model="wan2.7-image-pro", threshold=1))
    assert isinstance(other, CannotAsk)
    unasked = Checked(call, None, None)
    assert isinstance(await unasked.confirm(asked), CannotAsk)


@pytest.mark.both_journals
def test_concurrent_submissions_on_one_journal_never_pass_the_daily_limit(server_settings: Settings) -> None:
    """Eight connections to one journal (as replicas, or servers on one SQLite file, have), each submitting twice at
    the same instant under a budget of three: the check and the row are one step, so three rows are written and
    every other submission is refused."""
    journals = [Journal(server_settings.journal_location).open() for _ in range(8)]
    start = Barrier(len(journals))
    written: list[int] = []
    refused: list[str] = []

    def submit(journal: Journal) -> None:
        start.wait(timeout=30)
        for i in range(2):
            task = NewTask(model="wan2.7-image", prompt=f"fox {i}", parameters={}, requested_images=1)
            for _ in range(2000):  # as the service does: while another holds the check, try again
                try:
                    written.append(begin_within_budget(journal, task, 3))
                except SpendLimitExceeded as exc:
                    refused.append(str(exc))
                except JournalBusy:
                    continue
                break

    try:
        with ThreadPoolExecutor(len(journals)) as pool:
            for done in [pool.submit(submit, journal) for journal in journals]:
                done.result(timeout=60)
        assert (len(written), len(refused)) == (3, 13)
        assert all("WAN_MCP_MAX_IMAGES_PER_DAY is 3. Nothing was sent" in said for said in refused)
        assert journals[0].requested_since(0) == 3 and journals[0].recent()[1] == 3
    finally:
        for journal in journals:
            journal.close()


@contextmanager
def budget_held_elsewhere(journal_url: str) -> Generator[Callable[[], None]]:
    """Another replica stuck inside its budget check: a connection holding the daily budget's advisory lock in an
    open transaction (as a replica frozen between its check and its commit would). Yields its release."""
    Journal(journal_url).open().close()  # migrated, as a running replica's journal is
    with psycopg.connect(journal_url) as stuck:
        stuck.execute("SELECT pg_advisory_xact_lock(%s)", (BUDGET_LOCK,))
        yield stuck.rollback


def counting_budget_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the service's attempts at its budget check and row (``begin_within_budget``)."""
    attempts: list[int] = []

    def counted(journal: Journal, task: NewTask, per_day: int | None) -> int:
        attempts.append(1)
        return begin_within_budget(journal, task, per_day)

    monkeypatch.setattr(service, "begin_within_budget", counted)
    return attempts


@pytest.fixture
def capped_team(server_settings: Settings, postgres: PostgresServer) -> Settings:
    """A server on a PostgreSQL journal (as replicas share), with a daily budget of five images."""
    return server_settings.model_copy(update={"journal_url": postgres.database(), "max_images_per_day": 5})


async def test_a_replica_stuck_in_its_budget_check_never_stalls_this_servers_journal(
    http: httpx2.AsyncClient, capped_team: Settings, emulator: EmulatorState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another replica holds the budget's check, a paid call here waits for it without holding the journal:
    list_tasks answers at once meanwhile; once the other lets go, the paid call goes ahead."""
    settings = capped_team
    attempts = counting_budget_checks(monkeypatch)
    paid: list[CallToolResult] = []
    with budget_held_elsewhere(settings.journal_url or "") as release:
        async with Client(build_app(settings, http)) as client, anyio.create_task_group() as group:
            answered = anyio.Event()

            async def submit() -> None:
                paid.append(await client.call_tool("submit_task", {"prompt": "a fox", "size": "1K"}))
                answered.set()

            group.start_soon(submit)

            async def retrying() -> bool:
                return len(attempts) >= 3

            await until(retrying, within=10)
            with anyio.fail_after(5):
                listed = await client.call_tool("list_tasks", {})
            assert not listed.is_error and not paid and not emulator.tasks
            release()
            with anyio.fail_after(15):
                await answered.wait()
    assert not paid[0].is_error and len(emulator.tasks) == 1


async def test_a_budget_check_held_elsewhere_too_long_is_refused_with_nothing_written_or_sent(
    http: httpx2.AsyncClient, capped_team: Settings, emulator: EmulatorState, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = capped_team
    monkeypatch.setattr(service, "BUDGET_WAIT", 0.3)
    with budget_held_elsewhere(settings.journal_url or ""):
        async with Client(build_app(settings, http)) as client:
            with anyio.fail_after(10):
                refused = await client.call_tool("submit_task", {"prompt": "a fox", "size": "1K"})
    said = text(refused)
    assert refused.is_error and "another server has held that check for over 0 s" in said
    assert "Nothing was sent and nothing is billed" in said and "Traceback" not in said
    assert not emulator.tasks
    journal = Journal(settings.journal_url or "")
    try:
        assert journal.recent()[1] == 0
    finally:
        journal.close()
