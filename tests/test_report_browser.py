"""A real look: headless Chromium renders report.html and every embedded figure loads."""

import os
import re
import shutil
import subprocess

import pytest
from test_report import toys  # noqa: F401  (the fixture)

import flowjax_lab as fl

# $FLOWJAX_LAB_BROWSER, else the first Chromium-family browser on the PATH.
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM = os.environ.get("FLOWJAX_LAB_BROWSER") or next(
    filter(None, map(shutil.which, NAMES)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000"]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium-family browser (apt-get install "
                    "chromium, or set FLOWJAX_LAB_BROWSER)")
def test_report_renders_with_every_figure_loaded(toys, tmp_path):  # noqa: F811
    fl.reproduce(tmp_path / "out", names=["heat-a", "heat-z", "heat-broken"])
    url = (tmp_path / "out" / "report.html").as_uri()
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile1'}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=True).stdout
    marker = re.search(r'data-figures="(\d+)/(\d+)"', dom)
    assert marker, "the page's load script did not run"
    assert marker.group(1) == marker.group(2) == "2"
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}",
                    "--window-size=1200,1800", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
