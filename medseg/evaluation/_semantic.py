"""Per-label semantic and surface metrics with stated definitions and empty-mask conventions."""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from medseg.core import GeometryError, InputError
from medseg.evaluation._surface import (
    check_spacing,
    compute_surface_distances_cropped,
    union_bounding_box,
)

logger = logging.getLogger(__name__)


class EmptyCase(str, enum.Enum):
    """Which of the two masks is empty for a case and label (the flag beside every value)."""

    NONE = "none"
    REFERENCE = "reference_empty"
    PREDICTION = "prediction_empty"
    BOTH = "both_empty"


#: What each metric name means; written into summary.json and the HTML report.
METRIC_DEFINITIONS: dict[str, str] = {
    "dice": "Dice = 2|P∩R| / (|P|+|R|) over voxels. Both empty: NaN (undefined, flagged "
    "both_empty, left out of aggregates); one empty: 0.",
    "iou": "IoU (Jaccard) = |P∩R| / |P∪R|. Both empty: NaN; one empty: 0.",
    "precision": "Precision = |P∩R| / |P| (positive predictive value). Empty prediction: NaN.",
    "recall": "Recall = |P∩R| / |R| (sensitivity). Empty reference: NaN.",
    "volume_pred_ml": "Predicted volume in ml (voxel count × voxel volume; 2D: area in cm²).",
    "volume_ref_ml": "Reference volume in ml (voxel count × voxel volume; 2D: area in cm²).",
    "volume_diff_ml": "Volume difference V_pred − V_ref in ml (signed).",
    "volume_diff_percent": "Relative volume difference 100 (V_pred − V_ref) / V_ref in %. Empty "
    "reference: NaN.",
    "hd_mm": "Hausdorff distance in mm: the largest distance from a surface element of one mask "
    "to the other surface, over both directions. One empty: inf; both empty: NaN.",
    "hd95_mm": "95th-percentile Hausdorff distance in mm (DeepMind surface-distance definition): "
    "for each direction the smallest distance whose cumulative surface-area fraction reaches "
    "0.95, then the maximum of the two directions. One empty: inf; both empty: NaN.",
    "assd_mm": "Average symmetric surface distance in mm: area-weighted mean, over the surface "
    "elements of both masks together, of the distance to the other surface. One empty: inf; "
    "both empty: NaN.",
    "msd_mm": "Mean surface distance in mm: mean of the two directed area-weighted average "
    "distances (reference→prediction, prediction→reference). One empty: inf; both empty: NaN.",
    "nsd": "Normalised surface Dice at the tolerance (Nikolov et al. 2021): surface area of both "
    "masks lying within tolerance_mm of the other surface / total surface area. One empty: 0; "
    "both empty: NaN.",
}

#: Metrics where higher is better (used to rank worst cases and in reports).
HIGHER_IS_BETTER = frozenset({"dice", "iou", "precision", "recall", "nsd"})


@dataclass(frozen=True)
class SegmentationMetrics:
    """Metrics of one label in one case; see :data:`METRIC_DEFINITIONS`.

    Surfaces are sets of surface elements weighted by area (DeepMind ``surface-distance``);
    distances are in mm along the array axes scaled by the voxel spacing.
    """

    dice: float
    iou: float
    precision: float
    recall: float
    volume_pred_ml: float
    volume_ref_ml: float
    volume_diff_ml: float
    volume_diff_percent: float
    hd_mm: float
    hd95_mm: float
    assd_mm: float
    msd_mm: float
    nsd: float
    empty: EmptyCase

    def to_dict(self) -> dict[str, float]:
        """The numeric metrics by name (the ``empty`` flag left out)."""
        values = asdict(self)
        values.pop("empty")
        return values


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def _empty_case(n_pred: int, n_ref: int) -> EmptyCase:
    if n_pred == 0 and n_ref == 0:
        return EmptyCase.BOTH
    if n_ref == 0:
        return EmptyCase.REFERENCE
    if n_pred == 0:
        return EmptyCase.PREDICTION
    return EmptyCase.NONE


def _metrics_of_crop(
    pred: np.ndarray | None,
    ref: np.ndarray | None,
    *,
    spacing: tuple[float, ...],
    tolerance_mm: float,
    percentile: float,
) -> SegmentationMetrics:
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if pred is None or ref is None:
        tp = fp = fn = 0
    else:
        tp = int(np.count_nonzero(pred & ref))
        fp = int(np.count_nonzero(pred)) - tp
        fn = int(np.count_nonzero(ref)) - tp
    n_pred, n_ref = tp + fp, tp + fn
    empty = _empty_case(n_pred, n_ref)
    volume_pred, volume_ref = n_pred * voxel_ml, n_ref * voxel_ml
    if empty is EmptyCase.BOTH or pred is None or ref is None:
        hd = hd95 = assd = msd = nsd = math.nan
    else:
        surfaces = compute_surface_distances_cropped(pred, ref, spacing)
        hd = surfaces.compute_hausdorff_mm(percentile=100.0)
        hd95 = surfaces.compute_hausdorff_mm(percentile=percentile)
        assd = surfaces.compute_assd_mm()
        msd = surfaces.compute_msd_mm()
        nsd = surfaces.compute_surface_dice(tolerance_mm=tolerance_mm)
    return SegmentationMetrics(
        dice=_ratio(2 * tp, 2 * tp + fp + fn),
        iou=_ratio(tp, tp + fp + fn),
        precision=_ratio(tp, n_pred),
        recall=_ratio(tp, n_ref),
        volume_pred_ml=volume_pred,
        volume_ref_ml=volume_ref,
        volume_diff_ml=volume_pred - volume_ref,
        volume_diff_percent=_ratio(100.0 * (volume_pred - volume_ref), volume_ref),
        hd_mm=hd,
        hd95_mm=hd95,
        assd_mm=assd,
        msd_mm=msd,
        nsd=nsd,
        empty=empty,
    )


def _check_tolerances(tolerance_mm: float, percentile: float) -> None:
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise ValueError(f"tolerance_mm must be finite and >= 0, not {tolerance_mm}")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be within [0, 100], not {percentile}")


def compute_segmentation_metrics(
    prediction: np.ndarray,
    reference: np.ndarray,
    *,
    spacing_mm: Sequence[float],
    tolerance_mm: float = 2.0,
    percentile: float = 95.0,
) -> SegmentationMetrics:
    """All semantic and surface metrics of one binary mask against its reference.

    Parameters
    ----------
    prediction, reference
        Binary masks (non-zero is foreground) of the same shape, 2 or 3 axes.
    spacing_mm
        Voxel size in mm along each array axis.
    tolerance_mm
        Tolerance of the normalised surface Dice, in mm.
    percentile
        Percentile of the robust Hausdorff distance reported as ``hd95_mm`` (default 95).

    Returns
    -------
    SegmentationMetrics
        Values per :data:`METRIC_DEFINITIONS`; the ``empty`` flag says which mask was empty.
        Never raises for empty masks.
    """
    pred = np.asarray(prediction).astype(bool, copy=False)
    ref = np.asarray(reference).astype(bool, copy=False)
    if pred.shape != ref.shape:
        raise GeometryError(
            f"prediction and reference must have the same shape, not {pred.shape} and {ref.shape}"
        )
    spacing = check_spacing(spacing_mm, pred.ndim)
    _check_tolerances(tolerance_mm, percentile)
    box = union_bounding_box(pred, ref)
    crop_pred, crop_ref = (None, None) if box is None else (pred[box], ref[box])
    return _metrics_of_crop(
        crop_pred, crop_ref, spacing=spacing, tolerance_mm=tolerance_mm, percentile=percentile
    )


def _as_label_map(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        rounded = np.rint(array)
        if not np.array_equal(rounded, array):
            raise InputError(
                f"{what} must be a label map of whole numbers, found fractional values; "
                "threshold or argmax probabilities first"
            )
        array = rounded.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{what} must hold integer labels, not {array.dtype}")
    if array.size and int(array.min()) < 0:
        raise InputError(f"{what} labels must be >= 0, found negative values")
    return array


def _merge_boxes(
    first: tuple[slice, ...] | None, second: tuple[slice, ...] | None
) -> tuple[slice, ...] | None:
    if first is None:
        return second
    if second is None:
        return first
    return tuple(
        slice(min(a.start, b.start), max(a.stop, b.stop))
        for a, b in zip(first, second, strict=True)
    )


def compute_label_metrics(
    prediction: np.ndarray,
    reference: np.ndarray,
    *,
    labels: Iterable[int],
    spacing_mm: Sequence[float],
    tolerance_mm: float = 2.0,
    percentile: float = 95.0,
) -> dict[int, SegmentationMetrics]:
    """Metrics of every requested label of two label maps, sharing the work across labels.

    One pass of ``scipy.ndimage.find_objects`` over each label map gives every label's
    bounding box; each label is then compared only inside the union of its two boxes, so the
    cost grows with the structures, not with the image.

    Parameters
    ----------
    prediction, reference
        Integer label maps (0 = background) of the same shape, 2 or 3 axes.
    labels
        Label values to evaluate (absent labels give the flagged empty conventions).
    spacing_mm
        Voxel size in mm along each array axis.
    tolerance_mm, percentile
        As in :func:`compute_segmentation_metrics`.

    Returns
    -------
    dict
        Label value → :class:`SegmentationMetrics`.
    """
    pred = _as_label_map(prediction, "prediction")
    ref = _as_label_map(reference, "reference")
    if pred.shape != ref.shape:
        raise GeometryError(
            f"prediction and reference must have the same shape, not {pred.shape} and {ref.shape}"
        )
    spacing = check_spacing(spacing_mm, pred.ndim)
    _check_tolerances(tolerance_mm, percentile)
    wanted = sorted({int(label) for label in labels})
    if any(label <= 0 for label in wanted):
        raise ValueError(f"labels must be positive (0 is background), not {wanted}")
    if not wanted:
        return {}
    top = wanted[-1]
    # find_objects ignores labels above ``top``; one pass per map for every label's box.
    pred_boxes = ndimage.find_objects(pred, max_label=top)
    ref_boxes = ndimage.find_objects(ref, max_label=top)
    results = {}
    for label in wanted:
        box = _merge_boxes(pred_boxes[label - 1], ref_boxes[label - 1])
        if box is None:
            crop_pred = crop_ref = None
        else:
            crop_pred, crop_ref = pred[box] == label, ref[box] == label
        results[label] = _metrics_of_crop(
            crop_pred, crop_ref, spacing=spacing, tolerance_mm=tolerance_mm, percentile=percentile
        )
    return results
