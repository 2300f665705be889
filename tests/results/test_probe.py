"""Nothing is paid that cannot be saved: the output folder is proved writable before a paid call, a success
trusted for a few seconds and a failure never."""

from __future__ import annotations

import os
from pathlib import Path

import httpx2
import pytest
from mcp import Client

from tests.support.helpers import text
from tests.support.virtual_clock import VirtualClock
from wan_image_mcp.core.errors import OutputNotWritable
from wan_image_mcp.core.results.local_folder import remove_leftover_parts
from wan_image_mcp.core.results.probe import FRESH, OutputProbe, probe_output
from wan_image_mcp.emulator import EmulatorState
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

pytestmark = pytest.mark.anyio


def test_the_probe_creates_the_folder_and_leaves_nothing_in_it(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    probe_output(folder)
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_a_folder_under_a_regular_file_is_refused_naming_it_and_the_setting(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OutputNotWritable) as refused:
        probe_output(tmp_path / "file" / "out")
    said = str(refused.value)
    assert f"The output folder {tmp_path / 'file' / 'out'} cannot be written (Not a directory" in said
    assert "WAN_MCP_OUTPUT_DIR" in said and "nothing is billed" in said


def test_a_probe_file_a_killed_server_left_is_removed_at_start(tmp_path: Path) -> None:
    left = tmp_path / ".write-probe.999999-1@elsewhere.abcd1234.part"
    left.write_bytes(b"ok")
    os.utime(left, (1, 1))  # old, of a host that cannot be asked: removed
    assert remove_leftover_parts(tmp_path) == (1, 2)


async def test_a_success_is_trusted_for_a_few_seconds_and_a_failure_never(clock: VirtualClock) -> None:
    outcomes: list[Exception | None] = [None, OutputNotWritable("full"), None]
    probes: list[float] = []

    def probe() -> None:
        probes.append(clock.monotonic())
        if (outcome := outcomes.pop(0)) is not None:
            raise outcome

    output = OutputProbe(probe, clock)
    await output.ensure()
    await output.ensure()  # trusted: no second probe
    assert len(probes) == 1
    await clock.sleep(FRESH)
    with pytest.raises(OutputNotWritable):
        await output.ensure()
    await output.ensure()  # the failure was not kept: probed again, and fixed
    assert len(probes) == 3


async def test_a_folder_that_went_away_after_start_is_refused_at_the_next_paid_call_and_taken_once_fixed(
    clock: VirtualClock, http: httpx2.AsyncClient, emulator: EmulatorState, server_settings: Settings
) -> None:
    folder = server_settings.output_dir
    async with Client(build_app(server_settings, http, clock=clock)) as client:
        assert not (await client.call_tool("submit_task", {"prompt": "x", "size": "1K"})).is_error
        folder.rmdir()
        folder.write_text("a file where the folder was")
        await clock.sleep(FRESH)  # the last success is no longer trusted
        emulator.requests.clear()
        refused = await client.call_tool("submit_task", {"prompt": "x", "size": "1K"})
        assert refused.is_error
        assert f"The output folder {folder} cannot be written (File exists" in text(refused)
        assert emulator.requests == []  # refused before any request
        folder.unlink()  # fixed: taken at the next call, no restart
        assert not (await client.call_tool("submit_task", {"prompt": "x", "size": "1K"})).is_error
