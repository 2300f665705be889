"""Resources: the spec tables as JSON, journal entries, and result images linked from every result."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from mcp import Client
from mcp.types import BlobResourceContents, ResourceLink, TextResourceContents

from wan_image_mcp.core.requests.catalog import catalog_json
from wan_image_mcp.core.specs import MODEL_NAMES
from wan_image_mcp.settings import Settings

pytestmark = pytest.mark.anyio


async def read_text(client: Client, uri: str) -> str:
    (content,) = (await client.read_resource(uri)).contents
    assert isinstance(content, TextResourceContents)
    return content.text


async def test_the_resources_are_listed(mcp: Client) -> None:
    static = {str(r.uri) for r in (await mcp.list_resources()).resources}
    templates = {t.uri_template for t in (await mcp.list_resource_templates()).resource_templates}
    assert "wan://models" in static
    assert templates == {"wan://models/{model}", "wan://tasks/{task_id}", "wan://images/{name}"}


async def test_the_models_resource_is_the_spec_table(mcp: Client) -> None:
    models = json.loads(await read_text(mcp, "wan://models"))
    assert list(models) == list(MODEL_NAMES)
    assert models == json.loads(json.dumps(catalog_json()))
    one = json.loads(await read_text(mcp, "wan://models/wan2.5-i2i-preview"))
    assert one["input_image"]["side_px"] == {"min": 384, "max": 5000}
    assert one["modes"]["edit"]["n"] == {"min": 1, "max": 4, "default": 1}  # ours, not the API's 4


async def test_an_unknown_model_is_not_found(mcp: Client) -> None:
    with pytest.raises(Exception, match="no model 'wan9'"):
        await mcp.read_resource("wan://models/wan9")


async def test_every_result_links_its_images_and_the_links_read_back(mcp: Client) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K", "n": 2})
    assert result.structured_content is not None
    links = [block for block in result.content if isinstance(block, ResourceLink)]
    paths = [Path(image["path"]) for image in result.structured_content["images"]]
    assert [str(link.uri) for link in links] == [f"wan://images/{path.name}" for path in paths]
    for link, path in zip(links, paths, strict=True):
        (content,) = (await mcp.read_resource(str(link.uri))).contents
        assert isinstance(content, BlobResourceContents)
        assert base64.b64decode(content.blob) == path.read_bytes()
        assert link.size == path.stat().st_size


async def test_a_task_resource_is_its_journal_entry(mcp: Client) -> None:
    submitted = await mcp.call_tool("submit_task", {"prompt": "a journaled fox"})
    assert submitted.structured_content is not None
    task_id = submitted.structured_content["task_id"]
    entry = json.loads(await read_text(mcp, f"wan://tasks/{task_id}"))
    assert (entry["task_id"], entry["prompt"], entry["status"]) == (task_id, "a journaled fox", "PENDING")
    with pytest.raises(Exception, match="no task"):
        await mcp.read_resource("wan://tasks/nope")


@pytest.mark.parametrize("name", ["..%2F..%2Fetc%2Fpasswd", "notes.txt", "journal.sqlite3", ".hidden.png"])
async def test_only_result_images_in_the_output_folder_can_be_read(name: str, mcp: Client) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - any refusal will do; what matters is nothing is returned
        await mcp.read_resource(f"wan://images/{name}")


async def test_an_image_someone_else_put_in_the_output_folder_is_not_served(
    mcp: Client, server_settings: Settings
) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "x", "size": "1K"})
    assert result.structured_content is not None
    (image,) = result.structured_content["images"]
    made = Path(image["path"])
    task_id = result.structured_content["task_id"]
    stamp, model = made.name.split("_")[:2]
    planted = [
        f"{stamp}_{model}_{task_id}_2.png",  # a second image of a real task, which made only one
        f"{stamp}_{model}_0385dc79-5ff8-4d82-bcb6-8a1d7c0e3f21_1.png",  # a task the journal does not know
        f"{stamp}_{model}_{task_id}_1.jpg",  # the real one's name with another extension
        "holiday.png",
    ]
    out = server_settings.output_dir
    for name in planted:
        (out / name).write_bytes(made.read_bytes())
        with pytest.raises(Exception, match="no result image"):
            await mcp.read_resource(f"wan://images/{name}")
    (content,) = (await mcp.read_resource(f"wan://images/{made.name}")).contents
    assert isinstance(content, BlobResourceContents) and base64.b64decode(content.blob) == made.read_bytes()
