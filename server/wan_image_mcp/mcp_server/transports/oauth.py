"""OAuth 2.1 for the HTTP server, as the MCP authorization spec has a resource server do it, on the SDK's own
mechanism: ``JwtVerifier`` is its ``TokenVerifier`` for JWT access tokens, and ``auth_settings`` its
``AuthSettings``, so the SDK serves the RFC 9728 protected-resource metadata and answers a missing or bad token
with 401 and ``WWW-Authenticate``.

A token is accepted when its signature verifies with a key of the issuer's JWKS (found through the issuer's
RFC 8414 metadata, else its OpenID configuration), and its ``iss`` is the issuer, its ``aud`` holds the
server's public URL (``WAN_MCP_PUBLIC_URL``), it has not expired, and it names a subject (``sub``: the tenant)
that ``Tenant`` accepts (a string, not empty or blank, at most 255 characters, no control characters).
Keys are fetched on first use and again, at most once a minute, when a token names a key id not yet seen (the
issuer rotated its keys).

``caller`` is who a request is from, as the core takes it: the ``Tenant`` of the verified token (its issuer and
subject), which the tools, resources and completions pass to the core so that a caller sees only their own tasks
and images. Without OAuth (stdio, the static ``WAN_MCP_HTTP_TOKEN``, loopback without a token) there is no token and
no tenant, and every caller sees every task, as before.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import httpx2
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

from ...core.journal import Tenant
from ...settings import Settings

if TYPE_CHECKING:  # PyJWT (and the cryptography it loads) only once OAuth is on: off the start path otherwise
    import jwt
    from mcp.server.auth.settings import AuthSettings

log = logging.getLogger("wan_image_mcp.oauth")

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""Asymmetric signatures only: a token signed with a shared secret (HS256) or none is never accepted."""
REFRESH_EVERY = 60.0
"""Seconds between two fetches of the JWKS for key ids not seen before."""
LEEWAY = 30
"""Seconds of clock difference allowed on ``exp`` and ``nbf``."""


def auth_settings(issuer: str, public_url: str) -> AuthSettings:
    """The SDK's settings for a resource server whose tokens ``issuer`` signs for ``public_url``."""
    from mcp.server.auth.settings import AuthSettings

    # Given as strings, the URLs keep their exact form (a bare host gains no "/": issuers are compared exactly).
    return AuthSettings.model_validate(
        {
            "issuer_url": issuer,
            "resource_server_url": public_url,
            "validate_token_resource": False,  # JwtVerifier checks the audience itself
        }
    )


def oauth_kwargs(settings: Settings) -> dict[str, Any]:
    """``MCPServer``'s ``auth`` and ``token_verifier`` for ``settings`` with an issuer, else nothing."""
    if settings.auth_issuer is None or settings.public_url is None:
        return {}
    verifier = JwtVerifier(settings.auth_issuer, settings.public_url)
    return {"auth": auth_settings(settings.auth_issuer, settings.public_url), "token_verifier": verifier}


def caller() -> Tenant | None:
    """The tenant of the request being handled: the issuer and subject of the token the SDK verified for it; None
    only without OAuth (no token). Call it inside a handler. A token's tenant was checked when it was verified
    (``JwtVerifier``), so this raises InvalidTenant only for a token no verifier of ours accepted: never a wider
    view for a token without a usable subject."""
    token = get_access_token()
    if token is None:
        return None
    return Tenant.of(str((token.claims or {}).get("iss") or ""), token.subject)


class JwtVerifier:
    """The SDK's ``TokenVerifier`` for JWTs that ``issuer`` signs for ``audience`` (see the module)."""

    def __init__(self, issuer: str, audience: str, http: httpx2.AsyncClient | None = None) -> None:
        self._issuer = issuer.rstrip("/")
        self._audience = audience
        self._http = http
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = -REFRESH_EVERY
        self._lock = anyio.Lock()

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's access, or None for any token that is not one this server accepts (the SDK then answers
        401); never raises for a bad token."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
            key = await self._key(str(header.get("kid", "")))
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=self._audience,
                issuer=[self._issuer, self._issuer + "/"],
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
            tenant = Tenant.of(self._issuer, claims["sub"])  # one whose subject names no tenant is refused too
        except (jwt.PyJWTError, ValueError) as exc:  # InvalidTenant is a ValueError
            log.info("token refused: %s", exc)
            return None
        scope = claims.get("scope", claims.get("scp", ""))
        scopes = scope.split() if isinstance(scope, str) else [str(s) for s in scope]
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or claims["sub"]),
            scopes=scopes,
            expires_at=int(claims["exp"]),
            resource=self._audience,
            subject=tenant.subject,
            claims=claims,
        )

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        """The issuer's key ``kid`` (the only one, when the token names none), fetching the JWKS when it is not
        known and the last fetch is over REFRESH_EVERY ago."""
        import jwt

        async with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched >= REFRESH_EVERY:
                self._fetched = time.monotonic()
                try:
                    self._keys = await self._fetch_keys()
                except (httpx2.HTTPError, ValueError, KeyError, jwt.PyJWTError) as exc:
                    log.warning("cannot fetch the signing keys of %s: %s", self._issuer, exc)
            if not kid and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            return self._keys.get(kid)

    async def _fetch_keys(self) -> dict[str, jwt.PyJWK]:
        import jwt

        async with self._client() as http:
            jwks_uri = await self._jwks_uri(http)
            answer = await http.get(jwks_uri)
            answer.raise_for_status()
            keys: list[dict[str, Any]] = json.loads(answer.content)["keys"]
        found: dict[str, jwt.PyJWK] = {}
        for entry in keys:
            if entry.get("use", "sig") == "sig":
                found[str(entry.get("kid", ""))] = jwt.PyJWK(entry)
        return found

    async def _jwks_uri(self, http: httpx2.AsyncClient) -> str:
        """``jwks_uri`` from the issuer's metadata: RFC 8414's document, else OpenID Connect's."""
        for well_known in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
            answer = await http.get(self._issuer + well_known)
            if answer.status_code == 200:
                metadata: dict[str, Any] = json.loads(answer.content)
                return str(metadata["jwks_uri"])
        raise ValueError(f"{self._issuer} publishes no authorization server metadata")

    @asynccontextmanager
    async def _client(self) -> AsyncGenerator[httpx2.AsyncClient]:
        """The client given (tests route it to an issuer in-process), or one for this fetch."""
        if self._http is not None:
            yield self._http
            return
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(10.0), follow_redirects=False) as http:
            yield http
