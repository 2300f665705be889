"""The box picker as a user and a host reviewer try it (issue 24), in the same real Chromium on the official
``AppBridge`` host as ``test_apps_browser.py``: a box drawn, moved, resized and deleted with the keyboard alone
reaching DashScope's bbox_list; one send per confirmation, and "Sent" only when the host took the message; a
box dragged by its number; the smallest box measured on screen; contrast from the page's own colours and target
sizes from its layout, under the OS's and the host's themes; fullscreen; ``ui/resource-teardown`` answered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from tests.e2e.test_apps_browser import WAIT_MS, Host, all_images_loaded, drag, host, marked, sent_images
from tests.e2e.test_apps_browser import pytestmark as browser
from tests.support.helpers import text
from wan_image_mcp.emulator import EmulatorState
from wan_image_mcp.mcp_server.apps.extension import PICKER_URI

if TYPE_CHECKING:
    from playwright.async_api import Frame

__all__ = ["host"]  # the fixture, shared with test_apps_browser.py
pytestmark = browser  # anyio, slow, skipped without Playwright or Chromium
STEP = 8  # CSS pixels a key press moves, as the page says


async def open_picker(host: Host, images: list[str], options: dict[str, Any] | None = None) -> Frame:
    opened = await host.client.call_tool("pick_boxes", {"images": images})
    assert not opened.is_error, text(opened)
    frame = await host.open(PICKER_URI, {"images": images}, opened, options)
    await all_images_loaded(frame)
    return frame


async def events(host: Host, method: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` events ``method`` the host got, waiting for them."""
    with anyio.fail_after(WAIT_MS / 1000):
        while sum(m == method for m, _ in host.events) < count:
            await host.arrived.wait()
            host.arrived = anyio.Event()
    return [params for m, params in host.events if m == method][:count]


async def press(frame: Frame, *keys: str) -> None:
    for key in keys:
        await frame.page.keyboard.press(key)


async def focused(frame: Frame) -> str:
    """What has the keyboard focus in the page: its class (or id) and its aria-label."""
    return await frame.evaluate(
        "() => { const a = document.activeElement;"
        " return `${a.id || a.className} ${a.getAttribute('aria-label') || ''}`.trim(); }"
    )


async def tab_to(frame: Frame, what: str, back: bool = False) -> None:
    """Press Tab (Shift+Tab with ``back``) until the focus is on ``what`` (as ``focused`` says it), at most 12 times."""
    for _ in range(12):
        if (await focused(frame)).startswith(what):
            return
        await frame.page.keyboard.press("Shift+Tab" if back else "Tab")
    raise AssertionError(f"Tab never reached {what!r}; the focus is on {await focused(frame)!r}")


async def coords(frame: Frame, index: int = 0) -> list[list[int]]:
    shown = await frame.locator(f".stage[data-i='{index}']").evaluate(
        "s => s.parentElement.querySelector('.coords').textContent"
    )
    return [json.loads(part) for part in shown.split("  ")] if shown.startswith("[") else []


async def test_a_box_drawn_moved_resized_and_deleted_with_the_keyboard_alone_reaches_dashscope(
    host: Host, tmp_path: Path, emulator: EmulatorState
) -> None:
    photo = tmp_path / "photo.png"
    # The red patch is where the keys below put the box (the 800×600 image shows 480 px wide: 5/3 pixel per CSS px).
    marked((800, 600), (390, 290, 544, 378)).save(photo)
    frame = await open_picker(host, [str(photo)])
    shown = await frame.locator(".stage img").bounding_box()
    assert shown is not None
    s = 800 / shown["width"]
    await tab_to(frame, "stage")  # from the host page into the frame, onto the image
    assert await frame.locator(".stage .cursor").is_visible()  # the cross shows where a box would start
    # The cross starts in the middle (400, 300): 3 left, 2 up, start; the corner 10 right, 8 down, end.
    await press(frame, *["ArrowLeft"] * 3, *["ArrowUp"] * 2, "Enter", *["ArrowRight"] * 10, *["ArrowDown"] * 8, "Space")
    assert (await focused(frame)).startswith("box box 1")  # the new box has the focus
    # Moved 2 right and 1 down; its corner 2 right and 1 up.
    await press(frame, "ArrowRight", "ArrowRight", "ArrowDown", "Shift+ArrowRight", "Shift+ArrowRight", "Shift+ArrowUp")
    x1, y1 = 400 - 3 * STEP * s + 2 * STEP * s, 300 - 2 * STEP * s + STEP * s
    expected = [x1, y1, x1 + 10 * STEP * s + 2 * STEP * s, y1 + 8 * STEP * s - STEP * s]
    (box,) = await coords(frame)
    assert all(abs(got - want) <= 1 for got, want in zip(box, expected, strict=True)), (box, expected)
    # A second box, deleted three ways: Delete on the box, Space and Enter on its × (reached with Tab).
    for delete in ("Delete", "Space", "Enter"):
        await tab_to(frame, "stage", back=True)
        await press(frame, "Enter", *["ArrowLeft"] * 6, *["ArrowUp"] * 5, "Enter")
        assert (await focused(frame)).startswith("box box 2") and len(await coords(frame)) == 2
        if delete != "Delete":
            await press(frame, "Tab")
            assert await focused(frame) == "Delete box 2"
        await press(frame, delete)
        assert await coords(frame) == [box], delete
    # Tab and Shift+Tab go between the image, the box and its ×; Tab on to the button, Enter confirms.
    await tab_to(frame, "stage", back=True)
    await press(frame, "Tab")
    assert (await focused(frame)).startswith("box box 1")
    await tab_to(frame, "confirm")
    await press(frame, "Enter")
    context = await host.wait_for("ui/update-model-context")
    bbox_list = context["structuredContent"]["bbox_list"]
    assert bbox_list == [[box]]
    await frame.wait_for_function("() => document.getElementById('status').textContent.startsWith('Sent')")
    assert await frame.get_attribute("#status", "aria-live") == "polite"
    edited = await host.client.call_tool(
        "edit_image", {"prompt": "gold", "images": [str(photo)], "bbox_list": bbox_list}
    )
    assert not edited.is_error, text(edited)
    submit = [r for r in emulator.requests if r.path.endswith("/image-generation/generation")][-1]
    assert submit.body["parameters"]["bbox_list"] == [[box]]
    (image,) = sent_images(emulator)
    red, green, blue = image.convert("RGB").crop(tuple(box)).resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60, box  # the red patch, in the pixels sent


async def test_use_these_boxes_sends_the_same_boxes_once_and_says_sent_only_when_the_host_took_them(
    host: Host, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.png"
    marked((800, 600), (100, 100, 300, 300)).save(photo)
    frame = await open_picker(host, [str(photo)])
    await drag(host.page, frame, 0, (0.1, 0.1, 0.4, 0.4))
    await frame.dblclick("#confirm")
    (first,) = await events(host, "ui/message", 1)
    await frame.wait_for_function("() => document.getElementById('status').textContent.startsWith('Sent')")
    assert await frame.is_disabled("#confirm")  # the same boxes again: nothing to send
    await frame.evaluate("() => document.getElementById('confirm').click()")
    # A changed box is new: it is sent, and it is the second message (the same boxes never went twice).
    await drag(host.page, frame, 0, (0.5, 0.5, 0.7, 0.7))
    assert await frame.is_enabled("#confirm")
    await frame.click("#confirm")
    _, second = await events(host, "ui/message", 2)
    assert second["content"][0]["text"] != first["content"][0]["text"]
    assert sum(m == "tools/call" for m, _ in host.events) == 2  # record_boxes once per confirmation
    # A host that refuses the message: the page does not say "Sent".
    await host.page.goto("http://host.test/host.html")
    frame = await open_picker(host, [str(photo)], {"refuseMessages": True})
    await drag(host.page, frame, 0, (0.1, 0.1, 0.4, 0.4))
    await frame.click("#confirm")
    await events(host, "ui/message", 3)
    await frame.wait_for_function("() => document.getElementById('status').textContent.startsWith('In the model')")
    assert "Sent" not in await frame.inner_text("#status")


async def test_a_slip_on_a_huge_image_draws_nothing_and_a_box_dragged_by_its_number_moves(
    host: Host, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.png"  # 6000 px wide, shown 480: 12.5 image pixels per CSS pixel
    marked((6000, 4000), (0, 0, 10, 10)).save(huge, compress_level=1)
    frame = await open_picker(host, [str(huge)])
    shown = await frame.locator(".stage img").bounding_box()
    assert shown is not None
    # A click with a 1 px slip, and a 3 px one, leave no box; 6 px on screen is a box.
    x, y = shown["x"] + 100, shown["y"] + 100
    for slip in (1, 3):
        await host.page.mouse.move(x, y)
        await host.page.mouse.down()
        await host.page.mouse.move(x + slip, y + slip)
        await host.page.mouse.up()
        assert await coords(frame) == [], slip
    await drag(host.page, frame, 0, (0.1, 0.1, 0.1 + 6 / shown["width"], 0.1 + 6 / shown["height"]))
    assert len(await coords(frame)) == 1
    await frame.locator(".box button").click()
    # A box the keyboard is drawing ends when the pointer starts another (the mouse is never stuck).
    await frame.focus(".stage")
    await press(frame, "Enter", *["ArrowRight"] * 3, *["ArrowDown"] * 3)
    await drag(host.page, frame, 0, (0.6, 0.6, 0.8, 0.8))
    assert len(await coords(frame)) == 2 and await frame.locator(".box.drawing").count() == 0
    for _ in range(2):
        await frame.locator(".box button").first.click()
    # Dragging the number label moves the box; it does not start another.
    await drag(host.page, frame, 0, (0.3, 0.3, 0.6, 0.6))
    (before,) = await coords(frame)
    label = await frame.locator(".box span").bounding_box()
    assert label is not None
    lx, ly = label["x"] + label["width"] / 2, label["y"] + label["height"] / 2
    await host.page.mouse.move(lx, ly)
    await host.page.mouse.down()
    await host.page.mouse.move(lx + 40, ly + 20, steps=4)
    await host.page.mouse.up()
    (after,) = await coords(frame)
    moved = [a - b for a, b in zip(after, before, strict=True)]
    assert all(abs(m - want * 12.5) <= 13 for m, want in zip(moved, (40, 20, 40, 20), strict=True)), moved


CONTRAST = """() => {
  const rgba = (c) => {
    const m = c.match(/[\\d.]+/g).map(Number);
    return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1];
  };
  const linear = (v) => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  const lum = ([r, g, b]) => 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  const over = (top, under) => top.slice(0, 3).map((v, i) => v * top[3] + under[i] * (1 - top[3])).concat(1);
  const background = (el) => {  // the colours behind el, composed from the root down
    const chain = [];
    for (let e = el; e; e = e.parentElement) chain.unshift(rgba(getComputedStyle(e).backgroundColor));
    return chain.reduce((under, top) => over(top, under), [255, 255, 255, 1]);
  };
  const found = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    const hidden = style.display === "none" || style.visibility === "hidden" || !el.getClientRects().length;
    if (!own || el.disabled || hidden) continue;  // WCAG: a disabled control needs no contrast
    const bg = background(el), fg = over(rgba(style.color), bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    found.push({ text: el.textContent.trim().slice(0, 80), ratio: (a + 0.05) / (b + 0.05) });
  }
  return { found, page: lum(background(document.body)) };
}"""


@pytest.mark.parametrize(
    ("scheme", "context", "dark"),
    [("light", {}, False), ("dark", {}, True), ("light", {"theme": "dark"}, True)],
    ids=["light OS", "dark OS", "dark host on a light OS"],
)
async def test_every_text_has_4_5_to_1_contrast_and_every_target_is_24_px(
    host: Host, tmp_path: Path, scheme: str, context: dict[str, Any], dark: bool
) -> None:
    photo = tmp_path / "photo.png"
    marked((800, 600), (100, 100, 300, 300)).save(photo)
    await host.page.emulate_media(color_scheme="dark" if scheme == "dark" else "light")
    frame = await open_picker(host, [str(photo)], {"hostContext": context})
    for box in ((0.1, 0.1, 0.3, 0.3), (0.5, 0.5, 0.7, 0.7), (0.7, 0.1, 0.9, 0.3)):  # the third is refused
        await drag(host.page, frame, 0, box)
    assert "at most 2 boxes" in await frame.inner_text("#status.error")
    measured = await frame.evaluate(CONTRAST)
    assert (measured["page"] < 0.2) is dark, measured["page"]
    texts = {f["text"] for f in measured["found"]}
    assert {"1", "×", "Use these boxes"} <= texts and any("at most 2" in t for t in texts), texts
    low = [f for f in measured["found"] if f["ratio"] < 4.5]
    assert not low, low
    for target in await frame.locator("button:visible, .grip").all():
        size = await target.bounding_box()
        assert size is not None and size["width"] >= 24 and size["height"] >= 24, (
            await target.evaluate("e => e.outerHTML"),
            size,
        )
    if context:  # a later host-context-changed back to light is followed live
        await host.page.evaluate("() => window.bridge.setHostContext({ theme: 'light' })")
        await frame.wait_for_function("() => getComputedStyle(document.body).backgroundColor === 'rgb(244, 244, 241)'")


async def test_the_picker_offers_fullscreen_works_in_it_and_answers_teardown(host: Host, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    marked((1600, 1200), (100, 100, 300, 300)).save(photo)
    context = {"displayMode": "inline", "availableDisplayModes": ["inline", "fullscreen"]}
    frame = await open_picker(host, [str(photo)], {"hostContext": context})
    modes = await host.page.evaluate("() => window.bridge.getAppCapabilities().availableDisplayModes")
    assert modes == ["inline", "fullscreen"]
    inline = await frame.locator(".stage img").bounding_box()
    await frame.click("#mode")
    assert (await host.wait_for("ui/request-display-mode"))["mode"] == "fullscreen"
    await frame.wait_for_selector("body[data-mode='fullscreen']")
    full = await frame.locator(".stage img").bounding_box()
    assert inline is not None and full is not None and full["width"] > inline["width"] * 1.2, (inline, full)
    x1, y1, x2, y2, width, height = await drag(host.page, frame, 0, (0.25, 0.25, 0.5, 0.75))
    (box,) = await coords(frame)
    expected = [x1 * 1600 / width, y1 * 1200 / height, x2 * 1600 / width, y2 * 1200 / height]
    assert all(abs(got - want) <= 1 for got, want in zip(box, expected, strict=True)), (box, expected)
    assert await frame.inner_text("#mode") == "Exit fullscreen"
    answer = await host.page.evaluate("() => window.bridge.teardownResource({})")
    assert answer == {}
    await frame.wait_for_selector("body[data-torn='1']")
    assert await frame.is_disabled("#confirm")  # nothing is sent after the host closed the page


async def test_the_picker_keeps_to_the_frame_the_host_gives(host: Host, tmp_path: Path) -> None:
    photo = tmp_path / "tall.png"
    marked((1200, 2400), (100, 100, 300, 300)).save(photo)
    frame = await open_picker(host, [str(photo)], {"hostContext": {"containerDimensions": {"maxHeight": 300}}})
    assert await frame.evaluate("() => document.body.getBoundingClientRect().height") <= 300
    assert await frame.evaluate("() => getComputedStyle(document.body).overflowY") == "auto"  # it scrolls inside
