"""MCP prompts for the use cases of Model Studio's image-editing page. Each takes plain string arguments and returns a ready instruction,
written in the language the user wrote in (Chinese the way that page's examples are, or English), and the
tool call to make with it.

Image arguments take one reference or several separated by commas or new lines; their order is 圖1, 圖2….
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server import MCPServer
from pydantic import Field

from ..core.requests.detection import build_instruction, language_of
from ..core.requests.prompt_images import references
from ..core.specs import DEFAULT_MODEL


def _arg(description: str) -> Any:
    return Field(description=description)


Image = Annotated[str, _arg("One image: a local path, file://, http(s):// or data: URL.")]
Images = Annotated[str, _arg("Image references in order (image 1 first), separated by commas or new lines.")]


def _refs(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[\n,]+", text) if part.strip()]


def _zh(*texts: str) -> bool:
    return language_of(list(texts)) != "en"


def _call(tool: str, arguments: dict[str, Any], instruction: str, *notes: str) -> str:
    lines = ["Instruction (send it as written; Chinese and English both work):", instruction, ""]
    lines += [note for note in notes if note]
    lines += ["Suggested call:", f"{tool}({json.dumps(arguments, ensure_ascii=False)})"]
    return "\n".join(lines)


def fuse_images(
    images: Images,
    goal: Annotated[str, _arg("What the fused image shows, e.g. 'the boy of image 1 walks the dog of image 2'.")],
) -> str:
    """Fuse several images into one (up to 9 with wan2.7), e.g. the boy of image 1 and the dog of image 2."""
    refs = _refs(images)
    instruction = (
        goal
        if references(goal)  # the goal already says which image is which (validation's own reading)
        else (
            f"將{''.join(f'圖{i}' for i in range(1, len(refs) + 1))}融合：{goal}"
            if _zh(goal)
            else f"Combine {', '.join(f'image {i}' for i in range(1, len(refs) + 1))}: {goal}"
        )
    )
    return _call(
        "edit_image",
        {"prompt": instruction, "images": refs, "model": DEFAULT_MODEL},
        instruction,
        "Refer to the inputs by their order: the first reference is image 1 (圖1).",
    )


def portrait_series(
    reference: Annotated[str, _arg("A photo of the person: a local path or URL.")],
    styles: Annotated[str, _arg("The styles, one per image, separated by commas or new lines.")],
) -> str:
    """Keep one person's face and look across a series of styles (subject consistency), one image per style."""
    looks = _refs(styles)
    if _zh(styles):
        instruction = "人物形象為參考圖1，保持臉部特徵和髮型不變，依序產生以下風格的寫真：" + "；".join(looks)
    else:
        instruction = (
            "Keep the face and hair of the person in image 1 exactly; make a portrait series, one per style: "
            + "; ".join(looks)
        )
    arguments = {"prompt": instruction, "images": [reference], "enable_sequential": True, "n": len(looks), "size": "2K"}
    return _call(
        "edit_image", arguments, instruction, "enable_sequential makes one coherent set; n is its maximum size."
    )


def edit_in_boxes(
    images: Images,
    change: Annotated[str, _arg("What to change inside the boxes, e.g. 'put the clock of box 1 into box 2'.")],
) -> str:
    """Edit exactly inside boxes you draw (wan2.7 bbox_list), e.g. replace what box 1 holds with what box 2 holds."""
    refs = _refs(images)
    instruction = (
        change
        if _zh(change) or "box" in change.lower()
        else f"{change}, only inside the boxed areas; keep everything else unchanged"
    )
    arguments: dict[str, Any] = {"prompt": instruction, "images": refs, "bbox_list": [[] for _ in refs]}
    return _call(
        "edit_image",
        arguments,
        instruction,
        "First call inspect_image on the images: its preview has a pixel grid, so you can read coordinates. Then fill "
        "bbox_list with up to 2 boxes [x1, y1, x2, y2] per image, in that image's own pixels; [] for an image without boxes.",
    )


_SHOTS = ("key visual", "material close-up", "exploded view", "in-use scene", "still life", "colourways")
_SHOTS_ZH = ("主視覺", "材質特寫", "爆炸視圖", "佩戴或使用情境", "靜物", "配色方案")


def product_visual_set(
    product: Annotated[str, _arg("The product, described in a sentence or two.")],
    shots: Annotated[
        str,
        _arg(
            "The shots to make, one per image, separated by commas or new lines (default: the first 4 of key "
            "visual, material close-up, exploded view, in-use scene, still life, colourways; a number takes that "
            "many of them). At most 12."
        ),
    ] = "",
) -> str:
    """A coherent product visual set (key visual, macro details, exploded view, lifestyle…) from one description."""
    zh = _zh(product, shots)
    defaults = _SHOTS_ZH if zh else _SHOTS
    listed = _refs(shots.replace("、", ",").replace("，", ","))[:12]
    if len(listed) <= 1 and re.fullmatch(r"\s*[-+]?\d+\s*", shots or "4"):  # a number: that many of the defaults
        listed = list(defaults[: max(1, min(int(shots or 4), len(defaults)))])
    listed = listed or list(defaults[:4])
    count = len(listed)
    if zh:
        instruction = f"為以下產品產生一套{count}張風格統一的商業視覺圖，依序為：{'、'.join(listed)}。產品：{product}"
    else:
        instruction = f"A coherent set of {count} commercial visuals for this product, in order: {'; '.join(listed)}. Product: {product}"
    arguments = {"prompt": instruction, "enable_sequential": True, "n": count, "size": "2K"}
    return _call(
        "edit_image", arguments, instruction, f"Each image is billed; n={count} is the most the set will contain."
    )


def edit_text_in_image(
    image: Image,
    old_text: Annotated[str, _arg("The text as it is now; several pieces separated by commas.")],
    new_text: Annotated[str, _arg("The text to write instead, in the same order as old_text.")],
) -> str:
    """Change the text written in an image, keeping its style: e.g. 18 → 29, JUNE → SEPTEMBER."""
    olds, news = _refs(old_text), _refs(new_text)
    pairs = list(zip(olds, news, strict=False))
    if _zh(old_text, new_text):
        instruction = "，".join(f"把{old}改成{new}" for old, new in pairs)
    else:
        instruction = (
            "; ".join(f'change the text "{old}" to "{new}"' for old, new in pairs) + ", keeping font, colour and layout"
        )
    return _call("edit_image", {"prompt": instruction, "images": [image]}, instruction)


def change_camera_view(
    image: Image, view: Annotated[str, _arg("The new camera or view, e.g. 'a fisheye lens' or 'seen from above'.")]
) -> str:
    """Re-shoot an image from another camera or view: a fisheye lens, a top view, front/side/back views of a character."""
    instruction = f"保持主體特徵不變，{view}" if _zh(view) else f"Keep the subject's features unchanged; {view}"
    return _call(
        "edit_image",
        {"prompt": instruction, "images": [image]},
        instruction,
        "For several views at once (front, side, back), add enable_sequential with n = the number of views.",
    )


def extract_elements(
    image: Image, items: Annotated[str, _arg("What to extract (default: the outfit's pieces).")] = ""
) -> str:
    """Extract items from a photo and lay them out flat on a pure white background (an e-commerce flat lay)."""
    if _zh(items) or not items:
        what = items or "穿搭單品"
        instruction = (
            f"從上傳照片中提取{what}，將它們以平鋪展示的方式排列在純白背景上，保持真實細節與材質質感，時尚電商風格"
        )
    else:
        instruction = f"Extract {items} from the photo and lay them out flat on a pure white background, keeping real details and textures, e-commerce style"
    return _call("edit_image", {"prompt": instruction, "images": [image]}, instruction)


def remove_object(
    image: Image, target: Annotated[str, _arg("What to remove, e.g. 'watermark' or 'the power lines'.")] = "watermark"
) -> str:
    """Remove a watermark or an object from an image and fill the area naturally."""
    if _zh(target):
        instruction = (
            f"去除全圖{target}" if "浮水印" in target or "水印" in target else f"去除圖中的{target}，自然補全背景"
        )
    else:
        instruction = f"Remove {_every(target)} from the whole image and fill the area naturally"
    return _call("edit_image", {"prompt": instruction, "images": [image]}, instruction)


def _every(target: str) -> str:
    """'watermark' -> 'every watermark'; 'the watermark', 'all logos', 'my name' stay as they are."""
    determiners = ("the ", "a ", "an ", "all ", "every ", "each ", "any ", "my ", "his ", "her ", "their ", "its ")
    return target if target.lower().startswith(determiners) else f"every {target}"


def detect_or_segment(
    image: Image,
    targets: Annotated[str, _arg("What to find, separated by commas, e.g. 'laptop, clock'.")],
    mode: Annotated[str, _arg("detect (labelled boxes, the default) or segment.")] = "detect",
    labels: Annotated[
        str, _arg("The text of each box, one per target, separated by commas (default: the targets).")
    ] = "",
) -> str:
    """Detect objects with labelled boxes, or segment them (the detect_segment tool writes the instruction)."""
    kind = "segment" if mode.strip().lower() == "segment" else "detect"
    names = _refs(targets)
    tags = _refs(labels) or None
    instruction = build_instruction(names, kind, tags if tags and len(tags) == len(names) else None)
    arguments: dict[str, Any] = {"image": image, "targets": names, "mode": kind}
    if tags and len(tags) == len(names):
        arguments["labels"] = tags
    return _call("detect_segment", arguments, instruction)


PROMPTS: tuple[tuple[Callable[..., str], str], ...] = (
    (fuse_images, "Fuse several images"),
    (portrait_series, "Portrait series, same person"),
    (edit_in_boxes, "Edit inside boxes"),
    (product_visual_set, "Product visual set"),
    (edit_text_in_image, "Edit text in an image"),
    (change_camera_view, "Change the camera or view"),
    (extract_elements, "Extract items onto white"),
    (remove_object, "Remove a watermark or object"),
    (detect_or_segment, "Detect or segment objects"),
)


def register(server: MCPServer[Any]) -> None:
    for fn, title in PROMPTS:
        server.prompt(title=title)(fn)
