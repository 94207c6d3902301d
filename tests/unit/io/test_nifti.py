from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.io import read_image


def test_two_d_nifti_is_one_slice_like_every_2d_reader(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(array, np.diag([0.5, 0.7, 1.0, 1.0])), path)
    volume = read_image(path)
    assert volume.array.shape == (4, 3, 1)
    assert volume.metadata["is_2d"] is True
    np.testing.assert_array_equal(volume.array[:, :, 0], array)
