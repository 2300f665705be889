"""The MCP tools through the SDK's in-process Client, with DashScope traffic going to the emulator."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast, get_args, get_origin, get_type_hints

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult, ImageContent
from PIL import Image, ImageChops, ImageStat
from pydantic.fields import FieldInfo

from tests.support.helpers import TOOL_NAMES, ImageFactory, text
from wan_image_mcp.core.journal import Status
from wan_image_mcp.core.requests.briefs import BRIEF
from wan_image_mcp.core.requests.declarations import PAID, DetectArgs, DryRun, EditArgs, EditParams, Waiting
from wan_image_mcp.core.results.outcomes import ImageFile
from wan_image_mcp.core.results.store import ResultStore
from wan_image_mcp.core.specs import MODEL_NAMES, SPECS
from wan_image_mcp.emulator import EmulatorState, Fault
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.mcp_server.tools import build_tools
from wan_image_mcp.settings import Settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

pytestmark = pytest.mark.anyio
URL = "https://example.com/photo-1200-800.png"


def structured(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None
    return result.structured_content


def api_calls(emulator: EmulatorState) -> list[str]:
    return [f"{r.method} {r.path}" for r in emulator.requests]


# --- the tool list ----------------------------------------------------------------------------------------


async def test_the_tools_are_listed_with_titles_annotations_and_output_schemas(mcp: Client) -> None:
    tools = {t.name: t for t in (await mcp.list_tools()).tools}
    assert set(tools) == TOOL_NAMES
    for tool in tools.values():
        assert tool.title and tool.annotations is not None
        assert tool.annotations.open_world_hint is (tool.name not in ("list_tasks", "inspect_image"))
        assert tool.output_schema is not None
    assert tools["list_tasks"].annotations and tools["list_tasks"].annotations.read_only_hint
    assert tools["check_task"].annotations and tools["check_task"].annotations.idempotent_hint
    assert tools["cancel_task"].annotations and tools["cancel_task"].annotations.destructive_hint
    assert set(tools["edit_image"].input_schema["required"]) == {"prompt"}
    assert set(tools["submit_task"].input_schema["properties"]) == set(
        tools["edit_image"].input_schema["properties"]
    ) - {"wait_seconds"}


async def test_list_tasks_filters_by_every_status_listed_in_place_in_its_schema(mcp: Client) -> None:
    """The filter's schema names each status a task can have (``Status``: DashScope's and the journal's own) inline,
    as a client's form shows them: no ``$ref`` to follow."""
    listing = next(t for t in (await mcp.list_tools()).tools if t.name == "list_tasks")
    choices = listing.input_schema["properties"]["status"]
    assert (choices["enum"], choices["type"]) == ([status.value for status in Status], "string")
    assert set(choices["enum"]) == {
        *("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"),
        *("SUBMITTING", "UNCERTAIN", "AMBIGUOUS", "REJECTED", "EXPIRED"),
    }
    assert "$defs" not in listing.input_schema


async def test_schemas_are_generated_from_the_spec_tables_and_the_per_call_cap(
    mcp: Client, server_settings: Settings
) -> None:
    edit = next(t for t in (await mcp.list_tools()).tools if t.name == "edit_image")
    properties = edit.input_schema["properties"]
    assert properties["model"]["enum"] == list(MODEL_NAMES)
    most = min(server_settings.max_images_per_call, max(m.n.hi for s in SPECS.values() for m in s.modes))
    assert properties["n"]["maximum"] == most
    assert properties["images"]["maxItems"] == max(s.max_input_images for s in SPECS.values())
    assert f"At most {properties['images']['maxItems']} (wan2.7)" in properties["images"]["description"]
    for spec in SPECS.values():
        assert str(spec.prompt_chars) in properties["prompt"]["description"]


async def test_edit_image_says_several_images_make_one_result_and_separate_edits_take_one_call_each(
    mcp: Client,
) -> None:
    edit = next(t for t in (await mcp.list_tools()).tools if t.name == "edit_image")
    said = " ".join((edit.description or "").split())
    assert "Several images in one call make one combined result" in said
    assert "to edit photos separately, make one call per photo" in said


async def test_list_tasks_says_each_task_in_a_line_and_where_the_next_page_is(
    mcp: Client, make_image: ImageFactory
) -> None:
    photo = make_image("photo.png", (640, 480))
    ids: list[str] = []
    for prompt in ("first", "second " + "very long " * 10, "third"):
        made = await mcp.call_tool("edit_image", {"prompt": prompt, "images": [str(photo)], "size": "1K"})
        assert made.structured_content is not None, text(made)
        ids.append(made.structured_content["task_id"])
    page_1 = text(await mcp.call_tool("list_tasks", {"page_size": 2})).splitlines()
    page_2 = text(await mcp.call_tool("list_tasks", {"page_size": 2, "page": 2})).splitlines()
    assert page_1[0] == "3 tasks, newest first (page 1 of 2):"
    assert page_1[1].startswith(f'- SUCCEEDED {ids[2]} · wan2.7-image-pro · "third" · 1 image: ')
    assert f'{ids[1]} · wan2.7-image-pro · "second very long very long' in page_1[2]
    assert '…" · 1 image: ' in page_1[2]  # a long prompt's excerpt
    assert page_1[3] == "More: page=2."
    assert page_2[0] == "3 tasks, newest first (page 2 of 2):" and ids[0] in page_2[1] and len(page_2) == 2
    assert text(await mcp.call_tool("list_tasks", {"status": "FAILED"})) == "No tasks with status FAILED."


async def test_every_per_model_limit_is_in_the_server_instructions(mcp: Client) -> None:
    instructions = mcp.instructions or ""
    for spec in SPECS.values():
        line = next(line for line in instructions.splitlines() if line.startswith(f"- {spec.name}: "))
        assert spec.summary in line
        assert f"sides {spec.image.side} px, ≤ {spec.image.max_bytes // 1_000_000} MB" in line
        assert f"ratio {spec.image.ratio_text()}" in line and f"Prompt ≤ {spec.prompt_chars} chars" in line
        for mode in spec.modes:
            assert f"{mode.name} {mode.images} images, n {mode.n}" in line
        if spec.negative_prompt_chars:
            assert f"negative_prompt ≤ {spec.negative_prompt_chars} chars" in line
        if spec.max_boxes_per_image:
            assert f"bbox_list ≤ {spec.max_boxes_per_image}/image" in line
        if spec.palette:
            assert f"color_palette {spec.palette}" in line
        if spec.max_images:
            assert f"max_images {spec.max_images}" in line


def _compact(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


async def test_tools_list_is_lean(mcp: Client) -> None:
    listed = (await mcp.list_tools()).model_dump(mode="json", by_alias=True, exclude_none=True)
    shown = [{k: t[k] for k in ("name", "title", "description", "inputSchema") if k in t} for t in listed["tools"]]
    assert _compact(shown) <= 9_000, _compact(shown)  # issue 23: model-visible ≤ 9,000 B, all ≤ 15,000 B
    assert _compact(listed) <= 15_000, _compact(listed)


def _walk(node: object, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, cast(dict[str, Any], node)))
        for key, child in cast(dict[str, Any], node).items():
            found += _walk(child, f"{path}.{key}")
    elif isinstance(node, list):
        for index, child in enumerate(cast(list[Any], node)):
            found += _walk(child, f"{path}[{index}]")
    return found


async def test_every_schema_is_in_the_portable_subset(mcp: Client) -> None:
    for tool in (await mcp.list_tools()).tools:
        for kind, schema in (("input", tool.input_schema), ("output", tool.output_schema or {})):
            for path, node in _walk(schema, f"{tool.name}.{kind}"):
                assert not isinstance(node.get("type"), list), path
                assert "$ref" not in node and "$defs" not in node and "anyOf" not in node, path
                assert node.get("type") != "null", path
        assert tool.input_schema.get("additionalProperties") is False, tool.name


# --- the paid tools' parameters are the core's declarations ------------------------------------------------------


def _declared(*shapes: type[DataclassInstance]) -> list[tuple[str, Any, dataclasses.Field[Any]]]:
    """Each field of ``shapes`` with its annotated type, read straight from the dataclasses (``EditArgs.params``
    spelled out here as ``EditParams``, so a tool that drops or adds an argument differs)."""
    found: list[tuple[str, Any, dataclasses.Field[Any]]] = []
    for shape in shapes:
        hints = get_type_hints(shape, include_extras=True)
        found += [(f.name, hints[f.name], f) for f in dataclasses.fields(shape) if f.name != "params"]
    return found


def _expected_property(annotation: Any, field: dataclasses.Field[Any], *, described: bool, most: int) -> dict[str, Any]:
    """What the declaration says of one argument's schema: its default, bounds and description; a paid count's
    maximum lowered to the server's per-call cap ``most``, which its description then states."""
    base, info, *marks = get_args(annotation) if get_origin(annotation) is Annotated else (annotation, None)
    expected: dict[str, Any] = {}
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    if default is not dataclasses.MISSING and default is not None:
        expected["default"] = default
    if get_origin(base) is Literal:
        expected["enum"] = list(get_args(base))
    if isinstance(info, FieldInfo):
        text = base in (str, str | None)
        length = ("minLength", "maxLength") if text else ("minItems", "maxItems")
        keys = {"ge": "minimum", "le": "maximum", "min_length": length[0], "max_length": length[1]}
        for bound in info.metadata:  # annotated_types' Ge, Le, MinLen, MaxLen
            expected |= {key: getattr(bound, attr) for attr, key in keys.items() if hasattr(bound, attr)}
        if described and info.description is not None:
            expected["description"] = info.description
    if PAID in marks and expected["maximum"] > most:
        expected["maximum"] = most
        if described:
            expected["description"] += f" Here: ≤ {most} per call."
    return expected


def _listed_facts(schema: dict[str, Any]) -> dict[str, Any]:
    keys = ("default", "enum", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "description")
    return {key: schema[key] for key in keys if key in schema}


@pytest.mark.parametrize(
    ("tool", "shapes", "described"),
    [
        ("edit_image", (EditArgs, EditParams, DryRun, Waiting), True),
        ("submit_task", (EditArgs, EditParams, DryRun), False),
        ("detect_segment", (DetectArgs, DryRun, Waiting), True),
    ],
)
async def test_a_paid_tools_parameters_are_exactly_its_declared_arguments(
    mcp: Client, server_settings: Settings, tool: str, shapes: tuple[type[DataclassInstance], ...], described: bool
) -> None:
    schema = next(t for t in (await mcp.list_tools()).tools if t.name == tool).input_schema
    declared = _declared(*shapes)
    assert list(schema["properties"]) == [name for name, _, _ in declared]
    required = [name for name, _, f in declared if f.default is f.default_factory is dataclasses.MISSING]
    assert schema.get("required", []) == required
    for name, annotation, field in declared:
        expected = _expected_property(annotation, field, described=described, most=server_settings.max_images_per_call)
        if not described and name in BRIEF:  # submit_task: a few words where the name does not say enough
            expected["description"] = BRIEF[name]
        assert _listed_facts(schema["properties"][name]) == expected, name


async def test_edit_image_and_detect_segment_share_the_model_and_wait_seconds_declarations(mcp: Client) -> None:
    tools = {t.name: t.input_schema["properties"] for t in (await mcp.list_tools()).tools}
    for name in ("model", "wait_seconds"):
        assert tools["detect_segment"][name] == tools["edit_image"][name]


@pytest.mark.parametrize(
    ("tool", "shapes"), [("edit_image", (EditArgs, EditParams, DryRun)), ("detect_segment", (DetectArgs, DryRun))]
)
def test_every_declared_argument_reaches_the_call_resolver_by_name(
    tool: str, shapes: tuple[type[DataclassInstance], ...]
) -> None:
    built = {t.name: t for t in build_tools()}[tool]
    # The SDK's plan of each resolver: which of its parameters it fills from the tool's arguments by name.
    by_name = {
        name for plan in built.resolver_plans.values() for name, how in plan.params.items() if how.kind == "by_name"
    }
    assert by_name == {name for name, _, _ in _declared(*shapes)}


# --- refused before any request ---------------------------------------------------------------------------


async def test_edit_rejects_ten_images_before_any_request(mcp: Client, emulator: EmulatorState) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "fuse them", "images": [URL] * 10})
    assert result.is_error
    assert text(result) == "images takes at most 9 images; 10 were given. Nothing was sent."
    assert "Nothing was sent" in text(result)
    assert emulator.requests == []


async def test_a_parameter_the_model_lacks_is_refused_before_any_request(mcp: Client, emulator: EmulatorState) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [URL], "negative_prompt": "blur"})
    assert result.is_error
    assert "negative_prompt: wan2.7-image-pro does not support negative_prompt" in text(result)
    assert emulator.requests == []


async def test_an_empty_color_palette_is_the_same_as_none(mcp: Client, emulator: EmulatorState) -> None:
    result = await mcp.call_tool(
        "submit_task", {"prompt": "x", "images": [URL], "model": "wan2.6-image", "color_palette": []}
    )
    assert not result.is_error, text(result)
    (submitted,) = [r for r in emulator.requests if r.method == "POST"]
    assert "color_palette" not in submitted.body["parameters"]


async def test_wrong_argument_types_are_tool_errors(mcp: Client, emulator: EmulatorState) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "x", "n": "many", "model": "dall-e"})
    assert result.is_error
    assert "n" in text(result) and "model" in text(result)
    assert "Traceback" not in text(result)
    assert emulator.requests == []


async def test_a_missing_key_says_which_variable(http: httpx2.AsyncClient, server_settings: Settings) -> None:
    no_key = Settings(base_url=server_settings.base_url, output_dir=server_settings.output_dir)
    async with Client(build_app(no_key, http)) as client:
        result = await client.call_tool("edit_image", {"prompt": "x"})
    assert result.is_error
    assert "DASHSCOPE_API_KEY is not set" in text(result)


# --- editing ---------------------------------------------------------------------------------------------


async def test_two_image_edit_saves_files_with_sidecars_and_previews(
    mcp: Client, make_image: ImageFactory, server_settings: Settings
) -> None:
    car = make_image("car.png", (1600, 900))
    paint = make_image("paint.jpg", (800, 800), colour=(20, 200, 90))
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    result = await mcp.call_tool(
        "edit_image",
        {"prompt": "把圖2的塗鴉噴繪在圖1的汽車上", "images": [str(car), str(paint)], "size": "1K", "seed": 7},
        progress_callback=on_progress,
    )
    assert not result.is_error, text(result)
    body = structured(result)
    assert body["status"] == "SUCCEEDED"
    (image,) = body["images"]
    path = Path(image["path"])
    assert path.is_absolute() and path.parent == server_settings.output_dir
    with Image.open(path) as saved:
        assert saved.size == (image["width"], image["height"]) == (1024, 1024)  # aspect of the last input, 1:1
    assert image["bytes"] == path.stat().st_size
    sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["prompt"] == "把圖2的塗鴉噴繪在圖1的汽車上"
    assert sidecar["model"] == "wan2.7-image-pro"
    assert sidecar["parameters"] == {"n": 1, "watermark": False, "size": "1K", "seed": 7}
    assert (sidecar["task_id"], sidecar["url"]) == (body["task_id"], image["url"])
    assert sidecar["usage"]["image_count"] == 1 and sidecar["request_id"]
    assert len(sidecar["sha256"]) == 64
    assert sidecar["submitted"] <= sidecar["saved"]  # ISO times, when the task was sent and its image saved
    previews = [block for block in result.content if isinstance(block, ImageContent)]
    assert len(previews) == 1
    with Image.open(io.BytesIO(base64.b64decode(previews[0].data))) as preview:
        assert max(preview.size) <= 512
    messages = [m for _, m in seen]
    assert messages[0] and messages[0].startswith("submitted task")
    assert messages[-1] == "saved 1 image(s)"
    assert [v for v, _ in seen] == sorted(v for v, _ in seen)
    assert not list(server_settings.output_dir.glob(".*part"))


async def test_adjusted_inputs_are_reported(mcp: Client, make_image: ImageFactory) -> None:
    logo = make_image("logo.png", (600, 400), mode="RGBA", colour=(0, 0, 0, 0))
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(logo)], "size": "1K"})
    assert structured(result)["adjustments"] == ["image 1: alpha channel flattened onto white"]
    assert "alpha channel flattened" in text(result)


def received_images(emulator: EmulatorState, task_id: str) -> list[Image.Image]:
    """The input images the emulator received for a task, decoded as it decoded them."""
    found: list[Image.Image] = []
    for data in emulator.tasks[task_id].images:
        assert data is not None
        with Image.open(io.BytesIO(data)) as image:
            found.append(image.convert("RGB"))
    return found


def transparent_logo(make_image: ImageFactory) -> Path:
    """A 600×400 PNG: an opaque blue square in the middle of a transparent field."""
    path = make_image("logo.png", (600, 400), mode="RGBA", colour=(0, 0, 0, 0))
    with Image.open(path) as image:
        image.paste((0, 90, 200, 255), (200, 100, 400, 300))
        image.save(path)
    return path


@pytest.mark.parametrize(
    ("arguments", "rgb", "named"),
    [({"alpha_background": "#FF0000"}, (255, 0, 0), "#FF0000"), ({}, (255, 255, 255), "white")],
)
async def test_a_transparent_input_arrives_flattened_onto_the_chosen_background_and_says_so(
    mcp: Client,
    emulator: EmulatorState,
    make_image: ImageFactory,
    arguments: dict[str, Any],
    rgb: tuple[int, int, int],
    named: str,
) -> None:
    logo = transparent_logo(make_image)
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(logo)], "size": "1K", **arguments})
    assert not result.is_error
    (received,) = received_images(emulator, structured(result)["task_id"])
    assert received.getpixel((10, 10)) == rgb  # where it was transparent
    assert received.getpixel((300, 200)) == (0, 90, 200)
    assert structured(result)["adjustments"] == [f"image 1: alpha channel flattened onto {named}"]
    assert f"alpha channel flattened onto {named}" in text(result)


async def test_detect_segment_flattens_onto_its_alpha_background(
    mcp: Client, emulator: EmulatorState, make_image: ImageFactory
) -> None:
    logo = transparent_logo(make_image)
    arguments = {"image": str(logo), "targets": ["square"], "alpha_background": "black"}
    result = await mcp.call_tool("detect_segment", arguments)
    assert not result.is_error
    (received,) = received_images(emulator, structured(result)["task_id"])
    assert received.getpixel((10, 10)) == (0, 0, 0)
    assert structured(result)["adjustments"] == ["image 1: alpha channel flattened onto black"]


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("edit_image", {"prompt": "x"}),
        ("submit_task", {"prompt": "x"}),
        ("detect_segment", {"targets": ["square"]}),
        ("inspect_image", {}),
    ],
)
async def test_a_background_that_is_no_colour_is_refused_naming_the_argument_before_any_request(
    mcp: Client, emulator: EmulatorState, make_image: ImageFactory, tool: str, arguments: dict[str, Any]
) -> None:
    logo = str(transparent_logo(make_image))
    images = {"image": logo} if tool == "detect_segment" else {"images": [logo]}
    result = await mcp.call_tool(tool, {**arguments, **images, "alpha_background": "pink"})
    assert result.is_error
    said = "alpha_background: 'pink' is not a colour it takes: white, black or '#RRGGBB', e.g. '#FF0000'"
    assert said in text(result) and "Nothing was sent" in text(result)
    assert emulator.requests == []


async def test_previews_can_be_turned_off(http: httpx2.AsyncClient, server_settings: Settings) -> None:
    quiet = server_settings.model_copy(update={"previews": False})
    async with Client(build_app(quiet, http)) as client:
        result = await client.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert not result.is_error
    assert [block.type for block in result.content] == ["text", "resource_link"]  # the link stays, no preview


@pytest.mark.parametrize("model", MODEL_NAMES)
async def test_every_model_edits(model: str, mcp: Client) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "make it blue", "images": [URL], "model": model})
    assert not result.is_error, text(result)
    body = structured(result)
    assert (body["status"], body["model"], len(body["images"])) == ("SUCCEEDED", model, 1)


async def test_an_image_set_returns_every_image(mcp: Client) -> None:
    result = await mcp.call_tool(
        "edit_image", {"prompt": "four seasons", "n": 4, "enable_sequential": True, "size": "1K"}
    )
    assert len(structured(result)["images"]) == 4
    assert len({i["path"] for i in structured(result)["images"]}) == 4


async def test_interleave_returns_its_texts_and_images_as_parts_in_order(mcp: Client) -> None:
    result = await mcp.call_tool(
        "edit_image",
        {
            "prompt": "a recipe",
            "model": "wan2.6-image",
            "enable_interleave": True,
            "max_images": 2,
            "size": "1024*1024",
        },
    )
    body = structured(result)
    assert [part["type"] for part in body["parts"]] == ["text", "image", "text", "image"]
    assert [part["path"] for part in body["parts"] if part["type"] == "image"] == [i["path"] for i in body["images"]]


# --- waiting, checking, cancelling -----------------------------------------------------------------------


async def test_bounded_wait_returns_running_then_check_task_finishes(mcp: Client, emulator: EmulatorState) -> None:
    emulator.config.polls_to_finish = 10_000
    with anyio.fail_after(10):
        result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K", "wait_seconds": 0.2})
    body = structured(result)
    assert not result.is_error
    assert body["status"] == "RUNNING" and body["images"] == []
    assert body["next_step"].startswith("Not finished yet. Call check_task with task_id=")
    assert body["requested_images"] == 1
    emulator.config.polls_to_finish = 1
    checked = await mcp.call_tool("check_task", {"task_id": body["task_id"]})
    assert structured(checked)["status"] == "SUCCEEDED" and len(structured(checked)["images"]) == 1


async def test_check_task_downloads_once(mcp: Client, emulator: EmulatorState) -> None:
    submitted = await mcp.call_tool("submit_task", {"prompt": "x", "size": "1K"})
    task_id = structured(submitted)["task_id"]
    assert structured(submitted)["status"] == "PENDING"
    first = await mcp.call_tool("check_task", {"task_id": task_id, "wait_seconds": 5})
    second = await mcp.call_tool("check_task", {"task_id": task_id})
    assert structured(first)["images"] == structured(second)["images"] != []
    assert sum(call.startswith("GET /results/") for call in api_calls(emulator)) == 1


async def test_concurrent_checks_of_one_task_download_once(mcp: Client, emulator: EmulatorState) -> None:
    task_id = structured(await mcp.call_tool("submit_task", {"prompt": "x", "size": "1K"}))["task_id"]
    results: list[CallToolResult] = []

    async def check() -> None:
        results.append(await mcp.call_tool("check_task", {"task_id": task_id, "wait_seconds": 5}))

    async with anyio.create_task_group() as group:
        group.start_soon(check)
        group.start_soon(check)
    assert structured(results[0])["images"] == structured(results[1])["images"] != []
    assert sum(call.startswith("GET /results/") for call in api_calls(emulator)) == 1


@pytest.mark.parametrize("journal", ["its own journal", "another journal"])
async def test_a_restarted_server_finds_saved_images_on_disk(
    mcp: Client, http: httpx2.AsyncClient, server_settings: Settings, emulator: EmulatorState, journal: str
) -> None:
    done = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    if journal == "another journal":  # it has never heard of the task: the sidecars on disk say what it is
        server_settings = server_settings.model_copy(
            update={"journal_path": server_settings.journal_path.with_name("b.sqlite3")}
        )
    async with Client(build_app(server_settings, http)) as fresh:
        again = await fresh.call_tool("check_task", {"task_id": structured(done)["task_id"]})
    assert structured(again)["images"] == structured(done)["images"]
    assert sum(call.startswith("GET /results/") for call in api_calls(emulator)) == 1


async def test_new_results_are_saved_without_reading_the_output_folder(
    mcp: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looking for images saved earlier reads every file name in the output folder (~25 ms per 10,000 files):
    only worth it for a task whose results were seen before."""
    looked: list[str] = []
    original = ResultStore._existing  # pyright: ignore[reportPrivateUsage]

    def existing(self: ResultStore, task_id: str) -> tuple[dict[int, ImageFile], int]:
        looked.append(task_id)
        return original(self, task_id)

    monkeypatch.setattr(ResultStore, "_existing", existing)
    done = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K", "n": 2})
    task_id = structured(await mcp.call_tool("submit_task", {"prompt": "x", "size": "1K"}))["task_id"]
    checked = await mcp.call_tool("check_task", {"task_id": task_id, "wait_seconds": 5})
    assert len(structured(done)["images"]) == 2 and len(structured(checked)["images"]) == 1
    assert looked == []


async def test_wan25_via_submit_and_check_returns_the_rewritten_prompt(mcp: Client) -> None:
    submitted = await mcp.call_tool(
        "submit_task", {"prompt": "move the clock", "images": [URL], "model": "wan2.5-i2i-preview", "n": 2}
    )
    assert structured(submitted)["requested_images"] == 2
    assert "Requested up to 2 paid image(s)." in text(submitted)
    checked = await mcp.call_tool("check_task", {"task_id": structured(submitted)["task_id"], "wait_seconds": 5})
    body = structured(checked)
    assert len(body["images"]) == 2
    assert body["actual_prompt"].startswith("move the clock")


async def test_a_failed_task_is_a_tool_error_with_code_and_message(mcp: Client, emulator: EmulatorState) -> None:
    emulator.add_fault(
        Fault("fail_task", code="DataInspectionFailed", message="Output data may contain inappropriate content.")
    )
    result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert result.is_error
    body = structured(result)
    assert body["status"] == "FAILED"
    assert body["error"]["code"] == "DataInspectionFailed"
    assert "Error DataInspectionFailed: Output data may contain inappropriate content." in text(result)


async def test_an_unknown_task_is_a_tool_error(mcp: Client) -> None:
    result = await mcp.call_tool("check_task", {"task_id": "no-such-task"})
    assert result.is_error
    assert structured(result)["status"] == "UNKNOWN"
    assert text(result).startswith("UNKNOWN: task no-such-task\n")
    assert "older than 24 h" in text(result)


async def test_a_pending_task_can_be_cancelled_and_a_running_one_explains_why_not(mcp: Client) -> None:
    first = structured(await mcp.call_tool("submit_task", {"prompt": "x"}))["task_id"]
    cancelled = await mcp.call_tool("cancel_task", {"task_id": first})
    assert not cancelled.is_error and f"Task {first} cancelled" in text(cancelled)
    checked = await mcp.call_tool("check_task", {"task_id": first})
    assert not checked.is_error and structured(checked)["status"] == "CANCELED"

    second = structured(await mcp.call_tool("submit_task", {"prompt": "x"}))["task_id"]
    await mcp.call_tool("check_task", {"task_id": second})  # now RUNNING
    refused = await mcp.call_tool("cancel_task", {"task_id": second})
    assert refused.is_error
    assert "only PENDING tasks can" in text(refused) and "UnsupportedOperation" in text(refused)


async def test_api_errors_carry_code_message_and_request_id(mcp: Client, emulator: EmulatorState) -> None:
    emulator.add_fault(Fault("moderation", target="submit"))
    result = await mcp.call_tool("edit_image", {"prompt": "x"})
    assert result.is_error
    message = text(result)
    assert "DataInspectionFailed: Input data may contain inappropriate content. (HTTP 400, request_id " in message
    assert "change the prompt or images" in message


async def test_a_lost_submit_response_is_uncertain_and_says_not_to_resubmit(
    mcp: Client, emulator: EmulatorState
) -> None:
    emulator.add_fault(Fault("drop", target="submit", after_processing=True))
    result = await mcp.call_tool("edit_image", {"prompt": "draw a fox"})
    assert result.is_error
    assert "recorded as UNCERTAIN (journal id 1)" in text(result)
    assert "do not resubmit unless paying twice is acceptable" in text(result)
    assert len(emulator.tasks) == 1
    listed = structured(await mcp.call_tool("list_tasks", {"status": "UNCERTAIN"}))
    (row,) = listed["tasks"]
    assert (row.get("task_id"), row["prompt"], row["error"]["code"]) == (None, "draw a fox", "ResponseLost")


async def test_a_result_that_is_not_an_image_is_reported_and_leaves_no_file(
    mcp: Client, emulator: EmulatorState, server_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = emulator.store_file

    def store_a_page(data: bytes, content_type: str = "image/png") -> str:
        return store(b"<html>", "text/html")

    monkeypatch.setattr(emulator, "store_file", store_a_page)
    result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert not result.is_error  # the task succeeded: paid, so never a failure
    assert structured(result)["error"]["code"] == "DownloadFailed"
    assert structured(result)["missing_images"] == [{"index": 1, "reason": "the result is not an image"}]
    assert [p.name for p in server_settings.output_dir.iterdir()] == []


async def test_an_expired_result_url_is_reported_not_crashed(mcp: Client, emulator: EmulatorState) -> None:
    task_id = structured(await mcp.call_tool("submit_task", {"prompt": "x", "size": "1K"}))["task_id"]
    await mcp.call_tool("check_task", {"task_id": task_id})  # RUNNING
    emulator.config.result_ttl = -1  # the next files are born expired
    result = await mcp.call_tool("check_task", {"task_id": task_id})
    assert not result.is_error  # paid, and said as lost: no failure to submit again blindly
    body = structured(result)
    assert (body["status"], body["error"]["code"]) == ("SUCCEEDED", "DownloadFailed")
    assert "expired" in body["missing_images"][0]["reason"]
    assert body["next_step"] == (
        "The task SUCCEEDED and is paid for, but its result URLs have expired (they last 24 h): image(s) 1 of 1 "
        "cannot be recovered."
    )
    again = await mcp.call_tool("check_task", {"task_id": task_id})
    assert not again.is_error and structured(again)["error"]["code"] == "DownloadFailed"
    assert sum(call.startswith("GET /results/") for call in api_calls(emulator)) == 1  # not tried again
    (row,) = structured(await mcp.call_tool("list_tasks", {"status": "EXPIRED"}))["tasks"]
    assert row["task_id"] == task_id


async def test_an_unwritable_output_directory_is_refused_before_anything_is_sent_and_taken_once_fixed(
    http: httpx2.AsyncClient, server_settings: Settings, tmp_path: Path, emulator: EmulatorState
) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the output directory should be")
    settings = server_settings.model_copy(update={"output_dir": blocker / "images"})
    async with Client(build_app(settings, http)) as client:
        first = await client.call_tool("edit_image", {"prompt": "x", "size": "1K"})
        assert first.is_error  # nothing is paid that cannot be saved
        assert text(first).startswith(f"The output folder {blocker / 'images'} cannot be written (Not a directory")
        assert emulator.requests == []
        blocker.unlink()
        again = await client.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert not again.is_error
    assert Path(structured(again)["images"][0]["path"]).is_file()


# --- detect_segment --------------------------------------------------------------------------------------


async def test_detect_writes_the_seed_instruction_in_the_targets_language(mcp: Client, emulator: EmulatorState) -> None:
    result = await mcp.call_tool(
        "detect_segment", {"image": URL, "targets": ["膝上型電腦", "鬧鐘"], "labels": ["laptop", "clock"]}
    )
    assert not result.is_error
    instruction = "檢測圖片中的膝上型電腦和鬧鐘，畫框並標註“laptop”和“clock”"
    assert structured(result)["instruction"] == instruction
    sent = next(r for r in emulator.requests if r.method == "POST")
    assert sent.body["input"]["messages"][0]["content"][-1] == {"text": instruction}


async def test_segment_in_english(mcp: Client) -> None:
    result = await mcp.call_tool("detect_segment", {"image": URL, "targets": ["glass"], "mode": "segment"})
    assert structured(result)["instruction"] == "Segment the glass in the image."


async def test_detect_segments_description_says_it_gives_one_paid_picture_not_coordinates(mcp: Client) -> None:
    tool = next(t for t in (await mcp.list_tools()).tools if t.name == "detect_segment")
    description = " ".join((tool.description or "").split())
    for said in ("one new picture", "billed as one image", "no masks, no coordinates", "aspect ratio"):
        assert said in description
    assert "'every cup' boxes each" in tool.input_schema["properties"]["targets"]["description"]


async def test_every_and_plural_targets_ask_for_each_one(mcp: Client, emulator: EmulatorState) -> None:
    result = await mcp.call_tool("detect_segment", {"image": URL, "targets": ["every bottle", "cups"]})
    instruction = (
        "Detect every bottle and all the cups in the image, draw a box around each and label them “bottle” and “cups”."
    )
    assert structured(result)["instruction"] == instruction
    sent = next(r for r in emulator.requests if r.method == "POST")
    assert sent.body["input"]["messages"][0]["content"][-1] == {"text": instruction}


async def test_detect_sends_the_agents_own_instruction_verbatim_and_states_it(
    mcp: Client, emulator: EmulatorState
) -> None:
    own = "Draw a red box around every bottle and a blue one around every cup, each labelled with its name."
    result = await mcp.call_tool("detect_segment", {"image": URL, "instruction": own})
    assert not result.is_error
    assert structured(result)["instruction"] == own
    assert f"Instruction: {own}" in text(result)
    sent = next(r for r in emulator.requests if r.method == "POST")
    assert sent.body["input"]["messages"][0]["content"][-1] == {"text": own}


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ({}, "targets: give targets (what to find, e.g. ['every bottle', 'cup']) or instruction (your own words)"),
        ({"targets": ["cup"], "instruction": "Box the cup."}, "targets: give targets or instruction, not both"),
        ({"labels": ["cup"], "instruction": "Box the cup."}, "labels: labels go with targets"),
        ({"instruction": "  "}, "instruction: must not be empty"),
        (
            {"instruction": "x" * (SPECS["wan2.7-image-pro"].prompt_chars + 1)},
            f"instruction: is {SPECS['wan2.7-image-pro'].prompt_chars + 1} characters; wan2.7-image-pro takes at most",
        ),
        ({"targets": ["the glass of image 2"]}, "targets: refers to image 2"),
    ],
)
async def test_detect_refuses_neither_both_or_a_bad_instruction_in_its_own_words_before_any_request(
    mcp: Client, emulator: EmulatorState, arguments: dict[str, Any], said: str
) -> None:
    result = await mcp.call_tool("detect_segment", {"image": URL, **arguments})
    assert result.is_error
    assert said in text(result) and "Nothing was sent" in text(result)
    assert "prompt" not in text(result)
    assert emulator.requests == []


async def test_a_refused_image_is_named_as_detect_segments_image(
    mcp: Client, emulator: EmulatorState, make_image: ImageFactory
) -> None:
    tiny = make_image("tiny.png", (20, 20))
    result = await mcp.call_tool("detect_segment", {"image": str(tiny), "targets": ["cup"]})
    assert result.is_error
    assert text(result).startswith("Invalid request: image: 20×20 px is too small")
    assert emulator.requests == []


async def test_labels_must_match_targets(mcp: Client, emulator: EmulatorState) -> None:
    result = await mcp.call_tool("detect_segment", {"image": URL, "targets": ["a", "b"], "labels": ["x"]})
    assert result.is_error
    assert "labels: 1 labels for 2 targets" in text(result)
    assert emulator.requests == []


async def test_a_partly_failed_save_fetches_only_the_missing_images_later(
    mcp: Client, emulator: EmulatorState, server_settings: Settings
) -> None:
    emulator.add_fault(Fault("error", target="download", status=404, code="NoSuchKey", message="gone"))
    first = await mcp.call_tool("edit_image", {"prompt": "x", "n": 2, "size": "1K"})
    assert not first.is_error
    assert structured(first)["error"]["code"] == "DownloadFailed"
    assert len(structured(first)["images"]) == 1 and len(structured(first)["missing_images"]) == 1
    assert len(list(server_settings.output_dir.glob("*.png"))) == 1  # the other image is kept
    again = await mcp.call_tool("check_task", {"task_id": structured(first)["task_id"]})
    assert not again.is_error
    assert len(structured(again)["images"]) == 2
    assert len(list(server_settings.output_dir.glob("*.png"))) == 2
    assert (
        sum(call.startswith("GET /results/") for call in api_calls(emulator)) == 3
    )  # 2 tries, then only the missing one


async def test_each_result_image_has_its_own_preview_in_order(mcp: Client) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K", "n": 3})
    paths = [image["path"] for image in structured(result)["images"]]
    previews = [
        Image.open(io.BytesIO(base64.b64decode(block.data))).convert("L")
        for block in result.content
        if isinstance(block, ImageContent)
    ]
    assert len(previews) == len(paths) == 3

    def distance(preview: Image.Image, path: str) -> float:
        with Image.open(path) as full:
            scaled = full.convert("L").resize(preview.size)  # pyright: ignore[reportUnknownMemberType]
        return ImageStat.Stat(ImageChops.difference(preview, scaled)).mean[0]

    nearest = [min(range(3), key=lambda i: distance(preview, paths[i])) for preview in previews]
    assert nearest == [0, 1, 2]


def test_submit_task_takes_exactly_edit_images_arguments_but_wait_seconds() -> None:
    import inspect

    from wan_image_mcp.mcp_server import tools

    edit = inspect.signature(tools.edit_image, eval_str=True).parameters
    submit = inspect.signature(tools.submit_task, eval_str=True).parameters

    def taken(parameter: inspect.Parameter) -> tuple[Any, ...]:  # the type without its descriptions
        kind = get_args(parameter.annotation)[0] if get_origin(parameter.annotation) is Annotated else None
        return (parameter.name, kind, parameter.default, parameter.kind)

    expected = [taken(p) for p in edit.values() if p.name != "wait_seconds"]
    assert [taken(p) for p in submit.values()] == expected


async def test_submit_task_describes_in_a_few_words_the_arguments_whose_name_does_not_say_how_to_write_them(
    mcp: Client,
) -> None:
    tools = {t.name: t.input_schema["properties"] for t in (await mcp.list_tools()).tools}
    submit, edit = tools["submit_task"], tools["edit_image"]
    assert submit["prompt"]["description"] == "Inputs are image 1, image 2 in order"
    assert "[[x1, y1, x2, y2], …]" in submit["bbox_list"]["description"]
    assert "description" not in submit["watermark"]  # its name says it
    for name, words in BRIEF.items():
        assert submit[name]["description"] == words
        assert len(words) < len(edit[name]["description"]), name


async def test_an_id_neither_the_journal_nor_dashscope_knows_is_not_remembered(mcp: Client) -> None:
    await mcp.call_tool("check_task", {"task_id": "no-such-task"})
    assert structured(await mcp.call_tool("list_tasks", {}))["tasks"] == []
