"""A faithful local DashScope: the Wan image API, its task life cycle, uploads and faults, on Starlette.

Laid out as moto lays out a service: ``state`` (what it remembers), ``backend`` (what it does: the class the
routes call, with ``tasks`` for the task life cycle and ``wire`` for DashScope's result shapes), ``checks``
(request validation), ``exceptions``, ``app`` (the routes: HTTP in and out), ``render`` and ``serve``.
"""

from .models import EmulatorBackend
from .responses import create_app
from .state import EmulatorConfig, EmulatorState, Fault

__all__ = ["EmulatorBackend", "EmulatorConfig", "EmulatorState", "Fault", "create_app"]
