"""The README and the pages it links (docs/) state what the code does: the model table is the one specs.py generates,
the Layout names every module, the tests named exist, every snippet starts the server."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.support.helpers import TOOL_NAMES, server_env
from wan_image_mcp.core.requests.catalog import model_table

README = Path(__file__).parent.parent / "README.md"
DOCS = README.parent / "docs"


def test_the_models_page_table_matches_the_specs() -> None:
    text = (DOCS / "models.md").read_text(encoding="utf-8")
    start, end = "<!-- models:start -->\n", "\n<!-- models:end -->"
    assert start in text and end in text, "docs/models.md lost its model table markers"
    table = text.split(start, 1)[1].split(end, 1)[0]
    assert table == model_table(), (
        "docs/models.md's model table is stale: python -m wan_image_mcp.core.requests.catalog --write docs/models.md"
    )


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    command = re.search(r"^\.venv/bin/python -m pytest.*$", ci, re.MULTILINE)
    assert "pip install --quiet -e '.[test]'" in ci and command is not None
    assert f".venv/bin/pip install -e '.[test]' && {command.group(0)}\n" in README.read_text(encoding="utf-8")


ONE_LINE = ["uvx", "wan-image-mcp"]
"""The form every snippet uses: the package from PyPI, once published. Until then the test starts the same entry
point installed here; .ci/wheel runs the built wheel through ``uvx --from``."""


def snippets() -> list[tuple[str, str, list[str], dict[str, str]]]:
    """(client, command, args, env) for every client snippet in the README."""
    text = README.read_text(encoding="utf-8")
    found: list[tuple[str, str, list[str], dict[str, str]]] = []
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        config = json.loads(block)
        for key, client in (("mcpServers", "Claude Desktop / Cursor"), ("servers", "VS Code")):
            for server in config.get(key, {}).values():
                found.append((client, server["command"], server.get("args", []), server.get("env", {})))
    for line in re.findall(r"^claude mcp add .*$", text, re.M):
        words = shlex.split(line)
        split = words.index("--")
        env = dict(words[i + 1].split("=", 1) for i, w in enumerate(words[:split]) if w == "--env")
        found.append(("Claude Code", words[split + 1], words[split + 2 :], env))
    return found


def test_the_readme_has_a_snippet_for_each_client() -> None:
    assert {client for client, *_ in snippets()} == {"Claude Desktop / Cursor", "VS Code", "Claude Code"}


@pytest.mark.parametrize(
    ("client", "command", "args", "env"), snippets(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_each_snippet_starts_a_server_that_lists_its_tools(
    client: str, command: str, args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    assert [command, *args[:1]] == ONE_LINE, f"{client}: the snippet should use the one-line form, uvx wan-image-mcp"
    installed = str(Path(sys.executable).parent / "wan-image-mcp")
    filled = {
        k: v.replace("${input:dashscope-key}", "sk-typed-in").replace("sk-...", "sk-typed-in") for k, v in env.items()
    }
    assert filled["DASHSCOPE_API_KEY"] == "sk-typed-in"
    environment = server_env(None, None, tmp_path, **filled)

    async def tools() -> set[str]:
        with anyio.fail_after(60):
            async with Client(StdioServerParameters(command=installed, args=args[1:], env=environment)) as session:
                return {t.name for t in (await session.list_tools()).tools}

    assert anyio.run(tools) == TOOL_NAMES


def test_every_test_the_readme_or_its_pages_name_exists() -> None:
    """The tables of holes and faults name the tests that keep them closed (`test_x.py::name`, then `::other` for
    more of the same file): each must be a test function of that file, so a renamed test cannot leave the README or
    a page of docs/ pointing at nothing."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in [README, *sorted(DOCS.glob("*.md"))])
    missing: list[str] = []
    named = 0
    for cell in re.findall(r"`test_\w+\.py::[^|]*", text):
        file = ""
        for module, name in re.findall(r"`(?:(test_\w+\.py))?::(\w+)", cell):
            file = module or file
            source = next(Path(__file__).parent.rglob(file)).read_text(encoding="utf-8")
            named += 1
            if not re.search(rf"^(?:async )?def {name}\(", source, re.MULTILINE):
                missing.append(f"{file}::{name}")
    assert named > 50, "the tables of tests were not found"
    assert not missing, f"the README or docs/ name tests that do not exist: {missing}"


PACKAGE = README.parent / "server" / "wan_image_mcp"


def layout() -> dict[str, str]:
    """The Layout tree of the package (docs/layout.md): each entry's path (``core/requests/``, ``core/specs.py``) and
    its line. An entry is a line whose first word ends in ``.py`` or ``/``; two spaces of indent per folder."""
    text = (DOCS / "layout.md").read_text(encoding="utf-8").split("# Layout\n", 1)[1]
    block = text.split("```\n", 2)[1]
    entries: dict[str, str] = {}
    parents: list[str] = []
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if match is None or not match.group(2).endswith((".py", "/")):
            continue
        depth, name = len(match.group(1)) // 2, match.group(2)
        if depth == 0:
            parents = [name] if name == "server/wan_image_mcp/" else []
            continue
        if not parents or depth > len(parents):
            continue  # another tree (tests/, bench/), or a continuation line
        parents = parents[:depth]
        path = "".join(parents[1:]) + name
        entries[path] = line
        if name.endswith("/"):
            parents.append(name)
    return entries


def test_the_layout_page_names_every_module_and_folder_of_the_package_and_nothing_else() -> None:
    named = set(layout())
    present = {
        str(path.relative_to(PACKAGE)) + ("/" if path.is_dir() else "")
        for path in PACKAGE.rglob("*")
        if (path.suffix == ".py" or path.is_dir()) and "__pycache__" not in path.parts
    }
    assert len(named) > 80, "docs/layout.md's Layout tree was not found"
    assert sorted(present - named) == [], "in the package, not in docs/layout.md"
    assert sorted(named - present) == [], "in docs/layout.md, not in the package"


def test_no_folder_of_the_package_holds_more_than_twelve_modules() -> None:
    crowded = {
        str(folder.relative_to(PACKAGE.parent)): count
        for folder in [PACKAGE, *(p for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__")]
        if (count := len([m for m in folder.glob("*.py") if m.name != "__init__.py"])) > 12
    }
    assert crowded == {}
