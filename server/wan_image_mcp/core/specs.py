"""Every limit and capability of the four Wan image models, as data.

This module is the only place a limit is written down. Request validation, image conforming, the
MCP tool schemas, the emulator and the model tables of ``docs/models.md`` and ``docs/dashscope-api.md`` all read it. The
limits are DashScope's published ones (that page lists its sources); where they are uncertain the choice is made
here, once, and marked ``uncertain`` (docs/dashscope-api.md#uncertain-and-what-we-chose).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal

from ..dashscope.endpoints import MESSAGES_ENDPOINTS, PROMPT_ENDPOINTS, Endpoints, Protocol

ModelName = Literal["wan2.7-image-pro", "wan2.7-image", "wan2.6-image", "wan2.5-i2i-preview"]
"""The models this server offers, as DashScope names them (the keys of ``SPECS``)."""
SEED_RANGE: Final = (0, 2_147_483_647)
"""Smallest and largest ``seed``, inclusive, for every model."""
OUTPUT_ROUNDING: Final = 16
"""Output width and height are multiples of this (documented for wan2.6; we apply it to all)."""


class Param(StrEnum):
    """Request parameters beyond prompt and images, named as on the wire."""

    SIZE = "size"
    N = "n"
    WATERMARK = "watermark"
    SEED = "seed"
    NEGATIVE_PROMPT = "negative_prompt"
    PROMPT_EXTEND = "prompt_extend"
    THINKING_MODE = "thinking_mode"
    BBOX_LIST = "bbox_list"
    ENABLE_SEQUENTIAL = "enable_sequential"
    COLOR_PALETTE = "color_palette"
    ENABLE_INTERLEAVE = "enable_interleave"
    MAX_IMAGES = "max_images"


@dataclass(frozen=True)
class Range:
    """An inclusive integer range."""

    lo: int
    hi: int

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.lo <= value <= self.hi

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"


@dataclass(frozen=True)
class ImageLimits:
    """What an input image must be for the API to accept it."""

    formats: frozenset[str]
    """Pillow format names the API reads (JPG is Pillow's JPEG)."""
    side: Range
    """Each of width and height, in pixels."""
    max_bytes: int
    """Largest file the API takes, in bytes."""
    max_ratio: float | None
    """Largest long-side/short-side ratio, or None when unrestricted."""

    def ratio_text(self) -> str:
        """``max_ratio`` for people: ``"1:8 to 8:1"``, or ``"any"``."""
        if self.max_ratio is None:
            return "any"
        r = _fmt(self.max_ratio)
        return f"1:{r} to {r}:1"


@dataclass(frozen=True)
class Mode:
    """One way of calling a model: the rules that change with the image count and mode switches. ``name`` is
    edit, text-to-image, image-set or interleave; ``images`` how many input images it takes; ``n`` how many
    outputs may be asked for."""

    name: str
    images: Range
    n: Range
    n_api_default: int
    """What the API would produce if ``n`` were left out (we always send ``n``)."""
    presets: Mapping[str, int]
    """Size preset -> side of the square whose area the output approximates."""
    pixels: Range
    """Total output pixels allowed for a custom ``W*H`` size."""
    max_ratio: float
    """Largest long/short ratio of a custom size."""
    default_size: str | None
    """Preset used when ``size`` is omitted; None means the model follows the input (see default_side)."""
    default_side: int
    """With no preset default: output area approximates default_side squared."""
    params: frozenset[Param]
    """Parameters allowed in this mode (prompt and images aside)."""
    keep_small_input: bool = False
    """Default size keeps the last input's own size when it is under default_side squared."""

    def describe_size(self) -> str:
        """The sizes this mode takes, for schemas and errors: presets, then the custom ``W*H`` bounds."""
        parts: list[str] = []
        if self.presets:
            parts.append("/".join(self.presets))
        lo, hi = math.isqrt(self.pixels.lo), math.isqrt(self.pixels.hi)
        parts.append(f"W*H with {lo}*{lo} to {hi}*{hi} pixels, ratio up to {_fmt(self.max_ratio)}:1")
        return " or ".join(parts)


@dataclass(frozen=True)
class ModelSpec:
    """One model: its wire ``protocol`` and ``endpoints``, its input ``image`` limits, its prompt length in
    characters, its ``modes``; ``summary`` is the one line the model table and tool descriptions show."""

    name: ModelName
    protocol: Protocol
    endpoints: Endpoints
    image: ImageLimits
    prompt_chars: int
    negative_prompt_chars: int | None
    """None: the model has no negative prompt."""
    modes: tuple[Mode, ...]
    max_boxes_per_image: int = 0
    """bbox_list: most boxes per image (0 when the model has no bbox_list)."""
    palette: Range | None = None
    """color_palette: how many colours (None when the model has no palette)."""
    max_images: Range | None = None
    """max_images (interleave): range and, as hi, the API default."""
    summary: str = ""

    @property
    def params(self) -> frozenset[Param]:
        """Every parameter the model accepts in some mode."""
        return frozenset[Param]().union(*(m.params for m in self.modes))

    @property
    def max_input_images(self) -> int:
        """Most input images any mode takes."""
        return max(m.images.hi for m in self.modes)

    @property
    def all_presets(self) -> tuple[str, ...]:
        """Every size preset of any mode, in the table's order, each once."""
        seen: dict[str, None] = {}
        for mode in self.modes:
            seen.update(dict.fromkeys(mode.presets))
        return tuple(seen)

    def mode(self, name: str) -> Mode:
        """The mode called ``name``; raises StopIteration when the model has none of that name."""
        return next(m for m in self.modes if m.name == name)

    def select_mode(self, image_count: int, *, sequential: bool, interleave: bool) -> Mode:
        """The mode a request falls in. Switches the model lacks are ignored here (validation reports them)."""
        names = [m.name for m in self.modes]
        if interleave and "interleave" in names:
            return self.mode("interleave")
        if sequential and "image-set" in names:
            return self.mode("image-set")
        if image_count == 0 and "text-to-image" in names:
            return self.mode("text-to-image")
        return self.mode("edit")


def _fmt(x: float) -> str:
    return f"{x:g}"


_COMMON: Final = frozenset({Param.SIZE, Param.N, Param.WATERMARK, Param.SEED})
_MB: Final = 1000 * 1000
"""DashScope's limits say "MB"; we read it as the smaller decimal megabyte so we never send a file it refuses."""

_WAN27_IMAGE = ImageLimits(
    formats=frozenset({"JPEG", "PNG", "BMP", "WEBP"}), side=Range(240, 8000), max_bytes=20 * _MB, max_ratio=8
)
_WAN27_PARAMS = _COMMON | {Param.THINKING_MODE, Param.BBOX_LIST, Param.ENABLE_SEQUENTIAL, Param.COLOR_PALETTE}
_1K_2K = MappingProxyType({"1K": 1024, "2K": 2048})


def _wan27_modes(*, four_k: bool) -> tuple[Mode, ...]:
    t2i_presets = MappingProxyType({**_1K_2K, "4K": 4096}) if four_k else _1K_2K
    return (
        Mode(
            name="edit",
            images=Range(1, 9),
            n=Range(1, 4),
            n_api_default=4,
            presets=_1K_2K,
            pixels=Range(768 * 768, 2048 * 2048),
            max_ratio=8,
            default_size="2K",
            default_side=2048,
            params=_WAN27_PARAMS - {Param.ENABLE_SEQUENTIAL},
        ),
        Mode(
            name="text-to-image",
            images=Range(0, 0),
            n=Range(1, 4),
            n_api_default=4,
            presets=t2i_presets,
            pixels=Range(768 * 768, (4096 if four_k else 2048) ** 2),
            max_ratio=8,
            default_size="2K",
            default_side=2048,
            # bbox_list needs an image to point into.
            params=_WAN27_PARAMS - {Param.ENABLE_SEQUENTIAL, Param.BBOX_LIST},
        ),
        Mode(
            # enable_sequential=true: "組圖", a set of up to n coherent images; n is a maximum.
            name="image-set",
            images=Range(0, 9),
            n=Range(1, 12),
            n_api_default=12,
            presets=_1K_2K,
            pixels=Range(768 * 768, 2048 * 2048),
            max_ratio=8,
            default_size="2K",
            default_side=2048,
            # color_palette is documented as refused with enable_sequential. bbox_list with it: uncertain, allowed.
            params=_WAN27_PARAMS - {Param.COLOR_PALETTE},
        ),
    )


_SMALL_IMAGE = frozenset({"JPEG", "PNG", "BMP", "WEBP"})

SPECS: Final[Mapping[ModelName, ModelSpec]] = MappingProxyType(
    {
        "wan2.7-image-pro": ModelSpec(
            name="wan2.7-image-pro",
            protocol=Protocol.MESSAGES,
            endpoints=MESSAGES_ENDPOINTS,
            image=_WAN27_IMAGE,
            prompt_chars=5000,
            negative_prompt_chars=None,
            modes=_wan27_modes(four_k=True),
            max_boxes_per_image=2,
            palette=Range(3, 10),
            summary="best quality; 0-9 images, boxes, image sets, colour palettes, 4K text-to-image",
        ),
        "wan2.7-image": ModelSpec(
            name="wan2.7-image",
            protocol=Protocol.MESSAGES,
            endpoints=MESSAGES_ENDPOINTS,
            image=_WAN27_IMAGE,
            prompt_chars=5000,
            negative_prompt_chars=None,
            modes=_wan27_modes(four_k=False),
            max_boxes_per_image=2,
            palette=Range(3, 10),
            summary="as wan2.7-image-pro without 4K, cheaper",
        ),
        "wan2.6-image": ModelSpec(
            name="wan2.6-image",
            protocol=Protocol.MESSAGES,
            endpoints=MESSAGES_ENDPOINTS,
            image=ImageLimits(formats=_SMALL_IMAGE, side=Range(240, 8000), max_bytes=10 * _MB, max_ratio=None),
            prompt_chars=2000,
            negative_prompt_chars=500,
            modes=(
                Mode(
                    name="edit",
                    images=Range(1, 4),
                    n=Range(1, 4),
                    n_api_default=4,
                    presets=MappingProxyType({"1K": 1280, "2K": 2048}),
                    pixels=Range(768 * 768, 2048 * 2048),
                    max_ratio=4,
                    default_size="1K",
                    default_side=1280,
                    params=_COMMON | {Param.NEGATIVE_PROMPT, Param.PROMPT_EXTEND},
                ),
                Mode(
                    # enable_interleave=true: text and images interleaved; n must be 1, max_images counts.
                    name="interleave",
                    images=Range(0, 1),
                    n=Range(1, 1),
                    n_api_default=1,
                    presets=MappingProxyType({}),
                    pixels=Range(768 * 768, 1280 * 1280),
                    max_ratio=4,
                    default_size=None,
                    default_side=1280,
                    keep_small_input=True,
                    params=_COMMON | {Param.NEGATIVE_PROMPT, Param.ENABLE_INTERLEAVE, Param.MAX_IMAGES},
                ),
            ),
            max_images=Range(1, 5),
            summary="1-4 reference images, negative prompt, interleaved text+image output",
        ),
        "wan2.5-i2i-preview": ModelSpec(
            name="wan2.5-i2i-preview",
            protocol=Protocol.PROMPT,
            endpoints=PROMPT_ENDPOINTS,
            image=ImageLimits(formats=_SMALL_IMAGE, side=Range(384, 5000), max_bytes=10 * _MB, max_ratio=4),
            prompt_chars=2000,
            negative_prompt_chars=500,
            modes=(
                Mode(
                    name="edit",
                    images=Range(1, 3),
                    n=Range(1, 4),
                    n_api_default=4,
                    presets=MappingProxyType({}),
                    pixels=Range(768 * 768, 1280 * 1280),
                    max_ratio=4,
                    default_size=None,
                    default_side=1280,
                    params=_COMMON | {Param.NEGATIVE_PROMPT, Param.PROMPT_EXTEND},
                ),
            ),
            summary="simple edits and fusion of 1-3 images; returns the rewritten prompt",
        ),
    }
)

MODEL_NAMES: Final[tuple[ModelName, ...]] = tuple(SPECS)
"""Every model, in the table's order (the tools' model enum)."""
DEFAULT_MODEL: Final[ModelName] = "wan2.7-image-pro"


def get_spec(model: str) -> ModelSpec | None:
    """The spec of ``model``, or None when it is not one of ours (any string may be asked)."""
    return SPECS.get(model)  # type: ignore[call-overload]  # any str may be looked up


_CUSTOM_SIZE = re.compile(r"^\s*(\d{1,6})\s*[*xX×]\s*(\d{1,6})\s*$")


def parse_custom_size(size: str) -> tuple[int, int] | None:
    """``"1280*720"`` -> (1280, 720). Also reads ``x`` and ``×``, which agents often write."""
    match = _CUSTOM_SIZE.match(size)
    return (int(match[1]), int(match[2])) if match else None


MAX_DECODE_PIXELS: Final = 2 * max(spec.image.side.hi for spec in SPECS.values()) ** 2
"""Pillow's decompression-bomb guard: twice the largest image any model accepts (larger ones are shrunk to
fit, so some headroom is useful); anything bigger is refused before it is decoded."""


def _round(value: float) -> int:
    return max(OUTPUT_ROUNDING, round(value / OUTPUT_ROUNDING) * OUTPUT_ROUNDING)


def _area_size(side: int, aspect: float) -> tuple[int, int]:
    width = math.sqrt(side * side * aspect)
    return _round(width), _round(side * side / width)


def output_size(mode: Mode, size: str | None, last_input: tuple[int, int] | None) -> tuple[int, int]:
    """The output dimensions the API produces for a valid request (the emulator renders at this size).

    Presets and the default keep the aspect ratio of the last input image (square without one); a custom
    ``W*H`` is honoured, rounded to multiples of 16. Raises ValueError for a ``size`` that is neither.
    """
    aspect = last_input[0] / last_input[1] if last_input else 1.0
    if size is not None:
        if size in mode.presets:
            return _area_size(mode.presets[size], aspect)
        custom = parse_custom_size(size)
        if custom is None:
            raise ValueError(f"not a size: {size!r}")
        return _round(custom[0]), _round(custom[1])
    if mode.default_size is not None:
        return _area_size(mode.presets[mode.default_size], aspect)
    if mode.keep_small_input and last_input and last_input[0] * last_input[1] <= mode.default_side**2:
        return _round(last_input[0]), _round(last_input[1])
    return _area_size(mode.default_side, aspect)
