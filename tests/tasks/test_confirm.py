"""Confirmation before spending (WAN_MCP_CONFIRM_ABOVE_IMAGES): over the real protocol, with the SDK's Client
answering the form elicitation, in both ways the protocol carries it (a request mid-call on 2025-11-25, an
InputRequiredResult answered by calling again on 2026-07-28)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import (
    ElicitRequestParams,
    ElicitResult,
    InputRequiredResult,
    InputResponses,
    ListRootsResult,
    Root,
)
from pydantic import FileUrl

from tests.support.helpers import ImageFactory, text
from wan_image_mcp.core.errors import ConfigurationError
from wan_image_mcp.emulator import EmulatorState
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

pytestmark = pytest.mark.anyio
PROTOCOLS = ["legacy", "auto"]
"""legacy: 2025-11-25, the question is an elicitation/create request; auto: 2026-07-28, an InputRequiredResult."""


class User:
    """The person behind the client: answers every question with ``action`` and remembers what was asked."""

    def __init__(self, action: str = "accept") -> None:
        self.action = action
        self.asked: list[str] = []

    async def __call__(self, context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        del context
        self.asked.append(params.message)
        return ElicitResult(action=self.action, content={} if self.action == "accept" else None)  # type: ignore[arg-type]


Connect = Callable[..., Client]


@pytest.fixture(params=PROTOCOLS)
def connect(request: pytest.FixtureRequest, http: httpx2.AsyncClient, server_settings: Settings) -> Connect:
    """``connect(user, confirm_above=2, **settings)``: a client on a server asking above that many images."""

    def make(user: User | None, confirm_above: int | None = 2, **settings: Any) -> Client:
        configured = server_settings.model_copy(update=dict(confirm_above_images=confirm_above, **settings))
        return Client(build_app(configured, http), mode=request.param, elicitation_callback=user)

    return make


def submitted(emulator: EmulatorState) -> list[str]:
    return [r.path for r in emulator.requests if r.method == "POST"]


async def call(client: Client, tool: str = "edit_image", **arguments: Any) -> Any:
    async with client:
        return await client.call_tool(tool, {"prompt": "four seasons", "size": "1K", **arguments})


async def test_a_call_above_the_threshold_asks_and_goes_ahead_when_the_user_accepts(
    connect: Connect, emulator: EmulatorState
) -> None:
    user = User("accept")
    result = await call(connect(user), n=4, enable_sequential=True)
    assert user.asked == ["This will generate 4 paid images with wan2.7-image-pro. Proceed?"]
    assert not result.is_error, text(result)
    assert result.structured_content["requested_images"] == 4
    assert len(submitted(emulator)) == 1


@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_a_declined_or_cancelled_question_is_a_tool_error_and_nothing_is_sent(
    connect: Connect, emulator: EmulatorState, action: str
) -> None:
    user = User(action)
    result = await call(connect(user), n=3)
    assert len(user.asked) == 1
    assert result.is_error
    assert "Nothing was sent" in text(result)
    assert ("declined" if action == "decline" else "cancelled") in text(result)
    assert "Traceback" not in text(result)
    assert emulator.requests == []


async def test_a_client_that_cannot_elicit_is_refused_naming_the_setting_and_the_count(
    connect: Connect, emulator: EmulatorState
) -> None:
    result = await call(connect(None), n=3)
    assert result.is_error
    said = text(result)
    assert "3 paid image(s) with wan2.7-image-pro" in said
    assert "WAN_MCP_CONFIRM_ABOVE_IMAGES=2" in said
    assert "did not declare form elicitation" in said and "Nothing was sent" in said
    assert emulator.requests == []


@pytest.mark.parametrize("n", [1, 2])
async def test_a_call_at_or_below_the_threshold_is_not_asked_about(
    connect: Connect, emulator: EmulatorState, n: int
) -> None:
    user = User("decline")
    result = await call(connect(user), n=n)
    assert not result.is_error, text(result)
    assert user.asked == []
    assert len(submitted(emulator)) == 1


async def test_without_the_setting_nothing_is_asked_even_of_a_client_that_cannot_answer(
    connect: Connect, emulator: EmulatorState
) -> None:
    result = await call(connect(None, confirm_above=None), n=4)
    assert not result.is_error, text(result)
    assert len(submitted(emulator)) == 1


async def test_interleave_counts_max_images_as_the_api_bills_them(connect: Connect, emulator: EmulatorState) -> None:
    user = User("decline")
    arguments: dict[str, Any] = {"model": "wan2.6-image", "enable_interleave": True, "size": "1024*1024"}
    refused = await call(connect(user, max_images_per_call=5), **arguments)  # max_images defaults to the API's 5
    assert refused.is_error and user.asked == ["This will generate 5 paid images with wan2.6-image. Proceed?"]
    allowed = await call(connect(user), **arguments, max_images=2)
    assert not allowed.is_error, text(allowed)
    assert len(user.asked) == 1 and len(submitted(emulator)) == 1


async def test_an_invalid_call_is_refused_without_asking(connect: Connect, emulator: EmulatorState) -> None:
    user = User("accept")
    result = await call(connect(user), n=4, size="1*1")
    assert result.is_error and "size" in text(result)
    assert user.asked == []
    assert emulator.requests == []


async def test_a_call_over_the_per_call_limit_is_refused_without_asking(
    connect: Connect, emulator: EmulatorState
) -> None:
    user = User("accept")
    result = await call(connect(user, max_images_per_call=3), n=4)
    assert result.is_error and "WAN_MCP_MAX_IMAGES_PER_CALL" in text(result)
    assert user.asked == []
    assert emulator.requests == []


async def test_a_call_the_daily_budget_would_refuse_is_refused_without_asking(
    connect: Connect, emulator: EmulatorState
) -> None:
    user = User("accept")
    first = await call(connect(user, max_images_per_day=5), "submit_task", n=3)
    assert not first.is_error, text(first)
    second = await call(connect(user, max_images_per_day=5), "submit_task", n=3)
    assert second.is_error and "WAN_MCP_MAX_IMAGES_PER_DAY" in text(second)
    assert len(user.asked) == 1 and len(submitted(emulator)) == 1


async def test_submit_task_asks_too(connect: Connect, emulator: EmulatorState) -> None:
    user = User("decline")
    result = await call(connect(user), "submit_task", n=3)
    assert result.is_error and user.asked and emulator.requests == []
    user.action = "accept"
    started = await call(connect(user), "submit_task", n=3)
    assert not started.is_error, text(started)
    assert started.structured_content["task_id"]


async def test_with_zero_every_paid_call_asks_detect_segment_included(
    connect: Connect, emulator: EmulatorState, make_image: ImageFactory
) -> None:
    user = User("decline")
    photo = make_image("desk.png", (800, 600))
    async with connect(user, confirm_above=0) as client:
        result = await client.call_tool("detect_segment", {"image": str(photo), "targets": ["laptop"]})
    assert result.is_error and user.asked == ["This will generate 1 paid image with wan2.7-image-pro. Proceed?"]
    assert emulator.requests == []


async def test_a_large_input_is_not_uploaded_before_the_user_says_yes(
    connect: Connect, emulator: EmulatorState, make_image: ImageFactory
) -> None:
    photo = make_image("big.png", (1500, 1500))  # over the inline limit below: sent through an upload
    user = User("decline")
    declined = await call(connect(user, inline_max_bytes=1000), images=[str(photo)], n=3)
    assert declined.is_error and emulator.requests == []
    user.action = "accept"
    accepted = await call(connect(user, inline_max_bytes=1000), images=[str(photo)], n=3)
    assert not accepted.is_error, text(accepted)
    assert any("upload" in r.path for r in emulator.requests)  # the same call, once approved, uploads


def test_the_setting_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).confirm_above_images is None
    assert Settings.from_env({"WAN_MCP_CONFIRM_ABOVE_IMAGES": "0"}).confirm_above_images == 0
    assert Settings.from_env({"WAN_MCP_CONFIRM_ABOVE_IMAGES": " 4 "}).confirm_above_images == 4
    with pytest.raises(ConfigurationError, match="WAN_MCP_CONFIRM_ABOVE_IMAGES"):
        Settings.from_env({"WAN_MCP_CONFIRM_ABOVE_IMAGES": "some"})


async def test_one_yes_approves_one_call_a_replayed_answer_sends_nothing(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState
) -> None:
    app = build_app(server_settings.model_copy(update={"confirm_above_images": 2}), http)
    arguments = {"prompt": "four seasons", "size": "1K", "n": 4, "enable_sequential": True}
    async with Client(app, mode="auto", elicitation_callback=User()) as client:  # the test answers itself
        asked = await client.session.call_tool("submit_task", arguments, allow_input_required=True)
        assert isinstance(asked, InputRequiredResult)
        yes: InputResponses = {key: ElicitResult(action="accept", content={}) for key in asked.input_requests or {}}
        state = asked.request_state
        first = await client.session.call_tool("submit_task", arguments, input_responses=yes, request_state=state)
        assert not first.is_error, text(first)
        replayed = await client.session.call_tool("submit_task", arguments, input_responses=yes, request_state=state)
        assert replayed.is_error and "Nothing was sent" in text(replayed)
        assert "already" in text(replayed)
    assert len(submitted(emulator)) == 1


async def test_a_call_that_needs_the_clients_roots_and_a_yes_asks_for_both_then_goes_ahead(
    connect: Connect, emulator: EmulatorState, make_image: ImageFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("project")  # not an allowed folder: the client's roots allow it
    photo = make_image("photo.png", (400, 300)).rename(outside / "photo.png")
    asked: list[str] = []

    async def roots(context: ClientRequestContext) -> ListRootsResult:
        del context
        asked.append("roots")
        return ListRootsResult(roots=[Root(uri=FileUrl(outside.as_uri()), name="project")])

    user = User("accept")
    client = connect(user)
    client.list_roots_callback = roots
    result = await call(client, images=[str(photo)], n=3)
    assert not result.is_error, text(result)
    assert asked == ["roots"] and len(user.asked) == 1
    assert len(submitted(emulator)) == 1


async def test_a_declined_question_leaves_no_yes_behind_for_a_replayed_answer(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState
) -> None:
    app = build_app(server_settings.model_copy(update={"confirm_above_images": 2}), http)
    arguments = {"prompt": "four seasons", "size": "1K", "n": 4}
    async with Client(app, mode="auto", elicitation_callback=User()) as client:  # the test answers itself
        for action in ("decline", "accept"):
            asked = await client.session.call_tool("submit_task", arguments, allow_input_required=True)
            assert isinstance(asked, InputRequiredResult)
            content: dict[str, Any] | None = {} if action == "accept" else None
            answer: InputResponses = {
                key: ElicitResult(action=action, content=content)  # type: ignore[arg-type]
                for key in asked.input_requests or {}
            }
            state = asked.request_state
            done = await client.session.call_tool("submit_task", arguments, input_responses=answer, request_state=state)
            assert done.is_error == (action == "decline"), text(done)
        replayed = await client.session.call_tool("submit_task", arguments, input_responses=answer, request_state=state)
        assert replayed.is_error and "already" in text(replayed)
    assert len(submitted(emulator)) == 1


@pytest.mark.both_journals
async def test_a_yes_approves_a_call_only_on_the_replica_that_asked_and_never_past_the_daily_budget(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState
) -> None:
    """Two servers on one journal (replicas): the yes to a question one asked approves nothing on the other, and the
    daily budget is checked again, with the row, after the yes: spent meanwhile through the other, it refuses."""
    capped = server_settings.model_copy(update={"confirm_above_images": 1, "max_images_per_day": 2})
    arguments = {"prompt": "four seasons", "size": "1K", "n": 2}
    async with (
        Client(build_app(capped, http), mode="auto", elicitation_callback=User()) as one,
        Client(build_app(capped, http), mode="auto", elicitation_callback=User()) as other,
    ):
        asked = await one.session.call_tool("submit_task", arguments, allow_input_required=True)
        assert isinstance(asked, InputRequiredResult)
        yes: InputResponses = {key: ElicitResult(action="accept", content={}) for key in asked.input_requests or {}}
        state = asked.request_state
        with pytest.raises(MCPError, match="requestState"):
            await other.session.call_tool("submit_task", arguments, input_responses=yes, request_state=state)
        spent = await other.call_tool("submit_task", {**arguments, "n": 1})  # at the threshold: not asked
        assert not spent.is_error, text(spent)
        late = await one.session.call_tool("submit_task", arguments, input_responses=yes, request_state=state)
    assert late.is_error and "1 were requested in the last 24 h and WAN_MCP_MAX_IMAGES_PER_DAY is 2" in text(late)
    assert len(submitted(emulator)) == 1
