"""Which input images a prompt refers to: 圖3, [圖3], 图3, 第3張, 第三張圖, image 3, picture 3, img 3, the 3rd photo.

``references(prompt, ordinals=True)`` returns each reference found as (image number, the words that said it).
A number is a reference only when a word for an image stands right before it (or an ordinal right before the
word), so '3 variations', 'a 3-door car', 'image 1920x1080', 'image 2K' and 'photo 3 times larger' are not.
``ordinals=False`` leaves out 第3張 and 'the third image', which in an image set or an interleaved answer
usually number the outputs, not the inputs.
"""

from __future__ import annotations

import re

_CJK_DIGITS = {"一": 1, "二": 2, "兩": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_WORDS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_NUMBER = r"(\d{1,3}|[一二兩两三四五六七八九十]{1,3})"
_NOT_A_REFERENCE = r"(?!\s*(?:x|×|\*|times|px|pixels?|%|[.,:]\d|[-–]\w))"

_NAMED = [
    # 圖3, 图3, [圖3], 圖片3, 图片 3; not 地圖3 (map 3), 試圖3次 (tried 3 times), 構圖, 插圖, 藍圖 ...
    re.compile(rf"(?<![地插構构藍蓝製制試试意企繪绘貼贴])[圖图](?:片|像)?\s*{_NUMBER}(?![0-9])"),
    # image 3, Image #3, picture 3, pic 3, img 3, photo no. 3, images 3
    re.compile(
        rf"\b(?:image|picture|pic|img|photo)s?\s*(?:#|no\.?\s*|number\s+)?(\d{{1,3}})\b{_NOT_A_REFERENCE}",
        re.IGNORECASE,
    ),
]
_ORDINAL = [
    # 第3張, 第三张圖, 第 2 幅
    re.compile(rf"第\s*{_NUMBER}\s*[張张幅個个](?:[圖图]片?|照片)?"),
    # the 3rd image, 2nd photo
    re.compile(r"\b(\d{1,3})(?:st|nd|rd|th)\s+(?:image|picture|photo|pic|img)\b", re.IGNORECASE),
    # the third image
    re.compile(rf"\b({'|'.join(_WORDS)})\s+(?:image|picture|photo|pic|img)\b", re.IGNORECASE),
]


def _value(token: str) -> int:
    if token.isdigit():
        return int(token)
    if token.lower() in _WORDS:
        return _WORDS.index(token.lower()) + 1
    if token == "十":
        return 10
    if token.startswith("十"):  # 十一 .. 十九
        return 10 + _CJK_DIGITS.get(token[1:], 0)
    if token.endswith("十"):  # 二十, 三十
        return 10 * _CJK_DIGITS.get(token[:-1], 0)
    if "十" in token:  # 二十三
        tens, units = token.split("十", 1)
        return 10 * _CJK_DIGITS.get(tens, 0) + _CJK_DIGITS.get(units, 0)
    return _CJK_DIGITS.get(token, 0)


def references(prompt: str, *, ordinals: bool = True) -> list[tuple[int, str]]:
    """Each image reference in ``prompt``, in order: (1-based image number, the text that says it)."""
    found: list[tuple[int, int, str]] = []
    for pattern in _NAMED + (_ORDINAL if ordinals else []):
        for match in pattern.finditer(prompt):
            number = _value(match.group(1))
            if number > 0:
                found.append((match.start(), number, match.group(0).strip()))
    return [(number, said) for _, number, said in sorted(found)]
