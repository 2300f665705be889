"""Which local files the server may read: only inside allowed directories — ``WAN_MCP_ALLOWED_DIRS`` (under stdio,
when it is unset, the user's home folder without its hidden folders), the output directory, and the roots the MCP
client declares. A path is resolved first (``~``, ``..``, symlinks, drive letters
and UNC forms on Windows) and the *resolved* path is both checked and opened, so a symlink cannot lead outside.

Which hosts it may download from or upload to is the client's side of the line: ``dashscope.transport``.

"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import AccessDenied


def _real(path: Path) -> Path:
    return Path(os.path.normcase(os.path.realpath(os.path.expanduser(path))))


def _hidden(real: Path, folder: Path) -> bool:
    """Whether ``real``, inside ``folder``, is in a hidden folder of it or is a hidden file (a name starting with
    '.')."""
    return any(part.startswith(".") for part in real.relative_to(folder).parts)


@dataclass(frozen=True)
class FileAccess:
    directories: tuple[Path, ...]
    """Resolved allowed directories."""
    visible: tuple[Path, ...] = ()
    """Resolved directories allowed without their hidden folders and files (``~/.ssh``, ``~/.aws`` stay out)."""

    @classmethod
    def of(cls, directories: Iterable[Path], visible: Iterable[Path] = ()) -> FileAccess:
        resolved: dict[Path, None] = {}
        for directory in directories:
            resolved[_real(directory)] = None
        return cls(tuple(resolved), tuple(dict.fromkeys(_real(folder) for folder in visible)))

    def with_roots(self, uris: Iterable[str]) -> FileAccess:
        """Add the client's roots (``file://`` URIs; others are ignored)."""
        extra = [Path(unquote(urlsplit(uri).path)) for uri in uris if uri.lower().startswith("file://")]
        return FileAccess.of([*self.directories, *extra], self.visible) if extra else self

    def _contains(self, real: Path) -> bool:
        if any(real == root or real.is_relative_to(root) for root in self.directories):
            return True
        return any(real.is_relative_to(folder) and not _hidden(real, folder) for folder in self.visible)

    def allows(self, path: Path) -> bool:
        return self._contains(_real(path))

    def resolve(self, path: Path) -> Path:
        """The real path to open, or AccessDenied naming the allowed directories. Nothing is opened here."""
        real = _real(path)
        if self._contains(real):
            return real
        hidden_in = next((folder for folder in self.visible if real.is_relative_to(folder)), None)
        if hidden_in is not None:
            raise AccessDenied(
                f"{path} is in a hidden folder of {hidden_in} (a name starting with '.'), which is never read unless "
                "WAN_MCP_ALLOWED_DIRS names it; add its folder to WAN_MCP_ALLOWED_DIRS or open it as a root in "
                "your MCP client"
            )
        allowed = ", ".join([*(f"{d} (without hidden folders)" for d in self.visible), *map(str, self.directories)])
        allowed = allowed or "none"
        raise AccessDenied(
            f"{path} is outside the allowed directories ({allowed}); add its folder to WAN_MCP_ALLOWED_DIRS "
            "or open it as a root in your MCP client"
        )
