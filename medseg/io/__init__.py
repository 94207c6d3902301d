"""Image IO with exact geometry, and dataset manifests (no torch here)."""

from __future__ import annotations

from medseg.io._dicom import (
    affine_from_sitk,
    dicom_series_files,
    list_dicom_series,
    read_dicom_series,
)
from medseg.io._image2d import IMAGE_2D_SUFFIXES, read_image_2d
from medseg.io._manifest import (
    Case,
    DatasetManifest,
    ManifestFile,
    ReferenceStandard,
    Source,
    Split,
    find_manifest_problems,
    load_manifest,
    manifest_root,
    verify_manifest,
)
from medseg.io._nifti import read_nifti, write_nifti
from medseg.io._orientation import axis_codes, reorient, reorient_like
from medseg.io._read import check_volume_is_sane, read_image
from medseg.io._volume import LPS_TO_RAS, Volume, check_same_grid

__all__ = [
    "IMAGE_2D_SUFFIXES",
    "LPS_TO_RAS",
    "Case",
    "DatasetManifest",
    "ManifestFile",
    "ReferenceStandard",
    "Source",
    "Split",
    "Volume",
    "affine_from_sitk",
    "axis_codes",
    "check_same_grid",
    "check_volume_is_sane",
    "dicom_series_files",
    "find_manifest_problems",
    "list_dicom_series",
    "load_manifest",
    "manifest_root",
    "read_dicom_series",
    "read_image",
    "read_image_2d",
    "read_nifti",
    "reorient",
    "reorient_like",
    "verify_manifest",
    "write_nifti",
]
