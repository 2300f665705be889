"""Instructions for detection and segmentation, written the way Model Studio's image-editing examples are:

    檢測圖片中的膝上型電腦和鬧鐘,畫框並標註“laptop”和“clock”
    分割圖片中的玻璃杯

in the language of the targets: Chinese (traditional like those examples, or simplified when the targets are
written so) when any target has CJK characters, English otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from ..errors import InvalidRequest, Problem

Mode = Literal["detect", "segment"]
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

_TEMPLATES = {
    "zh-Hant": {"detect": "檢測圖片中的{targets}，畫框並標註{labels}", "segment": "分割圖片中的{targets}", "and": "和"},
    "zh-Hans": {"detect": "检测图片中的{targets}，画框并标注{labels}", "segment": "分割图片中的{targets}", "and": "和"},
    "en": {
        "detect": "Detect {targets} in the image, draw a box around each and label them {labels}.",
        "detect_one": "Detect {targets} in the image, draw a box around it and label it {labels}.",
        "segment": "Segment {targets} in the image.",
        "and": " and ",
    },
}


def language_of(targets: Sequence[str]) -> str:
    """'en', 'zh-Hans' or 'zh-Hant' for a list of texts."""
    text = "".join(targets)
    if not _CJK.search(text):
        return "en"
    try:
        text.encode("big5")
    except UnicodeEncodeError:
        return "zh-Hans"  # characters only simplified Chinese has
    return "zh-Hant"


def _join(items: Sequence[str], language: str) -> str:
    conjunction = _TEMPLATES[language]["and"]
    if len(items) == 1:
        return items[0]
    separator = "、" if language != "en" else ", "
    return separator.join(items[:-1]) + conjunction + items[-1]


def build_instruction(targets: Sequence[str], mode: Mode = "detect", labels: Sequence[str] | None = None) -> str:
    problems: list[Problem] = []
    cleaned = [t.strip() for t in targets]
    if not cleaned or not all(cleaned):
        problems.append(Problem("targets", "give at least one non-empty thing to find, e.g. ['laptop', 'clock']"))
    if labels is not None and len(labels) != len(targets):
        problems.append(Problem("labels", f"{len(labels)} labels for {len(targets)} targets; give one per target"))
    if problems:
        raise InvalidRequest(problems)
    language = language_of(cleaned)
    template = _TEMPLATES[language]
    if language == "en":
        subjects = [t if t.lower().startswith(("the ", "a ", "an ", "all ")) else f"the {t}" for t in cleaned]
    else:
        subjects = cleaned
    quoted = [f"“{label.strip()}”" for label in (labels or cleaned)]
    form = "detect_one" if mode == "detect" and len(cleaned) == 1 and "detect_one" in template else mode
    return template[form].format(targets=_join(subjects, language), labels=_join(quoted, language))
