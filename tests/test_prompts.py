"""Prompts for the seed's use cases: each gives an instruction in the user's language and a tool call that,
made as suggested, works."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from mcp import Client
from mcp.types import TextContent

from tests.conftest import ImageFactory, text

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
            {"product": "復古未來主義耳機", "shots": "4"},
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
