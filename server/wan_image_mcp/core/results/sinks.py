"""Where saved result images go: the seam between downloading a result (``ResultStore``) and keeping it.

``ResultSink`` is what ``ResultStore`` asks of a place that keeps images: what is already kept for a task, to
keep one downloaded image under its final name whole or not at all, to write its sidecar, and, for the resources
and previews, to say whether an image is still there and to read it back. ``store.LocalFolder`` is the output folder
as it always was (rename into place, ``local_folder.existing``); ``object_sink.ObjectSink`` is an S3 bucket. Every
method blocks: callers run them on worker threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .outcomes import ImageFile

if TYPE_CHECKING:
    from ..journal import Journal, Tenant


class ResultSink(Protocol):
    """A place result images are kept in. An image's location (``ImageFile.path``) is what ``keep`` returned."""

    @property
    def where(self) -> str:
        """The place as a person would name it (the folder, or ``s3://bucket/prefix``), for error messages."""
        ...

    def existing(self, task_id: str) -> tuple[dict[int, ImageFile], int]:
        """Images of ``task_id`` already kept, by index, and how many the task has in all (0: not known); an image
        kept without its sidecar has ``url`` "" (see ``local_folder.existing``)."""
        ...

    def keep(self, part: Path, name: str) -> str:
        """Keep the complete, fsync'd file ``part`` as ``name``, whole or not at all; its location. Raises OSError."""
        ...

    def write_sidecar(self, location: str, data: bytes) -> None:
        """Write the JSON sidecar of the image at ``location``, whole or not at all. Raises OSError."""
        ...

    def write_document(self, location: str, data: bytes) -> None:
        """Write a page about saved images (an interleaved answer's Markdown) at ``location``, beside them, whole or
        not at all. Raises OSError."""
        ...

    def present(self, location: str) -> bool:
        """Whether the image at ``location`` is still there."""
        ...

    def read(self, location: str) -> bytes:
        """The bytes of the image at ``location``. Raises OSError."""
        ...

    def lookup(self, journal: Journal, name: str, tenant: Tenant | None = None) -> str | None:
        """The location of the result image called ``name`` if the journal records it as saved (by a task of
        ``tenant``'s, when given); None otherwise."""
        ...

    def served_name(self, location: str) -> str | None:
        """The name ``wan://images/{name}`` serves the image at ``location`` under if it is kept here (in a folder:
        and still there); None otherwise."""
        ...

    def probe(self) -> None:
        """Prove the place takes a write (a tiny file or object written, then removed). Raises OSError saying
        why."""
        ...

    def download_url(self, location: str) -> str | None:
        """A URL anyone may fetch the image at ``location`` from for a while; None where there is none."""
        ...
