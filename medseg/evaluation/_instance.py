"""Instance metrics (cells, lesions): one-to-one IoU matching, F1, DSB "AP", panoptic quality.

Names say exactly what they are, because the field uses "AP" for two different things:

- ``accuracy`` = TP / (TP + FP + FN) at one IoU threshold. This is what StarDist calls
  "accuracy" and what the Data Science Bowl 2018 and Cellpose call "average precision" (AP).
- ``mean_accuracy_50_95`` = the mean of ``accuracy`` over IoU thresholds 0.50, 0.55, …, 0.95:
  the DSB2018 leaderboard score (Cellpose's "AP" averaged over thresholds). It is **not** the
  area under a precision–recall curve.
- ``coco_ap_50_95`` (:func:`compute_average_precision`, only when every predicted instance has
  a confidence score): the precision–recall AP of COCO — predictions ranked by score, each
  matched greedily to the unmatched reference of highest IoU ≥ threshold, precision made
  monotone and sampled at 101 recall points, averaged over the ten thresholds.
- ``f1`` = 2TP / (2TP + FP + FN) (StarDist "f1", equal to the recognition quality RQ).
- ``pq`` = panoptic quality (Kirillov et al. 2019) = SQ × RQ, with SQ the mean IoU of the
  matched pairs and RQ = TP / (TP + FP/2 + FN/2).

Matching follows StarDist's ``matching``: a pair may match when IoU ≥ threshold; among those,
``scipy.optimize.linear_sum_assignment`` picks the one-to-one assignment with the most matches,
ties broken by the largest total IoU. For thresholds ≥ 0.5 this is the unique matching.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from medseg.core import GeometryError
from medseg.evaluation._semantic import EmptyCase

logger = logging.getLogger(__name__)

#: IoU thresholds 0.50, 0.55, …, 0.95 of the DSB2018 / COCO convention.
IOU_THRESHOLDS_50_95: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))

#: Definitions written into reports.
INSTANCE_METRIC_DEFINITIONS: dict[str, str] = {
    "precision_50": "TP / (TP + FP) at IoU ≥ 0.5 (one-to-one matching). No predictions: NaN.",
    "recall_50": "TP / (TP + FN) at IoU ≥ 0.5. No reference instances: NaN.",
    "f1_50": "F1 = 2TP / (2TP + FP + FN) at IoU ≥ 0.5 (StarDist 'f1'; equals RQ).",
    "accuracy_50": "TP / (TP + FP + FN) at IoU ≥ 0.5 (StarDist 'accuracy'; what DSB2018 and "
    "Cellpose call 'AP').",
    "mean_accuracy_50_95": "Mean of TP / (TP + FP + FN) over IoU thresholds 0.50:0.05:0.95 "
    "(the DSB2018 score, Cellpose's averaged 'AP'); not a precision-recall AP.",
    "sq_50": "Segmentation quality: mean IoU of the pairs matched at IoU ≥ 0.5.",
    "rq_50": "Recognition quality TP / (TP + FP/2 + FN/2) at IoU ≥ 0.5.",
    "pq_50": "Panoptic quality SQ × RQ at IoU ≥ 0.5 (Kirillov et al. 2019).",
    "coco_ap_50_95": "Precision-recall AP (COCO: score-ranked greedy matching, 101-point "
    "interpolation) averaged over IoU 0.50:0.05:0.95; needs a score per predicted instance.",
}


@dataclass(frozen=True)
class InstanceCounts:
    """Matching result at one IoU threshold."""

    iou_threshold: float
    tp: int
    fp: int
    fn: int
    sum_matched_iou: float

    @property
    def precision(self) -> float:
        """TP / (TP + FP); NaN without predictions."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        """TP / (TP + FN); NaN without reference instances."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def f1(self) -> float:
        """2TP / (2TP + FP + FN) (= RQ); NaN when both sides have no instance."""
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else math.nan

    @property
    def accuracy(self) -> float:
        """TP / (TP + FP + FN): StarDist "accuracy", DSB2018/Cellpose "AP"."""
        total = self.tp + self.fp + self.fn
        return self.tp / total if total else math.nan

    @property
    def sq(self) -> float:
        """Mean IoU of matched pairs; NaN without matches."""
        return self.sum_matched_iou / self.tp if self.tp else math.nan

    @property
    def pq(self) -> float:
        """Panoptic quality Σ IoU(matched) / (TP + FP/2 + FN/2) = SQ × RQ (0 without matches)."""
        total = self.tp + 0.5 * self.fp + 0.5 * self.fn
        return self.sum_matched_iou / total if total else math.nan


@dataclass(frozen=True)
class InstanceMetrics:
    """Instance metrics of one image; ``counts`` holds one entry per IoU threshold."""

    n_pred: int
    n_ref: int
    counts: tuple[InstanceCounts, ...]
    empty: EmptyCase

    def at(self, iou_threshold: float) -> InstanceCounts:
        """The counts at one of the evaluated thresholds."""
        for counts in self.counts:
            if math.isclose(counts.iou_threshold, iou_threshold):
                return counts
        raise KeyError(f"IoU threshold {iou_threshold} was not evaluated")

    @property
    def mean_accuracy_50_95(self) -> float:
        """Mean of TP/(TP+FP+FN) over the thresholds 0.50:0.05:0.95 (DSB2018 score)."""
        return float(np.mean([self.at(t).accuracy for t in IOU_THRESHOLDS_50_95]))

    def to_dict(self) -> dict[str, float]:
        """The headline numbers by name (see :data:`INSTANCE_METRIC_DEFINITIONS`)."""
        at_50 = self.at(0.5)
        return {
            "n_pred": float(self.n_pred),
            "n_ref": float(self.n_ref),
            "tp_50": float(at_50.tp),
            "fp_50": float(at_50.fp),
            "fn_50": float(at_50.fn),
            "precision_50": at_50.precision,
            "recall_50": at_50.recall,
            "f1_50": at_50.f1,
            "accuracy_50": at_50.accuracy,
            "mean_accuracy_50_95": self.mean_accuracy_50_95,
            "sq_50": at_50.sq,
            "rq_50": at_50.f1,
            "pq_50": at_50.pq,
        }


def compute_instance_iou(
    prediction: np.ndarray, reference: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every reference instance with every predicted instance.

    Parameters
    ----------
    prediction, reference
        Instance label maps of the same shape (0 = background, each positive integer one
        instance; ids need not be consecutive).

    Returns
    -------
    iou, ref_ids, pred_ids
        ``iou`` float64 (n_ref, n_pred); ``ref_ids`` and ``pred_ids`` the instance ids of its
        rows and columns.
    """
    pred = np.asarray(prediction)
    ref = np.asarray(reference)
    if pred.shape != ref.shape:
        raise GeometryError(
            f"prediction and reference must have the same shape, not {pred.shape} and {ref.shape}"
        )
    pred_ids, pred_index = np.unique(pred, return_inverse=True)
    ref_ids, ref_index = np.unique(ref, return_inverse=True)
    # index 0 is background only if 0 is present; shift so that background is always row/col 0
    pred_offset = 0 if pred_ids.size and pred_ids[0] == 0 else 1
    ref_offset = 0 if ref_ids.size and ref_ids[0] == 0 else 1
    n_pred = pred_ids.size + pred_offset
    n_ref = ref_ids.size + ref_offset
    combined = (ref_index.ravel() + ref_offset) * n_pred + (pred_index.ravel() + pred_offset)
    table = np.bincount(combined, minlength=n_ref * n_pred).reshape(n_ref, n_pred)
    area_ref = table.sum(axis=1)[1:]
    area_pred = table.sum(axis=0)[1:]
    intersection = table[1:, 1:].astype(np.float64)
    union = area_ref[:, None] + area_pred[None, :] - intersection
    iou = np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
    return iou, ref_ids[ref_ids > 0], pred_ids[pred_ids > 0]


def match_instances(
    iou: np.ndarray, *, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching of instances by IoU (StarDist's rule).

    Parameters
    ----------
    iou
        (n_ref, n_pred) IoU matrix from :func:`compute_instance_iou`.
    iou_threshold
        A pair may match when its IoU is ≥ this value.

    Returns
    -------
    ref_rows, pred_columns, matched_iou
        Indices into ``iou`` of the matched pairs and their IoUs.
    """
    n_ref, n_pred = iou.shape
    if min(n_ref, n_pred) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    # Most matches first, then the largest summed IoU (the second term is < 1 in total).
    allowed = iou >= iou_threshold
    costs = -allowed.astype(np.float64) - iou / (2 * min(n_ref, n_pred))
    rows, columns = linear_sum_assignment(costs)
    keep = allowed[rows, columns]
    return rows[keep], columns[keep], iou[rows[keep], columns[keep]]


def compute_instance_metrics(
    prediction: np.ndarray,
    reference: np.ndarray,
    *,
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS_50_95,
) -> InstanceMetrics:
    """Detection and segmentation quality of predicted instances against reference instances.

    Parameters
    ----------
    prediction, reference
        Instance label maps (0 = background), same shape, any number of axes.
    iou_thresholds
        IoU thresholds to evaluate; must include 0.50 … 0.95 for the headline numbers.

    Returns
    -------
    InstanceMetrics
        TP/FP/FN and derived scores per threshold; see the module docstring for definitions.
        No instances on either side gives NaN scores flagged ``both_empty``, never a crash.
    """
    iou, ref_ids, pred_ids = compute_instance_iou(prediction, reference)
    counts = []
    for threshold in sorted({round(float(t), 6) for t in (*iou_thresholds, *IOU_THRESHOLDS_50_95)}):
        _, _, matched = match_instances(iou, iou_threshold=threshold)
        tp = int(matched.size)
        counts.append(
            InstanceCounts(
                iou_threshold=threshold,
                tp=tp,
                fp=int(pred_ids.size) - tp,
                fn=int(ref_ids.size) - tp,
                sum_matched_iou=float(matched.sum()),
            )
        )
    n_pred, n_ref = int(pred_ids.size), int(ref_ids.size)
    if n_pred == 0 and n_ref == 0:
        empty = EmptyCase.BOTH
    elif n_ref == 0:
        empty = EmptyCase.REFERENCE
    elif n_pred == 0:
        empty = EmptyCase.PREDICTION
    else:
        empty = EmptyCase.NONE
    return InstanceMetrics(n_pred=n_pred, n_ref=n_ref, counts=tuple(counts), empty=empty)


def pool_instance_counts(metrics: Sequence[InstanceMetrics]) -> InstanceMetrics:
    """Pool several images into one: TP, FP, FN and matched IoUs summed per IoU threshold.

    Scores of the result are "pooled" (StarDist's ``matching_dataset``, DSB2018 per-dataset
    counting): an image with many nuclei weighs more than one with few, unlike the mean of
    per-image scores. ``n_pred`` / ``n_ref`` are totals.

    Raises
    ------
    ValueError
        If ``metrics`` is empty or the images were scored at different IoU thresholds.
    """
    if not metrics:
        raise ValueError("pooling needs at least one image's instance metrics, found none")
    thresholds = [c.iou_threshold for c in metrics[0].counts]
    for item in metrics[1:]:
        if [c.iou_threshold for c in item.counts] != thresholds:
            raise ValueError(
                "images must be scored at the same IoU thresholds to be pooled, found "
                f"{thresholds} and {[c.iou_threshold for c in item.counts]}"
            )
    counts = tuple(
        InstanceCounts(
            iou_threshold=threshold,
            tp=sum(m.counts[i].tp for m in metrics),
            fp=sum(m.counts[i].fp for m in metrics),
            fn=sum(m.counts[i].fn for m in metrics),
            sum_matched_iou=float(sum(m.counts[i].sum_matched_iou for m in metrics)),
        )
        for i, threshold in enumerate(thresholds)
    )
    n_pred = sum(m.n_pred for m in metrics)
    n_ref = sum(m.n_ref for m in metrics)
    if n_pred == 0 and n_ref == 0:
        empty = EmptyCase.BOTH
    elif n_ref == 0:
        empty = EmptyCase.REFERENCE
    elif n_pred == 0:
        empty = EmptyCase.PREDICTION
    else:
        empty = EmptyCase.NONE
    return InstanceMetrics(n_pred=n_pred, n_ref=n_ref, counts=counts, empty=empty)


def _coco_average_precision(
    iou: np.ndarray, ranked_columns: np.ndarray, *, iou_threshold: float
) -> float:
    """101-point interpolated AP at one threshold, COCO's greedy score-ordered matching."""
    n_ref = iou.shape[0]
    if n_ref == 0:
        return math.nan
    taken = np.zeros(n_ref, dtype=bool)
    is_tp = np.zeros(ranked_columns.size, dtype=bool)
    for rank, column in enumerate(ranked_columns):
        candidates = np.where(~taken & (iou[:, column] >= iou_threshold), iou[:, column], -1.0)
        best = int(np.argmax(candidates)) if candidates.size else -1
        if best >= 0 and candidates[best] >= 0:
            taken[best] = True
            is_tp[rank] = True
    tp = np.cumsum(is_tp)
    fp = np.cumsum(~is_tp)
    recall = tp / n_ref
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if precision.size else precision
    recall_points = np.linspace(0.0, 1.0, 101)
    index = np.searchsorted(recall, recall_points, side="left")
    sampled = np.zeros(recall_points.size)
    valid = index < envelope.size
    sampled[valid] = envelope[index[valid]]
    return float(sampled.mean())


def compute_average_precision(
    prediction: np.ndarray,
    reference: np.ndarray,
    *,
    scores: Mapping[int, float],
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS_50_95,
) -> float:
    """Precision–recall average precision (COCO definition), averaged over IoU thresholds.

    Parameters
    ----------
    prediction, reference
        Instance label maps (0 = background), same shape.
    scores
        Confidence of every predicted instance id (higher = more confident).
    iou_thresholds
        Thresholds to average over (default 0.50:0.05:0.95).

    Returns
    -------
    float
        Mean over thresholds of the 101-point interpolated AP; NaN without reference
        instances. Differs from :attr:`InstanceMetrics.mean_accuracy_50_95` (the DSB2018 "AP").
    """
    iou, _, pred_ids = compute_instance_iou(prediction, reference)
    missing = [int(i) for i in pred_ids if int(i) not in scores]
    if missing:
        raise ValueError(
            f"scores must cover every predicted instance; {len(missing)} id(s) have none "
            f"(first: {missing[0]})"
        )
    confidence = np.array([float(scores[int(i)]) for i in pred_ids])
    ranked = np.argsort(-confidence, kind="stable")
    return float(
        np.mean([_coco_average_precision(iou, ranked, iou_threshold=t) for t in iou_thresholds])
    )
