"""What the result viewer shows for a task: its prompt and model, its inputs (as they were sent) beside its
outputs, and the texts of an interleaved answer, with small JPEG thumbnails of every image.

Plain Python: the MCP adapter puts this, as data URLs, in the ``_meta`` of a result meant for the viewer page, so
the page needs no network. Inputs are read from the paths the journal recorded (inline and remote inputs have
no path: the viewer names them), as the gallery does; outputs are the saved files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..results.outcomes import EditResult
from ..results.previews import Reader, preview

if TYPE_CHECKING:
    from ..journal import TaskRow

INPUT_THUMB_SIDE = 320


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
    from ..images.decoding import exif_orientation
    from ..images.pillow import Image  # off the start path, as everything that decodes
    from ..images.pixels import small_as_sent
    from ..images.references import open_local
    from ..images.runtime import imaging

    imaging()  # Pillow's guard set before decoding

    try:
        with open_local(path, None)[1] as file, Image.open(file) as image:
            shown = small_as_sent(image, exif_orientation(image), side)
            out = io.BytesIO()
            shown.convert("RGB").save(out, "JPEG", quality=80)
            return out.getvalue()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def task_view(result: EditResult, row: TaskRow | None, read: Reader | None = None) -> TaskView:
    """The view of ``result``, with its prompt and inputs from the journal's ``row`` (None: unknown), its outputs
    read by ``read`` when given (``ResultStore.reader``). Reads and shrinks every image: call it on a worker
    thread."""
    inputs: list[ViewedInput] = []
    for index, item in enumerate(row.inputs if row else [], start=1):
        local = item.get("path")
        thumb = input_thumbnail(Path(local)) if local else None
        inputs.append(ViewedInput(index, str(item.get("ref", "")), thumb))
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
