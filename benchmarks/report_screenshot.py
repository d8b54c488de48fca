"""Look at a capacity report as a person would: headless Chromium screenshots of ``index.html``, in tiles.

    python benchmarks/report_screenshot.py [REPORT_HTML_OR_SOURCE_DIR] [--out DIR] [--width 1400]

Without an argument it renders the synthetic 9-tier sample sweep first. Writes ``page.png`` (the whole
page, up to ``--max-height`` pixels) and ``tile-NN.png`` slices of ``--tile`` pixels to ``--out`` (default
a temporary directory) and prints their paths. Needs ``chromium`` (Debian: ``apt-get install chromium``);
exits 0 with a message when it is not installed, so it can run anywhere. No network: the browser runs with
networking features off, and the report itself references nothing outside the file.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from capacity.report import render_report
from capacity.testing.sample_sweep import write_sample_sweep

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_browser() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(browser: str, html: Path, png: Path, width: int, height: int) -> None:
    """A headless screenshot of ``html`` in a ``width`` x ``height`` window."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                f"--window-size={width},{height}",
                html.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def content_height(png: Path) -> int:
    """Pixels down to the last row that is not blank page background."""
    pixels = np.asarray(Image.open(png).convert("L"))
    rows = np.flatnonzero((pixels < 248).any(axis=1))
    return int(rows[-1]) + 16 if rows.size else pixels.shape[0]


def tiles(png: Path, out: Path, tile: int) -> list[Path]:
    """Slice the page into ``tile``-pixel-high images (easier to look at than one very tall one)."""
    image = Image.open(png)
    height = min(content_height(png), image.height)
    paths = []
    for i, top in enumerate(range(0, height, tile)):
        path = out / f"tile-{i:02d}.png"
        image.crop((0, top, image.width, min(top + tile, height))).save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, help="index.html, or a sweep/run dir to render")
    parser.add_argument("--out", type=Path, help="where the PNGs go (default: a temporary directory)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--max-height", type=int, default=24_000)
    parser.add_argument("--tile", type=int, default=1600)
    args = parser.parse_args(argv)

    browser = find_browser()
    if browser is None:
        print("report_screenshot: no chromium on PATH (apt-get install chromium); nothing to do")
        return 0
    out = args.out or Path(tempfile.mkdtemp(prefix="capacity-report-shot-"))
    out.mkdir(parents=True, exist_ok=True)
    html = args.source
    if html is None:
        html = render_report(write_sample_sweep(out / "sample-sweep")).html
    elif html.is_dir():
        html = render_report(html).html
    page = out / "page.png"
    screenshot(browser, html, page, args.width, args.max_height)
    print(f"page: {page} ({content_height(page)} px of content)")
    for path in tiles(page, out, args.tile):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
