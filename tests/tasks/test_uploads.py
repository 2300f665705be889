"""Upload once: local images over WAN_MCP_INLINE_MAX_BYTES travel through DashScope's temporary upload, and
the same bytes for the same model are not uploaded again while their oss:// URL lives."""

from __future__ import annotations

import contextlib
import io
import random
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from PIL import Image

from tests.support.helpers import text, until
from wan_image_mcp.emulator import EmulatorState, Fault, create_app
from wan_image_mcp.mcp_server.app import build_app
from wan_image_mcp.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def big_photo(tmp_path: Path) -> Path:
    """A 1.5 MB PNG: noise does not compress."""
    path = tmp_path / "big.png"
    Image.frombytes("RGB", (700, 700), random.Random(1).randbytes(700 * 700 * 3)).save(path, compress_level=1)
    assert path.stat().st_size > 1_000_000
    return path


def uploads(emulator: EmulatorState) -> int:
    return sum(1 for r in emulator.requests if r.method == "POST" and r.path == "/oss")


def sent_images(emulator: EmulatorState) -> list[str]:
    submit = [r for r in emulator.requests if r.path.endswith("/image-generation/generation")][-1]
    refs = [item["image"] for item in submit.body["input"]["messages"][0]["content"] if "image" in item]
    uploaded = any(ref.startswith("oss://") for ref in refs)
    assert submit.headers.get("x-dashscope-ossresourceresolve") == ("enable" if uploaded else None)
    return refs


async def test_a_large_image_is_uploaded_once(mcp: Client, emulator: EmulatorState, big_photo: Path) -> None:
    first = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(big_photo)], "size": "1K"})
    assert not first.is_error, text(first)
    (ref,) = sent_images(emulator)
    assert ref.startswith("oss://dashscope-instant/") and ref.endswith(".png")
    assert uploads(emulator) == 1
    emulator.requests.clear()
    again = await mcp.call_tool("edit_image", {"prompt": "again", "images": [str(big_photo)], "size": "1K"})
    assert not again.is_error, text(again)
    assert uploads(emulator) == 0 and sent_images(emulator) == [ref]  # nothing uploaded the second time


async def test_an_upload_is_bound_to_its_model(mcp: Client, emulator: EmulatorState, big_photo: Path) -> None:
    await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(big_photo)], "size": "1K"})
    other = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(big_photo)], "model": "wan2.6-image"})
    assert not other.is_error, text(other)
    assert uploads(emulator) == 2


async def test_a_large_conformed_image_is_uploaded_from_where_it_waited(
    mcp: Client, emulator: EmulatorState, tmp_path: Path
) -> None:
    noise = spooled_noise(tmp_path / "noise.png", seed=2)
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(tmp_path / "noise.png")], "size": "1K"})
    assert not result.is_error, text(result)
    (ref,) = sent_images(emulator)
    assert ref.startswith("oss://") and uploads(emulator) == 1
    upload = emulator.uploads[ref.removeprefix("oss://")]
    with Image.open(io.BytesIO(upload.data)) as sent:
        assert sent.mode == "RGB" and sent.tobytes() == noise.tobytes()


async def test_a_large_conformed_image_is_read_from_its_spool_off_the_event_loop(
    mcp: Client, emulator: EmulatorState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a spool is disk I/O: on the event loop it would stall every other call meanwhile."""
    from wan_image_mcp.core.images.references import Spool

    loop_thread = threading.current_thread()
    readers: list[threading.Thread] = []
    read = Spool.read

    def recorded(self: Spool) -> bytes:
        readers.append(threading.current_thread())
        return read(self)

    monkeypatch.setattr(Spool, "read", recorded)
    spooled_noise(tmp_path / "noise.png", seed=4)
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(tmp_path / "noise.png")], "size": "1K"})
    assert not result.is_error, text(result)
    assert uploads(emulator) == 1
    assert readers and loop_thread not in readers


async def test_small_images_stay_inline(mcp: Client, emulator: EmulatorState, tmp_path: Path) -> None:
    Image.new("RGB", (600, 400), "teal").save(tmp_path / "small.png")
    await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(tmp_path / "small.png")], "size": "1K"})
    (ref,) = sent_images(emulator)
    assert ref.startswith("data:image/png;base64,")
    assert uploads(emulator) == 0


REFUSALS = [
    ("AccessDenied", "Invalid according to Policy: Policy expired."),
    ("SignatureDoesNotMatch", "The request signature we calculated does not match."),
    ("AccessDenied", "Invalid according to Policy: Policy Condition failed."),
]


@pytest.mark.parametrize(("code", "message"), REFUSALS, ids=["expired", "signature", "condition"])
async def test_an_expired_or_rejected_policy_is_refreshed_once(
    mcp: Client, emulator: EmulatorState, big_photo: Path, code: str, message: str
) -> None:
    emulator.add_fault(Fault("error", target="upload", status=403, code=code, message=message))
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(big_photo)], "size": "1K"})
    assert not result.is_error, text(result)
    policies = sum(1 for r in emulator.requests if r.path == "/api/v1/uploads")
    assert (policies, uploads(emulator)) == (2, 2)


async def test_a_policy_refused_twice_is_an_error_and_nothing_is_submitted(
    mcp: Client, emulator: EmulatorState, big_photo: Path
) -> None:
    code, message = REFUSALS[1]
    emulator.add_fault(Fault("error", target="upload", status=403, code=code, message=message, count=2))
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(big_photo)], "size": "1K"})
    assert result.is_error
    assert code in text(result) and message in text(result)
    policies = sum(1 for r in emulator.requests if r.path == "/api/v1/uploads")
    assert (policies, uploads(emulator)) == (2, 2)
    assert not [r for r in emulator.requests if r.path.startswith("/api/v1/services/")]


async def test_an_upload_older_than_its_life_is_not_reused(
    mcp: Client, emulator: EmulatorState, big_photo: Path, server_settings: Settings
) -> None:
    await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(big_photo)], "size": "1K"})
    with closing(sqlite3.connect(server_settings.journal_path)) as db, db:
        db.execute("UPDATE uploads SET created_at = ?", (time.time() - 47.5 * 3600,))
    await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(big_photo)], "size": "1K"})
    assert uploads(emulator) == 2


async def test_a_file_sent_as_it_is_is_streamed_from_disk_byte_for_byte(
    mcp: Client, emulator: EmulatorState, big_photo: Path
) -> None:
    result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(big_photo)], "size": "1K"})
    assert not result.is_error, text(result)
    (ref,) = sent_images(emulator)
    assert emulator.uploads[ref.removeprefix("oss://")].data == big_photo.read_bytes()


class ChangesFileOnPolicy(httpx2.AsyncBaseTransport):
    """Passes requests to the emulator; rewrites a file when the upload policy is asked for (between the
    server's check of the file and its upload)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, path: Path) -> None:
        self.inner, self.path = inner, path

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/v1/uploads":
            Image.frombytes("RGB", (700, 700), random.Random(2).randbytes(700 * 700 * 3)).save(self.path, "PNG")
        return await self.inner.handle_async_request(request)


async def test_a_file_changed_while_it_is_sent_is_refused_and_nothing_is_submitted(
    emulator: EmulatorState, big_photo: Path, server_settings: Settings
) -> None:
    transport = ChangesFileOnPolicy(httpx2.ASGITransport(app=create_app(emulator)), big_photo)
    async with (
        httpx2.AsyncClient(transport=transport, base_url="http://emulator.test") as http,
        Client(build_app(server_settings, http)) as mcp,
    ):
        result = await mcp.call_tool("edit_image", {"prompt": "x", "images": [str(big_photo)], "size": "1K"})
    assert result.is_error
    assert "image 1" in text(result) and "changed on disk while it was being sent" in text(result)
    assert not [r for r in emulator.requests if r.path.endswith("/generation")]  # nothing paid for
    with closing(sqlite3.connect(server_settings.journal_path)) as db:
        assert db.execute("SELECT count(*) FROM uploads").fetchone() == (0,)  # nor remembered as uploaded


async def released(before: int) -> None:
    """Wait until the process holds no more spools than ``before``: a conform thread lets go of its last
    reference a moment after the call has answered (a leak holds them for good, and fails after 2 s)."""

    async def back() -> bool:
        return spooled_files() <= before

    await until(back, within=2, step=0.01)


def spooled_noise(path: Path, *, seed: int) -> Image.Image:
    """900 px of RGB noise saved at ``path`` with an alpha channel to flatten: conformed, ~2.4 MB, so kept in a
    spool until sent. Returns the RGB pixels the server should send."""
    noise = Image.frombytes("RGB", (900, 900), random.Random(seed).randbytes(900 * 900 * 3))
    noise.convert("RGBA").save(path)
    return noise


def spooled_files() -> int:
    """Descriptors this process holds on deleted files in the temporary directory: spools."""
    import os
    import tempfile

    held = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            target = os.readlink(f"/proc/self/fd/{fd}")
            held += target.startswith(tempfile.gettempdir()) and target.endswith("(deleted)")
    return held


@pytest.mark.parametrize("failure", ["refused", "upload failed"])
async def test_a_failed_call_lets_go_of_its_spooled_files_at_once(
    mcp: Client, emulator: EmulatorState, tmp_path: Path, failure: str
) -> None:
    """A failed call's images were held by its traceback's reference cycles, each spool a descriptor and up to
    the file limit on disk, until the garbage collector ran."""
    import gc

    images: list[str] = []
    for seed in (7, 8):
        spooled_noise(tmp_path / f"noise-{seed}.png", seed=seed)
        images.append(str(tmp_path / f"noise-{seed}.png"))
    if failure == "refused":
        Image.new("RGB", (100, 100)).save(tmp_path / "tiny.png")  # too small: refused once the others are spooled
        images.append(str(tmp_path / "tiny.png"))
    else:
        emulator.add_fault(Fault("error", target="upload", status=400, code="InvalidParameter", message="no"))
    gc.collect()
    before = spooled_files()
    gc.disable()
    try:
        result = await mcp.call_tool("edit_image", {"prompt": "x", "images": images, "size": "1K"})
        assert result.is_error
        await released(before)
    finally:
        gc.enable()


async def test_a_call_over_the_spend_limit_lets_go_of_its_spooled_files_at_once(
    http: httpx2.AsyncClient, server_settings: Settings, tmp_path: Path
) -> None:
    """Refused after its images were conformed: the tool error that says so must not hold them in a cycle of
    exceptions until the garbage collector runs."""
    import gc

    spooled_noise(tmp_path / "noise.png", seed=9)
    arguments = {"prompt": "x", "images": [str(tmp_path / "noise.png")], "size": "1K", "n": 2}
    async with Client(build_app(server_settings.model_copy(update={"max_images_per_day": 1}), http)) as mcp:
        gc.collect()
        before = spooled_files()
        gc.disable()
        try:
            result = await mcp.call_tool("edit_image", arguments)
            assert result.is_error and "WAN_MCP_MAX_IMAGES_PER_DAY is 1" in text(result)
            await released(before)
        finally:
            gc.enable()


async def test_calls_without_a_usable_key_let_go_of_their_spooled_files(
    http: httpx2.AsyncClient, server_settings: Settings, tmp_path: Path
) -> None:
    """The service kept one stored key error and raised it again on every call: each raise hung that call's
    frames, and with them its conformed images, on the stored error for good."""
    import gc

    before = spooled_files()
    async with Client(build_app(server_settings.model_copy(update={"api_key": None}), http)) as keyless:
        for seed in range(3):
            spooled_noise(tmp_path / f"noise-{seed}.png", seed=seed)
            result = await keyless.call_tool(
                "edit_image", {"prompt": "x", "images": [str(tmp_path / f"noise-{seed}.png")]}
            )
            assert result.is_error and "DASHSCOPE_API_KEY" in text(result)
        gc.collect()
        assert spooled_files() == before
