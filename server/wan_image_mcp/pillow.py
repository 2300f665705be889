"""Pillow, with this server's decompression-bomb guard. Imported inside the functions that decode images, so
Pillow stays off the start path (``from .pillow import Image``): whoever imports it first sets the guard."""

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .specs import SPECS

MAX_DECODE_PIXELS = 2 * max(spec.image.side.hi for spec in SPECS.values()) ** 2
"""Pillow's decompression-bomb guard: twice the largest image any model accepts (larger ones are shrunk to
fit, so some headroom is useful); anything bigger is refused before it is decoded."""
Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS

__all__ = ["MAX_DECODE_PIXELS", "Image", "ImageChops", "ImageDraw", "ImageFont", "ImageOps", "UnidentifiedImageError"]
