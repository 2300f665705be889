"""What an image file's own structure says before and beyond what its decoder checks, read from its bytes.

A progressive JPEG may hold any number of scans, each decoded over the whole image (libjpeg counts none, so a
192 KB file repeating its last scan 12,000 times took 45 s to decode): ``jpeg_scans`` counts them from the
markers. A PNG whose zlib stream ends, complete, before its last row is decoded by Pillow without complaint,
the missing rows black: ``png_data`` measures what the stream holds against what its header needs. Both read
the file's bytes in place (a file is mapped, never copied) and hold nothing once done.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import re
import zlib
from collections.abc import Generator
from dataclasses import dataclass
from typing import IO

_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
"""In a scan's entropy-coded data, the marker after it: 0xFF not followed by a stuffed 0x00, a restart marker
(RST0-7) or a fill byte."""
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
"""Markers without a length: TEM, SOI, RST0-7."""
_SOS, _EOI = 0xDA, 0xD9


@contextlib.contextmanager
def contents(file: IO[bytes]) -> Generator[memoryview]:
    """The whole of ``file`` as a read-only view, without copying it: a BytesIO's own buffer, a file mapped."""
    if isinstance(file, io.BytesIO):
        with file.getbuffer() as view:
            yield view
        return
    with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
        yield view


def jpeg_scans(data: memoryview) -> int:
    """How many scans (SOS segments) a JPEG's first image holds, up to its EOI: segments are walked by their
    lengths, each scan's entropy-coded data skipped to the marker that ends it. Damage is left to the decoder:
    the count stops where the bytes do."""
    at, scans, end = 2, 0, len(data)
    while at + 4 <= end:
        if data[at] != 0xFF:  # stray bytes between segments (libjpeg skips them too)
            found = _SCAN_END.search(data, at)
            if found is None:
                break
            at = found.start()
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte before a marker
            at += 1
            continue
        if marker == _EOI:
            break
        if marker in _STANDALONE:
            at += 2
            continue
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
        if marker == _SOS:
            scans += 1
            found = _SCAN_END.search(data, at)
            if found is None:
                break
            at = found.start()
    return scans


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
"""PNG colour type -> samples a pixel: grey, RGB, palette index, grey and alpha, RGBA."""
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
"""Interlaced PNG passes: first column and row, then the step between columns and rows."""
_PIECE = 1 << 20
_FED = 1 << 16


@dataclass(frozen=True)
class PngData:
    """What a PNG's image data decompresses to, against what its header needs."""

    width: int
    height: int
    interlaced: bool
    row_bytes: int
    """A row's bytes with its filter byte (not interlaced)."""
    needed: int
    held: int
    """Bytes the zlib stream gives, counted up to ``needed``."""

    @property
    def short(self) -> str | None:
        """Why the data cannot fill the image, or None when it does."""
        if self.held >= self.needed:
            return None
        if self.interlaced:
            return f"the PNG's interlaced data ends early: {self.held:,} of the {self.needed:,} bytes it needs"
        return f"the PNG's data ends after {self.held // self.row_bytes} of its {self.height} rows"


def png_data(data: memoryview) -> PngData | None:
    """The image data of a PNG (its IHDR and the IDAT chunks that follow), decompressed in pieces that are
    counted and dropped, up to the bytes the header needs; None if there is no header to read. Checksums and
    damage are left to the decoder."""
    if len(data) < 33 or bytes(data[12:16]) != b"IHDR":
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour, interlaced = data[24], data[25], data[28] == 1
    bits = depth * _PNG_CHANNELS.get(colour, 4)

    def rows(columns: int, count: int) -> int:
        return count * (1 + (columns * bits + 7) // 8) if columns and count else 0

    if interlaced:
        needed = sum(rows((width - x + dx - 1) // dx, (height - y + dy - 1) // dy) for x, y, dx, dy in _ADAM7)
    else:
        needed = rows(width, height)
    inflater = zlib.decompressobj()

    def inflated(chunk: memoryview, wanted: int) -> int:
        """Bytes ``chunk`` inflates to, fed 64 KB at a time and taken at most 1 MB at a time (a zlib bomb's
        output never piles up), stopping once ``wanted`` are reached."""
        got = 0
        for start in range(0, len(chunk), _FED):
            rest: bytes | memoryview = chunk[start : start + _FED]
            while rest and got < wanted and not inflater.eof:
                got += len(inflater.decompress(rest, min(_PIECE, wanted - got)))
                rest = inflater.unconsumed_tail
            if got >= wanted or inflater.eof:
                break
        return got

    held, at, seen = 0, 8, False
    while at + 8 <= len(data) and held < needed and not inflater.eof:
        length, kind = int.from_bytes(data[at : at + 4], "big"), bytes(data[at + 4 : at + 8])
        if kind != b"IDAT" and seen:
            break  # the image data is one run of IDAT chunks
        if kind == b"IDAT":
            seen = True
            try:
                held += inflated(data[at + 8 : at + 8 + length], needed - held)
            except zlib.error:
                break  # damage: the decoder says what
        at += 12 + length
    return PngData(width, height, interlaced, rows(width, 1), needed, min(held, needed))
