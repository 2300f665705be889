"""Every line a client writes over stdio gets an answer or reaches the server.

The SDK's stdio transport parses each line and, when it cannot, hands the dispatcher an exception that is logged
at DEBUG and dropped: the client waits for ever. So our reader sits in front of it (``serve_stdio``) and sorts
each line first:

* a message the SDK accepts goes on unchanged;
* a lone UTF-16 surrogate in a string (``"\\ud83d"``: an emoji cut in two by a JavaScript host), or bytes that
  are not UTF-8, become U+FFFD and the message goes on; a ``tools/call`` is marked so that its result says which
  arguments were changed (``lone_surrogates``, middleware, which repairs what HTTP lets through too), the others
  are logged on stderr;
* a line that is not JSON is answered -32700; a batch, a non-object, or a request the SDK refuses (``"params":
  "x"``, no ``method``, a wrong ``jsonrpc``) -32600, with the request's id when it has one (an id that held a
  lone surrogate cannot be written back: null); a line longer than ``MAX_LINE_BYTES`` -32600 with id null, its
  bytes skipped, never held whole; an invalid notification is logged, never answered (JSON-RPC: no id, no
  answer); a blank line is no message and is skipped.

Answers go through the SDK's own writer (its write stream), so frames never interleave and stdout carries
nothing but JSON-RPC.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections import deque
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, BinaryIO, Protocol, cast

import anyio
import anyio.to_thread
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    CallToolResult,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    TextContent,
)
from mcp_types import jsonrpc_message_adapter
from pydantic import ValidationError

log = logging.getLogger("wan_image_mcp")

MAX_LINE_BYTES = 64 * 1024 * 1024
"""The longest message read over stdio (64 MiB: a few 20 MB images as data URLs; a path is better for more)."""
REPLACED_KEY = "wan-image-mcp/replaced"
"""In a ``tools/call``'s ``params._meta``: the arguments whose lone surrogates the reader replaced."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_SKIP_CHUNK = 1024 * 1024
_JSON_TYPES: dict[type, str] = {
    str: "a string",
    list: "an array",
    int: "a number",
    float: "a number",
    bool: "true or false",
}


def _error(request_id: str | int | None, code: int, message: str) -> JSONRPCError:
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))


def _not_a_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _replace_lone_surrogates(message: Any) -> list[str]:
    """Replace, in place, every lone surrogate in ``message``'s strings (keys too) by U+FFFD; the paths changed
    (``params.arguments.prompt``, ``params.arguments.images[1]``), outermost first. Iterative: any depth."""
    replaced: list[str] = []

    def fixed(text: str, path: str) -> str:
        if _SURROGATE.search(text) is None:
            return text
        replaced.append(path)
        return _SURROGATE.sub("\ufffd", text)

    queue: deque[tuple[Any, str]] = deque([(message, "")])
    while queue:
        node, path = queue.popleft()
        if isinstance(node, list):
            items = cast(list[Any], node)
            for index, item in enumerate(items):
                at = f"{path}[{index}]"
                if isinstance(item, str):
                    items[index] = fixed(item, at)
                elif isinstance(item, list | dict):
                    queue.append((cast(Any, item), at))
        elif isinstance(node, dict):
            members = cast(dict[str, Any], node)
            for key, item in list(members.items()):
                name = _SURROGATE.sub("\ufffd", key)
                at = f"{path}.{name}" if path else name
                if name != key:
                    replaced.append(f"{at} (its name)")
                    del members[key]
                    members[name] = item
                if isinstance(item, str):
                    members[name] = fixed(item, at)
                elif isinstance(item, list | dict):
                    queue.append((cast(Any, item), at))
    return replaced


def _is_id(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _what_is_wrong(message: Mapping[str, Any]) -> str:
    if message.get("jsonrpc") != "2.0":
        return 'jsonrpc must be "2.0"'
    if "method" in message and not isinstance(message["method"], str):
        return "method must be a string"
    given: object = message.get("params", {})
    if not isinstance(given, dict):
        return f"params must be an object (named arguments), not {_JSON_TYPES.get(type(given), 'that')}"
    if "id" in message and not _is_id(message["id"]):
        return "id must be a string or an integer"
    if "method" not in message:
        return "a message needs a method (a request or notification) or a result or error (a response)"
    return "not a JSON-RPC request, notification or response MCP accepts"


def _accepted(line: str) -> bool:
    try:
        jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError:
        return False
    return True


def triage(raw: bytes) -> str | list[JSONRPCError]:
    """One line from the client: the text to hand the SDK (repaired if it held lone surrogates), or the answers
    to write instead (none: nothing may be answered)."""
    text = raw.decode("utf-8", "surrogateescape")  # bytes that are not UTF-8 become lone surrogates, repaired below
    if not text.strip():
        return []
    if _SURROGATE.search(text) is None:
        try:
            read = jsonrpc_message_adapter.validate_json(text, by_name=False)
        except ValidationError:
            pass  # the SDK would drop it: say why below
        else:
            if not isinstance(read, JSONRPCNotification) or "id" not in json.loads(text):
                return text  # (a request whose id is not a string or integer reads as a notification: said below)
    try:
        message: Any = json.loads(text, parse_constant=_not_a_constant)
    except (ValueError, RecursionError):
        return [_error(None, PARSE_ERROR, "Parse error: the line is not one JSON value")]
    replaced = _replace_lone_surrogates(message)
    if isinstance(message, list):
        said = "Invalid Request: JSON-RPC batches are not accepted (MCP 2025-06-18 and later): send one message a line"
        members = [(i, cast(dict[str, Any], m)) for i, m in enumerate(cast(list[Any], message)) if isinstance(m, dict)]
        ids: list[str | int] = [
            m["id"] for i, m in members if "method" in m and _is_id(m.get("id")) and f"[{i}].id" not in replaced
        ]
        return [_error(i, INVALID_REQUEST, said) for i in ids] or [_error(None, INVALID_REQUEST, said)]
    if not isinstance(message, dict):
        return [_error(None, INVALID_REQUEST, "Invalid Request: a message must be a JSON object")]
    fields = cast(dict[str, Any], message)
    method, params = fields.get("method"), fields.get("params")
    if replaced and method == "tools/call" and isinstance(params, dict):
        meta = cast(dict[str, Any], params).setdefault("_meta", {})
        if isinstance(meta, dict):
            cast(dict[str, Any], meta)[REPLACED_KEY] = replaced
    line = json.dumps(fields, ensure_ascii=False)
    if not _accepted(line) or ("id" in fields and not _is_id(fields["id"])):  # a bad id would read as no id
        wrong = _what_is_wrong(fields)
        if "method" in fields and "id" not in fields:
            log.warning("dropped a notification the server cannot read (%s); a notification gets no answer", wrong)
            return []
        readable = "method" in fields and _is_id(fields.get("id")) and "id" not in replaced
        return [_error(fields["id"] if readable else None, INVALID_REQUEST, f"Invalid Request: {wrong}")]
    if "id" in replaced:
        return [_error(None, INVALID_REQUEST, "Invalid Request: the id holds a lone UTF-16 surrogate")]
    if replaced and method != "tools/call":
        log.warning("%r: replaced lone UTF-16 surrogates by U+FFFD in %s", method or "a response", ", ".join(replaced))
    return line


def replacement_note(paths: Sequence[str]) -> str:
    """What a tool result says when its arguments were changed (paths as ``_replace_lone_surrogates`` gives)."""
    names = ", ".join(path.removeprefix("params.").removeprefix("arguments.") for path in paths)
    return (
        f"Note: {names} held what is not text (a lone UTF-16 surrogate, half of a character, as when an emoji is "
        "cut in two; or bytes that are not UTF-8); each was replaced by U+FFFD (\ufffd) and the call ran with "
        "that. Send the whole character, or none, to have it otherwise."
    )


async def lone_surrogates(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Middleware: lone surrogates that reach a handler (over HTTP the SDK parses with ``json.loads``, which keeps
    them) become U+FFFD, as the stdio reader makes them; and a ``tools/call`` whose arguments either changed says
    so in its result (an error too), as its last text block."""
    params = dict(ctx.params or {})
    repaired = _replace_lone_surrogates(params)
    if repaired:
        log.warning("%r: replaced lone UTF-16 surrogates by U+FFFD in %s", ctx.method, ", ".join(repaired))
        ctx = replace(ctx, params=params)
    result = await call_next(ctx)
    meta = params.get("_meta")
    marked = cast(Mapping[str, Any], meta).get(REPLACED_KEY) if isinstance(meta, Mapping) else None
    paths = [str(path) for path in cast(list[Any], marked)] if isinstance(marked, list) else []
    paths += repaired
    if ctx.method != "tools/call" or not paths:
        return result
    note = replacement_note(paths)
    if isinstance(result, CallToolResult):
        return result.model_copy(update={"content": [*result.content, TextContent(type="text", text=note)]})
    if isinstance(result, dict) and isinstance(result.get("content"), list):
        content = cast(list[Any], result["content"])
        return {**result, "content": [*content, {"type": "text", "text": note}]}
    return result


class _Sends(Protocol):
    async def send(self, item: SessionMessage, /) -> None: ...


class _Reader:
    """The lines of ``wire`` that the SDK can read, as an async iterator; the others answered on the SDK's write
    stream (``answer_on``)."""

    def __init__(self, wire: BinaryIO, limit: int) -> None:
        self._wire, self._limit = wire, limit
        self._answers: _Sends | None = None
        self._ready = anyio.Event()

    def answer_on(self, write_stream: _Sends) -> None:
        self._answers = write_stream
        self._ready.set()

    async def _answer(self, errors: list[JSONRPCError]) -> None:
        await self._ready.wait()
        assert self._answers is not None  # set with _ready
        for error in errors:
            try:
                await self._answers.send(SessionMessage(error))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return

    def _skip_rest(self) -> None:
        while True:  # until the line's end or EOF, a chunk at a time: a long line is never held whole
            chunk = self._wire.readline(_SKIP_CHUNK)
            if not chunk or chunk.endswith(b"\n"):
                return

    async def __aiter__(self) -> AsyncIterator[str]:
        while raw := await anyio.to_thread.run_sync(self._wire.readline, self._limit + 1, abandon_on_cancel=True):
            if len(raw) > self._limit:  # answered at once, then the rest of its line skipped
                megabytes = self._limit // (1024 * 1024)
                said = f"Invalid Request: a message longer than {megabytes} MiB is not read (pass images as paths)"
                await self._answer([_error(None, INVALID_REQUEST, said)])
                await anyio.to_thread.run_sync(self._skip_rest, abandon_on_cancel=True)
                continue
            verdict = triage(raw)
            if isinstance(verdict, str):
                yield verdict
            else:
                await self._answer(verdict)


@contextmanager
def _claimed_stdin() -> Generator[BinaryIO]:
    """The protocol's stdin for our reader alone, as the SDK's own transport claims it: read from a private
    duplicate of fd 0 while fd 0 points at the null device (a child or library reading stdin gets EOF, not the
    client's messages); fd 0 restored at the end. Where descriptors cannot be moved, stdin in place."""
    try:
        private = os.dup(0)
    except OSError:
        yield sys.stdin.buffer
        return
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(null, 0)
        finally:
            os.close(null)
    except OSError:
        os.close(private)
        yield sys.stdin.buffer
        return
    try:
        # closefd=False: a reading thread may still block on it after the session; it must not be recycled.
        yield os.fdopen(private, "rb", closefd=False)
    finally:
        os.dup2(private, 0)


async def serve_stdio(server: Server[Any], *, limit: int = MAX_LINE_BYTES) -> None:
    """Run ``server`` over stdio with the SDK's transport, our reader in front of its parser."""
    with _claimed_stdin() as wire:
        reader = _Reader(wire, limit)
        async with stdio_server(stdin=cast("anyio.AsyncFile[str]", reader)) as (read_stream, write_stream):
            reader.answer_on(write_stream)
            await server.run(read_stream, write_stream, server.create_initialization_options())
