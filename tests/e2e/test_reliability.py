"""The fault suite: the server driven through the emulator's fault injection, and nothing paid for is lost.

Each test names a fault and asserts what it leads to. The "Reliability" page (docs/reliability.md) is this file's
table. Faults also covered elsewhere: an expired result URL (test_tools), FAILED tasks and moderation
refusals (test_tools, test_e2e), an unwritable output folder (test_tools), a lost submit answer
(test_tools: UNCERTAIN; test_reconcile: its task found in the task list and saved, several candidates named and
none adopted, DashScope's time zone learned).

The tests that kill a server wait on the wall clock (``support.helpers.until``): what they wait for happens in a server
subprocess (its restart, its harvester), which no virtual clock of this process can move.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters

from tests.support.helpers import EMULATOR_KEY, server_env, until
from wan_image_mcp.core.results import local_folder as output_folder
from wan_image_mcp.core.results import store as results
from wan_image_mcp.emulator import EmulatorConfig, EmulatorState, Fault
from wan_image_mcp.emulator.serve import RunningEmulator
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

KEY = "sk-reliability"


def body(result: Any) -> dict[str, Any]:
    assert result.structured_content is not None, result.content
    return result.structured_content


# --- faults the server rides out -----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.usefixtures("no_retry_waits")
async def test_throttling_bursts_on_submit_and_polls_are_ridden_out(mcp: Client, emulator: EmulatorState) -> None:
    emulator.add_fault(Fault("throttle", target="submit", count=3, retry_after=0))
    emulator.add_fault(Fault("throttle", target="poll", count=3))
    result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert not result.is_error, result.content
    assert body(result)["status"] == "SUCCEEDED"
    assert len(emulator.tasks) == 1  # retried submissions that were refused created no extra task


@pytest.mark.anyio
@pytest.mark.usefixtures("no_retry_waits")
async def test_5xx_on_polls_is_retried(mcp: Client, emulator: EmulatorState) -> None:
    emulator.add_fault(Fault("error", target="poll", status=503, code="ServiceUnavailable", count=3))
    result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert body(result)["status"] == "SUCCEEDED"


@pytest.mark.anyio
@pytest.mark.usefixtures("no_retry_waits")
async def test_a_connection_dropped_mid_download_is_retried(mcp: Client, emulator: EmulatorState) -> None:
    emulator.add_fault(Fault("drop", target="download", count=2))
    result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    (image,) = body(result)["images"]
    data = Path(image["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == image["sha256"]
    assert not list(Path(image["path"]).parent.glob(".*.part"))


@pytest.mark.anyio
@pytest.mark.usefixtures("no_retry_waits")
async def test_a_download_cut_mid_body_over_http_is_retried_and_leaves_no_partial_file(
    server_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results, "WRITE_CHUNK", 4096)  # a 1K result is then written out in many pieces
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({EMULATOR_KEY}), polls_to_finish=1)) as emulator:
        emulator.state.add_fault(Fault("drop", target="download", count=2))  # headers and a few bytes, then cut
        settings = server_settings.model_copy(update={"base_url": emulator.base_url, "harvest": False})
        async with httpx2.AsyncClient() as http, Client(build_app(settings, http)) as mcp:
            result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K", "n": 2})
        downloads = [r for r in emulator.state.requests if r.path.startswith("/results/")]
    images = body(result)["images"]
    assert len(images) == 2 and len(downloads) == 4
    for image in images:
        data = Path(image["path"]).read_bytes()
        assert len(data) == image["bytes"] > 4 * 4096
        assert hashlib.sha256(data).hexdigest() == image["sha256"]
    assert not list(settings.output_dir.glob(".*.part"))


@pytest.mark.anyio
async def test_a_full_disk_is_reported_and_the_task_recovered_after(
    mcp: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    mkstemp = tempfile.mkstemp

    def no_space_for_images(*args: Any, prefix: str = "", **kwargs: Any) -> Any:
        if prefix.startswith(".write-probe."):  # the disk fills after the output's check before the submission
            return mkstemp(*args, prefix=prefix, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", no_space_for_images)
    first = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert not first.is_error  # it succeeded and is paid: an error would be submitted again, and paid twice
    assert body(first)["status"] == "SUCCEEDED" and body(first)["images"] == []
    ((missing),) = body(first)["missing_images"]
    assert missing["index"] == 1 and "No space left on device" in missing["reason"]
    assert "call check_task" in body(first)["next_step"] and "Do not submit it again" in body(first)["next_step"]
    monkeypatch.undo()  # space again
    again = await mcp.call_tool("check_task", {"task_id": body(first)["task_id"]})
    assert not again.is_error and len(body(again)["images"]) == 1


@pytest.mark.anyio
async def test_a_full_disk_during_a_sidecar_write_does_not_download_the_image_again(
    mcp: Client, emulator: EmulatorState, server_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = results.atomic_write

    def no_space_for_sidecars(path: Path, data: bytes) -> None:
        if path.suffix == ".json":
            raise OSError(errno.ENOSPC, "No space left on device")
        write(path, data)

    monkeypatch.setattr(results, "atomic_write", no_space_for_sidecars)
    first = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K", "n": 2})
    assert not first.is_error and "No space left on device" in body(first)["error"]["message"]
    assert [image["index"] for image in body(first)["missing_images"]] == [1, 2]
    out = server_settings.output_dir
    saved = sorted(out.glob("*.png"))
    assert len(saved) == 2 and not list(out.glob("*.json"))  # renamed into place, their sidecars not written
    monkeypatch.undo()  # space again
    again = await mcp.call_tool("check_task", {"task_id": body(first)["task_id"]})
    assert not again.is_error, again.content
    images = body(again)["images"]
    assert sorted(Path(image["path"]) for image in images) == saved  # the same files, under the same names
    assert sorted(out.glob("*.png")) == saved and len(list(out.glob("*.json"))) == 2
    for image in images:
        assert hashlib.sha256(Path(image["path"]).read_bytes()).hexdigest() == image["sha256"]
        assert image["url"].startswith("http")
    assert sum(r.path.startswith("/results/") for r in emulator.requests) == 2  # each downloaded once


# --- a server killed between submit and completion ------------------------------------------------------


class RawServer:
    """The server as a subprocess spoken to in raw JSON-RPC, so the test owns the process and can kill it."""

    def __init__(self, env: dict[str, str], cwd: Path, command: list[str] | None = None) -> None:
        self.process = subprocess.Popen(
            command or [sys.executable, "-m", "wan_image_mcp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        self._selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        self._next_id = 0

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        self._send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        while True:
            if not self._selector.select(timeout=30):
                raise TimeoutError(f"no answer to {method} within 30 s")
            assert self.process.stdout is not None
            message = json.loads(self.process.stdout.readline())
            if message.get("id") == self._next_id:
                return message

    def initialize(self) -> None:
        self.request(
            "initialize",
            {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
        )
        self.notify("notifications/initialized")

    def notify_call(self, tool: str, arguments: dict[str, Any]) -> None:
        """Call a tool without waiting for its answer."""
        self._next_id += 1
        self._send(
            {
                "jsonrpc": "2.0",
                "id": self._next_id,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }
        )

    def notify(self, method: str) -> None:
        self._send({"jsonrpc": "2.0", "method": method})

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no cleanup, no goodbye
        self.process.wait(timeout=10)
        self._selector.close()
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                stream.close()


@pytest.mark.slow
def test_a_server_killed_after_submit_leaves_nothing_behind(tmp_path: Path) -> None:
    config = EmulatorConfig(api_keys=frozenset({KEY}), polls_to_finish=1_000_000)  # nothing finishes yet
    with RunningEmulator(config) as emulator:
        env = server_env(emulator.base_url, KEY, tmp_path)
        first = RawServer(env, tmp_path)
        try:
            first.initialize()
            answer = first.request("tools/call", {"name": "submit_task", "arguments": {"prompt": "paid for", "n": 2}})
            task_id = answer["result"]["structuredContent"]["task_id"]
        finally:
            first.kill()
        assert first.process.returncode == -9
        emulator.state.config.polls_to_finish = 1  # the task may now finish

        async def restart() -> list[dict[str, Any]]:
            params = StdioServerParameters(command=sys.executable, args=["-m", "wan_image_mcp"], env=env, cwd=tmp_path)
            async with Client(params) as second:

                async def harvested() -> bool:
                    listed = body(await second.call_tool("list_tasks", {}))
                    row = next(t for t in listed["tasks"] if t["task_id"] == task_id)
                    return len(row["images"]) == 2

                await until(harvested, within=30)  # the subprocess's harvester, on the wall clock
                return body(await second.call_tool("check_task", {"task_id": task_id}))["images"]

        images = anyio.run(restart)
    assert len(images) == 2
    for image in images:  # on disk, whole, matching what was recorded
        assert hashlib.sha256(Path(image["path"]).read_bytes()).hexdigest() == image["sha256"]
    assert not list((tmp_path / "out").glob(".*.part"))


# --- poll faults after a successful submit ---------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.usefixtures("no_retry_waits")
@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (Fault("throttle", target="poll", count=5), "HTTP 429"),
        (Fault("error", target="poll", status=503, code="ServiceUnavailable", count=6), "HTTP 503"),
    ],
    ids=["5x429", "6x503"],
)
async def test_poll_faults_after_a_submit_keep_the_task_id_and_say_call_check_task(
    mcp: Client, emulator: EmulatorState, fault: Fault, said: str
) -> None:
    emulator.add_fault(fault)
    with anyio.fail_after(10):
        result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K", "wait_seconds": 5})
    answer = body(result)
    assert not result.is_error, result.content  # the task exists: nothing to fix, nothing to resubmit
    (task_id,) = emulator.tasks
    assert answer["task_id"] == task_id and answer["status"] == "PENDING"
    assert f"call check_task with task_id={task_id!r}" in answer["next_step"]
    assert "Do not resubmit" in answer["next_step"] and said in answer["next_step"]
    said_before = ("wait a while and try again", "if this was a submission")  # the generic hints, without the id
    assert not any(hint in str(result.content) for hint in said_before)
    emulator.faults.clear()
    with anyio.fail_after(10):
        done = body(await mcp.call_tool("check_task", {"task_id": task_id, "wait_seconds": 5}))
    assert done["status"] == "SUCCEEDED" and len(done["images"]) == 1
    assert len(emulator.tasks) == 1


@pytest.mark.anyio
@pytest.mark.usefixtures("no_retry_waits")
async def test_check_task_with_failing_polls_answers_its_last_known_status(
    mcp: Client, emulator: EmulatorState
) -> None:
    submitted = body(await mcp.call_tool("submit_task", {"prompt": "x", "size": "1K"}))
    emulator.add_fault(Fault("throttle", target="poll", count=4))
    with anyio.fail_after(10):
        result = await mcp.call_tool("check_task", {"task_id": submitted["task_id"]})
    assert not result.is_error, result.content
    assert body(result)["status"] == "PENDING" and body(result)["task_id"] == submitted["task_id"]
    assert "call check_task" in body(result)["next_step"]


@pytest.mark.slow
def test_a_server_killed_while_its_create_answer_is_in_flight_finds_the_task_on_restart(tmp_path: Path) -> None:
    """Issue 14: a SIGKILL after DashScope created the task but before its answer arrived left the row SUBMITTING
    with no task id, and the task was lost. The restarted server finds it in the task list and saves its images."""
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}))) as emulator:
        emulator.state.add_fault(Fault("hold", target="submit"))
        env = server_env(emulator.base_url, KEY, tmp_path)
        first = RawServer(env, tmp_path)
        try:
            first.initialize()
            first.notify_call("submit_task", {"prompt": "paid for", "n": 2})

            async def held() -> bool:
                return emulator.state.holding == 1

            anyio.run(until, held)  # the subprocess's request reaching the emulator: wall-clock time
        finally:
            first.kill()
        emulator.state.release()  # to a closed connection
        ((task_id, _),) = emulator.state.tasks.items()

        async def restart() -> dict[str, Any]:
            params = StdioServerParameters(command=sys.executable, args=["-m", "wan_image_mcp"], env=env, cwd=tmp_path)
            async with Client(params) as second:

                async def harvested() -> bool:
                    (row,) = body(await second.call_tool("list_tasks", {}))["tasks"]
                    return len(row["images"]) == 2

                await until(harvested, within=30)  # the subprocess's harvester, on the wall clock
                return body(await second.call_tool("list_tasks", {}))["tasks"][0]

        row = anyio.run(restart)
    assert (row["task_id"], row["status"], row["prompt"]) == (task_id, "SUCCEEDED", "paid for")
    assert len(emulator.state.tasks) == 1


KILLED_BEFORE_THE_SIDECAR = """
import os, signal, sys
from wan_image_mcp.core.results import store as results
from wan_image_mcp.cli import main

write = results.atomic_write

def killed(path, data):
    if path.suffix == ".json":  # an image has just been renamed into place; its sidecar comes next
        os.kill(os.getpid(), signal.SIGKILL)
    write(path, data)

results.atomic_write = killed
sys.exit(main(["serve"]))
"""


@pytest.mark.slow
def test_a_server_killed_between_an_images_rename_and_its_sidecar_does_not_download_it_again(tmp_path: Path) -> None:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}))) as emulator:
        env = server_env(emulator.base_url, KEY, tmp_path)
        first = RawServer(env, tmp_path, [sys.executable, "-c", KILLED_BEFORE_THE_SIDECAR])
        try:
            first.initialize()
            answer = first.request("tools/call", {"name": "submit_task", "arguments": {"prompt": "paid for"}})
            task_id = answer["result"]["structuredContent"]["task_id"]
            first.process.wait(timeout=30)  # the harvester downloads the image, renames it, and is killed
        finally:
            first.kill()
        assert first.process.returncode == -9
        out = tmp_path / "out"
        (kept,) = out.glob(f"*_{task_id}_1.png")
        assert not list(out.glob("*.json"))
        downloads = sum(r.path.startswith("/results/") for r in emulator.state.requests)
        assert downloads == 1

        async def restart() -> list[dict[str, Any]]:
            params = StdioServerParameters(command=sys.executable, args=["-m", "wan_image_mcp"], env=env, cwd=tmp_path)
            async with Client(params) as second:

                async def harvested() -> bool:
                    listed = body(await second.call_tool("list_tasks", {}))
                    return any(t["task_id"] == task_id and t["images"] for t in listed["tasks"])

                await until(harvested, within=30)  # the subprocess's harvester, on the wall clock
                return body(await second.call_tool("check_task", {"task_id": task_id}))["images"]

        (image,) = anyio.run(restart)
        assert sum(r.path.startswith("/results/") for r in emulator.state.requests) == downloads  # not again
    assert Path(image["path"]) == kept and sorted(out.glob("*.png")) == [kept]
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == image["sha256"]
    sidecar = json.loads(kept.with_suffix(".json").read_text())
    assert (sidecar["task_id"], sidecar["index"], sidecar["prompt"]) == (task_id, 1, "paid for")


def test_temp_files_left_by_a_killed_server_are_removed_at_start(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = output_folder.temp_owner().split("@", 1)[1]
    dead, alive = f"{gone.stdout.strip()}@{host}", output_folder.temp_owner()  # this test's own process is alive
    leftovers = [
        out / f".20261201-101010_wan2.7-image_t1_1.{dead}.k2j3h4l5.part",  # a download cut by a kill
        out / f".20261201-101010_wan2.7-image_t1_1.json.{dead}.a1b2c3d4.part",  # a sidecar write cut by a kill
        out / ".20261201-101010_wan2.7-image_t0_1.q9w8e7r6.part",  # from an older server, hours ago
    ]
    in_use = [
        out / f".20261201-101010_wan2.7-image_t2_1.{alive}.z9y8x7w6.part",  # a live server's download
        out / ".20261201-101010_wan2.7-image_t3_1.m1n2b3v4.part",  # unowned, but written a moment ago
    ]
    for path in leftovers + in_use:
        path.write_bytes(b"\x89PNG" + bytes(300_000))
    hours_ago = time.time() - 3 * 3600
    os.utime(leftovers[2], (hours_ago, hours_ago))
    env = server_env(None, KEY, tmp_path, WAN_MCP_HARVEST="0", WAN_MCP_LOG_LEVEL="INFO")
    done = subprocess.run(
        [sys.executable, "-m", "wan_image_mcp"], env=env, capture_output=True, text=True, timeout=30, input=""
    )
    assert done.returncode == 0, done.stderr
    assert sorted(out.glob(".*.part")) == sorted(in_use)
    assert f"removed 3 leftover temp file(s) (0.9 MB) from {out}" in done.stderr


def test_only_the_servers_own_temp_files_are_ever_removed_at_start(tmp_path: Path) -> None:
    hours_ago = time.time() - 3 * 3600
    theirs = [
        ".thesis-draft.docx.part",
        ".vacation.jpg.part",
        "..part",
        ".x.part",
        ".20261201-101010_a_b_1.notrand.part",
    ]
    ours = [
        ".20261201-101010_wan2.7-image_t0_1.q9w8e7r6.part",  # an image, unowned (older servers)
        ".20261201-101010_wan2.7-image_t0_1.png.q9w8e7r6.part",  # an image written whole (the first servers)
        ".20261201-101010_wan2.7-image_t0_1.json.a1b2c3d4.part",  # a sidecar, unowned
        ".gallery.z_9y8x7w.part",  # the gallery page
        ".20261201-101010_wan2.7-image_t0_1.1@elsewhere.m1n2b3v4.part",  # another host's
    ]
    for name in theirs + ours:
        (tmp_path / name).write_bytes(b"x" * 10)
        os.utime(tmp_path / name, (hours_ago, hours_ago))
    (tmp_path / ".20261201-101010_wan2.7-image_t9_1.j7h6g5f4.part").mkdir()  # not a regular file: kept too
    os.utime(tmp_path / ".20261201-101010_wan2.7-image_t9_1.j7h6g5f4.part", (hours_ago, hours_ago))
    assert output_folder.remove_leftover_parts(tmp_path) == (len(ours), 10 * len(ours))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*theirs, ".20261201-101010_wan2.7-image_t9_1.j7h6g5f4.part"]
    )


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/stat").is_file(), reason="process start times are read from /proc")
def test_a_temp_file_of_an_earlier_process_with_a_live_pid_is_removed_at_start(tmp_path: Path) -> None:
    # In a container the server is PID 1 after every restart: the pid alone would make its old files look alive.
    me, host = os.getpid(), output_folder.temp_owner().split("@", 1)[1]
    parent = os.getppid()
    parent_start = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[19]
    gone = [
        f".20261201-101010_wan2.7-image_t1_1.{me}-1@{host}.k2j3h4l5.part",  # this pid, an earlier start
        f".20261201-101010_wan2.7-image_t1_1.json.{me}@{host}.a1b2c3d4.part",  # this pid, before starts were named
        f".20261201-101010_wan2.7-image_t2_1.{parent}-{int(parent_start) + 1}@{host}.z9y8x7w6.part",  # pid reused
    ]
    kept = [
        f".20261201-101010_wan2.7-image_t3_1.{output_folder.temp_owner()}.q9w8e7r6.part",  # this very process
        f".20261201-101010_wan2.7-image_t4_1.{parent}-{parent_start}@{host}.m1n2b3v4.part",  # a live process
        f".20261201-101010_wan2.7-image_t5_1.{parent}@{host}.m1n2b3v4.part",  # alive, its start not named
    ]
    for name in gone + kept:
        (tmp_path / name).write_bytes(b"x")
    assert output_folder.remove_leftover_parts(tmp_path) == (3, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


# --- text from the API that no journal could store ------------------------------------------------------

HALF_AN_EMOJI = "near \ud83d"
"""What DashScope may write as ``"near \\ud83d"``: valid JSON, a message cut inside an emoji (a lone surrogate)."""
REQUEST_ID = re.compile(r"request_id ([0-9a-f-]{36})\)")


async def journal_row(mcp: Client) -> dict[str, Any]:
    (row,) = body(await mcp.call_tool("list_tasks", {}))["tasks"]
    return row


def texts(result: Any) -> list[str]:
    return [block.text for block in result.content if block.type == "text"]


@pytest.mark.anyio
@pytest.mark.both_journals
async def test_a_refusal_whose_message_holds_half_an_emoji_is_rejected_in_the_journal_and_said_in_full(
    mcp: Client, emulator: EmulatorState
) -> None:
    emulator.add_fault(Fault("error", target="submit", status=400, code="InvalidParameter", message=HALF_AN_EMOJI))
    result = await mcp.call_tool("submit_task", {"prompt": "a fox", "size": "1K"})
    assert result.is_error
    (said,) = texts(result)
    assert said.startswith("DashScope error InvalidParameter: near \ufffd (HTTP 400, request_id ")
    assert REQUEST_ID.search(said)
    row = await journal_row(mcp)
    assert row["status"] == "REJECTED"  # not SUBMITTING: it no longer counts against the daily budget
    assert row["error"] == {"code": "InvalidParameter", "message": "near \ufffd"}


@pytest.mark.anyio
@pytest.mark.both_journals
async def test_a_task_failed_with_half_an_emoji_in_its_message_is_failed_in_the_journal_and_said_in_full(
    mcp: Client, emulator: EmulatorState
) -> None:
    emulator.add_fault(Fault("fail_task", code="InternalError.Algo", message=HALF_AN_EMOJI))
    result = await mcp.call_tool("edit_image", {"prompt": "a fox", "size": "1K", "wait_seconds": 10})
    assert result.is_error
    error = body(result)["error"]
    assert (body(result)["status"], error["code"], error["message"]) == ("FAILED", "InternalError.Algo", "near \ufffd")
    assert f"Error InternalError.Algo: near \ufffd (request_id {error['request_id']})" in texts(result)[0]
    row = await journal_row(mcp)
    assert (row["status"], row["error"]["message"]) == ("FAILED", "near \ufffd")
