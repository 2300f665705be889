"""End to end, as an MCP host runs it: the SDK's Client spawns ``python -m wan_image_mcp`` over stdio,
the server talks to the emulator on a loopback port, images land on disk."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, ImageContent, TextContent
from PIL import Image

from tests.support.helpers import TOOL_NAMES, server_env, text
from wan_image_mcp.core.specs import MODEL_NAMES
from wan_image_mcp.emulator import EmulatorConfig, Fault
from wan_image_mcp.emulator.serve import RunningEmulator
from wan_image_mcp.sockets import bind

pytestmark = pytest.mark.anyio
SECRET = "sk-e2e-very-secret-key-7f3a9c"
TEE = Path(__file__).parents[1] / "support" / "stdio_tee.py"
URL = "https://example.com/street-1280-720.png"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({SECRET}))) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(emulator: RunningEmulator) -> None:
    emulator.state.requests.clear()
    emulator.state.faults.clear()
    emulator.state.config.polls_to_finish = 2


@asynccontextmanager
async def stdio_session(
    emulator: RunningEmulator, tmp_path: Path, stdout_log: Path, *, harvest: bool = False, **settings: str
) -> AsyncGenerator[Client]:
    """The server over stdio (with ``settings``, WAN_MCP_ names). Without the harvester unless asked: the emulator
    advances a task on every query, so background polls would race the test's own (the real API moves on its own
    clock)."""
    env = server_env(emulator.base_url, SECRET, tmp_path, WAN_MCP_HARVEST="1" if harvest else "0", **settings)
    command = [str(TEE), str(stdout_log), sys.executable, "-m", "wan_image_mcp"]
    async with Client(StdioServerParameters(command=sys.executable, args=command, env=env, cwd=tmp_path)) as client:
        yield client


def body(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, result.content
    return result.structured_content


async def test_every_tool_and_model_over_stdio(emulator: RunningEmulator, tmp_path: Path) -> None:
    with anyio.fail_after(90):
        async with stdio_session(emulator, tmp_path, tmp_path / "stdout.log") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == TOOL_NAMES

            seen: list[str] = []

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                seen.append(message or "")

            for model in MODEL_NAMES:
                result = await client.call_tool(
                    "edit_image",
                    {"prompt": "paint it blue", "images": [URL], "model": model},
                    progress_callback=on_progress,
                )
                assert not result.is_error, text(result)
                (image,) = body(result)["images"]
                assert Path(image["path"]).is_file() and Path(image["path"]).with_suffix(".json").is_file()
                assert any(isinstance(block, ImageContent) for block in result.content)
            assert any(m.startswith("submitted task") for m in seen)
            assert any(m.startswith("RUNNING") for m in seen)
            assert any(m.startswith("downloading") for m in seen)

            submitted = await client.call_tool(
                "submit_task", {"prompt": "move the clock", "images": [URL], "model": "wan2.5-i2i-preview"}
            )
            task_id = body(submitted)["task_id"]
            checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
            again = await client.call_tool("check_task", {"task_id": task_id})
            assert body(checked)["status"] == "SUCCEEDED"
            assert body(again)["images"] == body(checked)["images"]
            downloads = [r for r in emulator.state.requests if r.path.startswith("/results/")]
            assert len(downloads) == len(MODEL_NAMES) + 1  # check_task's second call downloaded nothing

            detected = await client.call_tool("detect_segment", {"image": URL, "targets": ["car"], "mode": "detect"})
            assert (
                body(detected)["instruction"] == "Detect the car in the image, draw a box around it and label it “car”."
            )

            queued = body(await client.call_tool("submit_task", {"prompt": "x"}))["task_id"]
            cancelled = await client.call_tool("cancel_task", {"task_id": queued})
            assert not cancelled.is_error and "cancelled" in text(cancelled)


def transparent_logo() -> str:
    """A 600×400 PNG as a data: URL: an opaque blue square in the middle of a transparent field."""
    logo = Image.new("RGBA", (600, 400), (0, 0, 0, 0))
    logo.paste((0, 90, 200, 255), (200, 100, 400, 300))
    out = io.BytesIO()
    logo.save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


async def test_detect_segment_over_stdio_gives_what_its_listing_says(emulator: RunningEmulator, tmp_path: Path) -> None:
    """What a cold agent met: it did not know it gets one picture, its targets read singular, and nothing let it
    choose what a transparent logo is flattened onto."""
    with anyio.fail_after(60):
        async with stdio_session(emulator, tmp_path, tmp_path / "stdout.log") as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            said = " ".join((tools["detect_segment"].description or "").split())
            assert "one new picture, billed as one image" in said and "no masks, no coordinates" in said
            for name in ("edit_image", "submit_task", "detect_segment", "inspect_image"):
                assert "alpha_background" in tools[name].input_schema["properties"]

            own = "Box every bottle and every cup, each labelled with its name."
            arguments = {"image": transparent_logo(), "instruction": own, "alpha_background": "#FF0000"}
            result = await client.call_tool("detect_segment", arguments)
            assert not result.is_error, text(result)
            assert body(result)["instruction"] == own and len(body(result)["images"]) == 1
            assert body(result)["adjustments"] == ["image 1: alpha channel flattened onto #FF0000"]
            data = emulator.state.tasks[body(result)["task_id"]].images[0]
            assert data is not None
            with Image.open(io.BytesIO(data)) as received:
                assert received.convert("RGB").getpixel((10, 10)) == (255, 0, 0)  # where it was transparent

            quantified = await client.call_tool("detect_segment", {"image": URL, "targets": ["every bottle", "cups"]})
            assert body(quantified)["instruction"].startswith("Detect every bottle and all the cups in the image, ")

            requests = len(emulator.state.requests)
            refused = await client.call_tool("detect_segment", {"image": URL})
            assert refused.is_error and "give targets" in text(refused) and "or instruction" in text(refused)
            assert len(emulator.state.requests) == requests


async def test_bounded_wait_then_check_task_over_stdio(emulator: RunningEmulator, tmp_path: Path) -> None:
    emulator.state.config.polls_to_finish = 1_000_000
    with anyio.fail_after(60):
        async with stdio_session(emulator, tmp_path, tmp_path / "stdout.log") as client:
            started = anyio.current_time()
            running = await client.call_tool("edit_image", {"prompt": "slow one", "size": "1K", "wait_seconds": 1})
            assert anyio.current_time() - started < 10
            assert body(running)["status"] == "RUNNING"
            assert "check_task" in body(running)["next_step"]
            emulator.state.config.polls_to_finish = 1
            done = await client.call_tool("check_task", {"task_id": body(running)["task_id"], "wait_seconds": 5})
            assert body(done)["status"] == "SUCCEEDED" and len(body(done)["images"]) == 1


async def test_failures_are_tool_errors_over_stdio(emulator: RunningEmulator, tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with stdio_session(emulator, tmp_path, tmp_path / "stdout.log") as client:
            refused = await client.call_tool("edit_image", {"prompt": "x", "images": [URL] * 10})
            assert refused.is_error and "at most 9" in text(refused)
            assert emulator.state.requests == []

            emulator.state.add_fault(Fault("fail_task", code="InternalError.Algo", message="Algorithm failed."))
            failed = await client.call_tool("edit_image", {"prompt": "x"})
            assert failed.is_error
            assert body(failed)["error"]["code"] == "InternalError.Algo"

            emulator.state.add_fault(Fault("error", target="submit", status=500, code="InternalError", message="boom"))
            crashed = await client.call_tool("edit_image", {"prompt": "x"})
            assert crashed.is_error
            assert "InternalError: boom (HTTP 500, request_id" in text(crashed)
            assert "Traceback" not in text(crashed)


async def test_a_paid_task_whose_image_failed_to_download_is_no_error_and_check_task_then_saves_it(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    emulator.state.add_fault(Fault("error", target="download", status=404, code="NoSuchKey", message="gone"))
    with anyio.fail_after(60):
        async with stdio_session(emulator, tmp_path, tmp_path / "stdout.log") as client:
            first = await client.call_tool("edit_image", {"prompt": "two views", "size": "1K", "n": 2})
            assert not first.is_error, text(first)
            task_id = body(first)["task_id"]
            assert body(first)["status"] == "SUCCEEDED"
            (saved,) = body(first)["images"]
            ((missing),) = body(first)["missing_images"]
            assert "HTTP 404" in missing["reason"]
            assert f"call check_task with task_id={task_id!r}" in body(first)["next_step"]
            assert "Images not saved: DownloadFailed" in text(first) and "Error" not in text(first)

            again = await client.call_tool("check_task", {"task_id": task_id})
            assert not again.is_error and not body(again)["missing_images"]
            images = body(again)["images"]
            assert len(images) == 2 and saved in images and all(Path(image["path"]).is_file() for image in images)
    submits = [r for r in emulator.state.requests if r.method == "POST" and "/services/aigc/" in r.path]
    assert len(submits) == 1  # paid once


async def test_an_output_folder_under_a_regular_file_refuses_every_paid_call_before_any_request(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "a-file" / "out"
    calls = [
        ("edit_image", {"prompt": "x", "size": "1K"}),
        ("submit_task", {"prompt": "x", "size": "1K"}),
        ("detect_segment", {"image": URL, "targets": ["car"], "mode": "detect"}),
    ]
    with anyio.fail_after(60):
        async with stdio_session(emulator, tmp_path, tmp_path / "stdout.log", WAN_MCP_OUTPUT_DIR=str(out)) as client:
            for tool, arguments in calls:
                refused = await client.call_tool(tool, arguments)
                assert refused.is_error, tool
                said = text(refused)
                assert said.startswith(f"The output folder {out} cannot be written (Not a directory"), said
                assert "Nothing was sent and nothing is billed" in said and "WAN_MCP_OUTPUT_DIR" in said
            assert not (await client.call_tool("list_tasks", {})).is_error  # the free tools work
    assert emulator.state.requests == []  # no request of any kind


def test_an_output_folder_that_cannot_be_written_is_said_at_start_in_one_line_and_the_server_runs(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "a-file" / "out"
    env = server_env("http://127.0.0.1:9", SECRET, tmp_path, WAN_MCP_OUTPUT_DIR=str(out), WAN_MCP_HARVEST="0")
    done = subprocess.run(
        [sys.executable, "-m", "wan_image_mcp"], env=env, capture_output=True, text=True, timeout=60, input=""
    )
    assert done.returncode == 0, done.stderr  # it ran, until its input ended
    (line,) = [line for line in done.stderr.splitlines() if "output folder" in line]
    assert f"WARNING wan_image_mcp: at start: The output folder {out} cannot be written" in line
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a folder whatever its mode: chmod cannot stop it")
async def test_an_output_folder_the_server_may_not_create_refuses_a_paid_call_before_any_request(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    out = locked / "out"
    try:
        with anyio.fail_after(60):
            async with stdio_session(
                emulator, tmp_path, tmp_path / "stdout.log", WAN_MCP_OUTPUT_DIR=str(out)
            ) as client:
                refused = await client.call_tool("edit_image", {"prompt": "x", "size": "1K"})
        assert refused.is_error
        assert text(refused).startswith(f"The output folder {out} cannot be written (Permission denied")
        assert emulator.state.requests == []
    finally:
        locked.chmod(0o700)


async def test_an_interleaved_answer_keeps_dashscopes_order_in_parts_text_and_its_markdown_page(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    arguments = {"prompt": "a recipe", "model": "wan2.6-image", "enable_interleave": True, "max_images": 2}
    with anyio.fail_after(60):
        async with stdio_session(emulator, tmp_path, tmp_path / "stdout.log") as client:
            result = await client.call_tool("edit_image", {**arguments, "size": "1024*1024"})
            again = await client.call_tool("check_task", {"task_id": body(result)["task_id"]})
    assert not result.is_error, text(result)
    task = emulator.state.tasks[body(result)["task_id"]]
    first, second = (image["path"] for image in body(result)["images"])
    assert body(result)["parts"] == [  # as DashScope answered: text, image, text, image
        {"type": "text", "text": task.texts[0]},
        {"type": "image", "path": first},
        {"type": "text", "text": task.texts[1]},
        {"type": "image", "path": second},
    ]
    said = [block.text if isinstance(block, TextContent) else type(block).__name__ for block in result.content[1:]]
    assert said == [
        task.texts[0],
        f"image 1: {first} (1024×1024, {body(result)['images'][0]['bytes']} bytes)",
        "ResourceLink",
        "ImageContent",
        task.texts[1],
        f"image 2: {second} (1024×1024, {body(result)['images'][1]['bytes']} bytes)",
        "ResourceLink",
        "ImageContent",
    ]
    page = Path(body(result)["markdown"])
    assert page.parent == Path(first).parent and page.name == Path(first).name.removesuffix("_1.png") + ".md"
    lines = page.read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if line and not line.startswith(("#", ">"))] == [
        task.texts[0],
        f"![image 1]({Path(first).name})",
        task.texts[1],
        f"![image 2]({Path(second).name})",
    ]
    assert (body(again)["parts"], body(again)["markdown"]) == (body(result)["parts"], str(page))  # from the journal


async def test_prompt_mistakes_are_invalid_params_over_stdio(emulator: RunningEmulator, tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with stdio_session(emulator, tmp_path, tmp_path / "stdout.log") as client:
            with pytest.raises(MCPError) as caught:
                await client.get_prompt("edit_text_in_image", {"image": "a.png"})
    assert caught.value.code == INVALID_PARAMS
    assert caught.value.message == "prompt 'edit_text_in_image': missing required arguments new_text, old_text"


async def test_stdout_carries_only_json_rpc_and_never_the_key(emulator: RunningEmulator, tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    with anyio.fail_after(60):
        async with stdio_session(emulator, tmp_path, log) as client:
            await client.list_tools()
            await client.call_tool("edit_image", {"prompt": "x", "size": "1K"})
            await client.call_tool("edit_image", {"prompt": "", "n": 99})
            await client.call_tool("check_task", {"task_id": "nope"})
    lines = [line for line in log.read_bytes().splitlines() if line.strip()]
    assert len(lines) >= 4
    for line in lines:
        message = json.loads(line)
        assert message["jsonrpc"] == "2.0", line[:200]
    assert SECRET.encode() not in log.read_bytes()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``wan-image-mcp ARGS`` in a subprocess, its output captured, within two minutes."""
    command = [sys.executable, "-m", "wan_image_mcp", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_demo_runs_every_scenario_on_a_machine_with_no_key(tmp_path: Path) -> None:
    env = server_env(None, None, None)
    done = cli(env, "demo", "--output", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lists 7 tools" in done.stdout
    assert done.stdout.count("SUCCEEDED") == 5
    assert (tmp_path / "journal.sqlite3").is_file()
    pngs = sorted((tmp_path / "results").glob("*.png"))
    assert len(pngs) == 8  # 1 + 1 + 4 (the image set) + 1 + 1
    page = tmp_path / "results" / "gallery.html"
    assert f"Gallery of what it made: {page}  (again: wan-image-mcp gallery --folder {tmp_path})" in done.stdout
    assert "8 image(s) from 5 task(s)" in page.read_text(encoding="utf-8")
    again = cli(env, "gallery", "--folder", str(tmp_path))
    assert again.returncode == 0 and again.stdout.strip() == str(page), again.stderr


def test_a_port_in_use_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    taken = bind("127.0.0.1", 0)
    port = str(taken.getsockname()[1])
    try:
        for command in (["serve", "--transport", "http", "--port", port], ["emulator", "--port", port]):
            done = cli(server_env(None, None, tmp_path), *command)
            assert done.returncode == 2, done.stderr
            (line,) = done.stderr.strip().splitlines()
            assert f"cannot listen on 127.0.0.1:{port}: the port is in use; choose another --port" in line
    finally:
        taken.close()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_call_above_the_confirmation_threshold_asks_the_user_over_stdio(
    emulator: RunningEmulator, tmp_path: Path, mode: str
) -> None:
    from mcp.client.context import ClientRequestContext
    from mcp.types import ElicitRequestParams, ElicitResult

    asked: list[str] = []

    async def yes_then_no(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        del context
        asked.append(params.message)
        return ElicitResult(action="accept", content={}) if len(asked) == 1 else ElicitResult(action="decline")

    env = server_env(emulator.base_url, SECRET, tmp_path, WAN_MCP_HARVEST="0", WAN_MCP_CONFIRM_ABOVE_IMAGES="1")
    server = StdioServerParameters(command=sys.executable, args=["-m", "wan_image_mcp"], env=env, cwd=tmp_path)
    with anyio.fail_after(60):
        async with Client(server, mode=mode, elicitation_callback=yes_then_no) as client:
            accepted = await client.call_tool("submit_task", {"prompt": "two boats", "size": "1K", "n": 2})
            declined = await client.call_tool("submit_task", {"prompt": "two boats", "size": "1K", "n": 2})
    assert not accepted.is_error, text(accepted)
    assert declined.is_error and "Nothing was sent" in text(declined)
    assert asked == ["This will generate 2 paid images with wan2.7-image-pro. Proceed?"] * 2
    assert len([r for r in emulator.state.requests if r.method == "POST"]) == 1
