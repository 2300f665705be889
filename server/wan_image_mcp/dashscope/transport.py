"""What the client sends, and where: the API key checked before it goes in a header, and every URL the server
fetches or posts to outside the API — a result image, the upload host of a policy, each redirect hop — checked
first.

Downloads: only result URLs from DashScope responses, over https from hosts that resolve only to public
addresses, or from the API's own host. A crafted response cannot make the server fetch from loopback,
private or link-local addresses (the emulator's loopback host is reachable only when the configured base
URL is that same loopback host), nor from their IPv6 disguises: an IPv6 address carrying an IPv4 one
(IPv4-mapped, -compatible or -translated, NAT64, 6to4, Teredo) must carry a public one. The connection goes
to an address the check approved, never to a second lookup (DNS rebinding). Redirects are followed by hand,
each hop checked the same way.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio

from .errors import UrlRefused

if TYPE_CHECKING:
    import httpx2

__all__ = ["api_key_problem", "check_fetch_url", "is_loopback_host", "send_checked"]


_NAMED = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", " ": "a space"}


def api_key_problem(key: str) -> str | None:
    """What makes ``key`` unusable in an HTTP header, never quoting it: a key is printable ASCII without spaces."""
    for position, char in enumerate(key, start=1):
        if not ("!" <= char <= "~"):
            what = _NAMED.get(char) or ("a non-ASCII character" if ord(char) > 127 else "a control character")
            return (
                f"DASHSCOPE_API_KEY contains {what} at position {position}: a key is printable ASCII without spaces "
                "or line breaks; copy it again from Alibaba Cloud Model Studio"
            )
    return None


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
"""NAT64 prefixes (RFC 6052 well-known, RFC 8215 local-use): the last 32 bits are an IPv4 address."""
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
"""Deprecated IPv4-compatible addresses, ``::a.b.c.d``."""
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
"""IPv4-translated addresses (SIIT, RFC 2765), ``::ffff:0:a.b.c.d``."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries and may reach: IPv4-mapped, -compatible and -translated,
    NAT64, 6to4 and Teredo (its server and its client). A private address in any of them is as private as the
    plain form."""
    found: list[ipaddress.IPv4Address] = []
    last32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _IPV4_COMPATIBLE or ip in _IPV4_TRANSLATED or any(ip in net for net in _NAT64):
        found.append(last32)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        return all(v4.is_global and not v4.is_multicast for v4 in _embedded_ipv4(ip))
    return True


async def check_fetch_url(url: str, *, api_base_url: str) -> tuple[str, ...]:
    """Refuse a URL the server is about to fetch or post to — a result image, the upload host of a policy, each
    redirect hop — unless it is on the API's own host (which already has our trust, and is how the emulator serves
    results) or is https on a host that resolves only to public addresses. Raises UrlRefused saying why.

    Returns the addresses the host resolved to, every one checked, for the connection to go to (``send_checked``):
    resolving the name again to connect could give another answer (DNS rebinding). Empty for the API's host."""
    parts = urlsplit(url)
    api = urlsplit(api_base_url)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise UrlRefused(f"refusing to download a {parts.scheme or 'schemeless'} URL")
    if (parts.scheme, parts.hostname, parts.port) == (api.scheme, api.hostname, api.port):
        return ()
    if parts.scheme != "https":
        raise UrlRefused(f"refusing to download a result over plain http from {parts.hostname}")
    try:
        infos = await anyio.getaddrinfo(parts.hostname, parts.port or 443)
    except OSError as exc:
        raise UrlRefused(f"cannot resolve {parts.hostname}: {exc}") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        if not _is_public(address):
            raise UrlRefused(f"refusing to download from {parts.hostname} ({address}): not a public address")
    return addresses


async def send_checked(
    http: httpx2.AsyncClient, request: httpx2.Request, *, api_base_url: str, stream: bool = False
) -> httpx2.Response:
    """Send ``request`` (redirects not followed) once ``check_fetch_url`` approves its URL, connecting to an address
    the check approved rather than to a second lookup of the name: the URL's host becomes that address, the Host
    header stays the name, and TLS sends and verifies the name (httpcore's ``sni_hostname``). The approved
    addresses are tried in turn while connecting fails. Raises UrlRefused, or httpx2's TransportError."""
    import httpx2

    addresses = await check_fetch_url(str(request.url), api_base_url=api_base_url)
    name = request.url.host
    for tried, address in enumerate(addresses, start=1):
        request.url = request.url.copy_with(host=address)
        request.extensions = {**request.extensions, "sni_hostname": name}
        try:
            return await http.send(request, stream=stream, follow_redirects=False)
        except httpx2.ConnectError:
            if tried == len(addresses):
                raise
    return await http.send(request, stream=stream, follow_redirects=False)  # the API's own host, by its name


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
