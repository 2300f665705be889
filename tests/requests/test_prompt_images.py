"""A prompt that refers to an image beyond those given is refused before anything is sent; numbers that are
not references pass."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.support.helpers import ImageFactory, text
from wan_image_mcp.core.requests.prompt_images import references
from wan_image_mcp.emulator import EmulatorState

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("prompt", "number"),
    [
        ("把圖3的花放到圖1的桌上", 3),
        ("將[圖3]的貓放進來", 3),
        ("把图3的塗鴉噴在车上", 3),
        ("第3張的人物換成紅色衣服", 3),
        ("第三張圖片的背景換成海邊", 3),
        ("put the dog from image 3 on the sofa", 3),
        ("Image #3 is the style reference", 3),
        ("use picture 3 as the background", 3),
        ("img 3: the logo", 3),
        ("the person in photo 3", 3),
        ("the 3rd image's colours", 3),
        ("take the third picture's sky", 3),
        ("把圖十的燈放到圖1", 10),
        ("combine images 1, 2 and 3", 3),
        ("images 1 to 3 side by side", 3),
        ("pictures 1-3 as a strip", 3),
        ("把图1-3拼在一起", 3),
        ("the sky of image three", 3),
        ("Image-3 is the style", 3),
        ("image_3 background", 3),
        ("the logo in image (3)", 3),
        ("input 3 is the logo", 3),
        ("把3号图的猫放进来", 3),
        ("圖３的花", 3),
        ("put the dog of image 3 in the garden", 3),
        ("第3張的人物", 3),
    ],
)
def test_each_way_of_naming_an_image_is_found(prompt: str, number: int) -> None:
    assert number in [n for n, _ in references(prompt)]


@pytest.mark.parametrize(
    "prompt",
    [
        "make 3 variations of image 1",
        "a 3-door car parked by the house in image 2",
        "image 1 at 1920x1080",
        "upscale image 2 to 4K, image 1 stays",
        "make the cat in photo 1 3 times larger",
        "地圖3號出口旁的咖啡店",
        "試圖3次都失敗的人",
        "生成3張海報",
        "image 1 and image 2, 12 colours",
        "把第3个人的衣服换成红色",
        "移除画面中第三个苹果",
        "一张海报，标题写着“第一张专辑”",
        "photo 360° turntable",
        "image 8 bit style",
        "图3D效果",
        "图 4K 壁纸",
        "picture 5 stars",
        "image 3 inches wide",
        "image 300 dpi",
        "photo 10 minutes later",
        "image 3 people waving",
        "the 3rd picture frame on the wall",
        "a kid holding a photo 2 people smiling",
        "A calendar photo 1 of 12",
        "a picture 3 meters tall",
    ],
)
def test_numbers_that_are_not_references_are_not_flagged(prompt: str) -> None:
    assert all(n <= 2 for n, _ in references(prompt)), references(prompt)


async def test_a_prompt_naming_image_3_with_two_images_is_refused_before_anything_is_sent(
    mcp: Client, emulator: EmulatorState, make_image: ImageFactory
) -> None:
    images = [str(make_image("a.png", (640, 480))), str(make_image("b.png", (640, 480)))]
    result = await mcp.call_tool("edit_image", {"prompt": "把圖3的貓放到圖1的沙發上", "images": images})
    assert result.is_error
    assert (
        "prompt: refers to image 3 ('圖3') but only 2 images were given; number them 1-2 in the order of images"
        in text(result)
    )
    assert emulator.requests == []


async def test_a_prompt_naming_an_image_when_none_was_given_is_refused(mcp: Client, emulator: EmulatorState) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "make image 1 blue"})
    assert "refers to image 1 ('image 1') but no images were given" in text(result)
    assert result.is_error and emulator.requests == []


async def test_references_within_the_images_given_pass(mcp: Client, make_image: ImageFactory) -> None:
    images = [str(make_image("a.png", (640, 480))), str(make_image("b.png", (640, 480)))]
    result = await mcp.call_tool(
        "edit_image", {"prompt": "paint image 2's graffiti on image 1, 3 variations", "images": images}
    )
    assert not result.is_error, text(result)


@pytest.mark.parametrize(
    "prompt",
    ["三个小孩站成一排，第一个穿红衣服", "the first image on the wall is a sunset", "第二張海報是藍色的"],
)
async def test_a_text_to_image_prompt_may_use_ordinals(prompt: str, mcp: Client) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": prompt})
    assert not result.is_error, text(result)


async def test_an_image_set_may_number_its_outputs(mcp: Client) -> None:
    prompt = "生成一組4張海報：第1張是春天，第3張是秋天，第4張是冬天"
    result = await mcp.call_tool("edit_image", {"prompt": prompt, "enable_sequential": True, "n": 4})
    assert not result.is_error, text(result)
