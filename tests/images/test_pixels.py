"""The pixel work of sending an image: resizing large images in bands, on two threads, as one resize would."""

from __future__ import annotations

import random
from typing import cast

from PIL import Image, ImageChops

from wan_image_mcp.core.images import pixels


def test_a_large_image_resized_in_bands_matches_one_whole_resize() -> None:
    rng = random.Random(7)
    cells = Image.frombytes("RGB", (250, 200), rng.randbytes(250 * 200 * 3))
    image = cells.resize((5000, 4000), Image.Resampling.NEAREST)  # pyright: ignore[reportUnknownMemberType] - 20 Mpx of 20 px cells
    assert image.width * image.height > pixels._BANDED_PIXELS  # pyright: ignore[reportPrivateUsage]
    banded = pixels.resize(image, 4450, 3560, reducing_gap=0)
    whole = image.resize((4450, 3560), Image.Resampling.LANCZOS)  # pyright: ignore[reportUnknownMemberType]
    assert banded.size == whole.size
    _, most = cast("tuple[int, int]", ImageChops.difference(banded, whole).convert("L").getextrema())
    assert most <= 2  # rounding at band edges only
