"""The DashScope HTTP API for the Wan image models: the client, its wire shapes, endpoints, transport checks, the
HTTP client whose connections are made on first use (``connections``), query rate, clock, text repair and errors.

Imports nothing of the project (the core imports it), so it could be a library of its own.
"""

from .client import DashScopeClient, RetryPolicy
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContentModerationError,
    DashScopeError,
    InternalServerError,
    InvalidTaskId,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnusableKey,
    UploadPolicyRefused,
    UrlRefused,
)
from .rate import QueryRate
from .wire import ImageFailure, ImageRequest, ListedTask, TaskPage, TaskResult, TaskStatus, build_body, check_task_id

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ContentModerationError",
    "DashScopeClient",
    "DashScopeError",
    "ImageFailure",
    "ImageRequest",
    "InternalServerError",
    "InvalidTaskId",
    "ListedTask",
    "NotFoundError",
    "PermissionDeniedError",
    "QueryRate",
    "RateLimitError",
    "RetryPolicy",
    "TaskPage",
    "TaskResult",
    "TaskStatus",
    "UnusableKey",
    "UploadPolicyRefused",
    "UrlRefused",
    "build_body",
    "check_task_id",
]
