"""Arguments described briefly, for a tool whose description points to another's (submit_task takes edit_image's
arguments, described there): a few words for the arguments whose name does not say how to write them, nothing for
the others, so that a model reading only that tool still writes them right, for a fraction of the bytes. The
bounds stay the declaration's (``declarations``); nothing here states a limit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cache
from types import MappingProxyType
from typing import Annotated, Any, Final, cast, get_args

from pydantic import Field
from pydantic.fields import FieldInfo

from .declarations import Argument

BRIEF: Final[Mapping[str, str]] = MappingProxyType(
    {
        "prompt": "Inputs are image 1, image 2 in order",
        "images": "Local paths or URLs, in order",
        "size": "A preset, 'W*H' or a ratio ('2K 16:9')",
        "n": "Images to make, each billed",
        "seed": "Same seed, similar result",
        "bbox_list": "Per image: [[x1, y1, x2, y2], …] in its pixels",
        "color_palette": "[{hex: '#C2D1E6', ratio: '25.00%'}, …] summing to 100.00%",
    }
)
"""The brief description of each argument that needs one, by name."""


def briefly(declared: Sequence[Argument]) -> tuple[Argument, ...]:
    """``declared`` described briefly: ``BRIEF``'s words, or none."""
    return tuple(replace(argument, annotation=_briefly(argument.annotation, argument.name)) for argument in declared)


@cache
def _briefly(annotation: Any, name: str) -> Any:
    """``annotation`` with its description replaced (the last a pydantic ``Field`` gives wins; an empty one is left
    out of the schema); made once, so that every tool holding the argument holds the same type."""
    if not any(isinstance(extra, FieldInfo) for extra in get_args(annotation)[1:]):
        return annotation
    return cast(Any, Annotated)[(*get_args(annotation), Field(description=BRIEF.get(name, "")))]
