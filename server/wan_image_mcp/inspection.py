"""What an image is, which models take it as it is, and a preview with a pixel grid for choosing boxes.

Plain Python: the ``inspect_image`` tool only translates. The grid is labelled in the image's own pixels as
the user sees it (EXIF orientation applied) — the space ``bbox_list`` coordinates live in.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .access import FileAccess
from .errors import InvalidRequest, Problem
from .inputs import (
    RefKind,
    as_sent,
    classify,
    conform,
    decode_data_url,
    describe_ref,
    exif_orientation,
    local_path,
    read_local,
)
from .pillow import Image, ImageDraw, ImageFont
from .specs import SPECS, ImageLimits

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


def _verdicts(data: bytes, index: int, source: str, kind: RefKind) -> dict[str, str]:
    by_limits: dict[ImageLimits, str] = {}
    verdicts: dict[str, str] = {}
    for name, spec in SPECS.items():
        if spec.image not in by_limits:
            try:
                prepared = conform(data, index=index, kind=kind, source=source, limits=spec.image, problem=_raise)
                notes = [note.split(": ", 1)[1] for note in prepared.adjustments]
                by_limits[spec.image] = "adjusted: " + "; ".join(notes) if notes else "as is"
            except InvalidRequest as exc:
                by_limits[spec.image] = "refused: " + exc.problems[0].message
        verdicts[name] = by_limits[spec.image]
    return verdicts


def _raise(message: str) -> InvalidRequest:
    return InvalidRequest([Problem("images", message)])


def _step(long_side: int) -> int:
    for step in (25, 50, 100, 200, 250, 500, 1000, 2000):
        if long_side / step <= 10:
            return step
    return 5000


def grid_preview(image: Image.Image) -> bytes:
    """A JPEG of at most GRID_PREVIEW_SIDE px with grid lines labelled in the original pixels."""
    width, height = image.size
    preview = image.convert("RGB")
    preview.thumbnail((GRID_PREVIEW_SIDE, GRID_PREVIEW_SIDE))
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


def inspect_images(refs: Sequence[str], access: FileAccess, cwd: Path) -> tuple[list[ImageReport], list[bytes | None]]:
    """Reports and grid previews (None where the image could not be read), one per reference, in order."""
    reports: list[ImageReport] = []
    previews: list[bytes | None] = []
    for index, ref in enumerate(refs, start=1):
        kind = classify(ref)
        source = describe_ref(ref)
        if kind in (RefKind.REMOTE, RefKind.OSS):
            note = "remote: DashScope fetches it; this server does not, so its size is unknown here"
            reports.append(ImageReport(index, source, kind.value, models=dict.fromkeys(SPECS, note)))
            previews.append(None)
            continue
        try:
            data = decode_data_url(ref) if kind is RefKind.DATA else read_local(local_path(ref, cwd), access)[1]
            with Image.open(io.BytesIO(data)) as opened:
                fmt = opened.format
                orientation = int(exif_orientation(opened))
                opened.load()
                shown = as_sent(opened, orientation)  # tones, transparency and orientation as they are sent
                preview = grid_preview(shown)
                width, height = shown.size
        except (InvalidRequest, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            message = exc.problems[0].message if isinstance(exc, InvalidRequest) else f"cannot read it: {exc}"
            reports.append(ImageReport(index, source, kind.value, problem=message))
            previews.append(None)
            continue
        reports.append(
            ImageReport(
                index,
                source,
                kind.value,
                width=width,
                height=height,
                format=fmt,
                orientation=orientation,
                bytes=len(data),
                models=_verdicts(data, index, source, kind),
            )
        )
        previews.append(preview)
    return reports, previews
