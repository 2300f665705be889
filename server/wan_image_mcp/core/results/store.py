"""Result images downloaded and recorded: fetched at once (URLs expire in 24 h), streamed into a temp file and
renamed into place (temp file + rename, fsync'd first), each with a JSON sidecar saying where it came from.

An image is saved once: one already renamed into place (found by ``local_folder.existing``, sidecar or not) is
not downloaded again, and its missing sidecar is written then. What the names in the folder are, and the
removal of temp files a killed server left, are ``local_folder``'s."""

from __future__ import annotations

import hashlib
import io
import json
import os
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

from ...dashscope.connections import unreachable
from ...dashscope.errors import DownloadError, UrlRefused
from ...dashscope.transport import send_checked
from ..errors import ImagesNotSaved
from .local_folder import EXTENSIONS, PART_SUFFIX, existing, result_stem, saved_image, temp_owner
from .outcomes import ImageFile
from .previews import Reader
from .probe import probe_output, prove_folder
from .sinks import ResultSink

if TYPE_CHECKING:
    from ..journal import Journal, TaskRow, Tenant


@dataclass(frozen=True)
class TaskRecord:
    """What the server knows about a task it submitted: written into every sidecar."""

    model: str
    prompt: str
    parameters: Mapping[str, Any]
    adjustments: tuple[str, ...] = ()
    instruction: str | None = None
    submitted: float = field(default_factory=time.time)
    candidate_of: int | None = None
    """The journal id of the AMBIGUOUS submission that may have made the task (a candidate), or None."""

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
            candidate_of=row.candidate_of,
        )


def _retry_download(exc: BaseException) -> bool:
    if isinstance(exc, DownloadError):
        return not exc.expired and (exc.status is None or exc.status >= 500 or exc.status == 429)
    return False


MAX_REDIRECTS = 3
RESULT_URL_RULE = (
    "A result is fetched only over https from a host that resolves to public addresses, or from the API's own host "
    "(DASHSCOPE_HTTP_BASE_URL, or WAN_MCP_REGION's), each redirect checked the same way"
)
"""The rule a refused result URL broke, and the settings that decide it: said with every refusal."""


class ResultStore:
    """Downloads result images into temp files in ``root`` and keeps them in ``sink`` (by default the folder
    ``root`` itself, as ``LocalFolder``; an S3 bucket with ``WAN_MCP_OUTPUT_URL``)."""

    def __init__(
        self, root: Path, http: httpx2.AsyncClient, *, api_base_url: str, sink: ResultSink | None = None
    ) -> None:
        self.root = root
        self.sink: ResultSink = sink or LocalFolder(root)
        self._http = http
        self._api_base_url = api_base_url

    def _existing(self, task_id: str) -> tuple[dict[int, ImageFile], int]:
        """Images of ``task_id`` already saved in the sink, by index, and how many it has."""
        return self.sink.existing(task_id)

    @property
    def reader(self) -> Reader | None:
        """How previews read a saved image: None for a file in the output folder (opened by its path), else the
        sink's ``read`` (an object in a bucket)."""
        return None if isinstance(self.sink, LocalFolder) else self.sink.read

    def probe(self) -> None:
        """Prove the output writable: the folder temp files go to and, when images are kept elsewhere (a bucket),
        that place too (``probe.probe_output``). Raises OutputNotWritable. Blocks."""
        probe_output(self.root, None if isinstance(self.sink, LocalFolder) else self.sink)

    def kept(self, images: Sequence[Mapping[str, Any]]) -> bool:
        """Whether every image the journal recorded (``ImageFile`` dicts) is still in the sink. Blocks."""
        return all(self.sink.present(str(image["path"])) for image in images)

    def linked(self, images: Sequence[ImageFile]) -> list[ImageFile]:
        """``images`` each with its ``download_url`` where the sink gives one (an S3 sink's presigned GET)."""
        return [
            image.model_copy(update={"download_url": url}) if (url := self.sink.download_url(image.path)) else image
            for image in images
        ]

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
        """Download every URL concurrently and write it with its sidecar. Raises ImagesNotSaved, saying which
        images failed and why (a DownloadError or an OSError each) and holding the saved ones, after every download
        has finished or failed (the saved ones stay for the next attempt); an OSError when the temp folder cannot
        be made.

        With ``resume``, images an earlier attempt saved are kept rather than fetched again; finding them reads
        the whole output folder, so the caller passes False when no attempt can have begun."""
        await anyio.to_thread.run_sync(lambda: self.root.mkdir(parents=True, exist_ok=True))  # temp files go here
        model = record.model if record else str(extra.get("model") or "unknown-model")
        existing = (await anyio.to_thread.run_sync(self._existing, task_id))[0] if resume else {}
        saved: list[ImageFile | None] = [existing.get(index) for index in range(1, len(urls) + 1)]
        errors: dict[int, DownloadError | OSError] = {}
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
                stem = result_stem(task_id, index, model)
                part = await self._download(url, stem)
                try:
                    saved[index - 1] = await anyio.to_thread.run_sync(
                        self._keep, part, url, stem, index, task_id, record, meta
                    )
                finally:
                    part.discard()  # nothing is left to remove once it was kept under its final name
            except (DownloadError, OSError) as exc:
                errors[index] = exc

        async with anyio.create_task_group() as group:
            for index, url in enumerate(urls, start=1):
                group.start_soon(one, index, url)
        kept = [image for image in saved if image is not None]
        if errors:
            raise ImagesNotSaved(errors, kept)
        return kept

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
                raise DownloadError(url, f"download failed ({unreachable(exc)})") from None
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
            except UrlRefused as exc:
                raise DownloadError(url, f"{exc}. {RESULT_URL_RULE}", status=403) from None
            except httpx2.TransportError as exc:
                raise DownloadError(url, f"download failed ({unreachable(exc)})") from None
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
        """Keep a downloaded image under its final name (after checking it is one) and write its sidecar."""
        from ..images.pillow import Image, UnidentifiedImageError
        from ..images.runtime import imaging

        imaging()  # Pillow's guard set before decoding

        try:
            with Image.open(part.path) as image:
                fmt, (width, height) = image.format or "PNG", image.size
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            raise DownloadError(url, "the result is not an image") from None
        location = self.sink.keep(part.path, f"{stem}{EXTENSIONS.get(fmt, '.png')}")
        image = ImageFile(path=location, url=url, width=width, height=height, bytes=part.size, sha256=part.sha256)
        return self._sidecar(image, index, task_id, record, extra)

    def _sidecar(
        self, image: ImageFile, index: int, task_id: str, record: TaskRecord | None, extra: Mapping[str, Any]
    ) -> ImageFile:
        """Write the JSON sidecar of a saved image, saying where it came from."""
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
            **({"candidate_of": record.candidate_of} if record and record.candidate_of is not None else {}),
            **dict(extra),
        }
        self.sink.write_sidecar(image.path, json.dumps(sidecar, ensure_ascii=False, indent=2).encode())
        return image


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


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: into a temp file beside it, fsync'd, then renamed. Raises
    the OSError that stopped it (the temp file removed)."""
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


class LocalFolder:
    """The output folder as a ``ResultSink``: temp file renamed into place, sidecar beside it (``atomic_write``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def where(self) -> str:
        return str(self.root)

    def existing(self, task_id: str) -> tuple[dict[int, ImageFile], int]:
        return existing(self.root, task_id)

    def keep(self, part: Path, name: str) -> str:
        path = self.root / name
        os.replace(part, path)
        return str(path)

    def write_sidecar(self, location: str, data: bytes) -> None:
        atomic_write(Path(location).with_suffix(".json"), data)

    def write_document(self, location: str, data: bytes) -> None:
        atomic_write(Path(location), data)

    def present(self, location: str) -> bool:
        return Path(location).is_file()

    def read(self, location: str) -> bytes:
        return Path(location).read_bytes()

    def lookup(self, journal: Journal, name: str, tenant: Tenant | None = None) -> str | None:
        path = saved_image(journal, self.root, name, tenant)
        return None if path is None else str(path)

    def served_name(self, location: str) -> str | None:
        path = Path(location)
        return path.name if path.resolve().parent == self.root.resolve() and path.is_file() else None

    def probe(self) -> None:
        prove_folder(self.root)

    def download_url(self, location: str) -> str | None:
        del location
        return None
