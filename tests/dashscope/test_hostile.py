"""Hostile and broken input: every tool, fed random and adversarial arguments, ends each call as a clean
tool error or a valid result — no traceback text, no crash, and no request sent for input it refused."""

from __future__ import annotations

import base64
import io
import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult, TextContent
from PIL import Image
from pydantic import SecretStr

from tests.support.helpers import EMULATOR_BASE, EMULATOR_KEY
from wan_image_mcp.core.requests.declarations import EditArgs
from wan_image_mcp.core.requests.declarations import arguments as declared
from wan_image_mcp.emulator import EmulatorState, create_app
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

TOOLS = ["edit_image", "submit_task", "check_task", "cancel_task", "detect_segment", "list_tasks"]
EDIT_ARGS = [argument.name for argument in declared(EditArgs)]


class Harness:
    def __init__(self, portal: BlockingPortal, client: Client, emulator: EmulatorState, folder: Path) -> None:
        self.portal, self.client, self.emulator, self.folder = portal, client, emulator, folder

    def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        self.emulator.requests.clear()
        return self.portal.call(self.client.call_tool, tool, arguments)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    folder = tmp_path_factory.mktemp("hostile")
    emulator = EmulatorState()
    settings = Settings(
        api_key=SecretStr(EMULATOR_KEY),
        base_url=EMULATOR_BASE,
        output_dir=folder / "out",
        journal_path=folder / "journal.sqlite3",
        poll_interval=0.01,
        poll_interval_max=0.02,
        harvest=False,
        previews=False,
        allowed_dirs=(folder,),
    )
    emulator.config.api_keys = frozenset({EMULATOR_KEY})
    with start_blocking_portal() as portal:
        http = portal.wrap_async_context_manager(
            httpx2.AsyncClient(
                transport=httpx2.ASGITransport(app=create_app(emulator)), base_url="http://emulator.test"
            )
        )
        with http as client_http, portal.wrap_async_context_manager(Client(build_app(settings, client_http))) as client:
            yield Harness(portal, client, emulator, folder)


def write_images(folder: Path) -> dict[str, str]:
    """Broken image files of every kind, written once."""
    good = io.BytesIO()
    Image.new("RGB", (600, 400), (9, 99, 199)).save(good, "JPEG")
    whole = good.getvalue()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )
    files = {
        "truncated.jpg": whole[: len(whole) // 2],
        "bomb.png": bomb,
        "empty.png": b"",
        "text.webp": b"GIF89a not really",
        "good.jpg": whole,
    }
    paths: dict[str, str] = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths[name] = str(folder / name)
    paths["data-truncated"] = "data:image/jpeg;base64," + base64.b64encode(whole[:300]).decode()
    return paths


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.text(min_size=6000, max_size=6001),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)
nested_boxes = st.recursive(st.integers(-5, 10_000), lambda inner: st.lists(inner, max_size=4), max_leaves=30)
hostile_refs = st.sampled_from(
    [
        "data:image/png;base64,@@@",
        "data:,",
        "data:image/png;base64," + "A" * 10_001,
        "/etc/passwd",
        "/no/such/dir/x.png",
        "bad\x00name.png",
        "file:///etc/shadow",
        "../../../../etc/hosts",
        "~root/.ssh/id_rsa",
        "oss://",
        "http://",
        "javascript:alert(1)",
        "\\\\server\\share\\x.png",
        "C:\\Windows\\win.ini",
    ]
)


@st.composite
def edit_arguments(draw: st.DrawFn, images: dict[str, str]) -> dict[str, Any]:
    arguments: dict[str, Any] = {"prompt": draw(st.one_of(st.text(max_size=30), json_values))}
    for name in draw(st.lists(st.sampled_from(EDIT_ARGS[1:]), max_size=5, unique=True)):
        if name == "images":
            refs = st.one_of(hostile_refs, st.sampled_from(sorted(images.values())), st.text(max_size=20))
            arguments[name] = draw(st.one_of(st.lists(refs, max_size=11), json_values))
        elif name == "bbox_list":
            arguments[name] = draw(nested_boxes)
        else:
            arguments[name] = draw(json_values)
    return arguments


def assert_clean(result: CallToolResult, harness: Harness) -> None:
    messages = " ".join(block.text for block in result.content if isinstance(block, TextContent))
    assert "Traceback" not in messages and 'File "' not in messages
    assert not re.fullmatch(r"Error executing tool \w+", messages.strip()), "an unexpected exception in the tool"
    assert EMULATOR_KEY not in messages
    if result.is_error and ("Invalid request" in messages or "validation error" in messages.lower()):
        assert harness.emulator.requests == [], messages  # refused input sent nothing


FAST = settings(
    max_examples=int(os.environ.get("WAN_MCP_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    # data_too_large: now and then the arbitrary-JSON strategy draws more than hypothesis buffers for one example;
    # that is the generator's limit, not the server's, and failed the suite at random (seed 158206887…).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


def test_edit_image_survives_hostile_arguments(harness: Harness) -> None:
    images = write_images(harness.folder)

    @FAST
    @given(arguments=edit_arguments(images))
    def run(arguments: dict[str, Any]) -> None:
        arguments["wait_seconds"] = 0
        assert_clean(harness.call("edit_image", arguments), harness)

    run()
    assert not harness.call("list_tasks", {}).is_error  # still serving


@pytest.mark.parametrize("name", ["truncated.jpg", "bomb.png", "empty.png", "text.webp", "data-truncated"])
def test_broken_images_are_clean_errors_and_send_nothing(name: str, harness: Harness) -> None:
    images = write_images(harness.folder)
    result = harness.call("edit_image", {"prompt": "x", "images": [images[name]]})
    assert result.is_error
    assert_clean(result, harness)
    assert harness.emulator.requests == []


def test_every_tool_survives_arbitrary_argument_objects(harness: Harness) -> None:
    @FAST
    @given(
        tool=st.sampled_from(TOOLS),
        arguments=st.dictionaries(
            st.sampled_from(
                [
                    *EDIT_ARGS,
                    "task_id",
                    "image",
                    "targets",
                    "mode",
                    "labels",
                    "status",
                    "page",
                    "page_size",
                    "wait_seconds",
                    "zzz",
                ]
            ),
            json_values,
            max_size=6,
        ),
    )
    def run(tool: str, arguments: dict[str, Any]) -> None:
        if "wait_seconds" in arguments:
            arguments["wait_seconds"] = 0
        assert_clean(harness.call(tool, arguments), harness)

    run()
    assert not harness.call("list_tasks", {}).is_error
