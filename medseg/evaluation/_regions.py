"""Metrics of composite regions: unions of label ids scored as one binary structure.

BraTS scores its sub-region labels as nested regions, not label by label: whole tumour
(labels 1, 2, 3, 4), tumour core (1, 3, 4), enhancing tumour (4). A region maps a name to
the label ids it unites; the same ids select the region in the prediction and in the
reference, so a prediction may use any of them (e.g. one whole-tumour label).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from medseg.core import GeometryError
from medseg.evaluation._semantic import SegmentationMetrics, compute_segmentation_metrics

#: The BraTS evaluation regions over the BraTS 2015 labels (1 necrosis, 2 oedema,
#: 3 non-enhancing tumour, 4 enhancing tumour), plus oedema alone.
BRATS_REGIONS: dict[str, tuple[int, ...]] = {
    "whole_tumour": (1, 2, 3, 4),
    "tumour_core": (1, 3, 4),
    "enhancing_tumour": (4,),
    "oedema": (2,),
}


def compute_region_metrics(
    prediction: np.ndarray,
    reference: np.ndarray,
    *,
    regions: Mapping[str, Sequence[int]],
    spacing_mm: Sequence[float],
    tolerance_mm: float = 2.0,
    percentile: float = 95.0,
) -> dict[str, SegmentationMetrics]:
    """Metrics of each region (a union of label ids) of two label maps.

    Parameters
    ----------
    prediction, reference
        Integer label maps (0 = background) of the same shape, 2 or 3 axes.
    regions
        Region name → the positive label ids it unites, in both maps.
    spacing_mm
        Voxel size in mm along each array axis.
    tolerance_mm, percentile
        As in :func:`compute_segmentation_metrics`.

    Returns
    -------
    dict
        Region name → :class:`SegmentationMetrics` (empty regions carry the flagged
        conventions of :func:`compute_segmentation_metrics`).
    """
    pred = np.asarray(prediction)
    ref = np.asarray(reference)
    if pred.shape != ref.shape:
        raise GeometryError(
            f"prediction and reference must have the same shape, not {pred.shape} and {ref.shape}"
        )
    results = {}
    for name, ids in regions.items():
        wanted = sorted({int(i) for i in ids})
        if not wanted or wanted[0] <= 0:
            raise ValueError(
                f"region {name!r} must list positive label ids (0 is background), not {wanted}"
            )
        results[name] = compute_segmentation_metrics(
            np.isin(pred, wanted),
            np.isin(ref, wanted),
            spacing_mm=spacing_mm,
            tolerance_mm=tolerance_mm,
            percentile=percentile,
        )
    return results
