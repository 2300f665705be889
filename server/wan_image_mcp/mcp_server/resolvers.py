"""What the SDK fills in before a tool's body runs: the client's roots, and a paid call checked and confirmed.

A paid tool (edit_image, submit_task, detect_segment) takes a ``Checked``: its resolvers validate the call
(``WanService.prepare``, after the roots), then ask the core whether it needs the user's yes (``WanService.vet``)
and, if so, return an ``Elicit`` with the core's question. The SDK carries it as the negotiated protocol wants:
a standalone ``elicitation/create`` in the middle of the call (2025-11-25, when the transport can send one), or an
``InputRequiredResult`` that the client answers by calling again (2026-07-28, stateless HTTP included). The body
hands the request and the reply to the core (``Checked.confirm`` is its ``Confirm``), which spends only on a yes.
Resolvers, not the body, must ask: a tool whose parameters use ``Resolve`` (the roots) has one multi-round channel.
A call's resolver takes the tool's declared arguments by name (``taking``, as the tool does) and builds the core's
``EditArgs`` or ``DetectArgs`` from them (``declarations.build``): no argument is copied by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, Elicit, ListRoots, Resolve
from mcp.types import ElicitResult, ListRootsResult
from pydantic import BaseModel, ConfigDict

from ..core.errors import InvalidRequest
from ..core.requests.declarations import DetectArgs, DryRun, EditArgs, arguments, build
from ..core.requests.detection import named_for_detect
from ..core.requests.spending import REUSED_YES, Answer, CannotAsk, Reply, SpendQuestion
from ..core.requests.validation import PreparedRequest
from ..core.tasks.service import WanService
from .appstate import AppState
from .boundary import taking, tool_errors

INPUT_REQUIRED_VERSION = "2026-07-28"
"""The first protocol whose server asks the client inside a result (``InputRequiredResult``), not by a request."""


def _service(ctx: Context[AppState]) -> WanService:
    return ctx.request_context.lifespan_context.service


# --- the client's roots, asked for only when a call needs them ----------------------------------------------


def _roots(ctx: Context[AppState], refs: list[str]) -> ListRoots | ListRootsResult:
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None or not _service(ctx).needs_roots(refs):
        return ListRootsResult(roots=[])
    return ListRoots()


def _roots_for_images(ctx: Context[AppState], images: list[str]) -> ListRoots | ListRootsResult:
    return _roots(ctx, images)


def _roots_for_image(ctx: Context[AppState], image: str) -> ListRoots | ListRootsResult:
    return _roots(ctx, [image])


RootsForImages = Annotated[ListRootsResult, Resolve(_roots_for_images)]
"""The client's roots when a call's images need them (one resolver, so the tools' signatures compare equal)."""
RootsForImage = Annotated[ListRootsResult, Resolve(_roots_for_image)]
NO_ROOTS = ListRootsResult(roots=[])


def uris(roots: ListRootsResult) -> list[str]:
    return [str(root.uri) for root in roots.roots]


# --- a paid call: validated, then confirmed when the core says it must be -------------------------------------


class Proceed(BaseModel):
    """The confirmation form: it has no fields; accepting it is the yes."""

    model_config = ConfigDict(title="Confirm paid images")


@dataclass(frozen=True)
class Prepared:
    """A call's arguments as the core takes them, and the request they validated into."""

    args: EditArgs
    request: PreparedRequest
    instruction: str | None = None
    dry_run: bool = False
    """Only try the call: nothing is sent, and no one is asked (the result says what would be)."""


@dataclass(frozen=True)
class Unasked:
    """No question was put: none was needed (``reply`` None), or the client cannot be asked (``reply`` says why)."""

    reply: CannotAsk | None = None


@dataclass(frozen=True)
class Checked:
    """What a paid tool's body gets: the validated call, the question the core asked (if any) and the reply."""

    prepared: Prepared
    question: SpendQuestion | None
    reply: Reply | None

    async def confirm(self, question: SpendQuestion) -> Reply:
        """The core's ``Confirm``: the reply to exactly this question, never a yes to another one."""
        if question == self.question and self.reply is not None:
            return self.reply
        return CannotAsk("the question was not put to the user")


def _modern(ctx: Context[AppState]) -> bool:
    return (ctx.protocol_version or "") >= INPUT_REQUIRED_VERSION  # versions are ISO dates


def _call_key(prepared: Prepared, question: SpendQuestion) -> str:
    return f"{question.text}\n{prepared.args!r}\n{prepared.instruction!r}"


def _answers_a_question(ctx: Context[AppState]) -> bool:
    """Whether this round carries the user's answer (the only elicitation a paid call makes is the question)."""
    return any(isinstance(response, ElicitResult) for response in (ctx.input_responses or {}).values())


def cannot_elicit(ctx: Context[AppState]) -> str | None:
    """Why the user cannot be asked in this call, or None when they can (form elicitation, and a way to send it)."""
    if not _modern(ctx) and not ctx.request_context.session.can_send_request:
        return (
            "this connection cannot carry a question to the client (stateless HTTP with protocol "
            f"{ctx.protocol_version}; from {INPUT_REQUIRED_VERSION} on it can)"
        )
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return "this client did not declare form elicitation, so the question cannot be shown to the user"
    return None


async def _prepare(
    ctx: Context[AppState],
    args: EditArgs,
    roots: ListRootsResult,
    instruction: str | None = None,
    named: Callable[[InvalidRequest], InvalidRequest] | None = None,
    *,
    dry_run: bool,
) -> Prepared:
    """``args`` validated into a request; its problems ``named`` by the tool's own arguments when given."""
    with tool_errors():
        try:
            return Prepared(args, await _service(ctx).prepare(args, roots=uris(roots)), instruction, dry_run)
        except InvalidRequest as exc:
            raise exc if named is None else named(exc) from None


async def _ask(ctx: Context[AppState], prepared: Prepared) -> Elicit[Proceed] | Unasked:
    if prepared.dry_run:  # a dry run asks no one and refuses nothing: its result says what a paid call would meet
        return Unasked()
    with tool_errors():  # over a limit or without a key: refused before the user is bothered
        question = await _service(ctx).vet(prepared.request)
    if question is None:
        return Unasked()
    if (why := cannot_elicit(ctx)) is not None:
        return Unasked(CannotAsk(why))
    if _modern(ctx) and not _answers_a_question(ctx):  # put in this round's InputRequiredResult
        ctx.request_context.lifespan_context.questions.asked(_call_key(prepared, question))
    return Elicit(question.text, Proceed)


def _check(ctx: Context[AppState], prepared: Prepared, answer: ElicitationResult[Proceed]) -> Checked:
    # the question _ask asked: same request, same answer (none in a dry run, which asks nothing)
    question = None if prepared.dry_run else _service(ctx).gate.vet(prepared.request)
    reply: Reply | None
    if isinstance(answer, AcceptedElicitation):
        data: Any = answer.data
        reply = data.reply if isinstance(data, Unasked) else Answer.ACCEPTED
    else:
        reply = Answer.DECLINED if answer.action == "decline" else Answer.CANCELLED
    if isinstance(reply, Answer) and question is not None and _modern(ctx):  # every answer closes its question
        fresh = ctx.request_context.lifespan_context.questions.answered(_call_key(prepared, question))
        reply = reply if fresh or reply is not Answer.ACCEPTED else CannotAsk(REUSED_YES)  # a yes sent again is no yes
    return Checked(prepared, question, reply)


@taking(arguments(EditArgs, DryRun))
async def _edit_call(ctx: Context[AppState], roots: RootsForImages, **call: Any) -> Prepared:
    call["color_palette"] = call["color_palette"] or None  # an empty palette over MCP asks for none, as leaving it out
    return await _prepare(ctx, build(EditArgs, call), roots, dry_run=build(DryRun, call).dry_run)


EditCall = Annotated[Prepared, Resolve(_edit_call)]


async def _edit_ask(ctx: Context[AppState], prepared: EditCall) -> Elicit[Proceed] | Unasked:
    return await _ask(ctx, prepared)


async def _edit_checked(
    ctx: Context[AppState], prepared: EditCall, answer: Annotated[ElicitationResult[Proceed], Resolve(_edit_ask)]
) -> Checked:
    return _check(ctx, prepared, answer)


CheckedEdit = Annotated[Checked, Resolve(_edit_checked)]
"""edit_image's and submit_task's call, validated and, above WAN_MCP_CONFIRM_ABOVE_IMAGES, put to the user."""


@taking(arguments(DetectArgs, DryRun))
async def _detect_call(ctx: Context[AppState], roots: RootsForImage, **call: Any) -> Prepared:
    with tool_errors():
        detect = build(DetectArgs, call)
        args = detect.edit_args()
    named = partial(named_for_detect, own_instruction=detect.instruction is not None)
    dry_run = build(DryRun, call).dry_run
    return await _prepare(ctx, args, roots, instruction=args.prompt, named=named, dry_run=dry_run)


DetectCall = Annotated[Prepared, Resolve(_detect_call)]


async def _detect_ask(ctx: Context[AppState], prepared: DetectCall) -> Elicit[Proceed] | Unasked:
    return await _ask(ctx, prepared)


async def _detect_checked(
    ctx: Context[AppState], prepared: DetectCall, answer: Annotated[ElicitationResult[Proceed], Resolve(_detect_ask)]
) -> Checked:
    return _check(ctx, prepared, answer)


CheckedDetect = Annotated[Checked, Resolve(_detect_checked)]
"""detect_segment's call, validated and confirmed like edit_image's."""
