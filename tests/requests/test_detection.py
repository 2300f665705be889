"""Detection and segmentation instructions follow Model Studio's examples, in the targets' language."""

from __future__ import annotations

import pytest

from wan_image_mcp.core.errors import InvalidRequest, Problem
from wan_image_mcp.core.requests.detection import build_instruction, detect_instruction, named_for_detect


@pytest.mark.parametrize(
    ("targets", "mode", "labels", "expected"),
    [
        (
            ["膝上型電腦", "鬧鐘"],
            "detect",
            ["laptop", "clock"],
            "檢測圖片中的膝上型電腦和鬧鐘，畫框並標註“laptop”和“clock”",
        ),
        (["玻璃杯"], "segment", None, "分割圖片中的玻璃杯"),
        (["笔记本电脑", "闹钟"], "detect", None, "检测图片中的笔记本电脑和闹钟，画框并标注“笔记本电脑”和“闹钟”"),
        (["貓", "狗", "鳥"], "detect", None, "檢測圖片中的貓、狗和鳥，畫框並標註“貓”、“狗”和“鳥”"),
        (
            ["laptop", "a clock"],
            "detect",
            None,
            "Detect the laptop and a clock in the image, draw a box around each and label them “laptop” and “clock”.",
        ),
        (["cup", "plate", "fork"], "segment", None, "Segment the cup, the plate and the fork in the image."),
    ],
)
def test_instructions_read_like_the_seed(
    targets: list[str], mode: str, labels: list[str] | None, expected: str
) -> None:
    assert build_instruction(targets, mode, labels) == expected  # pyright: ignore[reportArgumentType]


def test_empty_targets_and_mismatched_labels_are_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        build_instruction([" "], "detect", ["a", "b"])
    assert [p.argument for p in caught.value.problems] == ["targets", "labels"]


@pytest.mark.parametrize(
    ("targets", "written", "one", "labels"),
    [
        (["bottle", "cup"], "the bottle and the cup", False, "“bottle” and “cup”"),
        (["every bottle"], "every bottle", False, "“bottle”"),
        (["Every bottle", "each cup"], "every bottle and each cup", False, "“bottle” and “cup”"),
        (["all bottles"], "all bottles", False, "“bottles”"),
        (["all of the bottles"], "all of the bottles", False, "“bottles”"),
        (["bottles"], "all the bottles", False, "“bottles”"),
        (["both cups"], "both cups", False, "“cups”"),
        (["two cups"], "two cups", False, "“cups”"),
        (["3 cups"], "3 cups", False, "“cups”"),
        (["1 cup"], "1 cup", True, "“cup”"),
        (["the cups"], "the cups", False, "“cups”"),
        (["the cup"], "the cup", True, "“cup”"),
        (["a cup"], "a cup", True, "“cup”"),
        (["an apple"], "an apple", True, "“apple”"),
        (["this mug"], "this mug", True, "“mug”"),
        (["those mugs"], "those mugs", False, "“mugs”"),
        (["any knife"], "any knife", True, "“knife”"),
        (["some apples"], "some apples", False, "“apples”"),
        (["my dog"], "my dog", True, "“dog”"),
        (["their cars"], "their cars", False, "“cars”"),
        (["people"], "all the people", False, "“people”"),
        (["glass"], "the glass", True, "“glass”"),
        (["bus"], "the bus", True, "“bus”"),
        (["lens"], "the lens", True, "“lens”"),
        (["cups on the table"], "all the cups on the table", False, "“cups on the table”"),
        (["bottle of wine"], "the bottle of wine", True, "“bottle of wine”"),
        (["John's car"], "John's car", True, "“John's car”"),
        (["everything"], "everything", False, "“everything”"),
        (["something red"], "something red", True, "“something red”"),
        (["every"], "every", False, "“every”"),
        (["cups in the image"], "all the cups", False, "“cups”"),
        (["the cup in this photo"], "the cup", True, "“cup”"),
    ],
)
def test_english_targets_keep_their_quantifiers_and_a_bare_noun_gets_the_article_its_number_needs(
    targets: list[str], written: str, one: bool, labels: str
) -> None:
    boxes = "draw a box around it and label it" if one else "draw a box around each and label them"
    assert build_instruction(targets, "detect") == f"Detect {written} in the image, {boxes} {labels}."


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (["every bottle", "cups"], "Segment every bottle and all the cups in the image."),
        (["bottle"], "Segment the bottle in the image."),
    ],
)
def test_segmenting_quantifies_the_targets_the_same_way(targets: list[str], expected: str) -> None:
    assert build_instruction(targets, "segment") == expected


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (["所有瓶子"], "檢測圖片中的所有瓶子，畫框並標註“瓶子”"),
        (["所有的瓶子"], "檢測圖片中的所有的瓶子，畫框並標註“瓶子”"),
        (["每個杯子", "兩個碗"], "檢測圖片中的每個杯子和兩個碗，畫框並標註“杯子”和“碗”"),
        (["每个杯子", "两个碗"], "检测图片中的每个杯子和两个碗，画框并标注“杯子”和“碗”"),
        (["三隻貓"], "檢測圖片中的三隻貓，畫框並標註“貓”"),
        (["這些杯子"], "檢測圖片中的這些杯子，畫框並標註“杯子”"),
        (["两瓶水"], "检测图片中的两瓶水，画框并标注“水”"),
        (["瓶子", "杯子"], "檢測圖片中的瓶子和杯子，畫框並標註“瓶子”和“杯子”"),
        (["台燈"], "檢測圖片中的台燈，畫框並標註“台燈”"),
        (["這杯子"], "檢測圖片中的這杯子，畫框並標註“這杯子”"),
        (["所有"], "檢測圖片中的所有，畫框並標註“所有”"),
        (["圖片中的所有瓶子"], "檢測圖片中的所有瓶子，畫框並標註“瓶子”"),
        (["图中的杯子"], "检测图片中的杯子，画框并标注“杯子”"),
    ],
)
def test_chinese_quantifiers_are_kept_once_and_left_out_of_the_labels(targets: list[str], expected: str) -> None:
    assert build_instruction(targets, "detect") == expected


def test_given_labels_are_used_as_written() -> None:
    instruction = build_instruction(["every bottle"], "detect", ["bottle (glass)"])
    assert instruction.endswith("label them “bottle (glass)”.")


def test_an_own_instruction_is_sent_verbatim() -> None:
    own = "Box every bottle in red and every cup in blue, and label each with its name."
    assert detect_instruction(None, "detect", None, own) == own


@pytest.mark.parametrize(
    ("targets", "labels", "instruction", "arguments"),
    [
        (None, None, None, ["targets"]),
        (["cup"], None, "Box the cup.", ["targets"]),
        (None, ["cup"], "Box the cup.", ["labels"]),
        (None, None, "  ", ["instruction"]),
        (["cup"], ["a", "b"], "Box the cup.", ["targets", "labels"]),
    ],
)
def test_targets_or_instruction_one_of_them_is_required(
    targets: list[str] | None, labels: list[str] | None, instruction: str | None, arguments: list[str]
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        detect_instruction(targets, "detect", labels, instruction)
    assert [p.argument for p in caught.value.problems] == arguments


def test_the_edits_problems_are_named_by_detect_segments_own_arguments() -> None:
    problems = InvalidRequest([Problem("prompt", "is too long"), Problem("images", "too small", image=1)])
    own = named_for_detect(problems, own_instruction=True).problems
    assert [str(p) for p in own] == ["instruction: is too long", "image: too small"]
    written = named_for_detect(problems, own_instruction=False).problems
    assert [p.argument for p in written] == ["targets", "image"]
