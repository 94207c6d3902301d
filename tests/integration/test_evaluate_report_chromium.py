"""report.html renders in a real browser: headless Chromium (Debian ``chromium``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.cli import main
from medseg.core import ExitCode

pytestmark = pytest.mark.integration


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("Chromium is missing: run scripts/install_system_deps.sh as root (apt chromium)")


def test_report_renders_tables_and_plots_in_headless_chromium(
    repo_root: Path, tmp_path: Path
) -> None:
    root = repo_root / "data/retina_drive/test"
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    for case in ("01", "02", "03"):
        shutil.copy(root / f"1st_manual/{case}_manual1.gif", tmp_path / f"ref/drive_{case}.gif")
        shutil.copy(root / f"2nd_manual/{case}_manual2.gif", tmp_path / f"pred/drive_{case}.gif")
    out = tmp_path / "eval"
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref")]
    assert main([*args, "--binary", "--out", str(out), "--no-tracking"]) == ExitCode.OK

    screenshot = tmp_path / "report.png"
    completed = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--window-size=1280,1800",
            f"--screenshot={screenshot}",
            "--dump-dom",
            (out / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    dom = completed.stdout
    for table in ("summary-table", "definitions", "full-summary-table", "case-table"):
        assert f'<table id="{table}">' in dom, table
    for metric in ("dice", "hd95_mm", "assd_mm", "nsd"):
        assert f'id="boxplot-{metric}"' in dom
    assert dom.count('src="data:image/png;base64,') == 4 + 3  # box plots + 3 worst cases
    assert dom.count('class="worst-case"') == 3
    assert "drive_01" in dom

    # the screenshot shows the rendered plots: matplotlib's orange median lines and green
    # mean markers (tab:orange, tab:green) only appear if the embedded PNGs were decoded
    pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (1800, 1280)
    orange = np.all(np.abs(pixels - (255, 127, 14)) < 40, axis=-1).sum()
    green = np.all(np.abs(pixels - (44, 160, 44)) < 40, axis=-1).sum()
    assert orange > 20
    assert green > 20
