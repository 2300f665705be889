"""MCP Apps over streamable HTTP (`wan-image-mcp serve --transport http`): a client's Apps support is read per
request, so one that negotiated them gets the picker and the viewer's data, and one that did not, neither."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from PIL import Image

from tests.support.helpers import HTTP_KEY, TOOL_NAMES, http_server
from wan_image_mcp.emulator import EmulatorConfig
from wan_image_mcp.emulator.serve import RunningEmulator
from wan_image_mcp.mcp_server.apps.extension import VIEW_KEY

pytestmark = pytest.mark.slow  # a server subprocess: about 5 s


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    """An emulator on a real port, for the server subprocess."""
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({HTTP_KEY}))) as running:
        yield running


def test_over_http_only_a_client_with_apps_gets_the_picker_and_the_viewers_data(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (900, 600), (200, 80, 40)).save(photo)

    async def session(url: str) -> None:
        with anyio.fail_after(60):
            async with Client(url, extensions=[advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]) as apps:
                assert {t.name for t in (await apps.list_tools()).tools} == TOOL_NAMES | {"pick_boxes", "record_boxes"}
                opened = await apps.call_tool("pick_boxes", {"images": [str(photo)]})
                assert not opened.is_error and opened.structured_content is not None, opened.content
                recorded = await apps.call_tool(
                    "record_boxes",
                    {"pick_id": opened.structured_content["pick_id"], "bbox_list": [[[10, 10, 200, 100]]]},
                )
                assert not recorded.is_error, recorded.content
                edited = await apps.call_tool("edit_image", {"prompt": "x", "images": [str(photo)], "size": "1K"})
                assert edited.meta is not None and VIEW_KEY in edited.meta
            async with Client(url) as plain:
                assert {t.name for t in (await plain.list_tools()).tools} == TOOL_NAMES
                edited = await plain.call_tool("edit_image", {"prompt": "x", "images": [str(photo)], "size": "1K"})
                assert not edited.is_error and VIEW_KEY not in (edited.meta or {})

    with http_server(emulator, tmp_path, WAN_MCP_ALLOWED_DIRS=str(tmp_path)) as url:
        anyio.run(session, url)
