"""Pillow, for every module of the package that decodes or draws images: a test checks that no other module of
the package imports PIL itself. Importing this module changes no Pillow setting: the decompression-bomb guard
and the allocation settings are set by ``runtime.ImageRuntime`` (``runtime.imaging()``), which whoever decodes
calls first. The server's core imports this module inside the functions that decode, so that Pillow stays off
the start path; the emulator and the demo at the top."""

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from ..specs import MAX_DECODE_PIXELS

__all__ = ["MAX_DECODE_PIXELS", "Image", "ImageChops", "ImageDraw", "ImageFont", "ImageOps", "UnidentifiedImageError"]
