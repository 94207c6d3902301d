from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from medseg.io import affine_from_sitk, read_dicom_series, read_nifti, reorient_like


def test_real_ct_series_geometry(ct_dicom_dir: Path, repo_root: Path) -> None:
    volume = read_dicom_series(ct_dicom_dir)
    assert volume.spatial_shape == (512, 512, 20)
    np.testing.assert_allclose(volume.spacing_mm, (0.9765625, 0.9765625, 2.0), atol=1e-4)
    assert volume.metadata["modality"] == "CT"
    assert volume.array.dtype == np.int16
    assert volume.array.min() < -900  # HU: rescale applied (air)
    # The reference label (on dcm2niix's LAS grid) maps onto this grid by a flip alone.
    label = read_nifti(repo_root / "data/ct_totalsegmentator/example_seg_dicom.nii.gz")
    assert nib.aff2axcodes(label.affine) == ("L", "A", "S")
    aligned = reorient_like(label, volume)
    assert aligned.spatial_shape == volume.spatial_shape


def test_real_ct_series_matches_simpleitk(ct_dicom_dir: Path) -> None:
    volume = read_dicom_series(ct_dicom_dir, n_threads=2)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct_dicom_dir)))
    image = reader.Execute()
    np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(image).transpose(2, 1, 0))
    np.testing.assert_allclose(volume.affine, affine_from_sitk(image), atol=1e-6)
