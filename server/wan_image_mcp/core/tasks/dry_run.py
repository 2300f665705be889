"""A dry run: a prepared request told as a paid call would send it, and what would stop that call; free.

Nothing here sends, uploads, queries or writes: the request was validated and its local images conformed exactly as
for a paid call (``WanService.prepare``); remote URLs were not fetched, as a paid call never fetches them. The
spending rules are asked as a paid call asks them, and what they would refuse is reported, not raised.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ...dashscope import build_body
from ..errors import SpendLimitExceeded
from ..images.references import PreparedImage, close_spools
from ..requests.spending import CONFIRM_SETTING, SpendGate, check_budget
from ..requests.validation import PreparedRequest
from ..results.dry_run import DRY_RUN_STATUS, SentInput, Stop
from ..results.outcomes import PaidResult, size_text
from .uploads import Carriage

PER_CALL_SETTING = "WAN_MCP_MAX_IMAGES_PER_CALL"
PER_DAY_SETTING = "WAN_MCP_MAX_IMAGES_PER_DAY"
KEY_SETTING = "DASHSCOPE_API_KEY"


@dataclasses.dataclass(frozen=True)
class Spending:
    """What decides whether a paid call may go ahead: the server's rules, the daily limit with the paid images
    requested in the last 24 h, and why the API cannot be called at all (no key), if so."""

    gate: SpendGate
    per_day: int | None
    used: int
    no_key: str | None = None
    cannot_ask: str | None = None
    """Why the user could not be asked to confirm in this call ("this client did not declare ..."), if so."""


def rehearse(
    request: PreparedRequest,
    spending: Spending,
    carriage: Callable[[PreparedImage], Carriage],
    *,
    instruction: str | None = None,
) -> PaidResult:
    """``request`` as a dry run's result: paid images, output size, each input as ``carriage`` would send it, the
    wire parameters (no image data) and what would stop the paid call. Closes the request's spools: nothing of
    it is sent."""
    try:
        wire = build_body(dataclasses.replace(request, images=()).to_wire())
        return PaidResult(
            status=DRY_RUN_STATUS,
            dry_run=True,
            model=request.model,
            paid_images=request.paid_images,
            output_size=size_text(request.expected_size),
            inputs=[_sent(image, carriage(image)) for image in request.images],
            parameters=wire["parameters"],
            adjustments=list(request.adjustments),
            instruction=instruction,
            would_stop=_stops(request, spending),
        )
    finally:
        close_spools(request.images)


def _sent(image: PreparedImage, how: Carriage) -> SentInput:
    return SentInput(
        index=image.index,
        source=image.source,
        width=image.width,
        height=image.height,
        format=image.format,
        bytes=image.bytes,
        sent_as=how,
        adjustments=list(image.adjustments),
    )


def _stops(request: PreparedRequest, spending: Spending) -> list[Stop]:
    """Each rule that would refuse the paid call, in the order a paid call meets them, then the confirmation it
    would ask for (unless already refused over the per-call limit, which is met first)."""
    stops: list[Stop] = []
    if spending.no_key is not None:
        stops.append(Stop(setting=KEY_SETTING, effect="refused", message=spending.no_key))
    gate = spending.gate
    try:
        question = gate.vet(request)
    except SpendLimitExceeded as exc:
        stops.append(Stop(setting=PER_CALL_SETTING, effect="refused", limit=gate.per_call, message=str(exc)))
        question = None
    try:
        check_budget(request.paid_images, spending.used, spending.per_day)
    except SpendLimitExceeded as exc:
        day = Stop(
            setting=PER_DAY_SETTING, effect="refused", limit=spending.per_day, used=spending.used, message=str(exc)
        )
        stops.append(day)
    if question is not None and spending.cannot_ask is not None:
        message = f"it needs the user's confirmation above {question.threshold} image(s), but {spending.cannot_ask}"
        stops.append(Stop(setting=CONFIRM_SETTING, effect="refused", limit=question.threshold, message=message))
    elif question is not None:
        message = f"the user would be asked: {question.text}"
        stops.append(Stop(setting=CONFIRM_SETTING, effect="asks the user", limit=question.threshold, message=message))
    return stops
