"""A lab for a cold agent: a home with the photos a user would have, and an emulator whose tasks take 3 s.

    python bench/agent/lab.py LAB      prints the emulator's PID (end it by that PID when done)

The photos are drawn here (gradients, lines, a caption naming what they show) at the sizes people's files have: a
wide car, a tall graffiti wall, a portrait, three beach photos (one upright), a poster with text, a kitchen table,
a jam label and a transparent logo, and one photo in a hidden folder (``~/Pictures/.private``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def _photo(path: Path, size: tuple[int, int], colour: tuple[int, int, int], caption: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    width, height = size
    for x in range(0, width, 40):
        draw.line([(x, 0), (width - x, height)], fill=(x % 255, 90, 160), width=3)
    draw.rectangle([width // 4, height // 4, width * 3 // 4, height * 3 // 4], outline=(255, 255, 255), width=8)
    draw.text((30, 30), caption, fill=(255, 255, 255), font=ImageFont.load_default(size=max(24, height // 20)))
    image.save(path, quality=90)


def make_home(home: Path) -> None:
    """The user's files, as the requests in ``requests-*.md`` name them."""
    pictures, desktop, brand = home / "Pictures", home / "Desktop", home / "Documents" / "brand"
    _photo(pictures / "car.jpg", (1920, 1080), (40, 60, 90), "a red car")
    _photo(pictures / "graffiti.jpg", (1080, 1440), (200, 120, 40), "graffiti wall")
    _photo(pictures / "portrait.jpg", (1200, 1600), (120, 100, 90), "portrait of a woman")
    _photo(pictures / ".private" / "me.jpg", (1200, 1600), (120, 100, 90), "portrait of a woman")
    _photo(pictures / "trip" / "beach1.jpg", (2048, 1536), (20, 120, 200), "beach 1")
    _photo(pictures / "trip" / "beach2.jpg", (2048, 1536), (30, 140, 210), "beach 2")
    _photo(pictures / "trip" / "beach3.jpg", (1536, 2048), (25, 130, 190), "beach 3")
    _photo(desktop / "poster.png", (1240, 1754), (250, 240, 220), "SUMMER SALE 50% OFF")
    _photo(desktop / "kitchen.jpg", (1600, 1200), (180, 170, 150), "kitchen table: bottles, cups")
    _photo(brand / "label.jpg", (1500, 1000), (240, 240, 240), "jam label")
    logo = Image.new("RGBA", (800, 800), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.ellipse([100, 100, 700, 700], fill=(220, 30, 60, 255))
    draw.text((250, 360), "LOGO", fill=(255, 255, 255, 255), font=ImageFont.load_default(size=80))
    logo.save(brand / "logo.png")


def main(lab: Path) -> int:
    make_home(lab / "home")
    announced = lab / "emulator.out"
    with announced.open("w") as out, (lab / "emulator.log").open("w") as log:
        # Its output goes to a file, not a pipe: a pipe closed when this script ends would end the emulator.
        emulator = subprocess.Popen(
            [sys.executable, "-m", "wan_image_mcp", "emulator", "--latency", "3"], stdout=out, stderr=log
        )
    deadline = time.monotonic() + 30
    while "DASHSCOPE_API_KEY=" not in announced.read_text():  # both lines are printed, flushed, once it listens
        if emulator.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the emulator did not start: see {lab / 'emulator.log'}")
        time.sleep(0.05)
    url = next(line for line in announced.read_text().splitlines() if line.startswith("DASHSCOPE_HTTP_BASE_URL="))
    (lab / "emulator.url").write_text(url.partition("=")[2])
    print(emulator.pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
