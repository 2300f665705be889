"""Server-side checks of a request body, as DashScope makes them, with its error codes and HTTP statuses.

These read the limits from ``specs`` but are written against the wire shapes, independently of the
client's ``validation``: a client bug that sends something invalid is caught here, not agreed with.
Where DashScope documents that it truncates (prompt length), the emulator truncates too.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any, cast

from ..core.images.pillow import Image, UnidentifiedImageError
from ..core.images.runtime import imaging
from ..core.specs import SEED_RANGE, Mode, ModelSpec, Protocol, get_spec, parse_custom_size
from .exceptions import invalid

_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
_RATIO = re.compile(r"^(\d{1,3})\.(\d{2})%$")
_STRICT_SIZE = re.compile(r"^\d+\*\d+$")


@dataclass
class Job:
    """A valid generation request: the model, the mode its inputs select, prompt, image references, parameters."""

    spec: ModelSpec
    mode: Mode
    prompt: str
    image_refs: list[str]
    parameters: dict[str, Any]
    negative_prompt: str | None


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"Required body invalid, please check the request body format: {what} must be an object")
    return cast(dict[str, Any], value)


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(f"Required body invalid, please check the request body format: {what} must be an array")
    return cast(list[Any], value)


def parse_job(body: object, protocol: Protocol) -> Job:
    """A create/sync request's JSON ``body`` checked as DashScope checks it, for the endpoint serving
    ``protocol``; returns the ``Job`` it asks for (prompts truncated as the API truncates them).

    Raises ``EmulatedError`` 400 ``InvalidParameter`` naming the first thing wrong."""
    body = _dict(body, "body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("Model not specified.")
    spec = get_spec(model)
    if spec is None:
        raise invalid("Model not exist.")
    if spec.protocol is not protocol:
        raise invalid("url error, please check url!")
    payload = _dict(body.get("input"), "input")
    parameters = _dict(body.get("parameters", {}), "parameters")

    if protocol is Protocol.MESSAGES:
        messages = _list(payload.get("messages"), "input.messages")
        if len(messages) != 1:
            raise invalid("input.messages must hold exactly one user message")
        message = _dict(messages[0], "input.messages[0]")
        if message.get("role") != "user":
            raise invalid("input.messages[0].role must be 'user'")
        content = _list(message.get("content"), "input.messages[0].content")
        items = [_dict(item, "content item") for item in content]
        texts: list[object] = [item["text"] for item in items if "text" in item]
        refs: list[object] = [item["image"] for item in items if "image" in item]
        if len(texts) != 1 or not isinstance(texts[0], str):
            raise invalid("content must contain exactly one text item")
        prompt = texts[0]
        negative = parameters.get("negative_prompt")
    else:
        raw_prompt = payload.get("prompt")
        if not isinstance(raw_prompt, str):
            raise invalid("input.prompt is required")
        prompt = raw_prompt
        refs = _list(payload.get("images"), "input.images")
        negative = payload.get("negative_prompt")
    image_refs = [ref for ref in refs if isinstance(ref, str) and ref]
    if len(image_refs) != len(refs):
        raise invalid("every image must be a non-empty URL string")
    if not prompt.strip():
        raise invalid("The prompt must not be empty.")

    mode = spec.select_mode(
        len(image_refs),
        sequential=parameters.get("enable_sequential") is True,
        interleave=parameters.get("enable_interleave") is True,
    )
    _check_parameters(spec, mode, len(image_refs), parameters)
    limit = spec.negative_prompt_chars
    return Job(
        spec=spec,
        mode=mode,
        prompt=prompt[: spec.prompt_chars],  # the API truncates silently
        image_refs=image_refs,
        parameters=parameters,
        negative_prompt=negative[:limit] if isinstance(negative, str) and limit else None,
    )


def _int(parameters: dict[str, Any], name: str) -> int | None:
    value = parameters.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(f"{name} must be an integer")
    return value


def _check_parameters(spec: ModelSpec, mode: Mode, image_count: int, parameters: dict[str, Any]) -> None:
    if image_count not in mode.images:
        raise invalid(f"The number of input images must be in [{mode.images.lo}, {mode.images.hi}].")
    n = _int(parameters, "n")
    if n is not None and n not in mode.n:
        if mode.name == "interleave":
            raise invalid("num_images_per_prompt must be 1")
        raise invalid(f"n must be in [{mode.n.lo}, {mode.n.hi}]")
    seed = _int(parameters, "seed")
    if seed is not None and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise invalid(f"seed must be in [{SEED_RANGE[0]}, {SEED_RANGE[1]}]")
    size = parameters.get("size")
    if size is not None:
        _check_size(mode, size)
    if spec.max_images is not None:
        max_images = _int(parameters, "max_images")
        if max_images is not None and max_images not in spec.max_images:
            raise invalid(f"max_images must be in [{spec.max_images.lo}, {spec.max_images.hi}]")
    if spec.max_boxes_per_image and parameters.get("bbox_list") is not None:
        _check_boxes(parameters["bbox_list"], image_count, spec.max_boxes_per_image)
    if spec.palette is not None and parameters.get("color_palette") is not None:
        if parameters.get("enable_sequential") is True:
            raise invalid("color_palette is not supported when enable_sequential is true")
        _check_palette(parameters["color_palette"], spec)


def _check_size(mode: Mode, size: object) -> None:
    if not isinstance(size, str):
        raise invalid("size must be a string")
    if size in mode.presets:
        return
    if not _STRICT_SIZE.match(size):
        raise invalid(f"The size '{size}' is not supported.")
    width, height = parse_custom_size(size) or (0, 0)
    if width == 0 or height == 0 or width * height not in mode.pixels:
        raise invalid(f"The size '{size}' is out of the allowed total pixel range.")
    if max(width, height) / min(width, height) > mode.max_ratio:
        raise invalid(f"The size '{size}' has an aspect ratio out of range.")


def _check_boxes(raw: object, image_count: int, max_boxes: int) -> None:
    boxes_per_image = _list(raw, "bbox_list")
    if len(boxes_per_image) != image_count:
        raise invalid("The length of bbox_list must be equal to the number of input images.")
    for boxes in boxes_per_image:
        boxes = _list(boxes, "bbox_list[i]")
        if len(boxes) > max_boxes:
            raise invalid(f"Each image supports at most {max_boxes} bounding boxes.")
        for box in boxes:
            box = _list(box, "bbox")
            if len(box) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in box):
                raise invalid("Each bounding box must be [x1, y1, x2, y2] integers.")


def _check_palette(raw: object, spec: ModelSpec) -> None:
    assert spec.palette is not None
    colours = _list(raw, "color_palette")
    if len(colours) not in spec.palette:
        raise invalid(f"color_palette must have {spec.palette.lo} to {spec.palette.hi} colors.")
    total = 0
    for colour in colours:
        colour = _dict(colour, "color_palette[i]")
        match = _RATIO.match(str(colour.get("ratio", "")))
        if not _HEX.match(str(colour.get("hex", ""))) or match is None:
            raise invalid("Each color must have a hex like '#C2D1E6' and a ratio like '25.00%'.")
        total += int(match[1]) * 100 + int(match[2])
    if total != 100_00:
        raise invalid("The ratios of color_palette must add up to 100.00%.")


@dataclass
class InputImage:
    """A decoded, checked input image."""

    width: int
    height: int
    data: bytes


def check_image(spec: ModelSpec, data: bytes, index: int) -> InputImage:
    """Input image number ``index``'s bytes checked against ``spec``'s input table (format, alpha, file size,
    sides, aspect ratio); returns its size and bytes. Raises ``EmulatedError`` 400 ``InvalidParameter``."""
    limits = spec.image
    imaging()  # Pillow's guard set before decoding
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format, image.size
            alpha = "A" in image.getbands() or "transparency" in image.info
    except (UnidentifiedImageError, OSError):
        raise invalid(f"The image {index} format is not supported or the file is damaged.") from None
    if fmt not in limits.formats:
        raise invalid(f"The image {index} format {fmt} is not supported.")
    if alpha and fmt == "PNG" and spec.protocol is Protocol.MESSAGES:
        raise invalid(f"The image {index} has an alpha channel, which is not supported.")
    if len(data) > limits.max_bytes:
        raise invalid(f"The image {index} file size exceeds the limit.")
    if not (width in limits.side and height in limits.side):
        raise invalid(f"The image {index} resolution {width}x{height} is out of range.")
    if limits.max_ratio is not None and max(width, height) / min(width, height) > limits.max_ratio:
        raise invalid(f"The image {index} aspect ratio is out of range.")
    return InputImage(width=width, height=height, data=data)
