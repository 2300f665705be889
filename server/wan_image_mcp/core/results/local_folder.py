"""The output folder by name: what the server calls the files it writes there, and what it makes of them.

A result image is ``{time}_{model}_{task_id}_{n}`` with its format's extension, beside its ``.json`` sidecar
(``result_stem``, ``EXTENSIONS``). An image renamed into place is known by its task and index from its name,
sidecar or not (``existing``): a kill or a full disk can fall between the rename and the sidecar. A file is
served as a result only if the journal records it (``saved_image``). Temp files carry their writer
(``.{result name}.{pid}-{start}@{host}.{random}.part``, ``temp_owner``), so those a killed server left are
removed at start (``remove_leftover_parts``), and no other file, whatever its name.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .outcomes import ImageFile

if TYPE_CHECKING:
    from ..journal import Journal, TaskRow, Tenant

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp"}
"""The file name extension of each result format (any other is saved as ``.png``)."""
READ_CHUNK = 1 << 20
"""Bytes read at a time when a saved image is hashed again."""


def safe(text: str) -> str:
    """``text`` as a part of a file name: runs of anything but letters, digits, ``.``, ``_`` and ``-`` made ``-``,
    trimmed, at most 80 characters; ``x`` if nothing is left."""
    return _UNSAFE.sub("-", text).strip("-.")[:80] or "x"


def result_stem(task_id: str, index: int, model: str) -> str:
    """The name, without extension, of image ``index`` (1-based) of ``task_id`` saved now:
    ``{time}_{model}_{task_id}_{n}``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}_{safe(model)}_{safe(task_id)}_{index}"


def result_name(tag: str) -> re.Pattern[str]:
    """What the name of an image of the task whose name part is ``tag`` looks like; group 1 is its index."""
    return re.compile(rf"\d{{8}}-\d{{6}}_.+_{re.escape(tag)}_(\d{{1,3}})\.(?:png|jpg|webp|bmp)")


def existing(root: Path, task_id: str) -> tuple[dict[int, ImageFile], int]:
    """Images of ``task_id`` already on disk by index, and how many the task has in all (0: not known).

    An image is known by its sidecar or, when the server stopped (or the disk filled) between renaming the
    image and writing its sidecar, by its name alone: ``{time}_{model}_{task_id}_{n}`` (when the id is the
    name's own). Such an image's ``url`` is "" until ``ResultStore.save`` writes its sidecar."""
    found: dict[int, ImageFile] = {}
    expected = 0
    if not root.is_dir():
        return found, expected
    tag = safe(task_id)
    named = result_name(tag)
    bare: dict[int, Path] = {}
    for path in sorted(root.glob(f"*_{tag}_*")):
        if path.suffix != ".json":
            if tag == task_id and (match := named.fullmatch(path.name)):
                bare.setdefault(int(match[1]), path)  # the earliest, should there be two
            continue
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            image = Path(meta["path"])
            if meta["task_id"] != task_id or not image.is_file():
                continue
            found[int(meta["index"])] = from_sidecar(meta, str(image))
            expected = int(meta["count"])
        except (OSError, ValueError, KeyError):
            continue
    for index, path in bare.items():
        if index not in found and (image := _describe(path)) is not None:
            found[index] = image
    return found, expected


def from_sidecar(meta: dict[str, Any], path: str) -> ImageFile:
    """The saved image a sidecar describes, at ``path``. Raises KeyError or ValueError for a sidecar that is not
    one of ours."""
    return ImageFile(
        path=path,
        url=meta["url"],
        width=meta["width"],
        height=meta["height"],
        bytes=meta["bytes"],
        sha256=meta["sha256"],
    )


def _describe(path: Path) -> ImageFile | None:
    """A saved image known only by its name (its sidecar missing): its size, length and sha256 read back from the
    file, which was complete and fsync'd before it was renamed. None if it is not an image."""
    from ..images.pillow import Image, UnidentifiedImageError
    from ..images.runtime import imaging

    imaging()  # Pillow's guard set before decoding

    try:
        with Image.open(path) as image:
            width, height = image.size
        digest, size = hashlib.sha256(), 0
        with path.open("rb") as file:
            while chunk := file.read(READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return None
    return ImageFile(path=str(path), url="", width=width, height=height, bytes=size, sha256=digest.hexdigest())


def saved_image(journal: Journal, root: Path, name: str, tenant: Tenant | None = None) -> Path | None:
    """The file ``name`` in ``root`` if the journal records it as a saved image of the task its name carries
    (``{time}_{model}_{task_id}_{n}``), and that task is ``tenant``'s when one is given; None for any other file."""
    parts = name.rsplit(".", 1)[0].split("_")
    target = (root / name).resolve()
    if len(parts) < 4 or target.parent != root.resolve():
        return None
    for row in named_rows(journal, name, tenant):
        if any(Path(image["path"]).resolve() == target for image in row.images):
            return target if target.is_file() else None
    return None


def named_rows(journal: Journal, name: str, tenant: Tenant | None = None) -> Iterator[TaskRow]:
    """The journal's rows (only ``tenant``'s, when given) for the tasks the result name
    ``{time}_{model}_{task_id}_{n}.{ext}`` may be of: the model is one part or more, the task id the rest."""
    parts = name.rsplit(".", 1)[0].split("_")
    for start in range(2, len(parts) - 1):
        row = journal.get("_".join(parts[start:-1]), tenant=tenant)
        if row is not None:
            yield row


PART_SUFFIX = ".part"
_RESULT_NAME = (
    r"\d{8}-\d{6}_[A-Za-z0-9._-]+_[A-Za-z0-9._-]+(?:_\d+(?:\.(?:png|jpg|webp|bmp|json))?|\.md)|gallery|write-probe"
)
_OURS = re.compile(
    rf"\.(?:{_RESULT_NAME})\.(?:(?P<pid>\d+)(?:-(?P<start>\d+))?@(?P<host>[A-Za-z0-9-]*)\.)?[a-z0-9_]{{8}}\{PART_SUFFIX}"
)
"""The temp files this server writes, and only those: ``.{result name}.{owner}.{random}.part``, where the result
name is ``{time}_{model}_{task_id}_{n}`` (with ``.png``, ``.jpg``, ``.webp``, ``.bmp`` or ``.json``, or none) or
an interleaved answer's page (``{time}_{model}_{task_id}.md``), the gallery's or the output probe's
(``probe.PROBE_NAME``), the owner ``{pid}-{start}@{host}`` (before it, ``{pid}@{host}``, and before that none)
and the random part mkstemp's eight characters. A user's ``.thesis.docx.part`` is none of them."""
STALE_PART = 3600.0
"""A temp file whose owner cannot be checked (older names, another host) is left this long before removal."""


def _host() -> str:
    import socket

    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]


def _started(pid: int) -> str | None:
    """When process ``pid`` started, as the kernel counts it (clock ticks since boot, read from /proc on Linux);
    None where that cannot be read (another OS, or no such process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = text.rsplit(b")", 1)[-1].split()  # the command name in parentheses may hold spaces
    return fields[19].decode() if len(fields) > 19 and fields[19].isdigit() else None  # field 22, starttime


@functools.cache
def _own_start(pid: int) -> str:
    """This process's start: the kernel's count where it can be read, else when this process first asked."""
    return _started(pid) or str(time.time_ns() // 1_000_000)


def temp_owner() -> str:
    """Who writes a temp file, as its name says: ``{pid}-{start}@{host}``. The start tells this process from an
    earlier one that had the same pid: in a container the server is often PID 1 after every restart."""
    pid = os.getpid()
    return f"{pid}-{_own_start(pid)}@{_host()}"


def owner_gone(owner: str) -> bool:
    """Whether the process a ``temp_owner()`` name (with anything after a ``#``) stands for is known to have
    ended: a process on this host that no longer runs. One on another host is never known to be gone."""
    match = re.fullmatch(r"(\d+)(?:-(\d+))?@([A-Za-z0-9-]+)(?:#.*)?", owner)
    return match is not None and match[3] == _host() and not _alive(int(match[1]), match[2])


def _alive(pid: int, start: str | None) -> bool:
    """Whether the process that wrote a temp file (``pid``, and ``start`` when the name records it) still runs."""
    if pid == os.getpid():
        return start == _own_start(pid)  # an earlier process with this pid (or an older name) is gone
    if start is not None and (now := _started(pid)) is not None:
        return now == start  # a different start: the pid was given to another process since
    if os.name == "nt":  # no harmless probe there (signal 0 is CTRL_C_EVENT): rely on the file's age
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is not ours to signal
        return True
    return True


def remove_leftover_parts(root: Path) -> tuple[int, int]:
    """Remove the temp files (``_OURS``, regular files only) that a server killed mid-download or mid-write left
    in ``root``: those of a process on this host that is gone, and any other older than ``STALE_PART`` (a live
    process's stay a day). No other file is touched, however it is named. Returns how many files and bytes were
    removed."""
    if not root.is_dir():
        return 0, 0
    host, now = _host(), time.time()
    files = size = 0
    for path in root.glob(f".*{PART_SUFFIX}"):
        if (ours := _OURS.fullmatch(path.name)) is None:
            continue
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            if ours["pid"] is not None and ours["host"] == host:
                stale = not _alive(int(ours["pid"]), ours["start"]) or now - info.st_mtime > DAY
            else:
                stale = now - info.st_mtime > STALE_PART
            if stale:
                path.unlink()
                files, size = files + 1, size + info.st_size
        except OSError:
            continue
    return files, size


DAY = 24 * 3600.0
