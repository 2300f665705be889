"""MCP Apps in a real browser over the real protocol: Debian's headless Chromium (driven by Playwright) runs a
small host page built on the official ``AppBridge`` (``tests/e2e/apps/``), whose JSON-RPC is relayed to an MCP client
connected to our server (in-process, DashScope traffic to the emulator). The pages run in a sandboxed iframe under
the spec's default CSP with every network request refused, so what they show came through the protocol.

The picker test draws, moves, resizes and deletes boxes with the mouse, confirms, takes the bbox_list the page put in
the model's context as the model would, passes it to edit_image, and checks that the boxes the emulator receives
are the dragged rectangles mapped into the pixels of the images as sent (±1 px): for an EXIF-6 photo and a
downscaled 9000 px image, with the drawn region holding the red patch in the very pixels DashScope got.
Screenshots go to the test's ``tmp_path``, or to ``docs/screenshots/`` (shown by docs/apps.md) with
``WAN_TEST_SCREENSHOTS=1`` (a run does not rewrite tracked files unasked: they show temporary paths;
not a WAN_MCP_ name, which the tests clear from the environment). Skipped
only where Playwright or Chromium cannot be installed (.ci/run
installs both).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import CallToolResult, TextResourceContents
from PIL import Image, ImageStat

from tests.support.helpers import text
from wan_image_mcp.emulator import EmulatorState
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.mcp_server.apps.extension import PICKER_URI, VIEW_KEY, VIEWER_URI
from wan_image_mcp.settings import Settings

try:
    from playwright.async_api import Frame, Page, async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None

HOST = Path(__file__).parent / "apps"
README_SHOTS = Path(__file__).parents[2] / "docs" / "screenshots"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where a test's screenshots go: the docs' folder when WAN_TEST_SCREENSHOTS=1 (set by whoever refreshes
    them), else the test's own folder."""
    return README_SHOTS if os.environ.get("WAN_TEST_SCREENSHOTS") == "1" else tmp_path


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 20_000
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(async_playwright is None, reason="Playwright is not installed (the test extra installs it)"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (.ci/run installs it)"),
]


@dataclass
class Host:
    """The browser's host page, relaying the app's requests to ``client`` and recording what it tells the host."""

    page: Page
    client: Client
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list[tuple[str, dict[str, Any]]])
    arrived: anyio.Event = field(default_factory=anyio.Event)

    async def relay(self, method: str, params: str) -> str:
        given = json.loads(params)
        self.events.append((method, given))
        if method == "tools/call":
            done: Any = await self.client.call_tool(given["name"], given.get("arguments") or {})
        else:
            done = await self.client.read_resource(given["uri"])
        return json.dumps(done.model_dump(mode="json", by_alias=True, exclude_none=True))

    async def event(self, method: str, params: str) -> None:
        self.events.append((method, json.loads(params)))
        self.arrived.set()

    async def open(
        self,
        uri: str,
        tool_input: dict[str, Any],
        result: CallToolResult | None,
        options: dict[str, Any] | None = None,
    ) -> Frame:
        """Render the page at ``uri`` for a tool call with ``tool_input`` that returned ``result`` (None: no result
        yet, the page waits); ``options`` are the host page's (``hostContext``, ``refuseMessages``)."""
        (content,) = (await self.client.read_resource(uri)).contents
        assert isinstance(content, TextResourceContents) and content.mime_type == APP_MIME_TYPE
        dumped = wire(result) if result is not None else None
        await self.page.evaluate(
            "([h, i, r, o]) => window.openApp(h, i, r, o)", [content.text, tool_input, dumped, options or {}]
        )
        iframe = await self.page.wait_for_selector("#app")
        frame = await iframe.content_frame() if iframe else None
        assert frame is not None
        await frame.wait_for_selector("body[data-ready='1']" if result is not None else "#prompt", timeout=WAIT_MS)
        return frame

    async def wait_for(self, method: str) -> dict[str, Any]:
        with anyio.fail_after(WAIT_MS / 1000):
            while not any(m == method for m, _ in self.events):
                await self.arrived.wait()
                self.arrived = anyio.Event()
        return next(params for m, params in self.events if m == method)


def wire(result: CallToolResult) -> dict[str, Any]:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


@pytest.fixture
async def host(http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState) -> AsyncIterator[Host]:
    assert async_playwright is not None
    settings = server_settings.model_copy(
        update={"inline_max_bytes": 1}
    )  # every input uploaded: the emulator keeps its bytes
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    async with Client(build_app(settings, http), extensions=[apps]) as client, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 760})
            page.set_default_timeout(WAIT_MS)

            async def route(request: Any) -> None:
                name = request.request.url.removeprefix("http://host.test/")
                if name in ("host.html", "app-bridge.js"):
                    path = HOST / ("vendor/app-bridge.js" if name == "app-bridge.js" else name)
                    kind = "text/javascript" if name.endswith(".js") else "text/html"
                    await request.fulfill(body=path.read_bytes(), content_type=kind)
                else:  # no network: a page that needed any would show it missing
                    await request.abort()

            await page.route("**/*", route)
            found = Host(page, client)
            await page.expose_function("mcp", found.relay)  # pyright: ignore[reportUnknownMemberType]
            await page.expose_function("hostEvent", found.event)  # pyright: ignore[reportUnknownMemberType]
            await page.goto("http://host.test/host.html")
            await page.wait_for_selector("body[data-ready='1']")
            yield found
        finally:
            await browser.close()


def marked(size: tuple[int, int], patch: tuple[int, int, int, int]) -> Image.Image:
    """A blue image, as the user sees it, with a red ``patch`` (x1, y1, x2, y2) to draw a box around."""
    image = Image.new("RGB", size, (30, 60, 200))
    image.paste((230, 20, 20), patch)
    return image


def sent_images(emulator: EmulatorState) -> list[Image.Image]:
    """The input images of the last task as DashScope received them (uploaded, so the emulator holds them)."""
    submit = [r for r in emulator.requests if r.path.endswith("/image-generation/generation")][-1]
    refs = [item["image"] for item in submit.body["input"]["messages"][0]["content"] if "image" in item]
    found: list[Image.Image] = []
    for ref in refs:
        assert ref.startswith("oss://"), ref
        found.append(Image.open(io.BytesIO(emulator.uploads[ref.removeprefix("oss://")].data)))
    return found


async def all_images_loaded(frame: Frame) -> int:
    await frame.wait_for_function(
        "() => document.images.length > 0 && [...document.images].every(i => i.complete && i.naturalWidth > 0)",
        timeout=WAIT_MS,
    )
    return await frame.evaluate("() => document.images.length")


async def test_the_viewer_shows_every_input_and_result_and_offers_each_for_the_next_edit(
    host: Host, tmp_path: Path, shots: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    marked((900, 600), (100, 100, 400, 300)).save(photo, quality=90)
    arguments = {"prompt": "a set of two postcards", "images": [str(photo)], "size": "1K", "n": 2}
    result = await host.client.call_tool("edit_image", arguments)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    frame = await host.open(VIEWER_URI, arguments, result)
    assert await all_images_loaded(frame) == 3  # one input, two results
    assert await frame.inner_text("#prompt") == "a set of two postcards"
    assert result.structured_content["model"] in await frame.inner_text("#meta")
    await host.page.screenshot(path=str(shots / "viewer.png"))
    second = result.structured_content["images"][1]["path"]
    await frame.locator(".card button").nth(1).click()
    message = await host.wait_for("ui/message")
    assert message["role"] == "user" and json.dumps(second) in message["content"][0]["text"]


async def test_a_result_without_thumbnails_is_read_through_the_host(host: Host) -> None:
    """The viewer's other way to its images: resources/read of each result's wan://images/… link via the host."""
    result = await host.client.call_tool("edit_image", {"prompt": "two", "size": "1K", "n": 2})
    assert not result.is_error and result.meta is not None, text(result)
    view = result.meta[VIEW_KEY]
    bare = {**view, "outputs": [{**output, "thumb": None} for output in view["outputs"]]}
    frame = await host.open(VIEWER_URI, {"prompt": "two"}, result.model_copy(update={"meta": {VIEW_KEY: bare}}))
    assert await all_images_loaded(frame) == 2
    read = [params["uri"] for method, params in host.events if method == "resources/read"]
    assert read == [output["uri"] for output in view["outputs"]]


BEYOND_THE_FRAME = """() => {
  const width = document.documentElement.clientWidth;
  const out = [...document.body.querySelectorAll("*")].filter((e) => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.right > width + 0.5 || r.left < -0.5);
  }).map((e) => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`);
  if (document.documentElement.scrollWidth > width) out.push(`the page, ${document.documentElement.scrollWidth} px`);
  return out;
}"""
LOWEST_CONTRAST = """() => {  // the lowest contrast of any shown text with what is behind it (WCAG 2 ratios)
  const rgba = (c) => {
    const v = c.match(/[\\d.]+/g).map(Number);
    return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1];
  };
  const linear = (x) => (x /= 255) <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
  const lum = (c) => 0.2126 * linear(c[0]) + 0.7152 * linear(c[1]) + 0.0722 * linear(c[2]);
  const over = (top, under) => top.slice(0, 3).map((x, i) => x * top[3] + under[i] * (1 - top[3])).concat([1]);
  const behind = (e) => {
    const layers = [];
    for (let n = e; n; n = n.parentElement) layers.push(rgba(getComputedStyle(n).backgroundColor));
    return layers.reverse().reduce((under, top) => over(top, under), [255, 255, 255, 1]);
  };
  let lowest = [99, ""];
  for (const e of document.body.querySelectorAll("*")) {
    const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !e.getClientRects().length) continue;
    const back = behind(e);
    const [a, b] = [lum(over(rgba(getComputedStyle(e).color), back)), lum(back)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    if (ratio < lowest[0]) lowest = [ratio, `${e.tagName.toLowerCase()}#${e.id}.${e.className}: ${e.textContent}`];
  }
  return lowest;
}"""
BACKGROUND = """() => {  // 0 black … 1 white, of the body's computed background
  const v = getComputedStyle(document.body).backgroundColor.match(/[\\d.]+/g).map(Number);
  return (0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]) / 255; }"""

ONE_COLUMN = "() => new Set([...document.querySelectorAll('.card')].map((c) => c.offsetLeft)).size === 1"
PROMPT_HEIGHT = "() => document.getElementById('prompt').getBoundingClientRect().height"


async def beyond_the_frame(frame: Frame) -> list[str]:
    return await frame.evaluate(BEYOND_THE_FRAME)


async def lowest_contrast(frame: Frame) -> tuple[float, str]:
    ratio, where = await frame.evaluate(LOWEST_CONTRAST)
    return ratio, where


async def test_nothing_in_the_viewer_reaches_beyond_a_narrow_frame_for_a_set_an_interleave_or_a_detection(
    host: Host, tmp_path: Path, shots: Path
) -> None:
    photo = tmp_path / "desk.png"
    marked((900, 600), (100, 100, 400, 300)).save(photo)
    long_prompt = "a set of four postcards of the same harbour, " * 12
    calls = {
        "set": ("edit_image", {"prompt": long_prompt, "images": [str(photo)], "size": "1K", "n": 4}),
        "interleave": (
            "edit_image",
            {"prompt": "a recipe", "model": "wan2.6-image", "enable_interleave": True, "max_images": 2},
        ),
        "detection": ("detect_segment", {"image": str(photo), "targets": ["laptop"]}),
    }
    for width in (400, 320):
        await host.page.set_viewport_size({"width": width, "height": 760})
        for name, (tool, arguments) in calls.items():
            result = await host.client.call_tool(tool, arguments)
            assert not result.is_error, text(result)
            frame = await host.open(VIEWER_URI, arguments, result)
            await all_images_loaded(frame)
            assert await beyond_the_frame(frame) == [], (name, width)
            assert await frame.evaluate(ONE_COLUMN), (name, width)
            if name == "set" and width == 400:
                await host.page.screenshot(path=str(shots / "viewer-400.png"))
                # The long prompt in three lines behind "more"; machine file names shortened, whole on hover.
                shown = await frame.evaluate(PROMPT_HEIGHT)
                assert shown < 80
                await frame.click("button.more")
                assert await frame.evaluate(PROMPT_HEIGHT) > 3 * shown
                assert result.structured_content is not None
                first = Path(result.structured_content["images"][0]["path"]).name
                caption = frame.locator(".card figcaption").first
                assert await caption.get_attribute("title") == first
                assert first not in await caption.inner_text() and "…" in await caption.inner_text()


async def test_a_single_result_uses_a_wide_frame(host: Host) -> None:
    await host.page.set_viewport_size({"width": 1400, "height": 760})
    result = await host.client.call_tool("edit_image", {"prompt": "one", "size": "1K", "n": 1})
    assert not result.is_error, text(result)
    frame = await host.open(VIEWER_URI, {"prompt": "one"}, result)
    await all_images_loaded(frame)
    width = await frame.evaluate("() => document.querySelector('.card img').getBoundingClientRect().width")
    assert 480 <= width <= 512  # the 512 px thumbnail at its size, not 232 px beside empty space


async def test_the_viewer_follows_a_dark_host_on_a_light_os_and_each_change_of_its_context(
    host: Host, shots: Path
) -> None:
    await host.page.emulate_media(color_scheme="light")
    arguments = {"prompt": "a set of two postcards", "size": "1K", "n": 2}
    result = await host.client.call_tool("edit_image", arguments)
    assert not result.is_error, text(result)
    frame = await host.open(VIEWER_URI, arguments, result, {"hostContext": {"theme": "dark"}})
    assert await frame.evaluate(BACKGROUND) < 0.2
    await all_images_loaded(frame)
    await host.page.screenshot(path=str(shots / "viewer-dark.png"))
    ratio, where = await lowest_contrast(frame)
    assert ratio >= 4.5, (ratio, where)
    await host.page.evaluate("() => window.bridge.setHostContext({theme: 'light'})")
    await frame.wait_for_function("() => document.documentElement.dataset.theme === 'light'")
    assert await frame.evaluate(BACKGROUND) > 0.8
    ratio, where = await lowest_contrast(frame)
    assert ratio >= 4.5, (ratio, where)
    # The host's own colour variables and fonts, live.
    variables = {"--color-background-primary": "rgb(10, 20, 40)", "--font-sans": "monospace"}
    await host.page.evaluate("(v) => window.bridge.setHostContext({theme: 'dark', styles: {variables: v}})", variables)
    await frame.wait_for_function("() => getComputedStyle(document.body).backgroundColor === 'rgb(10, 20, 40)'")
    assert await frame.evaluate("() => getComputedStyle(document.body).fontFamily") == "monospace"


async def test_without_a_host_theme_the_viewer_follows_the_os(host: Host, shots: Path) -> None:
    await host.page.emulate_media(color_scheme="dark")
    await host.page.set_viewport_size({"width": 400, "height": 760})
    arguments = {"prompt": "a set of two postcards", "size": "1K", "n": 2}
    result = await host.client.call_tool("edit_image", arguments)
    assert not result.is_error, text(result)
    frame = await host.open(VIEWER_URI, arguments, result)
    assert await frame.evaluate(BACKGROUND) < 0.2
    await all_images_loaded(frame)
    await host.page.screenshot(path=str(shots / "viewer-400-dark.png"))
    ratio, where = await lowest_contrast(frame)
    assert ratio >= 4.5, (ratio, where)


async def test_the_viewer_answers_teardown_and_declares_its_display_modes_and_fits_the_hosts_container(
    host: Host,
) -> None:
    result = await host.client.call_tool("edit_image", {"prompt": "four", "size": "1K", "n": 4})
    assert not result.is_error, text(result)
    frame = await host.open(
        VIEWER_URI, {"prompt": "four"}, result, {"hostContext": {"containerDimensions": {"maxHeight": 300}}}
    )
    assert await frame.evaluate("() => document.body.getBoundingClientRect().height") <= 300
    capabilities = await host.page.evaluate("() => window.bridge.getAppCapabilities()")
    assert capabilities["availableDisplayModes"] == ["inline", "fullscreen"]
    assert await host.page.evaluate("() => window.bridge.teardownResource({})") == {}


async def test_a_cancelled_call_shows_that_it_was_cancelled(host: Host) -> None:
    frame = await host.open(VIEWER_URI, {"prompt": "never made"}, None)
    assert await frame.inner_text("#prompt") == "Waiting for the result…"
    await host.page.evaluate("() => window.bridge.sendToolCancelled({reason: 'the user stopped it'})")
    await frame.wait_for_selector("body[data-state='cancelled']")
    said = await frame.inner_text("#status")
    assert "Cancelled" in said and "the user stopped it" in said
    assert await frame.inner_text("#prompt") == "never made"


async def test_a_second_result_replaces_the_first(host: Host) -> None:
    first = await host.client.call_tool("edit_image", {"prompt": "first", "size": "1K", "n": 2})
    second = await host.client.call_tool("edit_image", {"prompt": "second", "size": "1K", "n": 1})
    assert not first.is_error and not second.is_error, text(first)
    frame = await host.open(VIEWER_URI, {"prompt": "first"}, first)
    assert await frame.locator(".card").count() == 2
    await host.page.evaluate("(r) => window.bridge.sendToolResult(r)", wire(second))
    await frame.wait_for_selector("body[data-shown='2']")
    assert await frame.locator(".card").count() == 1
    assert await frame.inner_text("#prompt") == "second"


async def test_the_viewer_shows_an_input_replaced_since_the_call_as_it_was_sent(host: Host, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (600, 400), (220, 20, 20)).save(photo)
    made = await host.client.call_tool("edit_image", {"prompt": "gold", "images": [str(photo)], "size": "1K"})
    assert not made.is_error and made.structured_content is not None, text(made)
    Image.new("RGB", (600, 400), (20, 200, 20)).save(photo)  # the same path, another picture
    arguments = {"task_id": made.structured_content["task_id"]}
    again = await host.client.call_tool("check_task", arguments)
    frame = await host.open(VIEWER_URI, arguments, again)
    await all_images_loaded(frame)
    shown = Image.open(io.BytesIO(await frame.locator(".inputs img").screenshot())).convert("RGB")
    red, green, _ = ImageStat.Stat(shown).mean
    assert red > 180 and green < 80, (red, green)  # the red picture sent, not the green one there now


async def red_patch(frame: Frame, index: int) -> tuple[float, float, float, float]:
    """Where the red patch shows on image ``index`` of the picker, as fractions of the shown image, 4 px inside."""
    shot = Image.open(io.BytesIO(await frame.locator(f".stage[data-i='{index}'] img").screenshot())).convert("RGB")
    red = Image.eval(shot.getchannel("R"), lambda v: 255 if v > 180 else 0)
    not_red = Image.eval(shot.getchannel("B"), lambda v: 255 if v < 80 else 0)
    found = Image.composite(red, Image.new("L", shot.size), not_red).getbbox()
    assert found is not None, f"no red patch shown on image {index + 1}"
    x1, y1, x2, y2 = found
    return ((x1 + 4) / shot.width, (y1 + 4) / shot.height, (x2 - 4) / shot.width, (y2 - 4) / shot.height)


async def drag(page: Page, frame: Frame, index: int, box: tuple[float, float, float, float]) -> tuple[float, ...]:
    """Drag a box on image ``index`` of the picker, ``box`` in fractions of the shown image; returns the dragged
    rectangle in the shown image's CSS pixels and the shown image's width and height."""
    shown = await frame.locator(f".stage[data-i='{index}'] img").bounding_box()
    assert shown is not None
    x1, y1 = shown["x"] + box[0] * shown["width"], shown["y"] + box[1] * shown["height"]
    x2, y2 = shown["x"] + box[2] * shown["width"], shown["y"] + box[3] * shown["height"]
    await page.mouse.move(x1, y1)
    await page.mouse.down()
    await page.mouse.move((x1 + x2) / 2, (y1 + y2) / 2, steps=4)
    await page.mouse.move(x2, y2, steps=4)
    await page.mouse.up()
    return (x1 - shown["x"], y1 - shown["y"], x2 - shown["x"], y2 - shown["y"], shown["width"], shown["height"])


async def move(page: Page, frame: Frame, index: int, drawn: tuple[float, ...], right: float) -> tuple[float, ...]:
    """Drag the box ``drawn`` on image ``index`` by its middle, ``right`` of the shown width to the right;
    returns it as ``drag`` does."""
    shown = await frame.locator(f".stage[data-i='{index}'] img").bounding_box()
    assert shown is not None
    x1, y1, x2, y2, width, height = drawn
    x, y = shown["x"] + (x1 + x2) / 2, shown["y"] + (y1 + y2) / 2
    await page.mouse.move(x, y)
    await page.mouse.down()
    await page.mouse.move(x + right * width, y, steps=6)
    await page.mouse.up()
    return (x1 + right * width, y1, x2 + right * width, y2, width, height)


async def resize(
    page: Page, frame: Frame, index: int, drawn: tuple[float, ...], corner: tuple[float, float]
) -> tuple[float, ...]:
    """Drag the only box on image ``index`` by its corner grip to ``corner`` (fractions of the shown image);
    returns it as ``drag`` does."""
    shown = await frame.locator(f".stage[data-i='{index}'] img").bounding_box()
    grip = await frame.locator(f".stage[data-i='{index}'] .grip").bounding_box()
    assert shown is not None and grip is not None
    x, y = grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2
    to_x, to_y = shown["x"] + corner[0] * shown["width"], shown["y"] + corner[1] * shown["height"]
    await page.mouse.move(x, y)
    await page.mouse.down()
    await page.mouse.move(to_x, to_y, steps=6)
    await page.mouse.up()
    x1, y1, x2, y2, width, height = drawn
    return (x1, y1, x2 + to_x - x, y2 + to_y - y, width, height)  # the corner moves as far as the pointer


async def test_boxes_drawn_in_the_picker_are_the_regions_dashscope_receives(
    host: Host, tmp_path: Path, emulator: EmulatorState, shots: Path
) -> None:
    # As the user sees it: 800×1200 with the patch at (200, 300)-(440, 660); stored turned, with EXIF 6.
    photo = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    marked((800, 1200), (200, 300, 440, 660)).transpose(Image.Transpose.ROTATE_90).save(photo, exif=exif, quality=92)
    huge = tmp_path / "huge.png"  # over the 8000 px side limit: sent at most 40 Mpx
    marked((9000, 6000), (6300, 1200, 8100, 3600)).save(huge, compress_level=1)
    images = [str(photo), str(huge)]
    opened = await host.client.call_tool("pick_boxes", {"images": images})
    assert not opened.is_error, text(opened)
    frame = await host.open(PICKER_URI, {"images": images}, opened)
    assert await all_images_loaded(frame) == 2
    # Around each red patch where the user sees it on the page, a little inside it.
    patches = [await red_patch(frame, 0), await red_patch(frame, 1)]
    # On image 1 the box is drawn a fifth of the width to the left of the patch, then moved onto it.
    x1, y1, x2, y2 = patches[0]
    drawn = await drag(host.page, frame, 0, (x1 - 0.2, y1, x2 - 0.2, y2))
    # On image 2 it is drawn over the patch's top-left quarter, then resized by its corner to the patch's.
    x1, y1, x2, y2 = patches[1]
    quarter = await drag(host.page, frame, 1, (x1, y1, (x1 + x2) / 2, (y1 + y2) / 2))
    dragged = [await move(host.page, frame, 0, drawn, 0.2), await resize(host.page, frame, 1, quarter, (x2, y2))]
    # A third box on image 2 is refused (wan2.7's limit is 2), a stray one drawn and deleted leaves no trace.
    await drag(host.page, frame, 1, (0.05, 0.05, 0.2, 0.2))
    await drag(host.page, frame, 1, (0.3, 0.6, 0.4, 0.8))
    assert await frame.locator(".stage[data-i='1'] .box").count() == 2
    await frame.locator(".stage[data-i='1'] .box").nth(1).locator("button").click()
    assert await frame.locator(".stage[data-i='1'] .box").count() == 1
    await host.page.screenshot(path=str(shots / "picker.png"))
    await frame.click("#confirm")
    context = await host.wait_for("ui/update-model-context")
    message = await host.wait_for("ui/message")
    bbox_list = context["structuredContent"]["bbox_list"]
    assert json.dumps(bbox_list, separators=(",", ":")) in message["content"][0]["text"].replace(" ", "")
    # The model passes them on, as the message says.
    edited = await host.client.call_tool("edit_image", {"prompt": "gold", "images": images, "bbox_list": bbox_list})
    assert not edited.is_error, text(edited)
    submit = [r for r in emulator.requests if r.path.endswith("/image-generation/generation")][-1]
    received = submit.body["parameters"]["bbox_list"]
    sent = sent_images(emulator)
    assert sent[0].size == (800, 1200) and max(sent[1].size) < 8000  # turned; downscaled
    for (box,), image, (x1, y1, x2, y2, width, height) in zip(received, sent, dragged, strict=True):
        sx, sy = image.width / width, image.height / height
        expected = [x1 * sx, y1 * sy, x2 * sx, y2 * sy]
        assert all(abs(got - want) <= 1 for got, want in zip(box, expected, strict=True)), (box, expected)
        red, green, blue = ImageStat.Stat(image.convert("RGB").crop(tuple(box))).mean
        assert red > 200 and green < 60 and blue < 60, (box, image.size)  # the patch, in the pixels sent
