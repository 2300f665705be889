"""Tenancy with OAuth: the token's issuer and subject own the tasks they submit, and a caller is shown only their own
tasks and images (list_tasks, check_task, cancel_task, resources, completions); without a token, as before."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncGenerator, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.client.streamable_http import streamable_http_client
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, ResourceTemplateReference, TextResourceContents
from pydantic import SecretStr

from tests.support.helpers import server_env, text, until
from tests.support.oauth_issuer import Issuer, served, status
from tests.support.postgres_server import PostgresServer
from wan_image_mcp.core.errors import InvalidTenant
from wan_image_mcp.core.journal import Journal, NewTask, Status, Tenant
from wan_image_mcp.emulator import EmulatorConfig, Fault
from wan_image_mcp.emulator.serve import RunningEmulator
from wan_image_mcp.gallery import write_gallery
from wan_image_mcp.mcp_server.apps.extension import VIEW_KEY

KEY = "sk-tenancy"
A = "https://login.example"
ALICE, BOB, ALICE_ELSEWHERE = Tenant(A, "alice"), Tenant(A, "bob"), Tenant("https://other.example", "alice")


# --- the journal's filters, on SQLite and on PostgreSQL ---------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    location: Path | str = tmp_path / "journal.sqlite3"
    if request.param == "postgres":
        location = cast(PostgresServer, request.getfixturevalue("postgres")).database()
    opened = Journal(location).open()
    yield opened
    opened.close()


def submit(journal: Journal, task_id: str, tenant: Tenant | None) -> int:
    row_id = journal.begin(NewTask(model="wan2.7-image", prompt=f"by {tenant}", parameters={}, tenant=tenant))
    journal.submitted(row_id, task_id, "req", Status.PENDING, next_poll_at=0)
    return row_id


def test_a_tenant_sees_only_its_own_rows_and_subjects_are_told_apart_by_issuer(journal: Journal) -> None:
    for task_id, tenant in [("t-alice", ALICE), ("t-bob", BOB), ("t-alice-2", ALICE_ELSEWHERE), ("t-none", None)]:
        submit(journal, task_id, tenant)
    rows, total = journal.recent(tenant=ALICE)
    assert ([row.task_id for row in rows], total) == (["t-alice"], 1)
    assert (rows[0].tenant_issuer, rows[0].tenant_subject) == (A, "alice")
    assert [row.task_id for row in journal.recent(tenant=ALICE_ELSEWHERE)[0]] == ["t-alice-2"]
    assert journal.recent(tenant=BOB, status=Status.SUCCEEDED) == ([], 0)
    assert journal.recent(tenant=Tenant(A, "carol")) == ([], 0)
    assert journal.recent()[1] == 4  # no tenant: every row, as without OAuth
    assert journal.get("t-alice", tenant=BOB) is None
    assert journal.get("t-alice", tenant=ALICE_ELSEWHERE) is None
    assert journal.get("t-none", tenant=ALICE) is None  # a task submitted without OAuth is no tenant's
    found = journal.get("t-alice", tenant=ALICE)
    assert found is not None and found.belongs_to(ALICE) and not found.belongs_to(BOB)
    assert journal.get("t-alice") == found


def test_the_harvester_sees_every_tenants_tasks_and_they_keep_their_tenant(journal: Journal) -> None:
    submit(journal, "t-alice", ALICE)
    submit(journal, "t-bob", BOB)
    assert {row.task_id for row in journal.to_harvest(younger_than=0)} == {"t-alice", "t-bob"}
    journal.observed("t-alice", status=Status.SUCCEEDED, result_urls=["https://x/1.png"])
    journal.saved("t-alice", [{"path": "/nowhere/1.png"}])
    row = journal.get("t-alice", tenant=ALICE)
    assert row is not None and row.status == "SUCCEEDED" and row.images == [{"path": "/nowhere/1.png"}]


def test_a_task_adopted_by_reconciliation_keeps_its_rows_tenant(journal: Journal) -> None:
    row_id = journal.begin(NewTask(model="wan2.7-image", prompt="lost answer", parameters={}, tenant=BOB))
    journal.uncertain(row_id, "answer lost")
    assert [row.tenant_subject for row in journal.unresolved(younger_than=0)] == ["bob"]
    assert journal.reconciled(row_id, "t-found", Status.RUNNING)
    assert journal.get("t-found", tenant=ALICE) is None
    adopted = journal.get("t-found", tenant=BOB)
    assert adopted is not None and adopted.status == "RUNNING"


def test_each_candidate_of_a_tenants_ambiguous_submission_is_that_tenants_task_and_counted_once(
    journal: Journal,
) -> None:
    def lost(tenant: Tenant) -> int:
        new = NewTask(model="wan2.7-image", prompt="lost", parameters={}, requested_images=1, tenant=tenant)
        row_id = journal.begin(new)
        journal.uncertain(row_id, "answer lost")
        return row_id

    alices, bobs = lost(ALICE), lost(BOB)
    journal.ambiguous(alices, ["t-1", "t-2"], "either could be it")
    journal.ambiguous(bobs, ["t-2"], "this one could be it too")
    for task_id in ("t-1", "t-2"):
        found = journal.get(task_id, tenant=ALICE)
        assert found is not None and (found.candidate_of, found.owner, found.prompt) == (alices, (A, "alice"), "lost")
    shared = journal.get("t-2", tenant=BOB)  # bob's submission names it too: his as well, on alice's row
    assert shared is not None and shared.candidate_of == alices
    assert journal.get("t-1", tenant=BOB) is None and journal.get("t-2", tenant=Tenant(A, "carol")) is None
    assert {row.task_id for row in journal.to_harvest(younger_than=0)} == {"t-1", "t-2"}
    assert journal.requested_since(0) == 2  # one paid image per submission, none more for its candidates
    assert journal.known({"t-1", "t-2"}) == set() and journal.contested(younger_than=0) == {"t-1", "t-2"}


def test_a_task_first_seen_by_a_query_belongs_to_no_tenant(journal: Journal) -> None:
    journal.observed("t-elsewhere", status=Status.RUNNING)  # submitted by another process: adopted without a tenant
    assert journal.get("t-elsewhere") is not None
    assert journal.get("t-elsewhere", tenant=ALICE) is None


ODD_SUBJECTS: list[tuple[object, str]] = [
    ("", "the subject is empty"),
    (" ", "blank"),
    ("\u3000\u200b", "blank"),  # an ideographic space and a zero-width one: nothing to see
    ("\x00", "a control character, U+0000, at position 1"),
    ("al\x00ice", "a control character, U+0000, at position 3"),
    ("alice\n", "a control character, U+000A, at position 6"),
    ("\x1b[2Jbob", "a control character, U+001B"),
    ("bob\x7f", "a control character, U+007F"),
    ("bob\x85", "a control character, U+0085"),  # C1
    ("bob\x9f", "a control character, U+009F"),
    ("a\u2028b", "a line separator, U+2028"),
    ("a\ud83d", "a lone surrogate, U+D83D"),  # an emoji cut in half
    ("a" * 256, "256 characters long, more than 255"),
    ("\u3164\uffa0\u2800", "blank"),  # Hangul fillers and the blank Braille pattern: letters that show nothing
    ("\u034f\u0301\ufe0f", "blank"),  # combining marks alone
    ("\ue000", "blank"),  # private use: no glyph anyone agreed on
    ("\u202ebob", "a bidirectional control, U+202E"),  # would show a log line reversed
    ("bob\uffff", "a noncharacter, U+FFFF"),
    (123, "not a string (int)"),
    (["alice"], "not a string (list)"),
]


@pytest.mark.parametrize(("subject", "why"), ODD_SUBJECTS)
def test_a_subject_that_cannot_name_a_tenant_is_refused_saying_why(subject: object, why: str) -> None:
    with pytest.raises(InvalidTenant, match=re.escape(why)):
        Tenant.of(A, subject)
    with pytest.raises(InvalidTenant, match="the issuer is empty"):
        Tenant("", "alice")


def test_unusual_subjects_are_kept_exactly_and_each_is_its_own_tenant(journal: Journal) -> None:
    subjects = ["alice", "Alice", " alice", "alice ", "ålice ✓", "a\u200bb", "0", "a" * 255, "用户", "😀", "a\u0301"]
    for i, subject in enumerate(subjects):
        submit(journal, f"t-{i}", Tenant.of(A + "/", subject))
    for i, subject in enumerate(subjects):
        rows, total = journal.recent(tenant=Tenant.of(A, subject))
        assert ([row.task_id for row in rows], total) == ([f"t-{i}"], 1)
        assert rows[0].tenant_subject == subject and rows[0].tenant_issuer == A


# --- through the protocol: an OAuth server on HTTP, two users --------------------------------------------------


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}))) as running:
        yield running


@contextmanager
def requests_for(emulator: RunningEmulator, task_id: str) -> Generator[list[str]]:
    """The paths of the emulator's requests, made inside the block, that name ``task_id``."""
    before = len(emulator.state.requests)
    seen: list[str] = []
    yield seen
    seen.extend(r.path for r in emulator.state.requests[before:] if task_id in r.path or task_id in r.query)


def structured(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, result.content
    return result.structured_content


async def completions(client: Client, uri: str, argument: str) -> list[str]:
    answer = await client.complete(ResourceTemplateReference(uri=uri), {"name": argument, "value": ""})
    return answer.completion.values


@asynccontextmanager
async def user(issuer: Issuer, url: str, sub: str) -> AsyncGenerator[Client]:
    """An MCP client over HTTP with a token for ``sub``, advertising MCP Apps (whose data must show nothing either)."""
    apps = [advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {issuer.token(sub, url)}"}) as http,
        Client(streamable_http_client(url, http_client=http), extensions=apps) as client,
    ):
        yield client


def test_a_second_tenant_sees_nothing_of_the_first(issuer: Issuer, emulator: RunningEmulator, tmp_path: Path) -> None:
    def as_user(url: str, sub: str) -> contextlib.AbstractAsyncContextManager[Client]:
        return user(issuer, url, sub)

    async def scenario(url: str) -> None:
        async with as_user(url, "alice") as alice:
            edited = await alice.call_tool("edit_image", {"prompt": "alice's fox", "size": "1K"})
            done = structured(edited)
            assert done["status"] == "SUCCEEDED", done
            assert edited.meta is not None and edited.meta[VIEW_KEY]["prompt"] == "alice's fox"
            task_id, image = done["task_id"], Path(done["images"][0]["path"]).name
            pending = structured(await alice.call_tool("submit_task", {"prompt": "alice's queued", "size": "1K"}))
            queued = pending["task_id"]
        async with as_user(url, "bob") as bob:
            with requests_for(emulator, task_id) as sent, requests_for(emulator, queued) as sent_queued:
                listed = structured(await bob.call_tool("list_tasks", {}))
                assert (listed["tasks"], listed["total"]) == ([], 0)
                checked = await bob.call_tool("check_task", {"task_id": task_id})
                unknown = await bob.call_tool("check_task", {"task_id": "no-such-task"})
                assert structured(checked)["status"] == "UNKNOWN" and structured(checked)["error"]["code"] == "UNKNOWN"
                said, said_unknown = (r.model_dump_json(exclude={"content"}) for r in (checked, unknown))
                assert said == said_unknown.replace("no-such-task", task_id)  # nothing told, nor in the viewer's data
                assert checked.meta is not None and VIEW_KEY in checked.meta
                cancelled = await bob.call_tool("cancel_task", {"task_id": queued})
                cancelled_unknown = await bob.call_tool("cancel_task", {"task_id": "no-such-task"})
                assert cancelled.is_error and cancelled_unknown.is_error
                assert text(cancelled) == text(cancelled_unknown).replace("no-such-task", queued)
                for uri in (f"wan://tasks/{task_id}", f"wan://images/{image}"):
                    with pytest.raises(MCPError, match="no "):
                        await bob.read_resource(uri)
                assert await completions(bob, "wan://tasks/{task_id}", "task_id") == []
                assert await completions(bob, "wan://images/{name}", "name") == []
            assert sent == [] and sent_queued == []  # nothing was sent to DashScope for alice's tasks
        async with as_user(url, "alice") as alice:
            listed = structured(await alice.call_tool("list_tasks", {}))
            assert {task["task_id"] for task in listed["tasks"]} == {task_id, queued}
            again = structured(await alice.call_tool("check_task", {"task_id": task_id}))
            assert again["status"] == "SUCCEEDED" and Path(again["images"][0]["path"]).name == image
            (entry,) = (await alice.read_resource(f"wan://tasks/{task_id}")).contents
            assert isinstance(entry, TextResourceContents)
            assert json.loads(entry.text)["tenant_subject"] == "alice"
            (picture,) = (await alice.read_resource(f"wan://images/{image}")).contents
            assert picture.uri is not None
            assert set(await completions(alice, "wan://tasks/{task_id}", "task_id")) == {task_id, queued}
            assert await completions(alice, "wan://images/{name}", "name") == [image]
            assert not (await alice.call_tool("cancel_task", {"task_id": queued})).is_error

    quick = {"poll_interval": 0.05, "poll_interval_max": 0.1}
    with served(issuer, tmp_path, api_key=SecretStr(KEY), base_url=emulator.base_url, **quick) as url:
        anyio.run(scenario, url)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_identical_submissions_whose_answers_were_lost_are_each_found_and_saved_for_their_tenant_only(
    issuer: Issuer, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    """Two submit_task calls at once, both answers lost after DashScope created the tasks: each could be either
    call's. They are the same tenant's same request, so each row adopts one (by time) and both are saved; alice's
    check_task gives each, bob's knows neither."""
    journal = (
        {"journal_url": cast(PostgresServer, request.getfixturevalue("postgres")).database()}
        if kind == "postgres"
        else {}
    )
    config = EmulatorConfig(api_keys=frozenset({KEY}), polls_to_finish=1)

    async def scenario(url: str, dashscope: RunningEmulator) -> None:
        dashscope.state.add_fault(Fault("drop", target="submit", after_processing=True, count=2))
        async with user(issuer, url, "alice") as alice:
            async with anyio.create_task_group() as group:
                for _ in range(2):
                    group.start_soon(alice.call_tool, "submit_task", {"prompt": "alice's lost fox", "size": "1K"})
            ids = list(dashscope.state.tasks)
            assert len(ids) == 2

            async def both_saved() -> bool:
                tasks = structured(await alice.call_tool("list_tasks", {}))["tasks"]
                return sorted(t.get("task_id") or "" for t in tasks if t["images"]) == sorted(ids)

            await until(both_saved, within=30)
            checked = [structured(await alice.call_tool("check_task", {"task_id": task_id})) for task_id in ids]
            assert [c["status"] for c in checked] == ["SUCCEEDED"] * 2 and all(c["images"] for c in checked)
        async with user(issuer, url, "bob") as bob:
            for task_id in ids:
                assert structured(await bob.call_tool("check_task", {"task_id": task_id}))["status"] == "UNKNOWN"

    quick = {"poll_interval": 0.05, "poll_interval_max": 0.1}
    with (
        RunningEmulator(config) as dashscope,
        served(
            issuer, tmp_path, api_key=SecretStr(KEY), base_url=dashscope.base_url, harvest=True, **quick, **journal
        ) as url,
    ):
        anyio.run(scenario, url, dashscope)


# --- the gallery: the operator's, every user's images unless --tenant names one -------------------------------


def saved_tasks(journal: Journal, folder: Path) -> None:
    for task_id, tenant in (("t-alice", ALICE), ("t-bob", BOB), ("t-none", None)):
        submit(journal, task_id, tenant)
        journal.observed(task_id, status=Status.SUCCEEDED)
        journal.saved(task_id, [{"path": str(folder / f"{task_id}.png"), "width": 1, "height": 1}])


def shown(page: Path) -> set[str]:
    return set(re.findall(r'data-task="([^"]+)"', page.read_text(encoding="utf-8")))


def test_the_gallery_shows_every_users_images_or_one_tenants(journal: Journal, tmp_path: Path) -> None:
    saved_tasks(journal, tmp_path)
    assert shown(write_gallery(journal, tmp_path / "all")) == {"t-alice", "t-bob", "t-none"}
    assert shown(write_gallery(journal, tmp_path / "alice", tenant=ALICE)) == {"t-alice"}


def test_gallery_tenant_is_a_subject_of_the_configured_issuer(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    saved_tasks(journal, tmp_path)
    journal.close()
    command = [sys.executable, "-m", "wan_image_mcp", "gallery", "--tenant", "bob"]
    refused = subprocess.run(command, env=server_env(None, None, tmp_path), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "WAN_MCP_AUTH_ISSUER" in refused.stderr
    oauth = {"WAN_MCP_AUTH_ISSUER": A + "/", "WAN_MCP_PUBLIC_URL": "https://mcp.example/mcp"}
    env = server_env(None, None, tmp_path, **oauth)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert shown(Path(done.stdout.strip())) == {"t-bob"}
    blank = subprocess.run([*command[:-1], " "], env=env, capture_output=True, text=True, timeout=60)
    assert (blank.returncode, blank.stderr.strip()) == (
        2,
        "wan-image-mcp: --tenant: not a usable tenant: the subject is blank (only spaces or invisible characters)",
    )


def test_a_token_whose_subject_names_no_tenant_is_refused_like_a_missing_one(
    issuer: Issuer, journal: Journal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A token the issuer signed whose ``sub`` is empty, blank, holds a control character, is too long or is not a
    string: 401 with the same challenge as no token, never a view of every tenant's tasks, never a traceback."""
    submit(journal, "t-alice", Tenant.of(issuer.url, "alice"))
    submit(journal, "t-bob", Tenant.of(issuer.url, "bob"))
    more = {"journal_url": journal.location} if isinstance(journal.location, str) else {}

    async def listed(url: str) -> set[str]:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {issuer.token('alice', url)}"}) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            tasks = structured(await client.call_tool("list_tasks", {}))["tasks"]
            return {task["task_id"] for task in tasks}

    with caplog.at_level(logging.INFO), served(issuer, tmp_path, **more) as url:
        missing = status(url, None)
        refused = {
            repr(sub)[:24]: status(url, f"Bearer {issuer.token(cast(str, sub), url)}") for sub, _ in ODD_SUBJECTS
        }
        assert anyio.run(listed, url) == {"t-alice"}  # the control: alice's token sees alice's task only
    assert missing.status_code == 401
    assert {sub: answer.status_code for sub, answer in refused.items()} == dict.fromkeys(refused, 401)
    assert {answer.headers["www-authenticate"] for answer in refused.values()} == {missing.headers["www-authenticate"]}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]  # no traceback anywhere
