"""The DashScope HTTP API for the Wan image models: client, wire shapes, errors."""

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
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UploadPolicyRefused,
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
    "ListedTask",
    "NotFoundError",
    "PermissionDeniedError",
    "QueryRate",
    "RateLimitError",
    "RetryPolicy",
    "TaskPage",
    "TaskResult",
    "TaskStatus",
    "UploadPolicyRefused",
    "build_body",
    "check_task_id",
]
