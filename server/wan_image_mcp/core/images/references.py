"""Image references, and what is sent for each: reading a reference, never decoding it.

A reference is a local path (absolute, ``~``, or relative to the working directory), a ``file://`` URL (read
the way the official SDK reads it), an ``http(s)://`` URL, an ``oss://`` temporary-upload URL, or a ``data:``
URL. ``classify`` says which; ``local_path`` resolves a local one, ``open_local`` opens it (regular files
only, inside the allowed directories), ``decode_data_url`` reads a data URL's bytes. ``PreparedImage`` is
what is sent for one input image once it is checked (``inputs.prepare_image``); a local file sent as it is
stays on disk and is read back, or streamed by ``HashingReader``, and must hash the same as when checked.
Remote URLs are passed through untouched: the API fetches them, and we cannot see their pixels.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import os
import re
import stat
import tempfile
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

from ..errors import AccessDenied, InputChanged, NotRegularFile
from .access import FileAccess

log = logging.getLogger("wan_image_mcp")
SPOOL_BYTES = 1_000_000
"""A conformed file larger than this waits on disk (``PreparedImage.spool``), not in memory, until it is sent."""


class Spool:
    """Bytes in an anonymous temporary file: no name to find or leave behind, closed once no image holds it."""

    def __init__(self, data: bytes) -> None:
        with tempfile.TemporaryFile() as file:
            file.write(data)
            file.flush()
            self._fd = os.dup(file.fileno())  # the file lives on through this descriptor
        self.size = len(data)
        self._lock = threading.Lock()
        self._open = weakref.finalize(self, os.close, self._fd)

    def read(self) -> bytes:
        """All the bytes (any thread: one reader at a time seeks and reads; Windows has no ``os.pread``). Raises
        ValueError once closed."""
        with self._lock:
            if not self._open.alive:
                raise ValueError("read of a spool already closed")
            os.lseek(self._fd, 0, os.SEEK_SET)
            return os.read(self._fd, self.size)

    def close(self) -> None:
        """Give the file back now, not once no image holds it: a failed call's images stay held by its traceback's
        reference cycles until the garbage collector runs."""
        with self._lock:
            self._open()


def close_spools(images: Iterable[PreparedImage]) -> None:
    """Close the spools of images whose bytes are no longer needed: a failed call's, or those sent."""
    for image in images:
        if image.spool is not None:
            image.spool.close()


def kept(data: bytes) -> dict[str, bytes | Spool]:
    """The ``PreparedImage`` fields that keep a conformed file: ``payload`` when small, else ``spool``; ``payload``
    too when no temporary file can be written (the directory full, gone or read-only): spooling only saves
    memory, and is no reason to fail a call."""
    if len(data) > SPOOL_BYTES:
        try:
            return {"spool": Spool(data)}
        except OSError as exc:
            log.warning("a conformed image is kept in memory: no temporary file could be written (%s)", exc)
    return {"payload": data}


MIME_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}


class RefKind(StrEnum):
    """The kinds of image reference: read here (LOCAL, DATA) or passed through as URLs (REMOTE, OSS)."""

    LOCAL = "local"
    DATA = "data"
    REMOTE = "remote"
    OSS = "oss"


BOXES_AS_SHOWN: Final = "bbox_list boxes are read in the orientation shown"
"""Said of an image whose EXIF orientation was applied, only where boxes can be given (a model with bbox_list)."""


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
    sent unchanged: its bytes stay on disk (see ``sha256``) until they are sent; None too for a conformed file
    over ``SPOOL_BYTES``, kept in ``spool``."""
    spool: Spool | None = None
    """A conformed file over ``SPOOL_BYTES``, in an anonymous temporary file until it is sent: nine conformed
    9000 px PNGs were 111 MB held beside the next image's decode."""
    width: int | None = None
    """Size sent (after conforming); None for remote images."""
    height: int | None = None
    path: str | None = None
    """The resolved local file it was read from (None for data and remote references)."""
    original_size: tuple[int, int] | None = None
    """Size as the user sees it (EXIF orientation applied), the space bbox_list coordinates live in."""
    turned: bool = False
    """Its EXIF orientation was applied: sent as it is shown, which is how bbox_list's boxes are read."""
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
        if self.spool is not None:
            return self.spool.read()
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
    """``ref`` as messages show it: a data URL as its head and length, anything else cut to 200 characters."""
    if ref.startswith("data:"):
        head = ref.split(",", 1)[0]
        return f"{head},… ({len(ref)} chars)"
    return ref if len(ref) <= 200 else ref[:197] + "…"


def classify(ref: str) -> RefKind:
    """What kind of reference ``ref`` is, from its scheme (case-insensitive); anything without one is LOCAL."""
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
    """The bytes a base64 ``data:`` URL holds. Raises ValueError saying what is wrong with a malformed one, one
    that is not base64, or invalid base64 data."""
    match = _DATA_URL.match(ref)
    if match is None:
        raise ValueError("malformed data URL: expected data:<mime>;base64,<data>")
    if ";base64" not in match["params"].lower():
        raise ValueError("data URL is not base64-encoded: expected data:<mime>;base64,<data>")
    try:
        return base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("data URL has invalid base64 data") from None


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


def _must_be_regular(path: Path, mode: int) -> None:
    """Return if ``mode`` is a regular file's; raise IsADirectoryError for a directory, NotRegularFile otherwise."""
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(path)
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    raise NotRegularFile(f"is {kind}, not a regular file: {path} (only regular files are read)")
