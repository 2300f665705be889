"""What an image file's own structure says before and beyond what its decoder checks, read from its bytes.

A progressive JPEG may hold any number of scans, each decoded over the whole image (libjpeg counts none, so a
192 KB file repeating its last scan 12,000 times took 45 s to decode): ``jpeg_scans`` counts them from the
markers. A PNG whose zlib stream ends, complete, before its last row is decoded by Pillow without complaint,
the missing rows black: ``png_data`` measures what the stream holds against what its header needs. Both read
the file in blocks of at most 1 MB through ``Bytes`` (never mapped: a file cut short under a mapping kills
the process with SIGBUS) and hold nothing once done.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import IO

_BLOCK = 1 << 20
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
"""In a scan's entropy-coded data, the marker after it: 0xFF not followed by a stuffed 0x00, a restart marker
(RST0-7) or a fill byte."""
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
"""Markers without a length: TEM, SOI, RST0-7."""
_SOS, _EOI = 0xDA, 0xD9


class Bytes:
    """A file's bytes read where asked, by position (the file's own position is left anywhere: Pillow seeks
    before it reads)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def read(self, at: int, count: int) -> bytes:
        """Up to ``count`` bytes from ``at`` (fewer at the end of the file)."""
        self._file.seek(at)
        return self._file.read(count)

    def marker_after(self, at: int) -> int | None:
        """Where the first marker that can end entropy-coded data is, from ``at`` (None: none before the end),
        read 4 KB first, then in blocks twice as large up to 1 MB (a scan of a few bytes costs a few bytes)."""
        size = 4096
        while block := self.read(at, size):
            if (found := _SCAN_END.search(block)) is not None:
                return at + found.start()
            if len(block) < 2:
                return None
            at += len(block) - 1  # a 0xFF ending the block is looked at again with the byte after it
            size = min(2 * size, _BLOCK)
        return None


def jpeg_scans(data: Bytes) -> int:
    """How many scans (SOS segments) a JPEG's first image holds, up to its EOI: segments are walked by their
    lengths, each scan's entropy-coded data skipped to the marker that ends it. Damage is left to the decoder:
    the count stops where the bytes do."""
    at, scans = 2, 0
    while len(head := data.read(at, 4)) == 4:
        if head[0] != 0xFF:  # stray bytes between segments (libjpeg skips them too)
            found = data.marker_after(at)
            if found is None:
                break
            at = found
            continue
        marker = head[1]
        if marker == 0xFF:  # a fill byte before a marker
            at += 1
            continue
        if marker == _EOI:
            break
        if marker in _STANDALONE:
            at += 2
            continue
        at += 2 + int.from_bytes(head[2:4], "big")
        if marker == _SOS:
            scans += 1
            found = data.marker_after(at)
            if found is None:
                break
            at = found
    return scans


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
"""PNG colour type -> samples a pixel: grey, RGB, palette index, grey and alpha, RGBA."""
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
"""Interlaced PNG passes: first column and row, then the step between columns and rows."""
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


def png_data(data: Bytes) -> PngData | None:
    """The image data of a PNG (its IHDR and the IDAT chunks that follow), decompressed in pieces that are
    counted and dropped, up to the bytes the header needs; None if there is no header to read. Checksums and
    damage are left to the decoder."""
    header = data.read(0, 33)
    if len(header) < 33 or header[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    depth, colour, interlaced = header[24], header[25], header[28] == 1
    bits = depth * _PNG_CHANNELS.get(colour, 4)

    def rows(columns: int, count: int) -> int:
        return count * (1 + (columns * bits + 7) // 8) if columns and count else 0

    if interlaced:
        needed = sum(rows((width - x + dx - 1) // dx, (height - y + dy - 1) // dy) for x, y, dx, dy in _ADAM7)
    else:
        needed = rows(width, height)
    inflater = zlib.decompressobj()
    held, at, seen = 0, 8, False
    while held < needed and not inflater.eof and len(head := data.read(at, 8)) == 8:
        length, kind = int.from_bytes(head[:4], "big"), head[4:8]
        if kind != b"IDAT" and seen:
            break  # the image data is one run of IDAT chunks
        if kind == b"IDAT":
            seen = True
            for start in range(at + 8, at + 8 + length, _FED):  # fed 64 KB at a time, taken 1 MB at a time
                rest = data.read(start, min(_FED, at + 8 + length - start))
                try:
                    while rest and held < needed and not inflater.eof:
                        held += len(inflater.decompress(rest, min(_BLOCK, needed - held)))
                        rest = inflater.unconsumed_tail
                except zlib.error:
                    return PngData(width, height, interlaced, rows(width, 1), needed, held)  # damage: refused
                if held >= needed or inflater.eof:
                    break
        at += 12 + length
    return PngData(width, height, interlaced, rows(width, 1), needed, min(held, needed))
