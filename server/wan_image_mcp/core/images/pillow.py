"""Pillow, with this server's decompression-bomb guard. Every module of the package that decodes images imports
Pillow from here (the server's core inside the functions that decode, so that Pillow stays off the start path;
the emulator and the demo at the top): whoever imports it first sets the guard. A test checks that no other
module of the package imports PIL itself."""

import sys

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from ..specs import MAX_DECODE_PIXELS

Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS

BLOCK_BYTES = 64 * 1024 * 1024
"""Pillow allocates an image's pixels in blocks (16 MB by default). glibc serves allocations under its mmap
threshold, which grows to 32 MB once large blocks are freed, from per-thread heaps that keep freed memory.
Blocks of 64 MB are always mapped and unmapped, so a freed decode is given back at once (why: README, Design
notes)."""
Image.core.set_block_size(BLOCK_BYTES)  # pyright: ignore[reportUnknownMemberType]

MAPPED_BYTES = 16 * 1024 * 1024
"""Allocations from this size up are mapped and unmapped (glibc's ``M_MMAP_THRESHOLD``, fixed), not carved from
the per-thread heaps. Besides Pillow's blocks, the work of a large image allocates buffers of 8-30 MB (a band of
rows being resampled, an encoded file growing), which a heap would keep once a later payload pinned it.
Elsewhere (musl, macOS, Windows) nothing is changed."""


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


_map_large_allocations()

__all__ = ["MAX_DECODE_PIXELS", "Image", "ImageChops", "ImageDraw", "ImageFont", "ImageOps", "UnidentifiedImageError"]
