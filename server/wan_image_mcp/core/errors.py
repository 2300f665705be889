"""The root of every error this package raises on purpose, and the validation error.

WanError
├── InvalidRequest            bad input found before any request is sent (one or more Problems)
│   └── InputChanged          a local image changed on disk between its check and its sending; nothing was submitted
├── ConfigurationError        a setting is missing or wrong (e.g. no DASHSCOPE_API_KEY, a damaged journal)
│   └── OutputNotWritable     the output folder (or bucket) cannot be written: paid calls are refused, nothing sent
├── AccessDenied              a file outside the allowed folders (also a PermissionError)
├── InvalidTenant             an issuer or subject that cannot name a tenant (empty, control characters, too long)
├── SpendLimitExceeded        a call would request more paid images than the limits allow; nothing was sent
│   └── NotConfirmed          a call above WAN_MCP_CONFIRM_ABOVE_IMAGES the user did not approve, or could not be asked
├── JournalBusy               another server on the journal holds the daily budget's check; nothing was sent
├── ImagesNotSaved            images of a succeeded (paid) task that could not be downloaded or kept; which, and why
├── SubmissionUncertain       a create request was sent and its answer lost: a task may exist and be billed
│   (caught inside the core, which says them in other words:)
├── NotRegularFile            a local image names a FIFO, socket or device (also a ValueError; the image's problem)
└── DecodeTooCostly           an image whose decode would hold more than one decode may (also a ValueError; a
                              preview refused, its reason in the inspection report)

dashscope.DashScopeError      the API, its upload host, a result URL or the network said no, or the client would
                              not send (dashscope/errors.py: the client imports nothing of the project, so its
                              tree has a root of its own; the MCP boundary turns both into tool errors)

Every error this package defines is in one of those two modules (``tests/test_layers.py`` holds the core and the
client to it), but one signal: ``tasks.polling.PollFailed``, a task query that failed after its retries, which the
check answers with the last known status. It carries the client's error and task, and this module imports nothing
of the client: the emulator loads it (through ``sockets``) and must not load the client. The emulator's error
answers are its own (``emulator/exceptions``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class WanError(Exception):
    """Base class of the package's own errors."""


class ConfigurationError(WanError):
    """A setting is missing or invalid. The message names the setting."""


class OutputNotWritable(ConfigurationError):
    """The output folder (or bucket) cannot be written, so no result could be saved: a paid call is refused before
    anything is sent. The message names the place, why, and the fix."""


class SpendLimitExceeded(WanError):
    """A call that would request more paid images than the configured limits allow. Nothing was sent."""


class NotConfirmed(SpendLimitExceeded):
    """A call above WAN_MCP_CONFIRM_ABOVE_IMAGES that the user did not approve, or could not be asked about
    (``requests.spending`` says which, and how to go on). Nothing was sent."""


class JournalBusy(WanError):
    """Another server (a replica, or a second process on the same SQLite file) is checking the daily budget on the
    shared journal: this one's check could not start. Nothing was written or sent; the service waits and tries
    again before it says so."""


class ImagesNotSaved(WanError):
    """Images of a succeeded task that could not be downloaded or kept (``ResultStore.save``): ``failures`` by 1-based
    index, each the DownloadError or OSError that stopped it; ``saved`` are the ones kept (``ImageFile``s: this module
    imports nothing of the project)."""

    def __init__(self, failures: Mapping[int, Exception], saved: Sequence[Any] = ()) -> None:
        self.failures = dict(sorted(failures.items()))
        self.saved = tuple(saved)
        super().__init__("; ".join(f"image {index}: {exc}" for index, exc in self.failures.items()))


class SubmissionUncertain(WanError):
    """The create-task request was sent but its answer was lost: a task may exist and be billed."""

    def __init__(self, journal_id: int, cause: Exception) -> None:
        self.journal_id = journal_id
        super().__init__(
            f"The request to start the task was sent but its answer was lost ({cause}). DashScope may have "
            f"started the task, and it would be billed. It is recorded as UNCERTAIN (journal id {journal_id}); "
            "do not resubmit unless paying twice is acceptable. While it runs, this server looks for the task in "
            "DashScope's task list and, when exactly one task can be it, adopts it and saves its images: call "
            "list_tasks in a few seconds to see its task_id (or AMBIGUOUS with the candidates)."
        )


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: which argument, which image (1-based, as in 圖1), and why."""

    argument: str
    message: str
    image: int | None = None

    def __str__(self) -> str:
        where = self.argument if self.image is None else f"{self.argument} (image {self.image})"
        return f"{where}: {self.message}"


class InvalidRequest(WanError, ValueError):
    """A request that cannot succeed, refused before it is sent. Lists every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        if len(self.problems) == 1:
            return f"Invalid request: {self.problems[0]}"
        lines = "\n".join(f"- {p}" for p in self.problems)
        return f"Invalid request ({len(self.problems)} problems):\n{lines}"


class InvalidTenant(WanError, ValueError):
    """An issuer or subject that cannot name a tenant (``rows.Tenant``): a token carrying one is refused."""


class AccessDenied(WanError, PermissionError):
    """A path outside the allowed directories (a URL the server will not fetch is ``dashscope.UrlRefused``)."""


class InputChanged(InvalidRequest):
    """A local image changed on disk between being checked and being sent. Nothing was submitted."""

    def __init__(self, path: object, index: int) -> None:
        message = f"{path} changed on disk while it was being sent; nothing was submitted, call again"
        super().__init__([Problem("images", message, image=index)])


class NotRegularFile(WanError, ValueError):
    """A local reference names a FIFO, socket or device: only regular files are read."""


class DecodeTooCostly(WanError, ValueError):
    """An image whose decode would hold more than one decode may (``DecodeBudget.BYTES``), said in words."""
