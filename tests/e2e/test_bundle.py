"""The MCP Bundle: manifest.json matches what the server registers, the official CLI validates and packs
it (only the package and what installs it, whatever a working tree holds; the size the README states), and the
manifest's own command, substitutions filled in, starts a server from the packed bundle."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.support.helpers import TOOL_NAMES, server_env
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

ROOT = Path(__file__).parents[2]
MANIFEST: dict[str, Any] = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
MCPB = ["npx", "-y", "@anthropic-ai/mcpb@2.1.2"]
pytestmark = pytest.mark.slow
needs_npx = pytest.mark.skipif(shutil.which("npx") is None, reason="npx (Node.js) is not installed")


def test_the_manifest_lists_exactly_the_servers_tools_and_prompts(tmp_path: Path) -> None:
    async def registered() -> tuple[set[str], dict[str, list[str]]]:
        settings = Settings(journal_path=tmp_path / "j.sqlite3", harvest=False)
        async with Client(build_app(settings)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            prompts = {p.name: [a.name for a in p.arguments or []] for p in (await client.list_prompts()).prompts}
            return tools, prompts

    tools, prompts = anyio.run(registered)
    assert tools == TOOL_NAMES == {t["name"] for t in MANIFEST["tools"]}
    assert prompts == {p["name"]: p["arguments"] for p in MANIFEST["prompts"]}
    for prompt in MANIFEST["prompts"]:
        for argument in prompt["arguments"]:
            assert "${arguments." + argument + "}" in prompt["text"]


def test_user_config_reaches_the_server_through_mcp_config() -> None:
    config = MANIFEST["server"]["mcp_config"]
    assert MANIFEST["user_config"]["api_key"]["sensitive"] is True
    assert config["env"]["DASHSCOPE_API_KEY"] == "${user_config.api_key}"
    assert config["env"]["WAN_MCP_REGION"] == "${user_config.region}"
    assert config["env"]["WAN_MCP_WORKSPACE"] == "${user_config.workspace}"
    assert config["env"]["WAN_MCP_OUTPUT_DIR"] == "${user_config.output_dir}"
    assert config["args"][-2:] == ["--allowed-dirs", "${user_config.allowed_dirs}"]  # a multiple value: one arg each


LEFT_OVERS = (
    ".hypothesis/examples",
    ".pytest_cache/v/cache",
    ".ruff_cache/0.17.6",
    ".venv/bin",
    "build/lib",
    "dist",
    "wan_image_mcp.egg-info",
    "docs/screenshots",
    "server/wan_image_mcp/__pycache__",
)
"""What a working tree holds besides the package: test runs' and tools' caches, build output, a venv, screenshots."""
SHIPPED = {"manifest.json", "pyproject.toml", "README.md"}
"""Besides the package: the manifest, and what uv needs to install the project (pyproject.toml names the README)."""


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle packed by the official CLI from a copy of the project that a working tree's left-overs clutter."""
    if shutil.which("npx") is None:
        pytest.skip("npx (Node.js) is not installed")
    folder = tmp_path_factory.mktemp("bundle")
    source = folder / "wan-image-mcp"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "node_modules"))
    for left_over in LEFT_OVERS:
        (source / left_over).mkdir(parents=True, exist_ok=True)
        (source / left_over / "left-over.bin").write_bytes(bytes(1000))
    packed = folder / "wan-image-mcp.mcpb"
    done = subprocess.run([*MCPB, "pack", str(source), str(packed)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return packed


def test_the_bundle_holds_the_package_and_what_installs_it_and_nothing_else(packed: Path) -> None:
    with zipfile.ZipFile(packed) as archive:
        names = set(archive.namelist())
    assert SHIPPED | {"server/wan_image_mcp/mcp_server/app.py", "server/wan_image_mcp/cli.py"} <= names
    assert "server/wan_image_mcp/mcp_server/apps/ui/vendor/ext-apps-app-with-deps.js" in names  # the pages' SDK
    assert sorted(n for n in names - SHIPPED if not n.startswith("server/wan_image_mcp/")) == []
    assert sorted(n for n in names if "left-over" in n or "__pycache__" in n or n.endswith(".pyc")) == []


def test_the_readme_states_the_bundles_size(packed: Path) -> None:
    stated = re.search(r"the bundle is about (\d+) kB", README)
    assert stated is not None, "the README does not state the bundle's size"
    size = packed.stat().st_size / 1000
    assert abs(size - int(stated[1])) <= 0.1 * size, f"the bundle is {size:.0f} kB, the README says {stated[1]} kB"


@pytest.fixture(scope="module")
def bundle(packed: Path) -> Path:
    """The packed bundle, unpacked into a fresh folder (as a host installs it)."""
    unpacked = packed.parent / "installed"
    with zipfile.ZipFile(packed) as archive:
        archive.extractall(unpacked)
    return unpacked


@needs_npx
def test_the_official_cli_validates_the_manifest() -> None:
    done = subprocess.run([*MCPB, "validate", str(ROOT / "manifest.json")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Manifest schema validation passes!" in done.stdout


def fill(value: str, values: dict[str, str | list[str]]) -> list[str]:
    """One mcp_config string with its ${...} filled in; a multiple user_config value becomes several args."""
    for key, replacement in values.items():
        if value == "${" + key + "}" and isinstance(replacement, list):
            return replacement
        if isinstance(replacement, str):
            value = value.replace("${" + key + "}", replacement)
    return [value]


def test_the_manifest_command_starts_a_server_from_the_bundle(bundle: Path, tmp_path: Path) -> None:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(uv).exists():
        pytest.skip("uv is not installed")
    pictures = tmp_path / "Pictures"
    pictures.mkdir()
    values: dict[str, str | list[str]] = {
        "__dirname": str(bundle),
        "user_config.api_key": "sk-from-the-host",
        "user_config.region": "singapore",
        "user_config.workspace": "",  # an optional value left empty, filled with its default
        "user_config.output_dir": str(tmp_path / "out"),
        "user_config.allowed_dirs": [str(pictures)],
    }
    config = MANIFEST["server"]["mcp_config"]
    args = [filled for arg in config["args"] for filled in fill(arg, values)]
    env = server_env(None, None, None, WAN_MCP_DB=str(tmp_path / "journal.sqlite3"))
    env |= {key: fill(value, values)[0] for key, value in config["env"].items()}
    env |= {"UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"), "UV_PYTHON": sys.executable}
    command = uv if config["command"] == "uv" else config["command"]

    async def session() -> set[str]:
        with anyio.fail_after(240):  # the first run installs the bundle's dependencies
            async with Client(StdioServerParameters(command=command, args=args, env=env, cwd=tmp_path)) as client:
                return {t.name for t in (await client.list_tools()).tools}

    assert anyio.run(session) == TOOL_NAMES
