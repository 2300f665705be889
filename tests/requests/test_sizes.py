"""The size argument: presets keep the last input's shape, W*H and aspect ratios are sent as the nearest size the
mode takes, and what was changed is said before anything is paid."""

from __future__ import annotations

import pytest

from tests.support.helpers import ImageFactory
from wan_image_mcp.core.errors import InvalidRequest
from wan_image_mcp.core.requests.declarations import EditParams
from wan_image_mcp.core.requests.validation import prepare_request
from wan_image_mcp.core.specs import OUTPUT_ROUNDING

URL = "https://example.com/photo.png"


@pytest.mark.parametrize(
    ("model", "images", "size", "sent"),
    [
        ("wan2.7-image-pro", 1, "16:9", "2720*1536"),  # the mode's default, 2K: 2730.7*1536 has too many pixels
        ("wan2.7-image-pro", 1, "2K 16:9", "2720*1536"),
        ("wan2.7-image", 1, "1K 3:4", "880*1184"),
        ("wan2.7-image-pro", 0, "4K 16:9", "5456*3072"),
        ("wan2.7-image-pro", 0, "2k 1:1", "2048*2048"),
        ("wan2.6-image", 1, "1K 21:9", "1952*832"),
        ("wan2.5-i2i-preview", 1, "16:9", "1696*960"),  # no presets: its default area, 1280²
    ],
)
def test_an_aspect_ratio_is_sent_as_the_nearest_size_the_mode_takes_and_said(
    model: str, images: int, size: str, sent: str
) -> None:
    request = prepare_request(model, "a street at night", [URL] * images, EditParams(size=size))
    assert request.parameters["size"] == sent
    assert f"size {size!r} sent as {sent}" in request.adjustments
    width, height = (int(side) for side in sent.split("*"))
    assert request.expected_size == (width, height)
    assert width % OUTPUT_ROUNDING == 0 and height % OUTPUT_ROUNDING == 0
    assert width * height in request.mode.pixels


@pytest.mark.parametrize(
    ("size", "sent"),
    [("1920*1080", "1920*1088"), ("1240*1754", "1248*1760"), ("1500x1000", "1504*1008")],
)
def test_a_size_whose_sides_are_not_multiples_of_16_says_what_is_sent_and_produced(size: str, sent: str) -> None:
    request = prepare_request("wan2.7-image-pro", "a poster", [URL], EditParams(size=size))
    assert request.parameters["size"] == sent
    assert request.adjustments == (f"size {size!r} sent as {sent} (output sides are multiples of 16)",)
    assert request.expected_size == tuple(int(side) for side in sent.split("*"))


def test_a_size_the_mode_takes_as_it_is_is_sent_unchanged_without_a_note() -> None:
    request = prepare_request("wan2.7-image-pro", "a poster", [URL], EditParams(size="1280*720"))
    assert request.parameters["size"] == "1280*720"
    assert request.adjustments == ()


def test_rounding_never_leaves_the_modes_pixel_range() -> None:
    """1223*483 is 590,709 pixels, over the 768² minimum; rounded on each side, 1216*480, it would be under it."""
    request = prepare_request("wan2.7-image-pro", "a banner", [URL], EditParams(size="1223*483"))
    width, height = request.expected_size or (0, 0)
    assert width * height >= 768 * 768
    assert (width % 16, height % 16) == (0, 0)
    assert request.parameters["size"] == f"{width}*{height}"


def test_a_preset_keeps_the_last_inputs_shape(make_image: ImageFactory) -> None:
    wide, tall = make_image("wide.png", (1600, 900)), make_image("tall.png", (900, 1600))
    one = prepare_request("wan2.7-image-pro", "image 1 in the style of image 2", [str(wide), str(tall)])
    other = prepare_request("wan2.7-image-pro", "image 1 in the style of image 2", [str(tall), str(wide)])
    assert one.expected_size is not None and other.expected_size == one.expected_size[::-1]
    assert one.expected_size[0] < one.expected_size[1]  # tall: the last image's shape


@pytest.mark.parametrize(
    ("model", "images", "size", "said"),
    [
        ("wan2.7-image-pro", 1, "16:0", "'16:0' is not an aspect ratio: both of its numbers must be above 0"),
        ("wan2.7-image-pro", 1, "9:1", "'9:1' is an aspect ratio outside 1:8 to 8:1, the range of edit mode"),
        ("wan2.6-image", 1, "5:1", "'5:1' is an aspect ratio outside 1:4 to 4:1"),
        ("wan2.5-i2i-preview", 1, "2K 16:9", "'2K 16:9': 2K is not a size preset of wan2.5-i2i-preview; use W*H"),
        ("wan2.7-image-pro", 1, "4K 16:9", "'4K 16:9': 4K is only for text-to-image on wan2.7-image-pro"),
        (
            "wan2.7-image-pro",
            1,
            "wide",
            "'wide' is not a size; use 1K/2K or W*H with 768*768 to 2048*2048 pixels, "
            "ratio up to 8:1, or an aspect ratio such as '16:9' or '2K 16:9'",
        ),
    ],
)
def test_a_nonsense_ratio_is_refused_naming_size_and_the_limit(model: str, images: int, size: str, said: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        prepare_request(model, "a street", [URL] * images, EditParams(size=size))
    (problem,) = caught.value.problems
    assert problem.argument == "size"
    assert said in problem.message
