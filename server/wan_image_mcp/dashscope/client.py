"""Every DashScope request the server makes, on one injected ``httpx2.AsyncClient``.

Retry rules (a submission is billed, a query is not), one entry point each:

* ``_query``, what bills nothing (a task, the task list, an upload policy, a cancel): retried on 429, 5xx
  and connection errors, with jittered exponential backoff that honours ``Retry-After``.
* ``_create``, the POST that creates a task (submit): retried only on 429 and on connection
  errors that provably happened before the request reached the server. Never after a 5xx or a lost
  response: a second attempt could be a second paid task.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, cast
from urllib.parse import quote, urlencode

import anyio
import httpx2

from .connections import unreachable
from .endpoints import CANCEL_PATH, TASK_PATH, UPLOAD_POLICY_PATH
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DashScopeError,
    UnusableKey,
    UploadPolicyRefused,
    status_error,
)
from .rate import QueryRate
from .text import replace_lone_surrogates
from .transport import api_key_problem, send_checked
from .wire import (
    JSON,
    Envelope,
    ImageRequest,
    TaskPage,
    TaskResult,
    TaskStatus,
    build_body,
    check_task_id,
    parse_result,
    parse_task_page,
)

log = logging.getLogger("wan_image_mcp.dashscope")

_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)
SUBMIT_READ_TIMEOUT = 30.0
"""Seconds one create request may wait for its answer."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    timeout: float = 30.0
    """Seconds one call may spend across all its attempts."""
    wait_initial: float = 0.5
    wait_max: float = 8.0
    wait_jitter: float = 0.5
    connect_attempts: int = 3
    """Attempts while the host cannot be connected to at all (refused, unknown, unreachable: nothing was sent),
    fewer than ``attempts``: an unreachable DashScope is said within seconds."""


def _retry_query(exc: BaseException) -> bool | float:
    if isinstance(exc, APIStatusError):
        return (exc.retry_after or True) if exc.retryable else False
    return isinstance(exc, APIConnectionError)


def _retry_submit(exc: BaseException) -> bool | float:
    if isinstance(exc, APIStatusError):
        return (exc.retry_after or True) if exc.status == 429 and exc.retryable else False
    return isinstance(exc, APIConnectionError) and not exc.request_sent


class DashScopeClient:
    """DashScope's image API for one key. Raises UnusableKey for a key no HTTP header can carry.

    Each call raises, once its retries are spent, the errors of ``dashscope.errors``: the APIStatusError
    subclass of an error envelope (non-2xx, inside HTTP 200, or not JSON), APIConnectionError /
    APITimeoutError (with ``request_sent``) when no answer came, DashScopeError for an answer of the wrong
    shape. A task id that is not one raises InvalidTaskId before anything is sent."""

    def __init__(
        self,
        http: httpx2.AsyncClient,
        *,
        api_key: str,
        base_url: str,
        retry: RetryPolicy | None = None,
        workspace: str | None = None,
        query_rate: QueryRate | None = None,
    ) -> None:
        self._http = http
        self._query_rate = query_rate or QueryRate()
        self._base_url = base_url.rstrip("/")
        self._retry = retry or RetryPolicy()
        if problem := api_key_problem(api_key):  # in a header it would fail, and httpx's error would show it
            raise UnusableKey(problem)
        self._headers = {"Authorization": f"Bearer {api_key}"}
        if workspace:
            self._headers["X-DashScope-WorkSpace"] = workspace

    def __repr__(self) -> str:
        return f"DashScopeClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def submit_deadline(self) -> float:
        """Seconds after which ``submit`` has given up, retries included: a create request it sent reached the
        service before then, if at all (so a lost answer's task was submitted within that time)."""
        return self._retry.timeout + SUBMIT_READ_TIMEOUT

    # --- the API --------------------------------------------------------------------------------

    async def submit(self, request: ImageRequest) -> TaskResult:
        """Create an async task for ``request``; returns it PENDING with its ``task_id``. Raises APITimeoutError
        (``request_sent``: a task may exist) when no answer came within ``submit_deadline``."""
        headers = {"X-DashScope-Async": "enable"}
        if request.oss_resolve:
            headers["X-DashScope-OssResourceResolve"] = "enable"
        body = build_body(request)
        path = request.endpoints.submit
        try:
            with anyio.fail_after(self.submit_deadline):
                envelope = await self._create(path, body, headers, read_timeout=SUBMIT_READ_TIMEOUT)
        except TimeoutError:
            raise APITimeoutError(
                f"POST {path} had no answer within {self.submit_deadline:.0f} s", request_sent=True
            ) from None
        result = parse_result(envelope, default_status=TaskStatus.PENDING)
        if not result.task_id:
            raise APIStatusError(200, "Unknown", "create-task response had no task_id", envelope.request_id)
        return result

    async def upload_policy(self, model: str) -> dict[str, Any]:
        """A temporary-upload policy for ``model`` (``GET /uploads?action=getPolicy``): the ``data`` object, for
        ``upload``. Raises APIStatusError when the answer holds no policy."""
        path = f"{UPLOAD_POLICY_PATH}?action=getPolicy&model={quote(model)}"
        answer = await self._query("GET", path)
        data = answer.get("data")
        if not isinstance(data, dict) or "upload_host" not in data:
            raise APIStatusError(200, "Unknown", "getPolicy answered without a policy", answer.get("request_id"))
        return cast(dict[str, Any], data)

    async def upload(self, policy: Mapping[str, Any], data: bytes | BinaryIO, filename: str, content_type: str) -> str:
        """Form-POST ``data`` (bytes, or a file streamed from disk) to the policy's upload host (no Authorization
        header); returns its ``oss://`` URL. Not retried.

        Raises UrlRefused for a host neither the API's own nor https on public addresses, UploadPolicyRefused when
        the host refuses the policy (fetch a new one and try again), APIConnectionError when it cannot be
        reached, and the APIStatusError subclass of any other refusal."""
        key = f"{policy['upload_dir']}/{filename}"
        form = {
            "OSSAccessKeyId": str(policy["oss_access_key_id"]),
            "Signature": str(policy["signature"]),
            "policy": str(policy["policy"]),
            "key": key,
            "x-oss-object-acl": str(policy["x_oss_object_acl"]),
            "x-oss-forbid-overwrite": str(policy["x_oss_forbid_overwrite"]),
            "success_action_status": "200",
            "x-oss-content-type": content_type,
        }
        host = str(policy["upload_host"])
        request = self._http.build_request(
            "POST", host, data=form, files={"file": (filename, data, content_type)}, timeout=httpx2.Timeout(120.0)
        )
        try:
            response = await send_checked(self._http, request, api_base_url=self._base_url)
        except httpx2.TransportError as exc:
            raise APIConnectionError(f"upload to {host} failed ({unreachable(exc)})", request_sent=True) from None
        if response.status_code == 200:
            return f"oss://{key}"
        code = _xml(response.text, "Code") or "Unknown"
        message = _xml(response.text, "Message") or response.text[:300]
        if response.status_code == 403:  # OSS refuses a form POST only over its policy: expired, signature, conditions
            raise UploadPolicyRefused(response.status_code, code, message, None)
        raise status_error(response.status_code, {"code": code, "message": message}, response.headers)

    async def list_statuses(
        self, wanted: Collection[str] = (), *, page_size: int = 100, pages: int = 3
    ) -> dict[str, TaskStatus]:
        """Recent tasks' statuses from ``GET /tasks`` (one query per page, newest first): how one query covers
        many tasks. Stops early once every ``wanted`` task has been seen."""
        statuses: dict[str, TaskStatus] = {}
        for page_no in range(1, pages + 1):
            page = await self.list_tasks(page_no=page_no, page_size=page_size)
            statuses.update((t.task_id, t.status) for t in page.tasks if t.status is not None)
            if len(page.tasks) < page_size or (wanted and statuses.keys() >= set(wanted)):
                break
        return statuses

    async def list_tasks(
        self,
        *,
        start_time: str | None = None,
        end_time: str | None = None,
        model_name: str | None = None,
        status: str | None = None,
        page_no: int = 1,
        page_size: int = 10,
    ) -> TaskPage:
        """One page of ``GET /tasks``, newest first. ``start_time`` / ``end_time`` are ``YYYYMMDDhhmmss`` in the
        service's zone (as its ``submit_time`` is); every filter left None is not sent."""
        params = {
            "start_time": start_time,
            "end_time": end_time,
            "model_name": model_name,
            "status": status,
            "page_no": str(page_no),
            "page_size": str(page_size),
        }
        path = "/tasks?" + urlencode({k: v for k, v in params.items() if v is not None})
        return parse_task_page(await self._query("GET", path, rate=self._query_rate))

    async def get_task(self, task_id: str) -> TaskResult:
        """A task as the API describes it now; UNKNOWN (not an error) for an id it does not know."""
        path = _task_path(TASK_PATH, task_id)
        envelope = _envelope(await self._query("GET", path, rate=self._query_rate), path)
        return parse_result(envelope, default_status=TaskStatus.UNKNOWN)

    async def cancel_task(self, task_id: str) -> str | None:
        """Cancel a PENDING task; returns the request id. A task past PENDING cannot be cancelled: BadRequestError
        (``UnsupportedOperation``)."""
        path = _task_path(CANCEL_PATH, task_id)
        return _envelope(await self._query("POST", path), path).request_id

    # --- plumbing -------------------------------------------------------------------------------

    async def _create(
        self, path: str, body: Mapping[str, JSON], headers: Mapping[str, str], *, read_timeout: float
    ) -> Envelope:
        """POST ``body`` to an endpoint that creates paid work (a task); returns its
        envelope. Retried only where no second task can come of it (``_retry_submit``). Raises what ``_send``
        raises, and DashScopeError for an answer that is not an envelope."""
        answer = await self._send(
            "POST", path, retry_on=_retry_submit, body=body, headers=headers, read_timeout=read_timeout
        )
        return _envelope(answer, path)

    async def _query(
        self, method: Literal["GET", "POST"], path: str, *, rate: QueryRate | None = None
    ) -> dict[str, JSON]:
        """A request without a body that bills nothing (a task, the task list, an upload policy, a cancel);
        returns its JSON object. Retried on 429, 5xx and connection errors (``_retry_query``), each attempt
        holding a place in ``rate`` when given. Raises what ``_send`` raises."""
        return await self._send(method, path, retry_on=_retry_query, rate=rate)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        retry_on: Callable[[BaseException], bool | float],
        body: Mapping[str, JSON] | None = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
        rate: QueryRate | None = None,
    ) -> dict[str, JSON]:
        """``_once`` under the retry policy: an error ``retry_on`` accepts is tried again (after its float, in
        seconds, when it gives one) until the attempts or the time run out; then the last error is raised."""
        import stamina  # off the start path

        policy = self._retry
        failed: Exception | None = None
        unconnected = 0
        async for attempt in stamina.retry_context(
            on=retry_on,
            attempts=policy.attempts,
            timeout=policy.timeout,
            wait_initial=policy.wait_initial,
            wait_max=policy.wait_max,
            wait_jitter=policy.wait_jitter,
        ):
            if failed is not None:  # one line per retry, saying what is tried again and why
                log.warning("retrying %s %s (attempt %d): %s", method, path, attempt.num, failed)
            with attempt:
                try:
                    if rate is None:
                        return await self._once(method, path, body, headers or {}, read_timeout)
                    async with rate.query():
                        return await self._once(method, path, body, headers or {}, read_timeout)
                except APIConnectionError as exc:
                    failed = exc
                    unconnected = unconnected + 1 if not exc.request_sent else 0
                    if unconnected < policy.connect_attempts:
                        raise
                    # Given up: the block ends without an error, so stamina tries no more; raised below.
                except Exception as exc:
                    failed = exc
                    raise
        if failed is not None:
            raise failed
        raise AssertionError("unreachable")  # pragma: no cover - retry_context either returns or raises

    async def _once(
        self,
        method: str,
        path: str,
        body: Mapping[str, JSON] | None,
        headers: Mapping[str, str],
        read_timeout: float | None,
    ) -> dict[str, JSON]:
        """One attempt; returns the answer's JSON object. Raises APIConnectionError / APITimeoutError (with
        ``request_sent``) when no answer came, and the APIStatusError subclass of an error envelope, a non-200
        status or an answer that is not a JSON object."""
        all_headers = {**self._headers, **headers}
        content = None
        if body is not None:
            all_headers["Content-Type"] = "application/json"
            content = json.dumps(body, ensure_ascii=False).encode()
        timeout = httpx2.Timeout(30.0, read=read_timeout) if read_timeout else httpx2.USE_CLIENT_DEFAULT
        started = time.perf_counter()
        try:
            response = await self._http.request(
                method, self._base_url + path, content=content, headers=all_headers, timeout=timeout
            )
        except httpx2.LocalProtocolError:  # refused before sending; its text would quote the headers, the key too
            raise APIConnectionError(
                f"{method} {path} could not be sent: a header is invalid", request_sent=False
            ) from None
        except _NOT_SENT as exc:
            raise APIConnectionError(
                f"could not connect to {self._base_url} ({unreachable(exc)})", request_sent=False
            ) from None
        except httpx2.TimeoutException:
            raise APITimeoutError(f"{method} {path} got no answer in time", request_sent=True) from None
        except httpx2.TransportError as exc:
            raise APIConnectionError(
                f"{method} {path} lost its answer ({unreachable(exc)})", request_sent=True
            ) from None
        data = _decode(response)
        request_id = data.get("request_id") if isinstance(data, dict) else None
        log.info(
            "api method=%s path=%s status=%s request_id=%s ms=%.0f",
            method,
            path,
            response.status_code,
            request_id or response.headers.get("x-request-id", "-"),
            (time.perf_counter() - started) * 1000,
        )
        if response.status_code != 200 or not isinstance(data, dict) or data.get("code"):
            raise status_error(response.status_code, data, response.headers)
        return data


def _envelope(answer: Mapping[str, JSON], path: str) -> Envelope:
    """``answer`` read as a DashScope envelope; DashScopeError naming ``path`` when it is not one."""
    try:
        return Envelope.model_validate(answer)
    except ValueError as exc:
        raise DashScopeError(f"unexpected response shape from {path}: {exc}") from None


def _task_path(template: str, task_id: str) -> str:
    """A task's path, its id checked (InvalidTaskId) and quoted: an id can never reach another
    endpoint, add a query or a header, whoever calls."""
    return template.format(task_id=quote(check_task_id(task_id), safe=""))


def _xml(text: str, tag: str) -> str | None:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
    return match[1].strip() if match else None


def _decode(response: httpx2.Response) -> dict[str, Any] | str:
    """The answer's JSON object, or else its text. Where every string from the API comes in: a lone surrogate in
    one (valid JSON, ``"\\ud83d"``: a message cut inside an emoji) becomes U+FFFD, since no journal, log or client
    can write it."""
    try:
        data = response.json()
    except ValueError:
        return response.text
    if not isinstance(data, dict):
        return response.text
    if changed := replace_lone_surrogates(data):
        log.warning("the API's answer held lone UTF-16 surrogates: U+FFFD in %s", ", ".join(changed[:5]))
    return cast(dict[str, Any], data)
