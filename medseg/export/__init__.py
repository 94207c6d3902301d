"""Exports for review: DICOM SEG, RTSTRUCT, Slicer files, overlays, review packages, PACS."""

from __future__ import annotations

from medseg.export._overlay import write_contour_overlay
from medseg.export._seg import AlgorithmType, SegmentationType, read_dicom_seg, write_dicom_seg
from medseg.export._series import (
    SourceSeries,
    map_mask_to_series,
    read_source_series,
    write_source_series,
)
from medseg.export._structures import (
    Structure,
    StructureCode,
    StructureCodeMap,
    build_structures,
    load_structure_codes,
)

__all__ = [
    "AlgorithmType",
    "SegmentationType",
    "SourceSeries",
    "Structure",
    "StructureCode",
    "StructureCodeMap",
    "build_structures",
    "load_structure_codes",
    "map_mask_to_series",
    "read_dicom_seg",
    "read_source_series",
    "write_contour_overlay",
    "write_dicom_seg",
    "write_source_series",
]
