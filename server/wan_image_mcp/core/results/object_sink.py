"""Result images in S3-compatible object storage (AWS S3, Alibaba Cloud OSS through its S3-compatible endpoint,
MinIO), through obstore: ``WAN_MCP_OUTPUT_URL=s3://bucket/prefix``.

An image is downloaded into a temp file in the local output folder as always (hashed, checked to be an image),
then stored with one PUT under its final key, ``{prefix}/{time}_{model}_{task_id}_{n}.{ext}``, and its sidecar
with another beside it (``.json``). A single PUT is atomic in S3: the object appears whole when the request
completes, or not at all (an interrupted or failed upload leaves nothing under the key). Each PUT is also
conditional (``If-None-Match: *``), so an object, once there, is never replaced: a second writer of the same key
gets "already exists" and takes the object that is there. Images are found again by listing the prefix
(``existing``), exactly as the folder is read; an image whose sidecar never got written is known by its name.
Each image's location is ``s3://bucket/prefix/name``, and its ``download_url`` a presigned GET.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError
from obstore.store import S3Store

from .local_folder import from_sidecar, named_rows, result_name, safe
from .outcomes import ImageFile
from .probe import PROBE_NAME

if TYPE_CHECKING:
    from obstore.store import RetryConfig, S3Config

    from ..journal import Journal, Tenant


RETRIES = 4
RETRY: RetryConfig = {
    "max_retries": RETRIES,
    "retry_timeout": timedelta(seconds=60),
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=5), "base": 2},
}
"""A request the store refused with a 5xx or a dropped connection is tried again four times within a minute; then
the save fails like a full disk, and the task's images are fetched and stored again on the next check."""
AT_START: RetryConfig = {"max_retries": 0, "retry_timeout": timedelta(seconds=10)}
"""The start's one check (``check``) is not tried again: a wrong endpoint is said at once, not after a minute."""


class ObjectSink:
    """A bucket and prefix as a ``ResultSink``. ``options`` are obstore's S3 settings (``Settings.object_store``),
    over what obstore reads from the AWS_* variables itself; ``expires`` is how long a ``download_url`` lasts."""

    def __init__(
        self,
        url: str,
        *,
        options: Mapping[str, str] | None = None,
        expires: float = 3600.0,
        retry: RetryConfig = RETRY,
    ) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        config = cast("S3Config", dict(options or {}))
        plain = config.get("endpoint", "").startswith("http://")  # MinIO on a private network, a test server
        self.store = S3Store(
            bucket,
            prefix=self.prefix or None,
            config=config,
            client_options={"allow_http": plain, "timeout": timedelta(seconds=60)},
            retry_config=retry,
        )
        self.expires = timedelta(seconds=expires)
        self._base = f"s3://{bucket}/{self.prefix + '/' if self.prefix else ''}"

    @property
    def where(self) -> str:
        return self._base.rstrip("/")

    def check(self) -> None:
        """Raise OSError unless the bucket answers a listing of the prefix: it exists, the endpoint is right and
        the credentials may list it."""
        try:
            listing = self.store.list(chunk_size=1, return_arrow=False)  # pyright: ignore[reportUnknownMemberType]
            next(iter(listing), None)
        except (BaseError, OSError) as exc:
            raise OSError(f"cannot list {self.where}: {said(exc)}") from None

    def location(self, name: str) -> str:
        """The location (``ImageFile.path``) of the object ``name`` under the prefix."""
        return self._base + name

    def _name(self, location: str) -> str:
        if not location.startswith(self._base) or "/" in location[len(self._base) :]:
            raise FileNotFoundError(f"{location} is not in {self.where}")
        return location[len(self._base) :]

    def existing(self, task_id: str) -> tuple[dict[int, ImageFile], int]:
        tag = safe(task_id)
        try:
            listing = self.store.list(return_arrow=False)  # pyright: ignore[reportUnknownMemberType]  # the arrow overload
            names = {meta["path"] for batch in listing for meta in batch}
        except BaseError as exc:
            raise OSError(f"cannot list {self.where}: {said(exc)}") from None
        found: dict[int, ImageFile] = {}
        expected = 0
        named, bare = result_name(tag), dict[int, str]()
        for name in sorted(name for name in names if f"_{tag}_" in name):
            if not name.endswith(".json"):
                if tag == task_id and (match := named.fullmatch(name)):
                    bare.setdefault(int(match[1]), name)  # the earliest, should there be two
                continue
            try:
                meta = json.loads(self.read(self.location(name)))
                if meta["task_id"] != task_id or self._name(meta["path"]) not in names:
                    continue
                found[int(meta["index"])] = from_sidecar(meta, meta["path"])
                expected = int(meta["count"])
            except (OSError, ValueError, KeyError):
                continue
        for index, name in bare.items():
            if index not in found and (image := self._describe(name)) is not None:
                found[index] = image
        return found, expected

    def _describe(self, name: str) -> ImageFile | None:
        """An image stored without its sidecar: its size, length and sha256 read back from the object, which was
        stored whole. None if it cannot be read or is not an image."""
        from ..images.pillow import Image, UnidentifiedImageError
        from ..images.runtime import imaging

        imaging()  # Pillow's guard set before decoding

        try:
            data = self.read(self.location(name))
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            return None
        sha = hashlib.sha256(data).hexdigest()
        return ImageFile(path=self.location(name), url="", width=width, height=height, bytes=len(data), sha256=sha)

    def keep(self, part: Path, name: str) -> str:
        self._create(name, part.read_bytes())
        return self.location(name)

    def write_sidecar(self, location: str, data: bytes) -> None:
        self._create(self._name(location).rsplit(".", 1)[0] + ".json", data)

    def write_document(self, location: str, data: bytes) -> None:
        self._create(self._name(location), data)

    def _create(self, name: str, data: bytes) -> None:
        """One conditional PUT of ``data`` under ``name``: whole or nothing, and never over an object already
        there (which another writer stored whole: it is kept). Raises OSError naming the object."""
        try:
            self.store.put(name, data, mode="create", use_multipart=False)
        except AlreadyExistsError:
            return
        except BaseError as exc:
            raise OSError(f"cannot store {self.location(name)}: {said(exc)}") from None

    def present(self, location: str) -> bool:
        try:
            self.store.head(self._name(location))
        except FileNotFoundError:  # what obstore raises for a missing object
            return False
        except BaseError:  # the store cannot be asked just now: trust the journal rather than download again
            return True
        return True

    def read(self, location: str) -> bytes:
        try:
            return bytes(self.store.get(self._name(location)).bytes())
        except BaseError as exc:
            raise OSError(f"cannot read {location}: {said(exc)}") from None

    def lookup(self, journal: Journal, name: str, tenant: Tenant | None = None) -> str | None:
        location = self.location(name)
        for row in named_rows(journal, name, tenant):
            if any(image["path"] == location for image in row.images):
                return location if self.present(location) else None
        return None

    def served_name(self, location: str) -> str | None:
        name = location.removeprefix(self._base)
        return name if location.startswith(self._base) and name and "/" not in name else None

    def probe(self) -> None:
        """One tiny object stored under the prefix and deleted: proves the credentials may write there (a listing
        proves only that they may read). Raises OSError naming the bucket."""
        name = f".{PROBE_NAME}-{uuid.uuid4().hex}"
        try:
            self.store.put(name, b"ok", use_multipart=False)
            self.store.delete(name)
        except BaseError as exc:
            raise OSError(f"cannot store a test object in {self.where}: {said(exc)}") from None

    def download_url(self, location: str) -> str | None:
        return obstore.sign(self.store, "GET", self._name(location), self.expires)


def said(exc: BaseException) -> str:
    """An error in one line: an obstore message (a multi-line dump) as its first line, cut to 300 characters,
    with the S3 error code when the answer carried one; a one-line message as it is."""
    text = str(exc).strip()
    if "\n" not in text:
        return text or type(exc).__name__
    code = re.search(r"<Code>(\w+)</Code>", text)
    first = text.splitlines()[0][:300]
    return f"{first} ({code[1]})" if code else first
