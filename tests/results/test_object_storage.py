"""Results in S3-compatible object storage (WAN_MCP_OUTPUT_URL=s3://bucket/prefix), on a real S3 server (moto's,
on loopback): each image and its sidecar stored once under their final keys, found again instead of being
stored twice, served as a resource from the bucket, fetched by its presigned download_url; an interrupted upload
leaves nothing under the final key."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import BlobResourceContents, CallToolResult, ImageContent, ResourceLink, ResourceTemplateReference
from PIL import Image, ImageStat

from tests.support.helpers import text
from tests.support.postgres_server import PostgresServer, free_port
from tests.support.s3_server import ACCESS_KEY, REGION, SECRET_KEY, CuttingProxy, S3Server
from tests.support.virtual_clock import VirtualClock
from wan_image_mcp.cli import main
from wan_image_mcp.core.errors import ConfigurationError
from wan_image_mcp.core.journal import Journal, NewTask, Status, Tenant
from wan_image_mcp.core.results import object_sink
from wan_image_mcp.core.results.object_sink import ObjectSink
from wan_image_mcp.core.results.previews import PREVIEW_SIDE
from wan_image_mcp.emulator import EmulatorState, Fault
from wan_image_mcp.gallery import write_gallery
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.mcp_server.apps.extension import VIEW_KEY
from wan_image_mcp.settings import Settings
from wan_image_mcp.wiring import result_sink

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_settings(server_settings: Settings, s3: S3Server) -> Settings:
    """The test server's settings with results in a new bucket of its own, under a prefix."""
    return server_settings.model_copy(
        update={
            "output_url": f"s3://{s3.bucket()}/team/results",
            "object_store": s3.options(),
            "download_url_seconds": 900,
        }
    )


@pytest.fixture
def bucket(s3_settings: Settings) -> ObjectSink:
    """The test's bucket, read directly (not through the server)."""
    assert s3_settings.output_url is not None
    return ObjectSink(s3_settings.output_url, options=dict(s3_settings.object_store))


@pytest.fixture
def puts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys the server stores objects under, each PUT counted."""
    stored: list[str] = []
    create = ObjectSink._create  # pyright: ignore[reportPrivateUsage]

    def counted(self: ObjectSink, name: str, data: bytes) -> None:
        stored.append(name)
        create(self, name, data)

    monkeypatch.setattr(ObjectSink, "_create", counted)
    return stored


@pytest.fixture
async def mcp_s3(http: httpx2.AsyncClient, s3_settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_app(s3_settings, http)) as client:
        yield client


def keys(sink: ObjectSink) -> list[str]:
    listing = sink.store.list(return_arrow=False)  # pyright: ignore[reportUnknownMemberType]
    return sorted(meta["path"] for batch in listing for meta in batch)


def body(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, result.content
    return result.structured_content


async def at_once(call: Callable[[], Awaitable[CallToolResult]], *, times: int) -> list[CallToolResult]:
    """``call`` made ``times`` times concurrently; the results in the order they came."""
    results: list[CallToolResult] = []

    async def one() -> None:
        results.append(await call())

    async with anyio.create_task_group() as group:
        for _ in range(times):
            group.start_soon(one)
    return results


def downloads(emulator: EmulatorState) -> int:
    return sum(r.path.startswith("/results/") for r in emulator.requests)


async def test_edit_image_stores_the_image_and_its_sidecar_once_and_its_download_url_fetches_it(
    mcp_s3: Client, bucket: ObjectSink, s3_settings: Settings, puts: list[str]
) -> None:
    result = await mcp_s3.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert not result.is_error, result.content
    (image,) = body(result)["images"]
    (png, sidecar) = sorted(keys(bucket), key=lambda key: key.endswith(".json"))
    assert image["path"] == f"{s3_settings.output_url}/{png}" and png.endswith(".png")
    assert sidecar == png.removesuffix(".png") + ".json"
    assert sorted(puts) == sorted([png, sidecar])  # each written once
    meta = json.loads(bucket.read(bucket.location(sidecar)))
    assert meta["task_id"] == body(result)["task_id"] and meta["sha256"] == image["sha256"]
    assert meta["path"] == image["path"] and meta["count"] == 1
    fetched = httpx2.get(image["download_url"], timeout=10)
    assert fetched.status_code == 200 and hashlib.sha256(fetched.content).hexdigest() == image["sha256"]
    assert len(fetched.content) == image["bytes"]
    assert not list(s3_settings.output_dir.glob("*.png"))  # nothing kept on the server's disk
    assert not list(s3_settings.output_dir.glob(".*.part"))


async def test_a_second_check_and_a_restarted_server_do_not_store_again(
    mcp_s3: Client,
    http: httpx2.AsyncClient,
    s3_settings: Settings,
    emulator: EmulatorState,
    bucket: ObjectSink,
    puts: list[str],
) -> None:
    done = await mcp_s3.call_tool("edit_image", {"prompt": "x", "size": "1K", "n": 2})
    task_id = body(done)["task_id"]
    again = await mcp_s3.call_tool("check_task", {"task_id": task_id})
    other_journal = s3_settings.model_copy(update={"journal_path": s3_settings.journal_path.with_name("other.sqlite3")})
    async with Client(build_app(other_journal, http)) as fresh:  # knows nothing of the task: the bucket says
        found = await fresh.call_tool("check_task", {"task_id": task_id})

    def stored(result: CallToolResult) -> list[tuple[str, str]]:
        return [(image["path"], image["sha256"]) for image in body(result)["images"]]

    assert len(stored(done)) == 2 and stored(again) == stored(done) == stored(found)
    assert all(image["download_url"] for image in body(found)["images"])
    assert len(puts) == 4 and len(keys(bucket)) == 4  # two images, two sidecars, each once
    assert downloads(emulator) == 2


async def test_concurrent_checks_of_one_task_store_once(
    mcp_s3: Client, emulator: EmulatorState, bucket: ObjectSink, puts: list[str]
) -> None:
    task_id = body(await mcp_s3.call_tool("submit_task", {"prompt": "x", "size": "1K", "n": 2}))["task_id"]
    arguments = {"task_id": task_id, "wait_seconds": 5}
    checks = await at_once(lambda: mcp_s3.call_tool("check_task", arguments), times=3)
    paths = [sorted(image["path"] for image in body(result)["images"]) for result in checks]
    assert paths[0] == paths[1] == paths[2] and len(paths[0]) == 2
    assert len(puts) == 4 and len(keys(bucket)) == 4 and downloads(emulator) == 2


async def test_the_harvester_stores_a_task_nobody_asked_for_once(
    http: httpx2.AsyncClient,
    s3_settings: Settings,
    emulator: EmulatorState,
    clock: VirtualClock,
    bucket: ObjectSink,
    puts: list[str],
) -> None:
    emulator.clock = clock.time  # the emulator's task latency in the same virtual time
    async with Client(build_app(s3_settings.model_copy(update={"harvest": True}), http, clock=clock)) as harvesting:
        submitted = body(await harvesting.call_tool("submit_task", {"prompt": "x", "size": "1K"}))

        async def stored() -> bool:
            return len(keys(bucket)) == 2

        await clock.until(stored)
        await clock.sleep(5)  # long enough for another harvest, had one been due
        checked = await harvesting.call_tool("check_task", {"task_id": submitted["task_id"]})
    (image,) = body(checked)["images"]
    assert image["path"].startswith(f"{s3_settings.output_url}/") and image["download_url"]
    assert len(puts) == 2 and downloads(emulator) == 1


@pytest.mark.slow
async def test_two_replicas_on_one_journal_and_one_bucket_store_each_image_once(
    http: httpx2.AsyncClient,
    s3_settings: Settings,
    postgres: PostgresServer,
    emulator: EmulatorState,
    clock: VirtualClock,
    bucket: ObjectSink,
    puts: list[str],
) -> None:
    emulator.clock = clock.time
    team = s3_settings.model_copy(update={"journal_url": postgres.database(), "harvest": True})
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(Client(build_app(team, http, clock=clock)))
        other_machine = team.model_copy(
            update={"output_dir": team.output_dir.with_name("other-machine")}
        )  # its own disk
        await stack.enter_async_context(Client(build_app(other_machine, http, clock=clock)))
        emulator.faults.append(Fault("slow", "download", count=8, delay=0.3))  # both see them due while one saves
        for i in range(4):
            body(await first.call_tool("submit_task", {"prompt": f"poster {i}", "n": 2, "size": "1K"}))

        async def all_stored() -> bool:
            return len(keys(bucket)) == 16

        await clock.until(all_stored)
        await clock.sleep(5)  # long enough for another harvest, had one been due
    assert len(puts) == 16 and len(set(puts)) == 16  # 8 images and their sidecars, each stored once
    assert downloads(emulator) == 8


async def test_an_image_stored_without_its_sidecar_is_not_stored_again(
    mcp_s3: Client, emulator: EmulatorState, bucket: ObjectSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    create = ObjectSink._create  # pyright: ignore[reportPrivateUsage]

    def no_sidecars(self: ObjectSink, name: str, data: bytes) -> None:
        if name.endswith(".json"):
            raise OSError("the store refused the sidecar")
        create(self, name, data)

    monkeypatch.setattr(ObjectSink, "_create", no_sidecars)
    first = await mcp_s3.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert not first.is_error and body(first)["status"] == "SUCCEEDED"  # paid: not a failure
    ((missing),) = body(first)["missing_images"]
    assert "refused the sidecar" in missing["reason"] and "WAN_MCP_OUTPUT_URL" in missing["reason"]
    assert "call check_task" in body(first)["next_step"]
    (png,) = keys(bucket)
    monkeypatch.undo()
    again = await mcp_s3.call_tool("check_task", {"task_id": body(first)["task_id"]})
    assert not again.is_error, again.content
    assert [image["path"] for image in body(again)["images"]] == [bucket.location(png)]
    assert keys(bucket) == sorted([png, png.removesuffix(".png") + ".json"])
    assert downloads(emulator) == 1


async def test_a_bucket_that_no_longer_takes_a_write_refuses_a_paid_call_before_anything_is_sent(
    mcp_s3: Client, s3: S3Server, s3_settings: Settings, bucket: ObjectSink, emulator: EmulatorState
) -> None:
    httpx2.delete(f"{s3.endpoint}/{bucket.bucket}", timeout=10).raise_for_status()  # gone after the start
    refused = await mcp_s3.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert refused.is_error
    said = text(refused)
    assert said.startswith(f"The output bucket {s3_settings.output_url} does not take a write"), said
    assert "WAN_MCP_OUTPUT_URL" in said and "nothing is billed" in said
    assert emulator.requests == []


async def test_the_write_probe_leaves_nothing_in_the_bucket(bucket: ObjectSink) -> None:
    bucket.probe()
    assert keys(bucket) == []


async def test_an_interleaved_answers_markdown_page_is_an_object_beside_its_images(
    mcp_s3: Client, bucket: ObjectSink
) -> None:
    arguments = {"prompt": "a recipe", "model": "wan2.6-image", "enable_interleave": True, "max_images": 2}
    result = await mcp_s3.call_tool("edit_image", {**arguments, "size": "1024*1024"})
    assert not result.is_error, result.content
    names = [image["path"].rsplit("/", 1)[1] for image in body(result)["images"]]
    page = body(result)["markdown"]
    assert page == bucket.location(names[0].removesuffix("_1.png") + ".md")
    written = bucket.read(page).decode()
    texts = [part["text"] for part in body(result)["parts"] if part["type"] == "text"]
    assert written.index(texts[0]) < written.index(f"![image 1]({names[0]})") < written.index(texts[1])
    assert written.index(texts[1]) < written.index(f"![image 2]({names[1]})")


async def test_a_result_resource_reads_the_image_from_the_bucket(mcp_s3: Client, bucket: ObjectSink) -> None:
    result = await mcp_s3.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    (link,) = [block for block in result.content if isinstance(block, ResourceLink)]
    (png,) = [key for key in keys(bucket) if key.endswith(".png")]
    assert str(link.uri) == f"wan://images/{png}"
    (content,) = (await mcp_s3.read_resource(str(link.uri))).contents
    assert isinstance(content, BlobResourceContents)
    assert base64.b64decode(content.blob) == bucket.read(bucket.location(png))


async def test_the_image_names_completed_are_those_in_the_bucket(mcp_s3: Client, bucket: ObjectSink) -> None:
    await mcp_s3.call_tool("edit_image", {"prompt": "x", "size": "1K", "n": 2})
    typed = await mcp_s3.complete(ResourceTemplateReference(uri="wan://images/{name}"), {"name": "name", "value": ""})
    assert sorted(typed.completion.values) == [key for key in keys(bucket) if key.endswith(".png")]


async def test_a_result_from_the_bucket_comes_with_its_preview(mcp_s3: Client) -> None:
    result = await mcp_s3.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    (shown,) = [block for block in result.content if isinstance(block, ImageContent)]
    with Image.open(io.BytesIO(base64.b64decode(shown.data))) as preview:
        assert preview.format == "JPEG" and max(preview.size) <= PREVIEW_SIDE


@pytest.mark.slow  # the store's own retries back off for a few seconds
async def test_an_interrupted_upload_leaves_no_object_under_the_final_key(
    http: httpx2.AsyncClient, s3: S3Server, s3_settings: Settings, bucket: ObjectSink, emulator: EmulatorState
) -> None:
    with CuttingProxy(s3.port) as proxy:
        settings = s3_settings.model_copy(update={"object_store": s3.options(proxy.endpoint)})
        async with Client(build_app(settings, http)) as client:
            first = await client.call_tool("edit_image", {"prompt": "x", "size": "1K"})
            assert not first.is_error and body(first)["error"]["code"] == "DownloadFailed"  # paid: no failure
            assert proxy.cut == 1 + object_sink.RETRIES  # every try cut mid-body
            assert keys(bucket) == []  # no partial object, under the final key or any other
            assert not list(settings.output_dir.glob(".*.part"))
            proxy.cutting = False
            again = await client.call_tool("check_task", {"task_id": body(first)["task_id"]})
    assert not again.is_error, again.content
    (image,) = body(again)["images"]
    assert hashlib.sha256(bucket.read(image["path"])).hexdigest() == image["sha256"]
    assert len(keys(bucket)) == 2


async def test_the_download_url_expires_as_configured(mcp_s3: Client) -> None:
    result = await mcp_s3.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    (image,) = body(result)["images"]
    query = parse_qs(urlsplit(str(image["download_url"])).query)
    assert query["X-Amz-Expires"] == ["900"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]


async def test_without_an_output_url_results_stay_in_the_folder_with_no_download_url(mcp: Client) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    (image,) = body(result)["images"]
    assert Path(image["path"]).is_file() and "download_url" not in image


def test_the_output_url_and_expiry_are_read_from_the_environment() -> None:
    env = {
        "WAN_MCP_OUTPUT_URL": "s3://team-results/wan",
        "WAN_MCP_DOWNLOAD_URL_SECONDS": "120",
        "AWS_ENDPOINT_URL": "https://oss-cn-hangzhou.aliyuncs.com",
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_REGION": "oss-cn-hangzhou",
    }
    settings = Settings.from_env(env)
    assert settings.output_url == "s3://team-results/wan" and settings.download_url_seconds == 120
    assert dict(settings.object_store) == {
        "endpoint": "https://oss-cn-hangzhou.aliyuncs.com",
        "access_key_id": "id",
        "secret_access_key": "secret",
        "region": "oss-cn-hangzhou",
    }
    assert "secret" not in repr(settings)
    assert Settings.from_env({}).output_url is None and Settings.from_env({}).download_url_seconds == 3600


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("WAN_MCP_OUTPUT_URL", "/srv/results", "s3://bucket"),
        ("WAN_MCP_OUTPUT_URL", "s3://", "s3://bucket"),
        ("WAN_MCP_DOWNLOAD_URL_SECONDS", "0", "more than 0"),
        ("WAN_MCP_DOWNLOAD_URL_SECONDS", "700000", "7 days"),
    ],
)
def test_a_bad_output_url_or_expiry_is_refused_naming_it(name: str, value: str, said: str) -> None:
    with pytest.raises(ConfigurationError, match=name) as caught:
        Settings.from_env({name: value})
    assert said in str(caught.value)


def test_serve_refuses_at_start_a_bucket_it_cannot_list(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "WAN_MCP_OUTPUT_URL": "s3://no-such-bucket/results",
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    said = capsys.readouterr().err
    assert "cannot use s3://no-such-bucket/results (WAN_MCP_OUTPUT_URL, AWS_*)" in said and said.count("\n") == 1
    assert said.rstrip().endswith("(NoSuchBucket)")


def test_an_unreachable_endpoint_is_said_at_once_and_a_listable_bucket_accepted(
    s3: S3Server, s3_settings: Settings
) -> None:
    closed = s3_settings.model_copy(update={"object_store": s3.options(f"http://127.0.0.1:{free_port()}")})
    began = time.monotonic()
    with pytest.raises(ConfigurationError, match="cannot use s3://"):
        result_sink(closed, at_start=True)
    assert time.monotonic() - began < 10  # not tried again for a minute
    assert isinstance(result_sink(s3_settings, at_start=True), ObjectSink)


def test_with_tenants_an_image_in_the_bucket_is_found_only_for_its_own(bucket: ObjectSink, tmp_path: Path) -> None:
    alice, bob = Tenant("https://id.example", "alice"), Tenant("https://id.example", "bob")
    name = "20261201-101010_wan2.7-image_t-alice_1.png"
    bucket.store.put(name, b"an image", mode="create")
    journal = Journal(tmp_path / "tenants.sqlite3").open()
    try:
        row_id = journal.begin(NewTask(model="wan2.7-image", prompt="x", parameters={}, tenant=alice))
        journal.submitted(row_id, "t-alice", "req", Status.PENDING, next_poll_at=0)
        image = {"path": bucket.location(name), "url": "u", "width": 1, "height": 1, "bytes": 8, "sha256": "0"}
        journal.saved("t-alice", [image])
        assert bucket.lookup(journal, name, alice) == bucket.location(name)
        assert bucket.lookup(journal, name, bob) is None  # another's is not told apart from none
        assert bucket.lookup(journal, name) == bucket.location(name)  # no OAuth: every image the journal knows
    finally:
        journal.close()


async def test_the_gallery_shows_results_kept_in_the_bucket(
    mcp_s3: Client, bucket: ObjectSink, s3_settings: Settings, tmp_path: Path
) -> None:
    result = await mcp_s3.call_tool("edit_image", {"prompt": "kept in a bucket", "size": "1K"})
    (image,) = body(result)["images"]
    journal = Journal(s3_settings.journal_location)
    try:
        page = write_gallery(journal, tmp_path / "page", sink=bucket).read_text(encoding="utf-8")
    finally:
        journal.close()
    thumbs = re.findall(r'<img src="(\.thumbs/[^"]+)" alt="result"', page)
    assert len(thumbs) == 1 and (tmp_path / "page" / thumbs[0]).is_file()  # made from the object
    (link,) = [html.unescape(href) for href in re.findall(r'<a href="([^"]+)">', page)]
    fetched = httpx2.get(link, timeout=10)  # presigned
    assert fetched.status_code == 200 and hashlib.sha256(fetched.content).hexdigest() == image["sha256"]


async def test_with_the_bucket_the_viewer_still_shows_an_input_as_it_was_sent(
    http: httpx2.AsyncClient, s3_settings: Settings, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (600, 400), (220, 20, 20)).save(photo)
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    async with Client(build_app(s3_settings, http), extensions=[apps]) as client:
        made = await client.call_tool("edit_image", {"prompt": "gold", "images": [str(photo)], "size": "1K"})
        assert not made.is_error and made.structured_content is not None, text(made)
        photo.unlink()  # gone from the disk: the view keeps what was sent
        again = await client.call_tool("check_task", {"task_id": made.structured_content["task_id"]})
    assert again.meta is not None, text(again)
    (shown,) = again.meta[VIEW_KEY]["inputs"]
    thumb = Image.open(io.BytesIO(base64.b64decode(shown["thumb"].split(",", 1)[1]))).convert("RGB")
    red, green, _ = ImageStat.Stat(thumb).mean
    assert red > 200 and green < 60 and thumb.size == (256, 171)
