"""The emulator behaves like DashScope where tests and demos depend on it: expiring URLs, uploads, the task
clock, output sizes, server-side checks, the control API, and faults over a real socket."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import anyio
import httpx2
import pytest
from PIL import Image

from tests.support.helpers import EMULATOR_KEY, FAST_RETRY, until
from wan_image_mcp.core.images.references import PreparedImage, RefKind
from wan_image_mcp.core.requests.declarations import EditParams
from wan_image_mcp.core.requests.validation import prepare_request
from wan_image_mcp.core.specs import SPECS, Protocol
from wan_image_mcp.dashscope import APIConnectionError, BadRequestError, DashScopeClient, TaskStatus
from wan_image_mcp.dashscope.wire import build_body
from wan_image_mcp.emulator import EmulatorBackend, EmulatorConfig, EmulatorState, Fault, create_app
from wan_image_mcp.emulator.exceptions import EmulatedError, OssError
from wan_image_mcp.emulator.serve import RunningEmulator
from wan_image_mcp.emulator.state import Upload

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {EMULATOR_KEY}"}
URL = "https://example.com/photo.png"
SYNC_PATH = "/api/v1/services/aigc/multimodal-generation/generation"
"""The synchronous endpoint: the official SDK's ``ImageGeneration.call`` uses it; the server only submits tasks."""


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(clock: Clock) -> EmulatorState:
    return EmulatorState(EmulatorConfig(api_keys=frozenset({EMULATOR_KEY}), latency=10), clock=clock)


@pytest.fixture
async def timed_client(timed: EmulatorState) -> AsyncIterator[DashScopeClient]:
    transport = httpx2.ASGITransport(app=create_app(timed))
    async with httpx2.AsyncClient(transport=transport, base_url="http://emulator.test") as http:
        yield DashScopeClient(http, api_key=EMULATOR_KEY, base_url="http://emulator.test/api/v1", retry=FAST_RETRY)


async def succeeded_url(client: DashScopeClient, model: str = "wan2.7-image") -> str:
    task = await client.submit(prepare_request(model, "x", [URL], EditParams(size="768*768")).to_wire())
    assert task.task_id is not None
    for _ in range(3):
        result = await client.get_task(task.task_id)
        if result.status is TaskStatus.SUCCEEDED:
            return result.image_urls[0]
    raise AssertionError("did not succeed")


def data_url(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


async def test_result_urls_expire(client: DashScopeClient, http: httpx2.AsyncClient, emulator: EmulatorState) -> None:
    url = await succeeded_url(client)
    assert (await http.get(url)).status_code == 200
    response = await http.get(url.replace("Signature=", "Signature=x"))
    assert response.status_code == 403 and "SignatureDoesNotMatch" in response.text
    emulator.expire_results()
    response = await http.get(url)
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code><Message>Request has expired.</Message>" in response.text


async def test_tasks_take_real_time_when_the_emulator_has_latency(timed_client: DashScopeClient, clock: Clock) -> None:
    task = await timed_client.submit(prepare_request("wan2.7-image", "x", [URL], EditParams(size="768*768")).to_wire())
    assert task.task_id is not None
    start, seen = clock.now, list[TaskStatus]()
    for elapsed in (1, 3, 9.9, 10, 50):  # latency 10 s: PENDING for the first fifth, then RUNNING
        clock.now = start + elapsed
        seen.append((await timed_client.get_task(task.task_id)).status)
    assert seen == [
        TaskStatus.PENDING,
        TaskStatus.RUNNING,
        TaskStatus.RUNNING,
        TaskStatus.SUCCEEDED,
        TaskStatus.SUCCEEDED,
    ]


async def test_with_a_spread_each_task_takes_its_own_fixed_time(
    timed_client: DashScopeClient, timed: EmulatorState, clock: Clock
) -> None:
    timed.config.latency_spread = 20
    ids: list[str] = []
    for _ in range(4):
        task = await timed_client.submit(
            prepare_request("wan2.7-image", "x", [URL], EditParams(size="768*768")).to_wire()
        )
        assert task.task_id is not None
        ids.append(task.task_id)
    durations = [timed.duration(timed.tasks[i]) for i in ids]
    assert all(10 <= d <= 30 for d in durations) and len(set(durations)) == 4
    start = clock.now
    for task_id, duration in zip(ids, durations, strict=True):
        clock.now = start + duration - 0.01
        assert (await timed_client.get_task(task_id)).status is TaskStatus.RUNNING
        clock.now = start + duration + 0.01
        assert (await timed_client.get_task(task_id)).status is TaskStatus.SUCCEEDED


async def test_a_synchronous_call_with_a_latency_answers_when_its_task_would_be_done() -> None:
    """As the service does: the SDK's synchronous call and an async task of the same length end together."""
    state = EmulatorState(EmulatorConfig(api_keys=frozenset({EMULATOR_KEY}), latency=1.0))
    body = {
        "model": "wan2.7-image",
        "input": {"messages": [{"role": "user", "content": [{"text": "a cat"}]}]},
        "parameters": {"size": "1K"},
    }
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=create_app(state)), base_url="http://emulator.test"
    ) as http:
        started = time.monotonic()
        response = await http.post(SYNC_PATH, headers=AUTH, json=body)
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["output"]["choices"]
    assert elapsed >= 1.0


async def test_a_synchronous_call_answers_with_every_image_at_once_and_leaves_no_task(
    http: httpx2.AsyncClient, emulator: EmulatorState
) -> None:
    body = build_body(prepare_request("wan2.7-image", "x", [URL], EditParams(size="1K", n=2)).to_wire())
    response = await http.post(SYNC_PATH, headers=AUTH, json=body)
    assert response.status_code == 200, response.text
    choices = response.json()["output"]["choices"]
    assert [item["type"] for choice in choices for item in choice["message"]["content"]] == ["image", "image"]
    assert emulator.tasks == {}


async def test_a_model_without_a_synchronous_endpoint_is_refused_there(http: httpx2.AsyncClient) -> None:
    body = build_body(prepare_request("wan2.5-i2i-preview", "x", [URL]).to_wire())
    response = await http.post(SYNC_PATH, headers=AUTH, json=body)
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["message"]) == ("InvalidParameter", "url error, please check url!")


async def test_a_task_older_than_24_hours_is_unknown(timed_client: DashScopeClient, clock: Clock) -> None:
    task = await timed_client.submit(prepare_request("wan2.7-image", "x", [URL]).to_wire())
    assert task.task_id is not None
    clock.now += 24 * 3600 + 1
    assert (await timed_client.get_task(task.task_id)).status is TaskStatus.UNKNOWN


async def test_an_expired_upload_policy_is_refused(timed: EmulatorState, clock: Clock) -> None:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(timed)), base_url="http://e") as http:
        policy = (await http.get("/api/v1/uploads?action=getPolicy&model=wan2.7-image", headers=AUTH)).json()["data"]
        form = {
            "OSSAccessKeyId": policy["oss_access_key_id"],
            "Signature": policy["signature"],
            "policy": policy["policy"],
            "key": f"{policy['upload_dir']}/a.png",
            "x-oss-forbid-overwrite": "true",
        }
        files = {"file": ("a.png", b"\x89PNG", "image/png")}
        assert (await http.post("/oss", data=form, files=files)).status_code == 200
        assert (await http.post("/oss", data=form, files=files)).status_code == 409  # forbid-overwrite
        clock.now += policy["expire_in_seconds"] + 1
        response = await http.post("/oss", data={**form, "key": f"{policy['upload_dir']}/b.png"}, files=files)
    assert response.status_code == 403
    assert "Invalid according to Policy: Policy expired." in response.text


async def test_oss_urls_need_the_resolve_header_and_the_same_model(
    http: httpx2.AsyncClient, emulator: EmulatorState
) -> None:
    raw = io.BytesIO()
    Image.new("RGB", (300, 300)).save(raw, "PNG")
    emulator.uploads["dir/a.png"] = Upload(raw.getvalue(), "wan2.7-image", expires=emulator.clock() + 60)
    body: dict[str, Any] = {
        "model": "wan2.7-image-pro",
        "input": {"messages": [{"role": "user", "content": [{"image": "oss://dir/a.png"}, {"text": "x"}]}]},
        "parameters": {"n": 1},
    }
    path = "/api/v1/services/aigc/image-generation/generation"
    headers = {**AUTH, "X-DashScope-Async": "enable"}
    no_header = await http.post(path, json=body, headers=headers)
    assert no_header.status_code == 400 and "X-DashScope-OssResourceResolve" in no_header.json()["message"]
    other_model = await http.post(path, json=body, headers={**headers, "X-DashScope-OssResourceResolve": "enable"})
    assert other_model.status_code == 400 and "uploaded for wan2.7-image" in other_model.json()["message"]
    body["model"] = "wan2.7-image"
    ok = await http.post(path, json=body, headers={**headers, "X-DashScope-OssResourceResolve": "enable"})
    assert ok.status_code == 200 and ok.json()["output"]["task_status"] == "PENDING"


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("wan2.7-image-pro", EditParams()),
        ("wan2.7-image-pro", EditParams(size="1K")),
        ("wan2.6-image", EditParams()),
        ("wan2.6-image", EditParams(enable_interleave=True, max_images=1)),
        ("wan2.5-i2i-preview", EditParams()),
    ],
)
async def test_outputs_are_multiples_of_16_with_the_last_inputs_aspect(
    model: str, params: EditParams, client: DashScopeClient, http: httpx2.AsyncClient
) -> None:
    first = data_url(Image.new("RGB", (500, 500)))
    last = data_url(Image.new("RGB", (1200, 800)))
    images = [last] if params.enable_interleave else [first, last]
    request = prepare_request(model, "x", images, params)
    task = await client.submit(request.to_wire())
    assert task.task_id is not None
    await client.get_task(task.task_id)
    done = await client.get_task(task.task_id)
    response = await http.get(done.image_urls[0])
    width, height = Image.open(io.BytesIO(response.content)).size
    assert (width, height) == request.expected_size
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width / height - 1.5) < 0.03
    if params.enable_interleave:
        assert (width, height) == (1200, 800)  # interleave keeps an input smaller than 1280*1280


@pytest.mark.parametrize(
    ("model", "refused"), [("wan2.7-image", True), ("wan2.6-image", True), ("wan2.5-i2i-preview", False)]
)
async def test_the_emulator_checks_input_images_itself(model: str, refused: bool, http: httpx2.AsyncClient) -> None:
    transparent = data_url(Image.new("RGBA", (400, 400), (0, 0, 0, 0)))
    spec = SPECS[model]  # pyright: ignore[reportArgumentType]
    if spec.protocol.value == "messages":
        body: dict[str, Any] = {
            "model": model,
            "input": {"messages": [{"role": "user", "content": [{"image": transparent}, {"text": "x"}]}]},
        }
        path = "/api/v1/services/aigc/image-generation/generation"
    else:
        body = {"model": model, "input": {"prompt": "x", "images": [transparent]}}
        path = "/api/v1/services/aigc/image2image/image-synthesis"
    response = await http.post(path, json=body, headers={**AUTH, "X-DashScope-Async": "enable"})
    if refused:
        assert response.status_code == 400 and "alpha channel" in response.json()["message"]
    else:
        assert response.status_code == 200  # wan2.5 reads a PNG without its alpha


async def test_too_small_an_image_is_refused_server_side(client: DashScopeClient) -> None:
    valid = prepare_request("wan2.7-image", "x", [URL])
    tiny = data_url(Image.new("RGB", (100, 100)))
    broken = replace(valid, images=(PreparedImage(index=1, kind=RefKind.DATA, source="tiny", url=tiny),))
    with pytest.raises(BadRequestError, match="resolution 100x100 is out of range"):
        await client.submit(broken.to_wire())


async def test_the_request_log_keeps_no_key_and_short_data_urls(
    client: DashScopeClient, emulator: EmulatorState
) -> None:
    big = data_url(Image.new("RGB", (600, 600)))
    await client.submit(prepare_request("wan2.7-image", "x", [big]).to_wire())
    (entry,) = emulator.requests
    assert "authorization" not in entry.headers
    assert EMULATOR_KEY not in repr(entry)
    image = entry.body["input"]["messages"][0]["content"][0]["image"]
    assert image.startswith("data:image/png;base64,") and image.endswith(f"({len(big)} chars)")


def test_the_control_api_and_drops_work_over_a_real_socket() -> None:
    async def scenario(base_url: str, origin: str) -> None:
        async with httpx2.AsyncClient(timeout=10) as http:
            client = DashScopeClient(http, api_key=EMULATOR_KEY, base_url=base_url, retry=FAST_RETRY)
            await http.post(
                f"{origin}/_emulator/faults", json={"kind": "drop", "target": "submit", "after_processing": True}
            )
            with pytest.raises(APIConnectionError) as caught:
                await client.submit(prepare_request("wan2.7-image", "x", [URL]).to_wire())
            assert caught.value.request_sent
            listed = (await http.get(f"{base_url}/tasks", headers=AUTH)).json()
            assert listed["total"] == 1  # the dropped submit still created its task
            task_id = listed["tasks"][0]["task_id"]
            await http.post(f"{origin}/_emulator/faults", json={"kind": "drop", "target": "poll", "count": 1})
            result = await client.get_task(task_id)
            assert result.status in (TaskStatus.RUNNING, TaskStatus.SUCCEEDED)
            log = (await http.get(f"{origin}/_emulator/requests")).json()
            assert [r["method"] for r in log].count("POST") == 1

    with RunningEmulator(EmulatorConfig(api_keys=frozenset({EMULATOR_KEY}))) as emu:
        anyio.run(scenario, emu.base_url, emu.origin)


def test_the_cli_runs_the_emulator_and_prints_the_base_url() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "wan_image_mcp", "emulator", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("DASHSCOPE_HTTP_BASE_URL=http://127.0.0.1:") and line.endswith("/api/v1")
        base_url = line.split("=", 1)[1]
        response = httpx2.get(f"{base_url}/tasks/abc", headers=AUTH, timeout=10)
        assert response.json()["output"]["task_status"] == "UNKNOWN"
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


async def test_a_fault_queue_consumes_each_fault_once(client: DashScopeClient, emulator: EmulatorState) -> None:
    emulator.add_fault(Fault("error", target="poll", status=400, code="InvalidParameter", message="once"))
    with pytest.raises(BadRequestError):
        await client.get_task("x")
    assert (await client.get_task("x")).status is TaskStatus.UNKNOWN
    assert emulator.faults == []


async def test_a_task_seen_by_two_queries_at_once_renders_its_images_once(
    client: DashScopeClient, http: httpx2.AsyncClient, emulator: EmulatorState
) -> None:
    emulator.config.polls_to_finish = 1
    task = await client.submit(prepare_request("wan2.7-image", "x", [URL], EditParams(size="768*768")).to_wire())
    assert task.task_id is not None
    task_id = task.task_id

    async def by_id() -> None:
        await client.get_task(task_id)

    async def by_list() -> None:
        await http.get("/api/v1/tasks", headers=AUTH)

    async with anyio.create_task_group() as group:
        group.start_soon(by_id)
        group.start_soon(by_id)
        group.start_soon(by_list)
    assert len(emulator.tasks[task_id].outputs) == 1
    (seconds,) = emulator.renders  # one render, timed for the bench
    assert seconds > 0


async def test_the_task_list_filters_by_submit_time_in_the_services_zone_by_model_and_status_in_pages(
    timed: EmulatorState, timed_client: DashScopeClient, clock: Clock
) -> None:
    timed.config.tz_offset_hours = -3.5
    ids: list[str] = []
    for model in ("wan2.7-image", "wan2.7-image", "wan2.7-image-pro"):
        task = await timed_client.submit(prepare_request(model, "x", [URL], EditParams(size="768*768")).to_wire())
        assert task.task_id is not None
        ids.append(task.task_id)
        clock.now += 60
    first = clock.now - 180  # the first task's submit time, on UTC

    def local(ts: float) -> str:  # YYYYMMDDhhmmss in the service's zone
        return time.strftime("%Y%m%d%H%M%S", time.gmtime(ts - 3.5 * 3600))

    page = await timed_client.list_tasks(start_time=local(first + 60), end_time=local(first + 120))
    assert [t.task_id for t in page.tasks] == ids[:0:-1] and page.total == 2  # newest first, both ends included
    assert page.tasks[1].submit_time == time.strftime("%Y-%m-%d %H:%M:%S.000", time.gmtime(first + 60 - 3.5 * 3600))
    page = await timed_client.list_tasks(start_time=local(first), model_name="wan2.7-image", page_size=1, page_no=2)
    assert (page.total, page.page_no, [t.task_id for t in page.tasks]) == (2, 2, ids[:1])
    assert (await timed_client.list_tasks(status="FAILED")).total == 0
    assert [t.model for t in (await timed_client.list_tasks(status="SUCCEEDED")).tasks] == [
        "wan2.7-image-pro",
        "wan2.7-image",
        "wan2.7-image",
    ]
    with pytest.raises(BadRequestError, match="start_time must be YYYYMMDDhhmmss"):
        await timed_client.list_tasks(start_time="2026-12-01")


async def test_the_task_list_reads_as_the_official_sdks_job_list(
    client: DashScopeClient, http: httpx2.AsyncClient
) -> None:
    from dashscope.v2.resources._jobs import JobList  # pyright: ignore[reportMissingTypeStubs]

    task = await client.submit(prepare_request("wan2.7-image", "x", [URL]).to_wire())
    answer = (await http.get("/api/v1/tasks", params={"page_size": "5"}, headers=AUTH)).json()
    jobs = JobList.from_payload(answer)
    assert (jobs.total, jobs.page_no, jobs.page_size) == (1, 1, 5)
    assert (jobs.tasks[0].task_id, jobs.tasks[0].status) == (task.task_id, "RUNNING")  # a list observes it
    assert jobs.tasks[0].submitted_at is not None


async def test_a_held_create_answer_waits_for_a_release_and_can_then_be_dropped(
    client: DashScopeClient, emulator: EmulatorState
) -> None:
    emulator.add_fault(Fault("hold", target="submit"))
    emulator.add_fault(Fault("hold", target="submit", after_processing=True))
    request = prepare_request("wan2.7-image", "x", [URL])
    answers: list[str | None] = []

    async def submit() -> None:
        try:
            answers.append((await client.submit(request.to_wire())).task_id)
        except APIConnectionError:
            answers.append(None)

    async def held(count: int) -> bool:
        return emulator.holding == count

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(submit)
            group.start_soon(submit)
            await until(lambda: held(2))
            assert len(emulator.tasks) == 2 and answers == []  # both tasks exist; neither answer has come
            assert emulator.release() == 2
    assert answers.count(None) == 1  # one answered once released, one dropped after its task was made
    assert {a for a in answers if a} < set(emulator.tasks)


async def test_submit_times_are_in_the_services_configured_zone(
    client: DashScopeClient, emulator: EmulatorState
) -> None:
    emulator.config.tz_offset_hours = 5.75
    task = await client.submit(prepare_request("wan2.7-image", "x", [URL]).to_wire())
    assert task.task_id is not None
    submitted = (await client.get_task(task.task_id)).submit_time
    local = emulator.tasks[task.task_id].created + 5.75 * 3600
    assert submitted is not None and submitted[:19] == time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(local))


async def test_a_task_list_with_a_bad_page_answers_dashscopes_json_error(http: httpx2.AsyncClient) -> None:
    for query, named in (("page_no=abc", "page_no"), ("page_no=0", "page_no"), ("page_size=101", "page_size")):
        response = await http.get(f"/api/v1/tasks?{query}", headers=AUTH)
        assert response.status_code == 400, query
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body["code"] == "InvalidParameter" and named in body["message"] and body["request_id"]
    listed = await http.get("/api/v1/tasks?page_no=2&page_size=100", headers=AUTH)
    assert (listed.status_code, listed.json()["page_size"]) == (200, 100)


async def test_the_backend_runs_a_task_without_http(emulator: EmulatorState) -> None:
    backend = EmulatorBackend(emulator)
    content = [{"text": "a fox"}, {"image": URL}]
    messages = [{"role": "user", "content": content}]
    body = {"model": "wan2.7-image", "input": {"messages": messages}, "parameters": {"n": 1, "size": "768*768"}}
    task_id = await backend.create_task(body, Protocol.MESSAGES, resolve_oss=False)
    assert (await backend.query(task_id, "http://here"))["output"]["task_status"] == "RUNNING"
    done = await backend.query(task_id, "http://here")
    assert done["output"]["task_status"] == "SUCCEEDED" and done["usage"]["image_count"] == 1
    (choice,) = done["output"]["choices"]
    assert choice["message"]["content"][0]["image"].startswith("http://here/results/")
    with pytest.raises(EmulatedError) as refused:
        backend.cancel(task_id)
    assert (refused.value.status, refused.value.code) == (400, "UnsupportedOperation")


async def test_the_backend_refuses_an_upload_outside_its_policy_as_the_object_store(emulator: EmulatorState) -> None:
    backend = EmulatorBackend(emulator)
    policy = backend.new_policy("wan2.7-image", "http://here/oss")
    form = {"policy": policy["policy"], "Signature": policy["signature"], "key": "elsewhere/a.png"}
    with pytest.raises(OssError) as refused:
        backend.accept_upload(form, b"png")
    assert (refused.value.status, refused.value.code) == (403, "AccessDenied")
    backend.accept_upload({**form, "key": f"{policy['upload_dir']}/a.png"}, b"png")
    assert emulator.uploads[f"{policy['upload_dir']}/a.png"].model == "wan2.7-image"


async def test_a_fault_can_answer_half_an_emoji_as_the_json_escape_a_truncating_service_writes(
    http: httpx2.AsyncClient,
) -> None:
    fault = b'{"kind": "error", "target": "poll", "status": 400, "message": "near \\ud83d"}'
    queued = await http.post("/_emulator/faults", content=fault, headers={"content-type": "application/json"})
    assert queued.json()["faults"][0]["message"] == "near \ud83d"
    answer = await http.get("/api/v1/tasks/x", headers={"authorization": f"Bearer {EMULATOR_KEY}"})
    assert answer.status_code == 400
    assert b'"message":"near \\ud83d"' in answer.content  # valid JSON; UTF-8 cannot carry the surrogate raw
