"""`medseg export …` on the real CT: the review package, each subcommand, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.cli import main
from medseg.core import ExitCode, compute_sha256
from medseg.io import read_nifti

pytestmark = pytest.mark.integration

MASK = "data/ct_totalsegmentator/example_seg_dicom.nii.gz"
LABELS = "data_manifests/ct_totalsegmentator.yaml"


@pytest.fixture
def common(repo_root: Path, ct_dicom_dir: Path) -> list[str]:
    return [
        "--source", str(ct_dicom_dir), "--mask", str(repo_root / MASK),
        "--labels", str(repo_root / LABELS), "--root", str(repo_root),
    ]  # fmt: skip


def test_review_package(
    common: list[str], repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "review"
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"hd95_mm": {"liver": 3.1}}))
    args = ["export", "review", *common, "--complete-uids", "--out", str(out)]
    code = main([*args, "--reference", str(repo_root / MASK), "--metrics", str(metrics)])
    assert code == ExitCode.OK, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {
        "manifest.json"
    }
    assert set(listed) == on_disk
    assert all(compute_sha256(out / path) == digest for path, digest in listed.items())
    for name in (
        "segmentation_seg.dcm",
        "segmentation_rtstruct.dcm",
        "labels.nii.gz",
        "segmentation.seg.nrrd",
        "labels.ctbl",
        "overlay.png",
        "structures.json",
        "metrics.json",
    ):
        assert name in listed, name
    assert sum(1 for p in listed if p.startswith("source_dicom/")) == 20
    assert manifest["dciodvfy_errors"] == {
        "segmentation_seg.dcm": 0,
        "segmentation_rtstruct.dcm": 0,
    }
    metrics_out = json.loads((out / "metrics.json").read_text())
    assert len(metrics_out["dice_vs_reference"]) == 31
    assert set(metrics_out["dice_vs_reference"].values()) == {1.0}
    assert metrics_out["provided"] == {"hd95_mm": {"liver": 3.1}}
    structures = json.loads((out / "structures.json").read_text())
    liver = next(s for s in structures if s["name"] == "liver")
    assert liver["snomed_type"] == ["10200004", "Liver"]
    assert liver["n_voxels"] == 366708
    # The package's NIfTI is the input label map, on the DICOM grid (LPS) now.
    original, exported = read_nifti(repo_root / MASK), read_nifti(out / "labels.nii.gz")
    for value in (5, 117):
        a = original.affine @ np.append(np.argwhere(original.array == value).mean(0), 1)
        b = exported.affine @ np.append(np.argwhere(exported.array == value).mean(0), 1)
        np.testing.assert_allclose(a, b, atol=1e-6)
    # Existing output is refused without --overwrite.
    assert main(args) == ExitCode.OUTPUT_EXISTS


def test_blank_uids_need_the_flag_one_line_error(
    common: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["export", "seg", *common, "--out", str(tmp_path / "seg.dcm")])
    err = capsys.readouterr().err
    assert code == ExitCode.INPUT
    assert err.count("\n") == 1
    assert "--complete-uids" in err
    assert not (tmp_path / "seg.dcm").exists()


def test_seg_and_rtstruct_commands(
    common: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["export", "seg", *common, "--complete-uids", "--out", str(tmp_path / "s.dcm")])
    assert code == ExitCode.OK
    assert "31 segments" in capsys.readouterr().out
    assert len(list((tmp_path / "source_dicom").glob("*.dcm"))) == 20
    code = main(
        ["export", "rtstruct", *common, "--complete-uids", "--overwrite", "--out",
         str(tmp_path / "r.dcm")]
    )  # fmt: skip
    assert code == ExitCode.OK
    assert "31 ROIs" in capsys.readouterr().out


def test_completed_series_clash_refused_before_writing(
    common: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing source_dicom/ copy stops the export before the SEG is written."""
    out = tmp_path / "s.dcm"
    assert main(["export", "seg", *common, "--complete-uids", "--out", str(out)]) == ExitCode.OK
    out.unlink()
    before = {p.name: compute_sha256(p) for p in (tmp_path / "source_dicom").iterdir()}
    capsys.readouterr()
    code = main(["export", "seg", *common, "--complete-uids", "--out", str(out)])
    err = capsys.readouterr().err
    assert code != ExitCode.OK
    assert "--overwrite" in err
    assert "source_dicom" in err
    assert not out.exists()
    assert not list(tmp_path.glob(".*tmp*"))
    after = {p.name: compute_sha256(p) for p in (tmp_path / "source_dicom").iterdir()}
    assert after == before


def test_slicer_and_overlay_commands(
    common: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "slicer", *common, "--out", str(tmp_path / "slicer")]) == ExitCode.OK
    assert {p.name for p in (tmp_path / "slicer").iterdir()} == {
        "labels.nii.gz",
        "labels.labels.json",  # names and codes travel with the label map
        "segmentation.seg.nrrd",
        "labels.ctbl",
    }
    assert main(["export", "overlay", *common, "--out", str(tmp_path / "o.png")]) == ExitCode.OK
    assert (tmp_path / "o.png").stat().st_size > 10_000


@pytest.mark.parametrize("action", ["seg", "rtstruct", "slicer", "overlay", "review", "pacs"])
def test_every_action_has_help_with_an_example(
    action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["export", action, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"medseg export {action}" in out
    assert "example" in out


def test_fractional_seg_from_a_4d_probability_nifti(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medseg.export import read_dicom_seg, read_source_series
    from medseg.io import write_nifti
    from tests.unit.export.conftest import COLUMNS, ROWS, SLICES, write_series

    folder = write_series(tmp_path / "series")
    series = read_source_series(folder)
    rng = np.random.default_rng(7)
    probabilities = rng.random((COLUMNS, ROWS, SLICES, 2)).astype(np.float32)
    write_nifti(series.volume.with_array(probabilities), tmp_path / "p.nii.gz")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"1": "tumour", "2": "edema"}))
    out = tmp_path / "p.dcm"
    code = main(
        ["export", "seg", "--source", str(folder), "--mask", str(tmp_path / "p.nii.gz"),
         "--labels", str(labels), "--type", "fractional", "--out", str(out)]
    )  # fmt: skip
    assert code == ExitCode.OK, capsys.readouterr().err
    back, names = read_dicom_seg(out, series)
    assert names == {1: "tumour", 2: "edema"}
    np.testing.assert_allclose(back.array, probabilities, atol=0.5 / 255 + 1e-6)


def test_review_labelmap_package(
    common: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "review"
    code = main(
        ["export", "review", *common, "--complete-uids", "--type", "labelmap", "--out", str(out)]
    )
    assert code == ExitCode.OK, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["segmentation_type"] == "labelmap"
    # dciodvfy checks the RTSTRUCT; it has no Label Map Segmentation IOD for the SEG.
    assert manifest["dciodvfy_errors"] == {"segmentation_rtstruct.dcm": 0}
