"""MCP Apps over the real protocol, without a browser: what a client that negotiated Apps lists and gets (the
viewer's data, the picker and its checks), and that a client that did not gets exactly what it got before."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import httpx2
import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import CallToolResult, TextResourceContents
from PIL import Image, ImageStat

from tests.support.helpers import TOOL_NAMES, ImageFactory, text
from wan_image_mcp.core.requests.picking import Pick, PickedImage, Picks
from wan_image_mcp.core.specs import SPECS
from wan_image_mcp.core.tasks.viewing import input_thumbnail
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.mcp_server.apps.extension import PICKER_URI, VIEW_KEY, VIEWER_URI
from wan_image_mcp.mcp_server.apps.pages import MAX_PAGE_BYTES
from wan_image_mcp.mcp_server.apps.picker import NO_APPS
from wan_image_mcp.settings import Settings

pytestmark = pytest.mark.anyio
APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})


@pytest.fixture(params=["auto", "legacy"])
async def apps(
    request: pytest.FixtureRequest, http: httpx2.AsyncClient, server_settings: Settings
) -> AsyncIterator[Client]:
    """A client that negotiated MCP Apps, in both protocol eras."""
    mode: Literal["auto", "legacy"] = request.param
    async with Client(build_app(server_settings, http), extensions=[APPS], mode=mode) as client:
        yield client


def _compact(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def decoded(url: str) -> Image.Image:
    assert url.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    image.load()
    return image


async def test_an_apps_client_lists_the_picker_and_the_bound_pages(apps: Client) -> None:
    listed = (await apps.list_tools()).model_dump(mode="json", by_alias=True, exclude_none=True)["tools"]
    tools = {t["name"]: t for t in listed}
    assert set(tools) == TOOL_NAMES | {"pick_boxes", "record_boxes"}
    for name in ("edit_image", "check_task", "detect_segment"):
        assert tools[name]["_meta"]["ui"] == {"resourceUri": VIEWER_URI}
    assert tools["pick_boxes"]["_meta"]["ui"] == {"resourceUri": PICKER_URI, "visibility": ["model", "app"]}
    assert tools["record_boxes"]["_meta"]["ui"] == {"resourceUri": PICKER_URI, "visibility": ["app"]}
    assert tools["record_boxes"]["inputSchema"]["additionalProperties"] is False
    model_visible = [
        {k: t[k] for k in ("name", "title", "description", "inputSchema")}
        for t in listed
        if "model" in t.get("_meta", {}).get("ui", {}).get("visibility", ["model"])
    ]
    # The picker's tool on top of the 9,000 / 15,000 bytes every client's list keeps to (test_tools.py).
    assert _compact(model_visible) <= 10_000, _compact(model_visible)
    assert _compact(listed) <= 18_000, _compact(listed)


async def test_the_pages_are_self_contained_mcp_app_resources(apps: Client) -> None:
    listed = {str(r.uri): r for r in (await apps.list_resources()).resources}
    for uri in (VIEWER_URI, PICKER_URI):
        assert listed[uri].mime_type == APP_MIME_TYPE
        (content,) = (await apps.read_resource(uri)).contents
        assert isinstance(content, TextResourceContents) and content.mime_type == APP_MIME_TYPE
        page = content.text
        assert len(page.encode()) < MAX_PAGE_BYTES
        assert "globalThis.McpExtApps={" in page and "<!-- EXT_APPS_SDK -->" not in page
        # Inlined, not fetched (test_apps_browser.py renders them with the network cut off).
        assert page.count("<script") == 2 and "<script src" not in page and "<link" not in page


async def test_a_client_without_apps_lists_and_gets_what_it_did_before(mcp: Client, make_image: ImageFactory) -> None:
    listed = (await mcp.list_tools()).model_dump(mode="json", by_alias=True, exclude_none=True)["tools"]
    assert {t["name"] for t in listed} == TOOL_NAMES
    assert all("_meta" not in t for t in listed)
    assert not any(str(r.uri).startswith("ui://") for r in (await mcp.list_resources()).resources)
    photo = make_image("photo.png", (900, 600))
    result = await mcp.call_tool("edit_image", {"prompt": "red", "images": [str(photo)], "size": "1K"})
    assert not result.is_error and VIEW_KEY not in (result.meta or {})
    for name in ("pick_boxes", "record_boxes"):
        refused = await mcp.call_tool(
            name, {"images": [str(photo)]} if name == "pick_boxes" else {"pick_id": "x", "bbox_list": []}
        )
        assert refused.is_error and text(refused) == NO_APPS


async def test_a_viewed_result_carries_inputs_outputs_prompt_and_model_for_the_page(
    apps: Client, make_image: ImageFactory
) -> None:
    turned = make_image("turned.jpg", (600, 400), exif_orientation=6)
    result = await apps.call_tool(
        "edit_image", {"prompt": "a set of two", "images": [str(turned)], "size": "1K", "n": 2}
    )
    assert not result.is_error, text(result)
    assert result.structured_content is not None and result.meta is not None
    view: dict[str, Any] = result.meta[VIEW_KEY]
    assert view["prompt"] == "a set of two" and view["model"] == result.structured_content["model"]
    assert view["status"] == "SUCCEEDED" and view["task_id"] == result.structured_content["task_id"]
    (shown,) = view["inputs"]
    assert shown["source"] == str(turned) and decoded(shown["thumb"]).size == (171, 256)  # as sent: turned
    assert [o["path"] for o in view["outputs"]] == [i["path"] for i in result.structured_content["images"]]
    for output in view["outputs"]:
        assert output["uri"] == f"wan://images/{output['name']}" and max(decoded(output["thumb"]).size) <= 512
    again = await apps.call_tool("check_task", {"task_id": view["task_id"]})
    assert again.meta is not None and again.meta[VIEW_KEY]["outputs"] == view["outputs"]


def colour(url: str) -> tuple[float, ...]:
    """The mean colour of a data-URL thumbnail."""
    return tuple(ImageStat.Stat(decoded(url).convert("RGB")).mean)


@pytest.mark.parametrize("server_settings", ["sqlite", "postgres"], indirect=True)
async def test_the_viewer_shows_an_input_as_it_was_sent_after_its_file_is_replaced(
    apps: Client, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (600, 400), (220, 20, 20)).save(photo)
    made = await apps.call_tool("edit_image", {"prompt": "gold", "images": [str(photo)], "size": "1K"})
    assert not made.is_error and made.structured_content is not None, text(made)
    Image.new("RGB", (400, 600), (20, 200, 20)).save(photo)  # the same path, another picture
    again = await apps.call_tool("check_task", {"task_id": made.structured_content["task_id"]})
    assert again.meta is not None, text(again)
    (shown,) = again.meta[VIEW_KEY]["inputs"]
    red, green, _ = colour(shown["thumb"])
    assert red > 200 and green < 60 and decoded(shown["thumb"]).size == (256, 171)  # the red 600×400 sent


async def test_an_interleaved_answer_puts_each_text_beside_its_image(apps: Client) -> None:
    arguments = {"prompt": "a recipe", "model": "wan2.6-image", "enable_interleave": True, "max_images": 2}
    result = await apps.call_tool("edit_image", {**arguments, "size": "1024*1024"})
    assert not result.is_error and result.meta is not None and result.structured_content is not None
    view = result.meta[VIEW_KEY]
    parts = result.structured_content["parts"]
    assert [o["text"] for o in view["outputs"]] == [p["text"] for p in parts if p["type"] == "text"]
    assert view["texts"] == []
    assert view["inputs"] == [] and view["prompt"] == "a recipe"


async def test_detect_segment_is_viewed_with_its_instruction(apps: Client, make_image: ImageFactory) -> None:
    photo = make_image("desk.png", (900, 600))
    found = await apps.call_tool("detect_segment", {"image": str(photo), "targets": ["laptop"]})
    assert not found.is_error, text(found)
    assert found.meta is not None and found.structured_content is not None
    view = found.meta[VIEW_KEY]
    assert view["instruction"] == found.structured_content["instruction"] and "laptop" in view["instruction"]
    assert len(view["inputs"]) == 1 and len(view["outputs"]) == len(found.structured_content["images"]) >= 1


async def pick(client: Client, images: list[str], **extra: Any) -> CallToolResult:
    return await client.call_tool("pick_boxes", {"images": images, **extra})


async def test_the_picker_opens_on_the_images_as_shown_with_the_models_box_limit(
    apps: Client, make_image: ImageFactory
) -> None:
    turned = make_image("turned.jpg", (600, 400), exif_orientation=6)
    wide = make_image("wide.png", (9000, 3000))
    opened = await pick(apps, [str(turned), str(wide)], model="wan2.7-image")
    assert not opened.is_error, text(opened)
    data = opened.structured_content
    assert data is not None and data["model"] == "wan2.7-image"
    assert data["max_boxes_per_image"] == SPECS["wan2.7-image"].max_boxes_per_image
    assert [(i["width"], i["height"]) for i in data["images"]] == [(400, 600), (9000, 3000)]
    assert opened.meta is not None
    previews = [decoded(url) for url in opened.meta["wan-image-mcp/picker"]["previews"]]
    assert [p.size for p in previews] == [(400, 600), (768, 256)]  # upright, as sent, at most the preview's side
    assert "bbox_list" in text(opened) and "previews" not in json.dumps(opened.structured_content)


async def test_the_picker_refuses_what_it_cannot_show_naming_the_argument_and_image(
    apps: Client, make_image: ImageFactory
) -> None:
    photo = make_image("photo.png", (900, 600))
    remote = await pick(apps, [str(photo), "https://example.com/x.png"])
    assert remote.is_error and "images (image 2): https://example.com/x.png is remote" in text(remote)
    no_boxes = await pick(apps, [str(photo)], model="wan2.6-image")
    assert no_boxes.is_error and text(no_boxes).startswith("Invalid request: model: wan2.6-image takes no bbox_list")


async def test_recorded_boxes_are_checked_against_the_pick_as_edit_image_checks_them(
    apps: Client, make_image: ImageFactory
) -> None:
    photo = make_image("photo.png", (900, 600))
    other = make_image("other.png", (640, 640))
    opened = await pick(apps, [str(photo), str(other)])
    assert opened.structured_content is not None
    pick_id = opened.structured_content["pick_id"]
    boxes = [[[10, 20, 300, 200], [400, 100, 900, 600]], []]
    recorded = await apps.call_tool("record_boxes", {"pick_id": pick_id, "bbox_list": boxes})
    assert not recorded.is_error, text(recorded)
    assert recorded.structured_content is not None and recorded.structured_content["bbox_list"] == boxes
    assert f"bbox_list={boxes}" in text(recorded) and "image 2 (" in text(recorded)
    too_many = await apps.call_tool("record_boxes", {"pick_id": pick_id, "bbox_list": [[[0, 0, 9, 9]] * 3, []]})
    assert too_many.is_error and "bbox_list (image 1): 3 boxes; at most 2 per image" in text(too_many)
    outside = await apps.call_tool("record_boxes", {"pick_id": pick_id, "bbox_list": [[], [[0, 0, 641, 10]]]})
    assert outside.is_error and "bbox_list (image 2): box [0, 0, 641, 10] reaches outside the 640×640" in text(outside)
    unknown = await apps.call_tool("record_boxes", {"pick_id": "nope", "bbox_list": [[], []]})
    assert unknown.is_error and text(unknown).startswith("pick_id: no open picker 'nope'")


def test_an_input_that_became_a_fifo_is_shown_without_a_thumbnail_instead_of_hanging_the_viewer(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "photo.png"  # the path the journal recorded, replaced since by a FIFO nobody writes to
    os.mkfifo(fifo)
    made: list[bytes | None] = []
    reader = threading.Thread(target=lambda: made.append(input_thumbnail(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=5)
    hung = reader.is_alive()
    if hung:  # let the blocked open return, so that the thread ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=5)
    assert not hung
    assert made == [None]


def test_a_remembered_pick_keeps_the_sizes_the_boxes_are_checked_against_not_the_previews() -> None:
    preview = b"\xff\xd8" + bytes(150_000)  # a 768 px JPEG of a photo: sent once, in pick_boxes' result
    picks = Picks(limit=2)
    for number in range(3):
        picks.add(Pick(f"p{number}", "wan2.7-image", 2, (PickedImage(1, "a.png", 800, 600, preview),) * 9))
    assert picks.get("p0") is None  # the oldest forgotten
    kept = picks.get("p2")
    assert kept is not None and [(i.width, i.height) for i in kept.images] == [(800, 600)] * 9
    assert sum(len(i.preview) for i in kept.images) == 0
