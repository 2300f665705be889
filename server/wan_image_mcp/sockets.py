"""Binding a listening socket ourselves, so a server started on port 0 can say its real port first."""

from __future__ import annotations

import errno
import socket

from .core.errors import ConfigurationError


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Its protocol is named, not left 0: asyncio disables Nagle's algorithm only on
    connections whose socket says IPPROTO_TCP, and without that every response on a kept-alive connection
    waited ~40 ms for the client's delayed ACK.

    Raises ConfigurationError, in one sentence, when the address is taken or cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"cannot listen on {shown}: the port is in use; choose another --port (0 picks a free one)"
            ) from None
        raise ConfigurationError(f"cannot listen on {shown}: {exc.strerror or exc}") from None
    sock.listen(128)  # connections queue from now on, before the server loop accepts them
    sock.set_inheritable(True)
    return sock
