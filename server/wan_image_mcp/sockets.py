"""Binding a listening socket ourselves, so a server started on port 0 can say its real port first."""

from __future__ import annotations

import socket


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)  # connections queue from now on, before the server loop accepts them
    sock.set_inheritable(True)
    return sock
