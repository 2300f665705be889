"""Pillow, with this server's decompression-bomb guard. Every module of the package that decodes images imports
Pillow from here (the server's core inside the functions that decode, so that Pillow stays off the start path;
the emulator and the demo at the top): whoever imports it first sets the guard. A test checks that no other
module of the package imports PIL itself."""

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .specs import SPECS

MAX_DECODE_PIXELS = 2 * max(spec.image.side.hi for spec in SPECS.values()) ** 2
"""Pillow's decompression-bomb guard: twice the largest image any model accepts (larger ones are shrunk to
fit, so some headroom is useful); anything bigger is refused before it is decoded."""
Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS

BLOCK_BYTES = 64 * 1024 * 1024
"""Pillow allocates an image's pixels in blocks (16 MB by default). glibc serves allocations under its mmap
threshold, which grows to 32 MB once large blocks are freed, from per-thread heaps that keep freed memory: a
9000 px PNG decoded on one image thread, then another on the other, held both in the server's memory. Blocks
of 64 MB are always mapped and unmapped, so a freed decode is given back at once."""
Image.core.set_block_size(BLOCK_BYTES)  # pyright: ignore[reportUnknownMemberType]

__all__ = ["MAX_DECODE_PIXELS", "Image", "ImageChops", "ImageDraw", "ImageFont", "ImageOps", "UnidentifiedImageError"]
