"""A segmenter's confidence as a DICOM FRACTIONAL SEG (PROBABILITY) and as NIfTI maps."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from medseg.core import InputError
from medseg.export._seg import SegmentationType, write_dicom_seg
from medseg.export._series import SourceSeries
from medseg.export._structures import StructureCodeMap, build_structures
from medseg.io import Volume, write_nifti
from medseg.segment import Confidence

logger = logging.getLogger(__name__)

#: File names in a case folder or review package.
CONFIDENCE_SEG_NAME = "confidence_seg.dcm"
CONFIDENCE_NIFTI_NAME = "confidence.nii.gz"
DISAGREEMENT_NIFTI_NAME = "tta_disagreement.nii.gz"


def write_confidence_seg(
    confidence: Confidence,
    series: SourceSeries,
    path: str | Path,
    *,
    names: Mapping[int, str],
    code_map: StructureCodeMap | None = None,
    model_name: str = "medseg",
    overwrite: bool = False,
) -> Path:
    """Write each structure's probability as a FRACTIONAL SEG (PROBABILITY, 8-bit) that
    references ``series`` (ReferencedSeriesSequence, per-frame source images).

    One segment per structure of ``confidence`` (in ``structure_ids`` order), named and
    coded like the BINARY SEG's. Values are quantised to 0..255 (1/255 steps); slices where
    a segment is 0 everywhere are omitted.

    Raises
    ------
    InputError
        If the confidence holds no structure.
    GeometryError
        If it is not on the series' grid up to axis order/flips.
    """
    if not confidence.structure_ids:
        raise InputError("the confidence holds no structure to export")
    structures = build_structures(
        list(confidence.structure_ids), names=dict(names), code_map=code_map
    )
    order = [confidence.structure_ids.index(s.label_value) for s in structures]
    probability = np.clip(
        np.asarray(confidence.probability.array[..., order], dtype=np.float32), 0.0, 1.0
    )
    return write_dicom_seg(
        confidence.probability.with_array(probability),
        series,
        structures,
        path,
        segmentation_type=SegmentationType.FRACTIONAL,
        model_name=model_name,
        series_number=902,
        series_description=f"medseg confidence ({confidence.source})",
        overwrite=overwrite,
    )


def write_confidence_maps(
    confidence: Confidence,
    labels: Volume,
    folder: str | Path,
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``confidence.nii.gz`` (float32 confidence in each voxel's label, on the label
    map's grid) and, with TTA, ``tta_disagreement.nii.gz`` into ``folder``."""
    folder = Path(folder)
    voxel = confidence.voxel_confidence(labels.array)
    paths = [
        write_nifti(
            labels.with_array(voxel.astype(np.float32)),
            folder / CONFIDENCE_NIFTI_NAME,
            overwrite=overwrite,
        )
    ]
    if confidence.disagreement is not None:
        disagreement = np.asarray(confidence.disagreement.array, dtype=np.float32)
        paths.append(
            write_nifti(
                labels.with_array(disagreement),
                folder / DISAGREEMENT_NIFTI_NAME,
                overwrite=overwrite,
            )
        )
    return [Path(p) for p in paths]
