"""The colour a transparent input is flattened onto before it is sent (the API takes no alpha): white unless the
caller chooses black or a ``#RRGGBB`` (``alpha_background``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ..errors import Problem

CHOICES: Final = "white, black or '#RRGGBB'"
_HEX = re.compile(r"#([0-9A-Fa-f]{6})")


@dataclass(frozen=True)
class Background:
    """A flattening colour: its name as adjustments say it ('white', 'black', '#FF0000') and its RGB."""

    name: str
    rgb: tuple[int, int, int]

    @property
    def grey(self) -> int | None:
        """Its level when it is a grey (a grey image with alpha stays grey on it), else None."""
        red, green, blue = self.rgb
        return red if red == green == blue else None

    @classmethod
    def parse(cls, text: str) -> Background | None:
        """'white', 'black' (any case) or '#RRGGBB' as a background, named as written in upper case; None
        for anything else."""
        word = text.strip().lower()
        if word in NAMED:
            return NAMED[word]
        match = _HEX.fullmatch(word)
        if match is None:
            return None
        value = int(match[1], 16)
        return cls(f"#{match[1].upper()}", (value >> 16, (value >> 8) & 0xFF, value & 0xFF))


def background_problem(text: str) -> Problem:
    """What is wrong with an ``alpha_background`` that ``Background.parse`` does not take."""
    return Problem("alpha_background", f"{text!r} is not a colour it takes: {CHOICES}, e.g. '#FF0000'")


WHITE: Final = Background("white", (255, 255, 255))
NAMED: Final = {"white": WHITE, "black": Background("black", (0, 0, 0))}
