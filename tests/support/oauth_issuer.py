"""A local OAuth authorization server for tests: RFC 8414 metadata, a JWKS, and the access tokens it signs; and
the HTTP server under test with OAuth on, served beside it (``served``), with a tools/list to knock with.

It serves on a loopback port from a thread (``with Issuer() as issuer:``), so the server under test fetches
its keys over real HTTP, as it would from a real issuer."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wan_image_mcp.mcp_server.transports.http import http_app
from wan_image_mcp.settings import Settings
from wan_image_mcp.sockets import bind

LISTING = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
ACCEPT = {"Accept": "application/json, text/event-stream"}


class Issuer:
    """Signs RS256 tokens with key ``k1``; ``rotate()`` makes a new key the JWKS serves (``k2``, ...)."""

    def __init__(self) -> None:
        self._sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "k1"
        self.jwks_fetches = 0
        app = Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", self._metadata),
                Route("/jwks", self._jwks),
            ]
        )
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    async def _metadata(self, _: Request) -> JSONResponse:
        return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/jwks", "token_endpoint": f"{self.url}/token"})

    async def _jwks(self, _: Request) -> JSONResponse:
        self.jwks_fetches += 1
        public: dict[str, Any] = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return JSONResponse({"keys": [public | {"kid": self.kid, "use": "sig", "alg": "RS256"}]})

    def rotate(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"k{int(self.kid[1:]) + 1}"

    def token(self, sub: str, audience: str, *, expires_in: float = 300, **claims: Any) -> str:
        """An access token for ``sub`` with ``audience``; ``claims`` override any (``iss``, ``exp``...)."""
        now = time.time()
        body = {"iss": self.url, "sub": sub, "aud": audience, "iat": int(now), "exp": int(now + expires_in)}
        return jwt.encode(body | claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def __enter__(self) -> Issuer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the issuer did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@contextmanager
def served(issuer: Issuer, folder: Path, **more: Any) -> Generator[str]:
    """The HTTP app with OAuth on a loopback port; yields its /mcp URL, which is also its public URL. ``more``: other
    settings (a DashScope to call, say)."""
    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    defaults: dict[str, Any] = {
        "output_dir": folder / "out",
        "journal_path": folder / "journal.sqlite3",
        "harvest": False,
    }
    settings = Settings(**(defaults | more), auth_issuer=issuer.url, public_url=url)
    server = uvicorn.Server(uvicorn.Config(http_app(settings, host="127.0.0.1", token=None), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def status(url: str, authorization: str | None) -> httpx2.Response:
    headers = ACCEPT | ({"Authorization": authorization} if authorization is not None else {})
    return httpx2.post(url, json=LISTING, headers=headers, timeout=10)
