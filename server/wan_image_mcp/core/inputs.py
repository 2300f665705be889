"""Image references -> what goes on the wire, checked and, where possible, fixed.

A reference is a local path (absolute, ``~``, or relative to the working directory), a ``file://`` URL,
an ``http(s)://`` URL, an ``oss://`` temporary-upload URL, or a ``data:`` URL. Local and data images are
decoded with Pillow by content (never by extension) and conformed to the model's ``ImageLimits``:

* fixed and reported as an adjustment: EXIF orientation applied, alpha flattened onto white, formats the
  API does not read converted, images over the side or byte limit downscaled (bbox coordinates follow
  through ``PreparedImage.scale``);
* refused with a ``Problem``: unreadable, not an image, too small, aspect ratio out of range.

Remote URLs are passed through untouched: the API fetches them, and we cannot see their pixels.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import functools
import hashlib
import io
import math
import os
import re
import stat
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar, cast
from urllib.parse import unquote, urlsplit

from .access import FileAccess
from .errors import AccessDenied, InputChanged, InvalidRequest, Problem
from .specs import ImageLimits

if TYPE_CHECKING:
    from PIL import Image
    from PIL.Image import ImagePointTransform

_T = TypeVar("_T")
MIME_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}
EXIF_ORIENTATION = 0x0112
_JPEG_QUALITY = 95


class RefKind(StrEnum):
    LOCAL = "local"
    DATA = "data"
    REMOTE = "remote"
    OSS = "oss"


@dataclass(frozen=True)
class PreparedImage:
    index: int
    """1-based, as the prompt names it (圖1, image 1)."""
    kind: RefKind
    source: str
    """The reference as given, shortened for messages (data URLs are not repeated)."""
    url: str | None = None
    """The URL sent, when there is one: the reference for remote and oss:// images, or an oss:// upload."""
    payload: bytes | None = None
    """The conformed image file, for local and data images (sent inline, or uploaded). None for a local file
    sent unchanged: its bytes stay on disk (see ``sha256``) until they are sent."""
    width: int | None = None
    """Size sent (after conforming); None for remote images."""
    height: int | None = None
    path: str | None = None
    """The resolved local file it was read from (None for data and remote references)."""
    original_size: tuple[int, int] | None = None
    """Size as the user sees it (EXIF orientation applied), the space bbox_list coordinates live in."""
    format: str | None = None
    bytes: int | None = None
    """Bytes of the image file sent (before base64)."""
    scale: float = 1.0
    """Sent size / original size: bbox_list coordinates are multiplied by this."""
    adjustments: tuple[str, ...] = ()
    sha256: str | None = None
    """For a local file sent unchanged: the digest of the bytes that were checked, so that what is sent later
    (read again from ``path``) can be proven to be the same."""

    def read_payload(self) -> bytes:
        """The bytes to send. Raises InputChanged if a file sent unchanged is no longer what was checked."""
        if self.payload is not None:
            return self.payload
        assert self.path is not None and self.sha256 is not None
        data = Path(self.path).read_bytes()
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise InputChanged(self.path, self.index)
        return data

    @property
    def value(self) -> str:
        """What is sent: the URL, or the payload as a base64 data URL (built only when asked for)."""
        if self.url is not None:
            return self.url
        assert self.format is not None
        return f"data:{MIME_TYPES[self.format]};base64,{base64.b64encode(self.read_payload()).decode('ascii')}"


class HashingReader(io.FileIO):
    """A local file opened for sending that hashes what is read from it, to compare with what was checked.

    httpx's multipart encoder reads it in chunks, seeks to 0 first (a retry starts over), and takes the
    length from ``fileno``, so the file is streamed from disk, never held in memory."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, "rb")
        self._hash = hashlib.sha256()

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self._hash.update(chunk)
        return chunk

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if (pos, whence) == (0, os.SEEK_SET):
            self._hash = hashlib.sha256()
        return super().seek(pos, whence)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def describe_ref(ref: str) -> str:
    if ref.startswith("data:"):
        head = ref.split(",", 1)[0]
        return f"{head},… ({len(ref)} chars)"
    return ref if len(ref) <= 200 else ref[:197] + "…"


def classify(ref: str) -> RefKind:
    lowered = ref[:8].lower()
    if lowered.startswith("data:"):
        return RefKind.DATA
    if lowered.startswith(("http://", "https://")):
        return RefKind.REMOTE
    if lowered.startswith("oss://"):
        return RefKind.OSS
    return RefKind.LOCAL


def local_path(ref: str, cwd: Path) -> Path:
    """Resolve a local reference the way the official SDK reads ``file://`` (netloc + path), then ``~``,
    then relative to ``cwd``."""
    if ref[:7].lower() == "file://":
        parts = urlsplit(ref)
        raw = parts.netloc + unquote(parts.path)
        if raw.startswith("/") and len(raw) > 2 and raw[2] == ":":  # file:///C:/x -> C:/x
            raw = raw[1:]
    else:
        raw = ref
    path = Path(os.path.expanduser(raw))
    return path if path.is_absolute() else cwd / path


_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.S)


def decode_data_url(ref: str) -> bytes:
    match = _DATA_URL.match(ref)
    if match is None:
        raise ValueError("malformed data URL: expected data:<mime>;base64,<data>")
    if ";base64" not in match["params"].lower():
        raise ValueError("data URL is not base64-encoded: expected data:<mime>;base64,<data>")
    try:
        return base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("data URL has invalid base64 data") from None


CONFORM_WORKERS = 2
"""Images conformed at once, across all calls: Pillow decodes and encodes outside the GIL, so two threads
roughly halve a many-image call on two cores while bounding how many large images are decoded at a time."""


@functools.cache
def _conforming() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(CONFORM_WORKERS, thread_name_prefix="conform")


def on_image_threads(work: Callable[[int, str], _T], refs: Sequence[str]) -> list[_T]:
    """``work(index, ref)`` for each reference (1-based), in order, on the shared image threads."""
    return list(_conforming().map(work, range(1, len(refs) + 1), refs))


def prepare_images(
    refs: Sequence[str], limits: ImageLimits, cwd: Path, access: FileAccess | None = None
) -> list[PreparedImage | InvalidRequest]:
    """``prepare_image`` for each reference (1-based), in order, on the shared conforming threads."""

    def one(index: int, ref: str) -> PreparedImage | InvalidRequest:
        try:
            return prepare_image(ref, index, limits, cwd, access)
        except InvalidRequest as exc:
            return exc

    return on_image_threads(one, refs)


def prepare_image(
    ref: str, index: int, limits: ImageLimits, cwd: Path, access: FileAccess | None = None
) -> PreparedImage:
    """Check and conform one reference. Raises InvalidRequest with a Problem naming image ``index``.

    With ``access``, a local file is read only if its resolved path is inside an allowed directory; the
    resolved path is what is opened."""
    kind = classify(ref)
    source = describe_ref(ref)
    if kind in (RefKind.REMOTE, RefKind.OSS):
        return PreparedImage(index=index, kind=kind, source=source, url=ref)

    def problem(message: str) -> InvalidRequest:
        return InvalidRequest([Problem("images", message, image=index)])

    if kind is RefKind.DATA:
        try:
            data = decode_data_url(ref)
        except ValueError as exc:
            raise problem(str(exc)) from None
        return conform(data, index=index, kind=kind, source=source, limits=limits, problem=problem)
    try:
        path, file = open_local(local_path(ref, cwd), access)
    except ValueError as exc:
        raise problem(str(exc)) from None
    with file:
        key = (FileIdentity.of(file), limits)
        prepared = CHECKED.get(key)
        if prepared is None:
            prepared = conform(file, index=index, kind=kind, source=source, limits=limits, problem=problem)
            CHECKED.put(key, prepared)
        else:
            prepared = dataclasses.replace(prepared, index=index, source=source)
    return dataclasses.replace(prepared, path=str(path))


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
        if image.payload is not None or time.time_ns() - max(identity.modified_ns, identity.changed_ns) < self.RACY_NS:
            return  # conformed bytes are not worth holding; a just-written file may change unseen
        with self._lock:
            self._items[key] = image
            while len(self._items) > self.SIZE:
                self._items.popitem(last=False)


CHECKED = CheckedFiles()


def open_local(path: Path, access: FileAccess | None) -> tuple[Path, io.BufferedReader]:
    """A local file's path as opened, and the open file. With ``access``, only inside an allowed directory, and
    the resolved path is what is opened. Only a regular file is opened: a FIFO, socket or device could block a
    reader forever (and with it the threads every image call shares) or change as it is read, so its type is
    checked before opening, the open is non-blocking, and the type is checked again on what was opened. Raises
    ValueError with the reason."""
    try:
        if access is not None:
            path = access.resolve(path)
        _must_be_regular(path, os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except AccessDenied as exc:
        raise ValueError(str(exc)) from None
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"is a directory, not an image file: {path}") from None
    except PermissionError:
        raise ValueError(f"permission denied reading {path}") from None
    except NotRegularFile as exc:
        raise ValueError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.__class__.__name__}") from None
    try:
        _must_be_regular(path, os.fstat(fd).st_mode)  # what was opened may not be what was looked at
    except NotRegularFile as exc:
        os.close(fd)
        raise ValueError(str(exc)) from None
    return path, os.fdopen(fd, "rb")


class NotRegularFile(ValueError):
    pass


def _must_be_regular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(path)
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    raise NotRegularFile(f"is {kind}, not a regular file: {path} (only regular files are read)")


def open_image(file: IO[bytes], source: str, problem: Callable[[str], InvalidRequest]) -> tuple[Image.Image, int]:
    """An image opened from ``file`` (its header read, nothing decoded) and its EXIF orientation. Raises the
    image's problem, worded the same for ``edit_image`` and ``inspect_image``."""
    from .pillow import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # the guard's limit is the limit
            image = Image.open(file)
            return image, exif_orientation(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise problem("image has too many pixels to decode safely") from None
    except UnidentifiedImageError:
        raise problem(f"not an image (content of {source!r} is no format Pillow reads)") from None
    except DECODE_ERRORS as exc:
        raise _damaged(problem, exc) from None


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


def plan(
    image: Image.Image, orientation: int, size: int, limits: ImageLimits, problem: Callable[[str], InvalidRequest]
) -> Plan:
    """Decide from an opened image's header what conforming it to ``limits`` does; raise what makes it refused."""
    fmt = image.format or "unknown"
    raw = image.size
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
        notes.append(f"EXIF orientation {orientation} applied (boxes are read in the orientation shown)")
    if alpha:
        notes.append("alpha channel flattened onto white")
    if deep:
        notes.append(f"{_DEPTH[image.mode]} scaled to 8 bits")
    if convert:
        frames: int = getattr(image, "n_frames", 1)
        if frames > 1:
            notes.append(f"{fmt} has {frames} frames: the first is used")
        notes.append(f"{fmt} converted (the API reads {', '.join(sorted(limits.formats))})")
    fit = None
    if scale < 1.0:
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        if min(width, height) < limits.side.lo:
            raise problem(
                f"{long}×{short} px cannot fit: sides must be {limits.side.lo}-{limits.side.hi} px "
                "and shrinking the long side makes the short one too small"
            )
        fit = (height, width) if orientation in (5, 6, 7, 8) else (width, height)  # in the stored orientation
        notes.append(f"downscaled to {width}×{height} to fit the {limits.side.hi} px side limit")
    return Plan(
        format=fmt,
        original=original,
        size=(width, height),
        scale=scale,
        fit=fit,
        notes=tuple(notes),
        as_is=not notes and size <= limits.max_bytes,
        estimated_bytes=round(size * (width * height) / (raw[0] * raw[1])),
    )


def decoded_bytes(image: Image.Image) -> int:
    """Memory an opened image takes once decoded (Pillow keeps 8-bit RGB in 4 bytes a pixel), at its draft size."""
    width, height = image.size
    per_pixel = 1 if image.mode in ("1", "L", "P") else 2 if image.mode in ("LA", "I;16", "I;16B", "I;16L") else 4
    return width * height * per_pixel


class DecodeBudget:
    """Decoded pixels held at once, across every call (edits and inspections alike): at most ``SLOTS`` decodes,
    and a second only while the two fit in ``BYTES`` together. A decode larger than that runs alone, so two
    9000 px PNGs (324 MB each) are decoded one after the other, two 2K photos side by side."""

    SLOTS = 2
    BYTES = 600_000_000

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held: dict[int, int] = {}
        self.most_at_once = 0
        """The most decodes ever held at once (for tests: never more than SLOTS)."""

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Generator[Holding]:
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    not self._held or (len(self._held) < self.SLOTS and sum(self._held.values()) + nbytes <= self.BYTES)
                )
            )
            holding = Holding(self)
            self._held[id(holding)] = nbytes
            self.most_at_once = max(self.most_at_once, len(self._held))
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
    def __init__(self, budget: DecodeBudget) -> None:
        self._budget = budget

    def keep(self, nbytes: int) -> None:
        """Hold only ``nbytes`` from now on (the decoded original freed, its smaller result kept)."""
        self._budget._keep(self, nbytes)  # pyright: ignore[reportPrivateUsage]


DECODES = DecodeBudget()


def conform(
    data: bytes | io.BufferedReader,
    *,
    index: int,
    kind: RefKind,
    source: str,
    limits: ImageLimits,
    problem: Callable[[str], InvalidRequest],
) -> PreparedImage:
    """Check an image against ``limits`` and fix what can be fixed. ``data`` is the file's bytes or the open file.

    Decoding is the costly part, so what must be done is decided from the header first. Every image is decoded
    before it is sent, as it is or not: a PNG whose chunks all match their CRCs can still hold too little image
    data for its header (Pillow's ``verify`` passed one with 100 bytes for 1000×1000 px), and a cut JPEG is
    found by decoding it. An image sent as it is decodes at 1/8 scale when it is a JPEG (libjpeg still reads
    every coefficient, and refuses a cut file, at a fraction of the cost and memory), in full otherwise; a local
    file found whole is remembered (``CHECKED``), so it is decoded once per server, not per call. An open
    file's bytes are not kept but hashed (``payload`` None, ``sha256`` set) to be read again when sent. A JPEG
    that must shrink is decoded near its target size by libjpeg's DCT scaling."""
    file = io.BytesIO(data) if isinstance(data, bytes) else data
    size = len(data) if isinstance(data, bytes) else os.fstat(data.fileno()).st_size
    image, orientation = open_image(file, source, problem)
    todo = plan(image, orientation, size, limits, problem)
    fmt, raw, original, scale = todo.format, image.size, todo.original, todo.scale
    width, height = todo.size

    if todo.as_is:
        if fmt == "JPEG":  # libjpeg still reads every coefficient at 1/8 scale: a cut file is found
            image.draft(image.mode, (max(1, raw[0] // 8), max(1, raw[1] // 8)))
        with DECODES.hold(decoded_bytes(image)):
            _read(image.load, problem)  # every input is decoded before it is sent: headers and CRCs prove little
            del image  # its pixels are not needed: the file is sent as it is
        digest = None
        if not isinstance(data, bytes):
            data.seek(0)
            digest = hashlib.file_digest(data, "sha256").hexdigest()
        return PreparedImage(
            index=index,
            kind=kind,
            source=source,
            payload=data if isinstance(data, bytes) else None,
            sha256=digest,
            width=width,
            height=height,
            original_size=original,
            format=fmt,
            bytes=size,
        )

    notes = list(todo.notes)
    if todo.fit is not None and fmt == "JPEG":
        image.draft(image.mode, (math.ceil(raw[0] * scale), math.ceil(raw[1] * scale)))
    out_fmt = "JPEG" if fmt == "JPEG" else "PNG"
    # A PNG bound to be over the file limit goes straight to JPEG (estimated from the file's own bytes a pixel,
    # with a margin: a 9000 px photo's PNG is several times the limit, and encoding it first cost seconds).
    fallback = out_fmt == "PNG" and todo.estimated_bytes > 2 * limits.max_bytes
    if fallback:
        out_fmt = "JPEG"
    out_pixels = width * height
    with DECODES.hold(decoded_bytes(image) + (4 * out_pixels if todo.fit else 0)) as held:
        _read(image.load, problem)
        image = as_sent(image, orientation, resize_to=todo.fit)
        held.keep(4 * out_pixels)  # the decoded original is gone: the next decode can start beside this encode
        payload = _encode(image, out_fmt)
        if not fallback and len(payload) > limits.max_bytes and out_fmt == "PNG":
            fallback, out_fmt, payload = True, "JPEG", _encode(image, "JPEG")
        shrunk = False
        while len(payload) > limits.max_bytes:
            factor = math.sqrt(limits.max_bytes / len(payload)) * 0.95
            width, height = max(1, round(width * factor)), max(1, round(height * factor))
            image = _resize(image, width, height)
            scale *= factor
            shrunk = True
            if min(width, height) < limits.side.lo:
                raise problem(f"cannot bring the file under {limits.max_bytes // 1_000_000} MB")
            payload = _encode(image, out_fmt)
    if size > limits.max_bytes or fallback or shrunk:
        how = f"re-encoded as {out_fmt}" + (f" and downscaled to {width}×{height}" if shrunk else "")
        notes.append(f"{how} to fit the {limits.max_bytes // 1_000_000} MB file limit")

    return PreparedImage(
        index=index,
        kind=kind,
        source=source,
        payload=payload,
        width=width,
        height=height,
        original_size=original,
        format=out_fmt,
        bytes=len(payload),
        scale=scale,
        adjustments=tuple(f"image {index}: {note}" for note in notes),
    )


DECODE_ERRORS = (OSError, SyntaxError, ValueError)
"""What Pillow raises for a damaged or cut file, on open or on decode."""


def damaged(exc: Exception) -> str:
    """The problem of an image whose data Pillow could not decode."""
    return f"image data is damaged or truncated ({exc})"


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


DEEP_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
"""Pillow's modes of more than 8 bits a channel: 16-bit grey PNGs and TIFFs open as I;16, 32-bit ones as I or F.
(16-bit RGB, RGBA and grey with alpha PNGs are read at 8 bits by Pillow itself.)"""
_DEPTH = dict.fromkeys(("I;16", "I;16B", "I;16L", "I;16N"), "16-bit grey") | {
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


def small_as_sent(image: Image.Image, orientation: int, side: int) -> Image.Image:
    """An opened image decoded, at most ``side`` px, as it is sent (``as_sent``). A JPEG is decoded near that
    size (libjpeg's scaling, which still reads the whole file), others in full, then reduced by box averaging
    before Lanczos. Raises what Pillow raises for damaged data. The decode is counted in ``DECODES`` until its
    pixels are freed; ``image`` is closed, with its file."""
    target = preview_size(image.size, side)
    if image.format == "JPEG":
        image.draft(image.mode, target)
    with DECODES.hold(decoded_bytes(image)):
        try:
            image.load()
            shown = as_sent(image, orientation, resize_to=preview_size(image.size, side))
            return shown.copy() if shown is image else shown  # small already: kept apart from what is closed
        finally:
            image.close()  # frees the decoded pixels while they are still counted (and closes the file)


def _linear(factor: float, offset: float) -> Callable[[ImagePointTransform], ImagePointTransform]:
    """v × factor + offset, in the form Pillow applies to I and F images at full depth."""
    return lambda v: v * factor + offset


def as_sent(image: Image.Image, orientation: int, *, resize_to: tuple[int, int] | None = None) -> Image.Image:
    """A loaded image as it is sent, in RGB or L: tones in 8 bits (``eight_bits``), resized (in its stored
    orientation) when asked, transparency composited onto white, EXIF ``orientation`` applied. The inspect
    preview and the gallery's input thumbnails show this too, so what is seen is what is sent."""
    from .pillow import Image

    image = eight_bits(image)
    grey = image.mode in ("1", "L", "LA")
    if has_alpha(image):  # composited after any resize: LA and RGBA resize with their alpha premultiplied
        image = image.convert("LA" if grey else "RGBA")
    elif image.mode not in ("L", "RGB"):
        image = image.convert("L" if grey else "RGB")  # P, 1, CMYK, YCbCr...: resized in a mode that blends
    if resize_to is not None and resize_to != image.size:
        image = _resize(image, *resize_to)
    if image.mode in ("LA", "RGBA"):
        background = Image.new(image.mode[:-1], image.size, "white")
        background.paste(image, mask=image.getchannel("A"))
        image = background
    if orientation in _TURNS:
        image = image.transpose(Image.Transpose[_TURNS[orientation]])
    return image


def _read(step: Callable[[], object], problem: Callable[[str], InvalidRequest]) -> None:
    """Run a Pillow step that reads the image data (``load``); damaged data becomes the image's problem."""
    try:
        step()
    except DECODE_ERRORS as exc:
        raise _damaged(problem, exc) from None


_BANDED_PIXELS = 16_000_000
_BAND_ROWS = 256


def _resize(image: Image.Image, width: int, height: int, *, reducing_gap: float = 3.0) -> Image.Image:
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
    for y0 in range(0, height, _BAND_ROWS):
        y1 = min(height, y0 + _BAND_ROWS)
        top, bottom = max(0, math.floor(y0 * step - reach)), min(image.height, math.ceil(y1 * step + reach))
        box = (0.0, y0 * step - top, float(image.width), y1 * step - top)
        band = image.crop((0, top, image.width, bottom))
        out.paste(band.resize((width, y1 - y0), lanczos, box=box), (0, y0))  # pyright: ignore[reportUnknownMemberType]
    return out


def _encode(image: Image.Image, fmt: str) -> bytes:
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=_JPEG_QUALITY)
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()
