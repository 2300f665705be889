"""Which input images a prompt refers to: 圖3, [圖3], 图3, 圖1-3, 3号图, 第3張, 第三張圖, image 3, Image #3,
image-3, images 1 to 3, picture 3, img 3, input 3, image three, the 3rd photo, the third picture.

``references(prompt, ordinals=True)`` returns each reference found as (image number, the words that said it).
A number is a reference only when a word for an image stands right before it (or an ordinal right before the
word), and not when a unit or a noun follows it, so '3 variations', 'a 3-door car', 'image 1920x1080',
'image 2K', 'photo 3 times larger', 'image 8 bit style', 'photo 360°', 'a photo 2 people smiling', 'photo 1 of
12', 图3D, 地圖3, 第3个人 and 第一张专辑 are not. ``ordinals=False`` leaves out 第3張 and 'the third image',
which in an image set, an interleaved answer or a text-to-image prompt usually number the outputs or describe
the scene, not the inputs.
"""

from __future__ import annotations

import re

_CJK_DIGITS = {"一": 1, "二": 2, "兩": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_WORDS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_CARDINALS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_FULL_WIDTH = str.maketrans("０１２３４５６７８９", "0123456789")

_CJK_NUMBER = r"(?:\d{1,3}|[一二兩两三四五六七八九十]{1,3})"
_EN_NUMBER = rf"(?:\d{{1,3}}|{'|'.join(_CARDINALS)})"
_EN_IMAGE = r"(?:image|picture|pic|img|photo|input)s?"
_UNITS = (
    r"°|%|x\b|×|\*|bits?\b|-?bit\b|d\b|k\b|p\b|px|pixels?|times?\b|inch(?:es)?\b|cm\b|mm\b|dpi|ppi|"
    r"stars?\b|minutes?\b|mins?\b|seconds?\b|secs?\b|hours?\b|days?\b|weeks?\b|months?\b|years?\b|"
    r"meters?\b|metres?\b|feet\b|foot\b|ft\b|km\b|kg\b|lbs?\b|pounds?\b|dollars?\b|euros?\b|"
    r"people\b|persons?\b|men\b|women\b|kids?\b|children\b|of\s+\d|go\b|frames?\b|[.,:/]\d|[-–]\D"
)
"""What, right after a number, says the number is a quantity or a name, not an image's place."""

_SEPARATORS = r"\s*(?:,|、|&|and|和|與|与|-|–|~|to|至|到)\s*"
"""Between the numbers of a list or a range (how ``_numbers`` splits one)."""
_CJK_LIST = rf"{_CJK_NUMBER}(?:\s*(?:、|和|與|与|-|–|~|至|到)\s*{_CJK_NUMBER})*"
_EN_LIST = rf"{_EN_NUMBER}(?:(?:\s*,\s*{_EN_NUMBER})*\s*,?\s*(?:and|&)\s*{_EN_NUMBER}|\s*(?:-|–|~|to)\s*{_EN_NUMBER})?"
"""'1', '1-3', '1 to 3', '1 and 2', '1, 2 and 3'; a bare '1, 3' is not a list (the 3 may count something else)."""
_NAMED = [
    # 圖3, 图3, [圖3], 圖片3, 图 3, 圖1-3, 圖1、2; not 地圖3 (map 3), 試圖3次 (tried 3 times), 構圖, 插圖, 藍圖,
    # nor 图3D, 图 4K
    re.compile(
        rf"(?<![地插構构藍蓝製制試试意企繪绘貼贴])[圖图](?:片|像)?\s*({_CJK_LIST})"
        r"(?![0-9A-Za-z°])"
    ),
    # 3号图, 3號圖
    re.compile(r"(?<![0-9])(\d{1,3})\s*[号號]\s*[圖图]"),
    # image 3, Image #3, image-3, image_3, image (3), images 1, 2 and 3, pictures 1-3, photo no. 3, input 3
    re.compile(
        rf"\b{_EN_IMAGE}[\s_#(-]*(?:no\.?\s*|number\s+)?"
        rf"({_EN_LIST})\b\)?(?!\s*(?:{_UNITS}))",
        re.IGNORECASE,
    ),
]
_ORDINAL = [
    # 第3張, 第三张圖, 第 2 幅, 第3个图; not 第3个人, 第一张专辑 (an album), 第二張海報 (a poster)
    re.compile(
        rf"第\s*({_CJK_NUMBER})\s*(?:[個个]\s*(?=[圖图照相])|[張张幅](?![^\s圖图照相片的中裡里裏上，,。、；;：:!！?？)）」』\"'0-9A-Za-z]))"
    ),
    # the 3rd image, 2nd photo; not the 3rd picture frame
    re.compile(r"\b(\d{1,3})(?:st|nd|rd|th)\s+(?:image|picture|photo|pic|img)\b(?!\s+frames?\b)", re.IGNORECASE),
    # the third image
    re.compile(rf"\b({'|'.join(_WORDS)})\s+(?:image|picture|photo|pic|img)\b(?!\s+frames?\b)", re.IGNORECASE),
]


def _value(token: str) -> int:
    token = token.strip().lower()
    if token.isdigit():
        return int(token)
    if token in _WORDS:
        return _WORDS.index(token) + 1
    if token in _CARDINALS:
        return _CARDINALS.index(token) + 1
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


def _numbers(group: str) -> list[int]:
    """'1, 2 and 3' -> [1, 2, 3]; '1-3' and '1 to 3' -> [1, 3] (a range names its ends)."""
    return [_value(token) for token in re.split(_SEPARATORS, group) if token.strip()]


def references(prompt: str, *, ordinals: bool = True) -> list[tuple[int, str]]:
    """Each image reference in ``prompt``, in order: (1-based image number, the text that says it)."""
    text = prompt.translate(_FULL_WIDTH)
    found: list[tuple[int, int, str]] = []
    for pattern in _NAMED + (_ORDINAL if ordinals else []):
        for match in pattern.finditer(text):
            for number in _numbers(match.group(1)):
                if number > 0:
                    found.append((match.start(), number, match.group(0).strip()))
    return [(number, said) for _, number, said in sorted(found)]
