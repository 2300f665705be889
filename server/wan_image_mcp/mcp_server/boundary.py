"""Where tool calls cross into the core: arguments checked strictly on the way in, the core's errors turned into
tool errors on the way out.

* ``taking(arguments)`` gives a tool, or a resolver that takes the tool's arguments by name, the arguments the core
  declares (``core.requests.declarations``) as its parameters: the SDK reads a function's parameters from its
  signature (``inspect.signature``), and a function's ``__signature__`` is what that reads;
* ``StrictTool`` checks a call's arguments before anything runs: an unknown name is refused with the closest valid
  one and a wrong value in our words (``arguments``); its schemas are the portable subset (``schemas``).
* ``tool_errors()`` turns each expected failure into a ``ToolError`` whose message says what to change, with
  DashScope's code, message and request_id when they come from the API; never a traceback or the key.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast, get_args

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ..core.errors import ConfigurationError, InvalidRequest, JournalBusy, SpendLimitExceeded, SubmissionUncertain
from ..core.requests.arguments import problems as argument_problems
from ..core.requests.arguments import refusal
from ..core.requests.briefs import briefly
from ..core.requests.declarations import REQUIRED, Argument, capped
from ..core.requests.schemas import portable
from ..dashscope import APIConnectionError, APIStatusError, ContentModerationError, DashScopeError

Fn = TypeVar("Fn", bound=Callable[..., Any])


def taking(declared: Sequence[Argument]) -> Callable[[Fn], Fn]:
    """``fn`` with the ``declared`` arguments as its keyword parameters, in their order, after its own (a context,
    resolved values). ``fn`` takes them through ``**arguments``, or by name where its body reads one: such a
    parameter must have the declared type (``wait_seconds: float``) and takes the declaration's place, bounds,
    text and default. The SDK then builds the tool's argument model, schema and check, or the resolver's
    by-name arguments, from the declaration alone."""

    def take(fn: Fn) -> Fn:
        own = getattr(fn, _OWN, None) or inspect.signature(fn, eval_str=True)
        if not hasattr(fn, _DECLARED):  # the first take is the declaration's; ``capped_to`` takes from it again
            setattr(fn, _OWN, own)
            setattr(fn, _DECLARED, tuple(declared))
        names = {argument.name for argument in declared}
        kept: list[inspect.Parameter] = []
        for parameter in own.parameters.values():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                continue
            if parameter.name in names:
                _same_type(fn, parameter, next(a for a in declared if a.name == parameter.name))
                continue
            kept.append(parameter)
        kept += [_parameter(argument) for argument in declared]
        cast(Any, fn).__signature__ = own.replace(parameters=kept)
        return fn

    return take


_OWN = "__own_signature__"
"""Where ``taking`` keeps a function's signature as written, so that it can take its arguments again."""
_DECLARED = "__declared_arguments__"
"""Where ``taking`` keeps the arguments it first gave a function, as declared (never capped or made brief)."""


def capped_to(fn: Fn, most: int | None, *, brief: bool = False) -> Fn:
    """``fn`` (made by ``taking``) taking its declared arguments again, each paid count capped at ``most`` paid
    images per call (``declarations.capped``), and described briefly with ``brief`` (``briefs.briefly``): the
    schema and the check of the tool built from it next say the server's cap."""
    declared = capped(getattr(fn, _DECLARED), most)
    return taking(briefly(declared) if brief else declared)(fn)


def _parameter(argument: Argument) -> inspect.Parameter:
    default = inspect.Parameter.empty if argument.default is REQUIRED else argument.default
    return inspect.Parameter(
        argument.name, inspect.Parameter.KEYWORD_ONLY, annotation=argument.annotation, default=default
    )


def _same_type(fn: Callable[..., Any], parameter: inspect.Parameter, argument: Argument) -> None:
    declared = get_args(argument.annotation)[0] if get_args(argument.annotation) else argument.annotation
    if parameter.annotation != declared:
        name = getattr(fn, "__name__", repr(fn))
        raise TypeError(f"{name}'s {parameter.name} is {parameter.annotation}, but declared {declared}")


class StrictTool(Tool):
    """A tool whose arguments are checked before anything runs: an unknown name is refused with the closest
    valid one, a wrong value in our words (``arguments``), and its schemas are the portable subset."""

    @classmethod
    def of(
        cls, fn: Callable[..., Any], title: str, annotations: ToolAnnotations, *, described: bool = True
    ) -> StrictTool:
        """``fn`` as a tool. ``described=False`` leaves the argument descriptions out, for a tool whose
        description points to another tool's arguments (submit_task: edit_image's, without wait_seconds)."""
        description = inspect.cleandoc(fn.__doc__ or "")
        tool = cast(StrictTool, cls.from_function(fn, title=title, description=description, annotations=annotations))
        tool.parameters = portable(tool.parameters, closed=True, described=described)
        metadata = tool.fn_metadata
        if metadata.output_schema is not None:  # read live by Tool.output_schema on first use
            metadata.output_schema = portable(metadata.output_schema, described=False)
        return tool

    async def run(self, arguments: dict[str, Any], context: Context[Any, Any], convert_result: bool = False) -> Any:
        fields = self.fn_metadata.arg_model.model_fields
        known = [field.alias or name for name, field in fields.items()]
        # An optional argument sent as null means "not given" (hosts with strict schemas send every field).
        optional = {field.alias or name for name, field in fields.items() if not field.is_required()}
        arguments = {key: value for key, value in arguments.items() if not (value is None and key in optional)}
        try:
            self.fn_metadata.validate_arguments(arguments)
            errors: list[ErrorDetails] = []
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        except Exception as exc:  # a crash in validation: its text stays on the server, as the SDK does
            raise UnexpectedToolError(f"Error executing tool {self.name}") from exc
        found = argument_problems(arguments, known, errors)
        if found:
            raise ToolError(refusal(found))
        try:
            return await super().run(arguments, context, convert_result=convert_result)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            # The SDK prefixes "Error executing tool NAME: "; the model reads our own sentence. In a new error:
            # raising the cause itself here made it its wrapper's context, a cycle that held the failed call's
            # frames (its images, their spooled files) until the garbage collector ran.
            if isinstance(exc.__cause__, ToolError) and not isinstance(exc.__cause__, UnexpectedToolError):
                raise ToolError(str(exc.__cause__)) from None
            raise


@contextmanager
def tool_errors() -> Generator[None]:
    """Expected failures -> ToolError with a message that says what to change; never a traceback or the key."""
    try:
        yield
    except InvalidRequest as exc:
        if len(exc.problems) > 1:
            raise ToolError(f"{exc}\nNothing was sent; fix these and call again.") from None
        raise ToolError(f"{exc}. Nothing was sent; fix it and call again.") from None
    except (SubmissionUncertain, SpendLimitExceeded, JournalBusy) as exc:
        raise ToolError(str(exc)) from None
    except ConfigurationError as exc:
        raise ToolError(str(exc)) from None
    except ContentModerationError as exc:
        raise ToolError(f"{_api(exc)} The content filter refused the input: change the prompt or images.") from None
    except APIStatusError as exc:
        raise ToolError(f"{_api(exc)}{_hint(exc)}") from None
    except APIConnectionError as exc:
        if exc.request_sent:
            raise ToolError(
                f"DashScope's answer was lost ({exc}). The request may have been received and a task created (and "
                "billed). Do not resubmit blindly: check the task list in the Model Studio console first."
            ) from None
        raise ToolError(
            f"Cannot reach DashScope: {exc}. Nothing was sent and nothing is billed. Check the network, or the "
            "API's address (WAN_MCP_REGION, DASHSCOPE_HTTP_BASE_URL), then call again."
        ) from None
    except DashScopeError as exc:
        raise ToolError(str(exc)) from None


def _api(exc: APIStatusError) -> str:
    rid = f", request_id {exc.request_id}" if exc.request_id else ""
    return f"DashScope error {exc.code}: {exc.message} (HTTP {exc.status}{rid})."


def _hint(exc: APIStatusError) -> str:
    if exc.code == "InvalidApiKey":
        return " Check DASHSCOPE_API_KEY and that it belongs to the region of the base URL (WAN_MCP_REGION)."
    if exc.code in ("NOT AUTHORIZED", "Workspace.AccessDenied"):
        return " Check WAN_MCP_WORKSPACE: the workspace id, its region (WAN_MCP_REGION) and that the key may use it."
    if exc.status == 429:
        return " Rate or quota limit: wait a while and try again."
    if exc.status >= 500:
        return (
            " A server-side failure. Queries were retried; a submission never is, as a retry could be billed "
            "twice: if this was one, it is recorded as UNCERTAIN in list_tasks and looked for in the task list."
        )
    return ""
