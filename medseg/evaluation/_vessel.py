"""Vessel metrics (retina) inside a field-of-view mask, including AUC-ROC and clDice."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from medseg.core import GeometryError

logger = logging.getLogger(__name__)

#: Definitions written into reports.
VESSEL_METRIC_DEFINITIONS: dict[str, str] = {
    "sensitivity": "TP / (TP + FN) over pixels inside the field of view (FOV).",
    "specificity": "TN / (TN + FP) inside the FOV.",
    "accuracy": "(TP + TN) / FOV pixel count.",
    "f1": "2TP / (2TP + FP + FN) inside the FOV (pixel Dice).",
    "auc_roc": "Area under the ROC curve of the probabilities inside the FOV (Mann-Whitney U "
    "statistic, ties counted as one half). NaN without probabilities or with one class only.",
    "cldice": "clDice (Shit et al., CVPR 2021): harmonic mean of topology precision "
    "|S(P)∩R|/|S(P)| and topology sensitivity |S(R)∩P|/|S(R)|, S = skimage skeletonize, "
    "counted inside the FOV.",
}


@dataclass(frozen=True)
class VesselMetrics:
    """Pixel and topology metrics of a vessel segmentation inside the field of view."""

    sensitivity: float
    specificity: float
    accuracy: float
    f1: float
    auc_roc: float
    cldice: float

    def to_dict(self) -> dict[str, float]:
        """The metrics by name."""
        return asdict(self)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def compute_auc_roc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve from scores and binary labels (rank formula, exact).

    AUC = (R₊ − n₊(n₊+1)/2) / (n₊ n₋), with R₊ the sum of the average ranks of the positive
    scores: the probability that a random positive scores above a random negative, ties
    counting one half. NaN when one class is absent.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = stats.rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def compute_cldice(
    prediction: np.ndarray, reference: np.ndarray, *, fov: np.ndarray | None = None
) -> float:
    """clDice of two binary 2D/3D masks (centreline Dice, Shit et al. 2021).

    Skeletons come from ``skimage.morphology.skeletonize`` of the whole masks; the counts are
    taken inside ``fov`` when given. NaN when both skeletons are empty inside the FOV.
    """
    from skimage.morphology import skeletonize  # imported lazily: skimage is slow to import

    pred = np.asarray(prediction, dtype=bool)
    ref = np.asarray(reference, dtype=bool)
    inside = np.ones(pred.shape, bool) if fov is None else np.asarray(fov, dtype=bool)
    skeleton_pred = skeletonize(pred) & inside
    skeleton_ref = skeletonize(ref) & inside
    topology_precision = _ratio(
        float(np.count_nonzero(skeleton_pred & ref)), float(np.count_nonzero(skeleton_pred))
    )
    topology_sensitivity = _ratio(
        float(np.count_nonzero(skeleton_ref & pred)), float(np.count_nonzero(skeleton_ref))
    )
    if math.isnan(topology_precision) or math.isnan(topology_sensitivity):
        return math.nan
    total = topology_precision + topology_sensitivity
    return 2 * topology_precision * topology_sensitivity / total if total else 0.0


def compute_vessel_metrics(
    prediction: np.ndarray,
    reference: np.ndarray,
    *,
    fov: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
) -> VesselMetrics:
    """Sensitivity, specificity, accuracy, F1, AUC-ROC and clDice inside the field of view.

    Parameters
    ----------
    prediction
        Binary vessel mask (non-zero = vessel), 2D (rows, columns) or 3D.
    reference
        Binary reference vessel mask, same shape.
    fov
        Field-of-view mask (non-zero = inside), same shape; default the whole image.
    probabilities
        Vessel probability (or any score where higher means vessel), same shape; needed for
        ``auc_roc`` (NaN otherwise).

    Returns
    -------
    VesselMetrics
        See :data:`VESSEL_METRIC_DEFINITIONS`.
    """
    pred = np.asarray(prediction).astype(bool, copy=False)
    ref = np.asarray(reference).astype(bool, copy=False)
    inside = np.ones(pred.shape, bool) if fov is None else np.asarray(fov).astype(bool)
    for name, array in (("reference", ref), ("fov", inside)) + (
        (("probabilities", np.asarray(probabilities)),) if probabilities is not None else ()
    ):
        if array.shape != pred.shape:
            raise GeometryError(
                f"{name} must have the prediction's shape {pred.shape}, not {array.shape}"
            )
    p, r = pred[inside], ref[inside]
    tp = int(np.count_nonzero(p & r))
    fp = int(np.count_nonzero(p & ~r))
    fn = int(np.count_nonzero(~p & r))
    tn = int(p.size) - tp - fp - fn
    auc = (
        compute_auc_roc(np.asarray(probabilities)[inside], r)
        if probabilities is not None
        else math.nan
    )
    return VesselMetrics(
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        accuracy=_ratio(tp + tn, p.size),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        auc_roc=auc,
        cldice=compute_cldice(pred, ref, fov=inside),
    )
