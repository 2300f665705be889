"""An interleaved answer in DashScope's order: its parts, and its Markdown page with relative image links."""

from __future__ import annotations

from wan_image_mcp.core.results.document import document_location, markdown, parts_of
from wan_image_mcp.core.results.outcomes import ImageFile


def image(path: str) -> ImageFile:
    return ImageFile(path=path, url="https://x/y.png", width=8, height=8, bytes=1, sha256="0" * 64)


IMAGES = [image("/out/20261207-101010_wan2.6-image_t1_1.png"), image("/out/20261207-101010_wan2.6-image_t1_2.png")]


def test_each_text_stands_where_the_answer_put_it() -> None:
    parts = parts_of(["intro", "step one", "the end"], [0, 0, 2], IMAGES)
    assert [(p.type, p.text or p.path) for p in parts] == [
        ("text", "intro"),
        ("text", "step one"),
        ("image", IMAGES[0].path),
        ("image", IMAGES[1].path),
        ("text", "the end"),
    ]


def test_texts_recorded_without_their_places_follow_the_images() -> None:
    parts = parts_of(["a", "b"], None, IMAGES)
    assert [p.type for p in parts] == ["image", "image", "text", "text"]
    assert parts_of([], None, IMAGES) == []


def test_the_page_sits_beside_the_first_image_and_links_each_image_by_its_name() -> None:
    assert document_location(IMAGES) == "/out/20261207-101010_wan2.6-image_t1.md"
    page = markdown(parts_of(["one", "two"], [0, 1], IMAGES), task_id="t1", model="wan2.6-image", prompt="a recipe")
    assert page.splitlines() == [
        "# wan2.6-image task t1",
        "",
        "> a recipe",
        "",
        "one",
        "",
        "![image 1](20261207-101010_wan2.6-image_t1_1.png)",
        "",
        "two",
        "",
        "![image 2](20261207-101010_wan2.6-image_t1_2.png)",
    ]
