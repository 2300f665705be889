"""completion/complete over the real protocol (the SDK's in-memory Client): model names, recent task ids and
recent result images, filtered by what was typed and bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.types import Completion, PromptReference, ResourceTemplateReference

from wan_image_mcp.core.journal import Journal, NewTask, Status
from wan_image_mcp.core.specs import MODEL_NAMES
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

pytestmark = pytest.mark.anyio


async def complete(client: Client, uri: str, argument: str, typed: str) -> Completion:
    result = await client.complete(ResourceTemplateReference(uri=uri), {"name": argument, "value": typed})
    return result.completion


async def started(client: Client, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool("submit_task", {"prompt": "a lighthouse", "size": "1K", **arguments})
    assert result.structured_content is not None, result.content
    return result.structured_content


async def test_the_server_declares_the_completions_capability(mcp: Client) -> None:
    assert mcp.server_capabilities.completions is not None


async def test_model_names_complete_for_the_model_template(mcp: Client) -> None:
    everything = await complete(mcp, "wan://models/{model}", "model", "")
    assert everything.values == list(MODEL_NAMES) and everything.total == 4 and not everything.has_more
    assert (await complete(mcp, "wan://models/{model}", "model", "wan2.7")).values == [
        "wan2.7-image-pro",
        "wan2.7-image",
    ]
    assert (await complete(mcp, "wan://models/{model}", "model", "gpt")).values == []


async def test_a_prompt_argument_named_model_completes_to_model_names_and_others_to_nothing(mcp: Client) -> None:
    model = await mcp.complete(PromptReference(name="fuse_images"), {"name": "model", "value": "wan2.5"})
    assert model.completion.values == ["wan2.5-i2i-preview"]
    goal = await mcp.complete(PromptReference(name="fuse_images"), {"name": "goal", "value": "w"})
    assert goal.completion.values == []


async def test_task_ids_come_from_the_journal_newest_first_and_by_prefix(mcp: Client) -> None:
    assert (await complete(mcp, "wan://tasks/{task_id}", "task_id", "")).values == []
    first = (await started(mcp))["task_id"]
    second = (await started(mcp))["task_id"]
    assert (await complete(mcp, "wan://tasks/{task_id}", "task_id", "")).values == [second, first]
    assert (await complete(mcp, "wan://tasks/{task_id}", "task_id", first)).values == [first]
    assert (await complete(mcp, "wan://tasks/{task_id}", "task_id", "zz-no-such")).values == []


async def test_image_names_are_the_saved_results_still_on_disk_and_each_reads_as_a_resource(mcp: Client) -> None:
    edited = await mcp.call_tool("edit_image", {"prompt": "two moons", "size": "1K", "n": 2})
    assert edited.structured_content is not None, edited.content
    paths = [Path(image["path"]) for image in edited.structured_content["images"]]
    names = (await complete(mcp, "wan://images/{name}", "name", "")).values
    assert sorted(names) == sorted(path.name for path in paths)
    for name in names:
        assert (await mcp.read_resource(f"wan://images/{name}")).contents
    paths[0].unlink()
    assert (await complete(mcp, "wan://images/{name}", "name", names[0][:10])).values == [paths[1].name]


async def test_an_unknown_template_or_argument_gets_no_suggestions(mcp: Client) -> None:
    assert (await complete(mcp, "wan://tasks/{task_id}", "model", "")).values == []
    assert (await complete(mcp, "wan://nothing/{x}", "x", "")).values == []


async def test_suggestions_are_bounded_to_100_and_say_there_are_more(
    http: httpx2.AsyncClient, server_settings: Settings
) -> None:
    journal = Journal(server_settings.journal_path).open()
    for i in range(150):
        row = journal.begin(NewTask(model="wan2.7-image", prompt=f"p{i}", parameters={}, created_at=1000.0 + i))
        journal.submitted(row, f"task-{i:03d}", None, Status.PENDING, next_poll_at=0)
    journal.close()
    async with Client(build_app(server_settings, http)) as client:
        listed = await complete(client, "wan://tasks/{task_id}", "task_id", "task-")
        assert len(listed.values) == 100 and listed.total == 150 and listed.has_more
        assert listed.values[0] == "task-149"
        assert (await complete(client, "wan://tasks/{task_id}", "task_id", "task-04")).values == [
            f"task-{i:03d}" for i in range(49, 39, -1)
        ]


async def test_a_client_on_the_older_protocol_gets_the_same_suggestions(
    http: httpx2.AsyncClient, server_settings: Settings
) -> None:
    async with Client(build_app(server_settings, http), mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_capabilities.completions is not None
        assert (await complete(client, "wan://models/{model}", "model", "wan2.6")).values == ["wan2.6-image"]
