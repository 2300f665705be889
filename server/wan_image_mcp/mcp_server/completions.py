"""completion/complete: what a client suggests while the user types a resource template's or a prompt's argument.

wan://models/{model}     model names          any prompt argument named ``model``: model names too
wan://tasks/{task_id}    the journal's recent task ids
wan://images/{name}      the journal's recent result images still in the output folder

With OAuth, tasks and images are only the caller's (``oauth.caller``).

Values start with what was typed, at most 100 of them (``core.tasks.completions``); anything else gets none.
"""

from __future__ import annotations

from mcp.types import CompleteRequestParams, Completion, PromptReference

from ..core.tasks.completions import Suggestions, image_suggestions, model_suggestions, task_suggestions
from .appstate import AppState
from .transports.oauth import caller

MODEL_TEMPLATE = "wan://models/{model}"
TASK_TEMPLATE = "wan://tasks/{task_id}"
IMAGE_TEMPLATE = "wan://images/{name}"


async def complete(state: AppState, params: CompleteRequestParams) -> Completion:
    """The suggestions for ``params`` (a reference, the argument's name and the prefix typed so far)."""
    ref, name, prefix = params.ref, params.argument.name, params.argument.value
    journal = state.service.journal
    target = ("prompt", name) if isinstance(ref, PromptReference) else (ref.uri, name)
    found: Suggestions | None = None
    if target in (("prompt", "model"), (MODEL_TEMPLATE, "model")):
        found = model_suggestions(prefix)
    elif target == (TASK_TEMPLATE, "task_id"):
        found = await journal.call(task_suggestions, prefix, tenant=caller())
    elif target == (IMAGE_TEMPLATE, "name"):
        found = await journal.call(image_suggestions, state.service.store.sink, prefix, tenant=caller())
    if found is None:
        return Completion(values=[], total=0, has_more=False)
    return Completion(values=found.values, total=found.total, has_more=found.has_more)
