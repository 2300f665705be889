"""The HTTP client the API is called with, whose connection pool and TLS context are made on its first request,
not when it is built: building them (httpcore, the system's certificates) is most of what a client costs, and a
server that is only asked for its tools never sends anything. Everything else is httpx2's own: env proxies,
limits, ``aclose``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import httpx2

__all__ = ["DeferredTransport", "LazyAsyncClient", "http_client", "unreachable"]


class DeferredTransport(httpx2.AsyncBaseTransport):
    """A transport made by ``build`` on the first request sent through it; closed with it, if it was made."""

    def __init__(self, build: Callable[[], httpx2.AsyncBaseTransport]) -> None:
        self._build = build
        self._made: httpx2.AsyncBaseTransport | None = None

    @property
    def made(self) -> bool:
        """Whether a request has been sent, so the real transport exists."""
        return self._made is not None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._made is None:
            self._made = self._build()
        return await self._made.handle_async_request(request)

    async def aclose(self) -> None:
        made, self._made = self._made, None
        if made is not None:
            await made.aclose()


class LazyAsyncClient(httpx2.AsyncClient):
    """``httpx2.AsyncClient`` whose transports (the direct one and each proxy's) are ``DeferredTransport``s."""

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx2.AsyncBaseTransport:
        build = super()._init_transport
        return DeferredTransport(lambda: build(*args, **kwargs))

    def _init_proxy_transport(self, *args: Any, **kwargs: Any) -> httpx2.AsyncBaseTransport:
        build = super()._init_proxy_transport
        return DeferredTransport(lambda: build(*args, **kwargs))


def http_client() -> LazyAsyncClient:
    """The client the service sends with: 30 s timeouts (10 s to connect), redirects never followed."""
    return LazyAsyncClient(timeout=httpx2.Timeout(30.0, connect=10.0), follow_redirects=False)


_WHY: Final[tuple[tuple[type[Exception], str], ...]] = (
    (httpx2.ConnectTimeout, "connecting timed out"),
    (httpx2.PoolTimeout, "no connection was free in time"),
    (httpx2.ConnectError, "the connection was refused, or the host is unknown or unreachable"),
    (httpx2.ReadTimeout, "no answer in time"),
    (httpx2.WriteTimeout, "sending timed out"),
    (httpx2.TimeoutException, "timed out"),
    (httpx2.RemoteProtocolError, "the connection was closed before the answer was complete"),
    (httpx2.ProxyError, "the proxy refused the connection"),
    (httpx2.NetworkError, "the network connection failed"),
)


def unreachable(exc: Exception) -> str:
    """Why a request got no answer, in our words (never a Python repr): ``exc`` is httpx's transport error."""
    why = next((words for kind, words in _WHY if isinstance(exc, kind)), "the request failed")
    detail = str(exc).strip()
    return f"{why}: {detail}" if detail and len(detail) <= 200 else why
