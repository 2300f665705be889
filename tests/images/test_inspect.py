"""inspect_image: what an image is, which models take it as it is, and a grid preview to read coordinates."""

from __future__ import annotations

import base64
import contextlib
import io
import struct
import threading
import zlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, ImageContent
from PIL import Image, PngImagePlugin

from tests.support.helpers import ImageFactory, text
from wan_image_mcp.core.images import conforming, decoding
from wan_image_mcp.core.images.decoding import EXIF_ORIENTATION
from wan_image_mcp.core.images.inputs import prepare_image
from wan_image_mcp.core.images.inspection import GRID_PREVIEW_SIDE
from wan_image_mcp.core.images.runtime import imaging
from wan_image_mcp.core.specs import SPECS
from wan_image_mcp.emulator import EmulatorState

pytestmark = pytest.mark.anyio


async def test_each_image_is_reported_with_a_verdict_per_model(
    mcp: Client, make_image: ImageFactory, emulator: EmulatorState
) -> None:
    small = make_image("small.png", (300, 300))
    wide = make_image("wide.png", (9000, 1500))
    logo = make_image("logo.png", (500, 500), mode="RGBA", colour=(0, 0, 0, 0))
    turned = make_image("turned.jpg", (600, 400), exif_orientation=6)
    result = await mcp.call_tool(
        "inspect_image", {"images": [str(small), str(wide), str(logo), str(turned), "https://example.com/x.png"]}
    )
    assert not result.is_error
    assert result.structured_content is not None
    small_r, wide_r, logo_r, turned_r, remote_r = result.structured_content["images"]

    assert (small_r["width"], small_r["height"], small_r["format"]) == (300, 300, "PNG")
    assert small_r["models"]["wan2.7-image-pro"] == "as is"
    assert small_r["models"]["wan2.5-i2i-preview"].startswith("refused: 300×300 px is too small")

    assert wide_r["models"]["wan2.7-image"].startswith("adjusted: downscaled to 8000×1333")
    assert wide_r["models"]["wan2.6-image"].startswith("adjusted: downscaled")  # no ratio limit
    assert wide_r["models"]["wan2.5-i2i-preview"].startswith("refused: aspect ratio 6.00:1")

    assert logo_r["models"]["wan2.6-image"] == "adjusted: alpha channel flattened onto white"
    assert (turned_r["width"], turned_r["height"], turned_r["orientation"]) == (400, 600, 6)
    assert "width" not in remote_r and "not" in remote_r["models"]["wan2.7-image-pro"]

    previews = [block for block in result.content if isinstance(block, ImageContent)]
    assert len(previews) == 4  # one per image it could read
    with Image.open(io.BytesIO(base64.b64decode(previews[1].data))) as grid:
        assert max(grid.size) == GRID_PREVIEW_SIDE
        assert grid.getpixel((grid.width // 2, 0)) != grid.getpixel((grid.width // 2 + 3, grid.height // 2))
    assert emulator.requests == []  # inspecting costs nothing


async def test_inspecting_follows_the_same_file_rules(mcp: Client) -> None:
    result = await mcp.call_tool("inspect_image", {"images": ["/etc/hostname"]})
    assert result.structured_content is not None
    (report,) = result.structured_content["images"]
    assert "outside the allowed directories" in report["problem"]
    assert "width" not in report


async def test_a_png_whose_exif_follows_its_image_data_is_upright_for_inspect_and_edit(
    mcp: Client, tmp_path: Path
) -> None:
    """Its orientation cannot be read without decoding it all; inspect and what is sent must still agree, or
    boxes read off the grid would land elsewhere."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    tiff = exif.tobytes().removeprefix(b"Exif\x00\x00")
    buffer = io.BytesIO()
    Image.new("RGB", (600, 400), (9, 9, 9)).save(buffer, "PNG")
    png = buffer.getvalue()
    late = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
    path = tmp_path / "late-exif.png"
    path.write_bytes(png[:-12] + late + png[-12:])  # just before IEND
    with Image.open(path) as check:
        check.load()
        assert check.getexif()[EXIF_ORIENTATION] == 6  # Pillow finds it, but only after decoding
    inspected = await mcp.call_tool("inspect_image", {"images": [str(path)]})
    assert inspected.structured_content is not None
    (report,) = inspected.structured_content["images"]
    assert (report["width"], report["height"], report["orientation"]) == (600, 400, 1)
    prepared = prepare_image(str(path), 1, SPECS["wan2.7-image-pro"].image, tmp_path)
    assert prepared.original_size == (600, 400) and prepared.adjustments == ()


def preview_pixel(block: ImageContent, xy: tuple[int, int]) -> tuple[int, ...]:
    with Image.open(io.BytesIO(base64.b64decode(block.data))) as preview:
        pixel = preview.convert("RGB").getpixel(xy)
    assert isinstance(pixel, tuple)
    return pixel


async def test_the_preview_shows_what_is_sent_transparency_on_white_and_deep_tones_kept(
    mcp: Client, make_image: ImageFactory, tmp_path: Path
) -> None:
    logo = make_image("logo.png", (600, 400), mode="RGBA", colour=(0, 0, 0, 0))  # transparent black
    deep = tmp_path / "deep.png"
    Image.frombytes("I;16", (600, 400), struct.pack("<H", 40000) * 600 * 400).save(deep)
    result = await mcp.call_tool("inspect_image", {"images": [str(logo), str(deep)]})
    assert not result.is_error
    logo_preview, deep_preview = [block for block in result.content if isinstance(block, ImageContent)]
    between_grid_lines = (150, 150)  # lines every 100 px, labels along the top and left edges
    assert min(preview_pixel(logo_preview, between_grid_lines)) >= 250  # white, as it is flattened when sent
    assert preview_pixel(deep_preview, between_grid_lines) == pytest.approx((156, 156, 156), abs=3)  # not white


async def test_inspect_says_an_image_has_transparency_and_shows_it_on_the_background_it_would_be_flattened_onto(
    mcp: Client, make_image: ImageFactory
) -> None:
    logo = make_image("logo.png", (600, 400), mode="RGBA", colour=(0, 0, 0, 0))
    photo = make_image("photo.png", (600, 400))
    for arguments, named, rgb in [
        ({}, "white", (255, 255, 255)),
        ({"alpha_background": "#FF0000"}, "#FF0000", (255, 0, 0)),
    ]:
        result = await mcp.call_tool("inspect_image", {"images": [str(logo), str(photo)], **arguments})
        assert not result.is_error and result.structured_content is not None
        logo_r, photo_r = result.structured_content["images"]
        assert logo_r["alpha_background"] == named and "alpha_background" not in photo_r
        assert logo_r["models"]["wan2.6-image"] == f"adjusted: alpha channel flattened onto {named}"
        assert f"image 1: 600×400 PNG, {logo.stat().st_size} bytes\n  has transparency: flattened onto {named}" in text(
            result
        )
        assert "has transparency" not in text(result).split("image 2:")[1]
        preview = next(block for block in result.content if isinstance(block, ImageContent))
        assert preview_pixel(preview, (150, 150)) == pytest.approx(rgb, abs=6)


async def test_a_data_url_that_is_no_image_is_worded_as_edit_image_words_it(mcp: Client) -> None:
    ref = "data:image/png;base64,AAAA"
    inspected = await mcp.call_tool("inspect_image", {"images": [ref]})
    assert inspected.structured_content is not None
    (report,) = inspected.structured_content["images"]
    expected = "not an image (content of 'data:image/png;base64,… (26 chars)' is no format Pillow reads)"
    assert report["problem"] == expected
    assert "BytesIO" not in report["problem"]
    edited = await mcp.call_tool("edit_image", {"prompt": "make it blue", "images": [ref]})
    assert edited.is_error and f"images (image 1): {expected}" in text(edited)


async def test_a_9000_px_png_is_judged_from_its_header_and_decoded_once(
    mcp: Client, make_image: ImageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verdicts for every model come from the header; the one decode is the preview's (which proves it whole)."""
    wide = make_image("wide.png", (9000, 1500))
    decoded: list[tuple[int, int]] = []
    encoded: list[str] = []
    load = PngImagePlugin.PngImageFile.load

    def counting_load(self: PngImagePlugin.PngImageFile) -> Any:
        if self.tile:  # data still to decode (later calls find it decoded)
            decoded.append(self.size)
        return load(self)

    def no_encode(image: Image.Image, fmt: str, *, full_colour: bool) -> bytes:
        encoded.append(fmt)
        raise AssertionError("inspecting encodes nothing")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", counting_load)
    monkeypatch.setattr(conforming, "_encode", no_encode)
    result = await mcp.call_tool("inspect_image", {"images": [str(wide)]})
    assert result.structured_content is not None
    (report,) = result.structured_content["images"]
    assert report["models"]["wan2.7-image-pro"] == "adjusted: downscaled to 8000×1333 to fit the 8000 px side limit"
    assert report["models"]["wan2.5-i2i-preview"].startswith("refused: aspect ratio 6.00:1")
    assert (decoded, encoded) == ([(9000, 1500)], [])


class MeasuredBudget(decoding.DecodeBudget):
    """A DecodeBudget that remembers the most decodes, and the most bytes, it ever let hold at once."""

    def __init__(self) -> None:
        super().__init__()
        self._measure = threading.Lock()
        self._holding: dict[int, int] = {}
        self.most_at_once = 0
        self.most_bytes = 0

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Generator[decoding.Holding]:
        with super().hold(nbytes) as holding:
            with self._measure:  # counted inside the budget's hold: never more than the budget let in
                self._holding[id(holding)] = nbytes
                self.most_at_once = max(self.most_at_once, len(self._holding))
                self.most_bytes = max(self.most_bytes, sum(self._holding.values()))
            try:
                yield holding
            finally:
                with self._measure:
                    del self._holding[id(holding)]


async def test_decodes_held_at_once_across_calls_never_exceed_the_budget(
    mcp: Client, make_image: ImageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 900×700 PNG's preview is counted as ~14.5 MB and its check as sent ~10.5 MB (with the 8 MB any decode
    holds): within 20 MB, one decode at a time."""
    monkeypatch.setattr(decoding.DecodeBudget, "BYTES", 20_000_000)
    server = imaging()  # the runtime the server's lifespan installed
    budget = MeasuredBudget()
    monkeypatch.setattr(server, "decodes", budget)
    monkeypatch.setattr(server, "checked", decoding.CheckedFiles())
    photos = [str(make_image(f"photo-{i}.png", (900, 700), colour=(i, 90, 200))) for i in range(4)]
    results: list[CallToolResult] = []

    async def call(tool: str, arguments: dict[str, Any]) -> None:
        results.append(await mcp.call_tool(tool, arguments))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(call, "inspect_image", {"images": photos})
            group.start_soon(call, "edit_image", {"prompt": "fuse them", "images": photos, "size": "1K"})
            group.start_soon(call, "inspect_image", {"images": photos[::-1]})
    assert [result.is_error for result in results] == [False] * 3, [text(result) for result in results]
    assert 0 < budget.most_bytes <= 20_000_000
    assert budget.most_at_once == 1


@pytest.mark.parametrize("value", [0, 9])
async def test_an_exif_orientation_that_is_none_of_the_eight_is_taken_as_upright(
    value: int, mcp: Client, tmp_path: Path
) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = value
    Image.new("RGB", (600, 400), (9, 90, 9)).save(tmp_path / "odd.jpg", exif=exif)
    inspected = await mcp.call_tool("inspect_image", {"images": [str(tmp_path / "odd.jpg")]})
    assert inspected.structured_content is not None, inspected.content
    (report,) = inspected.structured_content["images"]
    assert (report["width"], report["height"], report["orientation"]) == (600, 400, 1)
    assert report["models"]["wan2.7-image-pro"] == "as is"


async def test_a_large_lossless_image_over_the_file_limit_is_judged_as_the_jpeg_edit_sends(
    mcp: Client, make_image: ImageFactory
) -> None:
    """Over 16 Mpx a lossless image that must change is sent as JPEG: the verdict must not offer PNG first."""
    scan = make_image("scan.tif", (5000, 4000), fmt="TIFF", colour=(30, 90, 150))  # 60 MB: over 20 MB
    result = await mcp.call_tool("inspect_image", {"images": [str(scan)]})
    assert result.structured_content is not None
    (report,) = result.structured_content["images"]
    verdict = report["models"]["wan2.7-image-pro"]
    prepared = prepare_image(str(scan), 1, SPECS["wan2.7-image-pro"].image, scan.parent)
    assert prepared.format == "JPEG"
    assert "sent as JPEG (quality 95)" in verdict
    assert "re-encoded to fit the 20 MB file limit (JPEG, else smaller: settled when encoded)" in verdict, verdict


async def test_boxes_are_said_to_be_read_in_the_orientation_shown_only_where_boxes_can_be_given(
    mcp: Client, make_image: ImageFactory
) -> None:
    turned = make_image("turned.jpg", (600, 400), exif_orientation=6)
    inspected = await mcp.call_tool("inspect_image", {"images": [str(turned)]})
    assert inspected.structured_content is not None
    verdicts = inspected.structured_content["images"][0]["models"]
    for name, spec in SPECS.items():
        assert verdicts[name].startswith("adjusted: EXIF orientation 6 applied"), name
        assert ("boxes are read in the orientation shown" in verdicts[name]) == bool(spec.max_boxes_per_image), name

    without_boxes = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(turned)], "model": "wan2.6-image"})
    boxed = await mcp.call_tool(
        "edit_image", {"prompt": "x", "images": [str(turned)], "bbox_list": [[[10, 10, 200, 300]]], "size": "1K"}
    )
    unboxed_wan27 = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(turned)], "size": "1K"})
    for result in (without_boxes, boxed, unboxed_wan27):
        assert result.structured_content is not None, text(result)
        assert "image 1: EXIF orientation 6 applied" in result.structured_content["adjustments"]
    assert "image 1: bbox_list boxes are read in the orientation shown" in boxed.structured_content["adjustments"]
    for result in (without_boxes, unboxed_wan27):
        assert not any("boxes" in note for note in result.structured_content["adjustments"])
