"""The MCP Apps pages (``ui/*.html``), each one self-contained: the official ext-apps SDK is inlined.

``ui/vendor/ext-apps-app-with-deps.js`` is ``dist/src/app-with-deps.js`` of the npm package
``@modelcontextprotocol/ext-apps`` (version and licence beside it; ``ui/vendor/update.sh`` re-vendors it), one ES
module that ends in ``export{…}``. A page cannot import a module from inside its own HTML, so that last statement
becomes an assignment to ``globalThis.McpExtApps`` and the module is inlined, with ``ui/host.js`` (what both pages
do with the host's context) after it, where the page says ``<!-- EXT_APPS_SDK -->``, before the page's own module
script (module scripts run in document order). No CDN, no network: the page works offline and under the hosts'
default CSP.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

UI = Path(__file__).parent / "ui"
SDK = UI / "vendor" / "ext-apps-app-with-deps.js"
SHARED = UI / "host.js"
"""What both pages do the same with the host's context, inlined after the SDK (``followHost`` on ``McpExtApps``)."""
PLACEHOLDER = "<!-- EXT_APPS_SDK -->"
MAX_PAGE_BYTES = 2_000_000
_EXPORTS = re.compile(r"export\s*\{([^{}]*)\}\s*;?\s*$")


def sdk_module() -> str:
    """The vendored SDK as an inline module that publishes its exports on ``globalThis.McpExtApps``."""
    code = SDK.read_text(encoding="utf-8")
    found = _EXPORTS.search(code)
    if found is None:
        raise RuntimeError(f"{SDK} does not end in an export statement: re-vendor it with ui/vendor/update.sh")
    pairs: list[str] = []
    for item in found[1].split(","):
        local, _, exported = item.strip().partition(" as ")
        pairs.append(f"{(exported or local).strip()}:{local.strip()}")
    if "</script" in code.lower():
        raise RuntimeError(f"{SDK} holds '</script': it cannot be inlined")
    return f"{code[: found.start()]}globalThis.McpExtApps={{{','.join(pairs)}}};"


@functools.cache
def page(name: str) -> str:
    """``ui/<name>.html`` with the SDK inlined."""
    template = (UI / f"{name}.html").read_text(encoding="utf-8")
    if template.count(PLACEHOLDER) != 1:
        raise RuntimeError(f"ui/{name}.html must hold {PLACEHOLDER} once")
    shared = SHARED.read_text(encoding="utf-8")
    html = template.replace(PLACEHOLDER, f'<script type="module">{sdk_module()}\n{shared}</script>')
    if len(html.encode()) > MAX_PAGE_BYTES:
        raise RuntimeError(f"ui/{name}.html is over {MAX_PAGE_BYTES} bytes with the SDK")
    return html
