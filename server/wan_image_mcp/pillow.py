"""Pillow, with this server's decompression-bomb guard. Every module of the package that decodes images imports
Pillow from here (the server's core inside the functions that decode, so that Pillow stays off the start path;
the emulator and the demo at the top): whoever imports it first sets the guard. A test checks that no other
module of the package imports PIL itself."""

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .specs import SPECS

MAX_DECODE_PIXELS = 2 * max(spec.image.side.hi for spec in SPECS.values()) ** 2
"""Pillow's decompression-bomb guard: twice the largest image any model accepts (larger ones are shrunk to
fit, so some headroom is useful); anything bigger is refused before it is decoded."""
Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS

__all__ = ["MAX_DECODE_PIXELS", "Image", "ImageDraw", "ImageFont", "ImageOps", "UnidentifiedImageError"]
