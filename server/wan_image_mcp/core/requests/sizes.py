"""The ``size`` argument read the ways agents write it, and what is sent for it.

A preset (``2K``) is sent as it is: the API keeps the last input image's aspect ratio at about that many pixels
(square without an input). ``W*H`` pixels and an aspect ratio (``16:9``, ``2K 16:9``: that ratio at about the
preset's pixels, or the mode's default's) are sent as the nearest ``W*H`` the mode takes: sides multiples of
``specs.OUTPUT_ROUNDING``, pixels and ratio within the mode's range. What was changed is said in a note for the
call's ``adjustments`` ("size '1920*1080' sent as 1920*1088 …"), so the size an agent reads before paying is the
size it gets.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

from ..errors import Problem
from ..specs import OUTPUT_ROUNDING, Mode, ModelSpec, parse_custom_size

_RATIO: Final = re.compile(r"^\s*(?:(\d[kK])\s+)?(\d{1,4}(?:\.\d{1,3})?)\s*:\s*(\d{1,4}(?:\.\d{1,3})?)\s*$")
"""``16:9``, ``2K 16:9``, ``1k 3:4``, ``2.39:1``."""
_SEARCH: Final = 8
"""Steps of ``OUTPUT_ROUNDING`` searched on each side of a target for the nearest valid size."""
ROUNDING_NOTE: Final = f"output sides are multiples of {OUTPUT_ROUNDING}"


@dataclass(frozen=True)
class SentSize:
    """What is sent for a ``size``: the wire value, and the note for ``adjustments`` when it is not as given."""

    value: str
    note: str | None = None


def ratio_words(mode: Mode) -> str:
    """The sizes ``mode`` takes, ratios included, for a refusal."""
    return f"{mode.describe_size()}, or an aspect ratio such as '16:9' or '2K 16:9'"


def conform_size(spec: ModelSpec, mode: Mode, size: str) -> SentSize | list[Problem]:
    """What to send for ``size`` in ``mode`` of ``spec``, or its problems (each naming ``size`` and the limit)."""
    if size in mode.presets:
        return SentSize(size)
    ratio = _RATIO.match(size)
    if ratio is not None:
        return _from_ratio(spec, mode, size, ratio)
    if size in spec.all_presets:
        return [_preset_problem(spec, mode, size)]
    custom = parse_custom_size(size)
    if custom is None:
        return [Problem("size", f"{size!r} is not a size; use {ratio_words(mode)}")]
    problems = _range_problems(spec, mode, *custom)
    if problems:
        return [Problem("size", problem) for problem in problems]
    width, height = nearest_size(mode, *custom) or custom
    sent = f"{width}*{height}"
    if (width, height) != custom:
        return SentSize(sent, f"size {size!r} sent as {sent} ({ROUNDING_NOTE})")
    return SentSize(sent, None if size == sent else f"size {size!r} sent as {sent}")


def nearest_size(mode: Mode, width: float, height: float) -> tuple[int, int] | None:
    """The ``W*H`` nearest to ``width`` × ``height`` (in pixels, on both axes) whose sides are multiples of
    ``OUTPUT_ROUNDING`` and whose pixels and ratio ``mode`` takes; None when none is near (the target is far out of
    range)."""
    step = OUTPUT_ROUNDING
    base_w, base_h = math.floor(width / step + 0.5), math.floor(height / step + 0.5)  # halves up: 1080 -> 1088
    best: tuple[float, int, int, int] | None = None
    for dw in range(-_SEARCH, _SEARCH + 1):
        for dh in range(-_SEARCH, _SEARCH + 1):
            w, h = (base_w + dw) * step, (base_h + dh) * step
            if w <= 0 or h <= 0 or w * h not in mode.pixels or max(w, h) / min(w, h) > mode.max_ratio:
                continue
            candidate = (math.hypot(w - width, h - height), abs(dw) + abs(dh), w, h)  # a tie goes to the rounded
            best = candidate if best is None or candidate < best else best
    return (best[2], best[3]) if best else None


def _from_ratio(spec: ModelSpec, mode: Mode, size: str, match: re.Match[str]) -> SentSize | list[Problem]:
    preset = match[1].upper() if match[1] else None
    across, down = float(match[2]), float(match[3])
    if preset is not None and preset not in mode.presets:
        return [_preset_problem(spec, mode, preset, size)]
    if across <= 0 or down <= 0:
        return [Problem("size", f"{size!r} is not an aspect ratio: both of its numbers must be above 0")]
    if max(across, down) / min(across, down) > mode.max_ratio:
        r = f"{mode.max_ratio:g}"
        why = f"{size!r} is an aspect ratio outside 1:{r} to {r}:1, the range of {mode.name} mode of {spec.name}"
        return [Problem("size", why)]
    if preset is not None:
        side = mode.presets[preset]
    elif mode.default_size is not None:
        side = mode.presets[mode.default_size]
    else:
        side = mode.default_side
    aspect = across / down
    nearest = nearest_size(mode, side * math.sqrt(aspect), side / math.sqrt(aspect))
    if nearest is None:  # no valid size near that area: cannot happen with the tables' presets and ratios
        return [Problem("size", f"no size near {size!r} fits {mode.name} mode of {spec.name}")]
    sent = f"{nearest[0]}*{nearest[1]}"
    return SentSize(sent, f"size {size!r} sent as {sent}")


def _preset_problem(spec: ModelSpec, mode: Mode, preset: str, size: str | None = None) -> Problem:
    if preset == "4K" and "4K" in spec.all_presets:
        why = "4K is only for text-to-image on wan2.7-image-pro (no input images, no enable_sequential)"
    elif preset in spec.all_presets:
        why = f"{preset} is not available in {mode.name} mode"
    else:
        why = f"{preset} is not a size preset of {spec.name}"
    where = f"{size!r}: " if size is not None else ""
    return Problem("size", f"{where}{why}; use {ratio_words(mode)}")


def _range_problems(spec: ModelSpec, mode: Mode, width: int, height: int) -> list[str]:
    problems: list[str] = []
    pixels = width * height
    if pixels not in mode.pixels:
        lo, hi = math.isqrt(mode.pixels.lo), math.isqrt(mode.pixels.hi)
        problems.append(
            f"{width}*{height} is {pixels} pixels; {mode.name} mode of {spec.name} "
            f"takes {lo}*{lo} ({mode.pixels.lo}) to {hi}*{hi} ({mode.pixels.hi})"
        )
    if width == 0 or height == 0 or max(width, height) / min(width, height) > mode.max_ratio:
        r = f"{mode.max_ratio:g}"
        problems.append(f"{width}*{height} has an aspect ratio outside 1:{r} to {r}:1")
    return problems
