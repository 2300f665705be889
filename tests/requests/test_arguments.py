"""The tool boundary is strict: an unknown name or a wrong value is refused in our words, before anything is
read or sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from pydantic import BaseModel, ValidationError

from tests.support.helpers import TOOL_NAMES, text
from wan_image_mcp.core.requests.arguments import problems, refusal
from wan_image_mcp.emulator import EmulatorState

pytestmark = pytest.mark.anyio
MISSING = "/nowhere/photo.jpg"
VALID: dict[str, dict[str, Any]] = {
    "edit_image": {"prompt": "make it blue", "images": [MISSING]},
    "submit_task": {"prompt": "make it blue", "images": [MISSING]},
    "check_task": {"task_id": "task-1"},
    "cancel_task": {"task_id": "task-1"},
    "detect_segment": {"image": MISSING, "targets": ["cat"]},
    "list_tasks": {},
    "inspect_image": {"images": [MISSING]},
}


def test_every_tool_has_a_valid_call_here() -> None:
    assert set(VALID) == TOOL_NAMES


@pytest.mark.parametrize("tool", sorted(TOOL_NAMES))
async def test_every_tool_refuses_an_unknown_argument_before_reading_or_sending(
    tool: str, mcp: Client, emulator: EmulatorState
) -> None:
    result = await mcp.call_tool(tool, {**VALID[tool], "verbose": True})
    assert result.is_error
    assert text(result).startswith("unknown argument 'verbose' — the arguments are ")
    assert text(result).endswith("Nothing was sent.")
    assert "photo.jpg" not in text(result)  # the file was never looked at
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("given", "meant"),
    [("image", "images"), ("negative_promt", "negative_prompt"), ("bboxes", "bbox_list"), ("modle", "model")],
)
async def test_a_misspelt_argument_names_the_closest_valid_one(
    given: str, meant: str, mcp: Client, emulator: EmulatorState, tmp_path: Path
) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "make it blue", given: str(tmp_path / "photo.jpg")})
    assert text(result) == f"unknown argument '{given}' — did you mean '{meant}'? Nothing was sent."
    assert result.is_error and emulator.requests == []


async def test_several_problems_are_all_listed(mcp: Client, emulator: EmulatorState) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "x", "image": "a.png", "n": "many", "model": "wan3"})
    assert text(result) == (
        "3 problems with the arguments:\n"
        "- unknown argument 'image' — did you mean 'images'?\n"
        "- model must be one of 'wan2.7-image-pro', 'wan2.7-image', 'wan2.6-image' or 'wan2.5-i2i-preview'; "
        'got "wan3"\n'
        '- n must be a whole number; got "many"\n'
        "Nothing was sent."
    )
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"images": "/tmp/a.png"},
            'images must be a list with one reference per image: ["/tmp/a.png"], not "/tmp/a.png".',
        ),
        (
            {"n": 13},
            "n must be at most 4, the most paid images one call may request on this server "
            "(WAN_MCP_MAX_IMAGES_PER_CALL); got 13. Split the set over several calls, or raise the setting in the "
            "server's environment.",
        ),
        ({"seed": -5}, "seed must be at least 0; got -5."),
        ({"wait_seconds": 301}, "wait_seconds must be at most 300; got 301."),
        ({"images": ["a.png", 7]}, "images (image 2) must be a string; got 7."),
        (
            {"bbox_list": [10, 20, 200, 240]},
            "bbox_list must hold one list of boxes per input image, like [[[x1, y1, x2, y2]], []] for one box on "
            "image 1 and none on image 2; got [10, 20, 200, 240].",
        ),
        (
            {"bbox_list": [[[1, 2, 3, 4], [1, 2, "x", 4]]]},
            'bbox_list (image 1, box 2, value 3) must be a whole number; got "x".',
        ),
        ({"color_palette": [{"hex": "#FFFFFF"}]}, "color_palette (colour 1) ratio is missing."),
        (
            {"color_palette": [{"hex": "#FFFFFF", "ratio": "100.00%", "weight": 1}]},
            "color_palette (colour 1) weight is not a field here.",
        ),
    ],
)
async def test_a_wrong_value_is_one_sentence_naming_the_argument_the_place_and_the_limit(
    arguments: dict[str, Any], message: str, mcp: Client, emulator: EmulatorState
) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "x", **arguments})
    assert result.is_error
    assert text(result) == f"{message} Nothing was sent."
    assert emulator.requests == []


async def test_no_pydantic_text_reaches_the_caller(mcp: Client) -> None:
    result = await mcp.call_tool("detect_segment", {"image": 3, "targets": "cat", "mode": "find"})
    said = text(result)
    assert "validation error" not in said and "pydantic" not in said and "Arguments" not in said
    assert "mode must be one of 'detect' or 'segment'; got \"find\"" in said
    assert 'targets must be a list; got "cat"' in said
    assert "image must be a string; got 3" in said


async def test_a_missing_required_argument_is_named(mcp: Client) -> None:
    result = await mcp.call_tool("check_task", {})
    assert text(result) == "task_id is required. Nothing was sent."


async def test_an_error_the_tool_raises_is_not_prefixed_by_the_sdk(mcp: Client) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [MISSING]})
    assert result.is_error
    assert not text(result).startswith("Error executing tool")


def test_values_are_shown_short_and_as_json() -> None:
    class Args(BaseModel):
        prompt: str

    with pytest.raises(ValidationError) as caught:
        Args.model_validate({"prompt": ["x" * 500]})
    (found,) = problems({"prompt": ["x" * 500]}, ["prompt"], caught.value.errors(include_url=False))
    assert found.startswith('prompt must be a string; got ["xxx') and found.endswith("…")
    assert len(found) < 100
    assert refusal([found]).endswith(". Nothing was sent.")


@pytest.mark.parametrize("tool", sorted(TOOL_NAMES - {"cancel_task"}))
async def test_null_for_any_optional_argument_means_not_given(tool: str, mcp: Client) -> None:
    listed = {t.name: t for t in (await mcp.list_tools()).tools}
    schema = listed[tool].input_schema
    optional = set(schema["properties"]) - set(schema.get("required", []))
    arguments = {**VALID[tool], **dict.fromkeys(optional - set(VALID[tool]))}
    result = await mcp.call_tool(tool, arguments)
    assert "got null" not in text(result) and "must be" not in text(result), text(result)


async def test_null_for_a_required_argument_is_refused(mcp: Client) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": None})
    assert text(result) == "prompt must be a string; got null. Nothing was sent."


async def test_a_comma_separated_string_of_images_is_answered_with_the_list_to_send(mcp: Client) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": "/a.png, /b.png"})
    assert text(result) == (
        'images must be a list with one reference per image: ["/a.png", "/b.png"], not "/a.png, /b.png". '
        "Nothing was sent."
    )


async def test_a_number_too_large_to_parse_is_worded_as_ours(mcp: Client) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "x", "seed": 1e308})
    assert text(result) == "seed must be a whole number of sensible size; got 1e+308. Nothing was sent."
