"""Fidelity: the official dashscope SDK, unchanged, runs Model Studio's Python examples against the emulator.

Each example runs in its own process with only ``DASHSCOPE_HTTP_BASE_URL`` and ``DASHSCOPE_API_KEY`` set, as a
user would run it; the emulator serves on a loopback port. The scripts are in tests/emulator/fidelity/.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image

from tests.support.helpers import EMULATOR_KEY, ImageFactory, server_env
from wan_image_mcp.emulator import EmulatorConfig
from wan_image_mcp.emulator.serve import RunningEmulator

SCRIPTS = Path(__file__).parent / "fidelity"


@pytest.fixture(scope="module")
def served() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({EMULATOR_KEY}))) as emulator:
        yield emulator


def run_example(served: RunningEmulator, script: str, cwd: Path, *args: str) -> dict[str, Any]:
    env = server_env(served.base_url, EMULATOR_KEY, None, HOME=str(cwd))
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def image_urls(output: dict[str, Any]) -> list[str]:
    return [item["image"] for choice in output["choices"] for item in choice["message"]["content"] if "image" in item]


def fetch_png(url: str) -> Image.Image:
    response = httpx2.get(url, timeout=10)
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG"
    return image


def test_sdk_sync_call_with_two_images(served: RunningEmulator, tmp_path: Path) -> None:
    result = run_example(served, "studio_sync_two_images.py", tmp_path)
    assert result["status_code"] == 200
    (url,) = image_urls(result["output"])
    image = fetch_png(url)
    assert result["usage"]["size"] == f"{image.width}*{image.height}"
    assert result["usage"]["image_count"] == 1


def test_sdk_async_call_then_wait_then_fetch(served: RunningEmulator, tmp_path: Path) -> None:
    result = run_example(served, "studio_async_wait.py", tmp_path)
    assert result["output"]["task_status"] == "SUCCEEDED"
    assert result["fetched"] == "SUCCEEDED"
    (url,) = image_urls(result["output"])
    fetch_png(url)


def test_sdk_image_synthesis_for_wan25_saves_its_result(served: RunningEmulator, tmp_path: Path) -> None:
    result = run_example(served, "studio_wan25_synthesis.py", tmp_path)
    assert result["status_code"] == 200
    (saved,) = result["saved"]
    with Image.open(tmp_path / saved) as image:
        # The last input URL says 1696x960 (its "tps-1696-960" name); output ≈1280² pixels at that aspect.
        assert (image.format, image.size) == ("PNG", (1696, 960))
    (item,) = result["output"]["results"]
    assert item["actual_prompt"].startswith(item["orig_prompt"])


def test_sdk_uploads_a_local_file_through_the_temporary_upload_flow(
    served: RunningEmulator, tmp_path: Path, make_image: ImageFactory
) -> None:
    photo = make_image("car.jpg", (1600, 1000))
    before = len(served.state.requests)
    result = run_example(served, "studio_local_file_upload.py", tmp_path, str(photo))
    requests = served.state.requests[before:]
    assert result["status_code"] == 200
    (url,) = image_urls(result["output"])
    assert fetch_png(url).size == (1296, 816)  # 1K at the uploaded photo's 1.6:1 aspect
    assert [(r.method, r.path) for r in requests] == [
        ("GET", "/api/v1/uploads"),
        ("POST", "/oss"),
        ("POST", "/api/v1/services/aigc/multimodal-generation/generation"),
    ]
    generation = requests[-1]
    assert generation.headers["x-dashscope-ossresourceresolve"] == "enable"
    ref = generation.body["input"]["messages"][0]["content"][1]["image"]
    assert ref.startswith("oss://dashscope-instant/") and ref.endswith("/car.jpg")


def test_sdk_streams_wan26_interleave_from_the_synchronous_endpoint(served: RunningEmulator, tmp_path: Path) -> None:
    # The SDK's stream=True is the X-DashScope-SSE header, with no parameters.stream in the body.
    before = len(served.state.requests)
    result = run_example(served, "studio_wan26_interleave_stream.py", tmp_path)
    (sent,) = served.state.requests[before:]
    assert sent.headers["x-dashscope-sse"] == "enable" and "stream" not in sent.body["parameters"]
    (event,) = result["events"]
    assert event["status_code"] == 200, event
    (choice,) = event["output"]["choices"]
    kinds = [item["type"] for item in choice["message"]["content"]]
    assert kinds == ["text", "image"] * 3
    urls = [item["image"] for item in choice["message"]["content"] if "image" in item]
    assert [fetch_png(url).size for url in urls] == [(1280, 1280)] * 3
