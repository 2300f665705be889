"""Every row of the limit tables (docs/dashscope-api.md#limits-per-model), both sides of each limit, through
prepare_request.

Remote URLs stand in for images where only the count matters (nothing is fetched); real files in tmp_path
where pixels and bytes matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.helpers import ImageFactory
from wan_image_mcp.core.errors import InvalidRequest
from wan_image_mcp.core.requests.declarations import EditParams, PaletteColor
from wan_image_mcp.core.requests.validation import prepare_request
from wan_image_mcp.core.specs import SPECS

URL = "https://example.com/img-{}.png"


def urls(count: int) -> list[str]:
    return [URL.format(i) for i in range(count)]


def palette(*ratios: str) -> list[PaletteColor]:
    return [{"hex": "#C2D1E6", "ratio": r} for r in ratios]


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    images: int
    params: EditParams
    refused: str | None
    """None: valid. Otherwise the argument every problem found must name."""
    prompt: str = "edit it"


P = EditParams
CASES = [
    # input image count
    Case("2.7 text-to-image: 0 images", "wan2.7-image-pro", 0, P(), None),
    Case("2.7: 9 images", "wan2.7-image-pro", 9, P(), None),
    Case("2.7: 10 images", "wan2.7-image-pro", 10, P(), "images"),
    Case("2.7-image: 10 images", "wan2.7-image", 10, P(), "images"),
    Case("2.6 edit: 0 images", "wan2.6-image", 0, P(), "images"),
    Case("2.6 edit: 1 image", "wan2.6-image", 1, P(), None),
    Case("2.6 edit: 4 images", "wan2.6-image", 4, P(), None),
    Case("2.6 edit: 5 images", "wan2.6-image", 5, P(), "images"),
    Case("2.6 interleave: 0 images", "wan2.6-image", 0, P(enable_interleave=True), None),
    Case("2.6 interleave: 1 image", "wan2.6-image", 1, P(enable_interleave=True), None),
    Case("2.6 interleave: 2 images", "wan2.6-image", 2, P(enable_interleave=True), "images"),
    Case("2.5: 0 images", "wan2.5-i2i-preview", 0, P(), "images"),
    Case("2.5: 1 image", "wan2.5-i2i-preview", 1, P(), None),
    Case("2.5: 3 images", "wan2.5-i2i-preview", 3, P(), None),
    Case("2.5: 4 images", "wan2.5-i2i-preview", 4, P(), "images"),
    # prompt and negative prompt length
    Case("2.7 prompt 5000 chars", "wan2.7-image-pro", 1, P(), None, prompt="字" * 5000),
    Case("2.7 prompt 5001 chars", "wan2.7-image-pro", 1, P(), "prompt", prompt="字" * 5001),
    Case("2.6 prompt 2000 chars", "wan2.6-image", 1, P(), None, prompt="a" * 2000),
    Case("2.6 prompt 2001 chars", "wan2.6-image", 1, P(), "prompt", prompt="a" * 2001),
    Case("2.5 prompt 2000 chars", "wan2.5-i2i-preview", 1, P(), None, prompt="a" * 2000),
    Case("2.5 prompt 2001 chars", "wan2.5-i2i-preview", 1, P(), "prompt", prompt="a" * 2001),
    Case("empty prompt", "wan2.7-image-pro", 1, P(), "prompt", prompt="  "),
    Case("2.6 negative 500", "wan2.6-image", 1, P(negative_prompt="x" * 500), None),
    Case("2.6 negative 501", "wan2.6-image", 1, P(negative_prompt="x" * 501), "negative_prompt"),
    Case("2.5 negative 500", "wan2.5-i2i-preview", 1, P(negative_prompt="x" * 500), None),
    Case("2.5 negative 501", "wan2.5-i2i-preview", 1, P(negative_prompt="x" * 501), "negative_prompt"),
    Case("2.7 has no negative prompt", "wan2.7-image-pro", 1, P(negative_prompt="blur"), "negative_prompt"),
    # n per mode
    Case("2.7 edit n=0", "wan2.7-image-pro", 1, P(n=0), "n"),
    Case("2.7 edit n=4", "wan2.7-image-pro", 1, P(n=4), None),
    Case("2.7 edit n=5", "wan2.7-image-pro", 1, P(n=5), "n"),
    Case("2.7 image set n=12", "wan2.7-image-pro", 1, P(n=12, enable_sequential=True), None),
    Case("2.7 image set n=13", "wan2.7-image-pro", 1, P(n=13, enable_sequential=True), "n"),
    Case("2.6 edit n=4", "wan2.6-image", 1, P(n=4), None),
    Case("2.6 edit n=5", "wan2.6-image", 1, P(n=5), "n"),
    Case("2.6 interleave n=2", "wan2.6-image", 0, P(n=2, enable_interleave=True), "n"),
    Case("2.5 n=4", "wan2.5-i2i-preview", 1, P(n=4), None),
    Case("2.5 n=5", "wan2.5-i2i-preview", 1, P(n=5), "n"),
    # seed range
    Case("seed 0", "wan2.6-image", 1, P(seed=0), None),
    Case("seed max", "wan2.5-i2i-preview", 1, P(seed=2_147_483_647), None),
    Case("seed -1", "wan2.7-image", 1, P(seed=-1), "seed"),
    Case("seed max+1", "wan2.7-image", 1, P(seed=2_147_483_648), "seed"),
    # size presets
    Case("pro text-to-image 4K", "wan2.7-image-pro", 0, P(size="4K"), None),
    Case("pro edit 4K", "wan2.7-image-pro", 1, P(size="4K"), "size"),
    Case("pro image set 4K", "wan2.7-image-pro", 0, P(size="4K", enable_sequential=True), "size"),
    Case("2.7-image text-to-image 4K", "wan2.7-image", 0, P(size="4K"), "size"),
    Case("2.7 edit 1K", "wan2.7-image", 1, P(size="1K"), None),
    Case("2.6 edit 2K", "wan2.6-image", 1, P(size="2K"), None),
    Case("2.6 interleave 1K", "wan2.6-image", 0, P(size="1K", enable_interleave=True), "size"),
    Case("2.5 1K", "wan2.5-i2i-preview", 1, P(size="1K"), "size"),
    Case("nonsense size", "wan2.7-image", 1, P(size="big"), "size"),
    # custom size pixels
    Case("2.7 edit 768*768", "wan2.7-image", 1, P(size="768*768"), None),
    Case("2.7 edit 767*768", "wan2.7-image", 1, P(size="767*768"), "size"),
    Case("2.7 edit 2048*2048", "wan2.7-image-pro", 1, P(size="2048*2048"), None),
    Case("2.7 edit 2048*2049", "wan2.7-image-pro", 1, P(size="2048*2049"), "size"),
    Case("pro text-to-image 4096*4096", "wan2.7-image-pro", 0, P(size="4096*4096"), None),
    Case("pro text-to-image 4096*4097", "wan2.7-image-pro", 0, P(size="4096*4097"), "size"),
    Case("2.7-image text-to-image 2048*2049", "wan2.7-image", 0, P(size="2048*2049"), "size"),
    Case("2.6 edit 2048*2048", "wan2.6-image", 1, P(size="2048*2048"), None),
    Case("2.6 interleave 1280*1280", "wan2.6-image", 0, P(size="1280*1280", enable_interleave=True), None),
    Case("2.6 interleave 1280*1281", "wan2.6-image", 0, P(size="1280*1281", enable_interleave=True), "size"),
    Case("2.5 1280*1280", "wan2.5-i2i-preview", 1, P(size="1280*1280"), None),
    Case("2.5 1281*1280", "wan2.5-i2i-preview", 1, P(size="1281*1280"), "size"),
    Case("2.5 768*768", "wan2.5-i2i-preview", 1, P(size="768*768"), None),
    Case("2.5 767*768", "wan2.5-i2i-preview", 1, P(size="767*768"), "size"),
    # custom size ratio
    Case("2.7 ratio 8:1", "wan2.7-image", 1, P(size="3072*384"), None),
    Case("2.7 ratio 8.04:1", "wan2.7-image", 1, P(size="3088*384"), "size"),
    Case("2.6 ratio 1:4", "wan2.6-image", 1, P(size="512*2048"), None),
    Case("2.6 ratio 1:4.03", "wan2.6-image", 1, P(size="512*2064"), "size"),
    Case("2.5 ratio 4:1", "wan2.5-i2i-preview", 1, P(size="2048*512"), None),
    Case("2.5 ratio 4.03:1", "wan2.5-i2i-preview", 1, P(size="2064*512"), "size"),
    # bbox_list (wan2.7 only; one entry per image; at most 2 boxes each)
    Case("bbox 2 boxes", "wan2.7-image-pro", 2, P(bbox_list=[[], [[1, 1, 9, 9], [20, 20, 40, 40]]]), None),
    Case("bbox 3 boxes", "wan2.7-image-pro", 1, P(bbox_list=[[[1, 1, 9, 9]] * 3]), "bbox_list"),
    Case("bbox entries != images", "wan2.7-image-pro", 2, P(bbox_list=[[[1, 1, 9, 9]]]), "bbox_list"),
    Case("bbox inverted box", "wan2.7-image-pro", 1, P(bbox_list=[[[9, 9, 1, 1]]]), "bbox_list"),
    Case("bbox 3 numbers", "wan2.7-image-pro", 1, P(bbox_list=[[[9, 9, 1]]]), "bbox_list"),
    Case("bbox on 2.6", "wan2.6-image", 1, P(bbox_list=[[[1, 1, 9, 9]]]), "bbox_list"),
    Case("bbox without images", "wan2.7-image-pro", 0, P(bbox_list=[]), "bbox_list"),
    # color_palette (wan2.7, 3-10 colours, ratios sum to 100.00%, not with enable_sequential)
    Case("palette 3", "wan2.7-image", 1, P(color_palette=palette("60.00%", "25.00%", "15.00%")), None),
    Case("palette 10", "wan2.7-image", 1, P(color_palette=palette(*["10.00%"] * 10)), None),
    Case("palette 2", "wan2.7-image", 1, P(color_palette=palette("50.00%", "50.00%")), "color_palette"),
    Case("palette 11", "wan2.7-image", 1, P(color_palette=palette(*["10.00%"] * 9, "5.00%", "5.00%")), "color_palette"),
    Case(
        "palette sum 99.99", "wan2.7-image", 1, P(color_palette=palette("60.00%", "25.00%", "14.99%")), "color_palette"
    ),
    Case(
        "palette bad hex",
        "wan2.7-image",
        1,
        P(color_palette=[PaletteColor(hex="red", ratio="100.00%")] * 3),
        "color_palette",
    ),
    Case(
        "palette with image set",
        "wan2.7-image",
        1,
        P(color_palette=palette("60.00%", "25.00%", "15.00%"), enable_sequential=True),
        "color_palette",
    ),
    Case("palette on 2.5", "wan2.5-i2i-preview", 1, P(color_palette=palette("50.00%", "50.00%")), "color_palette"),
    # switches per model
    Case("thinking_mode on 2.7 edit", "wan2.7-image-pro", 2, P(thinking_mode=True), None),
    Case("thinking_mode on 2.6", "wan2.6-image", 1, P(thinking_mode=True), "thinking_mode"),
    Case("thinking_mode False on 2.6 is no request", "wan2.6-image", 1, P(thinking_mode=False), None),
    Case("enable_sequential on 2.6", "wan2.6-image", 1, P(enable_sequential=True), "enable_sequential"),
    Case("enable_interleave on 2.7", "wan2.7-image-pro", 1, P(enable_interleave=True), "enable_interleave"),
    Case("max_images 1", "wan2.6-image", 0, P(enable_interleave=True, max_images=1), None),
    Case("max_images 5", "wan2.6-image", 0, P(enable_interleave=True, max_images=5), None),
    Case("max_images 0", "wan2.6-image", 0, P(enable_interleave=True, max_images=0), "max_images"),
    Case("max_images 6", "wan2.6-image", 0, P(enable_interleave=True, max_images=6), "max_images"),
    Case("max_images in 2.6 edit", "wan2.6-image", 1, P(max_images=2), "max_images"),
    Case("prompt_extend 2.6 edit", "wan2.6-image", 1, P(prompt_extend=True), None),
    Case(
        "prompt_extend 2.6 interleave",
        "wan2.6-image",
        0,
        P(prompt_extend=True, enable_interleave=True),
        "prompt_extend",
    ),
    Case("prompt_extend 2.5", "wan2.5-i2i-preview", 1, P(prompt_extend=False), None),
    Case("prompt_extend on 2.7", "wan2.7-image-pro", 1, P(prompt_extend=True), "prompt_extend"),
    Case("unknown model", "wan3-image", 1, P(), "model"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_limit_table(case: Case) -> None:
    if case.refused is None:
        request = prepare_request(case.model, case.prompt, urls(case.images), case.params)
        assert request.model == case.model
        assert request.parameters["n"] == case.params.n
        return
    with pytest.raises(InvalidRequest) as caught:
        prepare_request(case.model, case.prompt, urls(case.images), case.params)
    assert {p.argument for p in caught.value.problems} == {case.refused}, caught.value


@dataclass(frozen=True)
class ImageCase:
    id: str
    model: str
    size: tuple[int, int]
    refused: bool
    adjusted: bool = False


IMAGE_CASES = [
    ImageCase("2.7 short side 240", "wan2.7-image-pro", (300, 240), refused=False),
    ImageCase("2.7 short side 239", "wan2.7-image-pro", (300, 239), refused=True),
    ImageCase("2.6 short side 239", "wan2.6-image", (239, 300), refused=True),
    ImageCase("2.5 short side 384", "wan2.5-i2i-preview", (384, 400), refused=False),
    ImageCase("2.5 short side 383", "wan2.5-i2i-preview", (383, 400), refused=True),
    ImageCase("2.7 long side 8000", "wan2.7-image", (8000, 1000), refused=False),
    ImageCase("2.7 long side 8001 is downscaled", "wan2.7-image", (8001, 1001), refused=False, adjusted=True),
    ImageCase("2.5 long side 5000", "wan2.5-i2i-preview", (5000, 1300), refused=False),
    ImageCase("2.5 long side 5001 is downscaled", "wan2.5-i2i-preview", (5001, 1300), refused=False, adjusted=True),
    ImageCase("2.7 ratio 8:1", "wan2.7-image-pro", (1920, 240), refused=False),
    ImageCase("2.7 ratio 8.03:1", "wan2.7-image-pro", (1928, 240), refused=True),
    ImageCase("2.5 ratio 1:4", "wan2.5-i2i-preview", (400, 1600), refused=False),
    ImageCase("2.5 ratio 1:4.01", "wan2.5-i2i-preview", (400, 1604), refused=True),
    ImageCase("2.6 ratio unrestricted", "wan2.6-image", (7680, 240), refused=False),
]


@pytest.mark.parametrize("case", IMAGE_CASES, ids=[c.id for c in IMAGE_CASES])
def test_image_side_and_ratio_table(case: ImageCase, make_image: ImageFactory) -> None:
    path = make_image("input.png", case.size)
    if case.refused:
        with pytest.raises(InvalidRequest) as caught:
            prepare_request(case.model, "edit", [str(path)])
        (problem,) = caught.value.problems
        assert (problem.argument, problem.image) == ("images", 1)
        return
    request = prepare_request(case.model, "edit", [str(path)])
    (image,) = request.images
    assert image.original_size == case.size
    assert bool(image.adjustments) == case.adjusted
    limits = SPECS[case.model].image  # pyright: ignore[reportArgumentType]
    assert image.width is not None
    assert image.height is not None
    assert max(image.width, image.height) <= limits.side.hi


def bmp_of_bytes(path: Path, height: int) -> Path:
    """A 2000-px-wide 24-bit BMP: 54 + height * 6000 bytes, exact to the byte."""
    from PIL import Image

    Image.new("RGB", (2000, height), (10, 20, 30)).save(path, "BMP")
    return path


@pytest.mark.parametrize(
    ("model", "height", "over"),
    [
        ("wan2.6-image", 1666, False),  # 9_996_054 bytes <= 10 MB
        ("wan2.6-image", 1667, True),  # 10_002_054 bytes > 10 MB
        ("wan2.5-i2i-preview", 1667, True),
        ("wan2.7-image", 3333, False),  # 19_998_054 bytes <= 20 MB
        ("wan2.7-image", 3334, True),  # 20_004_054 bytes > 20 MB
    ],
)
def test_file_size_limit_is_met_by_reencoding(model: str, height: int, over: bool, tmp_path: Path) -> None:
    path = bmp_of_bytes(tmp_path / "big.bmp", height)
    size = path.stat().st_size
    request = prepare_request(model, "edit", [str(path)])
    (image,) = request.images
    limit = SPECS[model].image.max_bytes  # pyright: ignore[reportArgumentType]
    assert image.bytes is not None
    assert image.bytes <= limit
    if over:
        assert size > limit
        assert image.format == "PNG"
        assert image.adjustments == (f"image 1: re-encoded as PNG to fit the {limit // 1_000_000} MB file limit",)
    else:
        assert image.bytes == size
        assert image.format == "BMP"


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(InvalidRequest) as caught:
        prepare_request(
            "wan2.6-image", "", urls(5), EditParams(n=7, bbox_list=[[]], size="9x9", seed=-1, thinking_mode=True)
        )
    arguments = [p.argument for p in caught.value.problems]
    assert arguments == ["prompt", "images", "thinking_mode", "bbox_list", "n", "size", "seed"]
    text = str(caught.value)
    assert "7 problems" in text
    assert "takes 1-4" in text
    assert "2147483647" in text


def test_problems_name_the_image_index(make_image: ImageFactory, tmp_path: Path) -> None:
    good = make_image("good.png", (640, 480))
    tiny = make_image("tiny.png", (100, 100))
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InvalidRequest) as caught:
        prepare_request("wan2.7-image-pro", "fuse", [str(good), str(tiny), str(tmp_path / "notes.txt")])
    problems = caught.value.problems
    assert [(p.argument, p.image) for p in problems] == [("images", 2), ("images", 3)]
    assert "at least 240 px" in problems[0].message
    assert "not an image" in problems[1].message
    assert "images (image 2)" in str(caught.value)


def test_n_is_always_sent_and_defaults_to_one() -> None:
    request = prepare_request("wan2.7-image-pro", "a cat", [])
    assert request.parameters["n"] == 1
    assert request.paid_images == 1


def test_interleave_pays_for_max_images() -> None:
    request = prepare_request("wan2.6-image", "a story", [], EditParams(enable_interleave=True, max_images=3))
    assert request.paid_images == 3


def test_false_switch_a_model_lacks_is_not_sent() -> None:
    request = prepare_request("wan2.6-image", "x", urls(1), EditParams(thinking_mode=False, enable_sequential=False))
    assert "thinking_mode" not in request.parameters
    assert "enable_sequential" not in request.parameters


def test_false_thinking_mode_is_sent_to_wan27() -> None:
    request = prepare_request("wan2.7-image-pro", "x", [], EditParams(thinking_mode=False))
    assert request.parameters["thinking_mode"] is False


def test_custom_size_with_x_is_sent_with_an_asterisk() -> None:
    request = prepare_request("wan2.5-i2i-preview", "x", urls(1), EditParams(size="1280x720"))
    assert request.parameters["size"] == "1280*720"
    assert any("1280*720" in note for note in request.adjustments)


def test_box_outside_the_image_is_refused(make_image: ImageFactory) -> None:
    path = make_image("a.png", (640, 480))
    with pytest.raises(InvalidRequest) as caught:
        prepare_request("wan2.7-image-pro", "x", [str(path)], EditParams(bbox_list=[[[0, 0, 641, 100]]]))
    (problem,) = caught.value.problems
    assert (problem.argument, problem.image) == ("bbox_list", 1)
    assert "640×480" in problem.message


def test_boxes_follow_a_downscaled_image(make_image: ImageFactory) -> None:
    path = make_image("wide.png", (8800, 1100))
    params = EditParams(bbox_list=[[[880, 110, 8800, 1100]], []])
    request = prepare_request("wan2.7-image-pro", "x", [str(path), URL.format(1)], params)
    image = request.images[0]
    assert (image.width, image.height) == (8000, 1000)
    assert request.parameters["bbox_list"] == [[[800, 100, 8000, 1000]], []]
    assert "bbox_list scaled with the downscaled images" in request.adjustments


def test_boxes_follow_an_image_capped_at_40_mpx_per_axis(make_image: ImageFactory) -> None:
    """9000×6000 is sent at 7745×5163 (each side floored under the cap): 7745 / 9000 and 5163 / 6000 both differ
    from the cap's scale, 0.86066, enough to put a box's far edge a pixel off."""
    path = make_image("huge.png", (9000, 6000))
    params = EditParams(bbox_list=[[[8000, 5000, 8999, 5999]]])
    request = prepare_request("wan2.7-image-pro", "x", [str(path)], params)
    assert (request.images[0].width, request.images[0].height) == (7745, 5163)
    assert request.parameters["bbox_list"] == [[[6884, 4302, 7744, 5162]]]


def test_expected_size_follows_the_last_input(make_image: ImageFactory) -> None:
    first = make_image("a.png", (1000, 1000))
    last = make_image("b.png", (2000, 1000))
    request = prepare_request("wan2.7-image-pro", "x", [str(first), str(last)], EditParams(size="1K"))
    assert request.expected_size is not None
    width, height = request.expected_size
    assert width % 16 == 0
    assert height % 16 == 0
    assert abs(width / height - 2.0) < 0.05
    assert abs(width * height - 1024 * 1024) / (1024 * 1024) < 0.03


@pytest.mark.parametrize("colour", ["pink", "#FF00", "ff0000", "#GG0000", "", "transparent"])
def test_a_background_that_is_no_colour_it_takes_is_refused_naming_alpha_background(
    colour: str, make_image: ImageFactory
) -> None:
    logo = make_image("logo.png", (400, 300), mode="RGBA", colour=(0, 0, 0, 0))
    with pytest.raises(InvalidRequest) as caught:
        prepare_request("wan2.7-image", "x", [str(logo)], EditParams(alpha_background=colour))
    (problem,) = caught.value.problems
    assert (
        str(problem)
        == f"alpha_background: {colour!r} is not a colour it takes: white, black or '#RRGGBB', e.g. '#FF0000'"
    )


@pytest.mark.parametrize("colour", ["white", "BLACK", "#00ff7F", " #123456 "])
def test_a_background_it_takes_is_no_wire_parameter(colour: str) -> None:
    request = prepare_request("wan2.7-image", "x", [], EditParams(size="1K", alpha_background=colour))
    assert request.parameters == {"n": 1, "watermark": False, "size": "1K"}
