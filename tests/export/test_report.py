"""``ssl4eo report``: the HTML page and its PNGs exist, and the page renders in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from export.report import composites, write_report
from pipeline.cli import main as cli

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def test_report_page_and_figures(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["report", str(built)]) == 0
    page = built / "report" / "index.html"
    assert str(page) in capsys.readouterr().out
    text = page.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', text)
    expected = {"map.png", "dates.png", "quality.png", "stats_s2_l2a.png", "stats_s1_rtc.png",
                "preview_s2_l2a_0.png", "preview_s2_l2a_1.png", "preview_s1_rtc_0.png"}
    assert set(srcs) == expected
    for s in srcs:
        assert (built / "report" / s).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "packed: 20" in text and "failed: too_cloudy: 1" in text and "failed: source_error: 1" in text
    assert "no locations.parquet" not in text


def test_report_counts_the_scale_offset_regimes(tmp_path: Path) -> None:
    """A Sentinel-2 corpus across 2022-01-25 holds DNs with and without the -1000 offset: the report says so."""
    from export.testing import stage_synthetic
    from tests.export.conftest import build, layouts

    stage_synthetic(tmp_path, layouts(), [1, 2], year=2021)
    stage_synthetic(tmp_path, layouts(), [3, 4, 5], year=2023)
    build(tmp_path)
    text = write_report(tmp_path).read_text()
    assert "<tr><td>0.0001</td><td>-0.1</td><td>12</td></tr><tr><td>0.0001</td><td>0</td><td>8</td></tr>" in text
    assert "<tr><td>1</td><td>0</td><td>20</td></tr>" in text  # SAR, in dB as stored


def test_report_without_a_store_still_draws_the_map(tmp_path: Path) -> None:
    page = write_report(tmp_path)
    assert "run <code>ssl4eo shard</code>" in page.read_text()
    assert (tmp_path / "report" / "map.png").is_file()


def test_composites_by_wavelength_and_sar() -> None:
    s2 = composites(["B02", "B03", "B04", "B08"], [492.4, 559.8, 664.6, 832.8])
    assert [c.bands for c in s2] == [(2, 1, 0), (3, 2, 1)]
    sar = composites(["vv", "vh"], None)
    assert sar[0].sar_ratio and sar[0].bands == (0, 1, 0)
    assert composites(["x"], None)[0].bands == (0, 0, 0)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(built: Path, tmp_path: Path) -> None:
    page = write_report(built)
    url = page.resolve().as_uri()
    dom = chromium(["--virtual-time-budget=10000", "--dump-dom", url], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom.stdout)
    assert m, "the page's load handler did not run"
    assert m.group(1) == m.group(2) == "8", f"only {m.group(1)} of {m.group(2)} images decoded"
    shot = tmp_path / "shot.png"
    res = chromium([f"--screenshot={shot}", "--window-size=1200,2400", "--hide-scrollbars", url],
                   tmp_path / "profile-shot")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[0] >= 2000 and img.std() > 20  # not a blank page
