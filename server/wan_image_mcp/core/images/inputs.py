"""Image references -> what goes on the wire, checked and, where possible, fixed: the one entry point.

``prepare_image`` reads a reference (``references``), has it decoded and checked (``decoding``) and conformed
to the model's ``ImageLimits`` (``conforming``, ``pixels``), on two threads of each call's own. Local and data
images are decoded with Pillow by content; remote and ``oss://`` URLs are passed through untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ..errors import InvalidRequest, Problem
from ..specs import ImageLimits
from .access import FileAccess
from .background import WHITE, Background
from .conforming import conform
from .decoding import FileIdentity
from .references import PreparedImage, RefKind, classify, decode_data_url, describe_ref, local_path, open_local
from .runtime import imaging

_T = TypeVar("_T")


IMAGE_THREADS = 2
"""Images of one call conformed at once: Pillow decodes and encodes outside the GIL, so two threads roughly
halve a many-image call on two cores. Each call has threads of its own, so a slow image holds up its own call
and no other; how many decoded pixels every call holds at once is bounded by the decode budget (``runtime``)."""


def on_image_threads(work: Callable[[int, str], _T], refs: Sequence[str]) -> list[_T]:
    """``work(index, ref)`` for each reference (1-based), in order: one image on the calling thread, more on
    threads of this call's own (``IMAGE_THREADS``), ended when they are done."""
    if len(refs) <= 1:
        return [work(index, ref) for index, ref in enumerate(refs, start=1)]
    with ThreadPoolExecutor(min(IMAGE_THREADS, len(refs)), thread_name_prefix="image") as pool:
        return list(pool.map(work, range(1, len(refs) + 1), refs))


def prepare_images(
    refs: Sequence[str],
    limits: ImageLimits,
    cwd: Path,
    access: FileAccess | None = None,
    background: Background = WHITE,
) -> list[PreparedImage | InvalidRequest]:
    """``prepare_image`` for each reference (1-based), in order, on the call's image threads."""

    def one(index: int, ref: str) -> PreparedImage | InvalidRequest:
        try:
            return prepare_image(ref, index, limits, cwd, access, background)
        except InvalidRequest as exc:
            return exc

    return on_image_threads(one, refs)


def prepare_image(
    ref: str,
    index: int,
    limits: ImageLimits,
    cwd: Path,
    access: FileAccess | None = None,
    background: Background = WHITE,
) -> PreparedImage:
    """Check and conform one reference, its transparency flattened onto ``background``. Raises InvalidRequest
    with a Problem naming image ``index``.

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
        return conform(
            data, index=index, kind=kind, source=source, limits=limits, problem=problem, background=background
        )
    try:
        path, file = open_local(local_path(ref, cwd), access)
    except ValueError as exc:
        raise problem(str(exc)) from None
    with file:
        key = (FileIdentity.of(file), limits)  # only images sent as they are (no alpha) are remembered
        checked = imaging().checked
        prepared = checked.get(key)
        if prepared is None:
            prepared = conform(
                file, index=index, kind=kind, source=source, limits=limits, problem=problem, background=background
            )
            checked.put(key, prepared)
        else:
            prepared = dataclasses.replace(prepared, index=index, source=source)
    return dataclasses.replace(prepared, path=str(path))
