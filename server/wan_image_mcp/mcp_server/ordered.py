"""An interleaved answer's content blocks in DashScope's order (wan2.6 ``enable_interleave``): each text part as a
text block, each image part as a line naming its file and size, its link and its preview, so a model reads the
texts and sees the images in the order the model wrote them."""

from __future__ import annotations

import base64
from collections.abc import Mapping

from mcp.types import ContentBlock, ImageContent, TextContent

from ..core.results.outcomes import EditResult
from .resources import image_link


def in_order(result: EditResult, previews: Mapping[str, bytes | None]) -> list[ContentBlock]:
    """The blocks of ``result``'s ``parts``, in order; ``previews`` are the JPEG previews by image path (none for a
    path it does not hold)."""
    images = {image.path: image for image in result.images}
    blocks: list[ContentBlock] = []
    number = 0
    for part in result.parts:
        if part.type == "text":
            blocks.append(TextContent(type="text", text=part.text or ""))
            continue
        image = images.get(part.path or "")
        if image is None:
            continue
        number += 1
        line = f"image {number}: {image.path} ({image.width}×{image.height}, {image.bytes} bytes)"
        blocks += [TextContent(type="text", text=line), image_link(image)]
        if (data := previews.get(image.path)) is not None:
            blocks.append(ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type="image/jpeg"))
    return blocks
