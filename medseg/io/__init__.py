"""Image IO with exact geometry, and dataset manifests (no torch here).

Every reader returns a :class:`Volume`: array axes (i, j, k[, channel]) in file order
(DICOM: column, row, slice), affine voxel → RAS+ mm.
"""

from __future__ import annotations

from medseg.io._channels import (
    check_channel_names,
    crop_volume,
    find_content_box,
    read_channels,
    resample_to_grid,
)
from medseg.io._convert import convert_image, flip_axis, to_dcm2niix_layout, to_output_layout
from medseg.io._dataset import load_cases, resolve_case_paths
from medseg.io._dicom import (
    affine_from_sitk,
    choose_dicom_series,
    dicom_series_files,
    list_dicom_series,
    load_dicom_series,
    read_dicom_series,
)
from medseg.io._dicom_scan import DicomScan, DicomSeries, scan_dicom
from medseg.io._image2d import (
    IMAGE_2D_SUFFIXES,
    WRITE_2D_SUFFIXES,
    collapse_grey_channels,
    read_image_2d,
    write_image_2d,
)
from medseg.io._itk import ITK_SUFFIXES, read_itk_image, write_itk_image
from medseg.io._labels import (
    LABEL_SIDECAR_FORMAT,
    label_names,
    label_sidecar_path,
    read_label_sidecar,
    write_label_map,
    write_label_sidecar,
)
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
from medseg.io._read import (
    WRITE_SUFFIXES,
    check_volume_is_sane,
    is_dicom_file,
    read_image,
    write_image,
)
from medseg.io._volume import LPS_TO_RAS, Volume, check_same_grid

__all__ = [
    "IMAGE_2D_SUFFIXES",
    "ITK_SUFFIXES",
    "LABEL_SIDECAR_FORMAT",
    "LPS_TO_RAS",
    "WRITE_2D_SUFFIXES",
    "WRITE_SUFFIXES",
    "Case",
    "DatasetManifest",
    "DicomScan",
    "DicomSeries",
    "ManifestFile",
    "ReferenceStandard",
    "Source",
    "Split",
    "Volume",
    "affine_from_sitk",
    "axis_codes",
    "check_channel_names",
    "check_same_grid",
    "check_volume_is_sane",
    "choose_dicom_series",
    "collapse_grey_channels",
    "convert_image",
    "crop_volume",
    "dicom_series_files",
    "find_content_box",
    "find_manifest_problems",
    "flip_axis",
    "is_dicom_file",
    "label_names",
    "label_sidecar_path",
    "list_dicom_series",
    "load_cases",
    "load_dicom_series",
    "load_manifest",
    "manifest_root",
    "read_channels",
    "read_dicom_series",
    "read_image",
    "read_image_2d",
    "read_itk_image",
    "read_label_sidecar",
    "read_nifti",
    "reorient",
    "reorient_like",
    "resample_to_grid",
    "resolve_case_paths",
    "scan_dicom",
    "to_dcm2niix_layout",
    "to_output_layout",
    "verify_manifest",
    "write_image",
    "write_image_2d",
    "write_itk_image",
    "write_label_map",
    "write_label_sidecar",
    "write_nifti",
]
