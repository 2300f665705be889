"""The pixel work of sending an image: tones in 8 bits, alpha onto its background (white unless chosen), EXIF
orientation applied, and Lanczos resizing in bands of rows. ``as_sent`` is what the API receives, and what the
inspect preview and the gallery's input thumbnails show (``small_as_sent``), so what is seen is what is sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from ..errors import DecodeTooCostly
from .background import WHITE, Background
from .decoding import DECODE_OVERHEAD_BYTES, DecodeBudget, decoded_bytes, decoder_bytes, too_costly
from .runtime import BAND_THREADS, hold_decoded, imaging

if TYPE_CHECKING:
    from PIL import Image
    from PIL.Image import ImagePointTransform


DEEP_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
"""Pillow's modes of more than 8 bits a channel: 16-bit grey PNGs and TIFFs open as I;16, 32-bit ones as I or F.
(16-bit RGB, RGBA and grey with alpha PNGs are read at 8 bits by Pillow itself.)"""
DEPTH_NAMES = dict.fromkeys(("I;16", "I;16B", "I;16L", "I;16N"), "16-bit grey") | {
    "I": "32-bit integer grey",
    "F": "32-bit float grey",
}
_TURNS = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}
"""EXIF orientation -> the transpose that shows the image upright (as ``ImageOps.exif_transpose`` does)."""


def has_alpha(image: Image.Image) -> bool:
    """Whether an opened image has transparency: an alpha channel, or a colour or palette entry marked transparent."""
    return "A" in image.getbands() or "transparency" in image.info


def eight_bits(image: Image.Image) -> Image.Image:
    """A loaded image with its tones in 8 bits a channel. Pillow's own conversions clip 16- and 32-bit grey to
    0-255 (a 16-bit grey of 40000 became white), so they are scaled here: 16-bit data (I;16, and I within
    0-65535) to v / 257; F within 0-1 to v × 255, within 0-255 as it is, within 0-65535 to v / 257; any other
    range stretched from its minimum to its maximum. A grey value marked transparent (PNG tRNS) becomes an alpha
    channel (LA), found at full depth before values merge. A 16-bit RGB tRNS colour (Pillow reads the pixels at
    8 bits, their high bytes, but keeps the colour at 16) is brought to 8 bits the same way. Other images are
    returned as they are."""
    from .pillow import Image, ImageChops

    transparent = image.info.get("transparency")
    if image.mode == "RGB" and isinstance(transparent, tuple):
        colour = cast("tuple[int, ...]", transparent)
        if max(colour) > 255:
            image = image.copy()
            image.info["transparency"] = tuple(v >> 8 for v in colour)
        return image
    if image.mode not in DEEP_MODES:
        return image
    wide = image if image.mode in ("I", "F") else image.convert("I")
    lo, hi = cast("tuple[float, float]", wide.getextrema())
    if image.mode == "F" and lo >= 0 and hi <= 1:
        factor, offset = 255.0, 0.0
    elif image.mode == "F" and lo >= 0 and hi <= 255:
        factor, offset = 1.0, 0.0
    elif lo >= 0 and hi <= 65535:
        factor, offset = 1 / 257, 0.0
    else:
        factor = 255 / (hi - lo) if hi > lo else 0.0
        offset = -lo * factor
    grey = wide.point(_linear(factor, offset + 0.5)).convert("L")  # pyright: ignore[reportUnknownMemberType]
    if image.mode == "F" or not isinstance(transparent, int):
        return grey
    # Clipped at 0 on the way to L: ``above`` is nonzero where v > transparent, ``below`` where v < transparent.
    above = wide.point(_linear(1, -transparent)).convert("L")  # pyright: ignore[reportUnknownMemberType]
    below = wide.point(_linear(-1, transparent)).convert("L")  # pyright: ignore[reportUnknownMemberType]
    opaque = ImageChops.lighter(above, below).point([0] + [255] * 255)  # pyright: ignore[reportUnknownMemberType]
    return Image.merge("LA", (grey, opaque))


def preview_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` shrunk, keeping its aspect, to fit a ``side`` px square (as ``Image.thumbnail`` does)."""
    scale = min(1.0, side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def small_as_sent(image: Image.Image, orientation: int, side: int, background: Background = WHITE) -> Image.Image:
    """An opened image decoded, at most ``side`` px, as it is sent (``as_sent``). A JPEG is decoded near that
    size (libjpeg's scaling, which still reads the whole file), others in full, then reduced by box averaging
    before Lanczos. Raises what Pillow raises for damaged data, and ``DecodeTooCostly`` (a ValueError) for an
    image whose decode and conversion would hold more than ``DecodeBudget.BYTES``. The decode is counted in
    the decode budget until its pixels are freed; ``image`` is closed, with its file."""
    original, target = image.size, preview_size(image.size, side)
    decoder = decoder_bytes(image)
    if image.format == "JPEG":
        image.draft(image.mode, target)
    shown = preview_size(image.size, side)
    stored = DECODE_OVERHEAD_BYTES + decoded_bytes(image)
    cost = max(stored + decoder, stored + as_sent_bytes(image, orientation, shown, background=background))
    if cost > DecodeBudget.BYTES:
        image.close()
        raise DecodeTooCostly(too_costly(image, cost, original))
    with hold_decoded(cost):
        try:
            image.load()
            shown = as_sent(image, orientation, resize_to=preview_size(image.size, side), background=background)
            return shown.copy() if shown is image else shown  # small already: kept apart from what is closed
        finally:
            image.close()  # frees the decoded pixels while they are still counted (and closes the file)


def _linear(factor: float, offset: float) -> Callable[[ImagePointTransform], ImagePointTransform]:
    """v × factor + offset, in the form Pillow applies to I and F images at full depth."""
    return lambda v: v * factor + offset


def as_sent(
    image: Image.Image,
    orientation: int,
    *,
    resize_to: tuple[int, int] | None = None,
    background: Background = WHITE,
) -> Image.Image:
    """A loaded image as it is sent, in RGB or L: tones in 8 bits (``eight_bits``), resized (in its stored
    orientation) when asked, transparency composited onto ``background`` (a grey image onto a colour becomes
    RGB), EXIF ``orientation`` applied. The inspect preview and the gallery's input thumbnails show this too, so
    what is seen is what is sent."""
    from .pillow import Image

    image = eight_bits(image)
    mode = _working_mode(image)
    if image.mode != mode:  # P, 1, CMYK, YCbCr...: resized in a mode that blends
        image = image.convert(mode)  # with alpha LA or RGBA, composited after any resize (alpha premultiplied)
    if resize_to is not None and resize_to != image.size:
        image = resize(image, *resize_to)
    if image.mode in ("LA", "RGBA"):
        if image.mode == "LA" and background.grey is None:
            image = image.convert("RGBA")
        fill = background.rgb if image.mode == "RGBA" else background.grey
        flat = Image.new(image.mode[:-1], image.size, fill)
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    if orientation in _TURNS:
        image = image.transpose(Image.Transpose[_TURNS[orientation]])
    return image


def _working_mode(image: Image.Image) -> str:
    """The mode ``as_sent`` resizes an image of 8 bits a channel in: L or RGB, LA or RGBA with transparency."""
    grey = image.mode in ("1", "L", "LA")
    return ("LA" if grey else "RGBA") if has_alpha(image) else "L" if grey else "RGB"


def as_sent_bytes(
    image: Image.Image,
    orientation: int,
    resize_to: tuple[int, int] | None,
    size: tuple[int, int] | None = None,
    *,
    background: Background = WHITE,
) -> int:
    """Bytes ``as_sent`` holds at its peak beside the decoded image, from an opened image's mode (at ``size``,
    its own by default): full-size copies (16-bit tones brought to 8 bits, a conversion to a mode that blends),
    the resize's reduced image and bands (or the intermediate of a whole resize), the result, and the copies of
    compositing onto ``background`` (a grey image onto a colour: made RGBA first) and turning. Counted in the
    decode budget with the decode."""
    width, height = size or image.size
    pixels, mode = width * height, image.mode
    alpha = has_alpha(image)
    if mode in DEEP_MODES:
        copies = (0 if mode in ("I", "F") else 4) + 4 + 1  # to I, scaled, to L
        if isinstance(image.info.get("transparency"), int):
            copies += 2 * (4 + 1) + 1 + 1 + 4  # above and below (I, then L), their lighter, its mask, LA
        work = 4 if alpha else 1
    else:
        work = 1 if mode in ("1", "L") and not alpha else 4
        copies = 0 if (mode in ("L", "RGB") and not alpha) or mode in ("LA", "RGBA") else work
    out_w, out_h = resize_to or (width, height)
    resizing = (out_w, out_h) != (width, height)
    band = 0
    if resizing:
        factor = int(min(width / out_w, height / out_h) / 3)
        src_w, src_h = (-(-width // factor), -(-height // factor)) if factor >= 2 else (width, height)
        if factor >= 2:
            band += src_w * src_h * work
        # Pillow resizes LA and RGBA premultiplied: a premultiplied copy of what it resizes, and of the result
        premultiplied = 2 if alpha else 1
        if src_w * src_h <= _BANDED_PIXELS or out_h <= _BAND_ROWS:
            band += out_w * src_h * work  # Pillow's horizontal pass, whole
            band += (src_w * src_h + out_w * out_h) * work * (premultiplied - 1)
        else:
            step = src_h / out_h
            rows = math.ceil(_BAND_ROWS * step + 2 * (3 * max(step, 1.0) + 2)) + 2
            in_flight = rows * (src_w + out_w) + 2 * _BAND_ROWS * out_w  # crop, horizontal pass, band: a pair
            band += BAND_THREADS * in_flight * work * premultiplied
    out = out_w * out_h
    after = out * work  # the result
    if alpha:
        grey = work == 1 or mode in ("1", "L", "LA")
        if (grey or mode in DEEP_MODES) and background.grey is None:
            after += out * 8  # made RGBA to take a colour, and the RGB colour it is composited onto
        else:
            after += out * (1 if grey else 4)  # the background it is composited onto
    if orientation in _TURNS:
        after += out * 4
    return pixels * copies + band + after


_BANDED_PIXELS = 16_000_000
_BAND_ROWS = 256


def resize(image: Image.Image, width: int, height: int, *, reducing_gap: float = 3.0) -> Image.Image:
    """Lanczos, after first shrinking by a whole factor with ``reduce`` when the image is ``reducing_gap`` times
    the target or more (box-averaging, far cheaper; at 3 Pillow finds it indistinguishable from Lanczos alone).
    A large image is resampled in bands of rows, each from a crop with the filter's reach around it: Pillow's
    resize makes a whole intermediate image (a 9000 px one, 8000×9000 px, 288 MB, beside the 324 MB original
    and the 256 MB result), a band's is small. Bands differ from one whole resize only in rounding."""
    from .pillow import Image

    lanczos = Image.Resampling.LANCZOS
    factor = int(min(image.width / width, image.height / height) / reducing_gap) if reducing_gap else 0
    if factor >= 2:
        image = image.reduce(factor)
    if image.width * image.height <= _BANDED_PIXELS or height <= _BAND_ROWS:
        return image.resize((width, height), lanczos)  # pyright: ignore[reportUnknownMemberType]
    out = Image.new(image.mode, (width, height))
    step = image.height / height
    reach = 3 * max(step, 1.0) + 2  # Lanczos reaches 3 output pixels each side, in source rows

    def band(y0: int) -> Image.Image:
        y1 = min(height, y0 + _BAND_ROWS)
        top, bottom = max(0, math.floor(y0 * step - reach)), min(image.height, math.ceil(y1 * step + reach))
        box = (0.0, y0 * step - top, float(image.width), y1 * step - top)
        source = image.crop((0, top, image.width, bottom))
        return source.resize((width, y1 - y0), lanczos, box=box)  # pyright: ignore[reportUnknownMemberType]

    starts = range(0, height, _BAND_ROWS)
    pool = imaging().band_pool()
    for first in range(0, len(starts), BAND_THREADS):  # a pair at a time: finished bands never pile up
        pair = starts[first : first + BAND_THREADS]
        for y0, done in zip(pair, [pool.submit(band, y0) for y0 in pair], strict=True):
            out.paste(done.result(), (0, y0))
    return out
