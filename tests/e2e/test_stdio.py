"""Every line a client writes over stdio gets an answer (or, for a notification or a blank line, none), and the
server serves on: raw bytes written to a real ``python -m wan_image_mcp`` subprocess, every byte of its stdout
read back as JSON-RPC."""

from __future__ import annotations

import io
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import IO, Any, cast

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, JSONRPCNotification, TextContent

from tests.support.helpers import http_serving, server_env
from wan_image_mcp.emulator import EmulatorConfig, EmulatorState
from wan_image_mcp.emulator.serve import RunningEmulator
from wan_image_mcp.mcp_server.transports.stdio import MAX_LINE_BYTES, StdioReader, WritableMessages, lone_surrogates

KEY = "sk-stdio-test"
URL = "https://example.com/street-1280-720.png"
WITHIN = 20.0
"""Seconds any one answer may take (the first includes the server's start)."""


class RawSession:
    """The server over stdio, driven byte by byte: ``send`` writes one line, ``until_answer`` reads every message
    up to the answer to an id (each must be JSON-RPC 2.0), failing after WITHIN seconds."""

    def __init__(self, command: list[str], env: dict[str, str], stderr: IO[bytes]) -> None:
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env)
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.ids = count(1000)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def send(self, line: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + b"\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any] | None = None) -> int:
        request_id = next(self.ids)
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        self.send(json.dumps(message).encode())
        return request_id

    def until_answer(self, request_id: object) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The messages before the answer to ``request_id``, and that answer."""
        before: list[dict[str, Any]] = []
        for _ in range(1000):
            try:
                line = self.lines.get(timeout=WITHIN)
            except queue.Empty:
                pytest.fail(f"no answer to id {request_id!r} within {WITHIN} s; before it: {before}")
            message = json.loads(line)
            assert message["jsonrpc"] == "2.0", line[:200]
            if message.get("id") == request_id and "method" not in message:
                return before, message
            before.append(message)
        pytest.fail("a thousand messages and no answer")

    def close(self) -> int:
        """End stdin (the server's cue to stop) and return its exit code, killing it after 10 s."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.reader.join(timeout=10)  # its stdout ended with the process
        assert self.process.stdout is not None
        self.process.stdout.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def served() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}))) as running:
        yield running


@contextmanager
def raw_server(served: RunningEmulator, folder: Path, **settings: str) -> Generator[RawSession]:
    """A server over stdio in ``folder`` with ``settings``, initialized (protocol 2025-11-25), its stderr in a
    file; once stdin ends it must exit 0 with no traceback."""
    env = server_env(served.base_url, KEY, folder, WAN_MCP_HARVEST="0", WAN_MCP_PREVIEWS="0", **settings)
    with (folder / "stderr.log").open("wb") as stderr:
        raw = RawSession([sys.executable, "-m", "wan_image_mcp"], env, stderr)
        try:
            hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
            _, answer = raw.until_answer(raw.request("initialize", hello))
            assert "result" in answer, answer
            raw.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
            yield raw
        finally:
            code = raw.close()
    assert code == 0, "the server did not end cleanly when its stdin ended"
    assert b"Traceback" not in (folder / "stderr.log").read_bytes()


@pytest.fixture(scope="module")
def session(served: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawSession]:
    """One server for the module."""
    with raw_server(served, tmp_path_factory.mktemp("stdio")) as raw:
        yield raw


def still_serving(session: RawSession) -> list[dict[str, Any]]:
    """A tools/list after what was sent: the messages that came before its answer (which must list our tools)."""
    before, answer = session.until_answer(session.request("tools/list"))
    assert "edit_image" in [tool["name"] for tool in answer["result"]["tools"]]
    return before


TOOLS_LIST = b'"jsonrpc":"2.0","method":"tools/list"'
LONG = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"edit_image","arguments":{"prompt":"'


@pytest.mark.parametrize(
    ("line", "code", "answer_id"),
    [
        pytest.param(b'{"jsonrpc":"2.0","id":7,"method":', -32700, None, id="not JSON"),
        pytest.param(b"\xff\xfe{}", -32700, None, id="not UTF-8 outside a string"),
        pytest.param(b"{" + TOOLS_LIST + b',"id":7,"params":{}} trailing', -32700, None, id="JSON then more"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, -32700, None, id="nested too deep"),
        pytest.param(b"[{" + TOOLS_LIST + b',"id":7}]', -32600, 7, id="a batch"),
        pytest.param(b'[{"method":"x","id":"\\udead"}]', -32600, None, id="a batch whose id is a lone surrogate"),
        pytest.param(b"[]", -32600, None, id="an empty batch"),
        pytest.param(b"{" + TOOLS_LIST + b',"id":7,"params":"x"}', -32600, 7, id="params a string"),
        pytest.param(b"{" + TOOLS_LIST + b',"id":"seven","params":[1]}', -32600, "seven", id="params an array"),
        pytest.param(b'{"jsonrpc":"1.0","id":7,"method":"tools/list"}', -32600, 7, id="jsonrpc 1.0"),
        pytest.param(b'{"jsonrpc":"2.0","id":7,"method":42}', -32600, 7, id="method a number"),
        pytest.param(b"{" + TOOLS_LIST + b',"id":[7]}', -32600, None, id="id an array"),
        pytest.param(b"{" + TOOLS_LIST + b',"id":"\\ud800"}', -32600, None, id="id a lone surrogate"),
        pytest.param(b'{"jsonrpc":"2.0","id":7}', -32600, None, id="a response with neither result nor error"),
        pytest.param(b"42", -32600, None, id="a number"),
        pytest.param(LONG + b"a" * MAX_LINE_BYTES + b'"}}}', -32600, None, id="longer than the limit"),
    ],
)
def test_a_line_the_sdk_would_drop_is_answered_with_its_code_and_id_and_the_server_serves_on(
    session: RawSession, line: bytes, code: int, answer_id: object
) -> None:
    session.send(line)
    (error,) = still_serving(session)
    assert error["id"] == answer_id
    assert error["error"]["code"] == code
    assert error["error"]["message"].startswith(("Parse error: ", "Invalid Request: "))


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b" \t \r", id="only whitespace"),
        pytest.param(b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":"x"}', id="invalid notification"),
        pytest.param(b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":[]}', id="notification, array"),
        pytest.param(b'{"jsonrpc":"2.0","method":"notifications/x","params":{"s":"\\udfff"}}', id="surrogate, notice"),
    ],
)
def test_a_blank_line_or_a_bad_notification_gets_no_answer_and_the_server_serves_on(
    session: RawSession, line: bytes
) -> None:
    session.send(line)
    assert still_serving(session) == []


def test_a_lone_surrogate_in_a_request_other_than_a_tool_call_is_replaced_and_answered(session: RawSession) -> None:
    session.send(b'{"jsonrpc":"2.0","id":"p","method":"prompts/get","params":{"name":"no such \\ud83d"}}')
    before, answer = session.until_answer("p")
    assert before == []
    assert answer["error"]["message"].startswith("unknown prompt 'no such \ufffd'")
    assert still_serving(session) == []


def text_blocks(answer: dict[str, Any]) -> list[str]:
    return [block["text"] for block in answer["result"]["content"] if block["type"] == "text"]


@pytest.mark.parametrize(
    ("prompt", "sent"),
    [
        pytest.param(b"a red fox \\ud83d", "a red fox \ufffd", id="JSON escape of half an emoji"),
        pytest.param(b"\\ude00 a red fox", "\ufffd a red fox", id="the other half"),
        pytest.param(b"a red fox \xed\xa0\xbd", "a red fox \ufffd\ufffd\ufffd", id="half an emoji as UTF-8 bytes"),
        pytest.param(b"a red fox \xf0\x9f", "a red fox \ufffd\ufffd", id="an emoji cut in its UTF-8 bytes"),
    ],
)
def test_a_cut_emoji_in_a_prompt_becomes_u_fffd_the_edit_is_done_and_the_result_says_so(
    session: RawSession, served: RunningEmulator, prompt: bytes, sent: str
) -> None:
    served.state.requests.clear()
    arguments = b'{"prompt":"' + prompt + b'","images":["' + URL.encode() + b'"],"wait_seconds":30}'
    session.send(
        b'{"jsonrpc":"2.0","id":"edit","method":"tools/call","params":{"name":"edit_image","arguments":'
        + arguments
        + b"}}"
    )
    before, answer = session.until_answer("edit")
    assert before == []
    assert answer["result"].get("isError") is not True, answer
    assert answer["result"]["structuredContent"]["status"] == "SUCCEEDED"
    note = text_blocks(answer)[-1]
    assert note.startswith("Note: prompt held what is not text") and "U+FFFD" in note
    (submitted,) = [r for r in served.state.requests if r.method == "POST"]
    assert submitted.body["input"]["messages"][0]["content"][-1]["text"] == sent
    assert still_serving(session) == []


def test_a_replaced_argument_is_named_in_a_tool_error_too(session: RawSession) -> None:
    session.send(
        b'{"jsonrpc":"2.0","id":"t","method":"tools/call","params":{"name":"check_task",'
        b'"arguments":{"task_id":"task-\\ud800"}}}'
    )
    _, answer = session.until_answer("t")
    assert answer["result"]["isError"] is True
    first, *_, note = text_blocks(answer)
    assert "task-\ufffd" in first and "is not a task id" in first
    assert note.startswith("Note: task_id held what is not text")


def test_a_whole_emoji_sent_as_a_surrogate_pair_reaches_the_tool_unchanged_and_without_a_note(
    session: RawSession,
) -> None:
    session.send(
        b'{"jsonrpc":"2.0","id":"ok","method":"tools/call","params":{"name":"check_task",'
        b'"arguments":{"task_id":"task-\\ud83d\\ude00"}}}'
    )
    _, answer = session.until_answer("ok")
    assert "task-\U0001f600" in text_blocks(answer)[0]  # a whole emoji, escaped as a pair, is kept
    assert not any(text.startswith("Note:") for text in text_blocks(answer))


@pytest.mark.anyio
async def test_a_cut_emoji_that_reaches_a_tool_without_the_stdio_reader_is_replaced_and_said(
    mcp: Client, emulator: EmulatorState
) -> None:
    """In process, and over HTTP in the 2026 protocol (whose parser keeps lone surrogates), the middleware
    repairs what reaches a tool."""
    result = await mcp.call_tool("edit_image", {"prompt": "a red fox \ud83d", "size": "1K", "wait_seconds": 30})
    said = [block.text for block in result.content if isinstance(block, TextContent)]
    assert not result.is_error, said
    assert said[-1].startswith("Note: prompt held what is not text")
    (submitted,) = [r for r in emulator.requests if r.method == "POST"]
    assert submitted.body["input"]["messages"][0]["content"][-1]["text"] == "a red fox \ufffd"


def http_answer(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC message of an HTTP answer, a JSON body or a short SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return json.loads(data[-1])
    return response.json()


def test_over_http_a_lone_surrogate_is_a_parse_error_in_2025_and_replaced_and_said_in_2026(tmp_path: Path) -> None:
    env = server_env("http://127.0.0.1:9", KEY, tmp_path)  # nothing is sent: the task id is refused first
    call = {"name": "check_task", "arguments": {"task_id": "task-SURROGATE"}}
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    with http_serving(env) as (url, _):
        legacy = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}
        body = json.dumps(legacy).replace("SURROGATE", "\\ud800").encode()
        refused = http_answer(httpx2.post(url, content=body, headers=headers, timeout=30))
        assert refused["error"]["code"] == -32700

        envelope: dict[str, Any] = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        modern = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {**call, "_meta": envelope}}
        body = json.dumps(modern).replace("SURROGATE", "\\ud800").encode()
        routing = {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "check_task"}
        answered = http_answer(httpx2.post(url, content=body, headers={**headers, **routing}, timeout=30))
    first, *_, note = text_blocks(answered)
    assert answered["result"]["isError"] is True and "task-\ufffd" in first
    assert note.startswith("Note: task_id held what is not text")


# --- text made on the server side that is not text: a file name whose bytes are not UTF-8 ----------------


def not_utf8_names(tmp_path: Path) -> tuple[str, Path]:
    """WAN_MCP_ALLOWED_DIRS naming ``allowed`` and a folder ``imgs\\xe9`` (Latin-1), and in ``allowed`` a link
    ``dlink`` to a directory ``d\\xff``: Python reads both odd names with lone surrogates (``os.fsdecode``).
    Returns the setting and a path outside them."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    odd = os.path.join(os.fsencode(allowed), b"d\xff")
    os.mkdir(odd)
    os.symlink(odd, allowed / "dlink")
    latin1 = os.path.join(os.fsencode(tmp_path), b"imgs\xe9")
    os.mkdir(latin1)
    return f"{os.fsdecode(latin1)}{os.pathsep}{allowed}", tmp_path / "elsewhere.png"


def test_a_file_name_that_is_not_utf_8_in_a_result_or_a_refusal_is_shown_with_u_fffd_and_the_server_serves_on(
    served: RunningEmulator, tmp_path: Path
) -> None:
    allowed, outside = not_utf8_names(tmp_path)
    inspect = {"name": "inspect_image", "arguments": {"images": [str(tmp_path / "allowed" / "dlink")]}}
    with raw_server(served, tmp_path, WAN_MCP_ALLOWED_DIRS=allowed) as raw:
        _, answer = raw.until_answer(raw.request("tools/call", inspect))
        shown = f"{tmp_path}/allowed/d\ufffd"
        assert text_blocks(answer) == [f"image 1: is a directory, not an image file: {shown}"]
        _, answer = raw.until_answer(raw.request("tools/call", {**inspect, "arguments": {"images": [str(outside)]}}))
        (said,) = text_blocks(answer)
        assert f"is outside the allowed directories ({tmp_path}/imgs\ufffd, " in said
        assert still_serving(raw) == []


def test_over_http_a_file_name_that_is_not_utf_8_in_a_refusal_is_answered_with_u_fffd_in_both_eras(
    tmp_path: Path,
) -> None:
    allowed, outside = not_utf8_names(tmp_path)
    env = server_env("http://127.0.0.1:9", KEY, tmp_path, WAN_MCP_ALLOWED_DIRS=allowed)
    call = {"name": "inspect_image", "arguments": {"images": [str(outside)]}}
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    envelope: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    modern = {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "inspect_image"}
    with http_serving(env) as (url, _):
        legacy = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}
        answers = [http_answer(httpx2.post(url, json=legacy, headers=headers, timeout=30))]
        current = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {**call, "_meta": envelope}}
        answers.append(http_answer(httpx2.post(url, json=current, headers={**headers, **modern}, timeout=30)))
    for answer in answers:
        (said,) = text_blocks(answer)
        assert f"is outside the allowed directories ({tmp_path}/imgs\ufffd, " in said


@pytest.mark.anyio
async def test_every_message_written_over_stdio_is_made_writable_even_one_no_handler_answered() -> None:
    """The last line of defence (stdio.WritableMessages): the SDK's stdout writer raises on a lone surrogate and
    takes the whole server down with it."""
    sent, received = anyio.create_memory_object_stream[SessionMessage](1)
    progress = {"progressToken": 1, "progress": 0.5, "message": "saving to d\udcff"}
    notification = JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params=progress)
    async with sent, received:
        await WritableMessages(sent).send(SessionMessage(notification))
        written = (await received.receive()).message
    line = written.model_dump_json(by_alias=True, exclude_unset=True)  # what raised before
    assert json.loads(line)["params"]["message"] == "saving to d\ufffd"


# --- the line-length limit, at its edge (in process, with a limit of 64 bytes) ---------------------------

LIMIT = 64


def ping(size: int, request_id: int) -> bytes:
    """A ping whose line holds exactly ``size`` bytes, its line ending not counted."""
    head, tail = b'{"jsonrpc":"2.0","id":%d,"method":"ping","params":{"pad":"' % request_id, b'"}}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


@pytest.mark.anyio
@pytest.mark.parametrize("ending", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
async def test_a_line_of_exactly_the_limit_is_read_and_a_longer_one_is_answered_and_only_its_own_bytes_skipped(
    ending: bytes,
) -> None:
    over_a_skip_chunk = b"x" * (3 * 1024 * 1024)
    lines = [ping(LIMIT, 1), ping(LIMIT + 1, 2), ping(40, 3), over_a_skip_chunk, ping(40, 4), ping(LIMIT - 1, 5)]
    wire = io.BytesIO(b"".join(line + ending for line in lines) + ping(LIMIT, 6))  # the last one without an ending
    reader = StdioReader(wire, LIMIT)
    sent, received = anyio.create_memory_object_stream[SessionMessage](10)
    async with received:
        async with sent:
            reader.answer_on(sent)
            with anyio.fail_after(10):
                served = [json.loads(line)["id"] async for line in reader]
        answers = [item.message.model_dump(exclude_unset=True) async for item in received]
    assert served == [1, 3, 4, 5, 6]
    said = "Invalid Request: a message longer than 64 bytes is not read (pass images as paths)"
    assert answers == [{"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": said}}] * 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("raised", "code"),
    [
        pytest.param(MCPError(INVALID_PARAMS, "unknown resource wan://d\udcff"), INVALID_PARAMS, id="MCPError"),
        pytest.param(OSError("cannot read d\udcff"), INTERNAL_ERROR, id="any other"),
    ],
)
async def test_an_error_whose_text_holds_a_lone_surrogate_is_answered_with_u_fffd_on_every_transport(
    raised: Exception, code: int
) -> None:
    """What the lone_surrogates middleware does for HTTP, where no WritableMessages stands before the writer."""
    context: ServerRequestContext[None, Any] = ServerRequestContext(
        session=cast(Any, None), lifespan_context=None, protocol_version="2025-11-25", method="resources/read"
    )

    async def failing(_: ServerRequestContext[Any, Any]) -> HandlerResult:
        raise raised

    with pytest.raises(MCPError) as caught:
        await lone_surrogates(context, failing)
    assert caught.value.error.code == code
    assert "d\ufffd" in caught.value.error.model_dump_json()
