"""What the result viewer shows for a task: its prompt and model, its inputs (as they were sent) beside its
outputs, and the texts of an interleaved answer, with small JPEG thumbnails of every image.

Plain Python: the MCP adapter puts this, as data URLs, in the ``_meta`` of a result meant for the viewer page, so
the page needs no network. Inputs are shown as they were sent: ``submit`` journals a small JPEG of each local or
inline input's bytes as sent (``sent_thumbnail``, in the row's ``inputs``), so a file replaced or deleted since
does not change the view; a remote input has none (the viewer names it). A row journaled before there were such
thumbnails (no ``thumb`` key) is shown from the file at its recorded path, as the gallery does. Outputs are the
saved files.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..results.outcomes import EditResult
from ..results.previews import Reader, preview

if TYPE_CHECKING:
    from ..images.references import PreparedImage
    from ..journal import TaskRow

INPUT_THUMB_SIDE = 320
SENT_THUMB_SIDE = 256
"""The long side of the thumbnail journaled with each input as sent: about 15 KB of JPEG for a photo."""


@dataclass(frozen=True)
class ViewedInput:
    index: int
    """1-based, as the prompt names it."""
    source: str
    thumb: bytes | None


@dataclass(frozen=True)
class ViewedOutput:
    path: str
    width: int
    height: int
    thumb: bytes | None
    text: str | None
    """The interleaved text that goes with this image, when there is one."""


@dataclass(frozen=True)
class TaskView:
    status: str
    model: str | None
    task_id: str | None
    prompt: str | None
    instruction: str | None
    inputs: tuple[ViewedInput, ...]
    outputs: tuple[ViewedOutput, ...]
    texts: tuple[str, ...]
    """Texts without an image to stand beside."""


def input_thumbnail(path: Path, side: int = INPUT_THUMB_SIDE) -> bytes | None:
    """A JPEG of the image at ``path`` as it was sent (orientation applied, alpha on white), or None if it
    cannot be read (moved or deleted since, or no longer a regular file: a FIFO would block the reader)."""
    from ..images.references import open_local

    try:
        with open_local(path, None)[1] as file:
            return _thumbnail(file, side)
    except (OSError, ValueError):  # open_local's reasons are ValueErrors
        return None


def sent_thumbnail(image: PreparedImage, side: int = SENT_THUMB_SIDE) -> bytes | None:
    """A JPEG, at most ``side`` px, of ``image``'s bytes as they are sent (conformed: turned, flattened,
    shrunk), or None for a remote image and for one that cannot be read now (a file sent unchanged that has
    changed since its check: sending it is refused anyway). Reads and decodes: call it on a worker thread, before
    the request's images are placed (which lets go of their bytes)."""
    from ..images.references import RefKind

    if image.kind not in (RefKind.LOCAL, RefKind.DATA):
        return None  # a remote or oss:// reference: nothing of it is here
    try:
        return _thumbnail(io.BytesIO(image.read_payload()), side)
    except (OSError, ValueError):  # InputChanged is a ValueError
        return None


def _thumbnail(file: IO[bytes], side: int) -> bytes | None:
    """A JPEG of the image in ``file`` at most ``side`` px, as it is sent, or None if it cannot be decoded."""
    from ..images.decoding import exif_orientation
    from ..images.pillow import Image  # off the start path, as everything that decodes
    from ..images.pixels import small_as_sent
    from ..images.runtime import imaging

    imaging()  # Pillow's guard set before decoding
    try:
        with Image.open(file) as image:
            shown = small_as_sent(image, exif_orientation(image), side)
            out = io.BytesIO()
            shown.convert("RGB").save(out, "JPEG", quality=75)
            return out.getvalue()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def journaled_thumb(item: dict[str, Any]) -> bytes | None:
    """The thumbnail ``submit`` journaled with an input (base64 in the row), or the file at its recorded path
    for a row from before there were such thumbnails."""
    if "thumb" in item:
        return base64.b64decode(item["thumb"]) if item["thumb"] else None
    local = item.get("path")
    return input_thumbnail(Path(local)) if local else None


def task_view(result: EditResult, row: TaskRow | None, read: Reader | None = None) -> TaskView:
    """The view of ``result``, with its prompt and inputs from the journal's ``row`` (None: unknown), its outputs
    read by ``read`` when given (``ResultStore.reader``). Reads and shrinks every image: call it on a worker
    thread."""
    inputs: list[ViewedInput] = []
    for index, item in enumerate(row.inputs if row else [], start=1):
        inputs.append(ViewedInput(index, str(item.get("ref", "")), journaled_thumb(item)))
    before: dict[str, str] = {}  # an interleaved answer: the texts just before each image, in the answer's order
    texts: list[str] = []
    for part in result.parts:
        if part.type == "text":
            texts.append(part.text or "")
        elif part.path is not None:
            before[part.path], texts = "\n\n".join(texts), []
    outputs = tuple(
        ViewedOutput(image.path, image.width, image.height, preview(image.path, read), before.get(image.path) or None)
        for image in result.images
    )
    return TaskView(
        status=result.status,
        model=result.model or (row.model if row else None),
        task_id=result.task_id,
        prompt=row.prompt if row else None,
        instruction=result.instruction or (row.instruction if row else None),
        inputs=tuple(inputs),
        outputs=outputs,
        texts=tuple(texts),  # those after the last image
    )
