"""Tool arguments checked strictly, in our words, before anything is read or sent.

``problems(arguments, known, errors)`` takes the arguments a caller gave, the names a tool takes and
pydantic's validation errors for them, and returns one sentence per problem: an unknown name with the closest
valid one, a wrong type, a value out of range, each naming the argument, the 1-based image (or box, colour,
item) where there is one, and the limit. ``refusal(problems)`` makes the message a caller reads. Nothing here
knows of MCP.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic_core import ErrorDetails

NOTHING_SENT = "Nothing was sent."
PER_CALL_ERROR = "paid_per_call"
"""The error type of a paid count (n, max_images) over the server's per-call cap (``declarations.capped``)."""

SYNONYMS: Mapping[str, str] = {
    "image": "images",
    "image_urls": "images",
    "image_paths": "images",
    "input_images": "images",
    "urls": "images",
    "bboxes": "bbox_list",
    "boxes": "bbox_list",
    "bbox": "bbox_list",
    "negative": "negative_prompt",
    "num_images": "n",
    "count": "n",
    "number": "n",
    "palette": "color_palette",
    "colour_palette": "color_palette",
    "sequential": "enable_sequential",
    "interleave": "enable_interleave",
    "wait": "wait_seconds",
    "timeout": "wait_seconds",
    "id": "task_id",
    "taskid": "task_id",
    "task": "task_id",
    "instruction": "prompt",
    "prompt": "instruction",
    "text": "prompt",
    "target": "targets",
    "label": "labels",
}
"""Names agents use for our arguments that a spelling distance would not find."""

_KINDS: Mapping[str, str] = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "int_parsing_size": "a whole number of sensible size",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}
_BOUNDS: Mapping[str, str] = {
    "greater_than_equal": "at least",
    "greater_than": "more than",
    "less_than_equal": "at most",
    "less_than": "less than",
}
_BOUND_KEYS: Mapping[str, str] = {
    "greater_than_equal": "ge",
    "greater_than": "gt",
    "less_than_equal": "le",
    "less_than": "lt",
}


def problems(arguments: Mapping[str, Any], known: Sequence[str], errors: Iterable[ErrorDetails]) -> list[str]:
    """Every problem with ``arguments``: unknown names first, then each validation error once."""
    found = [_unknown(name, known) for name in arguments if name not in known]
    seen: set[str] = set()
    for error in errors:
        if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
            continue  # an unknown argument, said above with its closest valid name
        sentence = _explain(error, arguments)
        if sentence not in seen:
            seen.add(sentence)
            found.append(sentence)
    return found


def refusal(found: Sequence[str]) -> str:
    """One problem as one sentence, several as a list; both end with 'Nothing was sent.'"""
    if len(found) == 1:
        return f"{_sentence(found[0])} {NOTHING_SENT}"
    lines = "\n".join(f"- {p}" for p in found)
    return f"{len(found)} problems with the arguments:\n{lines}\n{NOTHING_SENT}"


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else f"{text}."


def _unknown(name: str, known: Sequence[str]) -> str:
    guess = SYNONYMS.get(name.lower())
    if guess not in known:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        guess = close[0] if close else None
    if guess is not None:
        return f"unknown argument '{name}' — did you mean '{guess}'?"
    return f"unknown argument '{name}' — the arguments are {', '.join(sorted(known))}"


def _explain(error: ErrorDetails, arguments: Mapping[str, Any]) -> str:
    loc = error["loc"]
    argument = str(loc[0]) if loc else "arguments"
    where = _where(loc)
    kind = error["type"]
    value = error.get("input")
    ctx: Mapping[str, Any] = error.get("ctx") or {}

    if argument == "bbox_list" and kind == "list_type" and len(loc) > 1:
        return _bbox_shape(arguments.get("bbox_list"))
    if kind == "extra_forbidden":
        return f"{where} is not a field here"
    if kind == "missing":
        return f"{where} is required" if len(loc) == 1 else f"{where} is missing"
    if argument == "images" and kind == "list_type" and len(loc) == 1 and isinstance(value, str):
        parts = [part.strip() for part in value.split(",") if part.strip()] if "," in value else [value]
        listed = ", ".join(_show(part) for part in parts)
        return f"images must be a list with one reference per image: [{listed}], not {_show(value)}"
    if kind in _KINDS:
        return f"{where} must be {_KINDS[kind]}; got {_show(value)}"
    if kind == "literal_error" or kind == "enum":
        return f"{where} must be one of {ctx.get('expected', '')}; got {_show(value)}"
    if kind == PER_CALL_ERROR:
        return (
            f"{where} must be at most {ctx.get('le')}, the most paid images one call may request on this server "
            f"(WAN_MCP_MAX_IMAGES_PER_CALL); got {_show(value)}. Split the set over several calls, or raise the "
            "setting in the server's environment"
        )
    if kind in _BOUNDS:
        limit = ctx.get(_BOUND_KEYS[kind])
        return f"{where} must be {_BOUNDS[kind]} {_number(limit)}; got {_show(value)}"
    if kind == "too_long":
        items = "images" if argument == "images" else "items"
        return f"{where} takes at most {ctx.get('max_length')} {items}; {ctx.get('actual_length')} were given"
    if kind == "too_short":
        return f"{where} needs at least {ctx.get('min_length')} item(s); {ctx.get('actual_length')} were given"
    if kind == "string_too_long":
        return f"{where} is {_length(value)} characters; at most {ctx.get('max_length')}"
    if kind == "string_too_short":
        return f"{where} must have at least {ctx.get('min_length')} character(s)"
    if kind == "finite_number":
        return f"{where} must be a finite number; got {_show(value)}"
    return f"{where} is not valid ({error['msg'].lower()}); got {_show(value)}"


def _where(loc: tuple[int | str, ...]) -> str:
    """``('bbox_list', 1, 0)`` -> 'bbox_list (image 2, box 1)': 1-based, as the prompt says 圖2."""
    if not loc:
        return "arguments"
    head, rest = str(loc[0]), loc[1:]
    names = {"images": ["image"], "bbox_list": ["image", "box", "value"], "color_palette": ["colour"]}
    steps = names.get(head, ["item"])
    parts: list[str] = []
    field: str | None = None
    for depth, part in enumerate(rest):
        if isinstance(part, int):
            label = steps[min(depth, len(steps) - 1)]
            parts.append(f"{label} {part + 1}")
        else:
            field = part
    place = f" ({', '.join(parts)})" if parts else ""
    return f"{head}{place}{f' {field}' if field else ''}"


def _bbox_shape(value: Any) -> str:
    example = "[[[x1, y1, x2, y2]], []] for one box on image 1 and none on image 2"
    return f"bbox_list must hold one list of boxes per input image, like {example}; got {_show(value)}"


def _show(value: Any) -> str:
    """A value as the caller wrote it, cut short: never a Python repr of an object."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        text = json.dumps(value, ensure_ascii=False, default=lambda _: "…")
    except (TypeError, ValueError, RecursionError):
        text = "…"
    return text if len(text) <= 60 else f"{text[:57]}…"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _length(value: Any) -> str:
    return str(len(value)) if isinstance(value, str) else "too many"
