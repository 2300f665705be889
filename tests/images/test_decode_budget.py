"""The decode budget counts what preparing an image really holds, per format, and refuses what would not fit.

What each format costs is measured here as behaviour, not speed: the peak RSS over idle of preparing one image
in a fresh process is at most what the budget counts for it. The figures at the largest sizes admitted are in
``bench/run.py --only-decode-peaks``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from PIL import Image

from tests.support.helpers import text
from wan_image_mcp.core.errors import InvalidRequest
from wan_image_mcp.core.images import decoding
from wan_image_mcp.core.images.inputs import prepare_image
from wan_image_mcp.core.specs import SPECS
from wan_image_mcp.emulator import EmulatorState

LIMITS = SPECS["wan2.7-image-pro"].image

MEASURE = r"""
import json, os, sys
from pathlib import Path
from PIL import Image
from wan_image_mcp.core.images.conforming import conform_bytes, plan
from wan_image_mcp.core.images.decoding import open_image
from wan_image_mcp.core.errors import InvalidRequest
from wan_image_mcp.core.images.inputs import prepare_image
from wan_image_mcp.core.specs import ImageLimits, Range

def kb(field):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
    return int(line.split()[1])

def refuse(message):
    return InvalidRequest([])

Image.init()
found = {}
for arg in sys.argv[1:]:
    side, path = arg.split("=", 1)
    limits = ImageLimits(frozenset({"JPEG", "PNG", "BMP", "WEBP"}), Range(240, int(side)), 10_000_000, None)
    with open(path, "rb") as file:
        image, orientation = open_image(file, path, refuse)
        with image:
            todo = plan(image, orientation, os.path.getsize(path), limits, refuse)
            estimate = conform_bytes(image, orientation, todo).peak
    Path("/proc/self/clear_refs").write_text("5")
    idle = kb("VmRSS")
    prepared = prepare_image(path, 1, limits, Path(path).parent)
    del prepared
    found[arg] = [(kb("VmHWM") - idle) * 1024, estimate]
print(json.dumps(found))
"""
"""Run in a fresh process: per ``side=path``, the peak RSS over idle of preparing the image for limits of that
side, and what the budget counts for it (Linux: the peak is reset through ``/proc/self/clear_refs``)."""


def gradient(side: int) -> Image.Image:
    grey = Image.linear_gradient("L").resize((side, side))  # pyright: ignore[reportUnknownMemberType]
    return Image.blend(grey, grey.transpose(Image.Transpose.ROTATE_90), 0.5)


def rgb(side: int) -> Image.Image:
    grey = gradient(side)
    return Image.merge("RGB", (grey, grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT), grey))


def palette(side: int) -> Image.Image:
    image = gradient(side).convert("P")
    image.putpalette([channel for i in range(256) for channel in (i, 255 - i, 90)])
    return image


def two_colours(side: int) -> Image.Image:
    image = palette(side).point([i // 128 for i in range(256)])  # pyright: ignore[reportUnknownMemberType]
    image.putpalette([0, 0, 0, 255, 255, 255])
    return image


def grey_16(side: int) -> Image.Image:
    return gradient(side).convert("I").point(lambda v: v * 257).convert("I;16")  # pyright: ignore[reportUnknownMemberType]


def rgba(side: int) -> Image.Image:
    image = rgb(side).convert("RGBA")
    image.putalpha(gradient(side))
    return image


FORMATS: dict[str, tuple[str, Callable[[int], Image.Image], dict[str, Any]]] = {
    "jpeg": ("jpg", rgb, {"quality": 90}),
    "progressive-jpeg-444": ("jpg", rgb, {"progressive": True, "subsampling": 0}),
    "png-rgb": ("png", rgb, {"compress_level": 1}),
    "png-rgba": ("png", rgba, {"compress_level": 1}),
    "png-16-bit-grey": ("png", grey_16, {"compress_level": 1}),
    "png-palette": ("png", palette, {"compress_level": 1}),
    "png-1-bit-palette": ("png", lambda side: two_colours(side), {"bits": 1}),
    "png-1-bit": ("png", lambda side: gradient(side).convert("1"), {}),
    "gif": ("gif", palette, {}),
    "webp-lossless": ("webp", rgb, {"lossless": True, "quality": 0, "method": 0}),
    "webp-lossy": ("webp", rgb, {"quality": 80, "method": 0}),
    "tiff-lzw": ("tif", rgb, {"compression": "tiff_lzw"}),
    "tiff-one-strip": ("tif", rgb, {"compression": "tiff_adobe_deflate", "strip_size": 2**31}),
}


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS is read from Linux's /proc")
def test_the_budget_counts_at_least_what_preparing_each_format_holds(tmp_path: Path) -> None:
    """Each format at 2400 px, sent within the side limit (decoded in full, checked or converted) and downscaled
    to a 1600 px limit (decoded, converted, resized in bands, encoded): what it held, over what it held before,
    is never more than the budget counted for it."""
    args: list[str] = []
    for name, (extension, make, options) in FORMATS.items():
        path = tmp_path / f"{name}.{extension}"
        make(2400).save(path, **options)
        args += [f"8000={path}", f"1600={path}"]
    done = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, list[int]] = json.loads(done.stdout)
    figures = {
        Path(arg).name + arg[:5]: f"{peak / 1e6:.1f} MB of {estimate / 1e6:.1f}"
        for arg, (peak, estimate) in found.items()
    }
    assert all(peak <= estimate for peak, estimate in found.values()), "\n".join(
        f"{k}: {v}" for k, v in figures.items()
    )
    assert len(found) == 2 * len(FORMATS)


def test_an_image_over_the_budget_is_refused_naming_it_its_size_and_the_limit_and_the_size_suggested_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lossless WebP holds 16 bytes a pixel while it decodes (libwebp's canvas and frames), and any decode
    some 8 MB more: 72 MB at 2000 px."""
    monkeypatch.setattr(decoding.DecodeBudget, "BYTES", 50_000_000)
    rgb(2000).save(tmp_path / "tiny.webp", lossless=True, quality=0, method=0)
    with pytest.raises(InvalidRequest) as caught:
        prepare_image(str(tmp_path / "tiny.webp"), 3, LIMITS, tmp_path)
    (problem,) = caught.value.problems
    assert (problem.argument, problem.image) == ("images", 3)
    found = re.fullmatch(
        r"2000×2000 px WEBP \(RGB\) would take about 72 MB to decode and convert, over the 50 MB one image may use: "
        r"send it at about (\d+)×\1 px or smaller",
        problem.message,
    )
    assert found is not None, problem.message
    side = int(found[1])
    rgb(side).save(tmp_path / "smaller.webp", lossless=True, quality=0, method=0)
    assert prepare_image(str(tmp_path / "smaller.webp"), 3, LIMITS, tmp_path).width == side


def test_a_tiny_11000_px_palette_png_is_refused_for_what_converting_it_costs(tmp_path: Path) -> None:
    """The issue's case: 121 Mpx of 1-bit palette in a tiny file, converted to RGB (484 MB) beside itself."""
    image = Image.new("P", (11000, 11000))
    image.putpalette([0, 0, 0, 255, 255, 255])
    image.save(tmp_path / "tiny.png", bits=1)
    del image
    assert (tmp_path / "tiny.png").stat().st_size < 200_000
    with pytest.raises(InvalidRequest) as caught:
        prepare_image(str(tmp_path / "tiny.png"), 1, LIMITS, tmp_path)
    message = caught.value.problems[0].message
    assert message.startswith("11000×11000 px PNG (P) would take about ")
    assert "MB to decode and convert, over the 600 MB one image may use" in message


@pytest.mark.anyio
async def test_edit_and_inspect_refuse_an_image_over_the_budget_before_anything_is_sent(
    mcp: Client, tmp_path: Path, emulator: EmulatorState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoding.DecodeBudget, "BYTES", 50_000_000)
    rgb(2000).save(tmp_path / "tiny.webp", lossless=True, quality=0, method=0)
    rgb(640).save(tmp_path / "photo.png")
    images = [str(tmp_path / "photo.png"), str(tmp_path / "tiny.webp")]
    edited = await mcp.call_tool("edit_image", {"prompt": "make the car blue", "images": images})
    assert edited.is_error
    assert "images (image 2): 2000×2000 px WEBP (RGB) would take about 72 MB" in text(edited)
    assert "Nothing was sent" in text(edited)
    assert not [r for r in emulator.requests if r.method == "POST"]
    inspected = await mcp.call_tool("inspect_image", {"images": images})
    assert inspected.structured_content is not None
    photo, refused = inspected.structured_content["images"]
    assert "problem" not in photo and photo["width"] == 640
    assert refused["problem"].startswith("2000×2000 px WEBP (RGB) would take about 72 MB to decode and convert")


@pytest.mark.anyio
async def test_inspect_image_judges_the_budget_per_model_as_edit_image_does(
    mcp: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 5500×2000 px PNG is checked as it is for wan2.7 (52 MB) and downscaled to 5000 px for wan2.5 (~130 MB):
    with 80 MB to spend (the preview takes ~67), the verdicts differ as the edits would."""
    monkeypatch.setattr(decoding.DecodeBudget, "BYTES", 80_000_000)
    rgb(2000).resize((5500, 2000)).save(tmp_path / "poster.png")  # pyright: ignore[reportUnknownMemberType]
    inspected = await mcp.call_tool("inspect_image", {"images": [str(tmp_path / "poster.png")]})
    assert inspected.structured_content is not None
    (report,) = inspected.structured_content["images"]
    assert report["models"]["wan2.7-image-pro"] == "as is"
    refused = report["models"]["wan2.5-i2i-preview"]
    assert refused.startswith("refused: 5500×2000 px PNG (RGB) would take about "), refused
    with pytest.raises(InvalidRequest, match="over the 80 MB one image may use"):
        prepare_image(str(tmp_path / "poster.png"), 1, SPECS["wan2.5-i2i-preview"].image, tmp_path)
