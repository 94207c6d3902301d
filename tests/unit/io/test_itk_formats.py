"""NRRD/MHA/NIfTI reading and writing: geometry round trips (LPS ↔ RAS), label dtypes,
atomic writes. Oracles: pynrrd and SimpleITK reading the same files independently."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from medseg.core import GeometryError, OutputExistsError
from medseg.io import (
    LPS_TO_RAS,
    Volume,
    affine_from_sitk,
    axis_codes,
    check_same_grid,
    read_dicom_series,
    read_image,
    reorient,
    write_image,
    write_nifti,
)

SEG_NRRD = "data/dicom_corpus/series_and_seg/dcmqi_ct3slice_seg"


def _oblique_volume(rng: np.random.Generator, dtype: str = "int16") -> Volume:
    rotation = Rotation.from_euler("xyz", (17.0, -23.0, 41.0), degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.7, 0.9, 2.5])
    affine[:3, 3] = (12.5, -40.25, 101.0)
    array = rng.integers(0, 900, size=(7, 5, 4)).astype(dtype)
    return Volume(array=array, affine=affine)


def test_real_nrrd_matches_pynrrd_and_overlays_its_ct(repo_root: Path) -> None:
    path = repo_root / SEG_NRRD / "seg_nrrd/liver_seg.nrrd"
    volume = read_image(path)
    data, header = nrrd.read(str(path))  # (i, j, k) in file order, like ours
    np.testing.assert_array_equal(volume.array, data)
    assert header["space"] == "left-posterior-superior"
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(header["space directions"]).T
    lps[:3, 3] = header["space origin"]
    np.testing.assert_allclose(volume.affine, LPS_TO_RAS @ lps, atol=1e-9)
    ct = read_dicom_series(repo_root / SEG_NRRD / "ct")
    check_same_grid(ct, volume, tolerance_mm=1e-3)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii.gz"])
def test_oblique_round_trip_keeps_geometry_and_labels(suffix: str, tmp_path: Path) -> None:
    volume = _oblique_volume(np.random.default_rng(0))
    path = write_image(volume, tmp_path / f"labels{suffix}")
    back = read_image(path)
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-5)
    # SimpleITK reads the same file independently (LPS internally).
    image = sitk.ReadImage(str(path))
    np.testing.assert_allclose(affine_from_sitk(image), volume.affine, atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image).transpose(2, 1, 0), volume.array)


def test_nrrd_written_is_read_by_pynrrd_in_lps(tmp_path: Path) -> None:
    volume = _oblique_volume(np.random.default_rng(1), dtype="uint16")
    path = write_image(volume, tmp_path / "x.nrrd")
    data, header = nrrd.read(str(path))
    np.testing.assert_array_equal(data, volume.array)
    ras_directions = LPS_TO_RAS[:3, :3] @ np.asarray(header["space directions"]).T
    np.testing.assert_allclose(ras_directions, volume.affine[:3, :3], atol=1e-5)


def test_masks_are_integers(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    mask = Volume(array=rng.random((4, 4, 3)) > 0.5, affine=np.eye(4))
    assert nib.load(str(write_nifti(mask, tmp_path / "m.nii.gz"))).get_data_dtype() == np.uint8
    labels = Volume(
        array=np.array([0, 1, 300, 7]).reshape(2, 2, 1).astype(np.int64), affine=np.eye(4)
    )
    assert nib.load(str(write_nifti(labels, tmp_path / "l.nii.gz"))).get_data_dtype() == np.int16
    assert read_image(write_image(mask, tmp_path / "m.nrrd")).array.dtype == np.uint8


def test_sheared_affine(tmp_path: Path) -> None:
    affine = np.eye(4)
    affine[1, 2] = 0.3  # gantry tilt: slice step has an in-plane component
    volume = Volume(array=np.zeros((3, 3, 3), dtype=np.int16), affine=affine)
    with pytest.raises(GeometryError, match="sheared"):
        write_image(volume, tmp_path / "x.nrrd")
    image = nib.load(str(write_nifti(volume, tmp_path / "x.nii.gz")))
    np.testing.assert_allclose(image.get_sform(), affine)
    assert int(image.header["qform_code"]) == 0
    assert not (tmp_path / "x.nrrd").exists()


def test_refuses_to_overwrite_and_leaves_no_temp_files(tmp_path: Path) -> None:
    volume = _oblique_volume(np.random.default_rng(3))
    target = tmp_path / "x.nrrd"
    write_image(volume, target)
    before = target.read_bytes()
    with pytest.raises(OutputExistsError):
        write_image(volume.with_array(volume.array + 1), target)
    assert target.read_bytes() == before
    write_image(volume.with_array(volume.array + 1), target, overwrite=True)
    assert read_image(target).array[0, 0, 0] == volume.array[0, 0, 0] + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nrrd"]


def test_lps_ras_round_trip_keeps_world_positions() -> None:
    volume = _oblique_volume(np.random.default_rng(4))
    world = volume.affine @ [2, 3, 1, 1]
    value = volume.array[2, 3, 1]
    for codes in ("LPS", "RAS", "LAS", "PIR"):
        moved = reorient(volume, codes)
        assert axis_codes(moved) == codes
        index = np.rint(np.linalg.solve(moved.affine, world)[:3]).astype(int)
        assert moved.array[tuple(index)] == value
        back = reorient(moved, axis_codes(volume))
        np.testing.assert_array_equal(back.array, volume.array)
        np.testing.assert_allclose(back.affine, volume.affine, atol=1e-9)


def test_2d_mha_vector_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 255, size=(6, 4, 3)).astype(np.uint8)  # (row, column, C)
    image = sitk.GetImageFromArray(rgb, isVector=True)
    image.SetSpacing((0.5, 0.25))
    sitk.WriteImage(image, str(tmp_path / "rgb.mha"))
    volume = read_image(tmp_path / "rgb.mha")
    assert volume.array.shape == (4, 6, 1, 3)
    np.testing.assert_array_equal(volume.array[:, :, 0], rgb.transpose(1, 0, 2))
    np.testing.assert_allclose(volume.spacing_mm, (0.5, 0.25, 1.0))
