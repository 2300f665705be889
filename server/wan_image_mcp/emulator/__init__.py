"""A faithful local DashScope: the Wan image API, its task life cycle, uploads and faults, on Starlette.

Laid out as moto lays out a service: ``urls`` (the routes), ``responses`` (the handlers: HTTP in and out),
``models`` (``EmulatorBackend``, what the service does: the class the handlers call, with ``tasks`` for the task
life cycle and ``wire`` for DashScope's result shapes), ``state`` (what it remembers), ``checks`` (request
validation), ``exceptions``, ``render`` (output images) and ``serve`` (the loopback runner).

May import ``core.specs`` (the one limits table), ``core.images.pillow`` and ``core.images.runtime``
(Pillow with its guard), and ``sockets``; never the DashScope
client, the rest of the core, or ``mcp``.
"""

from .models import EmulatorBackend
from .state import EmulatorConfig, EmulatorState, Fault
from .urls import create_app

__all__ = ["EmulatorBackend", "EmulatorConfig", "EmulatorState", "Fault", "create_app"]
