"""Settings come from the SDK's variable names, fail early with the variable's name, and hide the key."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx2
import pytest
from mcp import Client

from tests.support.helpers import text
from wan_image_mcp.core.errors import ConfigurationError
from wan_image_mcp.emulator import EmulatorState
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import REGIONS, SETTINGS_MARKERS, Settings, declared_variables, settings_table


def test_singapore_is_the_default_region() -> None:
    settings = Settings.from_env({})
    assert (settings.region, settings.base_url) == ("singapore", "https://dashscope-intl.aliyuncs.com/api/v1")


@pytest.mark.parametrize(
    ("region", "expected"),
    [("beijing", "beijing"), ("cn-beijing", "beijing"), ("US-EAST-1", "virginia"), ("hk", "hongkong")],
)
def test_regions_and_their_aliases_choose_the_host(region: str, expected: str) -> None:
    settings = Settings.from_env({"WAN_MCP_REGION": region})
    assert (settings.region, settings.base_url) == (expected, REGIONS[expected])


def test_the_sdk_base_url_variable_wins_over_the_region() -> None:
    settings = Settings.from_env({"WAN_MCP_REGION": "beijing", "DASHSCOPE_HTTP_BASE_URL": "http://127.0.0.1:9/api/v1/"})
    assert settings.base_url == "http://127.0.0.1:9/api/v1"


def test_an_unknown_region_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ConfigurationError, match=r"WAN_MCP_REGION='mars'.*singapore, beijing"):
        Settings.from_env({"WAN_MCP_REGION": "mars"})


@pytest.mark.parametrize(
    "url",
    [
        "dashscope.aliyuncs.com",
        "http://127.0.0.1:9/api\udcff/v1",  # a byte that is not UTF-8: every request (and the journal) would fail
    ],
)
def test_a_base_url_must_be_http(url: str) -> None:
    with pytest.raises(ConfigurationError, match="DASHSCOPE_HTTP_BASE_URL must be an http"):
        Settings.from_env({"DASHSCOPE_HTTP_BASE_URL": url})


def test_a_missing_key_is_a_clear_error_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="DASHSCOPE_API_KEY is not set"):
        Settings.from_env({}).require_api_key()


def test_the_key_is_never_in_a_repr_or_str() -> None:
    secret = "sk-live-0123456789abcdef"
    settings = Settings.from_env({"DASHSCOPE_API_KEY": secret})
    assert settings.require_api_key() == secret
    assert secret not in repr(settings) and secret not in str(settings)


def test_the_log_level_and_http_settings_are_read_with_the_others() -> None:
    settings = Settings.from_env(
        {
            "WAN_MCP_LOG_LEVEL": "info",
            "WAN_MCP_HTTP_TOKEN": " s3cret ",
            "WAN_MCP_HTTP_ALLOWED_HOSTS": "a.example, b:8443,",
        }
    )
    assert settings.log_level == "INFO"
    assert settings.http_token is not None and settings.http_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.http_allowed_hosts == ("a.example", "b:8443")
    assert Settings.from_env({"WAN_MCP_LOG_LEVEL": "LOUD"}).log_level == "WARNING"


@pytest.mark.parametrize(
    ("region", "name", "code"),
    [
        ("cn-beijing", "beijing", "cn-beijing"),
        ("ap-southeast-1", "singapore", "ap-southeast-1"),
        ("cn-hongkong", "hongkong", "cn-hongkong"),
        ("us-east-1", "virginia", "us-east-1"),
        ("eu-central-1", "frankfurt", "eu-central-1"),
        ("ap-northeast-1", "tokyo", "ap-northeast-1"),
    ],
)
def test_every_region_the_sdk_knows_reaches_its_workspace_host(region: str, name: str, code: str) -> None:
    settings = Settings.from_env({"WAN_MCP_REGION": region, "WAN_MCP_WORKSPACE": "ws-Ab12"})
    assert (settings.region, settings.workspace) == (name, "ws-Ab12")
    assert settings.base_url == f"https://ws-ab12.{code}.maas.aliyuncs.com/api/v1"


@pytest.mark.parametrize("region", ["frankfurt", "eu-central-1", "tokyo", "ap-northeast-1"])
def test_a_region_with_only_workspace_hosts_asks_for_the_workspace(region: str) -> None:
    with pytest.raises(
        ConfigurationError, match=rf"WAN_MCP_REGION='{region}' has only workspace-dedicated hosts.*WAN_MCP_WORKSPACE"
    ):
        Settings.from_env({"WAN_MCP_REGION": region})


@pytest.mark.parametrize("workspace", ["evil.example.com/x", "ws_1", "-ws", "a" * 64, "ws 1"])
def test_a_workspace_id_that_is_no_host_label_is_refused(workspace: str) -> None:
    with pytest.raises(ConfigurationError, match="WAN_MCP_WORKSPACE must be a workspace id"):
        Settings.from_env({"WAN_MCP_WORKSPACE": workspace})


def test_the_sdk_base_url_still_wins_over_a_workspace_whose_header_is_kept() -> None:
    env = {"WAN_MCP_WORKSPACE": "ws-1", "DASHSCOPE_HTTP_BASE_URL": "http://127.0.0.1:9/api/v1"}
    settings = Settings.from_env(env)
    assert (settings.base_url, settings.workspace) == ("http://127.0.0.1:9/api/v1", "ws-1")


@pytest.mark.anyio
async def test_the_workspace_header_reaches_dashscope_and_a_foreign_workspace_is_explained(
    http: httpx2.AsyncClient, emulator: EmulatorState, server_settings: Settings
) -> None:
    emulator.config.workspaces = frozenset({"ws-team"})
    for workspace, refused in (("ws-team", False), ("ws-other", True)):
        settings = server_settings.model_copy(update={"workspace": workspace})
        async with Client(build_app(settings, http)) as client:
            result = await client.call_tool("submit_task", {"prompt": "a red kite", "size": "1K"})
        assert result.is_error is refused, text(result)
        assert emulator.requests[-1].headers.get("x-dashscope-workspace") == workspace
        if refused:
            assert "Workspace.AccessDenied" in text(result) and "Check WAN_MCP_WORKSPACE" in text(result)


ROOT = Path(__file__).parent.parent
TEST_SWITCHES = frozenset({"WAN_MCP_LIVE_TESTS", "WAN_MCP_HYPOTHESIS_EXAMPLES"})
"""Variables the tests read (in READERS), not the server."""
READERS = ("conftest.py", "dashscope/test_hostile.py")


def test_the_readme_settings_table_is_the_one_the_declaration_generates() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = SETTINGS_MARKERS
    assert start in text and end in text, "README lost its settings table markers"
    assert text.split(start, 1)[1].split(end, 1)[0] == settings_table(), (
        "README settings table is stale: python -m wan_image_mcp.settings --write README.md"
    )


def test_every_wan_mcp_variable_the_docs_or_the_manifest_name_is_a_declared_setting() -> None:
    manifest = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = set(re.findall(r"WAN_MCP_[A-Z_]+", "\n".join(p.read_text(encoding="utf-8") for p in docs)))
    named |= set(re.findall(r"WAN_MCP_[A-Z_]+", json.dumps(manifest)))
    assert "WAN_MCP_REGION" in named and "WAN_MCP_DB" in named
    assert named - TEST_SWITCHES <= declared_variables(), named - TEST_SWITCHES - declared_variables()
    readers = " ".join((ROOT / "tests" / name).read_text(encoding="utf-8") for name in READERS)
    assert all(switch in readers for switch in TEST_SWITCHES)


def test_every_variable_the_code_declares_has_a_row_of_the_readmes_settings_table() -> None:
    start, end = SETTINGS_MARKERS
    table = (ROOT / "README.md").read_text(encoding="utf-8").split(start, 1)[1].split(end, 1)[0]
    first_cells = {cell for row in table.splitlines() for cell in re.findall(r"`([A-Z_]+)`", row.split(" | ", 1)[0])}
    assert len(declared_variables()) > 20
    assert sorted(declared_variables() - first_cells) == []


def test_each_default_is_the_declared_one_whether_read_from_an_empty_environment_or_built_from_keywords() -> None:
    assert Settings.from_env({}).model_dump() == Settings().model_dump()
    assert Settings().poll_interval == Settings.default("poll_interval")


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"WAN_MCP_MAX_IMAGES_PER_CALL": "0"},
            "WAN_MCP_MAX_IMAGES_PER_CALL='0' must be a whole number of images, at least 1",
        ),
        (
            {"WAN_MCP_MAX_IMAGES_PER_CALL": "two"},
            "WAN_MCP_MAX_IMAGES_PER_CALL='two' must be a whole number of images, at least 1",
        ),
        (
            {"WAN_MCP_MAX_IMAGES_PER_DAY": "-3"},
            "WAN_MCP_MAX_IMAGES_PER_DAY='-3' must be a whole number of images, at least 1",
        ),
        (
            {"WAN_MCP_CONFIRM_ABOVE_IMAGES": "1.5"},
            "WAN_MCP_CONFIRM_ABOVE_IMAGES='1.5' must be a whole number of images, at least 0",
        ),
        ({"WAN_MCP_INLINE_MAX_BYTES": "0"}, "WAN_MCP_INLINE_MAX_BYTES='0' must be a whole number of bytes, at least 1"),
        ({"WAN_MCP_POLL_INTERVAL": "soon"}, "WAN_MCP_POLL_INTERVAL='soon' is not a number of seconds"),
        ({"WAN_MCP_POLL_INTERVAL": "-1"}, "WAN_MCP_POLL_INTERVAL must not be negative"),
        ({"WAN_MCP_POLL_INTERVAL_MAX": " -0.5 "}, "WAN_MCP_POLL_INTERVAL_MAX must not be negative"),
        (
            {"WAN_MCP_DOWNLOAD_URL_SECONDS": "an hour"},
            "WAN_MCP_DOWNLOAD_URL_SECONDS='an hour' is not a number of seconds",
        ),
        (
            {"WAN_MCP_DOWNLOAD_URL_SECONDS": "604801"},
            "WAN_MCP_DOWNLOAD_URL_SECONDS must be more than 0 and at most 604800 (7 days)",
        ),
        (
            {"DASHSCOPE_HTTP_BASE_URL": "ftp://example.com"},
            "DASHSCOPE_HTTP_BASE_URL must be an http(s) URL, got 'ftp://example.com'",
        ),
        (
            {"WAN_MCP_OUTPUT_URL": "s3://x"},
            "WAN_MCP_OUTPUT_URL must be s3://bucket or s3://bucket/prefix, got 's3://x'",
        ),
        (
            {"WAN_MCP_AUTH_ISSUER": "https://login.example", "WAN_MCP_PUBLIC_URL": "ftp://mcp.example"},
            "WAN_MCP_PUBLIC_URL must be an https URL (http only on a loopback host), got 'ftp://mcp.example'",
        ),
    ],
)
def test_a_wrong_value_is_refused_in_one_sentence_naming_its_variable_and_the_limit(
    env: dict[str, str], said: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == said


def test_values_are_read_as_a_person_writes_them_in_an_environment() -> None:
    settings = Settings.from_env(
        {
            "WAN_MCP_MAX_IMAGES_PER_CALL": " 6 ",
            "WAN_MCP_PREVIEWS": "off",
            "WAN_MCP_HARVEST": "yes please",  # anything but 0/false/no/off is on, as before
            "WAN_MCP_POLL_INTERVAL": "7",  # above the default longest wait, which follows it
            "WAN_MCP_ALLOWED_DIRS": f"/srv/in{os.pathsep}pictures{os.pathsep} ",
            "WAN_MCP_OUTPUT_DIR": "results",
            "WAN_MCP_DB": " ",
            "WAN_MCP_REGION": " CN-Beijing ",
            "DASHSCOPE_API_KEY": "",
        }
    )
    assert (settings.max_images_per_call, settings.previews, settings.harvest) == (6, False, True)
    assert (settings.poll_interval, settings.poll_interval_max) == (7.0, 7.0)
    assert settings.allowed_dirs == (Path("/srv/in"), Path.home() / "pictures")
    assert settings.output_dir == Path.home() / "results"
    assert (settings.journal_path, settings.journal_url) == (Settings.default("journal_path"), None)
    assert (settings.region, settings.base_url, settings.api_key) == ("beijing", REGIONS["beijing"], None)


def test_a_postgresql_journal_url_is_kept_apart_from_the_sqlite_path() -> None:
    settings = Settings.from_env({"WAN_MCP_DB": "postgresql://wan@db.internal/wan"})
    assert settings.journal_url == "postgresql://wan@db.internal/wan"
    assert settings.journal_path == Settings.default("journal_path")
    assert "db.internal" not in repr(settings)


def test_every_wrong_value_is_named_at_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"WAN_MCP_MAX_IMAGES_PER_CALL": "0", "WAN_MCP_POLL_INTERVAL": "-1"})
    assert str(caught.value) == (
        "WAN_MCP_POLL_INTERVAL must not be negative; "
        "WAN_MCP_MAX_IMAGES_PER_CALL='0' must be a whole number of images, at least 1"
    )
