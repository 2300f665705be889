"""The box picker's side of the core: each image as the picker shows it, and the check of the boxes drawn on it.

The picker shows the inspect preview without its grid (``inspection``): the image as it is sent (EXIF
orientation applied, alpha on white, 8-bit tones), in the coordinates of ``inspect_image`` and ``bbox_list``,
the original image as the user sees it. ``edit_image`` scales those into the pixels sent (``PreparedImage.scale``),
so a box drawn here is the region DashScope receives. How many boxes an image takes comes from ``specs``.
Plain Python: the MCP adapter (``mcp_server/apps/picker.py``) only translates.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..errors import InvalidRequest, Problem
from ..results.outcomes import ImageInfo
from ..specs import SPECS, get_spec
from .validation import check_bbox_shape

MAX_PICKS = 64
"""Picks remembered per server, oldest forgotten first: a pick is confirmed within minutes of being opened."""


@dataclass(frozen=True)
class PickedImage:
    index: int
    """1-based, as the prompt names it (image 1, 圖1)."""
    source: str
    width: int
    """Size as the user sees it (EXIF orientation applied): the space the boxes are drawn in."""
    height: int
    preview: bytes
    """A JPEG of the image as sent, at most ``GRID_PREVIEW_SIDE`` px."""


@dataclass(frozen=True)
class Pick:
    """One opened picker: what it shows and for which model."""

    pick_id: str
    model: str
    max_boxes: int
    images: tuple[PickedImage, ...]


def box_models() -> list[str]:
    return [name for name, spec in SPECS.items() if spec.max_boxes_per_image]


def pick(pick_id: str, model: str, images: Sequence[ImageInfo], previews: Sequence[bytes | None]) -> Pick:
    """The picker for ``images`` (inspected without a grid) and ``model``. Raises InvalidRequest naming the
    argument and image for a model without bbox_list, too many images, or an image the picker cannot show."""
    spec = get_spec(model)
    assert spec is not None  # the schema's enum
    if not spec.max_boxes_per_image:
        raise InvalidRequest([Problem("model", f"{model} takes no bbox_list; these do: {', '.join(box_models())}")])
    problems: list[Problem] = []
    if len(images) > spec.max_input_images:
        problems.append(Problem("images", f"{len(images)} images; {model} takes at most {spec.max_input_images}"))
    shown: list[PickedImage] = []
    for info, preview in zip(images, previews, strict=True):
        if info.problem:
            problems.append(Problem("images", info.problem, image=info.index))
        elif info.width is None or info.height is None or preview is None:
            problems.append(
                Problem(
                    "images",
                    f"{info.source} is remote: the picker shows local files and data: URLs only "
                    "(download it, or choose boxes with inspect_image's grid)",
                    image=info.index,
                )
            )
        else:
            shown.append(PickedImage(info.index, info.source, info.width, info.height, preview))
    if problems:
        raise InvalidRequest(problems)
    return Pick(pick_id, model, spec.max_boxes_per_image, tuple(shown))


def check_picked(chosen: Pick, bbox_list: Sequence[Sequence[Sequence[int]]]) -> list[list[list[int]]]:
    """``bbox_list`` as drawn on ``chosen``'s images, checked as edit_image checks it (one list per image, at
    most the model's boxes each, 0 <= x1 < x2 <= width, 0 <= y1 < y2 <= height). Raises InvalidRequest."""
    problems = check_bbox_shape(bbox_list, len(chosen.images), chosen.max_boxes)
    for boxes, image in zip(bbox_list, chosen.images, strict=False):
        for box in boxes:
            if len(box) == 4 and (box[2] > image.width or box[3] > image.height):
                message = f"box {list(box)} reaches outside the {image.width}×{image.height} image"
                problems.append(Problem("bbox_list", message, image=image.index))
    if problems:
        raise InvalidRequest(problems)
    return [[list(box) for box in boxes] for boxes in bbox_list]


class Picks:
    """The pickers this server opened, by id, so that the boxes recorded for one are checked against the
    images and model it showed (the page sends only the id and the boxes). A pick is remembered without its
    previews (they went out once, in pick_boxes' result): up to a megabyte a pick that nothing reads again."""

    def __init__(self, limit: int = MAX_PICKS) -> None:
        self._limit = limit
        self._picks: OrderedDict[str, Pick] = OrderedDict()

    def add(self, chosen: Pick) -> None:
        self._picks[chosen.pick_id] = replace(chosen, images=tuple(replace(i, preview=b"") for i in chosen.images))
        while len(self._picks) > self._limit:
            self._picks.popitem(last=False)

    def get(self, pick_id: str) -> Pick | None:
        return self._picks.get(pick_id)


def boxes_text(chosen: Pick, bbox_list: Sequence[Sequence[Sequence[int]]]) -> str:
    """What the model reads: the boxes, per image, and how to use them."""
    lines = [f"The user drew boxes in the picker for {chosen.model}, in the images' own pixels (as inspect_image's):"]
    for boxes, image in zip(bbox_list, chosen.images, strict=True):
        drawn = ", ".join(str(list(box)) for box in boxes) if boxes else "no boxes"
        lines.append(f"- image {image.index} ({image.source}, {image.width}×{image.height}): {drawn}")
    as_json = [[list(box) for box in boxes] for boxes in bbox_list]
    lines.append(
        f"For the next edit_image, pass the same images in the same order with bbox_list={as_json} "
        f"(and model={chosen.model!r})."
    )
    return "\n".join(lines)
