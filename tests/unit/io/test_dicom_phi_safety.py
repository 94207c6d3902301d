"""DICOM reading refuses burned-in annotation and logs no UIDs or file names (issue 17,
items 7 and 9)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pydicom
import pytest

from medseg.cli import main
from medseg.core import DeidError, ExitCode
from medseg.io import read_image

SERIES_UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"


def _series(repo_root: Path, folder: Path, *, burned_in: bool, n: int = 3) -> Path:
    folder.mkdir(parents=True)
    files = sorted((repo_root / "data/ct_totalsegmentator/example_ct_dicom").iterdir())[:n]
    for i, path in enumerate(files):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = SERIES_UID
        ds.SOPInstanceUID = f"{SERIES_UID}.{i + 1}"
        if burned_in:
            ds.BurnedInAnnotation = "YES"
        ds.save_as(folder / f"DOE_JOHN_{i}.dcm")
    return folder


def test_burned_in_annotation_is_refused_unless_allowed(repo_root: Path, tmp_path: Path) -> None:
    folder = _series(repo_root, tmp_path / "in", burned_in=True)
    with pytest.raises(DeidError, match="BurnedInAnnotation YES"):
        read_image(folder)
    assert read_image(folder, allow_burned_in=True).array.shape[2] == 3
    out = tmp_path / "out.nii.gz"
    assert main(["convert", str(folder), str(out)]) == ExitCode.DEID
    assert not out.exists()
    assert main(["convert", str(folder), str(out), "--allow-burned-in"]) == ExitCode.OK


def test_logs_name_no_series_uid_and_no_input_file(
    repo_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _series(repo_root, tmp_path / "in", burned_in=False)
    shutil.copy(folder / "DOE_JOHN_0.dcm", folder / "DOE_JOHN_copy.dcm")  # duplicate: warned
    (folder / "DOE_JOHN_broken.dcm").write_bytes(
        (folder / "DOE_JOHN_1.dcm").read_bytes()[:2000]  # truncated: skipped with a warning
    )
    with caplog.at_level(logging.DEBUG, logger="medseg"):
        read_image(folder)
    assert "duplicate" in caplog.text
    assert "skipped" in caplog.text
    assert SERIES_UID not in caplog.text
    assert "DOE_JOHN" not in caplog.text
