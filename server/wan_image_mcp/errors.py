"""The root of every error this package raises on purpose, and the validation error.

WanError
├── InvalidRequest            bad input found before any request is sent (one or more Problems)
├── ConfigurationError        a setting is missing or wrong (e.g. no DASHSCOPE_API_KEY)
└── dashscope.DashScopeError  the API or the network said no (see dashscope/errors.py)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class WanError(Exception):
    """Base class of the package's own errors."""


class ConfigurationError(WanError):
    """A setting is missing or invalid. The message names the setting."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: which argument, which image (1-based, as in 圖1), and why."""

    argument: str
    message: str
    image: int | None = None

    def __str__(self) -> str:
        where = self.argument if self.image is None else f"{self.argument} (image {self.image})"
        return f"{where}: {self.message}"


class InvalidRequest(WanError, ValueError):
    """A request that cannot succeed, refused before it is sent. Lists every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        if len(self.problems) == 1:
            return f"Invalid request: {self.problems[0]}"
        lines = "\n".join(f"- {p}" for p in self.problems)
        return f"Invalid request ({len(self.problems)} problems):\n{lines}"
