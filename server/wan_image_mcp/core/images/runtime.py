"""The process's image state, owned by one object: ``ImageRuntime`` holds the decode budget (``DecodeBudget``),
the files already checked (``CheckedFiles``) and the threads that resample bands, and sets Pillow's
decompression-bomb guard and allocation settings (and glibc's ``mallopt``) once, the first time an image is
decoded. Nothing here runs at import: the server's lifespan (``wiring.running_service``) makes one and installs
it for as long as it runs (``installed``); ``imaging()`` is the runtime installed, or, in a process with no
server (the gallery, the emulator, a test), one made on first use and kept for the process.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import sys
import threading
from collections.abc import Generator

from .decoding import CheckedFiles, DecodeBudget, Holding

__all__ = ["BLOCK_BYTES", "MAPPED_BYTES", "ImageRuntime", "hold_decoded", "imaging", "installed"]

BLOCK_BYTES = 64 * 1024 * 1024
"""Pillow allocates an image's pixels in blocks (16 MB by default). glibc serves allocations under its mmap
threshold, which grows to 32 MB once large blocks are freed, from per-thread heaps that keep freed memory.
Blocks of 64 MB are always mapped and unmapped, so a freed decode is given back at once (why: docs/design.md, Design
notes)."""

MAPPED_BYTES = 16 * 1024 * 1024
"""Allocations from this size up are mapped and unmapped (glibc's ``M_MMAP_THRESHOLD``, fixed), not carved from
the per-thread heaps. Besides Pillow's blocks, the work of a large image allocates buffers of 8-30 MB (a band of
rows being resampled, an encoded file growing), which a heap would keep once a later payload pinned it.
Elsewhere (musl, macOS, Windows) nothing is changed."""

BAND_THREADS = 2
"""Threads that resample bands of one large image (Pillow lets go of the GIL while it resamples, so two bands
take the time of one on two cores)."""


class ImageRuntime:
    """What every image decoded in this process shares: the decode budget, the files already checked, the band
    threads (made when first needed, ended by ``close``), and Pillow's settings (``start``)."""

    def __init__(self) -> None:
        self.decodes = DecodeBudget()
        self.checked = CheckedFiles()
        self._lock = threading.Lock()
        self._bands: concurrent.futures.ThreadPoolExecutor | None = None

    def start(self) -> ImageRuntime:
        """Pillow's guard and allocation settings, set once per process (Pillow's settings are the process's):
        from here on an image with more than ``specs.MAX_DECODE_PIXELS`` pixels is refused before decoding."""
        _set_pillow_once()
        return self

    def band_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        """The threads that resample bands, made when first needed."""
        with self._lock:
            if self._bands is None:
                self._bands = concurrent.futures.ThreadPoolExecutor(BAND_THREADS, thread_name_prefix="resize-band")
            return self._bands

    def close(self) -> None:
        """End the band threads (after the bands in hand); the budget and the checked files go with the object."""
        with self._lock:
            bands, self._bands = self._bands, None
        if bands is not None:
            bands.shutdown(wait=True)


_lock = threading.Lock()
_installed: list[ImageRuntime] = []
_default: ImageRuntime | None = None
_pillow_set = False


def imaging() -> ImageRuntime:
    """The runtime installed by the server running in this process (the latest, if several), else this process's
    own, made now; started either way. Call it before decoding anything."""
    global _default
    with _lock:
        if _installed:
            runtime = _installed[-1]
        else:
            if _default is None:
                _default = ImageRuntime()
            runtime = _default
    return runtime.start()


@contextlib.contextmanager
def installed(runtime: ImageRuntime) -> Generator[ImageRuntime]:
    """``runtime`` is what ``imaging()`` returns while the block runs; closed when it ends. Starting it is left
    to the first decode, so that Pillow stays off the start path."""
    with _lock:
        _installed.append(runtime)
    try:
        yield runtime
    finally:
        with _lock:
            _installed.remove(runtime)
        runtime.close()


def hold_decoded(nbytes: int) -> contextlib.AbstractContextManager[Holding]:
    """Room in the decode budget for a decode that holds ``nbytes`` at its peak, waiting until there is: enter it
    before decoding, leave it once the pixels are freed."""
    return imaging().decodes.hold(nbytes)


def _set_pillow_once() -> None:
    global _pillow_set
    with _lock:
        if _pillow_set:
            return
        from .pillow import MAX_DECODE_PIXELS, Image

        Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS
        Image.core.set_block_size(BLOCK_BYTES)  # pyright: ignore[reportUnknownMemberType]
        _map_large_allocations()
        _pillow_set = True


def _map_large_allocations() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes  # optional: CPython built without libffi has none

        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library; musl has no mallopt
    except (ImportError, OSError, AttributeError):
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_mmap_threshold = -3
    mallopt(m_mmap_threshold, MAPPED_BYTES)
