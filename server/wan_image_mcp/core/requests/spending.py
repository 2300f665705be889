"""What a call may spend: the per-call limit, the daily budget, and the user's confirmation above a threshold.

``SpendGate.vet`` runs after validation and before anything is sent: it refuses a call over the per-call limit
and says which question to ask when the call requests more paid images than ``WAN_MCP_CONFIRM_ABOVE_IMAGES``.
``SpendGate.clear`` asks it through ``Confirm``, a plain async callback the caller provides (the MCP adapter
asks the user through elicitation), and raises ``NotConfirmed`` unless the answer is yes. Free of MCP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from ..errors import NotConfirmed, SpendLimitExceeded
from ..journal import DAY, Journal, NewTask
from .validation import PreparedRequest

CONFIRM_SETTING = "WAN_MCP_CONFIRM_ABOVE_IMAGES"


@dataclass(frozen=True)
class SpendQuestion:
    """What the user is asked before a call above the threshold: how many paid images, with which model."""

    images: int
    model: str
    threshold: int

    @property
    def text(self) -> str:
        return (
            f"This will generate {self.images} paid image{'s' if self.images != 1 else ''} with {self.model}. Proceed?"
        )


class Answer(StrEnum):
    ACCEPTED = "accept"
    DECLINED = "decline"
    CANCELLED = "cancel"


@dataclass(frozen=True)
class CannotAsk:
    """The question could not be put to the user; ``why`` says so in a clause ("this client cannot ...")."""

    why: str


Reply = Answer | CannotAsk
Confirm = Callable[[SpendQuestion], Awaitable[Reply]]
"""Put a question to the user and return the answer; the core never spends on anything but ACCEPTED."""


REUSED_YES = "this yes was already used by an earlier call (one answer approves one call); call again to be asked again"
MAX_OPEN_QUESTIONS = 256
"""Questions awaiting their answer remembered per server, oldest forgotten first."""


class OpenQuestions:
    """Questions put to the user and not answered yet, by the call they are about, so that one yes approves one
    call: a client that sends the same answer (and its state) again, or twice at once, is asked again."""

    def __init__(self, limit: int = MAX_OPEN_QUESTIONS) -> None:
        self._limit = limit
        self._open: dict[str, int] = {}  # insertion order: the oldest first

    def asked(self, call: str) -> None:
        self._open[call] = self._open.pop(call, 0) + 1
        while len(self._open) > self._limit:
            del self._open[next(iter(self._open))]

    def answered(self, call: str) -> bool:
        """Take one open question about ``call``; False when none is open (its answer was used already)."""
        left = self._open.pop(call, 0) - 1
        if left > 0:
            self._open[call] = left
        return left >= 0


def _not_confirmed(question: SpendQuestion, reply: Reply) -> NotConfirmed:
    """The refusal of a call above WAN_MCP_CONFIRM_ABOVE_IMAGES answered with ``reply``: what was asked, what
    the user said (or why they could not be asked), and how to go on."""
    asked = f"{question.images} paid image(s) with {question.model}"
    fewer = f"ask for at most {question.threshold} image(s) (n / max_images)"
    if isinstance(reply, CannotAsk):
        return NotConfirmed(
            f"This call would generate {asked}, more than {CONFIRM_SETTING}={question.threshold}, so it needs "
            f"the user's confirmation, but {reply.why}. Nothing was sent. To go on, {fewer}, use a client "
            f"that supports form elicitation, or raise or unset {CONFIRM_SETTING} in the server's environment."
        )
    done = "declined" if reply is Answer.DECLINED else "cancelled (dismissed)"
    return NotConfirmed(
        f"The user {done} generating {asked}. Nothing was sent and nothing is billed. Do not call again "
        f"unless the user asks; {fewer} to go ahead without the question."
    )


@dataclass(frozen=True)
class SpendGate:
    """The spending rules of one server: ``per_call`` and ``confirm_above`` are the settings (None: none)."""

    per_call: int | None = None
    confirm_above: int | None = None

    def vet(self, request: PreparedRequest) -> SpendQuestion | None:
        """Refuse a call over the per-call limit; the question to ask when it is above the threshold."""
        paid = request.paid_images
        if self.per_call is not None and paid > self.per_call:
            raise SpendLimitExceeded(
                f"This call would request {paid} paid images; WAN_MCP_MAX_IMAGES_PER_CALL is "
                f"{self.per_call}. Nothing was sent. Ask for fewer (n / max_images) and split the set "
                "over several calls, or raise WAN_MCP_MAX_IMAGES_PER_CALL in the server's environment."
            )
        if self.confirm_above is None or paid <= self.confirm_above:
            return None
        return SpendQuestion(images=paid, model=request.model, threshold=self.confirm_above)

    async def clear(self, request: PreparedRequest, confirm: Confirm | None) -> None:
        """Vet ``request`` and, above the threshold, ask; raises unless the answer is yes (no ``confirm``: no)."""
        question = self.vet(request)
        if question is None:
            return
        reply = await confirm(question) if confirm is not None else CannotAsk("there is no way to ask the user")
        if reply is not Answer.ACCEPTED:
            raise _not_confirmed(question, reply)


def check_budget(asked: int, used: int, per_day: int | None) -> None:
    """Raise when ``asked`` more paid images on top of the ``used`` of the last 24 h would exceed ``per_day``."""
    if per_day is not None and used + asked > per_day:
        raise SpendLimitExceeded(
            f"This call would request {asked} paid image(s); {used} were requested in the last 24 h and "
            f"WAN_MCP_MAX_IMAGES_PER_DAY is {per_day}. Nothing was sent. To allow more, raise "
            "WAN_MCP_MAX_IMAGES_PER_DAY in the server's environment."
        )


def begin_within_budget(journal: Journal, task: NewTask, per_day: int | None) -> int:
    """Check the daily budget (the 24 h before the task's creation) and record the task in one transaction that
    every other budget check on the journal waits for (``Journal.budgeted``), so concurrent submissions, through
    one server or several on a shared journal, cannot both slip under the limit."""
    if per_day is None:
        return journal.begin(task)
    with journal.budgeted():
        check_budget(task.requested_images or 0, journal.requested_since(task.created_at - DAY), per_day)
        return journal.begin(task)
