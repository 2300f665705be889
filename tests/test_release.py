"""What a registry and a package index read: server.json in the MCP Registry's format, the README's ``mcp-name``
line, and one version in every place that states it.

``REGISTRY`` is the part of the registry's server.json schema (2025-09-29, the URL ``$schema`` names) that this
server's file uses, written out here from reading that schema: the server's name, description and version, a
package's registry, identifier, pinned version and transport, and its environment variables. The registry checks
the whole schema when the server is published; no copy of it is kept in this repository."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import anyio
from jsonschema import Draft7Validator, FormatChecker, validate
from mcp import Client

from wan_image_mcp import __version__
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

ROOT = Path(__file__).parent.parent
SERVER: dict[str, Any] = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json"
_VARIABLE: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "isRequired": {"type": "boolean"},
        "isSecret": {"type": "boolean"},
        "format": {"enum": ["string", "number", "boolean", "filepath"]},
        "default": {"type": "string"},
        "value": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
REGISTRY: dict[str, Any] = {
    "type": "object",
    "required": ["name", "description", "version"],
    "properties": {
        "$schema": {"const": SCHEMA_URL},
        "name": {"type": "string", "pattern": "^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$", "minLength": 3, "maxLength": 200},
        "description": {"type": "string", "minLength": 1, "maxLength": 100},
        "version": {"type": "string", "maxLength": 255},
        "packages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["registryType", "identifier", "version", "transport"],
                "properties": {
                    "registryType": {"type": "string"},
                    "registryBaseUrl": {"type": "string", "format": "uri"},
                    "identifier": {"type": "string"},
                    "version": {"type": "string", "minLength": 1, "not": {"const": "latest"}},
                    "runtimeHint": {"type": "string"},
                    "transport": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"enum": ["stdio"]}},
                    },
                    "environmentVariables": {"type": "array", "items": _VARIABLE},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
PROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_server_json_keeps_to_the_registrys_schema() -> None:
    Draft7Validator.check_schema(REGISTRY)
    validate(SERVER, REGISTRY, cls=Draft7Validator, format_checker=FormatChecker())  # raises the error that matters
    assert re.fullmatch(r"\d+\.\d+\.\d+", SERVER["packages"][0]["version"])  # pinned: no range, no "latest"


def test_server_json_runs_this_pypi_package_over_stdio_with_its_key_a_secret() -> None:
    (package,) = SERVER["packages"]
    assert package["registryType"] == "pypi" and package["identifier"] == PROJECT["name"]
    assert package["transport"] == {"type": "stdio"}
    assert re.fullmatch(rf"io\.github\.[A-Za-z0-9-]+/{PROJECT['name']}", SERVER["name"])  # a GitHub owner's
    variables = {v["name"]: v for v in package["environmentVariables"]}
    assert variables["DASHSCOPE_API_KEY"]["isSecret"] is True and variables["DASHSCOPE_API_KEY"]["isRequired"]
    for name, variable in variables.items():
        secret = any(word in name for word in ("KEY", "TOKEN", "SECRET", "PASSWORD"))
        assert variable.get("isSecret", False) is secret, name
        assert f"| `{name}` |" in README, f"{name} is not in the README's settings table"


def test_the_readme_carries_the_mcp_name_the_registry_looks_for() -> None:
    assert re.findall(r"mcp-name: (\S+)", README) == [SERVER["name"]]


def test_one_version_in_pyproject_server_json_the_manifest_and_server_info(tmp_path: Path) -> None:
    async def server_info_version() -> str:
        settings = Settings(journal_path=tmp_path / "j.sqlite3", harvest=False)
        async with Client(build_app(settings)) as client:
            assert client.server_info is not None
            return client.server_info.version

    manifest = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))
    (package,) = SERVER["packages"]
    versions = {
        "pyproject.toml": PROJECT["version"],
        "server.json": SERVER["version"],
        "server.json's package": package["version"],
        "manifest.json": manifest["version"],
        "wan_image_mcp.__version__": __version__,
        "serverInfo": anyio.run(server_info_version),
    }
    assert set(versions.values()) == {PROJECT["version"]}, versions
