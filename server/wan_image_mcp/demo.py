"""``wan-image-mcp demo``: Model Studio's image-editing scenarios, end to end, on a machine with no key and no
network.

Starts the emulator on a free loopback port, starts this server over stdio exactly as an MCP host would,
lists the tools, runs the scenarios with images it draws, and prints what each returned.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent

from .core.images.pillow import Image, ImageDraw
from .core.journal import Status
from .core.results.outcomes import EditResult
from .emulator import EmulatorConfig
from .emulator.serve import RunningEmulator

KEY = "sk-emulator"


def _draw(path: Path, size: tuple[int, int], background: str, shapes: Callable[[ImageDraw.ImageDraw], None]) -> str:
    image = Image.new("RGB", size, background)
    shapes(ImageDraw.Draw(image))
    image.save(path)
    return str(path)


def make_inputs(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)

    def car(d: ImageDraw.ImageDraw) -> None:
        d.rectangle((300, 420, 1300, 640), fill="#c0392b")
        d.polygon([(500, 420), (650, 300), (1000, 300), (1150, 420)], fill="#e74c3c")
        for x in (480, 1120):
            d.ellipse((x - 90, 560, x + 90, 740), fill="#222222")

    def graffiti(d: ImageDraw.ImageDraw) -> None:
        for i, colour in enumerate(("#f1c40f", "#8e44ad", "#16a085", "#e67e22", "#2980b9")):
            d.ellipse((60 + i * 120, 100 + (i % 2) * 260, 360 + i * 80, 420 + (i % 3) * 120), outline=colour, width=28)

    def clock(d: ImageDraw.ImageDraw) -> None:
        d.ellipse((252, 436, 852, 1036), fill="#3498db", outline="#1b4f72", width=24)
        d.line((552, 736, 552, 536), fill="white", width=18)
        d.line((552, 736, 702, 736), fill="white", width=14)

    def table(d: ImageDraw.ImageDraw) -> None:
        d.rectangle((0, 640, 1696, 960), fill="#a0522d")
        d.rectangle((860, 380, 960, 640), fill="#27ae60")  # a vase
        d.rectangle((989, 515, 1138, 681), outline="#ffffff", width=4)  # where the clock should go

    def desk(d: ImageDraw.ImageDraw) -> None:
        d.rectangle((0, 700, 1600, 1000), fill="#7f8c8d")
        d.polygon([(300, 700), (900, 700), (980, 760), (220, 760)], fill="#2c3e50")
        d.rectangle((340, 380, 860, 700), fill="#34495e")
        d.ellipse((1100, 480, 1340, 720), fill="#e74c3c")

    return {
        "car": _draw(folder / "car.png", (1600, 900), "#87ceeb", car),
        "graffiti": _draw(folder / "graffiti.png", (800, 800), "#ecf0f1", graffiti),
        "clock": _draw(folder / "clock.png", (1104, 1472), "#fdfefe", clock),
        "table": _draw(folder / "table.png", (1696, 960), "#f5e6ca", table),
        "desk": _draw(folder / "desk.png", (1600, 1000), "#dfe6e9", desk),
    }


@dataclass
class Row:
    scenario: str
    tool: str
    status: str
    images: int
    first: str
    seconds: float


def scenarios(inputs: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (
            "two-image edit (graffiti of image 2 onto the car of image 1)",
            "edit_image",
            {"prompt": "把圖2的塗鴉噴繪在圖1的汽車上", "images": [inputs["car"], inputs["graffiti"]], "size": "1K"},
        ),
        (
            "interactive edit with bbox_list",
            "edit_image",
            {
                "prompt": "把圖1的鬧鐘放在圖2的框選的位置，保持情境和光線融合自然",
                "images": [inputs["clock"], inputs["table"]],
                "bbox_list": [[], [[989, 515, 1138, 681]]],
                "size": "1K",
            },
        ),
        (
            "image set with enable_sequential",
            "edit_image",
            {
                "prompt": "一套4宮格“季節變遷”主題的拍立得套圖：同一棵樹下的春夏秋冬",
                "enable_sequential": True,
                "n": 4,
                "size": "1K",
            },
        ),
        (
            "wan2.5 edit via submit_task + check_task",
            "submit_task",
            {
                "prompt": "將圖1中的鬧鐘放置到圖2的餐桌的花瓶旁邊位置",
                "images": [inputs["clock"], inputs["table"]],
                "model": "wan2.5-i2i-preview",
                "prompt_extend": True,
            },
        ),
        (
            "detect_segment (boxes labelled laptop and clock)",
            "detect_segment",
            {"image": inputs["desk"], "targets": ["膝上型電腦", "鬧鐘"], "labels": ["laptop", "clock"]},
        ),
    ]


async def _run(emulator: RunningEmulator, output: Path) -> list[Row]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "WAN_MCP_"))},
        "DASHSCOPE_HTTP_BASE_URL": emulator.base_url,
        "DASHSCOPE_API_KEY": KEY,
        "WAN_MCP_OUTPUT_DIR": str(output / "results"),
        "WAN_MCP_DB": str(output / "journal.sqlite3"),  # the demo never touches your real journal
        "WAN_MCP_ALLOWED_DIRS": str(output / "inputs"),
        "WAN_MCP_POLL_INTERVAL": "0.2",
    }
    server = StdioServerParameters(command=sys.executable, args=["-m", "wan_image_mcp", "serve"], env=env)
    rows: list[Row] = []
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
        print(f"server over stdio lists {len(tools)} tools: {', '.join(t.name for t in tools)}")
        inputs = make_inputs(output / "inputs")
        for scenario, tool, arguments in scenarios(inputs):
            started = time.monotonic()
            result = await client.call_tool(tool, arguments)
            if tool == "submit_task" and result.structured_content and not result.is_error:
                task_id = EditResult.model_validate(result.structured_content).task_id
                result = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 30})
                tool = "submit_task + check_task"
            rows.append(_row(scenario, tool, result, time.monotonic() - started))
    return rows


def _row(scenario: str, tool: str, result: CallToolResult, seconds: float) -> Row:
    if result.structured_content is None:  # a tool error without a result: show its message
        message = result.content[0].text if isinstance(result.content[0], TextContent) else "error"
        return Row(scenario, tool, "ERROR", 0, message[:100], seconds)
    body = EditResult.model_validate(result.structured_content)
    first = body.images[0].path if body.images else (body.error.message if body.error else "")
    return Row(scenario, tool, body.status, len(body.images), first, seconds)


def _gallery(folder: Path) -> Path:
    from .settings import Settings
    from .wiring import gallery_page

    return gallery_page(Settings(output_dir=folder / "results", journal_path=folder / "journal.sqlite3"))


def run_demo(output: str | None = None) -> int:
    folder = Path(output).expanduser().resolve() if output else Path(tempfile.mkdtemp(prefix="wan-image-mcp-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"wan-image-mcp demo: a local DashScope emulator, this server over stdio, files in {folder}\n")
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}))) as emulator:
        print(f"emulator at {emulator.base_url}")
        rows = anyio.run(_run, emulator, folder)
    width = max(len(r.scenario) for r in rows)
    print(f"\n{'scenario':<{width}}  {'status':<9} {'images':>6} {'secs':>5}  first file")
    for r in rows:
        print(f"{r.scenario:<{width}}  {r.status:<9} {r.images:>6} {r.seconds:>5.1f}  {r.first}")
    print(f"\nInputs: {folder / 'inputs'}\nResults (each with a .json sidecar): {folder / 'results'}")
    print(f"Gallery of what it made: {_gallery(folder)}  (again: wan-image-mcp gallery --folder {folder})")
    return 0 if all(r.status == Status.SUCCEEDED and r.images for r in rows) else 1
