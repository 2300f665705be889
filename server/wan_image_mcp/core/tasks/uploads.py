"""How local images reach DashScope: inline as ``data:`` URLs up to the inline limit, larger ones through the
temporary upload (getPolicy, a form POST to the upload host, then ``oss://``), each (bytes, model) uploaded once
while its URL lives (the journal remembers it for 47 h; uploads live 48 h: docs/dashscope-api.md#uploads)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import uuid
from typing import Any, Literal

import anyio
import anyio.to_thread

from ...dashscope import DashScopeClient
from ...dashscope.errors import UploadPolicyRefused
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import InputChanged
from ..images.references import MIME_TYPES, HashingReader, PreparedImage, RefKind, close_spools
from ..journal import AsyncJournal
from ..requests.validation import PreparedRequest

log = logging.getLogger("wan_image_mcp")
_LOCAL = (RefKind.LOCAL, RefKind.DATA)
Carriage = Literal["inline", "upload", "url"]
UPLOAD_REUSE = 47 * 3600.0
"""Reuse an upload for less than its 48 h life."""


class Uploads:
    """Places a request's local images: inline, or uploaded once and reused (the cache is the journal's)."""

    def __init__(self, journal: AsyncJournal, *, inline_max: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self._journal = journal
        self._inline_max = inline_max
        self._clock = clock

    def carriage(self, image: PreparedImage) -> Carriage:
        """How ``image`` reaches DashScope: ``url`` (a remote or ``oss://`` URL, passed as it is), ``inline`` (a
        ``data:`` URL in the request, up to the inline limit) or ``upload`` (a temporary upload first)."""
        if image.kind not in _LOCAL:
            return "url"
        return "inline" if (image.bytes or 0) <= self._inline_max else "upload"

    async def place(self, client: DashScopeClient, request: PreparedRequest) -> PreparedRequest:
        """Local and inline images over the inline limit travel as ``oss://`` temporary uploads, each uploaded
        once per (bytes, model) while its URL lives; the request then carries the resolve header. A local file
        sent unchanged is streamed from disk and proven to be the bytes that were checked; one under the limit
        is read back to go inline. Returns the request with each image's payload or URL set; raises the client's
        DashScopeError (UploadPolicyRefused after a refreshed policy is refused too) or InputChanged. Either way
        ``request``'s spools are closed on the way out."""
        policy: dict[str, Any] | None = None
        images: list[PreparedImage] = []
        try:
            for image in request.images:
                how = self.carriage(image)
                if how == "url":
                    images.append(image)
                elif how == "inline":
                    payload = image.payload or await anyio.to_thread.run_sync(image.read_payload)
                    images.append(dataclasses.replace(image, payload=payload, spool=None))
                else:
                    digest = image.sha256 or await anyio.to_thread.run_sync(_digest, image)
                    since = self._clock.time() - UPLOAD_REUSE
                    url = await self._journal.cached_upload(digest, request.model, since=since)
                    if url is None:
                        url, policy = await self._upload(client, request.model, image, digest, policy)
                    images.append(dataclasses.replace(image, url=url, payload=None, spool=None))  # bytes not needed
        finally:
            close_spools(request.images)  # read into ``images`` or uploaded by now, or the call failed
        return dataclasses.replace(request, images=tuple(images))

    async def _upload(
        self, client: DashScopeClient, model: str, image: PreparedImage, digest: str, policy: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any]]:
        """Upload one image, refreshing a refused (expired or rejected) policy once; returns its URL and the policy
        to reuse."""
        name = f"{digest[:16]}-{uuid.uuid4().hex[:8]}.{(image.format or 'png').lower().replace('jpeg', 'jpg')}"
        mime = MIME_TYPES.get(image.format or "PNG", "image/png")
        policy = policy or await client.upload_policy(model)
        try:
            url = await _send(client, policy, image, digest, name, mime)
        except UploadPolicyRefused:
            policy = await client.upload_policy(model)
            url = await _send(client, policy, image, digest, name, mime)
        await self._journal.remember_upload(digest, model, url, image.bytes or 0)
        log.info("uploaded image %d (%d bytes) as %s", image.index, image.bytes or 0, url)
        return url, policy


def _digest(image: PreparedImage) -> str:
    """The sha256 of a conformed image's bytes, read (from its spool, maybe) on the calling thread."""
    return hashlib.sha256(image.read_payload()).hexdigest()


async def _send(
    client: DashScopeClient, policy: dict[str, Any], image: PreparedImage, digest: str, name: str, mime: str
) -> str:
    """Upload an image's bytes: conformed (from memory or its spool), or a file sent unchanged streamed from disk
    and proven to be the bytes that were checked."""
    if image.sha256 is None:
        return await client.upload(policy, await anyio.to_thread.run_sync(image.read_payload), name, mime)
    assert image.path is not None
    with HashingReader(image.path) as file:
        url = await client.upload(policy, file, name, mime)
    if file.hexdigest() != digest:
        raise InputChanged(image.path, image.index)
    return url
