"""Suggestions for a value being typed: model names, the journal's recent task ids and result image names.

Each ``*_suggestions`` function takes the typed prefix and returns at most ``LIMIT`` values, best first (model
names in the table's order, tasks and images newest first), with how many matched in all. Free of MCP; the
journal functions run on its worker thread (``AsyncJournal.call``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..journal import Journal, Tenant
from ..results.sinks import ResultSink
from ..specs import MODEL_NAMES

LIMIT = 100
"""Most values in one answer (the protocol's own bound)."""
RECENT_TASKS = 500
"""How far back in the journal suggestions look: the newest this many tasks."""


@dataclass(frozen=True)
class Suggestions:
    values: list[str]
    total: int

    @property
    def has_more(self) -> bool:
        return self.total > len(self.values)


def _matching(candidates: Iterable[str], prefix: str, limit: int) -> Suggestions:
    seen: dict[str, None] = {}
    for value in candidates:
        if value.startswith(prefix):
            seen.setdefault(value)
    values = list(seen)
    return Suggestions(values[:limit], len(values))


def model_suggestions(prefix: str, limit: int = LIMIT) -> Suggestions:
    return _matching(MODEL_NAMES, prefix, limit)


def task_suggestions(journal: Journal, prefix: str, limit: int = LIMIT, *, tenant: Tenant | None = None) -> Suggestions:
    """Task ids DashScope gave to the newest tasks (only ``tenant``'s, when given; a submission still without one has
    none to suggest)."""
    rows, _ = journal.recent(limit=RECENT_TASKS, tenant=tenant)
    return _matching((row.task_id for row in rows if row.task_id), prefix, limit)


def image_suggestions(
    journal: Journal, sink: ResultSink, prefix: str, limit: int = LIMIT, *, tenant: Tenant | None = None
) -> Suggestions:
    """File names of the images the newest tasks (only ``tenant``'s, when given) saved in ``sink`` (the output
    folder, or a bucket) that are still there: what wan://images/{name} serves."""
    rows, _ = journal.recent(limit=RECENT_TASKS, tenant=tenant)
    paths = (str(image["path"]) for row in rows for image in row.images)
    named = (sink.served_name(path) for path in paths if Path(path).name.startswith(prefix))
    servable = (name for name in named if name is not None)
    return _matching(servable, prefix, limit)
