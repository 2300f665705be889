"""A cold agent's only window on the server: what an MCP client receives, printed, and nothing else.

    python bench/agent/window.py LAB list              the instructions, tools, prompts and resources
    python bench/agent/window.py LAB call TOOL 'JSON'  a tool's result: isError, text, structuredContent
    python bench/agent/window.py LAB read URI          a resource

``LAB`` is a folder made by ``lab.py``: a home with a user's photos, the emulator's URL, the journal and the output
folder. Each command starts the server over stdio (``python -m wan_image_mcp serve``, this interpreter) with that
home, as a host would, so a run keeps its tasks between calls. Images a result sends as content are saved under
``LAB/returned`` and their paths printed, for the agent to look at. Lines ``KEY=VALUE`` in ``LAB/env`` are added to
the server's environment (``$HOME`` stands for the lab's home).
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def _environment(lab: Path) -> dict[str, str]:
    home = lab / "home"
    env = dict(os.environ)
    env.update(
        {
            "HOME": str(home),
            "DASHSCOPE_API_KEY": "sk-emulator",
            "DASHSCOPE_HTTP_BASE_URL": (lab / "emulator.url").read_text().strip(),
            "WAN_MCP_OUTPUT_DIR": str(home / "wan-output"),
            "WAN_MCP_DB": str(lab / "journal.sqlite3"),
        }
    )
    extra = lab / "env"
    if extra.exists():
        for line in extra.read_text().splitlines():
            key, _, value = line.partition("=")
            if key:
                env[key] = value.replace("$HOME", str(home))
    return env


async def _list(session: ClientSession, instructions: str | None) -> None:
    print("# SERVER INSTRUCTIONS\n" + (instructions or "(none)"))
    for tool in (await session.list_tools()).tools:
        schema = json.dumps(tool.input_schema, ensure_ascii=False)
        print(f"\n# TOOL {tool.name} — {tool.title or ''}\n{tool.description}\ninputSchema: {schema}")
    for prompt in (await session.list_prompts()).prompts:
        print(f"\n# PROMPT {prompt.name}: {prompt.description} args={[a.name for a in prompt.arguments or []]}")
    for resource in (await session.list_resources()).resources:
        print(f"# RESOURCE {resource.uri}: {resource.description or resource.name}")
    for template in (await session.list_resource_templates()).resource_templates:
        print(f"# RESOURCE TEMPLATE {template.uri_template}: {template.description or template.name}")


async def _call(session: ClientSession, lab: Path, tool: str, arguments: dict[str, Any]) -> None:
    result = await session.call_tool(tool, arguments)
    print(f"isError: {result.is_error}")
    returned = lab / "returned"
    returned.mkdir(exist_ok=True)
    for index, block in enumerate(result.content):
        if block.type == "text":
            print(f"--- text\n{block.text}")
        elif block.type == "image":
            path = returned / f"{os.getpid()}-{index}.jpg"
            path.write_bytes(base64.b64decode(block.data))
            print(f"--- image content ({block.mime_type}) saved for you to look at: {path}")
        else:
            print(f"--- {block.type}: {block.model_dump_json(exclude_none=True)[:300]}")
    if result.structured_content is not None:
        print("--- structuredContent\n" + json.dumps(result.structured_content, ensure_ascii=False, indent=1))


async def main(argv: list[str]) -> None:
    lab, command, rest = Path(argv[0]), argv[1], argv[2:]
    server = StdioServerParameters(command=sys.executable, args=["-m", "wan_image_mcp", "serve"], env=_environment(lab))
    with (lab / "server-stderr.log").open("a") as errlog, anyio.fail_after(400):
        async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
            if command == "list":
                await _list(session, init.instructions)
            elif command == "call":
                await _call(session, lab, rest[0], json.loads(rest[1]) if len(rest) > 1 else {})
            elif command == "read":
                for content in (await session.read_resource(rest[0])).contents:
                    print(getattr(content, "text", None) or "(binary)")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
