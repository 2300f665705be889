"""The tools' argument texts and JSON schemas, written from ``specs``; nothing here states a limit itself.

* ``describe`` holds each argument's description, built from the spec tables, so a change in a table changes
  what a model reads;
* the per-model limits a ``model`` argument would need are in the server instructions instead
  (``catalog.model_limits``), read once per session rather than in three tools' descriptions;
* ``portable(schema)`` rewrites a generated JSON schema into the subset every host accepts: no ``$ref`` or
  ``$defs`` (inlined), no ``type`` arrays or ``null`` branches (an optional argument is simply optional), no
  ``title`` or ``default: null`` that repeat what the schema says, and, for arguments, no unknown properties.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from ..specs import SEED_RANGE, SPECS, Param, Range

Schema = dict[str, Any]


def _who(param: Param) -> str:
    """The models that take ``param``, with both wan2.7 models written once as 'wan2.7'."""
    names = [name for name, spec in SPECS.items() if param in spec.params]
    if {"wan2.7-image-pro", "wan2.7-image"} <= set(names):
        names = ["wan2.7"] + [n for n in names if not n.startswith("wan2.7")]
    return ", ".join(names)


def _short(name: str) -> str:
    return name.removesuffix("-image").removesuffix("-i2i-preview")


def _per_model(values: Mapping[str, object]) -> str:
    """{'wan2.7-image-pro': 9, 'wan2.7-image': 9, 'wan2.6-image': 4} -> '9 (wan2.7), 4 (wan2.6)'."""
    groups: dict[object, list[str]] = {}
    for name, value in values.items():
        short = "wan2.7" if name.startswith("wan2.7") else _short(name)
        members = groups.setdefault(value, [])
        if short not in members:
            members.append(short)
    return ", ".join(f"{value} ({'/'.join(names)})" for value, names in groups.items())


def _union(ranges: list[Range]) -> Range:
    return Range(min(r.lo for r in ranges), max(r.hi for r in ranges))


MAX_INPUT_IMAGES = max(spec.max_input_images for spec in SPECS.values())
MAX_N = max(mode.n.hi for spec in SPECS.values() for mode in spec.modes)
MAX_IMAGES = _union([spec.max_images for spec in SPECS.values() if spec.max_images])
MAX_BOXES = max(spec.max_boxes_per_image for spec in SPECS.values())
PALETTE = _union([spec.palette for spec in SPECS.values() if spec.palette])


def _n_text() -> str:
    plain = _union([m.n for s in SPECS.values() for m in s.modes if m.name != "image-set"])
    sets = _union([m.n for s in SPECS.values() for m in s.modes if m.name == "image-set"])
    return f"Images to make, each billed: {plain}; with enable_sequential up to {sets.hi} (a maximum)."


def _chars(attr: str) -> str:
    return _per_model({name: getattr(spec, attr) for name, spec in SPECS.items() if getattr(spec, attr)})


describe: Mapping[str, str] = {
    "prompt": "The instruction. Refer to inputs as image 1, image 2 (圖1, 圖2) in the order of images. "
    f"Chars ≤ {_chars('prompt_chars')}.",
    "images": "Input images in order: local paths, file://, http(s):// or data: URLs. "
    f"At most {_per_model({n: s.max_input_images for n, s in SPECS.items()})}; none for text-to-image.",
    "model": "Wan model (limits: server instructions, wan://models).",
    "size": "Output size: a preset ("
    + ", ".join(f"{'/'.join(s.all_presets)} {_short(n)}" for n, s in SPECS.items() if s.all_presets)
    + ") or 'W*H' pixels.",
    "n": _n_text(),
    "negative_prompt": f"What to avoid ({_who(Param.NEGATIVE_PROMPT)}).",
    "seed": f"{SEED_RANGE[0]}-{SEED_RANGE[1]}; the same seed gives a similar result.",
    "watermark": "Add an 'AI Generated' mark.",
    "prompt_extend": f"Let the model rewrite the prompt ({_who(Param.PROMPT_EXTEND)}).",
    "thinking_mode": f"Reason before drawing ({_who(Param.THINKING_MODE)}).",
    "bbox_list": f"{_who(Param.BBOX_LIST)}: one list per input image of up to {MAX_BOXES} boxes [x1, y1, x2, y2] "
    "in that image's pixels (see inspect_image); [] for an image without boxes.",
    "enable_sequential": f"Make a coherent image set of up to n images ({_who(Param.ENABLE_SEQUENTIAL)}).",
    "color_palette": f"{_who(Param.COLOR_PALETTE)}: {PALETTE} colours "
    "{hex: '#C2D1E6', ratio: '25.00%'}, ratios summing to 100.00%.",
    "enable_interleave": f"Text and images interleaved ({_who(Param.ENABLE_INTERLEAVE)}).",
    "max_images": f"Images to make with enable_interleave ({_who(Param.MAX_IMAGES)}).",
    "wait_seconds": "Seconds to wait before returning RUNNING with a task_id; keep under your client's timeout.",
    "task_id": "task_id from edit_image, submit_task or list_tasks.",
}


# --- the portable subset ------------------------------------------------------------------------------


def portable(schema: Schema, *, closed: bool = False, described: bool = True) -> Schema:
    """A new schema saying the same in the subset every host reads. ``closed`` adds ``additionalProperties:
    false`` to every object with properties (tool arguments: unknown names are refused); ``described=False``
    leaves out descriptions (an output schema is read by programs, and the README describes its fields)."""
    defs = cast(Mapping[str, Schema], schema.get("$defs", {}))
    return cast(Schema, _rewrite(schema, defs, closed, described))


def _rewrite(node: Any, defs: Mapping[str, Schema], closed: bool, described: bool = True) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, defs, closed, described) for item in cast(list[Any], node)]
    if not isinstance(node, dict):
        return node
    source = cast(Schema, node)
    ref = source.get("$ref")
    if isinstance(ref, str):
        target = defs[ref.removeprefix("#/$defs/")]
        merged = {**target, **{k: v for k, v in source.items() if k != "$ref"}}
        return _rewrite(merged, defs, closed, described)
    options = source.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in cast(list[Any], options) if o != {"type": "null"}]
        if len(rest) == 1:
            merged = {**cast(Schema, rest[0]), **{k: v for k, v in source.items() if k != "anyOf"}}
            return _rewrite(merged, defs, closed, described)
    out: Schema = {}
    for key, value in source.items():
        if key in ("$defs", "title") or (key == "default" and value is None):
            continue
        if key == "description" and not described:
            continue
        if key in ("properties", "patternProperties"):
            children = cast(Schema, value).items()
            out[key] = {name: _rewrite(child, defs, closed, described) for name, child in children}
        else:
            out[key] = _rewrite(value, defs, closed, described)
    if isinstance(out.get("type"), list):
        types = [t for t in cast(list[str], out["type"]) if t != "null"]
        out["type"] = types[0] if len(types) == 1 else types
    if closed and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out
