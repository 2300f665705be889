"""Nothing is paid that cannot be saved: the output folder (and bucket) is proved writable at start and again
before each paid submission.

``probe_output`` creates the output folder and writes and removes a tiny temp file in it (result images are
downloaded into temp files there, whatever the sink); for a bucket (``WAN_MCP_OUTPUT_URL``), the sink's own probe
stores and deletes a tiny object. ``OutputProbe`` runs it for the service before a paid call, trusting a success
for ``FRESH`` seconds (a burst of calls probes once; a folder that went away is noticed within seconds) and never
a failure: a folder fixed meanwhile is used at the next call, with no restart.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread

from ..errors import OutputNotWritable
from .local_folder import PART_SUFFIX, temp_owner

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..clock import Clock
    from .sinks import ResultSink

FRESH = 5.0
"""Seconds a successful probe is trusted before the next paid call probes again."""
PROBE_NAME = "write-probe"
"""The name part of a probe's temp file: ``.write-probe.{owner}.{random}.part``, one a killed server's start
removes like any temp file of its own."""


def prove_folder(root: Path) -> None:
    """Create ``root`` and write and remove a tiny temp file in it. Raises the OSError that stopped it. Blocks."""
    root.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=root, prefix=f".{PROBE_NAME}.{temp_owner()}.", suffix=PART_SUFFIX)
    try:
        os.write(fd, b"ok")
    finally:
        os.close(fd)
        Path(temp).unlink(missing_ok=True)


def probe_output(root: Path, sink: ResultSink | None = None) -> None:
    """Create ``root`` and prove it takes a file (written, then removed); then ``sink``'s own probe when the images
    are kept elsewhere (a bucket). Raises OutputNotWritable naming the place, why, and the setting that chooses
    it. Blocks."""
    try:
        prove_folder(root)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise OutputNotWritable(
            f"The output folder {root} cannot be written ({why}{f': {exc.filename}' if exc.filename else ''}), so "
            "no result could be saved: paid calls are refused until it can. Nothing was sent and nothing is billed. "
            "Fix: make that folder writable by this server, or set WAN_MCP_OUTPUT_DIR to a folder it can write "
            "(and restart it)."
        ) from None
    if sink is None:
        return
    try:
        sink.probe()
    except OSError as exc:
        raise OutputNotWritable(
            f"The output bucket {sink.where} does not take a write ({exc}), so no result could be saved: paid "
            "calls are refused until it does. Nothing was sent and nothing is billed. Fix: let these credentials "
            "write there (s3:PutObject and s3:DeleteObject on the prefix), or set WAN_MCP_OUTPUT_URL (and restart)."
        ) from None


class OutputProbe:
    """``probe`` (``ResultStore.probe``) for the service before a paid call: a success trusted for ``fresh``
    seconds, never a failure."""

    def __init__(self, probe: Callable[[], None], clock: Clock, *, fresh: float = FRESH) -> None:
        self._probe = probe
        self._clock = clock
        self._fresh = fresh
        self._proved_at: float | None = None

    async def ensure(self) -> None:
        """Return at once when the output was proved writable within ``fresh`` seconds; else probe it (on a worker
        thread). Raises OutputNotWritable."""
        if self._proved_at is not None and self._clock.monotonic() - self._proved_at < self._fresh:
            return
        self._proved_at = None
        await anyio.to_thread.run_sync(self._probe)
        self._proved_at = self._clock.monotonic()
