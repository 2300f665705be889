"""``wan-image-mcp gallery``: one static HTML page showing what the agent made, newest first.

Every task in the journal with saved images becomes a card: the result thumbnails, the prompt, model,
parameters, input thumbnails, time and image count. Thumbnails are small JPEGs cached under
``<output>/.thumbs/`` with names the server makes; the page links to the full images. Everything from the
journal is HTML-escaped: a prompt cannot inject markup. The page is the operator's: it shows every user's tasks
on a server with OAuth, or (``--tenant SUB``) only those of one subject of ``WAN_MCP_AUTH_ISSUER``.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .core.images.decoding import exif_orientation
from .core.images.pillow import Image
from .core.images.pixels import small_as_sent
from .core.images.runtime import imaging
from .core.journal import Journal, Status, TaskRow, Tenant
from .core.results.sinks import ResultSink
from .core.results.store import atomic_write

THUMB_SIDE = 320
PAGE = "gallery.html"
MAX_TASKS = 500

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;background:#f6f6f4;color:#222}
h1{font-size:20px;margin:0 0 4px} .meta{color:#666;margin-bottom:18px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;padding:14px;margin-bottom:16px}
.results img{height:200px;margin:0 8px 8px 0;border-radius:4px;background:#eee}
.inputs img{height:64px;margin-right:6px;border-radius:3px;opacity:.9;background:#eee}
.prompt{font-size:15px;margin:6px 0} code{background:#f0f0ee;padding:1px 4px;border-radius:3px}
.small{color:#666;font-size:12px} #missing{color:#a00;display:none}
"""

_SCRIPT = """
window.addEventListener('load', () => {
  const images = [...document.images];
  const broken = images.filter(i => !i.complete || i.naturalWidth === 0).length;
  document.body.dataset.images = images.length;
  document.body.dataset.broken = broken;
  if (broken) { const m = document.getElementById('missing'); m.textContent = broken +
    ' image(s) could not be shown: moved or deleted since they were saved.'; m.style.display = 'block'; }
});
"""


def _thumb(source: Path, root: Path) -> str | None:
    """A cached JPEG thumbnail of ``source`` (relative URL from the page), or None if it cannot be read."""
    try:
        found = source.stat()
    except OSError:
        return None
    if not stat.S_ISREG(found.st_mode):  # a FIFO or device put where an image was would block the page
        return None
    key = hashlib.sha256(f"{source}:{found.st_mtime_ns}:{found.st_size}".encode()).hexdigest()
    return _cached_thumb(lambda: source, key, root)


def _kept_thumb(sink: ResultSink, location: str, digest: str, root: Path) -> str | None:
    """A cached JPEG thumbnail of the image a bucket keeps at ``location`` (read once: its sha256 names it)."""
    return _cached_thumb(lambda: io.BytesIO(sink.read(location)), digest, root)


def _cached_thumb(source: Callable[[], Path | IO[bytes]], key: str, root: Path) -> str | None:
    """The thumbnail named by ``key`` under ``.thumbs/``, made from ``source()`` unless made already: the image as
    it was sent (alpha on white, 8-bit tones), decoded small where the format allows. None if it cannot be read."""
    target = root / ".thumbs" / f"{key[:24]}.jpg"
    if not target.exists():
        imaging()  # Pillow's guard set before decoding
        try:
            with Image.open(source()) as image:
                shown = small_as_sent(image, exif_orientation(image), THUMB_SIDE)
            encoded = io.BytesIO()
            shown.save(encoded, "JPEG", quality=80)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, encoded.getvalue())  # a thumbnail cut short would be kept as made
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            return None
    return f".thumbs/{target.name}"


def _result(image: dict[str, Any], root: Path, sink: ResultSink | None) -> tuple[str, str, str]:
    """A result image's link, thumbnail and name: from the output folder, or from the bucket ``sink`` keeps it
    in (a presigned link, good for the sink's download-URL lifetime)."""
    location = str(image["path"])
    if sink is not None and sink.served_name(location) is not None and (url := sink.download_url(location)):
        thumb = _kept_thumb(sink, location, str(image.get("sha256", "")) or location, root) or url
        return url, thumb, location.rsplit("/", 1)[-1]
    path = Path(location)
    return _relative(path, root), _thumb(path, root) or _relative(path, root), path.name


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_uri()


def _card(row: TaskRow, root: Path, sink: ResultSink | None) -> str:
    e = html.escape
    results: list[str] = []
    for image in row.images:
        link, thumb, name = _result(image, root, sink)
        results.append(
            f'<a href="{e(link)}"><img src="{e(thumb)}" alt="result" loading="lazy"'
            f' title="{e(name)} — {image["width"]}×{image["height"]}"></a>'
        )
    inputs: list[str] = []
    for item in row.inputs:
        local = item.get("path")
        thumb = _thumb(Path(local), root) if local else None
        if thumb:
            inputs.append(f'<img src="{e(thumb)}" alt="input" title="{e(str(item["ref"]))}">')
        else:
            inputs.append(f'<span class="small">{e(str(item["ref"]))}</span>')
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.created_at))
    parameters = json.dumps(row.parameters, ensure_ascii=False)
    instruction = f'<div class="small">instruction: {e(row.instruction)}</div>' if row.instruction else ""
    return (
        f'<div class="card" data-task="{e(row.task_id or "")}">'
        f'<div class="results">{"".join(results)}</div>'
        f'<div class="prompt">{e(row.prompt)}</div>{instruction}'
        f'<div class="small"><b>{e(row.model)}</b> · {when} · {len(row.images)} image(s) · '
        f"<code>{e(parameters)}</code></div>"
        + (f'<div class="inputs small">inputs: {"".join(inputs)}</div>' if inputs else "")
        + "</div>"
    )


def write_gallery(
    journal: Journal, root: Path, *, tenant: Tenant | None = None, sink: ResultSink | None = None
) -> Path:
    """Write ``<root>/gallery.html`` (atomically) of every user's tasks, or only ``tenant``'s, and return its path.
    With ``sink`` (results in a bucket), its images are shown from the bucket: thumbnails cached beside the page,
    links presigned (the page works while they do, ``WAN_MCP_DOWNLOAD_URL_SECONDS``)."""
    rows, _ = journal.recent(status=Status.SUCCEEDED, limit=MAX_TASKS, tenant=tenant)
    rows = [row for row in rows if row.images]
    total = sum(len(row.images) for row in rows)
    body = "".join(_card(row, root, sink) for row in rows) or "<p>No saved images yet.</p>"
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>wan-image-mcp gallery</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>wan-image-mcp gallery</h1>"
        f'<div class="meta">{total} image(s) from {len(rows)} task(s), newest first · {html.escape(str(root))}</div>'
        f'<p id="missing"></p>{body}<script>{_SCRIPT}</script></body></html>'
    )
    root.mkdir(parents=True, exist_ok=True)
    target = root / PAGE
    atomic_write(target, page.encode())
    return target
