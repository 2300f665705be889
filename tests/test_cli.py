"""The command line: `serve` and the garbage collector at start; plain help texts and `--version`."""

from __future__ import annotations

import gc
from collections.abc import Generator
from importlib import metadata

import pytest

from wan_image_mcp.cli import main
from wan_image_mcp.mcp_server.app import WanServer


@pytest.fixture
def unfrozen() -> Generator[None]:
    """The test process as it was: ``serve`` freezes what exists when it starts serving, here the whole session."""
    yield
    gc.unfreeze()
    gc.enable()


def test_a_serve_that_stops_at_start_leaves_the_garbage_collector_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], unfrozen: None
) -> None:
    monkeypatch.setenv("WAN_MCP_REGION", "mars")
    assert gc.isenabled()
    assert main(["serve"]) == 2
    assert "WAN_MCP_REGION='mars' is not a known region" in capsys.readouterr().err
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_serve_serves_with_the_collector_on_and_what_start_up_built_set_aside(
    monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    seen: list[tuple[bool, int]] = []

    def run(server: WanServer) -> None:  # in place of serving stdio, which the test process cannot give
        seen.append((gc.isenabled(), gc.get_freeze_count()))

    monkeypatch.setattr(WanServer, "run", run)
    assert main(["serve"]) == 0
    ((enabled, frozen),) = seen
    assert enabled and frozen > 10_000  # the modules, the settings, the tools: tens of thousands of objects
    assert gc.isenabled()


COMMANDS = ("serve", "gallery", "demo", "emulator")


def help_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def options_without_help(text: str) -> list[str]:
    """The options a ``--help`` lists with no text beside or under them: argparse puts an option's help on its
    line, or on the next one, indented, when the option's own words are long."""
    lines = text.split("options:\n", 1)[1].splitlines()
    bare: list[str] = []
    for index, line in enumerate(lines):
        if not line.startswith("  -"):
            continue
        beside = " " in line.strip() and "  " in line.strip()
        under = index + 1 < len(lines) and lines[index + 1].startswith(" " * 8)
        if not (beside or under):
            bare.append(line.strip())
    return bare


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_each_help_is_plain_words_with_a_text_for_every_option(
    command: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of([] if command is None else [command], capsys)
    assert "``" not in text and ":class:" not in text  # no reStructuredText markup from a docstring
    assert text.count("  -") >= 2  # --help and at least one option of the command's own
    assert options_without_help(text) == []
    if command is not None:
        assert text.split("\n\n")[1].strip().endswith(".")  # a description under the usage line


def test_the_top_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of([], capsys)
    for command in COMMANDS:
        assert f"\n    {command} " in text


def test_version_prints_the_packages_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"wan-image-mcp {metadata.version('wan-image-mcp')}\n"
