"""Instructions for detection and segmentation, written the way Model Studio's image-editing examples are:

    檢測圖片中的膝上型電腦和鬧鐘,畫框並標註“laptop”和“clock”
    分割圖片中的玻璃杯

in the language of the targets: Chinese (traditional like those examples, or simplified when the targets are
written so) when any target has CJK characters, English otherwise.

A target is written as the caller quantified it. In English a bare singular gets "the" ("bottle" -> "the
bottle": one), a bare plural "all the" ("bottles" -> "all the bottles": each one), and a target that starts
with a determiner or a quantifier ("every bottle", "all bottles", "two cups", "my dog", "a clock") is kept as
written; a single target asks for "a box around it" only when it is one thing. Chinese has no articles: a target
is kept as written (所有瓶子, 每個杯子), the template adds no quantifier of its own. A box's default label is the
target without its quantifier ("every bottle" -> “bottle”, 兩個杯子 -> “杯子”). What the template says already
is left out of a target ("cups in the image", 圖片中的杯子), so it is not said twice.
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


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NUMBERS = _words("two three four five six seven eight nine ten eleven twelve twenty dozen")
_MANY = _words("every each all both these those several many few most") | _NUMBERS
"""Determiners and quantifiers that ask for more than one thing (every and each: one box per instance)."""
_ONE = _words("a an one this that another")
_EITHER = _words("the some any no my your his her its our their")
"""Determiners whose number is the noun's: "the bottle", "the bottles"."""
_PRONOUNS = _words("everything everyone everybody anything anyone something someone")
"""Words that take no article and are their own label ("everything", "something red")."""
_IRREGULAR_PLURALS = _words("people children men women mice feet teeth geese oxen dice sheep fish")
_SINGULAR_IN_S = _words("lens gas atlas canvas bus series species chassis news")
_BOUNDARY = _words("of on in at with near under behind beside by from for to that which who above below")
"""Words after which a target's head noun has been said ("cups on the table": cups)."""

_ZH_CLASSIFIERS = "個个隻只張张件條条輛辆本顆颗架艘盞盏副雙双對对"
"""Measure words that start no common noun, so 這個 in 這個杯子 is a quantifier; 杯, 瓶, 頭, 台, 把 start nouns
(杯子, 瓶子, 頭盔, 台燈, 把手), and count as measure words only after a number (兩瓶水)."""
_ZH_QUANTIFIER = re.compile(
    "^(?:所有|全部|一切|任何|這些|这些|那些"
    f"|(?:每一?|這|这|那|各)[{_ZH_CLASSIFIERS}]"
    f"|[一二兩两三四五六七八九十百幾几0-9]+[{_ZH_CLASSIFIERS}杯瓶頭头台把位名塊块片支枝朵棵])的?"
)
"""A quantifier a Chinese target may start with (所有, 每個/每个, 兩個/两个, 這些, 三隻…), with its 的."""


_IN_THE_IMAGE = re.compile(
    r"^(?:圖片|图片|圖像|图像|照片|圖|图)(?:中|裡|里|內|内)的?|\s+in (?:the|this) (?:image|picture|photo)$",
    re.IGNORECASE,
)
"""What the templates say already: 圖片中的杯子 would read 檢測圖片中的圖片中的杯子."""


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


def _number(word: str) -> str | None:
    """'one', 'many' or 'either' for a determiner or a count ("every", "2", "the"); None for any other word."""
    if word in _MANY or (word.isdigit() and int(word) != 1):
        return "many"
    if word in _ONE or word.isdigit():
        return "one"
    return "either" if word in _EITHER else None


def _plural_noun(words: Sequence[str]) -> bool:
    """Whether the head noun of ``words`` (the last word before "of", "on", "that"…) looks plural: an irregular
    plural, or a word in -s that is not one in -ss, -us, -is or -'s, nor a singular like "lens"."""
    head = words[0] if words else ""
    for word in words:
        if word in _BOUNDARY and head:
            break
        head = word
    if head in _IRREGULAR_PLURALS:
        return True
    singular = head.endswith(("ss", "us", "is", "'s", "’s")) or head in _SINGULAR_IN_S
    return len(head) > 2 and head.endswith("s") and not singular


def _english(target: str) -> tuple[str, bool, str]:
    """A target as the instruction writes it, whether it is more than one thing, and its default label."""
    words = target.split()
    lowered = [word.lower() for word in words]
    if lowered[0] in _PRONOUNS:
        return " ".join([lowered[0], *words[1:]]), lowered[0].startswith("every"), target
    number = _number(lowered[0])
    if number is None and lowered[0].endswith(("'s", "’s")):  # "John's car": kept, and kept as its label
        return target, _plural_noun(lowered[1:]), target
    if number is None:
        many = _plural_noun(lowered)
        return f"{'all the' if many else 'the'} {target}", many, target
    rest = 1
    while rest < len(words) - 1 and (_number(lowered[rest]) is not None or lowered[rest] == "of"):
        rest += 1  # "all of the bottles", "each of my cups"
    many = number == "many" or (number == "either" and _plural_noun(lowered[rest:]))
    subject = " ".join([lowered[0], *words[1:]])  # "Every bottle" mid-sentence: "every bottle"
    return subject, many, " ".join(words[rest:]) or target  # "every" alone keeps itself as its label


def _chinese_label(target: str) -> str:
    """A Chinese target without the quantifier it starts with (所有瓶子 -> 瓶子), or as it is when that is all."""
    bare = _ZH_QUANTIFIER.sub("", target, count=1)
    return bare or target


def build_instruction(targets: Sequence[str], mode: Mode = "detect", labels: Sequence[str] | None = None) -> str:
    problems: list[Problem] = []
    cleaned = [_IN_THE_IMAGE.sub("", t.strip()) or t.strip() for t in targets]
    if not cleaned or not all(cleaned):
        problems.append(Problem("targets", "give at least one non-empty thing to find, e.g. ['laptop', 'clock']"))
    if labels is not None and len(labels) != len(targets):
        problems.append(Problem("labels", f"{len(labels)} labels for {len(targets)} targets; give one per target"))
    if problems:
        raise InvalidRequest(problems)
    language = language_of(targets)  # as written: 图中的 is simplified, 杯子 alone could be either
    template = _TEMPLATES[language]
    many = len(cleaned) > 1
    if language == "en":
        written = [_english(target) for target in cleaned]
        subjects = [subject for subject, _, _ in written]
        defaults = [label for _, _, label in written]
        many = many or written[0][1]
    else:
        subjects, defaults = cleaned, [_chinese_label(target) for target in cleaned]
    quoted = [f"“{label.strip()}”" for label in (labels or defaults)]
    form = "detect_one" if mode == "detect" and not many and "detect_one" in template else mode
    return template[form].format(targets=_join(subjects, language), labels=_join(quoted, language))


def detect_instruction(
    targets: Sequence[str] | None,
    mode: Mode = "detect",
    labels: Sequence[str] | None = None,
    instruction: str | None = None,
) -> str:
    """What detect_segment sends: the caller's own ``instruction`` as written, or one written for ``targets``
    (``build_instruction``). Raises InvalidRequest when neither is given, both are, labels come with an own
    instruction, or the instruction is blank."""
    if instruction is None:
        if targets is None:
            give = "give targets (what to find, e.g. ['every bottle', 'cup']) or instruction (your own words)"
            raise InvalidRequest([Problem("targets", give)])
        return build_instruction(targets, mode, labels)
    problems: list[Problem] = []
    if targets is not None:
        problems.append(Problem("targets", "give targets or instruction, not both: an instruction is sent as written"))
    if labels is not None:
        problems.append(Problem("labels", "labels go with targets; with instruction, write the labels into it"))
    if not instruction.strip():
        problems.append(Problem("instruction", "must not be empty"))
    if problems:
        raise InvalidRequest(problems)
    return instruction


def named_for_detect(exc: InvalidRequest, *, own_instruction: bool) -> InvalidRequest:
    """The problems of detect_segment's edit named by detect_segment's own arguments: its one ``image`` (not
    ``images``), and the instruction it sent as ``instruction`` when the caller wrote it, else as ``targets``."""
    prompt = "instruction" if own_instruction else "targets"
    renamed = [
        Problem("image", p.message)
        if p.argument == "images"
        else Problem(prompt, p.message, p.image)
        if p.argument == "prompt"
        else p
        for p in exc.problems
    ]
    return InvalidRequest(renamed)
