"""Small JPEG previews of result images, so a multimodal agent can see what it made.

``previews(paths, read)`` returns one JPEG (long side ≤ ``PREVIEW_SIDE``) per path, or None for a file that cannot be
read as an image, made two at a time on worker threads (decoding a 2K PNG takes ~0.1 s, outside the GIL).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import anyio
import anyio.to_thread

Reader = Callable[[str], bytes]
"""Reads a saved image's bytes by its location (``ResultSink.read``)."""
PREVIEW_SIDE = 512
PREVIEW_WORKERS = 2


def preview(path: str, read: Reader | None = None) -> bytes | None:
    """A JPEG of the image at ``path`` (read by ``read`` when given: an object in a bucket), its long side at most
    PREVIEW_SIDE; None if it is not a readable image."""
    from ..images.pillow import Image
    from ..images.runtime import imaging

    imaging()  # Pillow's guard set before decoding

    try:
        with Image.open(io.BytesIO(read(path)) if read else path) as image:
            # Box-reduced to within 1x of the preview, then resampled: twice as fast as the default 2x, and
            # indistinguishable at this size.
            image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), reducing_gap=1.0)
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=80)
    except OSError:
        return None
    return buffer.getvalue()


async def previews(paths: Sequence[str], read: Reader | None = None) -> list[bytes | None]:
    """One preview per path (read by ``read`` when given), in order, two at a time."""
    made: list[bytes | None] = [None] * len(paths)
    limiter = anyio.CapacityLimiter(PREVIEW_WORKERS)

    async def one(index: int) -> None:
        made[index] = await anyio.to_thread.run_sync(preview, paths[index], read, limiter=limiter)

    async with anyio.create_task_group() as group:
        for index in range(len(paths)):
            group.start_soon(one, index)
    return made
