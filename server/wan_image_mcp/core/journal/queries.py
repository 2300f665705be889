"""The task journal: every task the server starts, in SQLite, so no paid image is lost to a restart.

A row is written *before* the create-task request is sent (status SUBMITTING) and completed with the
task id from the response, so a crash at any moment leaves either a task we know about or a row saying we
may have started one (UNCERTAIN). Rows hold model, prompt, parameters (never image bytes or the API key),
times, status, result URLs, local paths with their sha256, errors, and whose the task is (``Tenant``, on a server
with OAuth; a tenant given to a query sees only its own rows).

``Journal`` is synchronous: the queries that write and read rows (its file, schema and start-up check are
``sqlite``'s); ``AsyncJournal`` runs every call on one worker thread at a time so the event loop never
waits on the disk.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final

from ...dashscope.text import has_lone_surrogate
from ..clock import SYSTEM_CLOCK, Clock
from .database import Database, is_postgres, open_database
from .rows import OPEN_STATUSES, UNRESOLVED, NewTask, Status, TaskRow, Tenant

__all__ = ["BUDGET_LOCK", "UNLIKE", "Journal"]

UNLIKE: Final = "UnlikeTasks"
"""The error code of an AMBIGUOUS row whose only candidates DashScope's report rules out (see ``Journal.ambiguous``)."""
BUDGET_LOCK: Final = 0x57414E42
"""PostgreSQL's advisory lock ("WANB") that checks of the daily budget take, one at a time on a shared journal."""


def _json(value: object) -> str:
    """``value`` as JSON for a TEXT column: in UTF-8; or, when a string in it holds a lone surrogate (an input's
    resolved path whose bytes are not UTF-8), with ``\\u`` escapes, which neither SQLite nor PostgreSQL refuses
    and ``json.loads`` reads back exactly (the viewer and gallery open that path again)."""
    text = json.dumps(value, ensure_ascii=False)
    return json.dumps(value) if has_lone_surrogate(text) else text


class Journal:
    """Synchronous access; use from one thread at a time (AsyncJournal sees to that). ``location`` is a SQLite
    file's path, or a ``postgresql://`` URL. The times it writes by itself (updated, finished, saved, answer given
    up) are ``clock.time()``: the service's clock, in a server."""

    def __init__(self, location: Path | str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.location = location
        self.path = Path(location) if not is_postgres(location) else None
        """The SQLite file (None for PostgreSQL)."""
        self._clock = clock

    @functools.cached_property
    def _db(self) -> Database:
        """The connection, opened and migrated on first use: the server starts without touching the disk."""
        return open_database(self.location)

    def open(self) -> Journal:
        """Open now (where failing early is better than failing on first use)."""
        _ = self._db
        return self

    def close(self) -> None:
        """Close the connection if it was opened; the journal opens again on its next use."""
        if "_db" in self.__dict__:
            self._db.close()
            del self.__dict__["_db"]

    @property
    def version(self) -> int:
        """The schema version of the open journal (how many migrations it has had)."""
        return self._db.version

    def _update(self, row_id: int, **values: Any) -> None:
        values["updated_at"] = self._clock.time()
        columns = ", ".join(f"{name} = ?" for name in values)
        self._db.execute(f"UPDATE tasks SET {columns} WHERE id = ?", [*values.values(), row_id])

    # --- writing ------------------------------------------------------------------------------------

    def begin(self, task: NewTask) -> int:
        """Record a task about to be submitted. Returns its row id."""
        return self._db.insert(
            "INSERT INTO tasks (model, prompt, parameters, adjustments, instruction, requested_images, status,"
            " created_at, updated_at, inputs, answer_by, expected_size, tenant_issuer, tenant_subject)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.model,
                task.prompt,
                _json(task.parameters),
                _json(list(task.adjustments)),
                task.instruction,
                task.requested_images,
                Status.SUBMITTING,
                task.created_at,
                task.created_at,
                _json(list(task.inputs)),
                task.created_at + task.answer_within,
                f"{task.expected_size[0]}*{task.expected_size[1]}" if task.expected_size else None,
                task.tenant.issuer if task.tenant else None,
                task.tenant.subject if task.tenant else None,
            ),
        )

    def submitted(
        self, row_id: int, task_id: str, request_id: str | None, status: Status, *, next_poll_at: float
    ) -> None:
        """Row ``row_id``'s create request was answered with ``task_id``; its first query is at ``next_poll_at``."""
        self._update(row_id, task_id=task_id, request_id=request_id, status=status, next_poll_at=next_poll_at)

    def uncertain(self, row_id: int, message: str) -> None:
        """The create request of row ``row_id`` was sent and its answer lost: a task may exist (UNCERTAIN)."""
        self._update(
            row_id,
            status=Status.UNCERTAIN,
            error_code="ResponseLost",
            error_message=message,
            answer_by=self._clock.time(),
        )

    def reconciled(self, row_id: int, task_id: str, status: Status) -> bool:
        """Give an unanswered submission the task the task list showed it created. False, changing nothing, if the
        row was answered or reconciled meanwhile, or if another row has that task (another replica may take it
        between the check and the write: the task id's uniqueness refuses the second)."""
        try:
            with self._db.transaction():
                if self._db.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone():
                    return False
                cursor = self._db.execute(
                    "UPDATE tasks SET task_id = ?, status = ?, error_code = NULL, error_message = NULL,"
                    " next_poll_at = ?, updated_at = ? WHERE id = ? AND task_id IS NULL AND status IN (?, ?)",
                    (task_id, status, self._clock.time(), self._clock.time(), row_id, *UNRESOLVED),
                )
                return cursor.rowcount == 1
        except self._db.duplicate:
            return False

    def ambiguous(self, row_id: int, candidates: Sequence[str], message: str, *, unlike: bool = False) -> None:
        """Several listed tasks could be row ``row_id``'s: none is adopted; ``candidates`` names them (AMBIGUOUS).
        Each candidate the journal has no row for gets one, as a task of row ``row_id``'s tenant that names that row
        (``candidate_of``), with its model, prompt and parameters, due now: the harvester saves its images, since
        one of them may be this paid submission's (an image saved twice is better than a paid one lost). Its paid
        images are not counted again (``requested_images`` stays NULL): row ``row_id`` counts them once.

        ``unlike``: the only tasks listed are ones DashScope's report rules out (another size, count or prompt:
        provably not this submission's, probably another client's on the key). They are named (``UNLIKE``) but get
        no rows: they are never harvested, and never shown to the tenant as theirs."""
        with self._db.transaction():
            self._update(
                row_id,
                status=Status.AMBIGUOUS,
                candidates=_json(list(candidates)),
                error_code=UNLIKE if unlike else "Ambiguous",
                error_message=message,
            )
            if not unlike:
                self._candidate_rows(row_id, candidates)

    def harvest_candidates(self, *, younger_than: float) -> None:
        """Give every candidate of an AMBIGUOUS row created after ``younger_than`` its row, as ``ambiguous`` does
        (rows made AMBIGUOUS by an older version, or by a replica still running one, had none)."""
        found = self._db.execute(
            "SELECT id, candidates FROM tasks WHERE status = ? AND created_at >= ?"
            " AND (error_code IS NULL OR error_code != ?)",
            (Status.AMBIGUOUS, younger_than, UNLIKE),
        ).fetchall()
        for row_id, candidates in found:
            missing = set(json.loads(candidates)) - self.have_rows(json.loads(candidates))
            if missing:
                with self._db.transaction():
                    self._candidate_rows(int(row_id), sorted(missing))

    def _candidate_rows(self, row_id: int, candidates: Sequence[str]) -> None:
        now = self._clock.time()
        for task_id in candidates:
            self._db.execute(
                "INSERT INTO tasks (task_id, model, prompt, parameters, adjustments, instruction, status,"
                " created_at, updated_at, inputs, expected_size, tenant_issuer, tenant_subject, candidate_of,"
                " next_poll_at) SELECT ?, model, prompt, parameters, adjustments, instruction, ?, created_at, ?,"
                " inputs, expected_size, tenant_issuer, tenant_subject, id, ? FROM tasks WHERE id = ?"
                " ON CONFLICT (task_id) DO NOTHING",
                (task_id, Status.PENDING, now, now, row_id),
            )

    def rejected(self, row_id: int, code: str, message: str) -> None:
        """No task exists for row ``row_id``: the API refused it, or it provably never reached the API (REJECTED)."""
        self._update(
            row_id, status=Status.REJECTED, error_code=code, error_message=message, finished_at=self._clock.time()
        )

    def observed(
        self,
        task_id: str,
        *,
        status: Status,
        request_id: str | None = None,
        result_urls: Sequence[str] = (),
        usage: dict[str, Any] | None = None,
        actual_prompt: str | None = None,
        texts: Sequence[str] = (),
        text_places: Sequence[int] = (),
        error_code: str | None = None,
        error_message: str | None = None,
        next_poll_at: float | None = None,
        submit_time: str | None = None,
    ) -> None:
        """What a query said about a task. Creates the row for a task another process submitted."""
        row = self.get(task_id)
        row_id = row.id if row else self.adopt(task_id)
        values: dict[str, Any] = {"status": status, "next_poll_at": next_poll_at}
        if request_id:
            values["request_id"] = request_id
        if status not in OPEN_STATUSES:
            values["finished_at"] = row.finished_at if row and row.finished_at else self._clock.time()
        if result_urls:
            values["result_urls"] = _json(list(result_urls))
        if usage is not None:
            values["usage"] = _json(usage)
        if actual_prompt is not None:
            values["actual_prompt"] = actual_prompt
        if texts:
            values["texts"] = _json(list(texts))
        if text_places:
            values["text_places"] = _json(list(text_places))
        if submit_time:
            values["submit_time"] = submit_time
        if error_code is not None:
            values["error_code"], values["error_message"] = error_code, error_message
        self._update(row_id, **values)

    def adopt(self, task_id: str) -> int:
        """A row for a task another process (or an earlier journal) submitted; returns its row id."""
        now = self._clock.time()
        return self._db.insert(
            "INSERT INTO tasks (task_id, model, prompt, status, created_at, updated_at) VALUES (?, '', '', ?, ?, ?)",
            (task_id, Status.UNKNOWN, now, now),
        )

    def saved(self, task_id: str, images: Sequence[dict[str, Any]]) -> None:
        """The task's images are on disk: ``images`` as ``ImageFile`` dicts (path, url, size, bytes, sha256)."""
        row = self.get(task_id)
        assert row is not None
        self._update(
            row.id, images=_json(list(images)), saved_at=self._clock.time(), download_error=None, next_poll_at=None
        )

    def download_failed(self, task_id: str, message: str, *, retry_at: float | None) -> None:
        """Saving the task's images failed (``message``); try again at ``retry_at``, or never when it is None."""
        row = self.get(task_id)
        assert row is not None
        self._update(row.id, download_attempts=row.download_attempts + 1, download_error=message, next_poll_at=retry_at)

    def schedule(self, task_id: str, at: float | None) -> None:
        """Query the task next at ``at`` (epoch seconds), or not at all when it is None."""
        self.schedule_many({task_id: at})

    def schedule_many(self, times: Mapping[str, float | None]) -> None:
        """``schedule`` for many tasks in one transaction (one write to disk, not one per task)."""
        if not times:
            return
        with self._db.transaction():
            self._db.executemany(
                "UPDATE tasks SET next_poll_at = ? WHERE task_id = ?", [(at, tid) for tid, at in times.items()]
            )

    def claim(self, task_id: str, owner: str, *, now: float, until: float, over: str | None = None) -> bool:
        """Take the harvest of ``task_id`` for ``owner`` until ``until``: False, changing nothing, while another
        owner's claim runs past ``now`` (unless that owner is ``over``, known to be gone). One statement, so of two
        servers on one journal only one wins (SQLite writes one at a time; PostgreSQL re-reads a row another
        transaction just changed)."""
        cursor = self._db.execute(
            "UPDATE tasks SET claimed_by = ?, claimed_until = ? WHERE task_id = ?"
            " AND (claimed_by IS NULL OR claimed_by = ? OR claimed_until < ? OR claimed_by = ?)",
            (owner, until, task_id, owner, now, over),
        )
        return bool(cursor.rowcount == 1)

    def claimant(self, task_id: str) -> str | None:
        """Who holds (or last held) the claim on ``task_id``."""
        row = self._db.execute("SELECT claimed_by FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return str(row[0]) if row and row[0] is not None else None

    def release(self, task_id: str, owner: str) -> None:
        """``owner`` is done with ``task_id`` (its claim, if it still holds it, ends)."""
        self._db.execute(
            "UPDATE tasks SET claimed_by = NULL, claimed_until = NULL WHERE task_id = ? AND claimed_by = ?",
            (task_id, owner),
        )

    # --- reading ------------------------------------------------------------------------------------

    def get(self, task_id: str, *, tenant: Tenant | None = None) -> TaskRow | None:
        """The row of ``task_id``, or None if the journal does not know it (or, given ``tenant``, if it is not that
        tenant's: another's task is not told apart from an unknown one)."""
        row = self._db.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        found = TaskRow.from_sql(row) if row else None
        if found is None or found.belongs_to(tenant):
            return found
        # a candidate two tenants' AMBIGUOUS submissions name is the first's row, and the second's task all the same
        return found if tenant is not None and found.candidate_of and task_id in self.named_by(tenant) else None

    def named_by(self, tenant: Tenant) -> set[str]:
        """The task ids ``tenant``'s AMBIGUOUS submissions name as candidates: tasks of theirs as much as of the
        tenant whose row a candidate got."""
        found: set[str] = set()
        for (candidates,) in self._db.execute(
            "SELECT candidates FROM tasks WHERE status = ? AND tenant_issuer = ? AND tenant_subject = ?",
            (Status.AMBIGUOUS, tenant.issuer, tenant.subject),
        ):
            found.update(json.loads(candidates))
        return found

    def to_harvest(self, *, younger_than: float) -> list[TaskRow]:
        """Tasks to poll or whose images to fetch, created after ``younger_than``, soonest first."""
        rows = self._db.execute(
            "SELECT * FROM tasks WHERE task_id IS NOT NULL AND created_at >= ? AND (status IN (?, ?)"
            " OR (status = ? AND saved_at IS NULL)) ORDER BY COALESCE(next_poll_at, 0)",
            (younger_than, *OPEN_STATUSES, Status.SUCCEEDED),
        ).fetchall()
        return [TaskRow.from_sql(row) for row in rows]

    def unresolved(self, *, younger_than: float) -> list[TaskRow]:
        """Create requests without their answer (SUBMITTING, UNCERTAIN) created after ``younger_than``, oldest
        first."""
        rows = self._db.execute(
            "SELECT * FROM tasks WHERE task_id IS NULL AND status IN (?, ?) AND created_at >= ? ORDER BY created_at",
            (*UNRESOLVED, younger_than),
        ).fetchall()
        return [TaskRow.from_sql(row) for row in rows]

    def contested(self, *, younger_than: float) -> set[str]:
        """Task ids AMBIGUOUS rows created after ``younger_than`` name as candidates (and the journal has not
        adopted since): no other submission may take one of them silently."""
        found: set[str] = set()
        for (candidates,) in self._db.execute(
            "SELECT candidates FROM tasks WHERE status = ? AND created_at >= ?", (Status.AMBIGUOUS, younger_than)
        ):
            found.update(json.loads(candidates))
        return found - self.known(found)

    def have_rows(self, task_ids: Collection[str]) -> set[str]:
        """Which of these task ids the journal has a row for, of any kind."""
        return self._ids(task_ids, "")

    def known(self, task_ids: Collection[str]) -> set[str]:
        """Which of these task ids the journal has a row for, other than as an AMBIGUOUS submission's candidate
        (that one is still ``contested``: another submission's lost answer may have made it)."""
        return self._ids(task_ids, " AND candidate_of IS NULL")

    def _ids(self, task_ids: Collection[str], condition: str) -> set[str]:
        ids = list(task_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT task_id FROM tasks WHERE task_id IN ({marks}){condition}"
            found.update(r[0] for r in self._db.execute(sql, chunk))
        return found

    def submit_times(self, *, limit: int = 50) -> list[tuple[float, str]]:
        """(when we sent it, DashScope's submit_time) of the latest tasks this journal submitted itself and saw
        queried: how DashScope's time zone is learned. Rows adopted from elsewhere and candidates are left out (their
        created time is when they were first seen, or their AMBIGUOUS submission's, not when they were sent)."""
        rows = self._db.execute(
            "SELECT created_at, submit_time FROM tasks WHERE submit_time IS NOT NULL AND model != ''"
            " AND candidate_of IS NULL"
            " ORDER BY created_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [(float(row[0]), str(row[1])) for row in rows]

    def cached_upload(self, sha256: str, model: str, *, since: float) -> str | None:
        """The oss:// URL of these bytes uploaded for ``model`` after ``since``, if any."""
        row = self._db.execute(
            "SELECT url FROM uploads WHERE sha256 = ? AND model = ? AND created_at >= ?", (sha256, model, since)
        ).fetchone()
        return str(row[0]) if row else None

    def remember_upload(self, sha256: str, model: str, url: str, size: int) -> None:
        """These bytes (``sha256``, ``size``) were uploaded for ``model`` as ``url`` (an oss:// URL), now."""
        self._db.execute(
            "INSERT INTO uploads (sha256, model, url, bytes, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (sha256,"
            " model) DO UPDATE SET url = excluded.url, bytes = excluded.bytes, created_at = excluded.created_at",
            (sha256, model, url, size, self._clock.time()),
        )

    def budgeted(self) -> AbstractContextManager[None]:
        """A transaction for a budget check and the row it allows (``requested_since``, then ``begin``): no other
        process or replica on this journal checks the budget until it commits, so two submissions cannot both be
        counted under a limit only one of them fits. SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock."""
        return self._db.serialised(BUDGET_LOCK)

    def requested_since(self, since: float) -> int:
        """Paid images requested by tasks created since ``since`` (refused submissions do not count)."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(requested_images), 0) FROM tasks WHERE created_at >= ? AND status != ?",
            (since, Status.REJECTED),
        ).fetchone()
        return int(row[0])

    def recent(
        self, *, status: Status | None = None, limit: int = 20, offset: int = 0, tenant: Tenant | None = None
    ) -> tuple[list[TaskRow], int]:
        """A page of rows, newest first (only ``status``, only ``tenant``'s when given), and how many match in all."""
        conditions: list[str] = []
        args: list[Any] = []
        if status:
            conditions.append("status = ?")
            args.append(status)
        if tenant is not None:
            conditions.append("tenant_issuer = ? AND tenant_subject = ?")
            args += [tenant.issuer, tenant.subject]
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        total = int(self._db.execute(f"SELECT COUNT(*) FROM tasks {where}", args).fetchone()[0])
        rows = self._db.execute(
            f"SELECT * FROM tasks {where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", [*args, limit, offset]
        ).fetchall()
        return [TaskRow.from_sql(row) for row in rows], total
