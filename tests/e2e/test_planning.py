"""What an agent can know before it pays, over stdio as a host runs the server: the output's shape (the last input's,
unless size says otherwise) stated in every result, and a free dry run that sends nothing and writes nothing."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.context import ClientRequestContext
from mcp.client.session import ElicitationFnT
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult
from PIL import Image

from tests.support.helpers import ImageFactory, server_env, text
from wan_image_mcp.emulator import EmulatorConfig
from wan_image_mcp.emulator.serve import RunningEmulator

pytestmark = pytest.mark.anyio
KEY = "sk-planning"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}), polls_to_finish=1)) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(emulator: RunningEmulator) -> None:
    emulator.state.requests.clear()
    emulator.state.faults.clear()


@asynccontextmanager
async def stdio_server(
    emulator: RunningEmulator,
    folder: Path,
    settings: Mapping[str, str] = MappingProxyType({}),
    user: ElicitationFnT | None = None,
) -> AsyncGenerator[Client]:
    """The server over stdio on the emulator, reading images from ``folder``, without the harvester, with these
    ``settings``; a client that can put questions to ``user`` when given."""
    env = server_env(emulator.base_url, KEY, folder, WAN_MCP_HARVEST="0", WAN_MCP_ALLOWED_DIRS=str(folder), **settings)
    params = StdioServerParameters(command=sys.executable, args=["-m", "wan_image_mcp"], env=env, cwd=folder)
    async with Client(params, elicitation_callback=user) as client:
        yield client


def body(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text(result)
    return result.structured_content


def submitted_sizes(emulator: RunningEmulator) -> list[str]:
    """The ``size`` of each create request the emulator received, in order."""
    bodies: list[Any] = [r.body for r in emulator.state.requests]
    sent = [cast(dict[str, Any], b) for b in bodies if isinstance(b, dict) and "parameters" in b]
    return [str(b["parameters"].get("size", "")) for b in sent]


def produced(result: dict[str, Any]) -> list[str]:
    return [f"{image['width']}*{image['height']}" for image in result["images"]]


async def test_a_ratio_or_an_unrounded_size_is_sent_as_the_size_produced_and_said(
    emulator: RunningEmulator, make_image: ImageFactory, tmp_path: Path
) -> None:
    photo = str(make_image("photo.png", (1200, 1200)))
    # without images wan2.7-image-pro takes up to 4096² pixels: 2K at 16:9 rounds up to 2736*1536, not down
    asked: list[tuple[str, list[str], str]] = [
        ("16:9", [], "2736*1536"),
        ("2K 16:9", [photo], "2720*1536"),
        ("1920*1080", [photo], "1920*1088"),
    ]
    with anyio.fail_after(60):
        async with stdio_server(emulator, tmp_path) as client:
            told = client.instructions or ""
            tools = {tool.name: tool.input_schema["properties"] for tool in (await client.list_tools()).tools}
            results = [
                await client.call_tool("edit_image", {"prompt": "a poster", "images": images, "size": size})
                for size, images, _ in asked
            ]
            refused = await client.call_tool("edit_image", {"prompt": "a poster", "images": [photo], "size": "16:0"})
            sent_before_refusal = submitted_sizes(emulator)
    assert "the output keeps the aspect ratio of the LAST image (put the image whose shape you want last)" in told
    assert "put the image whose shape you want last. 'W*H' or a ratio" in tools["edit_image"]["size"]["description"]
    for (size, _, sent), result in zip(asked, results, strict=True):
        data = body(result)
        assert not result.is_error, text(result)
        assert any(note.startswith(f"size '{size}' sent as {sent}") for note in data["adjustments"])
        assert data["output_size"] == sent and produced(data) == [sent]
        assert f"Output size: {sent}." in text(result)
    assert sent_before_refusal == [sent for _, _, sent in asked]
    assert refused.is_error
    assert "size: '16:0' is not an aspect ratio" in text(refused)
    assert submitted_sizes(emulator) == sent_before_refusal  # the refusal sent nothing


def journaled(folder: Path) -> int:
    """Rows in the server's task journal (``server_env`` puts it in ``folder``)."""
    with sqlite3.connect(folder / "journal.sqlite3") as journal:
        (count,) = journal.execute("SELECT COUNT(*) FROM tasks").fetchone()
    return int(count)


async def test_a_dry_run_sends_nothing_writes_no_task_and_says_what_a_paid_call_would_do(
    emulator: RunningEmulator, make_image: ImageFactory, tmp_path: Path
) -> None:
    small, large = str(make_image("small.png", (800, 600))), tmp_path / "noise.png"
    Image.frombytes("RGB", (1800, 1200), os.urandom(1800 * 1200 * 3)).save(large)  # 6 MB: uploaded, not inline
    args = {"prompt": "image 1 on the wall of image 2", "images": [small, str(large)], "size": "2K 16:9", "n": 2}
    with anyio.fail_after(60):
        async with stdio_server(emulator, tmp_path, {"WAN_MCP_INLINE_MAX_BYTES": "1000000"}) as client:
            tried = {
                tool: await client.call_tool(tool, {**args, "dry_run": True}) for tool in ("edit_image", "submit_task")
            }
            detect = {"image": str(large), "targets": ["cup"], "dry_run": True}
            detected = await client.call_tool("detect_segment", detect)
            listed = body(await client.call_tool("list_tasks", {}))
            log, rows = list(emulator.state.requests), journaled(tmp_path)
            paid = body(await client.call_tool("edit_image", args))
    assert log == [] and rows == 0 and listed["total"] == 0  # no upload, no submission, no query; no task
    for result in tried.values():
        assert not result.is_error, text(result)
        assert text(result).startswith("Dry run: nothing was sent and nothing is billed.")
        data = body(result)
        assert (data["dry_run"], data["status"], data["paid_images"]) == (True, "DRY_RUN", 2)
        assert "task_id" not in data
        assert data["output_size"] == "2720*1536"
        assert "size '2K 16:9' sent as 2720*1536" in data["adjustments"]
        assert data["parameters"] == {"n": 2, "watermark": False, "size": "2720*1536"}
        assert [(i["index"], i["width"], i["height"], i["format"], i["sent_as"]) for i in data["inputs"]] == [
            (1, 800, 600, "PNG", "inline"),
            (2, 1800, 1200, "PNG", "upload"),
        ]
        assert data["would_stop"] == []
    assert body(detected)["instruction"] == "Detect the cup in the image, draw a box around it and label it “cup”."
    assert body(detected)["paid_images"] == 1
    # The paid call then sends what the dry run said, and produces its output_size.
    assert any(r.path == "/oss" for r in emulator.state.requests)  # the large image was uploaded this time
    assert submitted_sizes(emulator) == ["2720*1536"]
    assert produced(paid) == ["2720*1536", "2720*1536"] and paid["output_size"] == "2720*1536"


async def test_a_dry_run_predicts_the_shape_a_paid_run_produces_and_swapped_inputs_swap_it(
    emulator: RunningEmulator, make_image: ImageFactory, tmp_path: Path
) -> None:
    wide, tall = str(make_image("wide.jpg", (1600, 900))), str(make_image("tall.jpg", (900, 1600)))
    with anyio.fail_after(60):
        async with stdio_server(emulator, tmp_path) as client:
            outcomes: list[tuple[str, dict[str, Any]]] = []
            for images in ([wide, tall], [tall, wide]):
                call = {"prompt": "image 1 as image 2", "images": images, "model": "wan2.6-image"}
                predicted = body(await client.call_tool("edit_image", {**call, "dry_run": True}))["output_size"]
                outcomes.append((predicted, body(await client.call_tool("edit_image", call))))
    (tall_size, made_tall), (wide_size, made_wide) = outcomes
    assert produced(made_tall) == [tall_size] and made_tall["output_size"] == tall_size
    assert produced(made_wide) == [wide_size] and made_wide["output_size"] == wide_size
    width, height = (int(side) for side in tall_size.split("*"))
    assert width < height and wide_size == f"{height}*{width}"


async def test_a_dry_run_over_the_limits_reports_each_with_its_numbers_and_asks_no_one(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    asked: list[str] = []

    async def user(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        del context
        asked.append(params.message)
        return ElicitResult(action="decline")

    limits = {
        "WAN_MCP_MAX_IMAGES_PER_CALL": "4",
        "WAN_MCP_MAX_IMAGES_PER_DAY": "3",
        "WAN_MCP_CONFIRM_ABOVE_IMAGES": "1",
    }
    with anyio.fail_after(60):
        async with stdio_server(emulator, tmp_path, limits, user) as client:
            over = await client.call_tool("edit_image", {"prompt": "four red foxes", "n": 4, "dry_run": True})
            beyond = await client.call_tool("edit_image", {"prompt": "five red foxes", "n": 5, "dry_run": True})
            asks = await client.call_tool("submit_task", {"prompt": "two red foxes", "n": 2, "dry_run": True})
            refused = await client.call_tool("edit_image", {"prompt": "four red foxes", "n": 4})
        async with stdio_server(emulator, tmp_path, limits) as client:  # a client that cannot be asked
            cannot = await client.call_tool("edit_image", {"prompt": "two red foxes", "n": 2, "dry_run": True})
    assert not over.is_error, text(over)
    stops = {stop["setting"]: stop for stop in body(over)["would_stop"]}  # in the order a paid call meets them
    assert list(stops) == ["WAN_MCP_MAX_IMAGES_PER_DAY", "WAN_MCP_CONFIRM_ABOVE_IMAGES"]
    per_day = stops["WAN_MCP_MAX_IMAGES_PER_DAY"]
    assert (per_day["effect"], per_day["limit"], per_day["used"]) == ("refused", 3, 0)
    assert "would request 4 paid image(s); 0 were requested in the last 24 h" in per_day["message"]
    # Over the per-call cap, the call cannot even be formed: n's schema maximum is the cap, and the refusal says
    # so with the numbers and what to do, a dry run or not.
    assert beyond.is_error and "n must be at most 4" in text(beyond) and "WAN_MCP_MAX_IMAGES_PER_CALL" in text(beyond)
    (question,) = body(asks)["would_stop"]
    assert (question["setting"], question["effect"], question["limit"]) == (
        "WAN_MCP_CONFIRM_ABOVE_IMAGES",
        "asks the user",
        1,
    )
    assert "This will generate 2 paid images with wan2.7-image-pro" in question["message"]
    assert asked == []  # a dry run asks no one
    (unaskable,) = body(cannot)["would_stop"]
    assert (unaskable["setting"], unaskable["effect"]) == ("WAN_MCP_CONFIRM_ABOVE_IMAGES", "refused")
    assert "this client did not declare form elicitation" in unaskable["message"]
    assert refused.is_error and "WAN_MCP_MAX_IMAGES_PER_DAY" in text(refused)  # the paid call is refused
    assert emulator.state.requests == []
