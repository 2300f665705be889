"""The paid tools' arguments, declared once: listed in order, a call's values built back into the core's values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import pytest

from wan_image_mcp.core.requests.declarations import (
    REQUIRED,
    DetectArgs,
    EditArgs,
    EditParams,
    Waiting,
    arguments,
    build,
)
from wan_image_mcp.core.requests.validation import prepare_request
from wan_image_mcp.core.specs import DEFAULT_MODEL


def test_a_paid_calls_arguments_are_the_edit_args_with_its_params_beside_them_in_order() -> None:
    listed = arguments(EditArgs, Waiting)
    names = [a.name for a in listed]
    assert names == ["prompt", "images", "model", *(f.name for f in fields(EditParams)), "wait_seconds"]
    assert [a.name for a in listed if a.default is REQUIRED] == ["prompt"]
    assert {a.name: a.default for a in listed} | {"prompt": None} == {
        "prompt": None,
        "images": [],
        "model": DEFAULT_MODEL,
        **asdict(EditParams()),
        "wait_seconds": 50,
    }
    assert [a.name for a in arguments(DetectArgs)] == [
        *("image", "targets", "mode", "labels", "instruction", "model", "alpha_background")
    ]


def test_a_call_built_from_its_arguments_carries_every_value() -> None:
    values = {a.name: object() for a in arguments(EditArgs)}
    args = build(EditArgs, values)
    carried = {"prompt": args.prompt, "images": args.images, "model": args.model}
    carried |= {f.name: getattr(args.params, f.name) for f in fields(EditParams)}
    assert carried == values


def test_an_argument_a_call_leaves_out_keeps_its_declared_default() -> None:
    assert build(EditArgs, {"prompt": "a red fox"}) == EditArgs(prompt="a red fox", images=[], params=EditParams())


def test_detect_segment_becomes_an_edit_of_its_one_image_with_the_instruction() -> None:
    call = build(DetectArgs, {"image": "https://example.com/a.png", "targets": ["clock"], "model": "wan2.7-image"})
    args = call.edit_args()
    assert args == EditArgs(
        prompt="Detect the clock in the image, draw a box around it and label it “clock”.",
        images=["https://example.com/a.png"],
        model="wan2.7-image",
    )


@dataclass(frozen=True)
class WithAnOption(EditParams):
    """Parameters with one more optional argument that is not sent to DashScope (as issue 23's dry_run)."""

    rehearse: bool | None = None


@pytest.mark.parametrize("rehearse", [True, False])
def test_an_optional_argument_that_is_no_wire_parameter_is_neither_sent_nor_refused(rehearse: bool) -> None:
    params = WithAnOption(size="1K", rehearse=rehearse)
    request = prepare_request("wan2.7-image", "a red fox", [], params)
    assert "rehearse" not in request.parameters
    assert request.parameters == prepare_request("wan2.7-image", "a red fox", [], EditParams(size="1K")).parameters


def test_detect_segment_with_its_own_instruction_sends_it() -> None:
    own = "Box each bottle in red."
    call = build(DetectArgs, {"image": "a.png", "instruction": own})
    assert call.edit_args() == EditArgs(prompt=own, images=["a.png"])
