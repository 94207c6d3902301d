"""Exports for review: DICOM SEG, RTSTRUCT, Slicer files, overlays, review packages, PACS."""

from __future__ import annotations

from medseg.export._confidence import (
    CONFIDENCE_NIFTI_NAME,
    CONFIDENCE_SEG_NAME,
    DISAGREEMENT_NIFTI_NAME,
    write_confidence_maps,
    write_confidence_seg,
)
from medseg.export._overlay import (
    AXIAL_MARKERS,
    CORONAL_MARKERS,
    SAGITTAL_MARKERS,
    describe_structures,
    write_contour_overlay,
    write_overlay_montage,
    write_volume_overlay,
)
from medseg.export._pacs import (
    PacsNode,
    StoreResult,
    collect_dicom_files,
    find_series_instances,
    send_dicom_files,
    send_dicomweb,
    verify_stored,
)
from medseg.export._review import ReviewPackage, write_review_package
from medseg.export._rtstruct import (
    rasterise_slice_contours,
    read_rtstruct,
    trace_slice_contours,
    write_rtstruct,
)
from medseg.export._seg import AlgorithmType, SegmentationType, read_dicom_seg, write_dicom_seg
from medseg.export._series import (
    SourceSeries,
    map_mask_to_series,
    read_source_series,
    source_series_paths,
    write_source_series,
)
from medseg.export._slicer import write_color_table, write_label_nifti, write_seg_nrrd
from medseg.export._structures import (
    Structure,
    StructureCode,
    StructureCodeMap,
    build_structures,
    describe_labels,
    load_structure_codes,
    recommended_colour,
    structure_code_from_entry,
)
from medseg.export._validate import IodReport, validate_dicom_iod

__all__ = [
    "AXIAL_MARKERS",
    "CONFIDENCE_NIFTI_NAME",
    "CONFIDENCE_SEG_NAME",
    "CORONAL_MARKERS",
    "DISAGREEMENT_NIFTI_NAME",
    "SAGITTAL_MARKERS",
    "AlgorithmType",
    "IodReport",
    "PacsNode",
    "ReviewPackage",
    "SegmentationType",
    "SourceSeries",
    "StoreResult",
    "Structure",
    "StructureCode",
    "StructureCodeMap",
    "build_structures",
    "collect_dicom_files",
    "describe_labels",
    "describe_structures",
    "find_series_instances",
    "load_structure_codes",
    "map_mask_to_series",
    "rasterise_slice_contours",
    "read_dicom_seg",
    "read_rtstruct",
    "read_source_series",
    "recommended_colour",
    "send_dicom_files",
    "send_dicomweb",
    "source_series_paths",
    "structure_code_from_entry",
    "trace_slice_contours",
    "validate_dicom_iod",
    "verify_stored",
    "write_color_table",
    "write_confidence_maps",
    "write_confidence_seg",
    "write_contour_overlay",
    "write_dicom_seg",
    "write_label_nifti",
    "write_overlay_montage",
    "write_review_package",
    "write_rtstruct",
    "write_seg_nrrd",
    "write_source_series",
    "write_volume_overlay",
]
