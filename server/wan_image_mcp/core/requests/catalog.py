"""The spec tables as documents: the model table of ``docs/models.md`` and of ``docs/dashscope-api.md`` with that
page's endpoint table (tests keep both files in step; ``python -m wan_image_mcp.core.requests.catalog --write
docs/models.md docs/dashscope-api.md`` rewrites them), the JSON behind the ``wan://models`` resources and the limits
in the server instructions. All are generated from ``specs``; nothing here states a limit itself."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from ..specs import SEED_RANGE, SPECS, Mode, ModelSpec, Param
from .declarations import EditParams

OUR_N: Final = EditParams().n
"""n when a call leaves it out: ours (1), never the API's (4 or 12), which a call never falls back to."""


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


def endpoint_table() -> str:
    """Where each model's requests go and the shape of their bodies, as a Markdown table."""
    lines = [
        "| Model | Body | Create a task (with `X-DashScope-Async: enable`) | One synchronous call |",
        "|---|---|---|---|",
    ]
    for spec in SPECS.values():
        sync = f"`POST {spec.endpoints.sync}`" if spec.endpoints.sync else "none"
        lines.append(f"| `{spec.name}` | {spec.protocol.value} | `POST {spec.endpoints.submit}` | {sync} |")
    return "\n".join(lines)


GENERATED: Final[Mapping[str, Callable[[], str]]] = MappingProxyType(
    {"models": model_table, "endpoints": endpoint_table}
)
"""The generated tables by name: a document holds one between ``<!-- {name}:start -->`` and ``<!-- {name}:end -->``."""


def generated_sections(text: str) -> dict[str, str]:
    """The generated tables a document holds, by name, as the document has them now."""
    found: dict[str, str] = {}
    for name in GENERATED:
        start, end = f"<!-- {name}:start -->\n", f"\n<!-- {name}:end -->"
        if start in text and end in text:
            found[name] = text.split(start, 1)[1].split(end, 1)[0]
    return found


def regenerated(text: str) -> str:
    """``text`` with each generated table it holds made again from the specs."""
    for name, table in generated_sections(text).items():
        start, end = f"<!-- {name}:start -->\n", f"\n<!-- {name}:end -->"
        text = text.replace(start + table + end, start + GENERATED[name]() + end)
    return text


def _others(spec: ModelSpec) -> str:
    shown = {Param.SIZE, Param.N, Param.NEGATIVE_PROMPT, Param.BBOX_LIST, Param.COLOR_PALETTE, Param.MAX_IMAGES}
    return ", ".join(sorted(p.value for p in spec.params - shown))


def _extras(spec: ModelSpec) -> str:
    extras: list[str] = []
    if spec.negative_prompt_chars:
        extras.append(f"negative_prompt ≤ {spec.negative_prompt_chars} chars")
    if spec.max_boxes_per_image:
        extras.append(f"bbox_list ≤ {spec.max_boxes_per_image}/image")
    if spec.palette:
        extras.append(f"color_palette {spec.palette}")
    if spec.max_images:
        extras.append(f"max_images {spec.max_images}")
    return ", ".join([*extras, _others(spec)])


def _modes(spec: ModelSpec) -> str:
    parts: list[str] = []
    for mode in spec.modes:
        presets = "/".join(mode.presets) or "W*H"
        parts.append(
            f"{mode.name} {mode.images} images, n {mode.n}, size {presets} (≤ {math.isqrt(mode.pixels.hi)}² px)"
        )
    return "; ".join(parts)


def model_limits() -> str:
    """Every model's limits, one line each, for the server instructions (what a ``model`` argument implies)."""
    return "\n".join(
        f"- {spec.name}: {spec.summary}. Inputs: sides {spec.image.side} px, {_mb(spec)}, ratio "
        f"{spec.image.ratio_text()}. Prompt ≤ {spec.prompt_chars} chars. {_modes(spec)}. Also: {_extras(spec)}."
        for spec in SPECS.values()
    )


def shape_rule() -> str:
    """The one sentence of the server instructions that says what shape the output takes."""
    return (
        "Output shape: with input images the output keeps the aspect ratio of the LAST image (put the image whose "
        "shape you want last), without images it is square, unless size is 'W*H' or a ratio ('16:9', '2K 16:9'); "
        "every result states output_size, and dry_run: true shows it, free, before paying."
    )


def _shape(mode: Mode) -> str:
    """How a preset of ``mode`` shapes the output."""
    if mode.images.hi == 0:
        return "square"
    if mode.images.lo == 0:
        return "at the last input image's aspect ratio (square without one)"
    return "at the last input image's aspect ratio"


def limits_in_force(
    *,
    folders: Sequence[str],
    visible_folders: Sequence[str] = (),
    per_call: int | None,
    per_day: int | None = None,
    confirm_above: int | None = None,
    longest_wait: float,
) -> str:
    """The server's own limits, for its instructions: where local images may come from (``visible_folders``
    without their hidden folders), the most paid images per call and per day, the confirmation threshold, and
    the longest a tool call waits. Plain values: the MCP side reads them from the settings."""
    places = [f"{folder} (not its hidden folders)" for folder in visible_folders] + list(folders)
    lines = [
        f"Local images may come from {', '.join(places)} and the folders the client shares as roots; any other "
        "path is refused (the user sets folders with WAN_MCP_ALLOWED_DIRS)."
    ]
    if per_call is not None:
        lines.append(f"At most {per_call} paid images per call (n, or max_images): make a bigger set in several calls.")
    if per_day is not None:
        lines.append(f"At most {per_day} paid images in any 24 h.")
    if confirm_above is not None:
        lines.append(f"A call asking for more than {confirm_above} paid images waits for the user's yes.")
    lines.append(
        f"A call waits at most {longest_wait:g} s (wait_seconds), then returns RUNNING with a task_id for check_task."
    )
    return " ".join(lines)


def _mode_json(mode: Mode) -> dict[str, Any]:
    return {
        "input_images": {"min": mode.images.lo, "max": mode.images.hi},
        "n": {"min": mode.n.lo, "max": mode.n.hi, "default": OUR_N},
        "size_presets": {name: f"about {side}*{side} pixels, {_shape(mode)}" for name, side in mode.presets.items()},
        "custom_size": {"pixels": {"min": mode.pixels.lo, "max": mode.pixels.hi}, "max_ratio": mode.max_ratio},
        "default_size": mode.default_size or f"about {mode.default_side}*{mode.default_side} pixels, {_shape(mode)}",
        "parameters": sorted(p.value for p in mode.params),
    }


def spec_json(spec: ModelSpec) -> dict[str, Any]:
    """One model's limits and capabilities as plain JSON."""
    image = spec.image
    return {
        "model": spec.name,
        "summary": spec.summary,
        "protocol": spec.protocol.value,
        "endpoints": {"sync": spec.endpoints.sync, "async": spec.endpoints.submit},
        "input_image": {
            "formats": sorted(image.formats),
            "side_px": {"min": image.side.lo, "max": image.side.hi},
            "max_bytes": image.max_bytes,
            "max_ratio": image.max_ratio,
        },
        "prompt_chars": spec.prompt_chars,
        "negative_prompt_chars": spec.negative_prompt_chars,
        "seed": {"min": SEED_RANGE[0], "max": SEED_RANGE[1]},
        "bbox_boxes_per_image": spec.max_boxes_per_image or None,
        "color_palette_colours": {"min": spec.palette.lo, "max": spec.palette.hi} if spec.palette else None,
        "max_images": {"min": spec.max_images.lo, "max": spec.max_images.hi} if spec.max_images else None,
        "modes": {mode.name: _mode_json(mode) for mode in spec.modes},
    }


def catalog_json() -> dict[str, Any]:
    return {name: spec_json(spec) for name, spec in SPECS.items()}


def main(argv: Sequence[str]) -> int:
    """Print the model table; with ``--write FILE...``, rewrite the generated tables in each file."""
    if argv[:1] != ["--write"]:
        print(model_table())
        return 0
    for name in argv[1:]:
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        path.write_text(regenerated(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
