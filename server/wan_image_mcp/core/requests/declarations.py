"""Each tool argument declared once: its name, type, default, bounds and description, written from ``specs``.

A paid call's arguments are the fields of ``EditArgs`` (prompt, images, model) with the fields of its
``EditParams`` beside them; ``Waiting`` declares wait_seconds for the tools that wait, ``DetectArgs``
detect_segment's own. They are frozen dataclasses, so the core builds and reads them as plain values (nothing is
checked when one is made: ``prepare_request`` still lists every problem of a library call), while their
``Annotated`` metadata, a pydantic ``Field`` with the bounds and the text, is what the MCP adapter turns into each
tool's parameters, its schema and its strict check (``arguments`` lists them in order, ``build`` makes the
dataclass back from a call's values). Adding an optional argument is a field here and the code that uses its
value; a field that is a wire parameter is one ``specs.Param`` names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar, cast, get_args, get_type_hints

from annotated_types import Le
from pydantic import AfterValidator, ConfigDict, Field, with_config
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from ..images.background import CHOICES as BACKGROUNDS
from ..specs import DEFAULT_MODEL, SEED_RANGE, SPECS, Mode, ModelName, Param, Range
from .arguments import PER_CALL_ERROR
from .detection import Mode as DetectMode
from .detection import detect_instruction

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

MAX_WAIT: Final = 300
"""Most seconds a tool call may be asked to wait for its task (wait_seconds, and check_task's)."""


# --- the limits and words, from the spec tables --------------------------------------------------------------


def _who(param: Param) -> str:
    """The models that take ``param``, short ('wan2.6', 'wan2.5'), with both wan2.7 models written once as
    'wan2.7' (and wan2.7-image-pro named in full when only it does)."""
    names = [name for name, spec in SPECS.items() if param in spec.params]
    if {"wan2.7-image-pro", "wan2.7-image"} <= set(names):
        names = ["wan2.7"] + [n for n in names if not n.startswith("wan2.7")]
    return ", ".join(name if name.startswith("wan2.7") else _short(name) for name in names)


def _short(name: str) -> str:
    return name.removesuffix("-image").removesuffix("-i2i-preview")


def _per_model(values: Mapping[str, object]) -> str:
    """{'wan2.7-image-pro': 9, 'wan2.7-image': 9, 'wan2.6-image': 4} -> '9 (wan2.7), 4 (wan2.6)'."""
    groups: dict[object, list[str]] = {}
    for name, value in values.items():
        short = "wan2.7" if name.startswith("wan2.7") else _short(name)
        members = groups.setdefault(value, [])
        if short not in members:
            members.append(short)
    return ", ".join(f"{value} ({'/'.join(names)})" for value, names in groups.items())


def _union(ranges: list[Range]) -> Range:
    return Range(min(r.lo for r in ranges), max(r.hi for r in ranges))


MAX_INPUT_IMAGES: Final = max(spec.max_input_images for spec in SPECS.values())
MAX_N: Final = max(mode.n.hi for spec in SPECS.values() for mode in spec.modes)
MAX_IMAGES: Final = _union([spec.max_images for spec in SPECS.values() if spec.max_images])
MAX_BOXES: Final = max(spec.max_boxes_per_image for spec in SPECS.values())
PALETTE: Final = _union([spec.palette for spec in SPECS.values() if spec.palette])


def _n_text() -> str:
    plain = _union([m.n for s in SPECS.values() for m in s.modes if m.name != "image-set"])
    sets = _union([m.n for s in SPECS.values() for m in s.modes if m.name == "image-set"])
    return f"Images to make, each billed: {plain}; image sets (enable_sequential) up to {sets.hi}."


def _chars(attr: str) -> str:
    return _per_model({name: getattr(spec, attr) for name, spec in SPECS.items() if getattr(spec, attr)})


def _sizes() -> str:
    presets = ", ".join(f"{'/'.join(s.all_presets)} {_short(n)}" for n, s in SPECS.items() if s.all_presets)
    return (
        f"A preset ({presets}) keeps the LAST input's aspect ratio (square with none): put the image whose shape "
        "you want last. 'W*H' or a ratio ('16:9', '2K 16:9') sets it."
    )


@dataclass(frozen=True)
class PaidCount:
    """Marks an argument that counts paid images (n, max_images): ``capped`` lowers its maximum to a server's
    per-call cap."""


PAID: Final = PaidCount()


# --- the declarations ------------------------------------------------------------------------------------------


@with_config(ConfigDict(extra="forbid"))
class PaletteColor(TypedDict):
    # No docstring: pydantic would put it in the schema. One colour of color_palette, e.g. '#C2D1E6', '25.00%'.
    hex: str
    ratio: str


Model = Annotated[ModelName, Field(description="Limits: server instructions, wan://models.")]
"""The ``model`` of every paid tool (edit_image, submit_task, detect_segment); its default is ``DEFAULT_MODEL``."""

AlphaBackground = Annotated[str, Field(description=f"Fill for transparency: {BACKGROUNDS}.")]
"""The ``alpha_background`` of every paid tool and of inspect_image (checked by ``validation``)."""

TaskId = Annotated[str, Field(min_length=1, max_length=128, description="From edit_image, submit_task or list_tasks.")]


@dataclass(frozen=True)
class EditParams:
    """Every optional request parameter, with our defaults (``n`` is 1, not the API's 4)."""

    size: Annotated[str | None, Field(description=_sizes())] = None
    n: Annotated[int, Field(ge=1, le=MAX_N, description=_n_text()), PAID] = 1
    negative_prompt: Annotated[str | None, Field(description=f"What to avoid ({_who(Param.NEGATIVE_PROMPT)}).")] = None
    seed: Annotated[
        int | None,
        Field(
            ge=SEED_RANGE[0],
            le=SEED_RANGE[1],
            description="Same seed, similar result.",
        ),
    ] = None
    watermark: Annotated[bool, Field(description="Add an 'AI Generated' mark.")] = False
    prompt_extend: Annotated[
        bool | None, Field(description=f"Let the model rewrite the prompt ({_who(Param.PROMPT_EXTEND)}).")
    ] = None
    thinking_mode: Annotated[
        bool | None, Field(description=f"Reason before drawing ({_who(Param.THINKING_MODE)}).")
    ] = None
    bbox_list: Annotated[
        list[list[list[int]]] | None,
        Field(
            description=f"{_who(Param.BBOX_LIST)}: per input image, ≤ {MAX_BOXES} boxes [x1, y1, x2, y2] in its pixels "
            "(see inspect_image); [] for none."
        ),
    ] = None
    enable_sequential: Annotated[
        bool | None,
        Field(description=f"A coherent set of up to n images ({_who(Param.ENABLE_SEQUENTIAL)})."),
    ] = None
    color_palette: Annotated[
        list[PaletteColor] | None,
        Field(
            description=f"{_who(Param.COLOR_PALETTE)}: {PALETTE} colours "
            "{hex: '#C2D1E6', ratio: '25.00%'}; ratios sum to 100.00%."
        ),
    ] = None
    enable_interleave: Annotated[
        bool | None, Field(description=f"Text and images interleaved ({_who(Param.ENABLE_INTERLEAVE)}).")
    ] = None
    max_images: Annotated[
        int | None,
        Field(
            ge=MAX_IMAGES.lo,
            le=MAX_IMAGES.hi,
            description=f"Images to make with enable_interleave ({_who(Param.MAX_IMAGES)}).",
        ),
        PAID,
    ] = None
    alpha_background: AlphaBackground = "white"

    def effective(self, mode: Mode) -> dict[Param, object]:
        """``given`` without the ``False`` switches the mode does not have."""
        return {p: v for p, v in self.given().items() if v is not False or p in mode.params}

    def given(self) -> dict[Param, object]:
        """Wire parameters the caller set, beyond those every model takes (n, watermark).

        ``False`` is included: ``thinking_mode=False`` means something to wan2.7. Where the mode lacks
        the parameter, ``False`` asks for nothing and is dropped by ``effective``.
        """
        out: dict[Param, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in _OPTIONAL_WIRE or value is None:
                continue
            out[Param(f.name)] = value
        return out


_OPTIONAL_WIRE: Final = frozenset(Param) - {Param.N, Param.WATERMARK}
"""The fields ``EditParams.given`` reports: wire parameters (``specs.Param``) a model may lack."""


@dataclass(frozen=True)
class EditArgs:
    """What edit_image and submit_task are asked: the prompt, the image references in order, the model and the
    other parameters (their arguments beside these)."""

    prompt: Annotated[
        str,
        Field(
            description=f"Refer to inputs as image 1, image 2 (圖1, 圖2), in order. Chars ≤ {_chars('prompt_chars')}."
        ),
    ]
    images: Annotated[
        list[str],
        Field(
            max_length=MAX_INPUT_IMAGES,
            description="In order: local paths, file://, http(s):// or data: URLs. "
            f"At most {_per_model({n: s.max_input_images for n, s in SPECS.items()})}; none for text-to-image.",
        ),
    ] = field(default_factory=list[str])
    model: Model = DEFAULT_MODEL
    params: EditParams = field(default_factory=EditParams)


@dataclass(frozen=True)
class DetectArgs:
    """What detect_segment is asked: the image, what to find in it (or the caller's own instruction), how, with
    which labels, on which model."""

    image: Annotated[str, Field(description="A local path, file://, http(s):// or data: URL.")]
    targets: Annotated[
        list[str] | None,
        Field(
            min_length=1,
            max_length=20,
            description="What to find, e.g. ['every bottle', 'cup'] or ['所有瓶子']: 'cups' or 'every cup' "
            "boxes each, 'cup' one.",
        ),
    ] = None
    mode: Annotated[DetectMode, Field(description="detect: labelled boxes; segment: segmentation.")] = "detect"
    labels: Annotated[list[str] | None, Field(description="One per target; default the target names.")] = None
    instruction: Annotated[
        str | None, Field(description="Your own instruction, sent as written (no targets, labels).")
    ] = None
    model: Model = DEFAULT_MODEL
    alpha_background: AlphaBackground = "white"

    def edit_args(self) -> EditArgs:
        """This call as edit_image's: the caller's instruction, or one written for the targets in their language
        (``labels``: one per target, default their names), and the one image. Raises InvalidRequest for neither
        targets nor instruction, or both, empty targets, or a label count that does not match."""
        instruction = detect_instruction(self.targets, self.mode, self.labels, self.instruction)
        params = EditParams(alpha_background=self.alpha_background)
        return EditArgs(prompt=instruction, images=[self.image], model=self.model, params=params)


@dataclass(frozen=True)
class DryRun:
    """Whether a paid tool (edit_image, submit_task, detect_segment) only tries its call: checks and conforms
    everything, sends nothing and says what a paid call would send, bill and produce."""

    dry_run: Annotated[
        bool,
        Field(
            description="Free: checks all, sends nothing; says what a paid call would send, bill, produce, and what "
            "would stop it."
        ),
    ] = False


@dataclass(frozen=True)
class Waiting:
    """How long a tool that waits for its task (edit_image, detect_segment) waits."""

    wait_seconds: Annotated[
        float,
        Field(
            ge=0,
            le=MAX_WAIT,
            description="Seconds to wait, then RUNNING with a task_id; stay under your client's timeout.",
        ),
    ] = 50


# --- reading the declarations ----------------------------------------------------------------------------------


REQUIRED: Final = MISSING
"""``Argument.default`` of an argument a call must give."""


@dataclass(frozen=True)
class Argument:
    """One declared argument: its name, its ``Annotated`` type (the ``Field`` with bounds and text) and its
    default (``REQUIRED`` when it has none)."""

    name: str
    annotation: Any
    default: Any


@cache
def _hints(shape: type[DataclassInstance]) -> dict[str, Any]:
    """``shape``'s field types with their metadata, evaluated once: every tool declaring an argument then holds the
    same ``Field``."""
    return get_type_hints(shape, include_extras=True)


def arguments(*shapes: type[DataclassInstance]) -> tuple[Argument, ...]:
    """The arguments ``shapes`` declare, in order; a field whose type is itself a dataclass (``EditArgs.params``)
    is a group, its fields arguments in its place."""
    found: list[Argument] = []
    for shape in shapes:
        hints = _hints(shape)
        for f in fields(shape):
            hint = hints[f.name]
            if isinstance(hint, type) and is_dataclass(hint):
                found.extend(arguments(hint))
            elif f.default_factory is not MISSING:
                found.append(Argument(f.name, hint, f.default_factory()))
            else:
                found.append(Argument(f.name, hint, f.default))
    names = [a.name for a in found]
    duplicated = {name for name in names if names.count(name) > 1}
    if duplicated:
        raise TypeError(f"arguments declared twice: {', '.join(sorted(duplicated))}")
    return tuple(found)


def capped(declared: Sequence[Argument], most: int | None) -> tuple[Argument, ...]:
    """``declared`` for a server that allows at most ``most`` paid images per call (None: no cap): each paid count
    (``PAID``) whose declared maximum is higher advertises ``most`` as its maximum and refuses more with a
    ``PER_CALL_ERROR`` that carries it."""
    if most is None:
        return tuple(declared)
    return tuple(_capped(a, most) if PAID in get_args(a.annotation) else a for a in declared)


def _capped(argument: Argument, most: int) -> Argument:
    annotation = _capped_annotation(argument.annotation, most)
    return argument if annotation is argument.annotation else replace(argument, annotation=annotation)


@dataclass(frozen=True)
class _PerCall:
    """The check of a paid count capped at ``most``: more is a ``PER_CALL_ERROR`` that carries the cap."""

    most: int

    def __call__(self, value: int | None) -> int | None:
        if value is not None and value > self.most:
            raise PydanticCustomError(PER_CALL_ERROR, "at most {le} paid images per call", {"le": self.most})
        return value


@cache
def _capped_annotation(annotation: Any, most: int) -> Any:
    """``annotation`` (a paid count's) with ``most`` as its maximum where it declares more; made once per cap, so
    that every tool declaring the argument holds the same type."""
    base, *extras = get_args(annotation)
    declared = next(extra for extra in extras if isinstance(extra, FieldInfo))
    maxima = [cast(int, bound.le) for bound in declared.metadata if isinstance(bound, Le)]
    if maxima and max(maxima) <= most:
        return annotation
    # A Field of its own, the declared one left as it is: the declared bounds but the maximum, which the cap
    # replaces, so that a value over both is refused naming the cap.
    bounds = [bound for bound in declared.metadata if not isinstance(bound, Le)]
    marks = [extra for extra in extras if not isinstance(extra, FieldInfo)]
    cap = Field(
        description=f"{declared.description} Here: ≤ {most} per call.",
        json_schema_extra={"maximum": most},
    )
    return cast(Any, Annotated)[(base, *bounds, *marks, cap, AfterValidator(_PerCall(most)))]


Shape = TypeVar("Shape", bound="DataclassInstance")


def build(shape: type[Shape], values: Mapping[str, Any]) -> Shape:
    """``shape`` made from a call's ``values`` by argument name (groups too, as ``arguments`` lists them); an
    argument not in ``values`` keeps its default."""
    hints = _hints(shape)
    given: dict[str, Any] = {}
    for f in fields(shape):
        hint = hints[f.name]
        if isinstance(hint, type) and is_dataclass(hint):
            given[f.name] = build(hint, values)
        elif f.name in values:
            given[f.name] = values[f.name]
    return cast(Any, shape)(**given)
