"""Prompts for the use cases of Model Studio's image-editing page: each gives an instruction in the user's language
and a tool call that, made as suggested, works."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, TextContent

from tests.support.helpers import ImageFactory, text

pytestmark = pytest.mark.anyio

NAMES = {
    "fuse_images",
    "portrait_series",
    "edit_in_boxes",
    "product_visual_set",
    "edit_text_in_image",
    "change_camera_view",
    "extract_elements",
    "remove_object",
    "detect_or_segment",
}


async def suggestion(client: Client, name: str, arguments: dict[str, str]) -> tuple[str, str, dict[str, Any]]:
    result = await client.get_prompt(name, arguments)
    (message,) = result.messages
    assert isinstance(message.content, TextContent)
    body = message.content.text
    match = re.search(r"Suggested call:\n(\w+)\((\{.*\})\)$", body, re.S)
    assert match, body
    instruction = body.split("\n", 2)[1]
    return instruction, match[1], json.loads(match[2])


async def test_every_use_case_has_a_prompt_with_arguments(mcp: Client) -> None:
    prompts = {p.name: p for p in (await mcp.list_prompts()).prompts}
    assert set(prompts) == NAMES
    for prompt in prompts.values():
        assert prompt.title and prompt.description and prompt.arguments


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        (
            "fuse_images",
            {"images": "{a}, {b}", "goal": "給圖1的男生和圖2的狗拍一張寫真"},
            "給圖1的男生和圖2的狗拍一張寫真",
        ),
        (
            "fuse_images",
            {"images": "{a}\n{b}", "goal": "the dress of image 1 in the colours of the bird"},
            "the dress of image 1 in the colours of the bird",
        ),
        (
            "portrait_series",
            {"reference": "{a}", "styles": "民國文人風, 英倫紳士風"},
            "人物形象為參考圖1，保持臉部特徵和髮型不變，依序產生以下風格的寫真：民國文人風；英倫紳士風",
        ),
        (
            "edit_in_boxes",
            {"images": "{a}, {b}", "change": "將圖1中框選的圖案放置到圖二中框選處"},
            "將圖1中框選的圖案放置到圖二中框選處",
        ),
        (
            "product_visual_set",
            {"product": "復古未來主義耳機", "shots": "主視覺、材質特寫、爆炸視圖、佩戴情境"},
            "為以下產品產生一套4張風格統一的商業視覺圖",
        ),
        (
            "edit_text_in_image",
            {"image": "{a}", "old_text": "18，JUNE", "new_text": "29，九月"},
            "把18，JUNE改成29，九月",
        ),
        (
            "edit_text_in_image",
            {"image": "{a}", "old_text": "18, JUNE", "new_text": "29, SEPTEMBER"},
            'change the text "18" to "29"',
        ),
        (
            "change_camera_view",
            {"image": "{a}", "view": "用魚眼鏡頭重新拍攝這張照片"},
            "保持主體特徵不變，用魚眼鏡頭重新拍攝這張照片",
        ),
        ("extract_elements", {"image": "{a}"}, "從上傳照片中提取穿搭單品"),
        ("remove_object", {"image": "{a}", "target": "浮水印"}, "去除全圖浮水印"),
        ("remove_object", {"image": "{a}", "target": "power line"}, "Remove every power line"),
        (
            "detect_or_segment",
            {"image": "{a}", "targets": "膝上型電腦, 鬧鐘", "labels": "laptop, clock"},
            "檢測圖片中的膝上型電腦和鬧鐘，畫框並標註“laptop”和“clock”",
        ),
        (
            "detect_or_segment",
            {"image": "{a}", "targets": "glass", "mode": "segment"},
            "Segment the glass in the image.",
        ),
    ],
)
async def test_the_suggested_call_works_as_written(
    name: str, arguments: dict[str, str], expected: str, mcp: Client, make_image: ImageFactory
) -> None:
    paths = {"a": str(make_image("a.png", (800, 600))), "b": str(make_image("b.png", (640, 640)))}
    filled = {key: value.format(**paths) for key, value in arguments.items()}
    instruction, tool, call = await suggestion(mcp, name, filled)
    assert instruction.startswith(expected)
    result = await mcp.call_tool(tool, {**call, "wait_seconds": 5})
    assert not result.is_error, text(result)
    assert result.structured_content is not None and result.structured_content["status"] == "SUCCEEDED"


async def test_every_prompt_argument_is_described(mcp: Client) -> None:
    for prompt in (await mcp.list_prompts()).prompts:
        for argument in prompt.arguments or []:
            assert argument.description, f"{prompt.name}.{argument.name}"


async def test_the_product_set_makes_the_shots_the_user_lists(mcp: Client) -> None:
    instruction, _, call = await suggestion(
        mcp, "product_visual_set", {"product": "retro headphones", "shots": "hero shot, hinge macro, on a desk"}
    )
    assert "in order: hero shot; hinge macro; on a desk" in instruction
    assert call["n"] == 3


async def test_a_number_of_shots_takes_that_many_default_shots(mcp: Client) -> None:
    instruction, _, call = await suggestion(mcp, "product_visual_set", {"product": "耳機", "shots": "2"})
    assert "依序為：主視覺、材質特寫。" in instruction and call["n"] == 2


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("the watermark", "Remove the watermark from"),
        ("logo", "Remove every logo from"),
        ("all logos", "Remove all logos"),
    ],
)
async def test_remove_object_reads_as_english(target: str, expected: str, mcp: Client) -> None:
    instruction, _, _ = await suggestion(mcp, "remove_object", {"image": "a.png", "target": target})
    assert instruction.startswith(expected)


async def test_detecting_one_target_says_it_not_them(mcp: Client) -> None:
    instruction, _, _ = await suggestion(mcp, "detect_or_segment", {"image": "a.png", "targets": "cat"})
    assert instruction == "Detect the cat in the image, draw a box around it and label it “cat”."


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("fuse", {}, "unknown prompt 'fuse': the prompts are change_camera_view, detect_or_segment, "),
        ("edit_text_in_image", {}, "prompt 'edit_text_in_image': missing required arguments image, new_text, old_text"),
        ("fuse_images", {"images": "a.png"}, "prompt 'fuse_images': missing required argument goal"),
        ("remove_object", {"image": "a.png", "targt": "logo"}, "unknown argument 'targt' — did you mean 'target'?"),
        ("fuse_images", {"images": "a.png", "goal": "  "}, "prompt 'fuse_images': required argument goal empty"),
    ],
)
async def test_prompt_mistakes_are_invalid_params_naming_what_is_wrong(
    name: str, arguments: dict[str, str], message: str, mcp: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(MCPError) as caught:
        await mcp.get_prompt(name, arguments)
    assert caught.value.code == INVALID_PARAMS
    assert message in caught.value.message
    assert "{" not in caught.value.message  # no Python set repr
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(("shots", "count"), [(", , ,", 4), ("-3", 1), ("2", 2), ("", 4)])
async def test_shots_that_list_nothing_take_the_default_shots(shots: str, count: int, mcp: Client) -> None:
    _, _, call = await suggestion(mcp, "product_visual_set", {"product": "headphones", "shots": shots})
    assert call["n"] == count
