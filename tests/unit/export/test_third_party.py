"""Readers against files written by other tools (dcmqi SEG + NRRD, rt-utils RTSTRUCT)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from medseg.export import map_mask_to_series, read_dicom_seg, read_rtstruct, read_source_series
from medseg.io import LPS_TO_RAS, Volume, affine_from_sitk
from tests.unit.export.test_rtstruct import _contour_centroid_lps

CORPUS = Path("data/dicom_corpus/series_and_seg")


def test_dcmqi_seg_matches_its_nrrd(repo_root: Path) -> None:
    """dcmqi wrote liver.dcm from liver_seg.nrrd; reading the SEG gives the NRRD's voxels."""
    folder = repo_root / CORPUS / "dcmqi_ct3slice_seg"
    series = read_source_series(folder / "ct")
    image = sitk.ReadImage(str(folder / "seg_nrrd" / "liver_seg.nrrd"))
    nrrd = Volume(
        array=sitk.GetArrayFromImage(image).transpose(2, 1, 0), affine=affine_from_sitk(image)
    )
    expected = map_mask_to_series(nrrd, series).array
    back, names = read_dicom_seg(folder / "dicom_seg" / "liver.dcm", series)
    assert names == {1: "Liver"}
    assert expected.sum() > 100_000
    np.testing.assert_array_equal(back.array, expected)


def test_rtutils_rtstruct_rasterises_where_its_contours_are(
    repo_root: Path, tmp_path: Path
) -> None:
    folder = repo_root / CORPUS / "rtutils_phantom_rtstruct"
    for name in ("ct_1.dcm", "ct_2.dcm"):  # the series without the RTSTRUCT beside it
        shutil.copy(folder / name, tmp_path / name)
    series = read_source_series(tmp_path)
    back, names = read_rtstruct(folder / "rt.dcm", series)
    assert names == {1: "ROI-1"}
    mask = back.array[..., 0]
    assert mask.sum() > 0
    centroid_ras = back.affine @ np.append(np.argwhere(mask).mean(axis=0), 1)
    spacing = np.asarray(series.volume.spacing_mm)
    got = _contour_centroid_lps(pydicom.dcmread(folder / "rt.dcm"), 1, spacing[2])
    assert np.all(np.abs((LPS_TO_RAS @ centroid_ras)[:3] - got) < 0.5 * spacing)
