"""An interleaved answer (wan2.6 ``enable_interleave``: text, image, text, image…) kept in DashScope's order: its
``parts`` for the tools' results, and a Markdown file beside the images, named after them, that a person can open
(its image links relative: the images are in the same folder, or under the same prefix of a bucket)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .outcomes import EditResult, ImageFile, ResultPart

_IMAGE_INDEX = re.compile(r"_\d+\.(?:png|jpg|webp|bmp)$")


def parts_of(texts: Sequence[str], places: Sequence[int] | None, images: Sequence[ImageFile]) -> list[ResultPart]:
    """``texts`` and ``images`` in the answer's order: each text where ``places`` says it stood (how many images came
    before it; None, or a count that does not match, puts every text after the images, as before the order was
    kept). Empty when there is no text: the images alone are ``images``."""
    if not texts:
        return []
    where = list(places) if places is not None and len(places) == len(texts) else [len(images)] * len(texts)
    parts: list[ResultPart] = []
    shown = 0
    for text, place in zip(texts, where, strict=True):
        for image in images[shown : max(shown, min(place, len(images)))]:
            parts.append(ResultPart(type="image", path=image.path))
        shown = max(shown, min(place, len(images)))
        parts.append(ResultPart(type="text", text=text))
    parts += [ResultPart(type="image", path=image.path) for image in images[shown:]]
    return parts


def document_location(images: Sequence[ImageFile]) -> str | None:
    """Where the Markdown file of a task whose saved images are ``images`` is: beside its first image, named like it
    without the image's index (``{time}_{model}_{task_id}.md``); None without images."""
    if not images or not _IMAGE_INDEX.search(images[0].path):
        return None
    return _IMAGE_INDEX.sub(".md", images[0].path)


def markdown(parts: Sequence[ResultPart], *, task_id: str, model: str | None, prompt: str | None) -> str:
    """The parts as a Markdown page: a heading naming the task, the prompt, then each text as a paragraph and each
    image as an image link relative to the page (its name: it sits beside the page)."""
    lines = [f"# {model or 'Wan'} task {task_id}", ""]
    if prompt:
        lines += [f"> {line}" for line in prompt.splitlines()] + [""]
    number = 0
    for part in parts:
        if part.type == "text":
            lines += [part.text or "", ""]
        else:
            number += 1
            name = re.split(r"[/\\]", part.path or "")[-1]
            lines += [f"![image {number}]({name.replace(' ', '%20')})", ""]
    return "\n".join(lines)


def with_parts(result: EditResult, texts: Sequence[str], places: Sequence[int] | None) -> EditResult:
    """``result`` (its images all saved) with its ``parts`` in the answer's order and where its Markdown page is,
    when the answer has texts; else ``result`` as it is."""
    parts = parts_of(texts, places, result.images)
    if not parts:
        return result
    return result.model_copy(update={"parts": parts, "markdown": document_location(result.images)})
