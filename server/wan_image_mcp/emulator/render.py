"""Deterministic stand-ins for generated images: the inputs composed, boxes drawn, the prompt written on
top, and a clear EMULATED banner, at the size the real API would return. A person can see what happened."""

from __future__ import annotations

import hashlib
import io
import math
import re
import textwrap
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import NamedTuple

from ..core.images.pillow import Image, ImageDraw, ImageFont
from ..core.images.runtime import imaging

_CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)
_DIMENSIONS_IN_URL = re.compile(r"(\d{3,4})[-x*_](\d{3,4})")

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


class Shown(NamedTuple):
    """An input image as drawn: a copy at most ``SHOWN_SIDE`` px, and the size its boxes are given in."""

    image: Image.Image
    size: tuple[int, int]


SHOWN_SIDE = 1024


def shown(data: bytes) -> Shown:
    """An input image's bytes decoded small (JPEG by libjpeg's scaling, others reduced by whole factors before
    resampling), for drawing into outputs. Raises what Pillow raises for data it cannot read."""
    imaging()  # Pillow's guard set before decoding
    with Image.open(io.BytesIO(data)) as opened:
        size = opened.size
        opened.draft("RGB", (SHOWN_SIDE, SHOWN_SIDE))
        image = opened.convert("RGB")
    image.thumbnail((SHOWN_SIDE, SHOWN_SIDE))  # pyright: ignore[reportUnknownMemberType]
    return Shown(image, size)


@cache
def _cjk_font_path() -> str | None:
    return next((path for path in _CJK_FONTS if Path(path).exists()), None)


@cache
def _font(size: int) -> Font:
    path = _cjk_font_path()
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def _legible(text: str) -> str:
    """Without a CJK font, Pillow draws CJK characters as boxes: say so in words instead."""
    if _cjk_font_path() or all(ord(c) < 0x2E80 for c in text):
        return text
    latin = "".join(c if ord(c) < 0x2E80 else " " for c in text).split()
    return f"[prompt of {len(text)} characters, in a script this machine has no font for] " + " ".join(latin)


def _colour(*parts: object) -> tuple[int, int, int]:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return (60 + digest[0] % 140, 60 + digest[1] % 140, 60 + digest[2] % 140)


def placeholder(url: str) -> Shown:
    """Stands in for a remote image the emulator cannot fetch (no internet): sized from the URL when it says."""
    match = _DIMENSIONS_IN_URL.search(url)
    width, height = (int(match[1]), int(match[2])) if match else (1024, 1024)
    image = Image.new("RGB", (width, height), _colour(url))
    draw = ImageDraw.Draw(image)
    label = "remote image (not fetched):\n" + textwrap.fill(url.rsplit("/", 1)[-1][:120], 40)
    draw.multiline_text((width // 20, height // 8), label, fill="white", font=_font(max(14, width // 30)))
    return Shown(image, image.size)


def render(
    *,
    size: tuple[int, int],
    model: str,
    prompt: str,
    inputs: Sequence[Shown],
    boxes: Sequence[Sequence[Sequence[int]]] | None,
    index: int,
    total: int,
    seed: int | None,
    watermark: bool,
) -> bytes:
    """Output image ``index`` of ``total`` as PNG bytes at ``size``: the ``inputs`` tiled with ``boxes`` drawn,
    the prompt underneath, an EMULATED banner naming model, size, index and seed. Raises nothing."""
    width, height = size
    canvas = Image.new("RGB", size, _colour(model, prompt, seed, index))
    draw = ImageDraw.Draw(canvas)
    unit = max(12, min(width, height) // 40)

    banner = f"EMULATED · {model} · {width}x{height} · image {index}/{total}" + (
        f" · seed {seed}" if seed is not None else ""
    )
    draw.rectangle((0, 0, width, unit * 2), fill=(20, 20, 20))
    draw.text((unit // 2, unit // 3), banner, fill=(255, 210, 0), font=_font(unit))

    text_height = unit * 8
    area = (0, unit * 2, width, max(unit * 2 + 1, height - text_height))
    if inputs:
        _tile(canvas, draw, inputs, boxes, area, unit)

    chars = max(10, int(width / (unit * 0.62)))
    lines = textwrap.wrap(_legible(prompt), chars)[:6]
    draw.multiline_text((unit // 2, height - text_height + unit // 2), "\n".join(lines), fill="white", font=_font(unit))
    if watermark:
        mark = "AI Generated"
        draw.text((width - unit * 8, height - unit * 2), mark, fill=(255, 255, 255), font=_font(unit))

    out = io.BytesIO()
    canvas.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _tile(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    inputs: Sequence[Shown],
    boxes: Sequence[Sequence[Sequence[int]]] | None,
    area: tuple[int, int, int, int],
    unit: int,
) -> None:
    left, top, right, bottom = area
    cols = math.ceil(math.sqrt(len(inputs)))
    rows = math.ceil(len(inputs) / cols)
    cell_w, cell_h = (right - left) // cols, (bottom - top) // rows
    for i, (source, (source_w, source_h)) in enumerate(inputs):
        scale = min((cell_w - unit) / source_w, (cell_h - unit) / source_h)  # boxes are in the input's own pixels
        if scale <= 0:
            continue
        thumb_size = (max(1, int(source_w * scale)), max(1, int(source_h * scale)))
        thumb = source.resize(thumb_size)  # pyright: ignore[reportUnknownMemberType]
        x = left + (i % cols) * cell_w + (cell_w - thumb.width) // 2
        y = top + (i // cols) * cell_h + (cell_h - thumb.height) // 2
        canvas.paste(thumb, (x, y))
        label = f"image {i + 1}"
        draw.rectangle(draw.textbbox((x + 4, y + 4), label, font=_font(unit)), fill=(20, 20, 20))
        draw.text((x + 4, y + 4), label, fill=(255, 255, 255), font=_font(unit))
        for box in boxes[i] if boxes and i < len(boxes) else ():
            if len(box) == 4:
                x1, y1, x2, y2 = (int(v * scale) for v in box)
                draw.rectangle((x + x1, y + y1, x + x2, y + y2), outline=(255, 0, 0), width=max(2, unit // 6))
