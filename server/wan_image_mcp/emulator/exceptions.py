"""The emulator's errors, shaped after the wire: each carries what the answer to the request must say.

ErrorAnswer            status (HTTP), code, message
├── EmulatedError      a DashScope API error, answered in its JSON envelope
└── OssError           an error of the object store behind uploads and result files, answered in OSS's XML
"""

from __future__ import annotations


class ErrorAnswer(Exception):
    """A refusal to answer with: ``status`` (HTTP), ``code`` and ``message`` as the body carries them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class EmulatedError(ErrorAnswer):
    """A DashScope error answer: JSON ``{request_id, code, message}`` with its HTTP status."""


class OssError(ErrorAnswer):
    """An object-store error answer: XML ``<Error><Code/><Message/></Error>`` with its HTTP status."""


def invalid(message: str) -> EmulatedError:
    """DashScope's 400 ``InvalidParameter`` with ``message`` (returned, for the caller to raise)."""
    return EmulatedError(400, "InvalidParameter", message)
