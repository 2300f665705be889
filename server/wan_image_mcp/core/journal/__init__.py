"""The durable record: every task, in SQLite or PostgreSQL.

``queries`` (the Journal's queries), ``rows`` (TaskRow, NewTask, the statuses, Tenant), ``async_journal``
(journal calls on a worker thread), ``database`` (the seam between the queries and a connection), ``sqlite`` and
``postgres`` (schemas and migrations), ``query_places`` (the task-query budget replicas share).

May import: ``core.errors`` and ``core.clock`` only.
"""
