"""Safe by default: which files are read, which URLs are fetched, what is spent, and the key kept secret."""

from __future__ import annotations

import base64
import http.server
import io
import math
import os
import re
import shutil
import sqlite3
import ssl
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import ListRootsResult, Root
from PIL import Image

from tests.support.helpers import ImageFactory, server_env, text
from wan_image_mcp.core.errors import ImagesNotSaved
from wan_image_mcp.core.images.pillow import MAX_DECODE_PIXELS
from wan_image_mcp.core.results.store import ResultStore
from wan_image_mcp.dashscope import (
    APIConnectionError,
    DashScopeClient,
    InvalidTaskId,
    TaskStatus,
    UnusableKey,
    UrlRefused,
    transport,
)
from wan_image_mcp.dashscope.transport import check_fetch_url, send_checked
from wan_image_mcp.emulator import EmulatorConfig, EmulatorState, Fault
from wan_image_mcp.emulator.serve import RunningEmulator
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

pytestmark = pytest.mark.anyio
URL = "https://example.com/a-1024-1024.png"


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outside")


# --- files ----------------------------------------------------------------------------------------------


async def test_a_file_outside_the_allowed_directories_is_refused_without_being_opened(
    mcp: Client, emulator: EmulatorState, outside: Path, server_settings: Settings
) -> None:
    fifo = outside / "secret.png"
    os.mkfifo(fifo)  # opening a FIFO for reading blocks: if the server opened it, this call would hang
    try:
        with anyio.fail_after(10):
            result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(fifo)]})
    finally:
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # releases a reader, had there been one
        os.close(fd)
    assert result.is_error
    assert f"{fifo} is outside the allowed directories" in text(result)
    assert str(server_settings.output_dir) in text(result)
    assert emulator.requests == []


@pytest.mark.parametrize("form", ["dotdot", "symlink", "file-url", "tilde"])
async def test_every_path_form_is_resolved_before_the_check(
    form: str, mcp: Client, make_image: ImageFactory, tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = outside / "secret.png"
    make_image("seed.png", (300, 300)).rename(secret)
    link = tmp_path / "innocent.png"
    link.symlink_to(secret)
    monkeypatch.setenv("HOME", str(outside))
    ref = {
        "dotdot": f"{tmp_path}/../{outside.name}/secret.png",
        "symlink": str(link),
        "file-url": secret.as_uri(),
        "tilde": "~/secret.png",
    }[form]
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [ref]})
    assert result.is_error
    assert "is outside the allowed directories" in text(result)


async def test_the_output_folder_is_always_allowed(
    http: httpx2.AsyncClient, server_settings: Settings, make_image: ImageFactory
) -> None:
    settings = server_settings.model_copy(update={"allowed_dirs": ()})
    settings.output_dir.mkdir(parents=True)
    earlier = make_image("earlier.png", (400, 300)).rename(settings.output_dir / "earlier.png")
    async with Client(build_app(settings, http)) as client:
        result = await client.call_tool("edit_image", {"prompt": "again", "images": [str(earlier)], "size": "1K"})
    assert not result.is_error, text(result)


async def test_the_clients_roots_are_allowed_and_asked_for_only_when_needed(
    http: httpx2.AsyncClient, server_settings: Settings, make_image: ImageFactory, outside: Path
) -> None:
    photo = make_image("photo.png", (400, 300)).rename(outside / "photo.png")
    asked: list[int] = []

    async def roots(context: Any) -> ListRootsResult:
        asked.append(1)
        return ListRootsResult(roots=[Root(uri=outside.as_uri(), name="project")])  # pyright: ignore[reportArgumentType]

    async with Client(build_app(server_settings, http), list_roots_callback=roots) as client:
        remote = await client.call_tool("edit_image", {"prompt": "x", "images": [URL], "size": "1K"})
        assert not remote.is_error and asked == []
        local = await client.call_tool("edit_image", {"prompt": "x", "images": [str(photo)], "size": "1K"})
        assert not local.is_error, text(local)
        assert asked == [1]
    async with Client(build_app(server_settings, http)) as rootless:
        refused = await rootless.call_tool("edit_image", {"prompt": "x", "images": [str(photo)]})
    assert refused.is_error and "outside the allowed directories" in text(refused)


# --- task ids ----------------------------------------------------------------------------------------------

HOSTILE_TASK_IDS = [
    "../uploads?action=getPolicy&model=wan2.7-image#",
    "../services/aigc/image-generation/generation#",
    ".",
    "..",
    "\u0000",
    "\r\nX-Injected: 1",
    "a/b",
    "abc?x=1",
    "abc#frag",
    "%2e%2e",
    "task id",
    "-leading-dash",
    "ta\u0161k",
]


@pytest.mark.parametrize("task_id", HOSTILE_TASK_IDS)
async def test_a_task_id_that_is_not_one_plain_path_segment_is_refused_before_any_request(
    task_id: str, mcp: Client, emulator: EmulatorState, server_settings: Settings
) -> None:
    for tool in ("check_task", "cancel_task"):
        refused = await mcp.call_tool(tool, {"task_id": task_id})
        assert refused.is_error, tool
        message = text(refused)
        assert "Invalid request: task_id: " in message and "is not a task id" in message, message
        assert "Nothing was sent" in message and "Traceback" not in message
        assert "\r" not in message and "\x00" not in message  # shown escaped, never raw
    assert emulator.requests == []
    journal = server_settings.journal_path
    if journal.exists():
        with sqlite3.connect(journal) as db:
            assert db.execute("SELECT COUNT(*) FROM tasks").fetchone() == (0,)


async def test_the_client_refuses_and_quotes_task_ids_whoever_calls_it(
    client: DashScopeClient, emulator: EmulatorState
) -> None:
    for task_id in [*HOSTILE_TASK_IDS, "x" * 129]:
        with pytest.raises(InvalidTaskId, match="task_id"):
            await client.get_task(task_id)
        with pytest.raises(InvalidTaskId, match="task_id"):
            await client.cancel_task(task_id)
    assert emulator.requests == []
    assert (await client.get_task("0385dc79-5ff8-4d82-bcb6-8a1d7c0e3f21")).status is TaskStatus.UNKNOWN
    assert [r.path for r in emulator.requests] == ["/api/v1/tasks/0385dc79-5ff8-4d82-bcb6-8a1d7c0e3f21"]


# --- remote references ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ({"result_origin": "https://127.0.0.1:9"}, "not a public address"),
        ({"result_origin": "https://10.1.2.3"}, "not a public address"),
        ({"result_origin": "http://198.51.100.7"}, "plain http"),
        ({"result_redirect": "http://169.254.169.254/latest/meta-data/"}, "plain http"),
        ({"result_redirect": "https://[::1]:9/x"}, "not a public address"),
    ],
)
async def test_a_crafted_result_url_cannot_make_the_server_fetch_from_a_private_address(
    config: dict[str, str], why: str, mcp: Client, emulator: EmulatorState
) -> None:
    """The task succeeded (and is paid): not a tool error, but its image missing, with the rule it broke and the
    settings that decide it."""
    for name, value in config.items():
        setattr(emulator.config, name, value)
    result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["status"] == "SUCCEEDED" and result.structured_content["images"] == []
    ((missing),) = result.structured_content["missing_images"]
    assert missing["index"] == 1 and why in missing["reason"]
    assert "only over https from a host that resolves to public addresses" in missing["reason"]
    assert "DASHSCOPE_HTTP_BASE_URL" in missing["reason"]


DISGUISED = {
    "NAT64 loopback": "64:ff9b::127.0.0.1",
    "NAT64 private": "64:ff9b::10.0.0.1",
    "NAT64 metadata": "64:ff9b::169.254.169.254",
    "local-use NAT64 private": "64:ff9b:1::192.168.1.1",
    "6to4 loopback": "2002:7f00:1::1",
    "6to4 private": "2002:c0a8:101::1",
    "6to4 metadata": "2002:a9fe:a9fe::",
    "IPv4-compatible loopback": "::127.0.0.1",
    "IPv4-compatible private": "::10.1.2.3",
    "IPv4-compatible metadata": "::169.254.169.254",
    "IPv4-mapped metadata": "::ffff:169.254.169.254",
    "IPv4-translated loopback": "::ffff:0:7f00:1",
    "IPv4-translated private": "::ffff:0:10.1.2.3",
    "IPv4-translated metadata": "::ffff:0:a9fe:a9fe",
    "Teredo with a loopback client": "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "Teredo with a private client": "2001:0:4136:e378:8000:63bf:f5ff:fffe",
}


@pytest.mark.parametrize("address", DISGUISED.values(), ids=DISGUISED.keys())
async def test_ipv6_disguises_of_private_ipv4_addresses_are_refused_like_the_plain_forms(address: str) -> None:
    with pytest.raises(UrlRefused, match="not a public address"):
        await check_fetch_url(f"https://[{address}]/result.png", api_base_url="https://dashscope-intl.aliyuncs.com")


async def test_ipv6_that_carries_a_public_ipv4_address_may_be_downloaded_from() -> None:
    for address in ("64:ff9b::8.8.8.8", "2002:808:808::1", "::ffff:0:8.8.8.8", "2606:4700:4700::1111"):
        await check_fetch_url(f"https://[{address}]/result.png", api_base_url="https://dashscope-intl.aliyuncs.com")


async def test_a_result_redirected_to_a_nat64_metadata_address_is_not_fetched(
    mcp: Client, emulator: EmulatorState
) -> None:
    emulator.config.result_redirect = "https://[64:ff9b::a9fe:a9fe]/latest/meta-data/"
    result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert not result.is_error and result.structured_content is not None  # the task succeeded: paid, no failure
    assert "not a public address" in result.structured_content["missing_images"][0]["reason"]


class Rebinding:
    """A resolver whose first ``honest`` answers are public and every later one loopback (DNS rebinding)."""

    def __init__(self, *public: str, honest: int = 1) -> None:
        self.public = public
        self.honest = honest
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        self.asked.append(host)
        addresses = self.public if len(self.asked) <= self.honest else ("127.0.0.1",)
        return [(2, 1, 6, "", (address, port)) for address in addresses]


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, "PNG")
    return out.getvalue()


def seen(request: httpx2.Request) -> tuple[str, str, str]:
    """Where a request was sent: its URL, Host header and TLS name, as they were when it was sent."""
    return str(request.url), request.headers["host"], str(request.extensions.get("sni_hostname"))


async def test_a_result_is_fetched_from_the_address_its_check_approved_not_from_a_second_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = Rebinding("93.184.215.14", "93.184.215.15")
    monkeypatch.setattr(anyio, "getaddrinfo", resolver)
    sent: list[tuple[str, str, str]] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(seen(request))
        if request.url.host == "93.184.215.14":  # the first address does not answer: the next one is tried
            raise httpx2.ConnectError("refused", request=request)
        return httpx2.Response(200, content=png_bytes())

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        store = ResultStore(tmp_path, http, api_base_url="https://dashscope-intl.aliyuncs.com/api/v1")
        (image,) = await store.save("t1", ["https://results.example/r.png?Expires=1"], None, {})
    assert resolver.asked == ["results.example"]  # resolved once, for the check; never again to connect
    assert sent == [
        ("https://93.184.215.14/r.png?Expires=1", "results.example", "results.example"),
        ("https://93.184.215.15/r.png?Expires=1", "results.example", "results.example"),
    ]
    assert image.url == "https://results.example/r.png?Expires=1" and Path(image.path).is_file()


async def test_each_redirect_hop_is_checked_and_pinned_under_the_name_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(anyio, "getaddrinfo", Rebinding("93.184.215.14", honest=2))
    sent: list[tuple[str, str, str]] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(seen(request))
        location = {"/first.png": "/second.png", "/second.png": "https://results.example/third.png"}
        if request.url.path in location:
            return httpx2.Response(302, headers={"location": location[request.url.path]})
        return httpx2.Response(200, content=png_bytes())

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        store = ResultStore(tmp_path, http, api_base_url="https://dashscope-intl.aliyuncs.com/api/v1")
        with pytest.raises(ImagesNotSaved, match=r"image 1: .*results\.example \(127\.0\.0\.1\): not a public address"):
            await store.save("t1", ["https://results.example/first.png"], None, {})
    assert sent == [  # the relative hop joined to the name, not the address; the third lookup rebound: refused
        ("https://93.184.215.14/first.png", "results.example", "results.example"),
        ("https://93.184.215.14/second.png", "results.example", "results.example"),
    ]


async def test_an_upload_goes_to_the_address_its_check_approved(monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = Rebinding("93.184.215.14")
    monkeypatch.setattr(anyio, "getaddrinfo", resolver)
    sent: list[tuple[str, str, str]] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(seen(request))
        return httpx2.Response(200)

    policy = {
        "upload_host": "https://uploads.example",
        "upload_dir": "dir",
        "oss_access_key_id": "id",
        "signature": "sig",
        "policy": "p",
        "x_oss_object_acl": "private",
        "x_oss_forbid_overwrite": "true",
    }
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        client = DashScopeClient(http, api_key="sk-x", base_url="https://dashscope-intl.aliyuncs.com/api/v1")
        assert await client.upload(policy, b"bytes", "a.png", "image/png") == "oss://dir/a.png"
    assert resolver.asked == ["uploads.example"]
    assert sent == [("https://93.184.215.14", "uploads.example", "uploads.example")]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A real HTTPS server on a loopback port whose certificate is for results.example (made with the openssl
    command), answering every GET with the Host header it was sent; yields its port and the certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("the test's certificate is made with the openssl command")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subject = ["-subj", "/CN=results.example", "-addext", "subjectAltName=DNS:results.example"]
    files = ["-keyout", key, "-out", cert]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject, *files],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = str(self.headers["Host"]).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], cert
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


async def test_a_pinned_connection_still_verifies_the_certificate_for_the_name(
    tls_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check is told the names resolve to the server's loopback address and that it is fine, so what is
    # tested is only where the connection goes and which name TLS verifies.
    port, cert = tls_server
    monkeypatch.setattr(anyio, "getaddrinfo", Rebinding("127.0.0.1", honest=99))

    def loopback_allowed(address: str) -> bool:
        return address == "127.0.0.1"

    monkeypatch.setattr(transport, "_is_public", loopback_allowed)
    async with httpx2.AsyncClient(verify=ssl.create_default_context(cafile=cert)) as client:
        request = client.build_request("GET", f"https://results.example:{port}/r.png")
        response = await send_checked(client, request, api_base_url="https://dashscope.example/api/v1")
        assert (response.status_code, response.text) == (200, f"results.example:{port}")
        other = client.build_request("GET", f"https://localhost:{port}/r.png")  # same address, not its certificate's
        with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await send_checked(client, other, api_base_url="https://dashscope.example/api/v1")


async def test_remote_input_urls_are_passed_to_dashscope_not_fetched(mcp: Client, emulator: EmulatorState) -> None:
    await mcp.call_tool("edit_image", {"prompt": "x", "images": ["https://example.com/photo.png"], "size": "1K"})
    sent = next(r for r in emulator.requests if r.method == "POST")
    assert sent.body["input"]["messages"][0]["content"][0] == {"image": "https://example.com/photo.png"}


# --- spend --------------------------------------------------------------------------------------------------


async def test_a_call_over_the_per_call_limit_is_refused_before_any_request(
    mcp: Client, emulator: EmulatorState
) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "a set", "n": 12, "enable_sequential": True})
    assert result.is_error
    assert "n must be at most 4, the most paid images one call may request on this server" in text(result)
    assert "(WAN_MCP_MAX_IMAGES_PER_CALL); got 12. Split the set over several calls, or raise" in text(result)
    assert emulator.requests == []


async def test_the_daily_limit_counts_what_was_requested(
    http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState
) -> None:
    async with Client(build_app(server_settings.model_copy(update={"max_images_per_day": 3}), http)) as client:
        emulator.add_fault(Fault("error", target="submit", status=400, code="InvalidParameter", message="no"))
        refused_by_api = await client.call_tool("submit_task", {"prompt": "x", "n": 2})
        assert refused_by_api.is_error  # a refused submission costs nothing and counts nothing
        first = await client.call_tool("submit_task", {"prompt": "x", "n": 2})
        assert not first.is_error
        second = await client.call_tool("submit_task", {"prompt": "x", "n": 2})
    assert second.is_error
    assert "2 were requested in the last 24 h and WAN_MCP_MAX_IMAGES_PER_DAY is 3" in text(second)
    assert len(emulator.tasks) == 1


# --- hostile images ----------------------------------------------------------------------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims to be width×height but carries almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


async def test_a_decompression_bomb_is_refused_before_decoding(
    mcp: Client, tmp_path: Path, emulator: EmulatorState
) -> None:
    side = int((MAX_DECODE_PIXELS * 1.5) ** 0.5)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(side, side))
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(bomb)]})
    assert result.is_error
    assert emulator.requests == []
    # Its size, the limit and what to do, in words.
    side_max = math.isqrt(MAX_DECODE_PIXELS // 2)
    assert f"image is {side}×{side} px ({side * side:,} pixels)" in text(result)
    assert f"over the {MAX_DECODE_PIXELS:,} pixels this server decodes safely" in text(result)
    assert f"scale it down to at most {side_max} px on its longer side and pass the smaller file" in text(result)


# --- the key ---------------------------------------------------------------------------------------------------

SECRET = "sk-security-test-9d41c7ee0b"


@pytest.fixture(scope="module")
def served() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({SECRET}))) as running:
        yield running


async def test_the_key_appears_nowhere_a_session_wrote(served: RunningEmulator, tmp_path: Path) -> None:
    stdout_log, stderr_log = tmp_path / "stdout.log", tmp_path / "stderr.log"
    env = server_env(served.base_url, SECRET, tmp_path, WAN_MCP_LOG_LEVEL="DEBUG")
    tee = [str(Path(__file__).parents[1] / "support" / "stdio_tee.py"), str(stdout_log), "--stderr", str(stderr_log)]
    params = StdioServerParameters(command=sys.executable, args=[*tee, sys.executable, "-m", "wan_image_mcp"], env=env)
    served.state.add_fault(Fault("fail_task", code="InternalError.Algo", message="failed"))
    pixels = io.BytesIO()
    Image.frombytes("RGB", (320, 320), bytes(range(256)) * 1200).save(pixels, "PNG")
    payload = base64.b64encode(pixels.getvalue()).decode()
    photo = "data:image/png;base64," + payload
    with anyio.fail_after(60):
        async with Client(params) as client:
            await client.call_tool("edit_image", {"prompt": "x", "size": "1K"})  # a failed task
            await client.call_tool("edit_image", {"prompt": "x", "size": "1K", "n": 2, "images": [photo]})  # a success
            await client.call_tool("edit_image", {"prompt": "", "images": ["/etc/passwd"]})  # refused
            served.state.add_fault(Fault("error", target="submit", status=401, code="InvalidApiKey", message="bad"))
            await client.call_tool("submit_task", {"prompt": "x"})  # an API error
            await client.call_tool("list_tasks", {})
    logged = stderr_log.read_text()
    assert "DEBUG" in logged  # the most talkative logs were on
    # one structured line per API request: method, path, status, request_id, duration
    assert re.search(
        r"api method=POST path=/services/aigc/image-generation/generation status=200 request_id=\S+ ms=\d+", logged
    )
    assert re.search(r"api method=POST path=\S+ status=401 request_id=\S+ ms=\d+", logged)
    written = [stdout_log, stderr_log, *tmp_path.rglob("*")]
    files = [path for path in written if path.is_file()]
    assert any(path.suffix == ".json" for path in files) and any("journal" in path.name for path in files)
    for path in files:
        written_bytes = path.read_bytes()
        assert SECRET.encode() not in written_bytes, path
        assert payload[1000:1100].encode() not in written_bytes, path  # nor the image bytes


BROKEN_KEYS = {
    "newline": ("sk-9f3c1e7a\nb2d84f60aa", "contains a newline at position 12"),
    "header injection": ("sk-9f3c1e7a\r\nX-Injected: b2d84f60aa", "contains a carriage return at position 12"),
    "non-ASCII": ("sk-9f3c1e7a\u00e9b2d84f60aa", "contains a non-ASCII character at position 12"),
    "space": ("sk-9f3c1e7a b2d84f60aa", "contains a space at position 12"),
    "control character": ("sk-9f3c1e7a\x1bb2d84f60aa", "contains a control character at position 12"),
}


@pytest.mark.parametrize(("key", "why"), BROKEN_KEYS.values(), ids=BROKEN_KEYS.keys())
async def test_a_key_with_a_character_no_header_can_carry_is_refused_at_start_and_never_shown(
    key: str, why: str, served: RunningEmulator, tmp_path: Path
) -> None:
    stdout_log, stderr_log = tmp_path / "stdout.log", tmp_path / "stderr.log"
    env = server_env(served.base_url, key, tmp_path, WAN_MCP_LOG_LEVEL="DEBUG")
    tee = [str(Path(__file__).parents[1] / "support" / "stdio_tee.py"), str(stdout_log), "--stderr", str(stderr_log)]
    params = StdioServerParameters(command=sys.executable, args=[*tee, sys.executable, "-m", "wan_image_mcp"], env=env)
    before = len(served.state.requests)
    said: list[str] = []
    with anyio.fail_after(60):
        async with Client(params) as client:
            for tool, arguments in (
                ("edit_image", {"prompt": "x", "size": "1K"}),
                ("submit_task", {"prompt": "x"}),
                ("check_task", {"task_id": "0385dc79-5ff8-4d82-bcb6-8a1d7c0e3f21"}),
                ("cancel_task", {"task_id": "0385dc79-5ff8-4d82-bcb6-8a1d7c0e3f21"}),
            ):
                result = await client.call_tool(tool, arguments)
                assert result.is_error, tool
                said.append(text(result))
    assert served.state.requests[before:] == []  # nothing was sent with it
    for message in said:
        assert f"DASHSCOPE_API_KEY {why}" in message and "Traceback" not in message, message
    assert f"DASHSCOPE_API_KEY {why}" in stderr_log.read_text()  # said at start, on stderr
    halves = ("sk-9f3c1e7a", "b2d84f60aa")
    for path in [stdout_log, stderr_log, *tmp_path.rglob("*")]:
        if path.is_file():
            for half in halves:
                assert half.encode() not in path.read_bytes(), path
    for message in said:
        assert not any(half in message for half in halves), message


@pytest.mark.slow
async def test_a_header_the_http_stack_refuses_is_not_sent_and_its_error_does_not_quote_the_key(
    served: RunningEmulator,
) -> None:
    before = len(served.state.requests)
    async with httpx2.AsyncClient() as http:
        client = DashScopeClient(http, api_key=SECRET, base_url=served.base_url, workspace="ws\r\nX-Injected: 1")
        with pytest.raises(APIConnectionError) as caught:
            await client.get_task("0385dc79-5ff8-4d82-bcb6-8a1d7c0e3f21")
    assert not caught.value.request_sent
    assert "a header is invalid" in str(caught.value) and SECRET not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert served.state.requests[before:] == []


async def test_a_client_is_never_made_with_a_key_no_header_can_carry() -> None:
    async with httpx2.AsyncClient() as http:
        for key, why in BROKEN_KEYS.values():
            with pytest.raises(UnusableKey, match=why) as caught:
                DashScopeClient(http, api_key=key, base_url="http://127.0.0.1:9/api/v1")
            assert "9f3c1e7a" not in str(caught.value)


def test_a_bad_key_in_the_environment_is_named_but_not_shown(tmp_path: Path) -> None:
    env = server_env(None, SECRET, None, WAN_MCP_REGION="mars", WAN_MCP_DB=str(tmp_path / "j.sqlite3"))
    done = subprocess.run(
        [sys.executable, "-m", "wan_image_mcp"], env=env, capture_output=True, text=True, timeout=30, input=""
    )
    assert done.returncode == 2
    assert done.stderr.startswith("wan-image-mcp: WAN_MCP_REGION='mars' is not a known region")
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr + done.stdout
