"""DICOM discovery and validation on real CT slices copied into tmp_path."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medseg.core import GeometryError, InputError
from medseg.io import (
    affine_from_sitk,
    dicom_series_files,
    list_dicom_series,
    read_dicom_series,
    scan_dicom,
)


def _sitk_volume(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0), affine_from_sitk(image)


def test_shuffled_file_names_sort_by_position(make_series, tmp_path: Path) -> None:
    names = ["z.dcm", "a.dcm", "m.dcm", "b.dcm", "y.dcm", "c.dcm"]
    folder = make_series(names=names, folder=tmp_path / "shuffled")
    volume = read_dicom_series(folder)
    files = dicom_series_files(folder)
    assert [p.name for p in files] == names  # slice k was written as names[k]
    array, affine = _sitk_volume(folder)
    np.testing.assert_array_equal(volume.array, array)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-4)
    assert volume.array.shape == (512, 512, 6)


def test_deleted_slice_is_a_geometry_error(make_series) -> None:
    folder = make_series(n=6)
    (folder / "slice_003.dcm").unlink()
    (series,) = scan_dicom(folder).series
    assert series.n_slices == 5
    assert any("missing slice" in p for p in series.problems)
    with pytest.raises(GeometryError, match="missing slice"):
        read_dicom_series(folder)
    # The end slices are not gaps: deleting the last one leaves a regular stack.
    folder2 = make_series(n=6)
    (folder2 / "slice_005.dcm").unlink()
    assert read_dicom_series(folder2).spatial_shape == (512, 512, 5)


def test_duplicated_file_is_ignored_with_warning(make_series) -> None:
    folder = make_series(n=5)
    shutil.copy(folder / "slice_002.dcm", folder / "copy_of_slice_002.dcm")
    (series,) = scan_dicom(folder).series
    assert series.n_slices == 5
    assert any("duplicate file" in w for w in series.warnings)
    assert read_dicom_series(folder).spatial_shape == (512, 512, 5)


def test_same_position_different_instance_is_refused(make_series, ct_slices) -> None:
    folder = make_series(n=4)
    make_series(
        n=1, folder=folder, names=["extra.dcm"], series_uid=scan_dicom(folder).series[0].series_uid
    )
    (series,) = scan_dicom(folder).series
    assert any("duplicate slice position" in p for p in series.problems)
    with pytest.raises(GeometryError, match="duplicate slice position"):
        read_dicom_series(folder)


def test_non_uniform_spacing_is_refused(make_series, tmp_path: Path) -> None:
    folder = make_series(n=3, spacing_mm=2.0, folder=tmp_path / "s")
    uid = scan_dicom(folder).series[0].series_uid
    make_series(
        n=1,
        origin=(-250.0, -250.0, -800.0 + 4.9),
        names=["odd.dcm"],
        folder=tmp_path / "s",
        series_uid=uid,
    )
    (folder / "slice_002.dcm").unlink()
    (series,) = scan_dicom(folder).series
    assert any("non-uniform" in p for p in series.problems)


def test_gantry_tilt_warns_and_keeps_true_positions(make_series) -> None:
    step = (0.0, 0.3, 2.0)  # slices shift 0.3 mm posteriorly per 2 mm: 8.5° tilt
    folder = make_series(n=5, step=step)
    (series,) = scan_dicom(folder).series
    assert any("gantry tilt 8.53°" in w for w in series.warnings)
    volume = read_dicom_series(folder)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ volume.affine
    for k in range(5):  # voxel (0, 0, k) is at slice k's ImagePositionPatient
        expected = np.array([-250.0, -250.0, -800.0]) + k * np.asarray(step)
        np.testing.assert_allclose(lps @ [0, 0, k, 1], [*expected, 1.0], atol=1e-4)


def test_repeated_acquisition_is_split(make_series, tmp_path: Path) -> None:
    import pydicom

    folder = make_series(n=3, folder=tmp_path / "acq")
    uid = scan_dicom(folder).series[0].series_uid
    second = make_series(n=3, folder=tmp_path / "acq2", series_uid=uid)
    for path in second.iterdir():
        ds = pydicom.dcmread(path)
        ds.AcquisitionNumber = 2
        ds.save_as(folder / f"second_{path.name}")
    series = scan_dicom(folder).series
    assert [s.key for s in series] == [f"{uid}#1", f"{uid}#2"]
    assert all(s.n_slices == 3 and not s.problems for s in series)
    with pytest.raises(InputError, match="split into 2 stacks"):
        read_dicom_series(folder, series_uid=uid)
    assert read_dicom_series(folder, series_uid=f"{uid}#2").spatial_shape == (512, 512, 3)


def test_mixed_orientation_series_is_split(repo_root: Path) -> None:
    folder = repo_root / "data/dicom_corpus/series_and_seg/pydicom_bundled/MR700_series"
    series = scan_dicom(folder).series
    assert len(series) == 7
    assert all(s.n_slices == 1 for s in series)
    assert all("mixed orientation" in s.warnings[0] for s in series)
    with pytest.raises(InputError, match="holds 7 series; choose one with --series"):
        read_dicom_series(folder)


def test_real_pydicom_series_with_gap(repo_root: Path) -> None:
    folder = repo_root / "data/dicom_corpus/series_and_seg/pydicom_bundled/CT2_series"
    with pytest.raises(GeometryError, match="1 gap"):
        read_dicom_series(folder)


def test_zip_input_matches_folder(ct_dicom_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(ct_dicom_dir.iterdir()):
            out.write(path, f"nested/dir/{path.name}")
        out.writestr("README.txt", "not dicom")
    from_zip = read_dicom_series(archive)
    from_folder = read_dicom_series(ct_dicom_dir)
    np.testing.assert_array_equal(from_zip.array, from_folder.array)
    np.testing.assert_array_equal(from_zip.affine, from_folder.affine)
    assert list_dicom_series(archive) == list_dicom_series(ct_dicom_dir)


def test_zip_input_native_pixels(make_series, tmp_path: Path) -> None:
    folder = make_series(n=4)
    archive = tmp_path / "native.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.iterdir()):
            out.write(path, path.name)
    np.testing.assert_array_equal(read_dicom_series(archive).array, read_dicom_series(folder).array)


def test_truncated_and_foreign_files_are_skipped(make_series) -> None:
    folder = make_series(n=6)
    data = (folder / "slice_005.dcm").read_bytes()
    (folder / "slice_005.dcm").write_bytes(data[: len(data) // 2])  # pixels cut
    header = (folder / "slice_004.dcm").read_bytes()
    (folder / "slice_004.dcm").write_bytes(header[:900])  # header cut
    (folder / "notes.txt").write_text("hello")
    scan = scan_dicom(folder)
    reasons = {Path(name).name: reason for name, reason in scan.skipped}
    assert sorted(reasons) == ["slice_004.dcm", "slice_005.dcm"]
    assert "truncated" in reasons["slice_005.dcm"]
    assert "truncated" in reasons["slice_004.dcm"]
    assert scan.series[0].n_slices == 4
    assert read_dicom_series(folder).spatial_shape == (512, 512, 4)


def test_several_series_need_a_choice(make_series, tmp_path: Path) -> None:
    make_series(n=2, folder=tmp_path / "two" / "a")
    make_series(n=3, folder=tmp_path / "two" / "b")
    keys = list_dicom_series(tmp_path / "two")
    assert len(keys) == 2
    with pytest.raises(InputError, match="holds 2 series; choose one with --series") as info:
        read_dicom_series(tmp_path / "two")
    assert all(key in str(info.value) for key in keys)
    sizes = {read_dicom_series(tmp_path / "two", series_uid=k).spatial_shape[2] for k in keys}
    assert sizes == {2, 3}
    with pytest.raises(InputError, match="not found; choices"):
        read_dicom_series(tmp_path / "two", series_uid="1.2.3")


def test_missing_and_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="DICOM input not found"):
        read_dicom_series(tmp_path / "nope")
    with pytest.raises(InputError, match="no DICOM image series found"):
        read_dicom_series(tmp_path)
