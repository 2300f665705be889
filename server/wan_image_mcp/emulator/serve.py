"""Run the emulator on a loopback port: in a background thread (tests, demo) or in the foreground (CLI)."""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

import uvicorn

from ..sockets import bind
from .state import EmulatorConfig, EmulatorState
from .urls import API, create_app


def _server(state: EmulatorState, log_level: str) -> uvicorn.Server:
    # An emulated dropped connection is an exception after the response started; uvicorn logs those at
    # ERROR with a traceback. They are the point of the fault, so keep them out of the way.
    config = uvicorn.Config(create_app(state), log_level=log_level, access_log=False, lifespan="off")
    if log_level != "debug":  # uvicorn.Config has just applied its logging config; quieten it afterwards
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    return uvicorn.Server(config)


class RunningEmulator:
    """``with RunningEmulator() as emu:`` serves on 127.0.0.1, ``emu.base_url`` ending in /api/v1."""

    def __init__(self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = EmulatorState(config)
        self._sock = bind(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self.origin = f"http://{host}:{self.port}"
        self.base_url = self.origin + API
        self._server = _server(self.state, "warning")
        self._thread = threading.Thread(target=self._run, name="wan-emulator", daemon=True)

    def _run(self) -> None:
        self._server.run(sockets=[self._sock])

    def __enter__(self) -> RunningEmulator:
        """Start serving on a background thread; returns once it answers. Raises RuntimeError after 10 s."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def run_foreground(config: EmulatorConfig, *, host: str, port: int, announce: bool = True) -> None:
    """Serve an emulator with ``config`` on ``host``:``port`` until interrupted, first printing (``announce``)
    the two variables that point a client at it. Raises OSError when the port cannot be bound."""
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    if announce:
        print(f"DASHSCOPE_HTTP_BASE_URL=http://{host}:{bound}{API}", flush=True)
        print(f"DASHSCOPE_API_KEY={next(iter(sorted(config.api_keys)))}", flush=True)
    _server(EmulatorState(config), "warning").run(sockets=[sock])
