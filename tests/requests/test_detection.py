"""Detection and segmentation instructions follow Model Studio's examples, in the targets' language."""

from __future__ import annotations

import pytest

from wan_image_mcp.core.errors import InvalidRequest
from wan_image_mcp.core.requests.detection import build_instruction


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
            "Detect the laptop and a clock in the image, draw a box around each and label them “laptop” and “a clock”.",
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
