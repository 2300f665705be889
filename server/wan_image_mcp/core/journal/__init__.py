"""The durable record: every task, in SQLite or PostgreSQL.

``queries`` (the Journal's queries), ``rows`` (TaskRow, NewTask, Tenant, and ``Status``, every task status),
``async_journal`` (the journal's methods, awaitable, on a worker thread), ``database`` (the seam between the
queries and a connection), ``migrations`` (the schema, written once for both dialects), ``sqlite`` and
``postgres`` (each dialect's connection, migrated), ``query_places`` (the task-query budget replicas share).

May import: ``core.errors``, ``core.clock`` and the DashScope client's wire statuses and text helpers only.
"""

from .async_journal import AsyncJournal
from .queries import Journal
from .rows import DAY, OPEN_STATUSES, UNRESOLVED, NewTask, Status, TaskRow, Tenant

__all__ = [
    "DAY",
    "OPEN_STATUSES",
    "UNRESOLVED",
    "AsyncJournal",
    "Journal",
    "NewTask",
    "Status",
    "TaskRow",
    "Tenant",
]
