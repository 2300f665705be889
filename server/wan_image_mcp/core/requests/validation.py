"""Model + prompt + image references + parameters -> a request that can succeed, or every reason it can't.

``prepare_request`` never talks to the network. It reads every limit from ``specs``, conforms local
images through ``inputs``, and raises one ``InvalidRequest`` listing each problem with the argument, the
1-based image index and the limit. Parameters a model lacks are refused, not dropped; ``False`` for a
switch the model lacks is the same as leaving it out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...dashscope import wire
from ...dashscope.errors import InvalidTaskId
from ...dashscope.wire import ImageRequest
from ..errors import InvalidRequest, Problem
from ..images.access import FileAccess
from ..images.background import Background, background_problem
from ..images.references import BOXES_AS_SHOWN, PreparedImage, close_spools
from ..specs import MODEL_NAMES, SEED_RANGE, SPECS, Mode, ModelSpec, Param, get_spec, output_size
from .declarations import EditParams, PaletteColor
from .prompt_images import references
from .sizes import conform_size


def check_task_id(task_id: str) -> str:
    """``task_id`` if it can be a DashScope task id (the wire's rule, ``dashscope.wire.check_task_id``), else
    InvalidRequest naming ``task_id`` and the rule."""
    try:
        return wire.check_task_id(task_id)
    except InvalidTaskId as exc:
        raise InvalidRequest([Problem("task_id", exc.reason)]) from None


JSON = Any
_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
_RATIO = re.compile(r"^(\d{1,3})\.(\d{2})%$")
Boxes = Sequence[Sequence[Sequence[int]]]
"""bbox_list as the checks take it: per image, a list of [x1, y1, x2, y2] boxes in the original image's pixels."""


@dataclass(frozen=True)
class PreparedRequest:
    """A request checked against the model's table; ``to_wire`` gives what the client sends."""

    spec: ModelSpec
    mode: Mode
    prompt: str
    images: tuple[PreparedImage, ...]
    parameters: Mapping[str, JSON]
    """Wire ``parameters`` (negative_prompt excluded: its place depends on the protocol)."""
    negative_prompt: str | None = None
    adjustments: tuple[str, ...] = ()
    expected_size: tuple[int, int] | None = None
    """Output size the API should produce; None when it follows a remote last image (its size is unknown)."""

    @property
    def model(self) -> str:
        return self.spec.name

    def to_wire(self) -> ImageRequest:
        """The request as ``DashScopeClient.submit`` / ``generate`` take it. Each inline image becomes its base64
        data URL here; a local file sent unchanged is read again for it, which raises InputChanged if the file is
        no longer the one checked."""
        return ImageRequest(
            model=self.model,
            protocol=self.spec.protocol,
            endpoints=self.spec.endpoints,
            prompt=self.prompt,
            images=tuple(image.value for image in self.images),
            parameters=self.parameters,
            negative_prompt=self.negative_prompt,
            interleave=self.mode.name == "interleave",
        )

    @property
    def paid_images(self) -> int:
        """Most images this request can produce (and bill)."""
        if self.mode.name == "interleave":
            return int(self.parameters.get("max_images", self.spec.max_images.hi if self.spec.max_images else 1))
        return int(self.parameters["n"])


def _supporting(param: Param) -> str:
    names = [name for name, spec in SPECS.items() if param in spec.params]
    return ", ".join(names) if names else "none"


def check_parameters(spec: ModelSpec, mode: Mode, prompt: str, image_count: int, params: EditParams) -> list[Problem]:
    """Everything that can be checked without reading an image."""
    problems: list[Problem] = []
    model = spec.name

    if not prompt.strip():
        problems.append(Problem("prompt", "must not be empty"))
    elif len(prompt) > spec.prompt_chars:
        problems.append(Problem("prompt", f"is {len(prompt)} characters; {model} takes at most {spec.prompt_chars}"))

    if image_count not in mode.images:
        problems.append(Problem("images", _count_message(spec, mode, image_count)))
    problems.extend(_check_references(prompt, image_count, mode))

    for param in params.effective(mode):
        if param not in spec.params:
            problems.append(Problem(param, f"{model} does not support {param} (supported by: {_supporting(param)})"))
        elif param not in mode.params:
            problems.append(Problem(param, f"not available in {mode.name} mode of {model}{_mode_hint(param)}"))

    if params.n not in mode.n:
        hint = "; use max_images for more images" if mode.name == "interleave" else ""
        problems.append(Problem("n", f"{params.n} is out of range: {mode.name} mode of {model} takes {mode.n}{hint}"))

    if params.size is not None:
        problems.extend(_check_size(spec, mode, params.size))

    if params.seed is not None and not SEED_RANGE[0] <= params.seed <= SEED_RANGE[1]:
        problems.append(Problem("seed", f"{params.seed} is outside {SEED_RANGE[0]}-{SEED_RANGE[1]}"))

    limit = spec.negative_prompt_chars
    if params.negative_prompt is not None and limit is not None and len(params.negative_prompt) > limit:
        problems.append(
            Problem(
                "negative_prompt",
                f"is {len(params.negative_prompt)} characters; {model} takes at most {limit}",
            )
        )

    if params.max_images is not None and spec.max_images is not None and params.max_images not in spec.max_images:
        problems.append(Problem("max_images", f"{params.max_images} is out of range {spec.max_images}"))

    if params.color_palette is not None and spec.palette is not None:
        problems.extend(_check_palette(params.color_palette, spec))

    if params.bbox_list is not None and Param.BBOX_LIST in mode.params:
        problems.extend(check_bbox_shape(params.bbox_list, image_count, spec.max_boxes_per_image))

    if Background.parse(params.alpha_background) is None:
        problems.append(background_problem(params.alpha_background))
    return problems


def _check_references(prompt: str, image_count: int, mode: Mode) -> list[Problem]:
    """A prompt that names an image beyond those given (圖3 with two images) would be billed for an edit that
    cannot be what was meant. In an image set or an interleaved answer, 第3張 and 'the third image' usually
    number the outputs, and with no images they describe the scene, so there only 圖3 / image 3 count; an image
    set or an interleaved answer without images is not checked at all (its prompt may number its outputs)."""
    outputs_numbered = mode.name in ("image-set", "interleave")
    if outputs_numbered and image_count == 0:
        return []
    ordinals = image_count > 0 and not outputs_numbered
    beyond = [(n, said) for n, said in references(prompt, ordinals=ordinals) if n > image_count]
    if not beyond:
        return []
    number, said = beyond[0]
    given = (
        f"only {image_count} image{'s were' if image_count > 1 else ' was'} given"
        if image_count
        else ("no images were given")
    )
    order = f"; number them 1-{image_count} in the order of images" if image_count > 1 else ""
    return [Problem("prompt", f"refers to image {number} ('{said}') but {given}{order}")]


def _count_message(spec: ModelSpec, mode: Mode, count: int) -> str:
    if spec.name.startswith("wan2.7") and count > mode.images.hi:
        return f"{count} images given; {spec.name} takes at most {spec.max_input_images}"
    if mode.name == "interleave":
        return f"{count} images given; enable_interleave on {spec.name} takes {mode.images}"
    if spec.name == "wan2.6-image" and count == 0:
        return f"{spec.name} edits 1-4 images; for text-to-image with it set enable_interleave=true"
    return f"{count} images given; {spec.name} takes {mode.images} in {mode.name} mode"


def _mode_hint(param: Param) -> str:
    hints = {
        Param.COLOR_PALETTE: " (not with enable_sequential)",
        Param.BBOX_LIST: " (boxes need input images)",
        Param.PROMPT_EXTEND: " (edit mode only, not with enable_interleave)",
        Param.MAX_IMAGES: " (only with enable_interleave=true)",
    }
    return hints.get(param, "")


def _check_size(spec: ModelSpec, mode: Mode, size: str) -> list[Problem]:
    sent = conform_size(spec, mode, size)
    return sent if isinstance(sent, list) else []


def _check_palette(palette: Sequence[PaletteColor], spec: ModelSpec) -> list[Problem]:
    assert spec.palette is not None
    problems: list[Problem] = []
    if len(palette) not in spec.palette:
        problems.append(Problem("color_palette", f"{len(palette)} colours given; takes {spec.palette}"))
    total = 0
    for i, entry in enumerate(palette, start=1):
        hex_value, ratio = entry.get("hex", ""), entry.get("ratio", "")
        if not _HEX.match(str(hex_value)):
            problems.append(Problem("color_palette", f"colour {i}: hex {hex_value!r} must look like '#C2D1E6'"))
        match = _RATIO.match(str(ratio))
        if match is None:
            problems.append(Problem("color_palette", f"colour {i}: ratio {ratio!r} must look like '25.00%'"))
        else:
            total += int(match[1]) * 100 + int(match[2])
    if not problems and total != 100_00:
        problems.append(Problem("color_palette", f"ratios add up to {total / 100:.2f}%; they must add up to 100.00%"))
    return problems


def check_bbox_shape(bbox_list: Boxes, image_count: int, max_boxes: int) -> list[Problem]:
    problems: list[Problem] = []
    if len(bbox_list) != image_count:
        problems.append(
            Problem(
                "bbox_list",
                f"has {len(bbox_list)} entries for {image_count} images; give one list per image "
                "in order, [] for an image without boxes",
            )
        )
    for index, boxes in enumerate(bbox_list, start=1):
        if len(boxes) > max_boxes:
            problems.append(Problem("bbox_list", f"{len(boxes)} boxes; at most {max_boxes} per image", image=index))
        for box in boxes:
            if len(box) != 4:
                problems.append(
                    Problem("bbox_list", f"box {list(box)} must be 4 integers [x1, y1, x2, y2]", image=index)
                )
            elif min(box) < 0 or box[0] >= box[2] or box[1] >= box[3]:
                problems.append(
                    Problem(
                        "bbox_list",
                        f"box {list(box)} must have 0 <= x1 < x2 and 0 <= y1 < y2 (top-left, bottom-right)",
                        image=index,
                    )
                )
    return problems


def _check_boxes_inside(bbox_list: Boxes, images: Sequence[PreparedImage]) -> list[Problem]:
    problems: list[Problem] = []
    for boxes, image in zip(bbox_list, images, strict=False):
        if image.original_size is None:
            continue
        width, height = image.original_size
        for box in boxes:
            if len(box) == 4 and (box[2] > width or box[3] > height):
                problems.append(
                    Problem(
                        "bbox_list",
                        f"box {list(box)} reaches outside the {width}×{height} image",
                        image=image.index,
                    )
                )
    return problems


def _scale_boxes(bbox_list: Boxes, images: Sequence[PreparedImage]) -> list[list[list[int]]]:
    scaled: list[list[list[int]]] = []
    for boxes, image in zip(bbox_list, images, strict=True):
        if image.scale == 1.0 or image.width is None or image.height is None:
            scaled.append([list(box) for box in boxes])
            continue
        limit = (image.width, image.height, image.width, image.height)
        # Per axis, from the sizes: a side rounded or floored after scaling has its own ratio, not quite ``scale``.
        wide, high = image.original_size or (image.width / image.scale, image.height / image.scale)
        ratio = (image.width / wide, image.height / high)
        scaled.append([[min(round(v * ratio[i % 2]), limit[i]) for i, v in enumerate(box)] for box in boxes])
    return scaled


def prepare_request(
    model: str,
    prompt: str,
    images: Sequence[str] = (),
    params: EditParams | None = None,
    *,
    cwd: Path | None = None,
    access: FileAccess | None = None,
) -> PreparedRequest:
    """Validate and conform a request. Raises InvalidRequest listing every problem.

    ``access`` limits which local files may be read (None: any, for library use)."""
    from ..images.inputs import prepare_images  # decoding and conforming: call time, off the start path

    params = params or EditParams()
    spec = get_spec(model)
    if spec is None:
        raise InvalidRequest([Problem("model", f"unknown model {model!r}; one of {', '.join(MODEL_NAMES)}")])
    mode = spec.select_mode(
        len(images), sequential=bool(params.enable_sequential), interleave=bool(params.enable_interleave)
    )
    problems = check_parameters(spec, mode, prompt, len(images), params)
    background = Background.parse(params.alpha_background)

    prepared: list[PreparedImage] = []
    if len(images) <= spec.max_input_images and background is not None:  # else reading the files helps no one
        for image in prepare_images(images, spec.image, cwd or Path.cwd(), access, background):
            if isinstance(image, InvalidRequest):
                problems.extend(image.problems)
            else:
                prepared.append(image)
    if params.bbox_list is not None and not problems:
        problems.extend(_check_boxes_inside(params.bbox_list, prepared))
    if problems:
        close_spools(prepared)  # refused: nothing of them is sent
        raise InvalidRequest(problems)

    parameters: dict[str, JSON] = {"n": params.n, "watermark": params.watermark}
    adjustments = [note for image in prepared for note in image.adjustments]
    size = params.size
    if size is not None:
        sent = conform_size(spec, mode, size)
        assert not isinstance(sent, list)  # its problems were found above
        size = sent.value
        adjustments.extend([sent.note] if sent.note else [])
    for param, value in params.effective(mode).items():
        if param is Param.NEGATIVE_PROMPT:
            continue
        parameters[param.value] = value
    if size is not None:
        parameters["size"] = size
    if params.bbox_list is not None:
        parameters["bbox_list"] = _scale_boxes(params.bbox_list, prepared)
        adjustments += [f"image {image.index}: {BOXES_AS_SHOWN}" for image in prepared if image.turned]
        if any(image.scale != 1.0 for image in prepared):
            adjustments.append("bbox_list scaled with the downscaled images")
    if params.color_palette is not None:
        parameters["color_palette"] = [{"hex": c["hex"], "ratio": c["ratio"]} for c in params.color_palette]

    last = prepared[-1] if prepared else None
    shape = (last.width, last.height) if last is not None and last.width and last.height else None
    expected = None
    if last is None or shape is not None or (size is not None and size not in mode.presets):  # W*H: any input
        expected = output_size(mode, size, shape)
    return PreparedRequest(
        spec=spec,
        mode=mode,
        prompt=prompt,
        images=tuple(prepared),
        parameters=parameters,
        negative_prompt=params.negative_prompt,
        adjustments=tuple(adjustments),
        expected_size=expected,
    )
