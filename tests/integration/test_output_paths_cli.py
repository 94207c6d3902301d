"""Every command checks where its outputs go before any work (issue 17, items 3 and 8)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from medseg.cli import main
from medseg.core import ExitCode, compute_sha256

pytestmark = [pytest.mark.integration]

CT = "data/ct_totalsegmentator/example_ct_sm.nii.gz"
PNG = "data/cells_dsb2018/test/images/06350c7cc618be44.png"


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_sam_refuses_to_write_over_its_input(repo_root: Path, tmp_path: Path) -> None:
    image = tmp_path / "image.nii.gz"
    shutil.copy(repo_root / CT, image)
    digest = compute_sha256(image)
    argv = ["sam", str(image), "--out", str(image), "--overwrite", "--box", "10,22,0,43,57,29"]
    assert main(argv) == ExitCode.OUTPUT_PATH
    assert compute_sha256(image) == digest
    assert _listing(tmp_path) == ["image.nii.gz"]


def test_sam_refuses_an_output_inside_a_dicom_input_folder(repo_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dicom"
    shutil.copytree(repo_root / "data/ct_totalsegmentator/example_ct_dicom", folder)
    before = _listing(folder)
    argv = ["sam", str(folder), "--out", str(folder / "mask.nii.gz"), "--box", "1,1,0,9,9,2"]
    assert main(argv) == ExitCode.OUTPUT_PATH
    assert _listing(folder) == before


@pytest.mark.parametrize(
    ("out", "code"),
    [
        ("blocker/mask.nii.gz", ExitCode.OUTPUT_PATH),  # a file where a folder must be
        ("existing.nii.gz", ExitCode.OUTPUT_EXISTS),
        ("folder", ExitCode.CONFIG),  # no .nii suffix
        ("folder.nii.gz", ExitCode.OUTPUT_PATH),  # a folder where the file must be
    ],
)
def test_sam_output_problems_are_found_before_the_model_runs(
    repo_root: Path, tmp_path: Path, out: str, code: int
) -> None:
    (tmp_path / "blocker").write_text("x")
    (tmp_path / "existing.nii.gz").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.nii.gz").mkdir()
    before = _listing(tmp_path)
    start = time.perf_counter()
    argv = ["sam", str(repo_root / CT), "--out", str(tmp_path / out), "--box", "1,1,0,9,9,2"]
    assert main(argv) == code
    assert time.perf_counter() - start < 5  # refused before the model was loaded
    assert _listing(tmp_path) == before


def test_infer_refuses_two_inputs_with_the_same_name_before_running(
    repo_root: Path, tmp_path: Path
) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(repo_root / PNG, tmp_path / name / "cells.png")
    out = tmp_path / "out"
    argv = [
        "infer",
        "--model",
        "nuclei",
        str(tmp_path / "a/cells.png"),
        str(tmp_path / "b/cells.png"),
    ]
    assert main([*argv, "--out", str(out)]) == ExitCode.CONFIG
    assert not out.exists()


@pytest.mark.parametrize("command", ["seg", "rtstruct", "overlay"])
def test_export_refuses_an_output_name_of_the_wrong_kind(
    repo_root: Path, tmp_path: Path, command: str
) -> None:
    argv = [
        "export",
        command,
        "--source",
        str(repo_root / "data/ct_totalsegmentator/example_ct_dicom"),
    ]
    argv += ["--mask", str(repo_root / "data/ct_totalsegmentator/example_seg_dicom.nii.gz")]
    argv += ["--out", str(tmp_path / "x.nii.gz"), "--complete-uids"]
    assert main(argv) == ExitCode.CONFIG
    assert _listing(tmp_path) == []


def test_convert_refuses_to_replace_its_source(repo_root: Path, tmp_path: Path) -> None:
    image = tmp_path / "image.nii.gz"
    shutil.copy(repo_root / CT, image)
    digest = compute_sha256(image)
    assert main(["convert", str(image), str(image), "--overwrite"]) == ExitCode.OUTPUT_PATH
    assert compute_sha256(image) == digest
