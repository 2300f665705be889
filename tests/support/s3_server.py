"""A real S3-compatible server for tests: moto's ``ThreadedMotoServer`` on a free loopback port, and a cutting
proxy in front of it that interrupts uploads mid-body (``CuttingProxy``).

The server keeps its buckets in memory and stops with the session; each test makes a bucket of its own.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from types import TracebackType

import httpx2

ACCESS_KEY = "AKIDTESTTESTTESTTEST"
SECRET_KEY = "test-secret-key"
REGION = "us-east-1"


class S3Server:
    """``with S3Server() as s3:`` moto's S3 on loopback; ``s3.bucket()`` a new empty bucket's name."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = 0
        self.endpoint = ""
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # the system picks a port

    def __enter__(self) -> S3Server:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.stop()

    def bucket(self) -> str:
        name = f"wan-{uuid.uuid4().hex[:12]}"
        response = httpx2.put(f"{self.endpoint}/{name}", timeout=10)  # moto takes an unsigned CreateBucket
        response.raise_for_status()
        return name

    def options(self, endpoint: str | None = None) -> tuple[tuple[str, str], ...]:
        """``Settings.object_store`` for this server (or for ``endpoint``, a proxy in front of it)."""
        return (
            ("endpoint", endpoint or self.endpoint),
            ("region", REGION),
            ("access_key_id", ACCESS_KEY),
            ("secret_access_key", SECRET_KEY),
        )


class CuttingProxy:
    """A TCP proxy on loopback in front of ``upstream`` that, while ``cutting``, forwards of each PUT of a key
    ending in ``suffix`` only its headers and a few body bytes, then closes both connections: an upload
    interrupted mid-body. Everything else passes through. ``cut`` counts the uploads it interrupted."""

    def __init__(self, upstream_port: int, suffix: bytes = b".png") -> None:
        self.upstream_port = upstream_port
        self.suffix = suffix
        self.cutting = True
        self.cut = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []

    def __enter__(self) -> CuttingProxy:
        self._start(self._accept)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._listener.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # pyright: ignore[reportArgumentType]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
                self._open += [client, upstream]
                self._start(self._pump, client, upstream, True)
                self._start(self._pump, upstream, client, False)

    def _pump(self, source: socket.socket, target: socket.socket, upload: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                if upload and self.cutting and self._is_upload(data):
                    head = data.find(b"\r\n\r\n")
                    target.sendall(data[: (head + 4 if head >= 0 else len(data)) + 16])
                    self.cut += 1
                    break
                target.sendall(data)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _is_upload(self, data: bytes) -> bool:
        line = data.split(b"\r\n", 1)[0]
        return line.startswith(b"PUT ") and line.split(b"?")[0].split(b" ")[1].endswith(self.suffix)
