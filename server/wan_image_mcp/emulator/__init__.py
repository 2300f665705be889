"""A faithful local DashScope: the Wan image API, its task life cycle, uploads and faults, on Starlette."""

from .app import create_app
from .state import EmulatorConfig, EmulatorState, Fault

__all__ = ["EmulatorConfig", "EmulatorState", "Fault", "create_app"]
