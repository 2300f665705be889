"""The service's HTTP client makes its connections (httpcore, the TLS context) on its first request, not when it
is built: a server that is only asked for its tools never pays for them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wan_image_mcp.dashscope.connections import DeferredTransport, http_client
from wan_image_mcp.emulator import EmulatorConfig
from wan_image_mcp.emulator.serve import RunningEmulator

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def served() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig()) as running:
        yield running


async def test_the_client_makes_its_transport_on_its_first_request_and_closes_it(served: RunningEmulator) -> None:
    client = http_client()
    transport = client._transport  # pyright: ignore[reportPrivateUsage]
    assert isinstance(transport, DeferredTransport)
    async with client:
        assert not transport.made
        answer = await client.get(f"{served.base_url}/tasks/unknown-task")
        assert answer.status_code in (400, 401, 404)
        assert transport.made
        assert (await client.get(f"{served.base_url}/tasks/unknown-task")).status_code == answer.status_code
    assert not transport.made  # closed with the client


async def test_proxies_from_the_environment_are_still_honoured_and_made_on_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    async with http_client() as client:
        mounts = list(client._mounts.values())  # pyright: ignore[reportPrivateUsage]
        assert mounts and all(isinstance(mount, DeferredTransport) and not mount.made for mount in mounts)
