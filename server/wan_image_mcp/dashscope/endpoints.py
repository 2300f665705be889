"""Where the image API's requests go, and the two shapes a create request's body takes.

``core.specs`` says which model uses which; the client (``wire.build_body``, ``client``) writes and sends them.
The table of docs/dashscope-api.md#endpoints is generated from these.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "CANCEL_PATH",
    "MESSAGES_ENDPOINTS",
    "PROMPT_ENDPOINTS",
    "TASK_PATH",
    "UPLOAD_POLICY_PATH",
    "Endpoints",
    "Protocol",
]


class Protocol(StrEnum):
    """How a model's request body is shaped."""

    MESSAGES = "messages"
    """wan2.7 / wan2.6: ``input.messages[0].content`` holds one text item and N image items."""
    PROMPT = "prompt"
    """wan2.5: ``input.prompt`` and ``input.images``; ``negative_prompt`` inside ``input``."""


@dataclass(frozen=True)
class Endpoints:
    """Where a model's requests go."""

    sync: str | None
    """Path of the single-request endpoint, relative to the base URL; None when the model has none."""
    submit: str
    """Path of the create-task endpoint (needs ``X-DashScope-Async: enable``)."""


MESSAGES_ENDPOINTS: Final = Endpoints(
    sync="/services/aigc/multimodal-generation/generation",
    submit="/services/aigc/image-generation/generation",
)
PROMPT_ENDPOINTS: Final = Endpoints(sync=None, submit="/services/aigc/image2image/image-synthesis")
# The task and upload endpoints every model shares, relative to the base URL.
TASK_PATH: Final = "/tasks/{task_id}"
CANCEL_PATH: Final = "/tasks/{task_id}/cancel"
UPLOAD_POLICY_PATH: Final = "/uploads"
