"""What the emulated DashScope remembers: tasks, result files, uploads, queued faults, and a request log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from ..core.specs import Mode, ModelSpec

Target = Literal["submit", "sync", "poll", "list", "cancel", "download", "upload", "policy", "any"]
FaultKind = Literal["error", "throttle", "moderation", "drop", "slow", "fail_task", "partial_failure", "hold"]


@dataclass
class EmulatorConfig:
    """How the emulator behaves; ``POST /_emulator/config`` changes its fields while it runs."""

    api_keys: frozenset[str] = frozenset({"sk-emulator"})
    """Keys accepted in ``Authorization: Bearer``; anything else is 401 InvalidApiKey."""
    workspaces: frozenset[str] = frozenset()
    """Workspace ids the keys may use: a request whose ``X-DashScope-WorkSpace`` header names another is 403
    ``Workspace.AccessDenied``. Empty: any header is accepted (and none is needed)."""
    latency: float = 0.0
    """0: tasks advance one step per poll (tests). >0: seconds a task takes, PENDING for the first fifth."""
    latency_spread: float = 0.0
    """With latency > 0: each task takes up to this much longer, a fixed share per task id (real tasks vary:
    the published wan2.7 samples took 12-21 s)."""
    polls_to_finish: int = 2
    """With latency 0: the poll on which a task is SUCCEEDED (the first poll shows RUNNING)."""
    result_ttl: float = 24 * 3600
    task_ttl: float = 24 * 3600
    policy_ttl: float = 300
    upload_ttl: float = 48 * 3600
    max_upload_bytes: int = 1024 * 1024 * 1024
    result_origin: str | None = None
    """Serve result URLs as if from this origin (a hostile response, for the server's download guard)."""
    result_redirect: str | None = None
    """Answer result downloads with a 302 to this URL (a hostile redirect)."""
    fetch_remote: bool = False
    """Fetch http(s) inputs from hosts other than loopback (there is no internet here: placeholders stand in)."""
    tz_offset_hours: float = 8.0
    """The service's time zone, hours east of UTC: its ``submit_time`` / ``end_time`` and the task list's
    ``start_time`` / ``end_time`` filters are in it (DashScope's own is UTC+8; a test may pick any)."""


@dataclass
class Fault:
    """A fault queued for the next ``count`` requests to ``target`` (docs/emulator.md: Fault injection)."""

    kind: FaultKind
    target: Target = "any"
    count: int = 1
    status: int = 500
    code: str = "InternalError"
    message: str = "An internal error has occurred, please try again later."
    retry_after: float | None = None
    delay: float = 0.0
    after_processing: bool = False
    """drop: cut the connection after the request took effect (e.g. the task exists but the reply is lost).
    hold: once released, drop the answer instead of sending it."""
    failed_images: int = 1
    """partial_failure: how many images of the next wan2.5 task fail."""


@dataclass
class Task:
    """A task the emulator keeps: its parsed request, output size and count, status and rendered outputs."""

    task_id: str
    spec: ModelSpec
    mode: Mode
    prompt: str
    images: list[bytes | None]
    """Decoded input images (None where a remote image stands in as a placeholder)."""
    image_refs: list[str]
    parameters: dict[str, Any]
    size: tuple[int, int]
    count: int
    created: float
    status: str = "PENDING"
    polls: int = 0
    failure: tuple[str, str] | None = None
    failed_images: int = 0
    outputs: list[str] = field(default_factory=list[str])
    texts: list[str] = field(default_factory=list[str])
    finished: float | None = None
    rendered: bool = False
    render_lock: threading.Lock = field(default_factory=threading.Lock)
    """Held while its outputs are rendered, so they are rendered once (by a query or in the background)."""


@dataclass
class StoredFile:
    """A result file behind signed URLs, until ``expires``."""

    data: bytes
    content_type: str
    expires: float


@dataclass
class Upload:
    """A temporarily uploaded file, usable as ``oss://`` by ``model`` only, until ``expires``."""

    data: bytes
    model: str
    expires: float


@dataclass
class LoggedRequest:
    """A request as received (without ``Authorization``, data URLs shortened), for ``GET /_emulator/requests``."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.time)
    size: int = 0
    """Bytes of the request body."""


class EmulatorState:
    """What the emulated service remembers, and the bookkeeping on it; ``models.EmulatorBackend`` holds the
    behaviour. Tests read and change it in-process (``tasks``, ``requests``, ``add_fault``, ``release``)."""

    def __init__(self, config: EmulatorConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config or EmulatorConfig()
        self.clock = clock
        self.tasks: dict[str, Task] = {}
        self.files: dict[str, StoredFile] = {}
        self.uploads: dict[str, Upload] = {}
        self.faults: list[Fault] = []
        self.requests: list[LoggedRequest] = []
        self.renders: list[float] = []
        """Seconds each task's images took to render, in order (the bench takes them out of its timings)."""
        self.secret = uuid.uuid4().bytes
        self._counter = itertools.count(1)
        self._background: ThreadPoolExecutor | None = None
        self._held: list[threading.Event] = []

    # --- held answers ---------------------------------------------------------------------------------

    @property
    def holding(self) -> int:
        """Answers held now (a ``hold`` fault: the request took effect, its answer waits for ``release``)."""
        return sum(not event.is_set() for event in self._held)

    def release(self) -> int:
        """Let every held answer go (answered, or dropped if its fault says ``after_processing``)."""
        held, self._held = self._held, []
        for event in held:
            event.set()
        return len(held)

    async def hold(self) -> None:
        """Wait until ``release`` (from any thread); the caller going away cancels the wait."""
        import anyio  # the state module is used from threads too: only this coroutine needs it

        event = threading.Event()
        self._held.append(event)
        try:
            while not event.is_set():  # noqa: ASYNC110 - released from any thread; an anyio.Event has one loop
                await anyio.sleep(0.005)
        finally:
            event.set()

    # --- tasks --------------------------------------------------------------------------------------

    def in_background(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the emulator's two background threads (rendering a task while it "runs")."""
        if self._background is None:
            self._background = ThreadPoolExecutor(2, thread_name_prefix="emulator")
        self._background.submit(work)

    def duration(self, task: Task) -> float:
        """Seconds the task takes (with a latency): ``latency`` plus the task's fixed share of the spread."""
        return self.config.latency + self.config.latency_spread * random.Random(task.task_id).random()

    # --- faults -------------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Queue ``fault`` after those already queued."""
        self.faults.append(fault)

    def take_fault(self, target: Target, kinds: tuple[FaultKind, ...]) -> Fault | None:
        """The first queued fault of one of ``kinds`` aimed at ``target``; consumes one of its count."""
        for fault in self.faults:
            if fault.kind in kinds and fault.target in (target, "any"):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    # --- ids and signatures -------------------------------------------------------------------------

    def new_id(self) -> str:
        """A fresh id (a UUID4's text), for a task or a request."""
        return str(uuid.uuid4())

    def sign(self, text: str) -> str:
        """``text``'s signature under this emulator's secret (URL-safe base64 of a truncated HMAC-SHA256)."""
        return base64.urlsafe_b64encode(hmac.digest(self.secret, text.encode(), hashlib.sha256)[:18]).decode()

    def store_file(self, data: bytes, content_type: str = "image/png") -> str:
        """Keep ``data`` as a result file until ``result_ttl``; returns its new name."""
        name = f"{uuid.uuid4().hex}-{next(self._counter)}.png"
        self.files[name] = StoredFile(data, content_type, self.clock() + self.config.result_ttl)
        return name

    def signed_file_url(self, origin: str, name: str) -> str:
        """The signed URL of the stored file ``name`` on ``origin``, expiring with it. Raises KeyError for an
        unknown name."""
        expires = int(self.files[name].expires)
        signature = self.sign(f"{name}:{expires}")
        return f"{origin}/results/{name}?Expires={expires}&OSSAccessKeyId=LTAIemulator&Signature={signature}"

    def expire_results(self) -> int:
        """Make every result file expire now; returns how many there are."""
        now = self.clock()
        for stored in self.files.values():
            stored.expires = min(stored.expires, now - 1)
        return len(self.files)

    # --- upload policies ----------------------------------------------------------------------------

    def new_policy(self, model: str) -> dict[str, Any]:
        """A signed upload policy for ``model`` in a fresh directory, expiring after ``policy_ttl``: the fields
        of ``GET /uploads?action=getPolicy``'s ``data`` but the upload host."""
        expires = self.clock() + self.config.policy_ttl
        upload_dir = f"dashscope-instant/{uuid.uuid4().hex}/{time.strftime('%Y-%m-%d')}"
        policy = base64.b64encode(
            json.dumps({"expiration": expires, "model": model, "dir": upload_dir}).encode()
        ).decode()
        return {
            "policy": policy,
            "signature": self.sign(policy),
            "upload_dir": upload_dir,
            "oss_access_key_id": "LTAIemulator",
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
            "expire_in_seconds": int(self.config.policy_ttl),
            "max_file_size_mb": self.config.max_upload_bytes // (1024 * 1024),
            "capacity_limit_mb": 999999999,
        }

    def read_policy(self, policy: str, signature: str) -> dict[str, Any] | None:
        """The decoded ``policy`` (``expiration``, ``model``, ``dir``) if ``signature`` is this emulator's for it,
        else None (also for a policy that does not decode)."""
        if not hmac.compare_digest(self.sign(policy), signature):
            return None
        try:
            decoded: dict[str, Any] = json.loads(base64.b64decode(policy))
        except ValueError:
            return None
        return decoded

    def log(self, entry: LoggedRequest) -> None:
        """Append ``entry`` to the request log."""
        self.requests.append(entry)
