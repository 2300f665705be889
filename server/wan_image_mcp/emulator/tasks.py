"""The task life cycle, as functions of the emulator's state: input images resolved and checked, a task made
from a parsed job, moved along by polls (or by time), and its output images rendered once.

The backend (``models.EmulatorBackend``) calls these; they raise ``EmulatedError`` for what DashScope refuses.
"""

from __future__ import annotations

import base64
import binascii
import time
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpx2

from ..core.specs import Protocol, output_size
from . import render
from .checks import InputImage, Job, check_image
from .exceptions import EmulatedError, invalid
from .state import EmulatorState, Task

_DOWNLOAD_FAILED = "Unable to download the media resource during the data inspection process."


async def load_inputs(state: EmulatorState, job: Job, *, resolve_oss: bool) -> list[InputImage | None]:
    """Every input image of ``job`` decoded and checked against its model, in order; None stands for a remote
    image the emulator could not (and need not) fetch. ``oss://`` references are looked up in the uploads
    only with ``resolve_oss`` (the ``X-DashScope-OssResourceResolve: enable`` header).

    Raises ``EmulatedError``: 400 ``InvalidParameter`` for a bad, missing, expired or foreign reference or a
    refused image, 400 ``InvalidParameter.DataInspection`` for a loopback URL that cannot be fetched."""
    loaded: list[InputImage | None] = []
    for index, ref in enumerate(job.image_refs, start=1):
        if ref.startswith("data:"):
            data = _decode_data_url(ref, index)
        elif ref.startswith("oss://"):
            data = _uploaded(state, job, ref, index, resolve_oss)
        elif ref.startswith(("http://", "https://")):
            data = await _fetch(state, ref, index)
            if data is None:
                loaded.append(None)
                continue
        else:
            raise invalid(f"The image {index} URL is not valid: use http(s)://, data: or oss:// URLs.")
        loaded.append(await anyio.to_thread.run_sync(check_image, job.spec, data, index))
    return loaded


def _decode_data_url(ref: str, index: int) -> bytes:
    header, _, payload = ref.partition(",")
    try:
        if ";base64" in header:
            return base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error):
        pass
    raise invalid(f"The image {index} is not a valid base64 data URL.")


def _uploaded(state: EmulatorState, job: Job, ref: str, index: int, resolve_oss: bool) -> bytes:
    if not resolve_oss:
        raise invalid(f"The image {index} is an oss:// URL; send the header X-DashScope-OssResourceResolve: enable.")
    upload = state.uploads.get(ref.removeprefix("oss://"))
    if upload is None or upload.expires < state.clock():
        raise invalid(f"The image {index} oss:// file does not exist or has expired.")
    if upload.model != job.spec.name:
        raise invalid(f"The image {index} oss:// file was uploaded for {upload.model}, not {job.spec.name}.")
    return upload.data


async def _fetch(state: EmulatorState, url: str, index: int) -> bytes | None:
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1") and not state.config.fetch_remote:
        return None
    try:
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.get(url, headers={"User-Agent": "DashScopeUserBot/1.0 (emulator)"})
    except httpx2.HTTPError:
        raise EmulatedError(400, "InvalidParameter.DataInspection", _DOWNLOAD_FAILED) from None
    if response.status_code != 200:
        raise EmulatedError(400, "InvalidParameter.DataInspection", _DOWNLOAD_FAILED)
    return response.content


def new_task(state: EmulatorState, job: Job, inputs: list[InputImage | None]) -> Task:
    """A PENDING task for ``job`` with its loaded ``inputs``, kept in ``state.tasks`` and returned: its output
    size (from the last input's aspect ratio) and image count, and a queued ``fail_task`` or
    ``partial_failure`` fault (target submit) taken and applied. Raises nothing."""
    last: tuple[int, int] | None = None
    if inputs:
        final = inputs[-1]
        last = (final.width, final.height) if final else render.placeholder(job.image_refs[-1]).size
    size = output_size(job.mode, job.parameters.get("size"), last)
    n = job.parameters.get("n", job.mode.n_api_default)
    default_max = job.spec.max_images.hi if job.spec.max_images else 1  # the API makes up to 5 by default
    count = job.parameters.get("max_images", default_max) if job.mode.name == "interleave" else n
    task = Task(
        task_id=state.new_id(),
        spec=job.spec,
        mode=job.mode,
        prompt=job.prompt,
        images=[i.data if i else None for i in inputs],
        image_refs=job.image_refs,
        parameters=job.parameters,
        size=size,
        count=int(count),
        created=state.clock(),
    )
    if fail := state.take_fault("submit", ("fail_task",)):
        task.failure = (fail.code, fail.message)
    if partial := state.take_fault("submit", ("partial_failure",)):
        task.failed_images = min(partial.failed_images, task.count - 1) if job.spec.protocol is Protocol.PROMPT else 0
    state.tasks[task.task_id] = task
    return task


def advance(state: EmulatorState, task: Task) -> None:
    """Move a PENDING or RUNNING ``task`` along, in place: one step per observation (a query or a list), or by
    elapsed time when the emulator has a latency; it ends SUCCEEDED, or FAILED if it carries a failure. Its
    images are not rendered here (see ``render_once``). A finished task is left as it is. Raises nothing."""
    if task.status not in ("PENDING", "RUNNING"):
        return
    config = state.config
    task.polls += 1
    if config.latency > 0:
        elapsed, duration = state.clock() - task.created, state.duration(task)
        done, running = elapsed >= duration, elapsed >= duration / 5
    else:
        done, running = task.polls >= config.polls_to_finish, task.polls >= 1
    if not done:
        task.status = "RUNNING" if running else "PENDING"
        return
    task.status = "FAILED" if task.failure else "SUCCEEDED"
    task.finished = state.clock()


def render_locked(state: EmulatorState, task: Task) -> None:
    """Render ``task``'s output images into ``state.files`` unless done already (blocking; any thread), and
    time the render in ``state.renders``. Concurrent callers wait for the one rendering. Raises nothing."""
    with task.render_lock:
        if not task.rendered:
            started = time.perf_counter()
            _render_outputs(state, task)
            state.renders.append(time.perf_counter() - started)
            task.rendered = True


async def render_once(state: EmulatorState, task: Task) -> None:
    """``render_locked`` on a worker thread: a succeeded task's images, rendered once however many queries
    (or the background pre-render) ask at the same time."""
    await anyio.to_thread.run_sync(render_locked, state, task)


def _render_outputs(state: EmulatorState, task: Task) -> None:
    inputs = [
        render.placeholder(ref) if data is None else render.shown(data)
        for data, ref in zip(task.images, task.image_refs, strict=True)
    ]
    produced = task.count - task.failed_images
    seed = task.parameters.get("seed")
    for index in range(1, produced + 1):
        png = render.render(
            size=task.size,
            model=task.spec.name,
            prompt=task.prompt,
            inputs=inputs,
            boxes=task.parameters.get("bbox_list"),
            index=index,
            total=produced,
            seed=seed + index - 1 if isinstance(seed, int) else None,
            watermark=bool(task.parameters.get("watermark")),
        )
        task.outputs.append(state.store_file(png))
        if task.mode.name == "interleave":
            task.texts.append(f"Step {index}: {task.prompt[:80]} (emulated text)")
