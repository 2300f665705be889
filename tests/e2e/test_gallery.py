"""The gallery: every saved result from the journal on one static page, newest first, rendered in headless
Chromium with every image loading. The rendering tests skip only where Chromium cannot be installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client
from PIL import Image

from tests.support.helpers import ImageFactory, server_env
from wan_image_mcp.core.journal import Journal
from wan_image_mcp.gallery import write_gallery
from wan_image_mcp.settings import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")


@pytest.fixture
async def gallery(mcp: Client, make_image: ImageFactory, server_settings: Settings) -> Path:
    car = make_image("car.png", (900, 600))
    first = await mcp.call_tool(
        "edit_image", {"prompt": "paint the car red", "images": [str(car)], "size": "1K", "seed": 3}
    )
    second = await mcp.call_tool("edit_image", {"prompt": "<script>alert(1)</script> & a set", "n": 2, "size": "1K"})
    assert not first.is_error and not second.is_error
    journal = Journal(server_settings.journal_path)
    try:
        return write_gallery(journal, server_settings.output_dir)
    finally:
        journal.close()


@pytest.mark.anyio
async def test_the_page_shows_every_result_newest_first_and_escapes_prompts(gallery: Path) -> None:
    page = gallery.read_text(encoding="utf-8")
    assert "3 image(s) from 2 task(s), newest first" in page
    assert page.index("&lt;script&gt;alert(1)&lt;/script&gt; &amp; a set") < page.index("paint the car red")
    assert "<script>alert(1)</script>" not in page
    assert "&quot;seed&quot;: 3" in page and "wan2.7-image-pro" in page
    assert page.count('alt="result"') == 3 and page.count('alt="input"') == 1
    assert all((gallery.parent / src).is_file() for src in re.findall(r'src="(\.thumbs/[^"]+)"', page))


def render(page: Path, profile: Path) -> str:
    """The page's DOM after load, as headless Chromium sees it."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@needs_chromium
@pytest.mark.anyio
async def test_chromium_renders_it_with_every_image_loaded(gallery: Path, tmp_path: Path) -> None:
    dom = render(gallery, tmp_path / "profile")
    match = re.search(r'<body data-images="(\d+)" data-broken="(\d+)"', dom)
    assert match, dom[:500]
    assert (int(match[1]), int(match[2])) == (4, 0)  # 3 results + 1 input, all loaded


@needs_chromium
@pytest.mark.anyio
async def test_a_moved_image_is_reported_on_the_page(gallery: Path, tmp_path: Path) -> None:
    for thumb in (gallery.parent / ".thumbs").glob("*.jpg"):
        thumb.unlink()  # as if someone cleaned the folder after the page was written
        break
    dom = render(gallery, tmp_path / "profile")
    assert 'data-broken="1"' in dom
    assert "1 image(s) could not be shown: moved or deleted since they were saved." in dom


def test_the_cli_writes_the_page_into_the_output_folder(tmp_path: Path) -> None:
    env = server_env(None, None, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "wan_image_mcp", "gallery"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    page = Path(done.stdout.strip())
    assert page == tmp_path / "out" / "gallery.html"
    assert "No saved images yet." in page.read_text(encoding="utf-8")


@pytest.mark.anyio
async def test_an_input_thumbnail_shows_the_image_as_it_was_sent(
    mcp: Client, make_image: ImageFactory, server_settings: Settings
) -> None:
    logo = make_image("logo.png", (600, 400), mode="RGBA", colour=(0, 0, 0, 0))  # transparent black
    result = await mcp.call_tool("edit_image", {"prompt": "put the logo on a mug", "images": [str(logo)], "size": "1K"})
    assert not result.is_error
    journal = Journal(server_settings.journal_path)
    try:
        page = write_gallery(journal, server_settings.output_dir)
    finally:
        journal.close()
    (thumb,) = re.findall(r'<img src="(\.thumbs/[^"]+)" alt="input"', page.read_text(encoding="utf-8"))
    with Image.open(page.parent / thumb) as shown:
        pixel = shown.convert("RGB").getpixel((shown.width // 2, shown.height // 2))
    assert isinstance(pixel, tuple) and min(pixel) >= 250  # flattened onto white, as sent; it was black


def test_a_page_that_cannot_be_put_in_place_leaves_no_temp_file_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "gallery.html").mkdir(parents=True)  # the rename onto it fails, as on a full or read-only disk
    journal = Journal(tmp_path / "journal.db")
    try:
        with pytest.raises(IsADirectoryError):
            write_gallery(journal, out)
    finally:
        journal.close()
    assert [path.name for path in out.iterdir()] == ["gallery.html"]


@pytest.mark.anyio
async def test_the_page_and_its_thumbnails_are_on_disk_before_they_take_their_names(
    mcp: Client, make_image: ImageFactory, server_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    car = make_image("car.png", (900, 600))
    assert not (await mcp.call_tool("edit_image", {"prompt": "paint it", "images": [str(car)], "size": "1K"})).is_error
    synced: list[str] = []
    fsync = os.fsync

    def recorded(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recorded)
    journal = Journal(server_settings.journal_path)
    try:
        page = write_gallery(journal, server_settings.output_dir)
    finally:
        journal.close()
    thumbs = sorted((page.parent / ".thumbs").iterdir())
    assert len(thumbs) == 2  # the result's and the input's
    written = [Path(name).name for name in synced]
    assert any(name.startswith(".gallery.html.") and name.endswith(".part") for name in written), written
    for thumb in thumbs:
        assert any(name.startswith(f".{thumb.name}.") and name.endswith(".part") for name in written), written
