"""The README's model table, generated from ``specs`` (a test keeps the README in step)."""

from __future__ import annotations

import math
from collections.abc import Callable

from .specs import SPECS, ModelSpec, Param


def _mb(spec: ModelSpec) -> str:
    return f"≤ {spec.image.max_bytes // 1_000_000} MB"


def _sizes(spec: ModelSpec) -> str:
    parts: list[str] = []
    for mode in spec.modes:
        presets = "/".join(mode.presets) or "W*H only"
        lo, hi = math.isqrt(mode.pixels.lo), math.isqrt(mode.pixels.hi)
        parts.append(f"{mode.name}: {presets}; {lo}²–{hi}² px, ≤ {mode.max_ratio:g}:1")
    return "<br>".join(parts)


def _counts(spec: ModelSpec, pick: str) -> str:
    return "<br>".join(f"{m.name}: {getattr(m, pick)}" for m in spec.modes)


def model_table() -> str:
    rows: list[tuple[str, Callable[[ModelSpec], str]]] = [
        ("Input images", lambda s: _counts(s, "images")),
        ("Formats", lambda s: ", ".join(sorted(s.image.formats))),
        ("Side (px)", lambda s: str(s.image.side)),
        ("File size", _mb),
        ("Aspect ratio", lambda s: s.image.ratio_text()),
        ("Prompt (chars)", lambda s: str(s.prompt_chars)),
        ("negative_prompt (chars)", lambda s: str(s.negative_prompt_chars or "—")),
        ("n (ours: 1)", lambda s: _counts(s, "n")),
        ("Output size", _sizes),
        ("bbox_list", lambda s: f"≤ {s.max_boxes_per_image} boxes/image" if s.max_boxes_per_image else "—"),
        ("color_palette", lambda s: f"{s.palette} colours" if s.palette else "—"),
        ("max_images", lambda s: str(s.max_images) if s.max_images else "—"),
        ("Other parameters", _others),
    ]
    specs = list(SPECS.values())
    lines = ["| | " + " | ".join(f"`{s.name}`" for s in specs) + " |", "|---" * (len(specs) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(s) for s in specs) + " |" for name, cell in rows]
    return "\n".join(lines)


def _others(spec: ModelSpec) -> str:
    shown = {Param.SIZE, Param.N, Param.NEGATIVE_PROMPT, Param.BBOX_LIST, Param.COLOR_PALETTE, Param.MAX_IMAGES}
    return ", ".join(sorted(p.value for p in spec.params - shown))


if __name__ == "__main__":
    print(model_table())
