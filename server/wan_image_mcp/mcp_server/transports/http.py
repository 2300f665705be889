"""``wan-image-mcp serve --transport http``: streamable HTTP, stateless, with the safety defaults.

* binds 127.0.0.1 unless told otherwise;
* keeps DNS-rebinding protection on (for loopback the Host header must be a loopback name or the bound
  address; for other binds the bound host or one listed in WAN_MCP_HTTP_ALLOWED_HOSTS; IPv6 literals in
  brackets, as Host headers carry them);
* requires ``Authorization: Bearer $WAN_MCP_HTTP_TOKEN`` for any non-loopback bind (and on loopback too
  when a token is set), compared in constant time.

Stateless: every request stands alone, so several instances can sit behind a load balancer; task state lives
at DashScope and in the journal.
"""

from __future__ import annotations

import hmac
import json
import sys
from collections.abc import Callable, Sequence

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from ...core.errors import ConfigurationError
from ...dashscope.transport import is_loopback_host
from ...settings import Settings
from ...sockets import bind
from ..app import build_app


class BearerToken:
    """Refuses every HTTP request that does not carry the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = token.encode()

    def _admits(self, authorization: bytes) -> bool:
        """``Bearer <token>``, the scheme in any case (RFC 7235), the token compared in constant time."""
        scheme, _, credentials = authorization.partition(b" ")
        matches = hmac.compare_digest(credentials.lstrip(b" "), self._expected)
        return scheme.lower() == b"bearer" and matches

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._admits(dict(scope["headers"]).get(b"authorization", b"")):
            body = json.dumps({"error": "unauthorized: send Authorization: Bearer <WAN_MCP_HTTP_TOKEN>"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self._app(scope, receive, send)


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
"""The names a loopback bind answers to (the SDK's own list), beside the bound host itself."""


def host_forms(name: str) -> tuple[str, ...]:
    """The Host header values that admit ``name``: a name or address without a port bare and with any port
    (``mcp.example.com``, ``mcp.example.com:*``), one with a port only so. An IPv6 literal, bracketed or not, is
    written as a Host header carries it, in brackets (``[::1]``, ``[::1]:*``), in its given and its compressed
    spelling; ``[::1]:8443`` keeps its port."""
    import ipaddress

    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        address = ipaddress.IPv6Address(bare)
    except ValueError:
        if ":" in name:  # a name or IPv4 address with its port, or a bracketed IPv6 literal with one
            return (name,)
        return (name, f"{name}:*")
    spellings = dict.fromkeys((bare, address.compressed))
    return tuple(form for text in spellings for form in (f"[{text}]", f"[{text}]:*"))


def http_app(settings: Settings, *, host: str, token: str | None, allowed_hosts: Sequence[str] = ()) -> ASGIApp:
    loopback, oauth = is_loopback_host(host), settings.auth_issuer is not None
    if oauth and token:
        raise ConfigurationError(
            "WAN_MCP_HTTP_TOKEN and WAN_MCP_AUTH_ISSUER are both set: use one (the static token for a simple "
            "setup, OAuth for a team)"
        )
    if not loopback and not token and not oauth:
        raise ConfigurationError(
            f"serving on {host} (not loopback) needs a bearer token: set WAN_MCP_HTTP_TOKEN to a long random "
            "secret that clients send as 'Authorization: Bearer <token>', or OAuth (WAN_MCP_AUTH_ISSUER)"
        )
    # A loopback bind answers to loopback names; any other to the bound host and the names listed. A name
    # without a port is admitted bare (a proxy on 443 sends "Host: name") and with any port.
    names = [*LOOPBACK_NAMES, host] if loopback else [host, *allowed_hosts]
    hosts = list(dict.fromkeys(form for name in names for form in host_forms(name)))
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )
    app: ASGIApp = build_app(settings).streamable_http_app(
        stateless_http=True, json_response=False, host=host, transport_security=security
    )
    return BearerToken(app, token) if token else app


def serve_http(
    settings: Settings,
    *,
    host: str,
    port: int,
    token: str | None,
    allowed_hosts: Sequence[str],
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve the app on ``host``:``port`` until stopped; ``ready`` is called once it is built, before it serves."""
    app = http_app(settings, host=host, token=token, allowed_hosts=allowed_hosts)
    sock = bind(host, port)
    if ready is not None:
        ready()
    shown = f"[{host}]" if ":" in host else host
    print(
        f"wan-image-mcp: serving MCP over HTTP at http://{shown}:{sock.getsockname()[1]}/mcp",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on")).run(sockets=[sock])
