"""Servers sharing one PostgreSQL journal (a team's replicas): each task is harvested and each image saved once,
an upload made by one is reused by the other, and a replica that dies leaves its tasks to the others.

The servers run in-process on one virtual clock (``tests/support/virtual_clock.py``) with the emulator, as in
``test_harvest.py``; the journal is a real PostgreSQL database."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Generator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import cast

import anyio
import httpx2
import psycopg
import pytest
from mcp import Client
from mcp.types import CallToolResult
from PIL import Image

from tests.support.helpers import http_serving, server_env, text, until
from tests.support.postgres_server import PostgresServer
from tests.support.s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from tests.support.s3_server import REGION as S3_REGION
from tests.support.virtual_clock import VirtualClock
from wan_image_mcp.core.journal import Journal
from wan_image_mcp.core.journal.query_places import PostgresPlaces
from wan_image_mcp.core.results import local_folder as output_folder
from wan_image_mcp.core.results.object_sink import ObjectSink
from wan_image_mcp.dashscope import QueryRate
from wan_image_mcp.emulator import EmulatorConfig, EmulatorState, Fault
from wan_image_mcp.emulator.serve import RunningEmulator
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def emulator(emulator: EmulatorState, clock: VirtualClock) -> EmulatorState:
    """The emulator on the test's clock (as in test_harvest.py)."""
    emulator.clock = clock.time
    return emulator


@pytest.fixture
def team(server_settings: Settings, postgres: PostgresServer) -> Settings:
    """Settings every replica shares: one PostgreSQL journal, one output folder, the harvester on."""
    return server_settings.model_copy(update={"journal_url": postgres.database(), "harvest": True})


async def saved_tasks(journal_url: str) -> set[str]:
    def read() -> set[str]:
        journal = Journal(journal_url)
        try:
            rows, _ = journal.recent(limit=100)
            return {row.task_id for row in rows if row.task_id and row.saved_at is not None}
        finally:
            journal.close()

    return await anyio.to_thread.run_sync(read)


@pytest.mark.slow
async def test_two_replicas_save_each_image_once(
    http: httpx2.AsyncClient, team: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    assert team.journal_url is not None
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(Client(build_app(team, http, clock=clock)))
        await stack.enter_async_context(Client(build_app(team, http, clock=clock)))  # a second harvester
        emulator.faults.append(Fault("slow", "download", count=16, delay=0.3))  # both see them due while one saves
        ids: list[str] = []
        for i in range(8):
            started = await first.call_tool("submit_task", {"prompt": f"poster {i}", "n": 2, "size": "1K"})
            assert started.structured_content is not None, text(started)
            ids.append(started.structured_content["task_id"])

        async def all_saved() -> bool:
            return set(ids) <= await saved_tasks(team.journal_url or "")

        await clock.until(all_saved)
    fetched = Counter(r.path for r in emulator.requests if r.path.startswith("/results/"))
    assert len(fetched) == 16 and set(fetched.values()) == {1}  # every image downloaded once, by one replica
    saved = sorted(p.name for p in (team.output_dir).rglob("*.png"))
    assert len(saved) == 16


async def test_an_upload_made_through_one_replica_is_reused_by_another(
    http: httpx2.AsyncClient, team: Settings, emulator: EmulatorState, tmp_path: Path
) -> None:
    photo = tmp_path / "big.png"
    Image.frombytes("RGB", (700, 700), random.Random(1).randbytes(700 * 700 * 3)).save(photo, compress_level=1)
    quiet = team.model_copy(update={"harvest": False})
    for _ in range(2):
        async with Client(build_app(quiet, http)) as replica:
            result = await replica.call_tool("edit_image", {"prompt": "x", "images": [str(photo)], "size": "1K"})
            assert not result.is_error, text(result)
    assert sum(1 for r in emulator.requests if r.path == "/oss") == 1


async def claimed_task(http: httpx2.AsyncClient, team: Settings, clock: VirtualClock, owner: str) -> str:
    """A task submitted through one replica and claimed by ``owner``, which then died before saving anything."""
    assert team.journal_url is not None
    async with Client(build_app(team.model_copy(update={"harvest": False}), http, clock=clock)) as submitter:
        started = await submitter.call_tool("submit_task", {"prompt": "left behind", "size": "1K"})
    assert started.structured_content is not None
    task_id: str = started.structured_content["task_id"]
    journal = Journal(team.journal_url)
    try:
        assert journal.claim(task_id, owner, now=clock.time(), until=clock.time() + 600)
    finally:
        journal.close()
    return task_id


async def harvested_by_a_new_replica(
    http: httpx2.AsyncClient, team: Settings, clock: VirtualClock, task_id: str
) -> None:
    async with Client(build_app(team, http, clock=clock)):

        async def saved() -> bool:
            return task_id in await saved_tasks(team.journal_url or "")

        await clock.until(saved, within=3600, step=5)


async def test_a_task_claimed_by_a_replica_that_died_is_harvested_by_another_once_its_claim_runs_out(
    http: httpx2.AsyncClient, team: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    task_id = await claimed_task(http, team, clock, "dead-replica")  # on another host: only time tells
    await harvested_by_a_new_replica(http, team, clock, task_id)
    assert clock.time() >= emulator.tasks[task_id].created + 600  # not before the dead replica's claim ran out


async def test_a_claim_left_by_a_killed_server_on_this_host_is_taken_over_at_once(
    http: httpx2.AsyncClient, team: Settings, emulator: EmulatorState, clock: VirtualClock
) -> None:
    gone = await anyio.run_process([sys.executable, "-c", "import os; print(os.getpid())"])
    killed = f"{gone.stdout.decode().strip()}@{output_folder.temp_owner().split('@', 1)[1]}#a1b2c3d4"  # ended, here
    task_id = await claimed_task(http, team, clock, killed)
    await harvested_by_a_new_replica(http, team, clock, task_id)
    assert clock.time() < emulator.tasks[task_id].created + 60  # at once, not after the claim's 10 minutes


async def test_replicas_on_one_journal_share_the_accounts_query_budget(
    postgres: PostgresServer, clock: VirtualClock
) -> None:
    """DashScope allows 20 task queries a second per account: two replicas of 19 each would send 38."""
    url = postgres.database()
    places = [PostgresPlaces(url), PostgresPlaces(url)]
    rates = [QueryRate(clock=clock, shared=shared) for shared in places]
    arrived: list[float] = []

    async def query(rate: QueryRate) -> None:
        async with rate.query():
            arrived.append(clock.time())  # as the service counts it
            await clock.sleep(0.05)  # the round trip

    try:
        async with anyio.create_task_group() as group:
            for i in range(40):
                group.start_soon(query, rates[i % 2])
    finally:
        for shared in places:
            shared.close()
    assert len(arrived) == 40
    busiest = max(sum(1 for at in arrived if start <= at < start + 1.0) for start in arrived)
    assert busiest <= 19


@contextmanager
def replica(
    emulator: RunningEmulator, folder: Path, journal_url: str, **settings: str
) -> Generator[tuple[str, subprocess.Popen[str]]]:
    """``serve --transport http`` on a free loopback port, on the shared PostgreSQL journal and output folder (and
    ``settings``); yields its /mcp URL and its process."""
    env = server_env(
        emulator.base_url, REPLICA_KEY, folder, WAN_MCP_DB=journal_url, WAN_MCP_POLL_INTERVAL="0.2", **settings
    )
    with http_serving(env) as served:
        yield served


REPLICA_KEY = "sk-replicas"


@pytest.mark.slow
def test_a_replica_killed_mid_task_loses_nothing_another_finishes_it(postgres: PostgresServer, tmp_path: Path) -> None:
    journal_url = postgres.database()
    config = EmulatorConfig(api_keys=frozenset({REPLICA_KEY}), latency=2.0)  # the task runs 2 s
    with RunningEmulator(config) as emulator, replica(emulator, tmp_path, journal_url) as (first, killed):

        async def submit() -> str:
            async with Client(first) as client:
                started = await client.call_tool("submit_task", {"prompt": "through the first replica", "size": "1K"})
                assert started.structured_content is not None, text(started)
                return str(started.structured_content["task_id"])

        task_id = anyio.run(submit)
        killed.send_signal(signal.SIGKILL)  # while the task runs, and the first replica's harvester holds it
        killed.wait(timeout=10)
        with replica(emulator, tmp_path, journal_url) as (second, _):

            async def finished() -> list[dict[str, object]]:
                async with Client(second) as client:

                    async def saved() -> bool:
                        found = (await client.call_tool("check_task", {"task_id": task_id})).structured_content
                        return bool(found and found.get("images"))

                    await until(saved, within=30, step=0.2)
                    listed = (await client.call_tool("list_tasks", {})).structured_content
                    assert listed is not None
                    return [t for t in listed["tasks"] if t["task_id"] == task_id]

            (row,) = anyio.run(finished)
    assert row["status"] == "SUCCEEDED"
    assert len(list((tmp_path / "out").glob(f"*_{task_id}_1.png"))) == 1
    assert sum(1 for r in emulator.state.requests if r.path.startswith("/results/")) == 1


@pytest.mark.slow
def test_replicas_on_one_bucket_a_killed_one_loses_nothing_and_the_image_is_stored_once(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    with S3Server() as s3:
        bucket = s3.bucket()
        store = {
            "WAN_MCP_OUTPUT_URL": f"s3://{bucket}/team",
            "AWS_ENDPOINT_URL": s3.endpoint,
            "AWS_REGION": S3_REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        journal_url = postgres.database()
        config = EmulatorConfig(api_keys=frozenset({REPLICA_KEY}), latency=2.0)
        with RunningEmulator(config) as emulator:
            with replica(emulator, tmp_path / "a", journal_url, **store) as (first, killed):

                async def submit() -> str:
                    async with Client(first) as client:
                        started = await client.call_tool("submit_task", {"prompt": "to the bucket", "size": "1K"})
                        assert started.structured_content is not None, text(started)
                        return str(started.structured_content["task_id"])

                task_id = anyio.run(submit)
                killed.send_signal(signal.SIGKILL)
                killed.wait(timeout=10)
            with replica(emulator, tmp_path / "b", journal_url, **store) as (second, _):  # its own disk

                async def saved() -> dict[str, object]:
                    async with Client(second) as client:
                        found: dict[str, object] = {}

                        async def done() -> bool:
                            answer = (await client.call_tool("check_task", {"task_id": task_id})).structured_content
                            found.update(answer or {})
                            return bool(answer and answer.get("images"))

                        await until(done, within=30, step=0.2)
                        return found

                answer = anyio.run(saved)
        (image,) = cast("list[dict[str, str]]", answer["images"])
        stored = sorted(key for key in list_keys(s3, bucket) if task_id in key)
        assert [key.rsplit(".", 1)[1] for key in stored] == ["json", "png"]  # the image and its sidecar, once each
        fetched = httpx2.get(image["download_url"], timeout=10)
        assert fetched.status_code == 200 and hashlib.sha256(fetched.content).hexdigest() == image["sha256"]


def list_keys(s3: S3Server, bucket: str) -> list[str]:
    sink = ObjectSink(f"s3://{bucket}", options=dict(s3.options()))
    listing = sink.store.list(return_arrow=False)  # pyright: ignore[reportUnknownMemberType]
    return [str(meta["path"]) for batch in listing for meta in batch]


@pytest.mark.slow
def test_concurrent_calls_through_two_replicas_never_pass_the_daily_limit(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """Sixteen submit_task calls at once, half through each of two real replicas on one journal, under a budget of
    three paid images a day: three tasks are created, the emulator's and the journal's count agree, the rest are
    refused with the limit named. Each new row takes 0.3 s to insert (a trigger), so that calls arriving together
    overlap between their budget check and their row whatever the machine's speed."""
    journal_url = postgres.database()
    slow_inserts(journal_url)
    capped = {"WAN_MCP_MAX_IMAGES_PER_DAY": "3"}
    config = EmulatorConfig(api_keys=frozenset({REPLICA_KEY}))
    with (
        RunningEmulator(config) as emulator,
        replica(emulator, tmp_path, journal_url, **capped) as (first, _),
        replica(emulator, tmp_path, journal_url, **capped) as (second, _),
    ):

        async def race() -> list[CallToolResult]:
            results: list[CallToolResult] = []
            async with Client(first) as one, Client(second) as other:

                async def submit(i: int) -> None:
                    replica = (one, other)[i % 2]
                    results.append(await replica.call_tool("submit_task", {"prompt": f"fox {i}", "size": "1K"}))

                with anyio.fail_after(30):
                    async with anyio.create_task_group() as group:
                        for i in range(16):
                            group.start_soon(submit, i)
            return results

        results = anyio.run(race)
        created = len(emulator.state.tasks)
    refused = [text(result) for result in results if result.is_error]
    assert (created, len(refused)) == (3, 13)
    assert all("WAN_MCP_MAX_IMAGES_PER_DAY is 3. Nothing was sent" in said for said in refused)
    journal = Journal(journal_url)
    try:
        assert journal.requested_since(0) == 3 and journal.recent()[1] == 3
    finally:
        journal.close()


def slow_inserts(journal_url: str) -> None:
    """Migrate the journal at ``journal_url`` and make each INSERT into its tasks table take 0.3 s longer."""
    Journal(journal_url).open().close()
    with psycopg.connect(journal_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$"
        )
        conn.execute("CREATE TRIGGER slow_insert BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION slow_insert()")
