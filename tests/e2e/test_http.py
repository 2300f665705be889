"""Streamable HTTP: the SDK's HTTP client against `wan-image-mcp serve --transport http`, with the safety
defaults: loopback bind, DNS-rebinding protection, and a bearer token wherever one is set or needed."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from tests.support.helpers import HTTP_KEY, http_server, server_env
from wan_image_mcp.emulator import EmulatorConfig
from wan_image_mcp.emulator.serve import RunningEmulator
from wan_image_mcp.mcp_server.transports.http import http_app
from wan_image_mcp.settings import Settings
from wan_image_mcp.sockets import bind

KEY = HTTP_KEY
TOKEN = "t0ken-for-tests-only-3a9f"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}))) as running:
        yield running


def test_the_http_server_edits_through_the_sdk_client(emulator: RunningEmulator, tmp_path: Path) -> None:
    async def session(url: str) -> None:
        async with Client(url) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "edit_image" in names
            result = await client.call_tool("edit_image", {"prompt": "over http", "size": "1K"})
            assert not result.is_error, result.content
            assert result.structured_content is not None
            assert Path(result.structured_content["images"][0]["path"]).is_file()

    with http_server(emulator, tmp_path) as url:
        assert url.startswith("http://127.0.0.1:")
        anyio.run(session, url)


def test_progress_and_protocol_errors_reach_an_http_client(emulator: RunningEmulator, tmp_path: Path) -> None:
    said: list[str] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        del progress, total
        said.append(message or "")

    async def session(url: str) -> None:
        with anyio.fail_after(60):
            async with Client(url) as client:
                result = await client.call_tool(
                    "edit_image", {"prompt": "over http", "size": "1K"}, progress_callback=progress
                )
                assert not result.is_error, result.content
                with pytest.raises(MCPError) as caught:
                    await client.get_prompt("fuse_images", {"images": "a.png"})
                assert caught.value.code == INVALID_PARAMS
                assert caught.value.message == "prompt 'fuse_images': missing required argument goal"
                with pytest.raises(MCPError) as unknown:
                    await client.get_prompt("nope", {})
                assert unknown.value.code == INVALID_PARAMS and "unknown prompt 'nope'" in unknown.value.message

    logged: list[str] = []
    with http_server(emulator, tmp_path, stderr=logged) as url:
        anyio.run(session, url)
    assert [m.split(" ")[0] for m in said] == ["submitted", "RUNNING", "downloading", "saved"], said
    assert "Traceback" not in "".join(logged)


def test_a_set_token_is_required(emulator: RunningEmulator, tmp_path: Path) -> None:
    async def session(url: str) -> None:
        async with httpx2.AsyncClient() as anonymous:
            refused = await anonymous.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            assert (await client.list_tools()).tools

    with http_server(emulator, tmp_path, WAN_MCP_HTTP_TOKEN=TOKEN) as url:
        anyio.run(session, url)


def test_dns_rebinding_protection_is_on(emulator: RunningEmulator, tmp_path: Path) -> None:
    with http_server(emulator, tmp_path) as url:
        rebound = httpx2.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers={"Host": "evil.example"}, timeout=10
        )
    assert rebound.status_code in (403, 421)


def test_a_non_loopback_bind_needs_a_token(tmp_path: Path) -> None:
    env = server_env(None, KEY, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "wan_image_mcp", "serve", "--transport", "http", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "needs a bearer token: set WAN_MCP_HTTP_TOKEN" in done.stderr


def test_a_wildcard_bind_answers_only_allowed_hosts_with_the_token(emulator: RunningEmulator, tmp_path: Path) -> None:
    async def session(url: str) -> None:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                assert (await client.list_tools()).tools
            other = await http.post(
                url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers={"Host": "evil.example"}
            )
            assert other.status_code in (403, 421)

    with http_server(
        emulator, tmp_path, "--host", "0.0.0.0", WAN_MCP_HTTP_TOKEN=TOKEN, WAN_MCP_HTTP_ALLOWED_HOSTS="127.0.0.1"
    ) as url:
        anyio.run(session, url)


@contextmanager
def served_as(host: str, folder: Path, allowed_hosts: list[str]) -> Generator[str]:
    """The HTTP app configured as for a bind on ``host``, but listening on a loopback port; yields its /mcp URL.
    The socket listens before the server starts, so requests queue until it answers: no wait for it to start."""
    settings = Settings(output_dir=folder / "out", journal_path=folder / "journal.sqlite3", harvest=False)
    app = http_app(settings, host=host, token=TOKEN, allowed_hosts=allowed_hosts)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    sock = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_an_allowed_host_is_admitted_with_or_without_its_port(tmp_path: Path) -> None:
    with served_as("0.0.0.0", tmp_path, ["mcp.example.com"]) as url:
        statuses = statuses_for(
            url, ["mcp.example.com", "mcp.example.com:8443", "evil.example", "mcp.example.com.evil.example"]
        )
    assert statuses == {
        "mcp.example.com": 200,
        "mcp.example.com:8443": 200,
        "evil.example": 421,
        "mcp.example.com.evil.example": 421,
    }


def statuses_for(url: str, hosts: list[str]) -> dict[str, int]:
    """The status of an authorised tools/list sent with each of these Host headers."""
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream"}
    return {
        host: httpx2.post(url, json=listing, headers={**headers, "Host": host}, timeout=10).status_code
        for host in hosts
    }


def test_an_ipv6_bind_admits_its_address_and_listed_ipv6_literals_in_brackets(tmp_path: Path) -> None:
    admitted = ["[::]", "[::]:8000", "[2001:db8::1]", "[2001:db8::1]:8443", "[2001:db8:0::1]:80", "[2001:db8::2]:8443"]
    refused = ["[2001:db8::2]:9000", "[2001:db8::2]", "[::2]:8000", "::", "evil.example"]
    with served_as("::", tmp_path, ["2001:db8:0::1", "[2001:db8::2]:8443"]) as url:
        statuses = statuses_for(url, [*admitted, *refused])
    assert statuses == {host: 200 if host in admitted else 421 for host in statuses}


def test_a_loopback_bind_outside_the_usual_names_keeps_dns_rebinding_protection(tmp_path: Path) -> None:
    with served_as("127.0.0.2", tmp_path, []) as url:
        statuses = statuses_for(url, ["127.0.0.2:8000", "localhost:8000", "[::1]:8000", "evil.example"])
    assert statuses == {"127.0.0.2:8000": 200, "localhost:8000": 200, "[::1]:8000": 200, "evil.example": 421}


def test_the_bearer_scheme_is_matched_in_any_case_and_the_token_exactly(tmp_path: Path) -> None:
    admitted = [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"bEaReR {TOKEN}", f"Bearer  {TOKEN}"]
    refused = ["Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, f"Bearer{TOKEN}", ""]
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    with served_as("127.0.0.1", tmp_path, []) as url:
        statuses = {
            given: httpx2.post(
                url,
                json=listing,
                headers={"Accept": "application/json, text/event-stream", "Authorization": given},
                timeout=10,
            ).status_code
            for given in [*admitted, *refused]
        }
    assert statuses == {given: 200 if given in admitted else 401 for given in statuses}


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1 cannot be bound)")
def test_the_http_server_bound_on_ipv6_answers_the_sdk_client(emulator: RunningEmulator, tmp_path: Path) -> None:
    async def session(url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            assert (await client.list_tools()).tools

    with http_server(emulator, tmp_path, "--host", "::1") as url:  # loopback: no token needed
        assert url.startswith("http://[::1]:")
        anyio.run(session, url, None)
    with http_server(
        emulator, tmp_path, "--host", "::", WAN_MCP_HTTP_TOKEN=TOKEN, WAN_MCP_HTTP_ALLOWED_HOSTS="::1"
    ) as url:
        anyio.run(session, url, TOKEN)  # Host: [::1]:port, listed as ::1
        port = url.rsplit(":", 1)[1].split("/")[0]
        assert statuses_for(url, [f"[::]:{port}", "evil.example"]) == {f"[::]:{port}": 200, "evil.example": 421}


@pytest.mark.anyio
async def test_connections_to_our_listening_sockets_send_without_waiting_for_acks() -> None:
    """asyncio turns Nagle's algorithm off only on sockets that say IPPROTO_TCP; with it on, every answer on a
    kept-alive connection (the HTTP transport's, the emulator's) waited ~40 ms for a delayed ACK."""
    sock = bind("127.0.0.1", 0)
    nodelay: list[int] = []
    seen = asyncio.Event()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nodelay.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        seen.set()
        writer.close()
        del reader

    async with await asyncio.start_server(accepted, sock=sock):
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        with anyio.fail_after(5):
            await seen.wait()
        writer.close()
    assert nodelay == [1]


def test_over_stateless_http_the_question_reaches_a_current_client_and_an_older_one_is_refused(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    from mcp.client.context import ClientRequestContext
    from mcp.types import ElicitRequestParams, ElicitResult

    asked: list[str] = []

    async def decline(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        del context
        asked.append(params.message)
        return ElicitResult(action="decline")

    async def session(url: str) -> tuple[str, str]:
        with anyio.fail_after(60):
            async with Client(url, elicitation_callback=decline) as current:  # 2026-07-28: InputRequiredResult
                declined = await current.call_tool("edit_image", {"prompt": "x", "size": "1K", "n": 2})
            async with Client(url, mode="legacy", elicitation_callback=decline) as older:  # 2025-11-25
                refused = await older.call_tool("edit_image", {"prompt": "x", "size": "1K", "n": 2})
        assert declined.is_error and refused.is_error
        return str(declined.content[0].model_dump()["text"]), str(refused.content[0].model_dump()["text"])

    before = len(emulator.state.requests)
    with http_server(emulator, tmp_path, WAN_MCP_CONFIRM_ABOVE_IMAGES="1") as url:
        declined, refused = anyio.run(session, url)
    assert asked == ["This will generate 2 paid images with wan2.7-image-pro. Proceed?"]
    assert "declined" in declined and "Nothing was sent" in declined
    assert "stateless HTTP" in refused and "WAN_MCP_CONFIRM_ABOVE_IMAGES=1" in refused, refused
    assert len(emulator.state.requests) == before  # nothing reached DashScope
