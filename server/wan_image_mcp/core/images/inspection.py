"""What an image is, which models take it as it is, and a preview with a pixel grid for choosing boxes.

Plain Python: the ``inspect_image`` tool only translates. The grid is labelled in the image's own pixels as
the user sees it (EXIF orientation applied) — the space ``bbox_list`` coordinates live in.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DecodeTooCostly, InvalidRequest, Problem
from ..specs import SPECS, ImageLimits
from .access import FileAccess
from .background import WHITE, Background
from .conforming import conform_bytes, plan
from .decoding import DECODE_ERRORS, DecodeBudget, damaged, open_image, too_costly
from .inputs import on_image_threads
from .pillow import Image, ImageDraw, ImageFont
from .pixels import has_alpha, small_as_sent
from .references import BOXES_AS_SHOWN, RefKind, classify, decode_data_url, describe_ref, local_path, open_local

GRID_PREVIEW_SIDE = 768


@dataclass(frozen=True)
class ImageReport:
    index: int
    source: str
    kind: str
    width: int | None = None
    height: int | None = None
    format: str | None = None
    orientation: int | None = None
    bytes: int | None = None
    models: dict[str, str] = field(default_factory=dict[str, str])
    """model -> "as is" | "adjusted: …" | "refused: …" (or why it cannot be told)."""
    problem: str | None = None
    alpha_background: str | None = None
    """What its transparency is flattened onto when it has any ('white', 'black', '#FF0000'), else None."""


def _verdicts(image: Image.Image, orientation: int, size: int, background: Background) -> dict[str, str]:
    """Per model, what conforming would do, from the header alone (as ``conform`` decides it): no model's
    version is decoded, resized or encoded. Only the file limit's outcome (PNG, else JPEG, else smaller; JPEG
    at once for a JPEG or a lossless image of more than 16 Mpx) is known once encoded, so it is said to be
    settled then."""
    by_limits: dict[ImageLimits, str] = {}
    verdicts: dict[str, str] = {}
    for name, spec in SPECS.items():
        limits = spec.image
        if limits not in by_limits:
            try:
                todo = plan(image, orientation, size, limits, _raise, background=background)
                if (cost := conform_bytes(image, orientation, todo).peak) > DecodeBudget.BYTES:
                    raise _raise(too_costly(image, cost))  # as ``conform`` refuses it
            except InvalidRequest as exc:
                by_limits[limits] = "refused: " + exc.problems[0].message
            else:
                notes = list(todo.notes)
                mb = limits.max_bytes // 1_000_000
                if size > limits.max_bytes:
                    tried = "PNG, else JPEG" if todo.encoding == "PNG" else "JPEG"  # as ``conform`` tries them
                    notes.append(
                        f"re-encoded to fit the {mb} MB file limit ({tried}, else smaller: settled when encoded)"
                    )
                elif not todo.as_is and todo.estimated_bytes > limits.max_bytes:
                    notes.append(f"may be re-encoded to fit the {mb} MB file limit (settled when encoded)")
                by_limits[limits] = "adjusted: " + "; ".join(notes) if notes else "as is"
        verdicts[name] = by_limits[limits]
        if orientation not in (1, None) and spec.max_boxes_per_image and not verdicts[name].startswith("refused"):
            verdicts[name] += f"; {BOXES_AS_SHOWN}"
    return verdicts


def _raise(message: str) -> InvalidRequest:
    return InvalidRequest([Problem("images", message)])


def _step(long_side: int) -> int:
    for step in (25, 50, 100, 200, 250, 500, 1000, 2000):
        if long_side / step <= 10:
            return step
    return 5000


def grid_preview(image: Image.Image, original: tuple[int, int]) -> bytes:
    """A JPEG of ``image`` (already at most GRID_PREVIEW_SIDE px, as sent) with grid lines labelled in the
    ``original`` image's pixels."""
    width, height = original
    preview = image.convert("RGB")
    scale = preview.width / width
    draw = ImageDraw.Draw(preview, "RGBA")
    font = ImageFont.load_default(12)
    step = _step(max(width, height))
    for x in range(0, width, step):
        px = round(x * scale)
        draw.line((px, 0, px, preview.height), fill=(255, 0, 0, 110), width=1)
        draw.text((px + 2, 2), str(x), fill=(255, 255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0, 255))
    for y in range(step, height, step):
        py = round(y * scale)
        draw.line((0, py, preview.width, py), fill=(255, 0, 0, 110), width=1)
        draw.text((2, py + 2), str(y), fill=(255, 255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0, 255))
    out = io.BytesIO()
    preview.save(out, "JPEG", quality=82)
    return out.getvalue()


def plain_preview(image: Image.Image) -> bytes:
    """A JPEG of ``image`` (already at most GRID_PREVIEW_SIDE px, as sent) without a grid: what the box picker
    draws on."""
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


def _inspect_one(
    index: int, ref: str, access: FileAccess, cwd: Path, *, grid: bool = True, background: Background = WHITE
) -> tuple[ImageReport, bytes | None]:
    kind = classify(ref)
    source = describe_ref(ref)
    if kind in (RefKind.REMOTE, RefKind.OSS):
        note = "remote: DashScope fetches it; this server does not, so its size is unknown here"
        return ImageReport(index, source, kind.value, models=dict.fromkeys(SPECS, note)), None
    try:
        if kind is RefKind.DATA:
            data = decode_data_url(ref)
            file, size = io.BytesIO(data), len(data)
        else:
            file = open_local(local_path(ref, cwd), access)[1]
            size = os.fstat(file.fileno()).st_size
        with file:
            opened, orientation = open_image(file, source, _raise)
            verdicts = _verdicts(opened, orientation, size, background)
            fmt, raw, transparent = opened.format, opened.size, has_alpha(opened)
            try:
                shown = small_as_sent(opened, orientation, GRID_PREVIEW_SIDE, background)
            except DecodeTooCostly as exc:
                raise _raise(str(exc)) from None
            except DECODE_ERRORS as exc:
                raise _raise(damaged(exc)) from None
    except (InvalidRequest, ValueError) as exc:
        message = exc.problems[0].message if isinstance(exc, InvalidRequest) else str(exc)
        return ImageReport(index, source, kind.value, problem=message), None
    width, height = (raw[1], raw[0]) if orientation in (5, 6, 7, 8) else raw
    report = ImageReport(
        index,
        source,
        kind.value,
        width=width,
        height=height,
        format=fmt,
        orientation=orientation,
        bytes=size,
        models=verdicts,
        alpha_background=background.name if transparent else None,
    )
    return report, grid_preview(shown, (width, height)) if grid else plain_preview(shown)


def inspect_images(
    refs: Sequence[str], access: FileAccess, cwd: Path, *, grid: bool = True, background: Background = WHITE
) -> tuple[list[ImageReport], list[bytes | None]]:
    """Reports and grid previews (None where the image could not be read), one per reference, in order, on the
    call's image threads: sizes and verdicts from each header, one decode each (for the preview, which also
    proves the data whole), never more decodes at once than the decode budget allows; transparency flattened
    onto ``background``, as it would be sent. ``grid=False``: previews without the grid (the box picker's)."""
    done = on_image_threads(
        lambda index, ref: _inspect_one(index, ref, access, cwd, grid=grid, background=background), refs
    )
    return [report for report, _ in done], [preview for _, preview in done]
