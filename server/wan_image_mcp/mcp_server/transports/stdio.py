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
  lone surrogate cannot be written back: null); a line longer than ``MAX_LINE_BYTES`` (not counting its
  ``\\n`` or ``\\r\\n``) -32600 with id null, its bytes (and no others) skipped, never held whole; an invalid
  notification is logged, never answered (JSON-RPC: no id, no answer); a blank line is no message and is skipped.

Answers go through the SDK's own writer (its write stream), so frames never interleave and stdout carries
nothing but JSON-RPC; every message passes ``WritableMessages`` on its way there.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from types import TracebackType
from typing import Any, BinaryIO, Protocol, Self, TypeVar, cast

import anyio
import anyio.to_thread
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PARSE_ERROR,
    CallToolResult,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    TextContent,
)
from mcp_types import jsonrpc_message_adapter
from pydantic import BaseModel, ValidationError

from ...dashscope.text import has_lone_surrogate, replace_lone_surrogates, without_lone_surrogates

log = logging.getLogger("wan_image_mcp")

MAX_LINE_BYTES = 64 * 1024 * 1024
"""The longest message read over stdio (64 MiB: a few 20 MB images as data URLs; a path is better for more)."""
REPLACED_KEY = "wan-image-mcp/replaced"
"""In a ``tools/call``'s ``params._meta``: the arguments whose lone surrogates the reader replaced."""

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
    if not has_lone_surrogate(text):
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
    replaced = replace_lone_surrogates(message)
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
    """What a tool result says when its arguments were changed (paths as ``replace_lone_surrogates`` gives)."""
    names = ", ".join(path.removeprefix("params.").removeprefix("arguments.") for path in paths)
    return (
        f"Note: {names} held what is not text (a lone UTF-16 surrogate, half of a character, as when an emoji is "
        "cut in two; or bytes that are not UTF-8); each was replaced by U+FFFD (\ufffd) and the call ran with "
        "that. Send the whole character, or none, to have it otherwise."
    )


async def lone_surrogates(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Middleware, on every request over every transport. Lone surrogates that reach a handler (over HTTP the SDK
    parses with ``json.loads``, which keeps them) become U+FFFD, as the stdio reader makes them, and a
    ``tools/call`` whose arguments either changed says so in its result (an error too), as its last text block.
    And the answer is made writable: a lone surrogate made on the server side (a file name that is not UTF-8, in a
    result or an error) becomes U+FFFD, where the SDK's writer would raise (over HTTP the call would get an empty
    answer; over stdio ``WritableMessages`` catches what no handler answers)."""
    params = dict(ctx.params or {})
    repaired = replace_lone_surrogates(params)
    if repaired:
        log.warning("%r: replaced lone UTF-16 surrogates by U+FFFD in %s", ctx.method, ", ".join(repaired))
        ctx = replace(ctx, params=params)
    try:
        result = await call_next(ctx)
    except MCPError as exc:
        error, changed = writable(exc.error)
        if not changed:
            raise
        _say_replaced(f"the error answering {ctx.method!r}", changed)
        raise MCPError.from_error_data(error) from exc
    except Exception as exc:  # the SDK would answer with its text (legacy) or log it: the text must be writable
        if not has_lone_surrogate(said := str(exc)):
            raise
        log.exception("%r failed", ctx.method)
        raise MCPError(INTERNAL_ERROR, without_lone_surrogates(said)) from exc
    meta = params.get("_meta")
    marked = cast(Mapping[str, Any], meta).get(REPLACED_KEY) if isinstance(meta, Mapping) else None
    paths = [str(path) for path in cast(list[Any], marked)] if isinstance(marked, list) else []
    paths += repaired
    if ctx.method == "tools/call" and paths:
        result = _noted(result, replacement_note(paths))
    if isinstance(result, BaseModel):
        result, changed = writable(result)
    else:
        changed = replace_lone_surrogates(result) if isinstance(result, dict) else []
    if changed:
        _say_replaced(f"the answer to {ctx.method!r}", changed)
    return result


def _noted(result: HandlerResult, note: str) -> HandlerResult:
    """A tool result with ``note`` as its last text block."""
    if isinstance(result, CallToolResult):
        return result.model_copy(update={"content": [*result.content, TextContent(type="text", text=note)]})
    if isinstance(result, dict) and isinstance(result.get("content"), list):
        content = cast(list[Any], result["content"])
        return {**result, "content": [*content, {"type": "text", "text": note}]}
    return result


_Model = TypeVar("_Model", bound=BaseModel)


def writable(model: _Model) -> tuple[_Model, list[str]]:
    """``model`` as it can be written out: if a string in it holds a lone surrogate (a file name that is not UTF-8,
    ``os.fsdecode``'s ``"\\udcff"``), a copy with each replaced by U+FFFD, and the paths changed; else ``model``
    itself and no paths. Costs one ``model_dump`` (strings are shared, not copied) when nothing is to change."""
    data = model.model_dump(by_alias=True, exclude_unset=True)
    changed = replace_lone_surrogates(data)
    return (type(model).model_validate(data, by_name=False) if changed else model), changed


def _say_replaced(what: str, paths: Sequence[str]) -> None:
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    log.warning("%s held lone UTF-16 surrogates (a file name that is not UTF-8?): U+FFFD in %s", what, shown)


class _Writes(Protocol):
    async def send(self, item: SessionMessage, /) -> None: ...
    async def aclose(self) -> None: ...


class WritableMessages:
    """A write stream in front of the SDK's: each message made ``writable`` first. The SDK's stdout writer raises
    on a lone surrogate, which fails its task group and ends the server; this is the one place every message
    written over stdio passes (results, errors, notifications, the reader's own answers)."""

    def __init__(self, inner: _Writes) -> None:
        self._inner = inner

    async def send(self, item: SessionMessage, /) -> None:
        message, changed = writable(item.message)
        if changed:
            _say_replaced("a message to the client", changed)
            item = replace(item, message=message)
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> bool | None:
        await self.aclose()
        return None


class _Sends(Protocol):
    async def send(self, item: SessionMessage, /) -> None: ...


class StdioReader:
    """The lines of ``wire`` that the SDK can read, as an async iterator; the others answered on the SDK's write
    stream (``answer_on``). A line is read whole if its content (without its "\\n" or "\\r\\n") is at most
    ``limit`` bytes; a longer one is answered -32600 and exactly its own bytes are skipped."""

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
        # Up to limit + 2 bytes: a line of ``limit`` bytes and its "\r\n" is read whole, and a longer one is known
        # to be longer without being held.
        while raw := await anyio.to_thread.run_sync(self._wire.readline, self._limit + 2, abandon_on_cancel=True):
            ended = raw.endswith(b"\n")
            if len(raw) - (2 if raw.endswith(b"\r\n") else 1 if ended else 0) > self._limit:
                said = f"Invalid Request: a message longer than {_size(self._limit)} is not read (pass images as paths)"
                await self._answer([_error(None, INVALID_REQUEST, said)])
                if not ended:  # the rest of its line, and nothing after it
                    await anyio.to_thread.run_sync(self._skip_rest, abandon_on_cancel=True)
                continue
            verdict = triage(raw)
            if isinstance(verdict, str):
                yield verdict
            else:
                await self._answer(verdict)


def _size(limit: int) -> str:
    mebibytes, rest = divmod(limit, 1024 * 1024)
    return f"{mebibytes} MiB" if mebibytes and not rest else f"{limit} bytes"


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
        reader = StdioReader(wire, limit)
        async with stdio_server(stdin=cast("anyio.AsyncFile[str]", reader)) as (read_stream, sdk_writes):
            write_stream = WritableMessages(sdk_writes)
            reader.answer_on(write_stream)
            await server.run(read_stream, write_stream, server.create_initialization_options())
