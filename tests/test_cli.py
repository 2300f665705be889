"""``serve`` starts with the cyclic garbage collector off and serves with it on, whatever happens at start."""

from __future__ import annotations

import gc
from collections.abc import Generator

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
