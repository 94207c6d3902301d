"""Multi-channel reading: stacking, resampling onto the first grid, channel-name errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.core import ChannelError, InputError
from medseg.io import (
    Volume,
    check_channel_names,
    crop_volume,
    find_content_box,
    read_channels,
    resample_to_grid,
)


def _write(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array.astype(np.float32), affine), path)
    return path


def _ramp(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """World x coordinate (mm) of every voxel centre: linear, so trilinear resampling is exact."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return (idx @ affine[:3, :3].T + affine[:3, 3])[..., 0]


def test_same_grid_channels_are_stacked_in_expected_order(tmp_path):
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 6, 5, 4))
    paths = {
        "t1c": _write(tmp_path / "b.nii.gz", b, affine),
        "flair": _write(tmp_path / "a.nii.gz", a, affine),
    }
    volume = read_channels(paths, expected=["flair", "t1c"])
    assert volume.array.shape == (6, 5, 4, 2)
    np.testing.assert_allclose(volume.array[..., 0], a, rtol=1e-6)
    np.testing.assert_allclose(volume.array[..., 1], b, rtol=1e-6)
    np.testing.assert_allclose(volume.affine, affine)
    assert volume.metadata["channels"] == ["flair", "t1c"]


def test_other_grid_is_resampled_onto_the_first(tmp_path):
    first_affine = np.array([[-1.0, 0, 0, 20], [0, 1, 0, -3], [0, 0, 1, 5], [0, 0, 0, 1]])
    second_affine = np.array([[-2.0, 0, 0, 21], [0, 2, 0, -4], [0, 0, 2, 4], [0, 0, 0, 1]])
    first_shape, second_shape = (16, 12, 10), (10, 8, 8)
    paths = {
        "flair": _write(tmp_path / "f.nii.gz", _ramp(first_shape, first_affine), first_affine),
        "t1c": _write(tmp_path / "t.nii.gz", _ramp(second_shape, second_affine), second_affine),
    }
    volume = read_channels(paths, expected=["flair", "t1c"])
    assert volume.spatial_shape == first_shape
    np.testing.assert_allclose(volume.affine, first_affine)
    # inside the second image's field of view, the resampled ramp equals the first's x (mm)
    inner = (slice(2, 14), slice(1, 11), slice(1, 9))
    np.testing.assert_allclose(volume.array[inner][..., 1], volume.array[inner][..., 0], atol=1e-3)


@pytest.mark.parametrize(
    ("given", "words"),
    [
        (["flair"], ["missing t1c"]),
        (["flair", "t1c", "t2"], ["unexpected t2"]),
        (["flair", "flair", "t1c"], ["repeated flair"]),
        (["t1", "t1c"], ["missing flair", "unexpected t1"]),
    ],
)
def test_channel_errors_name_the_expected_channels(given, words):
    with pytest.raises(ChannelError, match="expects channels flair, t1c") as info:
        check_channel_names(given, expected=["flair", "t1c"])
    for word in words:
        assert word in str(info.value)
    assert info.value.expected == ["flair", "t1c"]
    assert isinstance(info.value, InputError)
    assert isinstance(info.value, ValueError)


def test_missing_channel_file_set_is_refused_before_reading(tmp_path):
    with pytest.raises(ChannelError, match="missing t1c"):
        read_channels({"flair": tmp_path / "does-not-exist.nii.gz"}, expected=["flair", "t1c"])


def test_four_d_channel_is_refused(tmp_path):
    path = _write(tmp_path / "f.nii.gz", np.zeros((4, 4, 4, 2)), np.eye(4))
    other = _write(tmp_path / "t.nii.gz", np.zeros((4, 4, 4)), np.eye(4))
    with pytest.raises(ChannelError, match="one 3D image"):
        read_channels({"flair": path, "t1c": other}, expected=["flair", "t1c"])


def test_resample_to_same_grid_is_identity():
    volume = Volume(array=np.arange(27, dtype=np.float32).reshape(3, 3, 3), affine=np.eye(4))
    assert resample_to_grid(volume, volume) is volume


def test_content_box_and_crop_keep_world_positions():
    array = np.full((10, 8, 6), -3.0, dtype=np.float32)
    array[3:6, 2:5, 1:3] = 1.0
    affine = np.array([[-2.0, 0, 0, 10], [0, 1.5, 0, -4], [0, 0, 3, 7], [0, 0, 0, 1]])
    volume = Volume(array=array, affine=affine)
    box = find_content_box(volume, margin=1)
    assert box == (slice(2, 7), slice(1, 6), slice(0, 4))
    cropped = crop_volume(volume, box)
    assert cropped.spatial_shape == (5, 5, 4)
    # voxel (0, 0, 0) of the crop is voxel (2, 1, 0) of the source, at the same world point
    np.testing.assert_allclose(cropped.affine @ [0, 0, 0, 1], affine @ [2, 1, 0, 1])


def test_content_box_of_a_constant_image_is_the_whole_grid():
    volume = Volume(array=np.zeros((4, 3, 2), dtype=np.float32), affine=np.eye(4))
    assert find_content_box(volume) == (slice(0, 4), slice(0, 3), slice(0, 2))
