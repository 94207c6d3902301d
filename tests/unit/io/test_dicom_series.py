from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.core import InputError
from medseg.io import read_dicom_series, read_nifti, reorient_like


def test_real_ct_series_geometry(ct_dicom_dir: Path, repo_root: Path) -> None:
    volume = read_dicom_series(ct_dicom_dir)
    assert volume.spatial_shape == (512, 512, 20)
    np.testing.assert_allclose(volume.spacing_mm, (0.9765625, 0.9765625, 2.0), atol=1e-4)
    assert volume.metadata["modality"] == "CT"
    assert volume.array.min() < -900  # HU: rescale applied (air)
    # The reference label (on dcm2niix's LAS grid) maps onto this grid by a flip alone.
    label = read_nifti(repo_root / "data/ct_totalsegmentator/example_seg_dicom.nii.gz")
    assert nib.aff2axcodes(label.affine) == ("L", "A", "S")
    aligned = reorient_like(label, volume)
    assert aligned.spatial_shape == volume.spatial_shape


def test_missing_folder_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="DICOM folder not found"):
        read_dicom_series(tmp_path / "nope")
    with pytest.raises(InputError, match="no DICOM series found"):
        read_dicom_series(tmp_path)
