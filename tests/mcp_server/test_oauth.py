"""OAuth 2.1 on the HTTP server: a resource server on the SDK's mechanism, accepting only JWTs that a local
issuer signed for this server's public URL, and pointing every refused client to its RFC 9728 metadata."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.oauth_issuer import Issuer, served, status
from wan_image_mcp.core.errors import ConfigurationError
from wan_image_mcp.mcp_server.transports import oauth
from wan_image_mcp.mcp_server.transports.http import http_app
from wan_image_mcp.settings import Settings


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


def test_no_token_is_401_pointing_to_the_protected_resource_metadata(issuer: Issuer, tmp_path: Path) -> None:
    with served(issuer, tmp_path) as url:
        refused = status(url, None)
        origin = url.removesuffix("/mcp")
        metadata = httpx2.get(f"{origin}/.well-known/oauth-protected-resource/mcp", timeout=10)
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    assert (
        challenge.startswith("Bearer")
        and f'resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp"' in challenge
    )
    assert metadata.status_code == 200
    body = metadata.json()
    assert (body["resource"], body["authorization_servers"]) == (url, [issuer.url])


def test_a_token_the_issuer_signed_for_this_server_lists_the_tools(issuer: Issuer, tmp_path: Path) -> None:
    async def session(url: str) -> set[str]:
        token = issuer.token("alice", url)
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            return {tool.name for tool in (await client.list_tools()).tools}

    with served(issuer, tmp_path) as url:
        assert "edit_image" in anyio.run(session, url)


def forged(issuer: Issuer, url: str, case: str) -> str:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = {
        "expired": lambda: issuer.token("alice", url, expires_in=-120),
        "another audience": lambda: issuer.token("alice", "https://other.example/mcp"),
        "another issuer": lambda: issuer.token("alice", url, iss="https://evil.example"),
        "no subject": lambda: jwt.encode(
            {"iss": issuer.url, "aud": url, "exp": int(time.time()) + 300}, issuer.key, "RS256", {"kid": issuer.kid}
        ),
        "signed by another key": lambda: jwt.encode(
            {"iss": issuer.url, "sub": "alice", "aud": url, "exp": int(time.time()) + 300},
            other_key,
            "RS256",
            {"kid": issuer.kid},
        ),
        "a shared secret": lambda: jwt.encode(
            {"iss": issuer.url, "sub": "alice", "aud": url, "exp": int(time.time()) + 300},
            "a-shared-secret-of-at-least-32-bytes!",
            "HS256",
            {"kid": issuer.kid},
        ),
        "not a JWT": lambda: "t0ken",
    }
    return tokens[case]()


CASES = [
    "expired",
    "another audience",
    "another issuer",
    "no subject",
    "signed by another key",
    "a shared secret",
    "not a JWT",
]


def test_every_token_that_is_not_this_servers_is_refused(issuer: Issuer, tmp_path: Path) -> None:
    with served(issuer, tmp_path) as url:
        statuses = {case: status(url, f"Bearer {forged(issuer, url, case)}").status_code for case in CASES}
        assert status(url, f"Bearer {issuer.token('alice', url)}").status_code == 200  # the control
    assert statuses == dict.fromkeys(CASES, 401)


def test_a_rotated_signing_key_is_fetched_when_a_token_names_it(
    issuer: Issuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oauth, "REFRESH_EVERY", 0.0)  # a fetch is allowed at once (a minute apart by default)
    with served(issuer, tmp_path) as url:
        assert status(url, f"Bearer {issuer.token('alice', url)}").status_code == 200
        fetched = issuer.jwks_fetches
        assert status(url, f"Bearer {issuer.token('alice', url)}").status_code == 200
        assert issuer.jwks_fetches == fetched  # the key is kept
        issuer.rotate()
        assert status(url, f"Bearer {issuer.token('bob', url)}").status_code == 200
        assert issuer.jwks_fetches == fetched + 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WAN_MCP_AUTH_ISSUER": "https://login.example"}, "WAN_MCP_AUTH_ISSUER is set but WAN_MCP_PUBLIC_URL is not"),
        ({"WAN_MCP_PUBLIC_URL": "https://mcp.example/mcp"}, "WAN_MCP_PUBLIC_URL is set but WAN_MCP_AUTH_ISSUER is not"),
        (
            {"WAN_MCP_AUTH_ISSUER": "http://login.example", "WAN_MCP_PUBLIC_URL": "https://mcp.example/mcp"},
            "WAN_MCP_AUTH_ISSUER must be an https URL",
        ),
    ],
)
def test_oauth_settings_are_checked_at_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)


def test_the_static_token_and_oauth_are_not_both_used(issuer: Issuer, tmp_path: Path) -> None:
    settings = Settings(
        journal_path=tmp_path / "j.sqlite3", auth_issuer=issuer.url, public_url="http://127.0.0.1:1/mcp"
    )
    with pytest.raises(ConfigurationError, match="WAN_MCP_HTTP_TOKEN and WAN_MCP_AUTH_ISSUER are both set"):
        http_app(settings, host="127.0.0.1", token="t0ken")


def test_oauth_lets_a_server_bind_beyond_loopback_without_the_static_token(issuer: Issuer, tmp_path: Path) -> None:
    settings = Settings(
        journal_path=tmp_path / "j.sqlite3", auth_issuer=issuer.url, public_url="https://mcp.example/mcp"
    )
    assert http_app(settings, host="0.0.0.0", token=None) is not None


def test_tokens_naming_unknown_keys_fetch_the_keys_at_most_once_a_minute(issuer: Issuer, tmp_path: Path) -> None:
    with served(issuer, tmp_path) as url:
        assert status(url, f"Bearer {issuer.token('alice', url)}").status_code == 200
        fetched = issuer.jwks_fetches
        unknown = [
            jwt.encode(
                {"iss": issuer.url, "sub": "x", "aud": url, "exp": int(time.time()) + 300},
                issuer.key,
                "RS256",
                {"kid": f"made-up-{i}"},
            )
            for i in range(5)
        ]
        assert {status(url, f"Bearer {token}").status_code for token in unknown} == {401}
    assert issuer.jwks_fetches == fetched  # the last fetch was under a minute ago: none of them made another
