"""The durable record: every task, in SQLite or PostgreSQL.

``queries`` (the Journal's queries), ``rows`` (TaskRow, NewTask, the statuses, Tenant), ``async_journal``
(journal calls on a worker thread), ``database`` (the seam between the queries and a connection), ``sqlite`` and
``postgres`` (schemas and migrations), ``query_places`` (the task-query budget replicas share).

May import: ``core.errors`` and ``core.clock`` only.
"""

from .async_journal import AsyncJournal
from .queries import Journal
from .rows import AMBIGUOUS, DAY, EXPIRED, OPEN_STATUSES, REJECTED, SUBMITTING, UNCERTAIN, NewTask, TaskRow, Tenant

__all__ = [
    "AMBIGUOUS",
    "DAY",
    "EXPIRED",
    "OPEN_STATUSES",
    "REJECTED",
    "SUBMITTING",
    "UNCERTAIN",
    "AsyncJournal",
    "Journal",
    "NewTask",
    "TaskRow",
    "Tenant",
]
