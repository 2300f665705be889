"""Errors shaped after the wire: every exception the ``dashscope`` package defines and raises is here.

    DashScopeError                anything the API, its upload host or the network refused, or the client itself
    ├── UnusableKey               an API key no HTTP header can carry (never quoted); nothing was sent
    ├── InvalidTaskId             a task id that is not one (.reason); nothing was sent
    ├── UrlRefused                a URL not to be fetched or posted to: not the API's host, nor https on public
    │                             addresses (also a PermissionError)
    ├── APIConnectionError        no HTTP response; .request_sent says whether the server may have it
    │   └── APITimeoutError
    └── APIStatusError            an error envelope: .status, .code, .message, .request_id
        ├── BadRequestError           400
        │   └── ContentModerationError    400 DataInspectionFailed / IPInfringementSuspect
        ├── AuthenticationError       401
        ├── PermissionDeniedError     403 (and Arrearage)
        ├── NotFoundError             404
        ├── RateLimitError            429 (.retry_after)
        ├── InternalServerError       5xx
        └── UploadPolicyRefused       403 from the upload host: the policy expired or was refused; get a new one
    DownloadError                 a result image could not be fetched (.url, .status, .expired)

A task that ends FAILED, CANCELED or UNKNOWN is not an error here: ``get_task`` returns it as a TaskResult
with its ``status``, ``code`` and ``message``. The package imports nothing of the project, so these derive from
no error of it: the core catches them where it says what they mean (``core.requests.validation.check_task_id``
makes an InvalidTaskId an InvalidRequest naming ``task_id``), and the MCP boundary turns the rest into tool
errors. Which codes come with which status, and which are retried: docs/dashscope-api.md#errors.

The API key is never part of any of these: they are built from status, body and response headers only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_NOT_RETRYABLE_429 = frozenset({"CommodityNotPurchased", "PrepaidBillOverdue", "PostpaidBillOverdue"})
_MODERATION = frozenset({"DataInspectionFailed", "IPInfringementSuspect"})


class DashScopeError(Exception):
    """Anything the API or the network refused, or the client would not send."""


class UnusableKey(DashScopeError, ValueError):
    """An API key no HTTP header can carry: the message says why and where, never the key."""


class InvalidTaskId(DashScopeError, ValueError):
    """A task id that is not one; ``reason`` says so in words a model can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"task_id: {reason}")
        self.reason = reason


class UrlRefused(DashScopeError, PermissionError):
    """A URL the server will not fetch or post to; the message says why."""


class APIConnectionError(DashScopeError):
    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent
        """False only when the request provably never reached the server (e.g. connection refused)."""


class APITimeoutError(APIConnectionError):
    pass


class APIStatusError(DashScopeError):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        rid = f", request_id {request_id}" if request_id else ""
        super().__init__(f"{code}: {message} (HTTP {status}{rid})")

    @property
    def retryable(self) -> bool:
        return False


class BadRequestError(APIStatusError):
    pass


class ContentModerationError(BadRequestError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    @property
    def retryable(self) -> bool:
        return self.code not in _NOT_RETRYABLE_429


class InternalServerError(APIStatusError):
    @property
    def retryable(self) -> bool:
        return self.code != "InternalError.Timeout"


class UploadPolicyRefused(APIStatusError):
    """The upload host refused the policy (expired, signature not matching, a condition failed): fetch a new
    one."""


_BY_STATUS: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def _class_for(status: int, code: str) -> type[APIStatusError]:
    if code in _MODERATION:
        return ContentModerationError
    if code == "Arrearage":
        return PermissionDeniedError
    if status == 200:  # the "two-layer" error: HTTP 200 with a code in the body; classify by code
        if code.startswith("Throttling") or code == "LimitRequests":
            return RateLimitError
        if code.startswith(("InternalError", "ServiceUnavailable", "SystemError")):
            return InternalServerError
        if code == "InvalidApiKey":
            return AuthenticationError
        if code.startswith("AccessDenied"):
            return PermissionDeniedError
        return BadRequestError
    if status >= 500:
        return InternalServerError
    return _BY_STATUS.get(status, APIStatusError)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` or ``Retry-After`` (seconds) as seconds; HTTP dates are ignored."""
    for name, factor in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) * factor
        except ValueError:
            continue
        if 0 <= value <= 600:
            return value
    return None


def status_error(status: int, body: Any, headers: Mapping[str, str]) -> APIStatusError:
    """Build the error for an error envelope (``{"code", "message", "request_id"}``) or a non-JSON body."""
    request_id = headers.get("x-request-id") or headers.get("x-dashscope-request-id")
    if isinstance(body, dict):
        envelope: dict[str, Any] = body  # pyright: ignore[reportUnknownVariableType]
        code = str(envelope.get("code") or "Unknown")
        message = str(envelope.get("message") or "")
        request_id = str(envelope.get("request_id") or request_id or "") or None
    else:
        code = "Unknown"
        message = str(body)[:500] if body else f"HTTP {status} with an empty body"
    cls = _class_for(status, code)
    return cls(status, code, message, request_id, retry_after=parse_retry_after(headers))


class DownloadError(DashScopeError):
    """A result image could not be fetched: ``expired`` when its signed URL has lapsed (it cannot be recovered)."""

    def __init__(self, url: str, message: str, *, status: int | None = None, expired: bool = False) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.expired = expired
