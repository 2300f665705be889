"""The emulator's routes, as moto's ``urls.py`` maps a service's URLs to its responses: DashScope's paths under
``API``, the upload host (``/oss``), the result files, and the controls tests use (``/_emulator/…``)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from .models import EmulatorBackend
from .responses import (
    API,
    cancel_task,
    control_config,
    control_expire,
    control_faults,
    control_release,
    control_requests,
    control_reset,
    create_messages_task,
    create_prompt_task,
    generate,
    get_policy,
    get_result,
    get_task,
    list_tasks,
    oss_upload,
)
from .state import EmulatorState

__all__ = ["API", "create_app"]


def create_app(state: EmulatorState | None = None) -> Starlette:
    """The emulator's ASGI app over ``state`` (a fresh ``EmulatorState`` by default), which stays reachable
    as ``app.state.emulator`` for in-process tests; its behaviour is ``app.state.backend``."""
    routes = [
        Route(f"{API}/services/aigc/multimodal-generation/generation", generate, methods=["POST"]),
        Route(f"{API}/services/aigc/image-generation/generation", create_messages_task, methods=["POST"]),
        Route(f"{API}/services/aigc/image2image/image-synthesis", create_prompt_task, methods=["POST"]),
        Route(f"{API}/tasks", list_tasks, methods=["GET"]),
        Route(f"{API}/tasks/{{task_id}}", get_task, methods=["GET"]),
        Route(f"{API}/tasks/{{task_id}}/cancel", cancel_task, methods=["POST"]),
        Route(f"{API}/uploads", get_policy, methods=["GET"]),
        Route("/oss", oss_upload, methods=["POST"]),
        Route("/results/{name}", get_result, methods=["GET"]),
        Route("/_emulator/faults", control_faults, methods=["POST"]),
        Route("/_emulator/config", control_config, methods=["POST"]),
        Route("/_emulator/expire-results", control_expire, methods=["POST"]),
        Route("/_emulator/requests", control_requests, methods=["GET"]),
        Route("/_emulator/release", control_release, methods=["POST"]),
        Route("/_emulator/reset", control_reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = state or EmulatorState()
    app.state.backend = EmulatorBackend(app.state.emulator)
    return app
