"""Image references are read by content, fixed where possible and refused with a clear problem otherwise."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import random
import struct
import threading
import zlib
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult
from PIL import GifImagePlugin, Image, PngImagePlugin

from tests.support.helpers import ImageFactory, text, until
from wan_image_mcp.core.errors import InputChanged, InvalidRequest
from wan_image_mcp.core.images import decoding, inputs
from wan_image_mcp.core.images.background import Background
from wan_image_mcp.core.images.decoding import EXIF_ORIENTATION
from wan_image_mcp.core.images.inputs import prepare_image
from wan_image_mcp.core.images.references import PreparedImage, RefKind, decode_data_url, local_path
from wan_image_mcp.core.images.runtime import imaging
from wan_image_mcp.core.images.streams import Bytes
from wan_image_mcp.core.specs import SPECS
from wan_image_mcp.emulator import EmulatorState

LIMITS = SPECS["wan2.7-image-pro"].image


def sent_image(value: str) -> Image.Image:
    image = Image.open(io.BytesIO(decode_data_url(value)))
    image.load()
    return image


def test_png_with_alpha_is_flattened_onto_white(make_image: ImageFactory, tmp_path: Path) -> None:
    path = make_image("logo.png", (400, 300), mode="RGBA", colour=(255, 0, 0, 0))
    prepared = prepare_image(str(path), 1, LIMITS, tmp_path)
    image = sent_image(prepared.value)
    assert "A" not in image.getbands()
    assert image.getpixel((10, 10)) == (255, 255, 255)
    assert prepared.adjustments == ("image 1: alpha channel flattened onto white",)
    assert prepared.value.startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("chosen", "rgb", "named"),
    [("black", (0, 0, 0), "black"), ("#ff0000", (255, 0, 0), "#FF0000"), ("White", (255, 255, 255), "white")],
)
@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_flattened_onto_the_chosen_background(
    make_image: ImageFactory, tmp_path: Path, chosen: str, rgb: tuple[int, int, int], named: str, mode: str
) -> None:
    """A colour image, a grey one (LA: onto a colour it becomes RGB) and a palette one with a transparent entry."""
    path = tmp_path / "logo.png"
    logo = Image.new("RGBA", (400, 300), (250, 250, 0, 0))
    logo.paste((0, 90, 200, 255), (100, 100, 300, 200))  # an opaque square on a transparent field
    if mode == "P":
        palette = logo.convert("RGB").quantize(2)
        palette.save(path, transparency=palette.getpixel((0, 0)))  # the field's palette entry
    else:
        (logo.convert("LA") if mode == "LA" else logo).save(path)
    background = Background.parse(chosen)
    assert background is not None
    prepared = prepare_image(str(path), 1, LIMITS, tmp_path, background=background)
    image = sent_image(prepared.value).convert("RGB")
    assert image.getpixel((10, 10)) == rgb  # where it was transparent
    assert image.getpixel((200, 150)) != rgb  # the square is kept
    assert prepared.adjustments == (f"image 1: alpha channel flattened onto {named}",)


def test_an_opaque_image_is_sent_as_it_is_whatever_the_background(make_image: ImageFactory, tmp_path: Path) -> None:
    path = make_image("photo.png", (400, 300))
    prepared = prepare_image(str(path), 1, LIMITS, tmp_path, background=Background("black", (0, 0, 0)))
    assert prepared.adjustments == () and prepared.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "PPM", "TGA"])
def test_formats_the_api_cannot_read_are_converted(fmt: str, make_image: ImageFactory, tmp_path: Path) -> None:
    path = make_image(f"in.{fmt.lower()}", (320, 320), fmt=fmt)
    prepared = prepare_image(str(path), 2, LIMITS, tmp_path)
    assert prepared.format == "PNG"
    assert sent_image(prepared.value).size == (320, 320)
    assert any(f"{fmt} converted" in note and note.startswith("image 2:") for note in prepared.adjustments)


def test_content_decides_the_format_not_the_extension(make_image: ImageFactory, tmp_path: Path) -> None:
    path = make_image("photo.png", (300, 300), fmt="JPEG")
    prepared = prepare_image(str(path), 1, LIMITS, tmp_path)
    assert prepared.format == "JPEG"
    assert prepared.value.startswith("data:image/jpeg;base64,")
    assert prepared.adjustments == ()
    assert decode_data_url(prepared.value) == path.read_bytes()  # untouched bytes


def test_exif_orientation_is_applied_and_boxes_live_in_the_shown_orientation(
    make_image: ImageFactory, tmp_path: Path
) -> None:
    path = make_image("portrait.jpg", (600, 400), exif_orientation=6)  # stored landscape, shown rotated
    prepared = prepare_image(str(path), 1, LIMITS, tmp_path)
    assert prepared.original_size == (400, 600)
    assert sent_image(prepared.value).size == (400, 600)
    assert "EXIF orientation 6 applied" in prepared.adjustments[0]


def test_data_url_is_decoded_and_checked(make_image: ImageFactory, tmp_path: Path) -> None:
    raw = make_image("small.webp", (300, 260)).read_bytes()
    ref = "data:image/png;base64," + base64.b64encode(raw).decode()  # mislabelled MIME type
    prepared = prepare_image(ref, 1, LIMITS, tmp_path)
    assert prepared.kind is RefKind.DATA
    assert prepared.value.startswith("data:image/webp;base64,")  # relabelled by content
    assert prepared.source.startswith("data:image/png;base64,…")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("data:image/png;base64,@@@@", "invalid base64"),
        ("data:image/png,rawtext", "not base64-encoded"),
        ("data:nonsense", "malformed data URL"),
        ("data:image/png;base64," + base64.b64encode(b"hello").decode(), "not an image"),
    ],
)
def test_broken_data_urls_are_refused(ref: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=message):
        prepare_image(ref, 3, LIMITS, tmp_path)


def test_local_path_forms_resolve_like_the_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert local_path("rel/a.png", tmp_path) == tmp_path / "rel/a.png"
    assert local_path("~/a.png", Path("/elsewhere")) == tmp_path / "a.png"
    assert local_path("file:///abs/a%20b.png", tmp_path) == Path("/abs/a b.png")
    assert local_path("file://./rel/a.png", tmp_path) == tmp_path / "rel/a.png"


@pytest.mark.parametrize("form", ["absolute", "relative", "file-url", "tilde"])
def test_every_local_form_reads_the_same_file(
    form: str, make_image: ImageFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_image("car.png", (500, 400))
    monkeypatch.setenv("HOME", str(tmp_path))
    ref = {"absolute": str(path), "relative": "car.png", "file-url": path.as_uri(), "tilde": "~/car.png"}[form]
    prepared = prepare_image(ref, 1, LIMITS, tmp_path)
    assert (prepared.kind, prepared.width, prepared.height) == (RefKind.LOCAL, 500, 400)


def test_remote_urls_pass_through_untouched(tmp_path: Path) -> None:
    for ref, kind in [("https://example.com/a.webp?x=1", RefKind.REMOTE), ("oss://dir/a.png", RefKind.OSS)]:
        prepared = prepare_image(ref, 1, LIMITS, tmp_path)
        assert (prepared.kind, prepared.value, prepared.width) == (kind, ref, None)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("text", "not an image"),
        ("truncated", "damaged or truncated"),
        ("truncated png", "damaged or truncated"),
        ("altered png", "damaged or truncated"),
        ("nul", "cannot read"),
    ],
)
def test_unreadable_inputs_are_refused_with_the_reason(
    setup: str, message: str, make_image: ImageFactory, tmp_path: Path
) -> None:
    if setup == "missing":
        ref = str(tmp_path / "nope.png")
    elif setup == "directory":
        ref = str(tmp_path)
    elif setup == "text":
        (tmp_path / "a.jpg").write_text("hello")
        ref = str(tmp_path / "a.jpg")
    elif setup == "truncated":
        whole = make_image("whole.jpg", (800, 600), colour=(1, 2, 3)).read_bytes()
        (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 3])
        ref = str(tmp_path / "cut.jpg")
    elif setup == "truncated png":
        whole = noise_png(tmp_path / "whole.png").read_bytes()
        (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
        ref = str(tmp_path / "cut.png")
    elif setup == "altered png":
        data = bytearray(noise_png(tmp_path / "whole.png").read_bytes())
        data[len(data) // 2] ^= 0xFF  # one byte of the image data: its chunk's CRC no longer matches
        (tmp_path / "altered.png").write_bytes(data)
        ref = str(tmp_path / "altered.png")
    else:
        ref = "bad\x00name.png"
    with pytest.raises(InvalidRequest, match=message) as caught:
        prepare_image(ref, 4, LIMITS, tmp_path)
    assert caught.value.problems[0].image == 4


def noise_png(path: Path, size: tuple[int, int] = (800, 600)) -> Path:
    Image.frombytes("RGB", size, random.Random(3).randbytes(size[0] * size[1] * 3)).save(path)
    return path


def png_with_image_data(path: Path, size: tuple[int, int], keep: int) -> Path:
    """A PNG made by Pillow whose image data is cut to its first ``keep`` bytes, every chunk's CRC made to match,
    so that only decoding it shows that the pixels are missing."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, random.Random(5).randbytes(size[0] * size[1] * 3)).save(buffer, "PNG")
    data = buffer.getvalue()
    chunks: list[tuple[bytes, bytes]] = []
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        chunks.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")[:keep]
    out = [data[:8]]
    for kind, body in [*[c for c in chunks if c[0] != b"IDAT"][:-1], (b"IDAT", idat), (b"IEND", b"")]:
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)))
    path.write_bytes(b"".join(out))
    return path


def test_a_png_whose_crcs_match_but_whose_pixels_are_missing_is_refused(tmp_path: Path) -> None:
    path = png_with_image_data(tmp_path / "hollow.png", (1000, 1000), keep=100)
    with Image.open(path) as opened:
        opened.verify()  # every chunk matches its CRC: this is what a check without decoding saw
    with pytest.raises(InvalidRequest, match="damaged or truncated") as caught:
        prepare_image(str(path), 3, LIMITS, tmp_path)
    assert caught.value.problems[0].image == 3


def test_a_cut_jpeg_is_refused_though_sent_as_it_is(make_image: ImageFactory, tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    Image.frombytes("RGB", (800, 600), random.Random(4).randbytes(800 * 600 * 3)).save(path, "JPEG")
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with pytest.raises(InvalidRequest, match="damaged or truncated"):
        prepare_image(str(path), 1, LIMITS, tmp_path)


def test_a_png_sent_as_it_is_is_decoded_once_per_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A result of an earlier edit (a 2K PNG) is a common input: it is decoded in full once, then remembered."""
    monkeypatch.setattr(imaging(), "checked", decoding.CheckedFiles())
    monkeypatch.setattr(decoding.CheckedFiles, "RACY_NS", 0)
    path = noise_png(tmp_path / "earlier-result.png")
    decoded: list[str] = []
    load = PngImagePlugin.PngImageFile.load

    def counting(self: PngImagePlugin.PngImageFile) -> Any:
        if self.tile:  # data still to decode (later calls find it decoded)
            decoded.append(self.format or "")
        return load(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", counting)
    prepared = prepare_image(str(path), 1, LIMITS, tmp_path)
    prepare_image(str(path), 2, LIMITS, tmp_path)
    assert decoded == ["PNG"]
    assert (prepared.format, prepared.adjustments, prepared.payload) == ("PNG", (), None)
    assert decode_data_url(prepared.value) == path.read_bytes()


def test_a_png_with_an_exif_orientation_is_turned(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    Image.new("RGB", (600, 400), (9, 9, 9)).save(tmp_path / "turned.png", exif=exif)
    prepared = prepare_image(str(tmp_path / "turned.png"), 1, LIMITS, tmp_path)
    assert prepared.original_size == (400, 600)
    assert sent_image(prepared.value).size == (400, 600)


@pytest.mark.slow
def test_too_many_bytes_downscale_as_a_last_resort(tmp_path: Path) -> None:
    noise = Image.frombytes("RGB", (3000, 3000), random.Random(7).randbytes(3000 * 3000 * 3))
    path = tmp_path / "noise.png"
    noise.save(path, "PNG", compress_level=0)
    limits = SPECS["wan2.6-image"].image
    assert path.stat().st_size > limits.max_bytes
    prepared = prepare_image(str(path), 1, limits, tmp_path)
    assert prepared.bytes is not None
    assert prepared.bytes <= limits.max_bytes
    assert prepared.format == "JPEG"
    assert prepared.width is not None
    assert prepared.width < 3000
    assert prepared.scale == pytest.approx(prepared.width / 3000, abs=0.001)
    (note,) = prepared.adjustments
    size = f"{prepared.width}×{prepared.height}"
    assert note == f"image 1: re-encoded as JPEG and downscaled to {size} to fit the 10 MB file limit"


def test_a_file_sent_as_it_is_stays_on_disk_until_it_is_sent(make_image: ImageFactory, tmp_path: Path) -> None:
    path = make_image("photo.jpg", (1200, 900))
    prepared = prepare_image(str(path), 1, LIMITS, tmp_path)
    assert prepared.payload is None  # not held in memory between the check and the send
    assert prepared.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert decode_data_url(prepared.value) == path.read_bytes()


def test_a_file_changed_after_its_check_is_refused_when_sent(make_image: ImageFactory, tmp_path: Path) -> None:
    path = make_image("photo.jpg", (1200, 900))
    prepared = prepare_image(str(path), 3, LIMITS, tmp_path)
    make_image("photo.jpg", (1200, 900), colour=(0, 0, 255))
    with pytest.raises(InputChanged, match="changed on disk") as caught:
        prepared.read_payload()
    assert caught.value.problems[0].image == 3


@pytest.fixture
def conformed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The index of every image actually checked (decoded or hashed), with an empty memory of checked files."""
    monkeypatch.setattr(imaging(), "checked", decoding.CheckedFiles())
    calls: list[int] = []
    original = inputs.conform

    def counting(data: bytes | io.BufferedReader, **kwargs: Any) -> PreparedImage:
        calls.append(kwargs["index"])
        return original(data, **kwargs)

    monkeypatch.setattr(inputs, "conform", counting)
    return calls


def test_an_unchanged_file_is_checked_once_across_calls(
    conformed: list[int], make_image: ImageFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoding.CheckedFiles, "RACY_NS", 0)  # remember even a file written a moment ago
    path = make_image("photo.png", (1200, 900))
    first = prepare_image(str(path), 1, LIMITS, tmp_path)
    again = prepare_image(f"file://{path}", 2, LIMITS, tmp_path)
    assert conformed == [1]
    assert (again.index, again.source, again.path) == (2, f"file://{path}", first.path)
    assert again.sha256 == first.sha256 and decode_data_url(again.value) == path.read_bytes()


def test_a_file_touched_or_rewritten_since_its_check_is_checked_again(
    conformed: list[int], make_image: ImageFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoding.CheckedFiles, "RACY_NS", 0)
    path = make_image("photo.png", (1200, 900))
    prepare_image(str(path), 1, LIMITS, tmp_path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 5_000_000_000))  # same bytes, another time
    prepare_image(str(path), 1, LIMITS, tmp_path)
    make_image("photo.png", (100, 100))
    with pytest.raises(InvalidRequest, match="too small"):
        prepare_image(str(path), 1, LIMITS, tmp_path)
    assert conformed == [1, 1, 1]


def test_a_file_written_moments_ago_is_checked_on_every_call(
    conformed: list[int], make_image: ImageFactory, tmp_path: Path
) -> None:
    path = make_image("photo.png", (1200, 900))  # a second write could share its coarse timestamp
    prepare_image(str(path), 1, LIMITS, tmp_path)
    prepare_image(str(path), 1, LIMITS, tmp_path)
    assert conformed == [1, 1]


def test_a_large_rotated_jpeg_is_decoded_small_and_shrunk_to_the_exact_limit(tmp_path: Path) -> None:
    shown = Image.new("RGB", (10400, 2600), (220, 20, 20))
    shown.paste((20, 20, 220), (5200, 0, 10400, 2600))  # left red, right blue, as the user sees it
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # stored turned a quarter; shown after a 90° clockwise turn
    shown.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "wide.jpg", "JPEG", exif=exif)
    limits = SPECS["wan2.5-i2i-preview"].image
    prepared = prepare_image(str(tmp_path / "wide.jpg"), 1, limits, tmp_path)
    assert (prepared.width, prepared.height, prepared.original_size) == (5000, 1250, (10400, 2600))
    sent = sent_image(prepared.value)
    assert sent.size == (5000, 1250)
    red, blue = sent.getpixel((100, 600)), sent.getpixel((4900, 600))
    assert isinstance(red, tuple) and isinstance(blue, tuple)
    assert red[0] > 180 > red[2] and blue[2] > 180 > blue[0]
    assert prepared.scale == pytest.approx(5000 / 10400)


def test_a_whole_jpeg_with_bytes_after_its_end_marker_is_still_accepted(
    make_image: ImageFactory, tmp_path: Path
) -> None:
    path = make_image("trailer.jpg", (800, 600))
    path.write_bytes(path.read_bytes() + b"camera trailer")  # some cameras append data after the image
    prepared = prepare_image(str(path), 1, LIMITS, tmp_path)
    assert (prepared.width, prepared.height, prepared.adjustments) == (800, 600, ())


def unblock_readers(fifo: Path) -> None:
    """Open the FIFO for writing and close it, so that a reader stuck opening it (the old behaviour) returns."""
    with contextlib.suppress(OSError):  # ENXIO: no reader waiting, nothing to release
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.anyio
async def test_fifos_in_an_allowed_folder_are_refused_at_once_and_stall_no_other_call(
    mcp: Client, make_image: ImageFactory, tmp_path: Path, emulator: EmulatorState
) -> None:
    """Two FIFOs in one edit would hold both shared image threads if opening one waited for a writer."""
    fifos = [tmp_path / "pipe.png", tmp_path / "other.png"]
    for fifo in fifos:
        os.mkfifo(fifo)
    photo = make_image("photo.png", (600, 400))
    results: dict[str, CallToolResult] = {}
    released: list[bool] = []

    async def call(name: str, tool: str, arguments: dict[str, Any]) -> None:
        results[name] = await mcp.call_tool(tool, arguments)

    async def release_after_deadline() -> None:
        await anyio.sleep(10)  # not reached unless a call is stuck opening a FIFO: free it so the test can end
        released.append(True)
        for fifo in fifos:
            unblock_readers(fifo)

    edit = {"prompt": "make the car blue", "size": "1K"}
    with anyio.fail_after(30):
        async with anyio.create_task_group() as outer:
            outer.start_soon(release_after_deadline)
            async with anyio.create_task_group() as group:
                group.start_soon(
                    call, "fifo", "edit_image", edit | {"images": [str(fifos[0]), str(photo), str(fifos[1])]}
                )
                group.start_soon(call, "inspect", "inspect_image", {"images": [str(fifos[0]), str(photo)]})
                group.start_soon(call, "photo", "edit_image", edit | {"images": [str(photo)]})
            outer.cancel_scope.cancel()
    assert released == [], "a call waited on a FIFO"
    assert results["fifo"].is_error
    message = text(results["fifo"])
    assert f"images (image 1): is a FIFO, not a regular file: {fifos[0]}" in message
    assert f"images (image 3): is a FIFO, not a regular file: {fifos[1]}" in message
    assert "Nothing was sent" in message
    assert results["inspect"].structured_content is not None
    refused, inspected = results["inspect"].structured_content["images"]
    assert "is a FIFO, not a regular file" in refused["problem"] and inspected["width"] == 600
    assert not results["photo"].is_error, text(results["photo"])
    assert sum(1 for r in emulator.requests if r.method == "POST" and "generation" in r.path) == 1


def grey_16(path: Path, size: tuple[int, int], values: list[int], **save: Any) -> Path:
    """A 16-bit grey PNG (Pillow's I;16) whose columns cycle through ``values`` left to right in equal bands."""
    width, height = size
    row = [values[x * len(values) // width] for x in range(width)]
    Image.frombytes("I;16", size, struct.pack(f"<{width}H", *row) * height).save(path, "PNG", **save)
    return path


def grey_of(pixel: Any) -> float:
    """One 8-bit grey level from an L or RGB pixel (all channels equal for grey)."""
    if isinstance(pixel, tuple):
        channels = cast("tuple[int, ...]", pixel)
        assert max(channels) - min(channels) <= 1, channels
        return sum(channels) / len(channels)
    return float(pixel)


def test_a_16_bit_grey_png_with_a_transparent_grey_keeps_its_tones_and_is_flattened_onto_white(
    tmp_path: Path,
) -> None:
    path = grey_16(tmp_path / "deep.png", (600, 400), [40000, 7], transparency=7)
    with Image.open(path) as opened:
        assert (opened.mode, opened.info["transparency"]) == ("I;16", 7)  # as the file is read
    prepared = prepare_image(str(path), 1, LIMITS, tmp_path)
    sent = sent_image(prepared.value)
    assert grey_of(sent.getpixel((100, 200))) == pytest.approx(40000 / 257, abs=1)  # ~156, not white
    assert grey_of(sent.getpixel((500, 200))) == 255  # the transparent grey, on white
    assert "image 1: 16-bit grey scaled to 8 bits" in prepared.adjustments
    assert "image 1: alpha channel flattened onto white" in prepared.adjustments


def test_a_wide_16_bit_grey_png_keeps_its_tone_when_downscaled(tmp_path: Path) -> None:
    path = grey_16(tmp_path / "wide.png", (8200, 2000), [30000])
    prepared = prepare_image(str(path), 1, LIMITS, tmp_path)
    sent = sent_image(prepared.value)
    assert sent.size == (8000, 1951)
    tones = [grey_of(sent.getpixel((x, y))) for x in (0, 4000, 7999) for y in (0, 1000, 1950)]
    assert tones == pytest.approx([30000 / 257] * len(tones), abs=1)  # ~117 everywhere, not white


def test_a_16_bit_gradient_spans_the_8_bit_range_in_order(tmp_path: Path) -> None:
    """Even where nothing else needs changing: a 16-bit file sent as it is was shown white (the emulator, like
    Pillow's own conversion, clips it to 8 bits)."""
    path = grey_16(tmp_path / "ramp.png", (1024, 300), list(range(0, 65536, 64)))  # 1024 steps, 0..65472
    prepared = prepare_image(str(path), 1, LIMITS, tmp_path)
    sent = sent_image(prepared.value)
    assert sent.mode == "L"
    row = [grey_of(sent.getpixel((x, 150))) for x in range(1024)]
    assert row[0] <= 1 and row[-1] >= 254
    assert row == sorted(row) and len(set(row)) > 200


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [("I", 40000, 40000 / 257), ("F", 0.6, 0.6 * 255), ("F", 200.0, 200), ("I", -5, 0)],
)
def test_32_bit_grey_tiffs_keep_their_tones(mode: str, value: float, expected: float, tmp_path: Path) -> None:
    image = Image.new(mode, (400, 300), value)
    image.paste(Image.new(mode, (200, 300), -5 if value == -5 else 0), (200, 0))  # a dark half, for a range
    if value == -5:
        image.paste(Image.new(mode, (200, 300), 70000), (200, 0))  # out of 16 bits: stretched min..max
    image.save(tmp_path / "deep.tiff", "TIFF")
    prepared = prepare_image(str(tmp_path / "deep.tiff"), 1, LIMITS, tmp_path)
    sent = sent_image(prepared.value)
    assert grey_of(sent.getpixel((100, 150))) == pytest.approx(expected, abs=1)
    assert any("bit" in note and "scaled to 8 bits" in note for note in prepared.adjustments)


def test_a_lossless_image_of_more_than_16_mpx_that_must_change_is_sent_as_jpeg_with_full_colour(
    tmp_path: Path,
) -> None:
    """An 8000 px PNG takes seconds to encode; the same pixels as JPEG at quality 95 take a tenth of that."""
    from PIL import JpegImagePlugin

    source = Image.new("RGB", (9000, 2400), (220, 20, 20))
    source.paste((20, 20, 220), (4500, 0, 9000, 2400))
    source.save(tmp_path / "banner.png")
    prepared = prepare_image(str(tmp_path / "banner.png"), 1, LIMITS, tmp_path)
    assert (prepared.format, prepared.width, prepared.height) == ("JPEG", 8000, 2133)
    assert "image 1: sent as JPEG (quality 95): a 17 Mpx PNG takes seconds to encode" in prepared.adjustments
    sent = sent_image(prepared.value)
    assert isinstance(sent, JpegImagePlugin.JpegImageFile)
    assert JpegImagePlugin.get_sampling(sent) == 0  # 4:4:4: colour edges at full resolution
    assert sent.getpixel((100, 1000)) == pytest.approx((220, 20, 20), abs=3)
    assert sent.getpixel((7900, 1000)) == pytest.approx((20, 20, 220), abs=3)


def test_a_lossless_image_of_16_mpx_or_fewer_stays_png(tmp_path: Path) -> None:
    Image.new("RGB", (4000, 4000), (9, 99, 199)).save(tmp_path / "square.png")  # 16 Mpx, with alpha to flatten
    Image.open(tmp_path / "square.png").convert("RGBA").save(tmp_path / "square.png")
    prepared = prepare_image(str(tmp_path / "square.png"), 1, LIMITS, tmp_path)
    assert prepared.format == "PNG"
    assert prepared.adjustments == ("image 1: alpha channel flattened onto white",)


def test_an_image_downscaled_to_the_side_limit_is_sent_at_no_more_than_40_mpx(tmp_path: Path) -> None:
    """With an input image the models make at most 4.2 Mpx; 8000×5714 px would be 45.7 Mpx of pixels no output
    shows, and a 9000 px PNG's decode beside them more memory than an edit may take."""
    Image.new("RGB", (8400, 6000), (30, 160, 90)).save(tmp_path / "poster.png")
    prepared = prepare_image(str(tmp_path / "poster.png"), 1, LIMITS, tmp_path)
    assert (prepared.width, prepared.height) == (7483, 5345)
    assert 7483 * 5345 <= 40_000_000
    assert prepared.scale == pytest.approx(7483 / 8400, abs=1e-4)  # boxes follow
    assert (
        "image 1: downscaled to 7483×5345 to fit the 8000 px side limit (and at most 40 Mpx: no output shows more)"
        in prepared.adjustments
    )
    assert sent_image(prepared.value).size == (7483, 5345)


def test_an_image_within_the_side_limit_is_not_held_to_40_mpx(tmp_path: Path) -> None:
    Image.new("RGBA", (7000, 6000), (30, 160, 90, 255)).save(tmp_path / "poster.png")  # 42 Mpx, alpha to flatten
    prepared = prepare_image(str(tmp_path / "poster.png"), 1, LIMITS, tmp_path)
    assert (prepared.width, prepared.height, prepared.scale) == (7000, 6000, 1.0)


def test_a_large_conformed_file_waits_on_disk_until_sent_and_its_file_goes_with_it(tmp_path: Path) -> None:
    """Nine conformed 9000 px PNGs were 111 MB held in memory beside the next image's decode."""
    import gc

    noise = Image.frombytes("RGB", (1200, 1000), random.Random(3).randbytes(1200 * 1000 * 3))
    noise.convert("RGBA").save(tmp_path / "noise.png")  # alpha to flatten: conformed, ~3.6 MB as PNG
    open_files = len(os.listdir("/proc/self/fd"))
    prepared = prepare_image(str(tmp_path / "noise.png"), 1, LIMITS, tmp_path)
    assert prepared.payload is None and prepared.spool is not None
    assert prepared.bytes is not None and prepared.bytes > 1_000_000
    assert len(os.listdir("/proc/self/fd")) == open_files + 1
    sent = sent_image(prepared.value)
    assert sent.tobytes() == noise.tobytes()  # flattened onto white: opaque noise is unchanged
    del prepared
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == open_files


def test_a_spooled_file_reads_back_whole_from_many_threads_without_positioned_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Windows has no ``os.pread``; the server runs there too (README: macOS, Windows and Linux)."""
    from concurrent.futures import ThreadPoolExecutor

    from wan_image_mcp.core.images.references import Spool

    data = random.Random(5).randbytes(1_500_000)
    spool = Spool(data)
    monkeypatch.delattr(os, "pread")
    with ThreadPoolExecutor(4) as pool:
        reads = [done.result(timeout=10) for done in [pool.submit(spool.read) for _ in range(16)]]
    assert all(read == data for read in reads)


def test_a_large_conformed_file_stays_in_memory_when_no_temporary_file_can_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spooling saves memory; a full or vanished temporary directory must not fail the edit (it failed with
    "Error executing tool edit_image", naming nothing)."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "removed"))  # where TemporaryFile writes
    noise = Image.frombytes("RGB", (900, 900), random.Random(6).randbytes(900 * 900 * 3))
    noise.convert("RGBA").save(tmp_path / "noise.png")  # alpha to flatten: conformed, ~2.4 MB
    prepared = prepare_image(str(tmp_path / "noise.png"), 1, LIMITS, tmp_path)
    assert prepared.spool is None and prepared.payload is not None and len(prepared.payload) > 1_000_000
    assert sent_image(prepared.value).tobytes() == noise.tobytes()


def scan_bomb(path: Path, side: int, repeats: int) -> Path:
    """A progressive JPEG of ``side`` px whose last scan is repeated ``repeats`` times: a valid file, tiny, that
    libjpeg decodes pass after pass over the whole image (12,000 passes of 2000 px: ~45 s)."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (90, 120, 200)).save(buffer, "JPEG", progressive=True, quality=80)
    data = buffer.getvalue()
    last, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    path.write_bytes(data[:last] + data[last:end] * repeats + data[end:])
    return path


@pytest.mark.anyio
async def test_a_jpeg_repeating_its_last_scan_is_refused_before_decoding_and_an_edit_beside_it_finishes(
    mcp: Client, make_image: ImageFactory, tmp_path: Path, emulator: EmulatorState
) -> None:
    bomb = scan_bomb(tmp_path / "bomb.jpg", 2000, 12_000)
    assert bomb.stat().st_size < 250_000
    with Image.open(bomb) as opened:
        assert opened.size == (2000, 2000)  # a valid header: only its scans give it away
    photo = make_image("photo.png", (640, 480))
    results: dict[str, CallToolResult] = {}

    async def call(name: str, tool: str, arguments: dict[str, Any]) -> None:
        results[name] = await mcp.call_tool(tool, arguments)

    edit = {"prompt": "make the car blue", "size": "1K"}
    with anyio.fail_after(30):  # generous: decoding the bombs took ~90 s of both cores
        async with anyio.create_task_group() as group:
            group.start_soon(call, "bombs", "edit_image", edit | {"images": [str(bomb), str(bomb)]})
            group.start_soon(call, "inspect", "inspect_image", {"images": [str(bomb)]})
            group.start_soon(call, "photo", "edit_image", edit | {"images": [str(photo)]})
    message = text(results["bombs"])
    assert results["bombs"].is_error
    for index in (1, 2):
        assert f"images (image {index}): JPEG has 12,00" in message
    assert "scans, more than the 64 decoded: each scan is a pass over the whole image" in message
    assert "Nothing was sent" in message
    assert results["inspect"].structured_content is not None
    (report,) = results["inspect"].structured_content["images"]
    assert "scans, more than the 64 decoded" in report["problem"]
    assert not results["photo"].is_error, text(results["photo"])
    assert sum(1 for r in emulator.requests if r.method == "POST" and "generation" in r.path) == 1


def test_a_large_jpeg_may_hold_fewer_scans_than_a_small_one(tmp_path: Path) -> None:
    """Each scan is a pass over every pixel: 21 scans of 11000 px are about as much work as 64 of 6300 px."""
    bomb = scan_bomb(tmp_path / "wide.jpg", 11000, 13)  # 10 scans of its own, 22 in all
    with pytest.raises(InvalidRequest) as caught:
        prepare_image(str(bomb), 4, LIMITS, tmp_path)
    (problem,) = caught.value.problems
    assert problem.image == 4
    assert problem.message.startswith("JPEG has 22 scans, more than the 21 decoded at 11000×11000 px: each scan")


def test_ordinary_progressive_jpegs_are_not_taken_for_scan_bombs(tmp_path: Path) -> None:
    for mode in ("RGB", "L", "CMYK"):  # libjpeg writes 10, 6 and 18 scans
        path = tmp_path / f"progressive-{mode}.jpg"
        Image.new(mode, (1200, 900)).save(path, "JPEG", progressive=True)
        assert prepare_image(str(path), 1, LIMITS, tmp_path).height == 900


@pytest.mark.anyio
async def test_a_slow_image_holds_up_its_own_call_and_no_other(
    mcp: Client, make_image: ImageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two slow images fill their call's two threads; an edit started beside them does not wait for them."""
    slow = [make_image(f"slow-{i}.png", (640, 480)) for i in range(2)]
    photo = make_image("photo.png", (640, 480))
    release, waiting = threading.Event(), [0]
    conform = inputs.conform

    def conform_slowly(data: Any, **options: Any) -> PreparedImage:
        if "slow-" in options["source"]:
            waiting[0] += 1
            release.wait(20)  # bounded: the test releases it, or it ends on its own
        return conform(data, **options)

    monkeypatch.setattr(inputs, "conform", conform_slowly)
    monkeypatch.setattr(imaging(), "checked", decoding.CheckedFiles())
    edit = {"prompt": "make the car blue", "size": "1K"}
    results: dict[str, CallToolResult] = {}

    async def slow_call() -> None:
        results["slow"] = await mcp.call_tool("edit_image", edit | {"images": [str(path) for path in slow]})

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(slow_call)

            async def both_waiting() -> bool:
                return waiting[0] == 2

            await until(both_waiting, within=10)
            with anyio.fail_after(10):
                beside = await mcp.call_tool("edit_image", edit | {"images": [str(photo)]})
            assert not beside.is_error, text(beside)
            assert "slow" not in results
            release.set()
    finally:
        release.set()
    assert not results["slow"].is_error, text(results["slow"])


def png_of_rows(size: tuple[int, int], rows: int, *, interlaced: bool = False) -> bytes:
    """An RGB PNG declaring ``size`` whose zlib stream is whole and valid, every CRC right, but holds ``rows``
    rows (interlaced: the data of every pass, less one byte for fewer than all rows)."""
    width, height = size
    rng = random.Random(8)
    if interlaced:
        passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
        lines = [
            b"\x00" + rng.randbytes(3 * ((width - x + dx - 1) // dx))
            for x, y, dx, dy in passes
            for _ in range((height - y + dy - 1) // dy)
            if width > x
        ]
        raw = b"".join(lines)[: None if rows == height else -1]
    else:
        raw = b"".join(b"\x00" + rng.randbytes(3 * width) for _ in range(rows))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, int(interlaced))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_a_png_whose_complete_zlib_stream_holds_too_few_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.png"
    path.write_bytes(png_of_rows((800, 600), 450))
    with Image.open(path) as opened:
        opened.load()  # Pillow decodes it without a word: the last 150 rows are black
    with pytest.raises(InvalidRequest) as caught:
        prepare_image(str(path), 2, LIMITS, tmp_path)
    (problem,) = caught.value.problems
    assert (problem.argument, problem.image) == ("images", 2)
    assert problem.message == "image data is damaged or truncated (the PNG's data ends after 450 of its 600 rows)"


@pytest.mark.parametrize("interlaced", [False, True])
def test_a_png_whose_rows_are_all_there_is_sent_and_one_byte_short_is_refused(interlaced: bool, tmp_path: Path) -> None:
    whole = "data:image/png;base64," + base64.b64encode(png_of_rows((801, 603), 603, interlaced=interlaced)).decode()
    assert prepare_image(whole, 1, LIMITS, tmp_path).format == "PNG"
    short = png_of_rows((801, 603), 602, interlaced=interlaced)
    with pytest.raises(InvalidRequest, match="damaged or truncated") as caught:
        prepare_image("data:image/png;base64," + base64.b64encode(short).decode(), 1, LIMITS, tmp_path)
    assert caught.value.problems[0].image == 1


@pytest.mark.anyio
async def test_inspect_image_refuses_a_png_short_of_rows_too(mcp: Client, tmp_path: Path) -> None:
    path = tmp_path / "short.png"
    path.write_bytes(png_of_rows((800, 600), 599))
    result = await mcp.call_tool("inspect_image", {"images": [str(path)]})
    assert result.structured_content is not None
    (report,) = result.structured_content["images"]
    assert report["problem"] == "image data is damaged or truncated (the PNG's data ends after 599 of its 600 rows)"


def gif_of_rows(size: tuple[int, int], rows: int) -> bytes:
    """A GIF whose header and image descriptor declare ``size`` but whose complete LZW stream holds ``rows`` rows."""
    buffer = io.BytesIO()
    Image.frombytes("L", (size[0], rows), random.Random(9).randbytes(size[0] * rows)).convert("P").save(buffer, "GIF")
    data = bytearray(buffer.getvalue())
    data[8:10] = struct.pack("<H", size[1])
    at = 13 + (3 * (2 << (data[10] & 7)) if data[10] & 0x80 else 0)
    while data[at] == 0x21:  # extensions: label, then sub-blocks to a zero
        at += 2
        while data[at]:
            at += data[at] + 1
        at += 1
    data[at + 7 : at + 9] = struct.pack("<H", size[1])
    return bytes(data)


def tiff_of_rows(size: tuple[int, int], rows: int) -> bytes:
    """A deflated TIFF of one strip declaring ``size`` whose strip holds ``rows`` rows."""
    buffer = io.BytesIO()
    noise = Image.frombytes("RGB", (size[0], rows), random.Random(9).randbytes(size[0] * rows * 3))
    noise.save(buffer, "TIFF", compression="tiff_adobe_deflate", strip_size=2**31)
    data = bytearray(buffer.getvalue())
    ifd = struct.unpack("<I", data[4:8])[0]
    for entry in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        at = ifd + 2 + 12 * entry
        tag, kind = struct.unpack("<HH", data[at : at + 4])
        if tag in (257, 278):  # ImageLength, RowsPerStrip
            data[at + 8 : at + 12] = struct.pack(
                "<HH" if kind == 3 else "<I", *((size[1], 0) if kind == 3 else (size[1],))
            )
    return bytes(data)


def webp_cut(size: tuple[int, int]) -> bytes:
    """A WebP whose image chunk is cut in half, its RIFF and chunk sizes made to match."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, random.Random(9).randbytes(size[0] * size[1] * 3)).save(buffer, "WEBP")
    body = buffer.getvalue()[12:]
    half = struct.unpack("<I", body[4:8])[0] // 2
    chunk = body[:4] + struct.pack("<I", half) + body[8 : 8 + half]
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


@pytest.mark.parametrize(
    "data",
    [gif_of_rows((600, 400), 300), tiff_of_rows((600, 400), 300), webp_cut((600, 400))],
    ids=["gif", "tiff", "webp"],
)
def test_a_gif_tiff_or_webp_short_of_its_rows_is_refused_by_its_decoder(data: bytes, tmp_path: Path) -> None:
    ref = "data:application/octet-stream;base64," + base64.b64encode(data).decode()
    with pytest.raises(InvalidRequest, match="damaged or truncated") as caught:
        prepare_image(ref, 2, LIMITS, tmp_path)
    assert caught.value.problems[0].image == 2


@pytest.mark.parametrize("at", [0, 4094, 4095, 4096, 12_287, 3_000_000])
def test_the_marker_after_a_scan_is_found_wherever_the_blocks_it_is_read_in_fall(at: int) -> None:
    """Entropy-coded data is read in blocks of 4 KB, then twice as large: a marker split across two is found."""
    data = bytes(at) + b"\xff\x00\xff\xd3" + b"\xff\xff\xd9" + bytes(10)  # stuffing, a restart, fill, then EOI
    assert Bytes(io.BytesIO(data)).marker_after(0) == at + 5


def test_an_animation_is_sent_as_its_first_frame_without_its_frames_being_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow's n_frames walks every frame: 20,000 one-pixel frames took 50 ms, a 17 MB file of them seconds."""
    frames = [Image.new("RGB", (300, 300), colour) for colour in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:])
    counted: list[str] = []

    def counting(self: Image.Image) -> int:
        counted.append(self.format or "")
        return 3

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "n_frames", property(counting))
    prepared = prepare_image(str(tmp_path / "moving.gif"), 1, LIMITS, tmp_path)
    assert counted == []
    assert "image 1: GIF has more than one frame: the first is used" in prepared.adjustments
