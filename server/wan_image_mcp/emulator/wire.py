"""A task as DashScope writes it: the ``output`` object in both result shapes, ``usage``, list rows, times.

Pure functions of a task and the emulator's state; nothing here changes either. The JSON envelope around
them (``request_id``, status, headers) is the handlers' business, in ``responses``.
"""

from __future__ import annotations

import time
from typing import Any

from ..core.specs import Protocol
from .state import EmulatorState, Task


def service_time(state: EmulatorState, ts: float) -> str:
    """A UTC timestamp ``ts`` as DashScope writes times: in the service's zone (``config.tz_offset_hours``,
    UTC+8 by default), ``YYYY-MM-DD HH:mm:ss.SSS``."""
    local = ts + state.config.tz_offset_hours * 3600
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(local)) + f".{int(local * 1000) % 1000:03d}"


def output(state: EmulatorState, task: Task, origin: str) -> dict[str, Any]:
    """The ``output`` object of a query of ``task`` in its current state, in its model's result shape: times,
    the failure's ``code``/``message``, and once SUCCEEDED the signed URLs of its (already rendered) files,
    served from ``config.result_origin`` or else ``origin`` (``scheme://host:port`` of the request)."""
    out: dict[str, Any] = {"task_id": task.task_id, "task_status": task.status}
    out["submit_time"] = service_time(state, task.created)
    if task.status in ("RUNNING", "SUCCEEDED", "FAILED"):
        out["scheduled_time"] = service_time(state, task.created + 0.03)
    if task.finished is not None:
        out["end_time"] = service_time(state, task.finished)
    if task.status == "FAILED" and task.failure:
        out["code"], out["message"] = task.failure
    if task.status != "SUCCEEDED":
        return out
    urls = [state.signed_file_url(state.config.result_origin or origin, name) for name in task.outputs]
    if task.spec.protocol is Protocol.PROMPT:
        out["results"] = _results(task, urls)
        out["task_metrics"] = {"TOTAL": task.count, "SUCCEEDED": len(urls), "FAILED": task.failed_images}
    else:
        out["finished"] = True
        out["choices"] = choices(task, urls)
    return out


def _results(task: Task, urls: list[str]) -> list[dict[str, Any]]:
    """wan2.5's ``results[]``: one item per image (with ``actual_prompt`` unless ``prompt_extend`` is false),
    then one ``code``/``message`` item per failed image."""
    results: list[dict[str, Any]] = []
    extend = task.parameters.get("prompt_extend", True) is not False
    for url in urls:
        item = {"url": url, "orig_prompt": task.prompt}
        if extend:
            item["actual_prompt"] = f"{task.prompt}(emulated rewrite: clearer lighting, natural placement)"
        results.append(item)
    results.extend(
        {"code": "InternalError.Algo", "message": "Image generation failed."} for _ in range(task.failed_images)
    )
    return results


def choices(task: Task, urls: list[str]) -> list[dict[str, Any]]:
    """The messages protocol's ``choices[]`` for ``urls`` (the task's images, in order): text and images
    interleaved in one choice (interleave), the whole set in one choice (image-set), else one choice each."""

    def choice(content: list[dict[str, str]]) -> dict[str, Any]:
        return {"finish_reason": "stop", "message": {"role": "assistant", "content": content}}

    if task.mode.name == "interleave":
        content: list[dict[str, str]] = []
        for text, url in zip(task.texts, urls, strict=True):
            content += [{"type": "text", "text": text}, {"type": "image", "image": url}]
        return [choice(content)]
    if task.mode.name == "image-set":  # one choice holding the whole set
        return [choice([{"type": "image", "image": url} for url in urls])]
    return [choice([{"type": "image", "image": url}]) for url in urls]  # one choice per image


def usage(task: Task) -> dict[str, Any]:
    """The ``usage`` of a finished task: its image count, and for the messages protocol size and tokens."""
    produced = len(task.outputs)
    if task.spec.protocol is Protocol.PROMPT:
        return {"image_count": produced}
    width, height = task.size
    input_tokens = 10 + len(task.prompt) + 4000 * len(task.images)
    return {
        "image_count": produced,
        "size": f"{width}*{height}",
        "input_tokens": input_tokens,
        "output_tokens": 2,
        "total_tokens": input_tokens + 2,
    }


def list_row(state: EmulatorState, task: Task) -> dict[str, Any]:
    """One row of ``GET /tasks``' ``tasks[]``: id, status, model and submit time."""
    return {
        "task_id": task.task_id,
        "task_status": task.status,
        "model_name": task.spec.name,
        "submit_time": service_time(state, task.created),
    }
