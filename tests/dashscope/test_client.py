"""The DashScope client against the emulator: wire shapes, result shapes, error classes and retry rules."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from dataclasses import replace

import anyio
import httpx2
import pytest
from PIL import Image
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from tests.support.helpers import EMULATOR_BASE, EMULATOR_KEY, FAST_RETRY, ImageFactory
from wan_image_mcp.core.requests.declarations import EditParams
from wan_image_mcp.core.requests.validation import PreparedRequest, prepare_request
from wan_image_mcp.dashscope import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContentModerationError,
    DashScopeClient,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TaskResult,
    TaskStatus,
    build_body,
)
from wan_image_mcp.dashscope import client as client_module
from wan_image_mcp.dashscope.errors import status_error
from wan_image_mcp.emulator import EmulatorState, Fault

pytestmark = pytest.mark.anyio

CAR = "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251229/pjeqdf/car.webp"
PAINT = "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251229/xsunlm/paint.webp"


async def finish(client: DashScopeClient, task_id: str, polls: int = 5) -> TaskResult:
    """Poll until terminal; the emulator advances one step per poll, so this is bounded by count."""
    with anyio.fail_after(10):
        for _ in range(polls):
            result = await client.get_task(task_id)
            if result.status.terminal:
                return result
    raise AssertionError(f"task {task_id} not finished after {polls} polls")


async def download(http: httpx2.AsyncClient, url: str) -> Image.Image:
    response = await http.get(url)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def submits(emulator: EmulatorState) -> int:
    return sum(1 for r in emulator.requests if r.method == "POST" and "/services/" in r.path)


@pytest.fixture
def retries() -> Iterator[list[RetryDetails]]:
    seen: list[RetryDetails] = []

    def record(details: RetryDetails) -> None:
        seen.append(details)

    set_on_retry_hooks([record])
    yield seen
    set_on_retry_hooks(None)


# --- wire shapes ------------------------------------------------------------------------------------


def test_messages_body_matches_the_seed_curl_example() -> None:
    request = prepare_request("wan2.7-image-pro", "把圖2的塗鴉噴繪在圖1的汽車上", [CAR, PAINT], EditParams(size="2K"))
    assert build_body(request.to_wire()) == {
        "model": "wan2.7-image-pro",
        "input": {
            "messages": [
                {
                    "role": "user",
                    "content": [{"image": CAR}, {"image": PAINT}, {"text": "把圖2的塗鴉噴繪在圖1的汽車上"}],
                }
            ]
        },
        "parameters": {"size": "2K", "n": 1, "watermark": False},
    }


def test_prompt_body_puts_negative_prompt_in_input_for_wan25() -> None:
    params = EditParams(negative_prompt="", prompt_extend=True, seed=12345)
    request = prepare_request("wan2.5-i2i-preview", "將圖1中的鬧鐘放置到圖2的餐桌", [CAR, PAINT], params)
    assert build_body(request.to_wire()) == {
        "model": "wan2.5-i2i-preview",
        "input": {"prompt": "將圖1中的鬧鐘放置到圖2的餐桌", "images": [CAR, PAINT], "negative_prompt": ""},
        "parameters": {"n": 1, "watermark": False, "prompt_extend": True, "seed": 12345},
    }


def test_wan26_negative_prompt_goes_in_parameters() -> None:
    request = prepare_request("wan2.6-image", "x", [CAR], EditParams(negative_prompt="blur"))
    assert build_body(request.to_wire())["parameters"]["negative_prompt"] == "blur"


# --- the task life cycle ----------------------------------------------------------------------------


async def test_async_edit_runs_pending_running_succeeded_and_the_image_downloads(
    client: DashScopeClient, http: httpx2.AsyncClient, make_image: ImageFactory, emulator: EmulatorState
) -> None:
    wide = make_image("wide.png", (1600, 800))
    request = prepare_request("wan2.7-image-pro", "paint it", [CAR, str(wide)], EditParams(size="1K"))
    task = await client.submit(request.to_wire())
    assert (task.status, bool(task.task_id), bool(task.request_id)) == (TaskStatus.PENDING, True, True)
    assert task.task_id is not None
    assert (await client.get_task(task.task_id)).status is TaskStatus.RUNNING
    done = await client.get_task(task.task_id)
    assert done.status is TaskStatus.SUCCEEDED
    (url,) = done.image_urls
    assert request.expected_size is not None
    assert done.usage is not None and done.usage["size"] == "{}*{}".format(*request.expected_size)
    assert done.usage["image_count"] == 1
    image = await download(http, url)
    assert image.size == request.expected_size
    sent = next(r for r in emulator.requests if r.path.endswith("/image-generation/generation"))
    assert sent.headers["x-dashscope-async"] == "enable"


async def test_several_images_come_as_several_choices(client: DashScopeClient) -> None:
    task = await client.submit(prepare_request("wan2.7-image", "x", [CAR], EditParams(n=3, size="1K")).to_wire())
    assert task.task_id is not None
    done = await finish(client, task.task_id)
    assert len(done.image_urls) == 3 and len(set(done.image_urls)) == 3


async def test_an_image_set_comes_as_one_choice_with_several_items(client: DashScopeClient) -> None:
    params = EditParams(n=4, size="1K", enable_sequential=True)
    task = await client.submit(prepare_request("wan2.7-image-pro", "four seasons", [], params).to_wire())
    assert task.task_id is not None
    done = await finish(client, task.task_id)
    assert len(done.image_urls) == 4


async def test_interleave_returns_texts_and_images(client: DashScopeClient) -> None:
    params = EditParams(enable_interleave=True, max_images=2, size="1024*1024")
    task = await client.submit(prepare_request("wan2.6-image", "a recipe in steps", [], params).to_wire())
    assert task.task_id is not None
    done = await finish(client, task.task_id)
    assert len(done.image_urls) == 2 and len(done.texts) == 2
    assert done.text_places == (0, 1)  # text, image, text, image: each text before its image, as answered


async def test_wan25_results_carry_the_prompt_as_given_and_rewritten(client: DashScopeClient) -> None:
    request = prepare_request("wan2.5-i2i-preview", "move the clock", [CAR, PAINT], EditParams(prompt_extend=True))
    task = await client.submit(request.to_wire())
    assert task.task_id is not None
    done = await finish(client, task.task_id)
    assert len(done.image_urls) == 1
    assert done.actual_prompt is not None and done.actual_prompt.startswith("move the clock")
    assert done.orig_prompt == "move the clock"  # what reconciliation compares a candidate task with
    assert done.usage == {"image_count": 1}


async def test_wan25_partial_failure_reports_the_failed_images(
    client: DashScopeClient, emulator: EmulatorState
) -> None:
    emulator.add_fault(Fault("partial_failure", failed_images=1))
    task = await client.submit(prepare_request("wan2.5-i2i-preview", "x", [CAR], EditParams(n=3)).to_wire())
    assert task.task_id is not None
    done = await finish(client, task.task_id)
    assert done.status is TaskStatus.SUCCEEDED
    assert (len(done.image_urls), len(done.failures)) == (2, 1)
    assert done.failures[0].code == "InternalError.Algo"


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        pytest.param(("InternalError.Algo", "Algorithm process error."), None, id="as sent"),
        # Where the API's JSON is decoded: no journal, log or client can write a lone surrogate ("\\ud83d").
        pytest.param(("Internal.\udfff", "near \ud83d"), ("Internal.\ufffd", "near \ufffd"), id="lone surrogates"),
    ],
)
async def test_a_failed_task_is_a_result_with_code_and_message(
    client: DashScopeClient, emulator: EmulatorState, sent: tuple[str, str], read: tuple[str, str] | None
) -> None:
    emulator.add_fault(Fault("fail_task", code=sent[0], message=sent[1]))
    task = await client.submit(prepare_request("wan2.7-image", "x", [CAR]).to_wire())
    assert task.task_id is not None
    done = await finish(client, task.task_id)
    assert (done.status, done.code, done.message) == (TaskStatus.FAILED, *(read or sent))
    assert done.image_urls == ()


async def test_an_unknown_task_id_is_unknown_not_an_error(client: DashScopeClient) -> None:
    result = await client.get_task("00000000-0000-0000-0000-000000000000")
    assert result.status is TaskStatus.UNKNOWN


async def test_only_a_pending_task_can_be_cancelled(client: DashScopeClient) -> None:
    first = await client.submit(prepare_request("wan2.7-image", "x", [CAR]).to_wire())
    assert first.task_id is not None
    assert await client.cancel_task(first.task_id)
    assert (await client.get_task(first.task_id)).status is TaskStatus.CANCELED

    second = await client.submit(prepare_request("wan2.7-image", "x", [CAR]).to_wire())
    assert second.task_id is not None
    await client.get_task(second.task_id)  # now RUNNING
    with pytest.raises(BadRequestError) as caught:
        await client.cancel_task(second.task_id)
    assert caught.value.code == "UnsupportedOperation"


async def test_oss_references_get_the_resolve_header(
    client: DashScopeClient, http: httpx2.AsyncClient, make_image: ImageFactory, emulator: EmulatorState
) -> None:
    policy = (
        await http.get(
            "/api/v1/uploads",
            params={"action": "getPolicy", "model": "wan2.7-image"},
            headers={"Authorization": f"Bearer {EMULATOR_KEY}"},
        )
    ).json()["data"]
    key = f"{policy['upload_dir']}/car.png"
    form = {
        "OSSAccessKeyId": policy["oss_access_key_id"],
        "Signature": policy["signature"],
        "policy": policy["policy"],
        "key": key,
        "x-oss-object-acl": policy["x_oss_object_acl"],
        "x-oss-forbid-overwrite": policy["x_oss_forbid_overwrite"],
        "success_action_status": "200",
    }
    image = make_image("car.png", (640, 480)).read_bytes()
    uploaded = await http.post(policy["upload_host"], data=form, files={"file": ("car.png", image, "image/png")})
    assert uploaded.status_code == 200
    task = await client.submit(prepare_request("wan2.7-image", "x", [f"oss://{key}"], EditParams(size="1K")).to_wire())
    assert task.task_id is not None
    done = await finish(client, task.task_id)
    assert done.usage is not None and done.usage["size"] == "1184*880"  # aspect of the uploaded 640×480
    sent = [r for r in emulator.requests if r.path.endswith("/generation")][-1]
    assert sent.headers["x-dashscope-ossresourceresolve"] == "enable"


# --- errors -----------------------------------------------------------------------------------------


async def test_a_wrong_key_is_an_authentication_error_without_the_key(http: httpx2.AsyncClient) -> None:
    secret = "sk-not-the-right-one-4f9a"
    client = DashScopeClient(http, api_key=secret, base_url=EMULATOR_BASE, retry=FAST_RETRY)
    with pytest.raises(AuthenticationError) as caught:
        await client.get_task("x")
    error = caught.value
    assert (error.status, error.code, error.message) == (401, "InvalidApiKey", "Invalid API-key provided.")
    assert error.request_id
    assert secret not in str(error) and secret not in repr(error) and secret not in repr(client)


async def test_the_emulator_refuses_what_validation_would_have(client: DashScopeClient) -> None:
    valid = prepare_request("wan2.7-image", "x", [CAR])
    broken: PreparedRequest = replace(valid, parameters={**valid.parameters, "n": 9})
    with pytest.raises(BadRequestError) as caught:
        await client.submit(broken.to_wire())
    assert (caught.value.status, caught.value.code) == (400, "InvalidParameter")
    assert "n must be in [1, 4]" in caught.value.message


async def test_moderation_refusal_has_its_own_class(client: DashScopeClient, emulator: EmulatorState) -> None:
    emulator.add_fault(Fault("moderation", target="submit"))
    with pytest.raises(ContentModerationError) as caught:
        await client.submit(prepare_request("wan2.7-image", "x", [CAR]).to_wire())
    assert caught.value.code == "DataInspectionFailed"


async def test_async_endpoint_without_the_async_header_is_access_denied(http: httpx2.AsyncClient) -> None:
    body = build_body(prepare_request("wan2.5-i2i-preview", "x", [CAR]).to_wire())
    response = await http.post(
        "/api/v1/services/aigc/image2image/image-synthesis",
        json=body,
        headers={"Authorization": f"Bearer {EMULATOR_KEY}"},
    )
    error = status_error(response.status_code, response.json(), response.headers)
    assert isinstance(error, PermissionDeniedError)
    assert error.message == "current user api does not support synchronous calls"


async def test_a_model_on_the_wrong_path_is_url_error(http: httpx2.AsyncClient) -> None:
    body = build_body(prepare_request("wan2.5-i2i-preview", "x", [CAR]).to_wire())
    response = await http.post(
        "/api/v1/services/aigc/image-generation/generation",
        json=body,
        headers={"Authorization": f"Bearer {EMULATOR_KEY}", "X-DashScope-Async": "enable"},
    )
    assert (response.status_code, response.json()["message"]) == (400, "url error, please check url!")


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "InvalidParameter", BadRequestError),
        (400, "DataInspectionFailed", ContentModerationError),
        (400, "Arrearage", PermissionDeniedError),
        (401, "InvalidApiKey", AuthenticationError),
        (403, "AccessDenied.Unpurchased", PermissionDeniedError),
        (404, "ModelNotFound", NotFoundError),
        (429, "Throttling.RateQuota", RateLimitError),
        (500, "InternalError", InternalServerError),
        (503, "ServiceUnavailable", InternalServerError),
        (200, "Throttling", RateLimitError),
        (200, "InvalidParameter", BadRequestError),
        (200, "InternalError.Algo", InternalServerError),
    ],
)
def test_error_envelopes_map_to_classes(status: int, code: str, cls: type[APIStatusError]) -> None:
    error = status_error(status, {"request_id": "r-1", "code": code, "message": "m"}, {})
    assert type(error) is cls
    assert (error.status, error.code, error.request_id) == (status, code, "r-1")


def test_a_non_json_error_body_is_unknown() -> None:
    error = status_error(502, "<html>Bad Gateway</html>", {"x-request-id": "r-9"})
    assert isinstance(error, InternalServerError)
    assert (error.code, error.request_id, error.retryable) == ("Unknown", "r-9", True)


def test_account_state_429s_are_not_retryable() -> None:
    assert not status_error(429, {"code": "PrepaidBillOverdue", "message": "m"}, {}).retryable
    assert status_error(429, {"code": "Throttling.RateQuota", "message": "m"}, {}).retryable


async def test_an_error_inside_http_200_is_raised(client: DashScopeClient, emulator: EmulatorState) -> None:
    emulator.add_fault(Fault("error", target="poll", status=200, code="InvalidParameter", message="bad", count=1))
    with pytest.raises(BadRequestError) as caught:
        await client.get_task("x")
    assert caught.value.status == 200


# --- retry rules ------------------------------------------------------------------------------------


async def test_throttled_submit_is_retried(
    client: DashScopeClient, emulator: EmulatorState, retries: list[RetryDetails]
) -> None:
    emulator.add_fault(Fault("throttle", target="submit", count=2))
    task = await client.submit(prepare_request("wan2.7-image", "x", [CAR]).to_wire())
    assert task.task_id is not None
    assert submits(emulator) == 3
    assert len(retries) == 2
    assert len(emulator.tasks) == 1


async def test_retry_after_is_honoured(
    client: DashScopeClient, emulator: EmulatorState, retries: list[RetryDetails]
) -> None:
    emulator.add_fault(Fault("throttle", target="poll", retry_after=0.05))
    await client.get_task("x")
    assert [r.wait_for for r in retries] == [0.05]


async def test_a_5xx_on_submit_is_not_retried(client: DashScopeClient, emulator: EmulatorState) -> None:
    emulator.add_fault(Fault("error", target="submit", status=500))
    with pytest.raises(InternalServerError):
        await client.submit(prepare_request("wan2.7-image", "x", [CAR]).to_wire())
    assert submits(emulator) == 1


async def test_a_lost_submit_response_is_not_retried(client: DashScopeClient, emulator: EmulatorState) -> None:
    emulator.add_fault(Fault("drop", target="submit", after_processing=True))
    with pytest.raises(APIConnectionError) as caught:
        await client.submit(prepare_request("wan2.7-image", "x", [CAR]).to_wire())
    assert caught.value.request_sent is True
    assert submits(emulator) == 1
    assert len(emulator.tasks) == 1  # the task exists (and will be billed): nobody may submit it twice


async def test_5xx_and_dropped_polls_are_retried(
    client: DashScopeClient, emulator: EmulatorState, retries: list[RetryDetails]
) -> None:
    task = await client.submit(prepare_request("wan2.7-image", "x", [CAR]).to_wire())
    assert task.task_id is not None
    emulator.add_fault(Fault("error", target="poll", status=503, code="ServiceUnavailable"))
    emulator.add_fault(Fault("drop", target="poll"))
    assert (await client.get_task(task.task_id)).status is TaskStatus.RUNNING
    assert len(retries) == 2


async def test_a_non_retryable_429_is_not_retried(client: DashScopeClient, emulator: EmulatorState) -> None:
    emulator.add_fault(Fault("error", target="submit", status=429, code="PrepaidBillOverdue", message="overdue"))
    with pytest.raises(RateLimitError):
        await client.submit(prepare_request("wan2.7-image", "x", [CAR]).to_wire())
    assert submits(emulator) == 1


async def test_submit_to_a_closed_port_is_retried_a_few_times_then_says_nothing_was_sent(
    retries: list[RetryDetails],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx2.AsyncClient() as http:
        client = DashScopeClient(
            http, api_key=EMULATOR_KEY, base_url=f"http://127.0.0.1:{port}/api/v1", retry=FAST_RETRY
        )
        with pytest.raises(APIConnectionError) as caught:
            await client.submit(prepare_request("wan2.7-image", "x", [CAR]).to_wire())
    assert caught.value.request_sent is False
    assert len(retries) == FAST_RETRY.connect_attempts - 1 < FAST_RETRY.attempts - 1  # said soon
    assert "Error(" not in str(caught.value)  # our words, not a Python repr


# --- live (opt-in) ----------------------------------------------------------------------------------


@pytest.mark.live
async def test_live_text_to_image_round_trip(live_client: DashScopeClient) -> None:
    task = await live_client.submit(
        prepare_request("wan2.7-image", "a red apple on a white table", [], EditParams(size="1K")).to_wire()
    )
    assert task.task_id is not None
    result = task
    with anyio.fail_after(300):
        for _ in range(60):  # the real API's documented pace: a poll every 5 s
            result = await live_client.get_task(task.task_id)
            if result.status.terminal:
                break
            await anyio.sleep(5)
    assert result.status is TaskStatus.SUCCEEDED and result.image_urls


async def test_the_task_list_is_paged_only_until_every_wanted_task_is_seen(
    client: DashScopeClient, emulator: EmulatorState
) -> None:
    ids: list[str] = []
    for _ in range(5):
        task = await client.submit(prepare_request("wan2.7-image", "x", ["https://example.com/photo.png"]).to_wire())
        assert task.task_id is not None
        ids.append(task.task_id)

    def pages() -> int:
        return sum(1 for r in emulator.requests if r.path == "/api/v1/tasks")

    everything = await client.list_statuses(page_size=2)
    assert everything.keys() == set(ids) and pages() == 3  # 2 + 2 + 1
    emulator.requests.clear()
    newest = await client.list_statuses(ids[-2:], page_size=2)  # the list is newest first
    assert newest.keys() == set(ids[-2:]) and pages() == 1


async def test_a_create_request_gives_up_at_its_deadline_and_says_it_may_have_been_received(
    http: httpx2.AsyncClient, emulator: EmulatorState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline bounds when the service can have received a create request: the window a lost answer's
    task is looked for in."""
    monkeypatch.setattr(client_module, "SUBMIT_READ_TIMEOUT", 0.1)
    client = DashScopeClient(http, api_key=EMULATOR_KEY, base_url=EMULATOR_BASE, retry=replace(FAST_RETRY, timeout=0.1))
    assert client.submit_deadline == pytest.approx(0.2)
    emulator.add_fault(Fault("hold", target="submit"))
    with anyio.fail_after(5), pytest.raises(APITimeoutError) as caught:
        await client.submit(prepare_request("wan2.7-image", "x", [CAR]).to_wire())
    assert caught.value.request_sent and "no answer within" in str(caught.value)
    assert len(emulator.tasks) == 1


async def test_an_error_message_holding_half_an_emoji_is_read_with_u_fffd(
    client: DashScopeClient, emulator: EmulatorState
) -> None:
    emulator.add_fault(Fault("error", target="poll", status=400, code="InvalidParameter", message="\ud83d bad"))
    with pytest.raises(BadRequestError) as caught:
        await client.get_task("x")
    assert (caught.value.code, caught.value.message) == ("InvalidParameter", "\ufffd bad")
