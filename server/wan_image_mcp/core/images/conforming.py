"""Conforming an image to a model's ``ImageLimits``: decided from its header (``plan``), then done
(``conform``) within the shared decode budget.

Fixed and reported as adjustments: EXIF orientation applied, alpha flattened onto its background (white unless
the caller chose another: ``background``), 16- and 32-bit grey
scaled to 8 bits, formats the API does not read converted, images over the side limit downscaled (bbox
coordinates follow through ``PreparedImage.scale``), files over the byte limit re-encoded (PNG, then JPEG,
then downscaled). Refused with a ``Problem``: too small, aspect ratio out of range, or a file that cannot be
brought under the byte limit.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import InvalidRequest
from ..specs import MAX_DECODE_PIXELS, ImageLimits
from .background import WHITE, Background
from .decoding import (
    DECODE_OVERHEAD_BYTES,
    DecodeBudget,
    decode,
    decoder_bytes,
    open_image,
    pixel_bytes,
    too_costly,
)
from .pixels import DEEP_MODES, DEPTH_NAMES, as_sent, as_sent_bytes, has_alpha, resize
from .references import PreparedImage, RefKind, kept
from .runtime import hold_decoded

if TYPE_CHECKING:
    from PIL import Image

_JPEG_QUALITY = 95
_DOWNSCALED_PIXELS = 40_000_000
"""An image downscaled to fit the side limit is downscaled to at most this many pixels too. With an input image
the models make at most 2048×2048 px (4.2 Mpx), so 40 Mpx still holds nine times what any output can show; the
8000×8000 px the limit allows would hold a 9000 px PNG's 324 MB decode beside a 256 MB result, over the 600 MB
an edit of nine such images may take, and upload 60% more for nothing the model uses."""
_LOSSLESS_PIXELS = 16_000_000
"""Above this many pixels sent, a lossless image that must be re-encoded is sent as JPEG (quality 95, colour at
full resolution), not PNG: Pillow's PNG encoder tries four row filters on every row, so an 8000 px PNG took
1.3 s to encode where JPEG takes 0.15 s, and nine of them were a third of a 44 s edit."""


@dataclass(frozen=True)
class Plan:
    """What conforming an image to some limits does, decided from its header alone."""

    format: str
    original: tuple[int, int]
    """Size as the user sees it (EXIF orientation applied)."""
    size: tuple[int, int]
    """Size sent, before any shrinking to fit the file limit."""
    scale: float
    fit: tuple[int, int] | None
    """The size to resize to, in the stored orientation, when over the side limit."""
    notes: tuple[str, ...]
    """Every adjustment known from the header (the file limit's are known only once encoded)."""
    as_is: bool
    """Nothing to change: the file is sent as it is, once it is found whole."""
    estimated_bytes: int
    """The file's size scaled by the pixels sent: roughly what re-encoding it the same way gives."""
    encoding: str
    """The format it is re-encoded in, unless sent as it is: JPEG for a JPEG or a lossless image of more than
    ``_LOSSLESS_PIXELS``, else PNG (the file limit may still turn a PNG into a JPEG, known once encoded)."""
    background: Background = WHITE
    """What transparency is flattened onto."""


def plan(
    image: Image.Image,
    orientation: int,
    size: int,
    limits: ImageLimits,
    problem: Callable[[str], InvalidRequest],
    *,
    raw: tuple[int, int] | None = None,
    background: Background = WHITE,
) -> Plan:
    """Decide from an opened image's header what conforming it to ``limits`` does, its transparency flattened
    onto ``background``; raise what makes it refused. ``raw``: plan as for an image of that size, stored as this
    one is."""
    fmt = image.format or "unknown"
    raw = raw or image.size
    turn = orientation not in (1, None)
    original = width, height = (raw[1], raw[0]) if orientation in (5, 6, 7, 8) else raw
    short, long = min(width, height), max(width, height)
    if short < limits.side.lo:
        raise problem(f"{width}×{height} px is too small: each side must be at least {limits.side.lo} px")
    if limits.max_ratio is not None and long / short > limits.max_ratio:
        raise problem(f"aspect ratio {long / short:.2f}:1 ({width}×{height}) is outside {limits.ratio_text()}")
    alpha = has_alpha(image)
    deep = image.mode in DEEP_MODES
    convert = fmt not in limits.formats
    scale = min(1.0, limits.side.hi / long)
    notes: list[str] = []
    if turn:
        notes.append(f"EXIF orientation {orientation} applied")
    if alpha:
        notes.append(f"alpha channel flattened onto {background.name}")
    if deep:
        notes.append(f"{DEPTH_NAMES[image.mode]} scaled to 8 bits")
    if convert:
        if getattr(image, "is_animated", False):  # not n_frames: counting walks every frame (a GIF's in Python)
            notes.append(f"{fmt} has more than one frame: the first is used")
        notes.append(f"{fmt} converted (the API reads {', '.join(sorted(limits.formats))})")
    fit = None
    capped = scale < 1.0 and width * height * scale * scale > _DOWNSCALED_PIXELS
    if capped:
        scale = math.sqrt(_DOWNSCALED_PIXELS / (width * height))
    if scale < 1.0:
        to_int = math.floor if capped else round  # the cap is a ceiling
        width, height = max(1, to_int(width * scale)), max(1, to_int(height * scale))
        if min(width, height) < limits.side.lo:
            raise problem(
                f"{long}×{short} px cannot fit: sides must be {limits.side.lo}-{limits.side.hi} px "
                "and shrinking the long side makes the short one too small"
            )
        fit = (height, width) if orientation in (5, 6, 7, 8) else (width, height)  # in the stored orientation
        cap = f" (and at most {_DOWNSCALED_PIXELS // 1_000_000} Mpx: no output shows more)" if capped else ""
        notes.append(f"downscaled to {width}×{height} to fit the {limits.side.hi} px side limit{cap}")
    as_is = not notes and size <= limits.max_bytes
    encoding = "JPEG" if fmt == "JPEG" else "PNG"
    if encoding == "PNG" and not as_is and width * height > _LOSSLESS_PIXELS:
        encoding = "JPEG"
        pixels = width * height / 1e6
        notes.append(f"sent as JPEG (quality {_JPEG_QUALITY}): a {pixels:.0f} Mpx PNG takes seconds to encode")
    return Plan(
        format=fmt,
        original=original,
        size=(width, height),
        scale=scale,
        fit=fit,
        notes=tuple(notes),
        as_is=as_is,
        estimated_bytes=round(size * (width * height) / (raw[0] * raw[1])),
        encoding=encoding,
        background=background,
    )


def conform(
    data: bytes | io.BufferedReader,
    *,
    index: int,
    kind: RefKind,
    source: str,
    limits: ImageLimits,
    problem: Callable[[str], InvalidRequest],
    background: Background = WHITE,
) -> PreparedImage:
    """Check an image against ``limits`` and fix what can be fixed, transparency flattened onto ``background``.
    ``data`` is the file's bytes or the open file; returns what is sent for image ``index``; raises
    ``problem(...)``, an InvalidRequest, for what is refused.

    Decoding is the costly part, so what must be done is decided from the header first (``plan``). Every image is
    decoded before it is sent, as it is or not: a PNG whose chunks all match their CRCs can still hold too little
    image data for its header (Pillow's ``verify`` passed one with 100 bytes for 1000×1000 px), and a cut JPEG is
    found by decoding it. An image sent as it is decodes at 1/8 scale when it is a JPEG (libjpeg still reads
    every coefficient, and refuses a cut file, at a fraction of the cost and memory), in full otherwise; a local
    file found whole is remembered (``ImageRuntime.checked``), so it is decoded once per server, not per call. An open
    file's bytes are not kept but hashed (``payload`` None, ``sha256`` set) to be read again when sent. A JPEG
    that must shrink is decoded near its target size by libjpeg's DCT scaling."""
    file = io.BytesIO(data) if isinstance(data, bytes) else data
    size = len(data) if isinstance(data, bytes) else os.fstat(data.fileno()).st_size
    opened = _Opened(*open_image(file, source, problem))
    todo = plan(opened.image, opened.orientation, size, limits, problem, background=background)
    cost = conform_bytes(opened.image, opened.orientation, todo)
    if cost.peak > DecodeBudget.BYTES:
        image = opened.take()
        image.close()
        raise problem(too_costly(image, cost.peak))
    turned = opened.orientation not in (1, None)
    base = PreparedImage(index=index, kind=kind, source=source, original_size=todo.original, turned=turned)
    if todo.as_is:
        return _sent_as_is(base, opened, data, size, todo, cost, problem)
    return _reencoded(base, opened, size, todo, limits, cost, problem)


@dataclass(frozen=True)
class Cost:
    """What conforming one image holds at once, in bytes, decided from its header with its plan."""

    peak: int
    """At its peak: the decode (pixels and the decoder's own buffers), then making it as sent (copies, bands,
    result), then encoding (``ENCODE_BYTES`` a pixel sent)."""
    encoding: int
    """Once the decoded original is freed: the image as sent and its encoding."""


ENCODE_BYTES = 12
"""Bytes a pixel sent that encoding holds at its peak: the image as sent (4) and a copy shrunk to fit the file
limit (4, while the first is resized), a band or whole-resize intermediate (up to 1), and one encoded file
(JPEG at quality 95 or PNG of noise: up to 3). A file too large is dropped before the next is encoded."""


def conform_bytes(image: Image.Image, orientation: int, todo: Plan, raw: tuple[int, int] | None = None) -> Cost:
    """What conforming an opened image (not yet drafted) as ``todo`` plans holds at its peak (``Cost``), from its
    header alone; ``raw``: as for an image of that size. The decode budget holds this much while it runs."""
    raw = raw or image.size
    decoder = DECODE_OVERHEAD_BYTES + decoder_bytes(image, raw)
    decoded = raw
    if todo.format == "JPEG" and (todo.as_is or todo.fit is not None):  # decoded at a draft size
        decoded = _draft_size(raw, _eighth(raw) if todo.as_is else _scaled(raw, todo.scale))
    stored = decoded[0] * decoded[1] * pixel_bytes(image.mode)
    if todo.as_is:
        return Cost(stored + decoder, 0)
    sent = DECODE_OVERHEAD_BYTES + todo.size[0] * todo.size[1] * ENCODE_BYTES
    shaped = as_sent_bytes(image, orientation, todo.fit or decoded, decoded, background=todo.background)
    work = DECODE_OVERHEAD_BYTES + stored + shaped
    return Cost(max(stored + decoder, work, sent), sent)


def _eighth(raw: tuple[int, int]) -> tuple[int, int]:
    return max(1, raw[0] // 8), max(1, raw[1] // 8)


def _scaled(raw: tuple[int, int], scale: float) -> tuple[int, int]:
    return math.ceil(raw[0] * scale), math.ceil(raw[1] * scale)


def _draft_size(raw: tuple[int, int], wanted: tuple[int, int]) -> tuple[int, int]:
    """The size libjpeg decodes a JPEG of ``raw`` at when Pillow's ``draft`` asks for ``wanted``: scaled by the
    largest of 1/8, 1/4, 1/2 and 1 that keeps it at least that large."""
    most = min(raw[0] // max(1, wanted[0]), raw[1] // max(1, wanted[1]))
    scale = next(s for s in (8, 4, 2, 1) if most >= s or s == 1)
    return -(-raw[0] // scale), -(-raw[1] // scale)


def largest_square(image: Image.Image, limits: ImageLimits) -> int:
    """The largest square side at which an image stored as ``image`` is (format, mode, transparency, the
    decoder's buffers) can be conformed to ``limits`` within the decode budget and Pillow's guard."""

    def fits(side: int) -> bool:
        try:
            todo = plan(image, 1, 0, limits, _no_problem, raw=(side, side))
        except InvalidRequest:
            return False
        return conform_bytes(image, 1, todo, (side, side)).peak <= DecodeBudget.BYTES

    lo, hi = 0, math.isqrt(MAX_DECODE_PIXELS)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def _no_problem(message: str) -> InvalidRequest:
    return InvalidRequest([])


@dataclass(eq=False)
class _Opened:
    """An opened image handed to the step that decodes it, which ``take``s it: no other reference then keeps its
    pixels alive once that step has freed them (while they are still counted in the decode budget)."""

    _image: Image.Image | None
    orientation: int

    @property
    def image(self) -> Image.Image:
        """The image, not yet taken."""
        assert self._image is not None
        return self._image

    def take(self) -> Image.Image:
        """The image, which this holder no longer references."""
        image, self._image = self.image, None
        return image


def _sent_as_is(
    base: PreparedImage,
    opened: _Opened,
    data: bytes | io.BufferedReader,
    size: int,
    todo: Plan,
    cost: Cost,
    problem: Callable[[str], InvalidRequest],
) -> PreparedImage:
    """``base`` completed for an image with nothing to change (``todo.as_is``), once decoding proves it whole:
    ``data`` itself as the payload or, for an open file, its sha256 (the file is read again when sent). Raises
    ``problem(...)`` for damaged data."""
    image = opened.take()
    if todo.format == "JPEG":  # libjpeg still reads every coefficient at 1/8 scale: a cut file is found
        image.draft(image.mode, _eighth(image.size))
    with hold_decoded(cost.peak):
        decode(image.load, problem)  # every input is decoded before it is sent: headers and CRCs prove little
        del image  # its pixels are not needed: the file is sent as it is
    digest = None
    if not isinstance(data, bytes):
        data.seek(0)
        digest = hashlib.file_digest(data, "sha256").hexdigest()
    width, height = todo.size
    payload = data if isinstance(data, bytes) else None
    return replace(base, payload=payload, sha256=digest, width=width, height=height, format=todo.format, bytes=size)


def _reencoded(
    base: PreparedImage,
    opened: _Opened,
    size: int,
    todo: Plan,
    limits: ImageLimits,
    cost: Cost,
    problem: Callable[[str], InvalidRequest],
) -> PreparedImage:
    """``base`` completed for an image that must change: decoded (near its target size, for a JPEG that must
    shrink), made as it is sent (``as_sent``), then encoded under the byte limit (as ``todo.encoding``; a PNG
    over it as JPEG; then downscaled), every adjustment noted. Raises ``problem(...)`` for damaged data, or for
    a file that cannot be brought under the limit without a side falling under the side limit."""
    image, fmt = opened.take(), todo.format
    raw, (width, height), scale = image.size, todo.size, todo.scale
    if todo.fit is not None and fmt == "JPEG":
        image.draft(image.mode, _scaled(raw, scale))
    out_fmt = todo.encoding
    full_colour = fmt != "JPEG"  # a lossless image's colour edges (text, lines) keep their resolution
    # A PNG bound to be over the file limit goes straight to JPEG (estimated from the file's own bytes a pixel,
    # with a margin: a 9000 px photo's PNG is several times the limit, and encoding it first cost seconds).
    fallback = out_fmt == "PNG" and todo.estimated_bytes > 2 * limits.max_bytes
    if fallback:
        out_fmt = "JPEG"
    with hold_decoded(cost.peak) as held:
        decode(image.load, problem)
        image = as_sent(image, opened.orientation, resize_to=todo.fit, background=todo.background)
        held.keep(cost.encoding)  # the decoded original is gone: the next decode can start beside this encode
        payload = _encode(image, out_fmt, full_colour=full_colour)
        if not fallback and len(payload) > limits.max_bytes and out_fmt == "PNG":
            payload = b""  # one encoded file at a time
            fallback, out_fmt, payload = True, "JPEG", _encode(image, "JPEG", full_colour=full_colour)
        shrunk = False
        while len(payload) > limits.max_bytes:
            factor = math.sqrt(limits.max_bytes / len(payload)) * 0.95
            payload = b""
            width, height = max(1, round(width * factor)), max(1, round(height * factor))
            image = resize(image, width, height)
            scale *= factor
            shrunk = True
            if min(width, height) < limits.side.lo:
                raise problem(f"cannot bring the file under {limits.max_bytes // 1_000_000} MB")
            payload = _encode(image, out_fmt, full_colour=full_colour)
    notes = list(todo.notes)
    if size > limits.max_bytes or fallback or shrunk:
        how = f"re-encoded as {out_fmt}" + (f" and downscaled to {width}×{height}" if shrunk else "")
        notes.append(f"{how} to fit the {limits.max_bytes // 1_000_000} MB file limit")
    return replace(
        base,
        **kept(payload),
        width=width,
        height=height,
        format=out_fmt,
        bytes=len(payload),
        scale=scale,
        adjustments=tuple(f"image {base.index}: {note}" for note in notes),
    )


def _encode(image: Image.Image, fmt: str, *, full_colour: bool) -> bytes:
    """``image`` as a ``fmt`` file, in RGB or L: PNG, or JPEG at quality 95 (colour at full resolution when
    ``full_colour``, else at half, as cameras store it)."""
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=_JPEG_QUALITY, subsampling=0 if full_colour else -1)
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()
