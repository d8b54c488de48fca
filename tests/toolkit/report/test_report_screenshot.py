"""The report as a person sees it: a headless Chromium screenshot of the HTML is a long, non-blank page.

Skipped when no Chromium is installed (CI machines may not have one); ``benchmarks/report_screenshot.py``
does the same by hand and keeps the tiles to look at.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import support
from PIL import Image

from capacity.report import render_report
from capacity.testing.sample_sweep import SEED_TIERS, write_sample_sweep

SCRIPT = support.REPO_ROOT / "benchmarks" / "report_screenshot.py"


def _screenshot_module():
    spec = importlib.util.spec_from_file_location("report_screenshot", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shots = _screenshot_module()
pytestmark = pytest.mark.skipif(shots.find_browser() is None, reason="chromium is not installed")


def test_the_page_renders_in_a_browser(tmp_path: Path) -> None:
    html = render_report(write_sample_sweep(tmp_path / "sweep", SEED_TIERS[:4], duration_s=8)).html
    png = tmp_path / "page.png"
    shots.screenshot(shots.find_browser(), html, png, width=1200, height=9000)
    height = shots.content_height(png)
    assert height > 3000  # every section laid out, not an error page
    pixels = np.asarray(Image.open(png).convert("L"))
    top = pixels[: min(height, 1500)]
    assert (top < 128).mean() > 0.005  # text was drawn
    tiles = shots.tiles(png, tmp_path, 1600)
    assert len(tiles) == -(-min(height, pixels.shape[0]) // 1600)
