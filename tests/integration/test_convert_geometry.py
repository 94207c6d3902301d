"""Proof of geometry: ``medseg convert`` against dcm2niix (the Debian binary) and
SimpleITK's ImageSeriesReader on the real CT, on an oblique series made from its slices,
and on the real oblique MR slices of pydicom's MR700 series."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid
from scipy.spatial.transform import Rotation

from medseg.cli import main
from medseg.io import affine_from_sitk, check_same_grid, read_nifti, scan_dicom

pytestmark = pytest.mark.integration

DCM2NIIX = shutil.which("dcm2niix") or "/usr/bin/dcm2niix"


def _dcm2niix(folder: Path, out: Path) -> list[nib.Nifti1Image]:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [DCM2NIIX, "-z", "y", "-b", "n", "-f", "ref", "-o", str(out), str(folder)],
        check=True,
        capture_output=True,
    )
    return [nib.load(str(p)) for p in sorted(out.glob("ref*.nii.gz"))]


def _sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _convert(source: Path, target: Path, *extra: str) -> nib.Nifti1Image:
    assert main(["convert", str(source), str(target), *extra]) == 0
    return nib.load(str(target))


def _assert_matches_references(folder: Path, ours: nib.Nifti1Image, tmp_path: Path) -> None:
    (reference,) = _dcm2niix(folder, tmp_path / "dcm2niix")
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours.affine, reference.affine, atol=1e-3)
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), np.asanyarray(reference.dataobj))
    # SimpleITK keeps DICOM row order: ours is the same data with the row axis reversed.
    image = _sitk_series(folder)
    itk_array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj)[:, ::-1, :], itk_array)
    flip = np.eye(4)
    flip[1, 1], flip[1, 3] = -1.0, ours.shape[1] - 1
    np.testing.assert_allclose(ours.affine @ flip, affine_from_sitk(image), atol=1e-3)


def test_convert_real_ct_matches_dcm2niix_and_simpleitk(
    ct_dicom_dir: Path, repo_root: Path, tmp_path: Path
) -> None:
    ours = _convert(ct_dicom_dir, tmp_path / "ct.nii.gz")
    assert ours.shape == (512, 512, 20)
    assert nib.aff2axcodes(ours.affine) == ("L", "A", "S")
    assert ours.get_data_dtype() == np.int16
    _assert_matches_references(ct_dicom_dir, ours, tmp_path)
    # TotalSegmentator's mask, made on dcm2niix's conversion, overlays ours exactly.
    seg = read_nifti(repo_root / "data/ct_totalsegmentator/example_seg_dicom.nii.gz")
    converted = read_nifti(tmp_path / "ct.nii.gz")
    assert seg.spatial_shape == converted.spatial_shape
    check_same_grid(converted, seg, tolerance_mm=1e-3)


@pytest.mark.parametrize(
    ("angles_deg", "reverse_rows"),
    [((20.0, -15.0, 10.0), False), ((95.0, 5.0, -30.0), True), ((0.0, 0.0, 0.0), True)],
)
def test_oblique_series_matches_dcm2niix_and_simpleitk(
    ct_dicom_dir: Path, tmp_path: Path, angles_deg: tuple[float, ...], reverse_rows: bool
) -> None:
    rotation = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    row, column = rotation @ [1.0, 0.0, 0.0], rotation @ [0.0, 1.0, 0.0]
    if reverse_rows:
        row = -row
    normal = np.cross(row, column)
    folder = tmp_path / "oblique"
    folder.mkdir()
    uid = generate_uid()
    for k, path in enumerate(sorted(ct_dicom_dir.iterdir())[:5]):
        ds = copy.deepcopy(pydicom.dcmread(path))
        ds.SeriesInstanceUID = uid
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *column)]
        ds.ImagePositionPatient = [
            f"{v:.4f}" for v in np.array([-100.0, 20.0, 30.0]) + 2.5 * k * normal
        ]
        ds.save_as(folder / f"{(3 * k) % 5}.dcm")  # file names do not follow positions
    ours = _convert(folder, tmp_path / "oblique.nii.gz")
    _assert_matches_references(folder, ours, tmp_path)


def test_real_oblique_mr_slices_match_dcm2niix(repo_root: Path, tmp_path: Path) -> None:
    folder = repo_root / "data/dicom_corpus/series_and_seg/pydicom_bundled/MR700_series"
    series = scan_dicom(folder).series
    assert len(series) == 7
    for index, item in enumerate(series):
        (single,) = item.files
        one = tmp_path / f"one{index}"
        one.mkdir()
        shutil.copy(single, one / single.name)
        (reference,) = _dcm2niix(one, tmp_path / f"ref{index}")
        ours = _convert(folder, tmp_path / f"mr{index}.nii.gz", "--series", item.key)
        assert ours.shape == reference.shape[:3] == (16, 16, 1)
        np.testing.assert_allclose(ours.affine, reference.affine, atol=1e-3)
        np.testing.assert_array_equal(
            np.asanyarray(ours.dataobj), np.asanyarray(reference.dataobj).reshape(16, 16, 1)
        )


def test_convert_refuses_overwrite_and_lists_series(
    ct_dicom_dir: Path, repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "ct.nii.gz"
    target.write_bytes(b"keep me")
    assert main(["convert", str(ct_dicom_dir), str(target)]) == 11
    assert target.read_bytes() == b"keep me"
    assert main(["convert", str(ct_dicom_dir), str(target), "--overwrite"]) == 0
    assert nib.load(str(target)).shape == (512, 512, 20)
    capsys.readouterr()
    mixed = repo_root / "data/dicom_corpus/series_and_seg/pydicom_bundled/MR700_series"
    assert main(["convert", str(mixed), str(tmp_path / "mr.nii.gz")]) == 4
    err = capsys.readouterr().err
    assert "choose one with --series" in err
    assert all(s.key in err for s in scan_dicom(mixed).series)


def test_inspect_json_and_table(repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = repo_root / "data/dicom_corpus/series_and_seg"
    assert main(["inspect", str(folder), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    by_modality = {}
    for item in payload["series"]:
        by_modality.setdefault(item["modality"], []).append(item)
    assert {"CT", "MR", "SEG"} <= set(by_modality)
    gap = [s for s in payload["series"] if any("missing slice" in p for p in s["problems"])]
    assert gap  # pydicom's CT2_series misses slices
    assert {Path(s["file"]).name for s in payload["skipped"]} == {"rwvm.dcm", "sr.dcm", "rt.dcm"}
    assert main(["inspect", str(folder / "pydicom_bundled/MR700_series")]) == 0
    out = capsys.readouterr().out
    assert "7 series in 7 file(s), 0 skipped" in out
    assert "mixed orientation" in out


def test_enhanced_multiframe_ct_matches_dcm2niix(repo_root: Path, tmp_path: Path) -> None:
    source = repo_root / "data/dicom_corpus/pydicom_data/eCT_Supplemental.dcm"
    folder = tmp_path / "enhanced"
    folder.mkdir()
    shutil.copy(source, folder / source.name)
    (reference,) = _dcm2niix(folder, tmp_path / "dcm2niix")
    ours = _convert(source, tmp_path / "ect.nii.gz")
    assert ours.shape == reference.shape == (512, 512, 2)
    np.testing.assert_allclose(ours.affine, reference.affine, atol=1e-3)
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), np.asanyarray(reference.dataobj))
