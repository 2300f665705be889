"""Result images on disk: downloaded at once (URLs expire in 24 h), under names the server makes, written
atomically (temp file + rename), each with a JSON sidecar saying where it came from.

An image is saved once: one renamed into place is known by its task and index from its name, sidecar or not
(a kill or a full disk can fall between the rename and the sidecar), and its sidecar is written then. Temp
files carry their writer (``{pid}-{start}@{host}``), so those a killed server left are removed at start (and no
other file, whatever its name)."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import httpx2

from ..dashscope.errors import DownloadError
from .access import send_checked
from .errors import AccessDenied
from .outcomes import ImageFile

if TYPE_CHECKING:
    from .journal import Journal, TaskRow

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp"}


@dataclass(frozen=True)
class TaskRecord:
    """What the server knows about a task it submitted: written into every sidecar."""

    model: str
    prompt: str
    parameters: Mapping[str, Any]
    adjustments: tuple[str, ...] = ()
    instruction: str | None = None
    submitted: float = field(default_factory=time.time)

    @classmethod
    def of(cls, row: TaskRow | None) -> TaskRecord | None:
        """What the journal row says of its task, or None for a task the journal does not know."""
        if row is None or not row.model:
            return None
        return cls(
            model=row.model,
            prompt=row.prompt,
            parameters=row.parameters,
            adjustments=tuple(row.adjustments),
            instruction=row.instruction,
            submitted=row.created_at,
        )


def safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-.")[:80] or "x"


def _retry_download(exc: Exception) -> bool:
    if isinstance(exc, DownloadError):
        return not exc.expired and (exc.status is None or exc.status >= 500 or exc.status == 429)
    return False


MAX_REDIRECTS = 3


class ResultStore:
    def __init__(self, root: Path, http: httpx2.AsyncClient, *, api_base_url: str) -> None:
        self.root = root
        self._http = http
        self._api_base_url = api_base_url

    def _name(self, task_id: str, index: int, model: str) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return f"{stamp}_{safe(model)}_{safe(task_id)}_{index}"

    def _existing(self, task_id: str) -> tuple[dict[int, ImageFile], int]:
        """Images of ``task_id`` already on disk by index, and how many the task has in all (0: not known).

        An image is known by its sidecar or, when the server stopped (or the disk filled) between renaming the
        image and writing its sidecar, by its name alone: ``{time}_{model}_{task_id}_{n}`` (when the id is the
        name's own). Such an image's ``url`` is "" until ``save`` writes its sidecar."""
        found: dict[int, ImageFile] = {}
        expected = 0
        if not self.root.is_dir():
            return found, expected
        tag = safe(task_id)
        named = re.compile(rf"\d{{8}}-\d{{6}}_.+_{re.escape(tag)}_(\d{{1,3}})\.(?:png|jpg|webp|bmp)")
        bare: dict[int, Path] = {}
        for path in sorted(self.root.glob(f"*_{tag}_*")):
            if path.suffix != ".json":
                if tag == task_id and (match := named.fullmatch(path.name)):
                    bare.setdefault(int(match[1]), path)  # the earliest, should there be two
                continue
            try:
                meta = json.loads(path.read_text(encoding="utf-8"))
                image = Path(meta["path"])
                if meta["task_id"] != task_id or not image.is_file():
                    continue
                found[int(meta["index"])] = ImageFile(
                    path=str(image),
                    url=meta["url"],
                    width=meta["width"],
                    height=meta["height"],
                    bytes=meta["bytes"],
                    sha256=meta["sha256"],
                )
                expected = int(meta["count"])
            except (OSError, ValueError, KeyError):
                continue
        for index, path in bare.items():
            if index not in found and (image := _describe(path)) is not None:
                found[index] = image
        return found, expected

    def find(self, task_id: str) -> list[ImageFile] | None:
        """Every image of ``task_id`` already saved (by an earlier call or an earlier run), or None."""
        found, expected = self._existing(task_id)
        if not found or len(found) != expected:  # a partial set is not a result: the rest must still be fetched
            return None
        if any(not image.url for image in found.values()):  # one without its sidecar: save() writes it
            return None
        return [found[index] for index in sorted(found)]

    async def save(
        self,
        task_id: str,
        urls: Sequence[str],
        record: TaskRecord | None,
        extra: Mapping[str, Any],
        *,
        resume: bool = True,
    ) -> list[ImageFile]:
        """Download every URL concurrently and write it with its sidecar. Raises the first DownloadError or
        OSError after every download has finished or failed (the saved ones stay for the next attempt).

        With ``resume``, images an earlier attempt saved are kept rather than fetched again; finding them reads
        the whole output folder, so the caller passes False when no attempt can have begun."""
        await anyio.to_thread.run_sync(lambda: self.root.mkdir(parents=True, exist_ok=True))
        model = record.model if record else str(extra.get("model") or "unknown-model")
        existing = (await anyio.to_thread.run_sync(self._existing, task_id))[0] if resume else {}
        saved: list[ImageFile | None] = [existing.get(index) for index in range(1, len(urls) + 1)]
        errors: list[DownloadError | OSError] = []
        meta = {**extra, "count": len(urls)}

        async def one(index: int, url: str) -> None:
            kept = saved[index - 1]
            if kept is not None and kept.url:  # kept from an earlier, partly failed attempt
                return
            try:
                if kept is not None:  # saved, but the sidecar was never written: write it, never download again
                    saved[index - 1] = await anyio.to_thread.run_sync(
                        self._sidecar, kept.model_copy(update={"url": url}), index, task_id, record, meta
                    )
                    return
                stem = self._name(task_id, index, model)
                part = await self._download(url, stem)
                try:
                    saved[index - 1] = await anyio.to_thread.run_sync(
                        self._keep, part, url, stem, index, task_id, record, meta
                    )
                finally:
                    part.discard()  # nothing is left to remove once it was kept under its final name
            except (DownloadError, OSError) as exc:
                errors.append(exc)

        async with anyio.create_task_group() as group:
            for index, url in enumerate(urls, start=1):
                group.start_soon(one, index, url)
        if errors:
            raise errors[0]
        return [image for image in saved if image is not None]

    async def _download(self, url: str, stem: str) -> _Part:
        import stamina  # off the start path

        async for attempt in stamina.retry_context(on=_retry_download, attempts=4, timeout=60, wait_initial=0.5):
            with attempt:
                return await self._fetch(url, stem)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetch(self, url: str, stem: str) -> _Part:
        """Stream one result into a temp file beside its final name, hashing it on the way: a 4K result is
        never held whole in memory, and writing overlaps receiving."""
        async with self._get(url) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode("utf-8", "replace")
                expired = response.status_code == 403 and "expired" in text.lower()
                why = "the result URL has expired (they last 24 h)" if expired else f"HTTP {response.status_code}"
                raise DownloadError(
                    url, f"cannot download result image: {why}", status=response.status_code, expired=expired
                )
            part = await anyio.to_thread.run_sync(_Part.create, self.root, stem)
            try:
                pending = bytearray()
                async for chunk in response.aiter_bytes():
                    pending += chunk
                    if len(pending) >= WRITE_CHUNK:
                        full, pending = pending, bytearray()
                        await anyio.to_thread.run_sync(part.write, full)
                await anyio.to_thread.run_sync(part.finish, pending)
            except httpx2.TransportError as exc:
                await anyio.to_thread.run_sync(part.discard)
                raise DownloadError(url, f"download failed: {exc!r}") from None
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(part.discard)
                raise
            return part

    @asynccontextmanager
    async def _get(self, url: str) -> AsyncGenerator[httpx2.Response]:
        """A streamed GET with every hop checked, and connected to the address its check approved: the URL itself
        and each redirect target."""
        for _ in range(MAX_REDIRECTS + 1):
            request = self._http.build_request("GET", url, timeout=httpx2.Timeout(60.0))
            try:
                response = await send_checked(self._http, request, api_base_url=self._api_base_url, stream=True)
            except AccessDenied as exc:
                raise DownloadError(url, str(exc), status=403) from None
            except httpx2.TransportError as exc:
                raise DownloadError(url, f"download failed: {exc!r}") from None
            try:
                if not response.is_redirect or "location" not in response.headers:
                    yield response
                    return
                url = str(httpx2.URL(url).join(response.headers["location"]))  # the name's, not the address's
            finally:
                await response.aclose()
        raise DownloadError(url, f"more than {MAX_REDIRECTS} redirects", status=310)

    def _keep(
        self,
        part: _Part,
        url: str,
        stem: str,
        index: int,
        task_id: str,
        record: TaskRecord | None,
        extra: Mapping[str, Any],
    ) -> ImageFile:
        """Give a downloaded image its final name (after checking it is one) and write its sidecar."""
        from .pillow import Image, UnidentifiedImageError

        try:
            with Image.open(part.path) as image:
                fmt, (width, height) = image.format or "PNG", image.size
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            raise DownloadError(url, "the result is not an image") from None
        path = self.root / f"{stem}{_EXTENSIONS.get(fmt, '.png')}"
        os.replace(part.path, path)
        image = ImageFile(path=str(path), url=url, width=width, height=height, bytes=part.size, sha256=part.sha256)
        return self._sidecar(image, index, task_id, record, extra)

    def _sidecar(
        self, image: ImageFile, index: int, task_id: str, record: TaskRecord | None, extra: Mapping[str, Any]
    ) -> ImageFile:
        """Write the JSON sidecar beside a saved image, saying where it came from."""
        sidecar = {
            "task_id": task_id,
            "index": index,
            "path": image.path,
            "url": image.url,
            "width": image.width,
            "height": image.height,
            "bytes": image.bytes,
            "sha256": image.sha256,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **(
                {
                    "model": record.model,
                    "prompt": record.prompt,
                    "parameters": dict(record.parameters),
                    "adjustments": list(record.adjustments),
                    "instruction": record.instruction,
                    "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.submitted)),
                }
                if record
                else {}
            ),
            **dict(extra),
        }
        _atomic_write(Path(image.path).with_suffix(".json"), json.dumps(sidecar, ensure_ascii=False, indent=2).encode())
        return image


def _describe(path: Path) -> ImageFile | None:
    """A saved image known only by its name (its sidecar missing): its size, length and sha256 read back from the
    file, which was complete and fsync'd before it was renamed. None if it is not an image."""
    from .pillow import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
        digest, size = hashlib.sha256(), 0
        with path.open("rb") as file:
            while chunk := file.read(WRITE_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return None
    return ImageFile(path=str(path), url="", width=width, height=height, bytes=size, sha256=digest.hexdigest())


def saved_image(journal: Journal, root: Path, name: str) -> Path | None:
    """The file ``name`` in ``root`` if the journal records it as a saved image of the task its name carries
    (``{time}_{model}_{task_id}_{n}``); None for any other file there, however it is named."""
    parts = name.rsplit(".", 1)[0].split("_")
    target = (root / name).resolve()
    if len(parts) < 4 or target.parent != root.resolve():
        return None
    for start in range(2, len(parts) - 1):  # the model is one part or more, the task id the rest
        row = journal.get("_".join(parts[start:-1]))
        if row is not None and any(Path(image["path"]).resolve() == target for image in row.images):
            return target if target.is_file() else None
    return None


WRITE_CHUNK = 1 << 20
"""Bytes of a download gathered before they are written out (one thread hop per MB, not per network read)."""


class _Part:
    """A result image being downloaded: a temp file in the output folder, its length and running sha256.
    Finished means written and fsync'd, so renaming it can never expose a half-written image."""

    def __init__(self, path: Path, out: io.BufferedWriter) -> None:
        self.path = path
        self.size = 0
        self._out = out
        self._digest = hashlib.sha256()

    @classmethod
    def create(cls, folder: Path, stem: str) -> _Part:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{stem}.{temp_owner()}.", suffix=PART_SUFFIX)
        return cls(Path(temp), os.fdopen(fd, "wb"))

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def write(self, data: bytes | bytearray) -> None:
        self._digest.update(data)
        self._out.write(data)
        self.size += len(data)

    def finish(self, data: bytes | bytearray) -> None:
        self.write(data)
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()

    def discard(self) -> None:
        self._out.close()
        self.path.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{temp_owner()}.", suffix=PART_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


PART_SUFFIX = ".part"
_RESULT_NAME = r"\d{8}-\d{6}_[A-Za-z0-9._-]+_[A-Za-z0-9._-]+_\d+(?:\.(?:png|jpg|webp|bmp|json))?|gallery"
_OURS = re.compile(
    rf"\.(?:{_RESULT_NAME})\.(?:(?P<pid>\d+)(?:-(?P<start>\d+))?@(?P<host>[A-Za-z0-9-]*)\.)?[a-z0-9_]{{8}}\{PART_SUFFIX}"
)
"""The temp files this server writes, and only those: ``.{result name}.{owner}.{random}.part``, where the result
name is ``{time}_{model}_{task_id}_{n}`` (with ``.png``, ``.jpg``, ``.webp``, ``.bmp`` or ``.json``, or none) or
the gallery's, the owner ``{pid}-{start}@{host}`` (before it, ``{pid}@{host}``, and before that none) and the
random part mkstemp's eight characters. A user's ``.thesis.docx.part`` is none of them."""
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
