"""A dry run in the core: a prepared request told as a paid call would send it, its stops reported, not raised."""

from __future__ import annotations

from tests.support.helpers import ImageFactory
from wan_image_mcp.core.requests.declarations import EditParams
from wan_image_mcp.core.requests.spending import SpendGate
from wan_image_mcp.core.requests.validation import prepare_request
from wan_image_mcp.core.results.outcomes import summary_text
from wan_image_mcp.core.tasks.dry_run import Spending, rehearse

URL = "https://example.com/street.jpg"


def test_a_dry_run_reports_every_stop_with_its_numbers_instead_of_raising() -> None:
    request = prepare_request("wan2.7-image", "a red fox", [], EditParams(n=3))
    spending = Spending(
        SpendGate(per_call=2, confirm_above=1), per_day=10, used=9, no_key="DASHSCOPE_API_KEY is not set"
    )
    result = rehearse(request, spending, lambda _: "url")
    assert [(s.setting, s.effect, s.limit, s.used) for s in result.would_stop or []] == [
        ("DASHSCOPE_API_KEY", "refused", None, None),
        ("WAN_MCP_MAX_IMAGES_PER_CALL", "refused", 2, None),
        ("WAN_MCP_MAX_IMAGES_PER_DAY", "refused", 10, 9),
    ]  # the confirmation is not reached: the per-call limit refuses first, as in a paid call
    assert "3 paid image(s); 9 were requested in the last 24 h and WAN_MCP_MAX_IMAGES_PER_DAY is 10" in summary_text(
        result
    )


def test_a_call_within_the_limits_says_that_nothing_would_stop_it() -> None:
    request = prepare_request("wan2.7-image", "a red fox", [], EditParams(n=2))
    result = rehearse(request, Spending(SpendGate(per_call=4), per_day=None, used=0), lambda _: "url")
    assert result.would_stop == []
    assert summary_text(result).splitlines()[-1] == "Nothing would stop it: call again without dry_run to run it."


def test_the_parameters_are_the_wire_objects_and_a_remote_last_image_leaves_the_size_open(
    make_image: ImageFactory,
) -> None:
    photo = make_image("photo.png", (1000, 800))
    params = EditParams(negative_prompt="blur", seed=7)
    request = prepare_request("wan2.6-image", "make it dusk", [str(photo), URL], params)
    result = rehearse(request, Spending(SpendGate(), per_day=None, used=0), lambda image: "inline")
    assert result.parameters == {"n": 1, "watermark": False, "seed": 7, "negative_prompt": "blur"}  # messages body
    assert result.output_size is None
    assert [(i.index, i.width, i.sent_as) for i in result.inputs or []] == [(1, 1000, "inline"), (2, None, "inline")]
    text = summary_text(result)
    assert text.startswith("Dry run: nothing was sent and nothing is billed.\n")
    assert "Output size: the aspect ratio of image 2, a URL not read here; give size as W*H or a ratio" in text
    prompt_protocol = prepare_request("wan2.5-i2i-preview", "make it dusk", [URL], params)
    wire = rehearse(prompt_protocol, Spending(SpendGate(), per_day=None, used=0), lambda _: "url").parameters
    assert wire == {"n": 1, "watermark": False, "seed": 7}  # its negative prompt travels in input, not here
