"""The journal's rows as Python sees them: the statuses (``Status``: DashScope's and the journal's own), a row read
back (``TaskRow``), one about to be written (``NewTask``) and who a task belongs to (``Tenant``). ``journal``
re-exports them.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from ...dashscope.wire import TaskStatus
from ..errors import InvalidTenant
from .database import Row

MAX_SUBJECT: Final = 255
"""The longest subject a tenant may have, in characters: OpenID Connect's limit for ``sub``."""
_UNSEEN: Final = {
    "Cc": "a control character",
    "Cs": "a lone surrogate",
    "Zl": "a line separator",
    "Zp": "a line separator",
}
"""What no issuer or subject may hold, by Unicode category: controls (C0, DEL, C1; NUL among them, which PostgreSQL
cannot store), lone surrogates (not encodable) and line or paragraph separators (they would split a log line)."""


def _unusable(name: str, value: str, limit: int | None) -> str | None:
    """Why ``value`` cannot be a tenant's ``name`` (issuer, subject), or None when it can."""
    if not value:
        return f"the {name} is empty"
    if limit is not None and len(value) > limit:
        return f"the {name} is {len(value)} characters long, more than {limit}"
    for position, char in enumerate(value, 1):
        if (kind := _kind_refused(char)) is not None:
            return f"the {name} holds {kind}, U+{ord(char):04X}, at position {position}"
    if not any(_visible(char) for char in value):
        return f"the {name} is blank (only spaces or invisible characters)"
    return None


def _kind_refused(char: str) -> str | None:
    if (kind := _UNSEEN.get(unicodedata.category(char))) is not None:
        return kind
    if char in _BIDI_CONTROLS:
        return "a bidirectional control"  # it would reorder what a log line or a page shows
    if 0xFDD0 <= ord(char) <= 0xFDEF or ord(char) & 0xFFFE == 0xFFFE:
        return "a noncharacter"
    return None


def _visible(char: str) -> bool:
    """Whether ``char`` shows as something: a letter, digit, punctuation or symbol that is not a blank filler."""
    return unicodedata.category(char)[0] in "LNPS" and char not in _BLANK_FILLERS


_BIDI_CONTROLS: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_BLANK_FILLERS: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800")
"""Letters and symbols that render as nothing: the Hangul fillers and the blank Braille pattern."""


@dataclass(frozen=True)
class Tenant:
    """Whose a task is on a server with OAuth: the access token's issuer (``iss``, without a trailing ``/``) and
    subject (``sub``). A subject is unique only within its issuer, so both are stored and compared: a second issuer
    configured later, or a journal shared by two servers with different issuers, never mixes their users.

    This is the one definition of a tenant's key. A subject is kept exactly as the issuer wrote it (no trimming or
    Unicode normalisation: two subjects the issuer tells apart are never made one tenant); one that is empty or
    blank, longer than MAX_SUBJECT, or holds a control character is no tenant's, and constructing it raises
    InvalidTenant (a token carrying one is refused, so no caller is ever treated as "no tenant" on its account)."""

    issuer: str
    subject: str

    def __post_init__(self) -> None:
        problem = _unusable("issuer", self.issuer, None) or _unusable("subject", self.subject, MAX_SUBJECT)
        if problem is not None:
            raise InvalidTenant(f"not a usable tenant: {problem}")

    @classmethod
    def of(cls, issuer: str, subject: object) -> Tenant:
        """The tenant of ``subject`` at ``issuer``, written with or without its trailing ``/`` (one issuer). Raises
        InvalidTenant for a subject that is not a string or cannot name a tenant (see the class)."""
        if not isinstance(subject, str):
            raise InvalidTenant(f"not a usable tenant: the subject is not a string ({type(subject).__name__})")
        return cls(issuer.rstrip("/"), subject)


class Status(StrEnum):
    """Every status a task has here, the one vocabulary of the journal, its SQL and the results: DashScope's own
    (``dashscope.TaskStatus``, whose values these are, so a wire status reads as ours by ``Status.of``) and the
    journal's for a submission without its answer or images lost to expired URLs."""

    PENDING = TaskStatus.PENDING.value
    RUNNING = TaskStatus.RUNNING.value
    SUCCEEDED = TaskStatus.SUCCEEDED.value
    FAILED = TaskStatus.FAILED.value
    CANCELED = TaskStatus.CANCELED.value
    UNKNOWN = TaskStatus.UNKNOWN.value
    """DashScope does not know the task (or reported a status this server does not know)."""
    SUBMITTING = "SUBMITTING"
    """The create request is being sent; no answer yet."""
    UNCERTAIN = "UNCERTAIN"
    """The create request was sent but its answer was lost: a task may exist (and be billed)."""
    AMBIGUOUS = "AMBIGUOUS"
    """The answer was lost and more than one task in DashScope's list could be this submission's: none was adopted;
    ``candidates`` names them."""
    REJECTED = "REJECTED"
    """The API refused the create request, or it provably never reached the API: no task exists."""
    EXPIRED = "EXPIRED"
    """The task succeeded but its result URLs expired before the images could be saved."""

    @classmethod
    def of(cls, status: str) -> Status:
        """``status`` (DashScope's ``TaskStatus``, or a journal column's text) as ours: the one place a wire status
        becomes a journal status. A status this server does not know (a newer version's) reads as UNKNOWN."""
        try:
            return cls(status)
        except ValueError:
            return cls.UNKNOWN


UNRESOLVED: Final = (Status.SUBMITTING, Status.UNCERTAIN)
"""A create request without its answer: reconciled against the task list."""
OPEN_STATUSES: Final = (Status.PENDING, Status.RUNNING)
"""A task DashScope is still working on."""
DAY: Final = 24 * 3600.0
"""How long DashScope keeps a task (its id and result URLs): older rows are not harvested or reconciled."""


@dataclass(frozen=True)
class TaskRow:
    id: int
    task_id: str | None
    model: str
    prompt: str
    parameters: dict[str, Any]
    adjustments: list[str]
    instruction: str | None
    requested_images: int | None
    status: Status
    request_id: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    result_urls: list[str]
    usage: dict[str, Any] | None
    actual_prompt: str | None
    texts: list[str]
    images: list[dict[str, Any]]
    saved_at: float | None
    error_code: str | None
    error_message: str | None
    download_attempts: int
    download_error: str | None
    next_poll_at: float | None
    inputs: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    """Each input image: ``ref`` as given (data URLs shortened) and ``path`` when it was a local file."""
    answer_by: float | None = None
    """SUBMITTING: when the create request's answer is due at the latest; UNCERTAIN: when it was given up."""
    submit_time: str | None = None
    """The task's ``submit_time`` as DashScope reported it, in DashScope's zone."""
    candidates: list[str] = field(default_factory=list[str])
    """AMBIGUOUS: the task ids that could be this submission's."""
    expected_size: str | None = None
    """``W*H`` the request should produce (None: not known when it was sent, e.g. a remote last image)."""
    tenant_issuer: str | None = None
    tenant_subject: str | None = None
    """Whose the task is (``Tenant``); None for a task submitted without OAuth, or adopted from elsewhere."""
    candidate_of: int | None = None
    """A task an AMBIGUOUS submission may have made: that submission's journal id (its tenant is this row's)."""
    text_places: list[int] | None = None
    """Where each of ``texts`` stood among the images (how many came before it); None: after them all."""

    @classmethod
    def from_sql(cls, row: Row) -> TaskRow:
        # Columns a newer version added are ignored: an older server can still read a newer journal.
        data = {key: row[key] for key in row.keys() if key in _FIELDS}  # noqa: SIM118 - a Row iterates values
        for key in ("parameters", "adjustments", "result_urls", "texts", "images", "inputs", "candidates"):
            data[key] = json.loads(data[key])
        data["status"] = Status.of(data["status"])
        data["usage"] = json.loads(data["usage"]) if data["usage"] else None
        if data.get("text_places"):
            data["text_places"] = json.loads(data["text_places"])
        return cls(**data)

    def belongs_to(self, tenant: Tenant | None) -> bool:
        """Whether ``tenant`` may see this task: anyone may when it is None (no OAuth: today's single-user server),
        else only the tenant that submitted it."""
        return tenant is None or (self.tenant_issuer, self.tenant_subject) == (tenant.issuer, tenant.subject)

    @property
    def owner(self) -> tuple[str, str] | None:
        """Whose the task is as (issuer, subject), or None (no OAuth, or adopted from elsewhere): the key tenants
        take turns by (a tenant's issuer and subject)."""
        if self.tenant_issuer is None or self.tenant_subject is None:
            return None
        return (self.tenant_issuer, self.tenant_subject)

    @property
    def needs_harvest(self) -> bool:
        """Still running, or succeeded without its images on disk."""
        return self.task_id is not None and (
            self.status in OPEN_STATUSES or (self.status is Status.SUCCEEDED and self.saved_at is None)
        )


_FIELDS = frozenset(TaskRow.__dataclass_fields__)


@dataclass(frozen=True)
class NewTask:
    model: str
    prompt: str
    parameters: dict[str, Any]
    adjustments: Sequence[str] = ()
    instruction: str | None = None
    requested_images: int | None = None
    inputs: Sequence[dict[str, Any]] = ()
    created_at: float = field(default_factory=time.time)
    answer_within: float = 60.0
    """Seconds after ``created_at`` by which the create request's answer is due (the client's submit deadline)."""
    expected_size: tuple[int, int] | None = None
    """The output size the request should produce, when known."""
    tenant: Tenant | None = None
    """Whose it is (None without OAuth)."""
