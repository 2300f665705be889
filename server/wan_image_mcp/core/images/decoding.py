"""Decoding images safely, within a budget, and once: every input is decoded before it is sent.

``open_image`` reads a header by content (never by extension) under Pillow's decompression-bomb guard, with
its EXIF orientation; ``decode`` runs a step that reads image data, turning damaged data into the image's
problem. Decoded pixels are counted across every call in a ``DecodeBudget``, and a local file found whole
and sendable as it is is remembered in ``CheckedFiles``, so it is decoded once per server, not per call (the
process's one of each is held by ``runtime.ImageRuntime``). ``verify_whole`` is the check of an image sent as it is.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, cast

from ..errors import InvalidRequest
from ..specs import MAX_DECODE_PIXELS, ImageLimits
from .streams import Bytes, jpeg_scans, png_data

if TYPE_CHECKING:
    from PIL import Image

    from .references import PreparedImage

EXIF_ORIENTATION = 0x0112


DECODE_ERRORS = (OSError, SyntaxError, ValueError)
"""What Pillow raises for a damaged or cut file, on open or on decode."""


def damaged(exc: Exception) -> str:
    """The problem of an image whose data Pillow could not decode."""
    return damaged_because(str(exc))


def damaged_because(why: str) -> str:
    """The problem of an image whose data is found damaged, and why."""
    return f"image data is damaged or truncated ({why})"


def _damaged(problem: Callable[[str], InvalidRequest], exc: Exception) -> InvalidRequest:
    return problem(damaged(exc))


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation of a just-opened image. A PNG's is in an eXIf chunk, which must come before the
    image data; looking further, Pillow would decode the whole image, so a PNG without one read at open is
    taken as upright (by every reader here, so boxes and what is sent agree). A value that is not one of the
    eight orientations is taken as upright too (as ``ImageOps.exif_transpose`` does)."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    value: object = image.getexif().get(EXIF_ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def decode(step: Callable[[], object], problem: Callable[[str], InvalidRequest]) -> None:
    """Run a Pillow step that reads the image data (``load``); damaged data becomes the image's problem."""
    try:
        step()
    except DECODE_ERRORS as exc:
        raise _damaged(problem, exc) from None


def open_image(file: IO[bytes], source: str, problem: Callable[[str], InvalidRequest]) -> tuple[Image.Image, int]:
    """An image opened from ``file`` (its header read, nothing decoded) and its EXIF orientation. Raises the
    image's problem, worded the same for ``edit_image`` and ``inspect_image``."""
    from .pillow import Image, UnidentifiedImageError
    from .runtime import imaging  # here, not at the top: the runtime is made of this module's classes

    imaging()  # Pillow's guard set before the first header is read
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # the guard's limit is the limit
            image = Image.open(file)
            orientation = exif_orientation(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise problem(too_many_pixels(declared_size(file))) from None
    except UnidentifiedImageError:
        raise problem(f"not an image (content of {source!r} is no format Pillow reads)") from None
    except DECODE_ERRORS as exc:
        raise _damaged(problem, exc) from None
    if (why := _refused_stream(image, file)) is not None:
        image.close()
        raise problem(why)
    return image, orientation


def declared_size(file: IO[bytes]) -> tuple[int, int] | None:
    """The size an image's header declares, read as Pillow's open does but without its bomb guard (only the
    header is read, nothing decoded), or None when no format reads it. For the words of a refusal only."""
    from .pillow import Image

    file.seek(0)
    prefix = file.read(16)
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        if accept is not None and not accept(prefix):
            continue
        file.seek(0)
        try:
            with factory(file, "") as image:
                return image.size
        except (*DECODE_ERRORS, IndexError, TypeError):
            continue
    return None


def too_many_pixels(size: tuple[int, int] | None) -> str:
    """An image over the guard, in words: its size, the limit and what to do."""
    side = math.isqrt(MAX_DECODE_PIXELS // 2)
    found = f"{size[0]}×{size[1]} px ({size[0] * size[1]:,} pixels)" if size else "more pixels than that"
    return (
        f"image is {found}, over the {MAX_DECODE_PIXELS:,} pixels this server decodes safely; no model takes a "
        f"side over {side} px (larger inputs are scaled down anyway): scale it down to at most {side} px on its "
        "longer side and pass the smaller file"
    )


MAX_JPEG_SCANS = 64
"""Scans a JPEG may hold: libjpeg's progressive files have 10 (18 in CMYK), other encoders' a few dozen at most;
each scan is decoded over the whole image, and libjpeg itself counts none."""
SCAN_PIXELS = 20 * MAX_DECODE_PIXELS
"""Scans × pixels a JPEG may ask to be decoded: 20 scans of the largest image the guard admits (about 2.6 s of
a core), so a large image may hold fewer scans than a small one."""


def jpeg_scans_allowed(size: tuple[int, int]) -> int:
    """Scans a JPEG of ``size`` may hold (``MAX_JPEG_SCANS``, fewer for a large one: ``SCAN_PIXELS``)."""
    return max(1, min(MAX_JPEG_SCANS, SCAN_PIXELS // max(1, size[0] * size[1])))


def _refused_stream(image: Image.Image, file: IO[bytes]) -> str | None:
    """Why an opened image is refused from its bytes before it is decoded, or None: a JPEG with more scans
    than its size allows (``jpeg_scans``), a PNG whose image data cannot fill its rows (``png_data``)."""
    if image.format not in ("JPEG", "MPO", "PNG"):
        return None
    position, data = file.tell(), Bytes(file)
    try:
        if image.format == "PNG":
            found = png_data(data)
            return None if found is None or found.short is None else damaged_because(found.short)
        scans, allowed = jpeg_scans(data), jpeg_scans_allowed(image.size)
    finally:
        file.seek(position)
    image.info["scans"] = scans  # read by ``decoder_bytes``: libjpeg buffers every coefficient of a multi-scan file
    if scans <= allowed:
        return None
    width, height = image.size
    at_size = f" at {width}×{height} px" if allowed < MAX_JPEG_SCANS else ""
    return (
        f"JPEG has {scans:,} scans, more than the {allowed} decoded{at_size}: each scan is a pass over the "
        "whole image, and a photo has at most a few dozen (refused before decoding)"
    )


def pixel_bytes(mode: str) -> int:
    """Bytes Pillow keeps for a pixel of ``mode``: 1 for 1, L and P, 2 for 16-bit grey, else 4 (RGB too)."""
    return 1 if mode in ("1", "L", "P") else 2 if mode in ("I;16", "I;16B", "I;16L", "I;16N") else 4


def decoded_bytes(image: Image.Image) -> int:
    """Memory an opened image takes once decoded (``pixel_bytes``), at its draft size."""
    width, height = image.size
    return width * height * pixel_bytes(image.mode)


DECODE_OVERHEAD_BYTES = 8_000_000
"""Bytes any decode holds whatever its size, counted beside each phase: the decoder's state and row buffers,
the file's bytes where the decoder reads them whole (a WebP), Pillow's objects (measured: 1-3 MB)."""
WEBP_DECODER_BYTES = 12
"""Bytes a pixel libwebp and Pillow hold beside the decoded image while a WebP decodes, lossy or lossless:
Pillow reads every WebP through libwebp's animation decoder, whose canvas and previous frame are RGBA at full
size, beside the decoded frame it copies from (measured: 16 bytes a pixel at the peak in all, and the file)."""


def decoder_bytes(image: Image.Image, size: tuple[int, int] | None = None) -> int:
    """Bytes a decoder holds beside the image it fills, at its peak, for an opened image (at ``size``, its own
    by default; before any draft): a JPEG of more than one scan has libjpeg keep every coefficient (2 bytes a
    sample, at full size whatever the draft), a WebP libwebp's buffers (``WEBP_DECODER_BYTES``), a compressed
    TIFF libtiff's strip or tile (a file of one strip: the whole image again). Other formats fill rows in place."""
    width, height = size or image.size
    if image.format in ("JPEG", "MPO") and image.info.get("scans", 1) > 1:
        layers: list[tuple[int, int, int, int]] = getattr(image, "layer", None) or [(1, 1, 1, 0)] * 3
        h_max, v_max = max(layer[1] for layer in layers), max(layer[2] for layer in layers)
        mcu_w, mcu_h = 8 * h_max, 8 * v_max
        padded = -(-width // mcu_w) * mcu_w * -(-height // mcu_h) * mcu_h
        return sum(2 * padded * layer[1] * layer[2] // (h_max * v_max) for layer in layers)
    if image.format == "WEBP":  # Pillow hands libwebp the whole file, which may copy it
        return WEBP_DECODER_BYTES * width * height + 2 * _file_bytes(image)
    if image.format == "TIFF":
        tags = cast("dict[int, object]", getattr(image, "tag_v2", {}))
        if tags.get(259, 1) == 1:
            return 0  # uncompressed: Pillow reads the rows straight into the image
        tile_w, tile_h = tags.get(322), tags.get(323)
        if isinstance(tile_w, int) and isinstance(tile_h, int):
            return 4 * tile_w * tile_h
        rows = tags.get(278, height)
        return 4 * width * min(height, rows if isinstance(rows, int) and rows > 0 else height)
    return 0


def _file_bytes(image: Image.Image) -> int:
    """The size of the file an opened image reads, or 0 if it cannot be told."""
    file: object = getattr(image, "fp", None)
    if isinstance(file, io.BytesIO):
        return file.getbuffer().nbytes
    try:
        return os.fstat(cast("IO[bytes]", file).fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return 0


def too_costly(image: Image.Image, cost: int, size: tuple[int, int] | None = None) -> str:
    """Why ``image`` (of ``size``, its own by default) is refused when its decode and conversion would hold
    ``cost`` bytes, over the budget: its size, the cost and the limit, and a size that would fit (the cost
    grows about as the pixels do)."""
    width, height = size or image.size
    fit = math.sqrt(DecodeBudget.BYTES / cost) * 0.95
    smaller = f"{max(1, math.floor(width * fit))}×{max(1, math.floor(height * fit))}"
    return (
        f"{width}×{height} px {image.format or 'image'} ({image.mode}) would take about {cost / 1e6:,.0f} MB to "
        f"decode and convert, over the {DecodeBudget.BYTES / 1e6:.0f} MB one image may use: send it at about "
        f"{smaller} px or smaller"
    )


class DecodeBudget:
    """Decoded pixels held at once, across every call (edits and inspections alike): a decode waits until it
    fits in ``BYTES`` beside those held; a decode larger than that runs alone, so two 9000 px PNGs (450 MB each,
    with their conversions) are decoded one after the other, two 2K photos side by side. Only memory is
    bounded here: every call decodes on threads of its own, so a slow image holds up no other call."""

    BYTES = 600_000_000

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held: dict[int, int] = {}

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Generator[Holding]:
        """Wait until ``nbytes`` of decoded pixels may be held beside those held now, then hold them for the
        block (``Holding.keep`` changes how many); released when the block ends, however it ends."""
        with self._changed:
            self._changed.wait_for(lambda: not self._held or sum(self._held.values()) + nbytes <= self.BYTES)
            holding = Holding(self)
            self._held[id(holding)] = nbytes
        try:
            yield holding
        finally:
            with self._changed:
                del self._held[id(holding)]
                self._changed.notify_all()

    def _keep(self, holding: Holding, nbytes: int) -> None:
        with self._changed:
            self._held[id(holding)] = nbytes
            self._changed.notify_all()


class Holding:
    """One decode's place in a DecodeBudget, while its block runs."""

    def __init__(self, budget: DecodeBudget) -> None:
        self._budget = budget

    def keep(self, nbytes: int) -> None:
        """Hold only ``nbytes`` from now on (the decoded original freed, its smaller result kept)."""
        self._budget._keep(self, nbytes)  # pyright: ignore[reportPrivateUsage]


@dataclass(frozen=True)
class FileIdentity:
    """A file as it is now: any write changes its size, modification or change time (``ctime`` cannot be set
    back from user space), and replacing it changes its inode."""

    device: int
    inode: int
    size: int
    modified_ns: int
    changed_ns: int

    @classmethod
    def of(cls, file: io.BufferedReader) -> FileIdentity:
        st = os.fstat(file.fileno())
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class CheckedFiles:
    """Local files already found sendable as they are, by identity and limits: an agent editing the same large
    photo in a loop has it read, checked and hashed once, not on every call. A file touched within
    ``RACY_NS`` of being checked is not remembered, since a filesystem with coarse timestamps could hide a
    second write in the same tick (git's "racy clean" rule). What is sent is still hashed against the check."""

    SIZE = 256
    RACY_NS = 2_000_000_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[FileIdentity, ImageLimits], PreparedImage] = OrderedDict()

    def get(self, key: tuple[FileIdentity, ImageLimits]) -> PreparedImage | None:
        with self._lock:
            if (found := self._items.get(key)) is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[FileIdentity, ImageLimits], image: PreparedImage) -> None:
        identity = key[0]
        if image.sha256 is None or time.time_ns() - max(identity.modified_ns, identity.changed_ns) < self.RACY_NS:
            return  # conformed bytes are not worth holding; a just-written file may change unseen
        with self._lock:
            self._items[key] = image
            while len(self._items) > self.SIZE:
                self._items.popitem(last=False)
