"""Truncated DICOM inputs are refused as unreadable, and the CLI then exits non-zero."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from medseg.cli import main
from medseg.core import ExitCode
from medseg.deid import find_pixel_data_problem


@pytest.fixture
def ct_slice(repo_root: Path) -> Path:
    return sorted((repo_root / "data/ct_totalsegmentator/example_ct_dicom").iterdir())[0]


def test_whole_file_has_no_pixel_problem(ct_slice: Path) -> None:
    assert find_pixel_data_problem(pydicom.dcmread(ct_slice)) is None


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.99])
def test_truncated_copies_are_unreadable(
    ct_slice: Path, tmp_path: Path, fraction: float, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    data = ct_slice.read_bytes()
    (source / "slice.dcm").write_bytes(data[: int(len(data) * fraction)])
    (source / "whole.dcm").write_bytes(data)
    key = tmp_path / "key"
    key.write_text("unit-test-key-0123456789abcdef\n")
    code = main(["deid", str(source), str(tmp_path / "out"), "--key-file", str(key)])
    captured = capsys.readouterr()
    assert code == ExitCode.DEID
    assert "1 input file(s) could not be de-identified" in captured.err
    assert "unreadable: 1" in captured.out
    assert "written: 1" in captured.out
    outputs = list((tmp_path / "out").rglob("*.dcm"))
    assert len(outputs) == 1
