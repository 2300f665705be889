"""list_tasks's words: one line per task (status, id, model, prompt excerpt, images) and where the page is, for a
model to read beside the structured ``TaskList``."""

from __future__ import annotations

from typing import Final

from .outcomes import TaskList, TaskSummary

EXCERPT: Final = 60
"""Characters of a prompt a line shows (the structured content has its first 120)."""


def task_list_text(listed: TaskList, *, status: str | None = None) -> str:
    """``listed`` as lines a model reads: a heading with the count and the page, then one line per task."""
    which = f" with status {status}" if status else ""
    if listed.total == 0:
        return f"No tasks{which}."
    pages = max(1, -(-listed.total // listed.page_size))
    heading = f"{listed.total} task{'s' if listed.total != 1 else ''}{which}, newest first"
    heading += f" (page {listed.page} of {pages}):" if pages > 1 else ":"
    lines = [heading, *(_line(task) for task in listed.tasks)]
    if not listed.tasks:
        lines.append(f"(no tasks on page {listed.page}: ask for page 1 to {pages})")
    elif listed.page < pages:
        lines.append(f"More: page={listed.page + 1}.")
    return "\n".join(lines)


def _line(task: TaskSummary) -> str:
    prompt = " ".join(task.prompt.split())
    excerpt = prompt if len(prompt) <= EXCERPT else f"{prompt[: EXCERPT - 1]}…"
    parts = [f"- {task.status} {task.task_id or '(no task_id yet)'}", task.model, f'"{excerpt}"']
    if task.images:
        parts.append(f"{len(task.images)} image{'s' if len(task.images) != 1 else ''}: {', '.join(task.images)}")
    if task.error is not None:
        parts.append(f"{task.error.code}: {task.error.message}")
    if task.candidates:
        parts.append(f"could be: {', '.join(task.candidates)}")
    return " · ".join(parts)
