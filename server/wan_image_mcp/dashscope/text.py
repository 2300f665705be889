"""Text that can be written anywhere: lone UTF-16 surrogates replaced by U+FFFD.

A Python ``str`` may hold code points U+D800-U+DFFF, which no UTF-8 writer accepts: JSON's escapes make them
(``"\\ud83d"``, half an emoji cut by a JavaScript host or a truncating API), and so does ``os.fsdecode`` for a
file name whose bytes are not UTF-8 (``surrogateescape``: ``b"d\\xff"`` reads as ``"d\\udcff"``). One reaching
stdout, an HTTP body, SQLite or PostgreSQL raises. So every string from outside is repaired where it comes in (the
API's JSON, the client's messages) and every message the server writes where it goes out, by these functions.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, cast

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""Any code point no UTF encoding can write (in a Python ``str`` a surrogate is always alone: a pair decodes as
one character)."""


def has_lone_surrogate(text: str) -> bool:
    return not text.isascii() and LONE_SURROGATE.search(text) is not None  # isascii() is O(1): base64 is skipped


def without_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (a file name's undecodable byte shows as U+FFFD)."""
    return LONE_SURROGATE.sub("\ufffd", text) if has_lone_surrogate(text) else text


def replace_lone_surrogates(value: Any) -> list[str]:
    """Replace, in place, every lone surrogate in the strings (keys too) of ``value``, a decoded JSON object or
    array; returns the paths changed (``params.arguments.prompt``, ``images[1]``, a key as ``a.b (its name)``),
    outermost first. Iterative: any depth."""
    replaced: list[str] = []

    def fixed(text: str, path: str) -> str:
        if not has_lone_surrogate(text):
            return text
        replaced.append(path)
        return LONE_SURROGATE.sub("\ufffd", text)

    queue: deque[tuple[Any, str]] = deque([(value, "")])
    while queue:
        node, path = queue.popleft()
        if isinstance(node, list):
            items = cast(list[Any], node)
            for index, item in enumerate(items):
                at = f"{path}[{index}]"
                if isinstance(item, str):
                    items[index] = fixed(item, at)
                elif isinstance(item, list | dict):
                    queue.append((cast(Any, item), at))
        elif isinstance(node, dict):
            members = cast(dict[str, Any], node)
            for key, item in list(members.items()):
                name = without_lone_surrogates(key)
                at = f"{path}.{name}" if path else name
                if name != key:
                    replaced.append(f"{at} (its name)")
                    del members[key]
                    members[name] = item
                if isinstance(item, str):
                    members[name] = fixed(item, at)
                elif isinstance(item, list | dict):
                    queue.append((cast(Any, item), at))
    return replaced
