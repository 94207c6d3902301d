"""Instance matching and scores: hand-worked cases and real DSB2018 nuclei label maps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg.evaluation import (
    IOU_THRESHOLDS_50_95,
    compute_average_precision,
    compute_instance_iou,
    compute_instance_metrics,
    match_instances,
    pool_instance_counts,
)
from medseg.io import read_image


def _hand_case() -> tuple[np.ndarray, np.ndarray]:
    reference = np.zeros((10, 12), np.uint16)
    reference[0:2, 0:4] = 7  # A: 8 px
    reference[4:8, 0:4] = 3  # B: 16 px
    reference[0:3, 8:11] = 9  # C: 9 px, missed
    prediction = np.zeros_like(reference)
    prediction[0:2, 0:4] = 1  # = A exactly, IoU 1
    prediction[4:8, 1:5] = 2  # B moved 1 column: 12 shared / 20 union = 0.6
    prediction[8:10, 8:12] = 5  # false positive
    return prediction, reference


def test_hand_worked_counts_and_scores() -> None:
    prediction, reference = _hand_case()
    metrics = compute_instance_metrics(prediction, reference)
    assert (metrics.n_pred, metrics.n_ref) == (3, 3)
    at_50 = metrics.at(0.5)
    assert (at_50.tp, at_50.fp, at_50.fn) == (2, 1, 1)
    assert at_50.precision == pytest.approx(2 / 3)
    assert at_50.recall == pytest.approx(2 / 3)
    assert at_50.f1 == pytest.approx(4 / 6)
    assert at_50.accuracy == pytest.approx(2 / 4)
    assert at_50.sq == pytest.approx((1.0 + 0.6) / 2)
    assert at_50.pq == pytest.approx((1.0 + 0.6) / 3)  # SQ 0.8 × RQ 2/3
    assert at_50.pq == pytest.approx(at_50.sq * at_50.f1)
    # thresholds 0.50, 0.55, 0.60 keep B (IoU 0.6 ≥ t); 0.65 … 0.95 keep only A
    expected = [2 / 4] * 3 + [1 / 5] * 7
    assert metrics.mean_accuracy_50_95 == pytest.approx(np.mean(expected))
    assert metrics.to_dict()["f1_50"] == pytest.approx(2 / 3)


def test_coco_average_precision_by_hand() -> None:
    prediction, reference = _hand_case()
    # ranked: A (exact, 0.9), the false positive (0.8), B (IoU 0.6, 0.7)
    scores = {1: 0.9, 5: 0.8, 2: 0.7}
    # t ≤ 0.60: precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3 → envelope 1 for the 34 recall
    # points ≤ 1/3, 2/3 for the 33 points ≤ 2/3, 0 beyond: AP = (34 + 22) / 101.
    # t ≥ 0.65: only A matches → AP = 34 / 101.
    assert compute_average_precision(
        prediction, reference, scores=scores, iou_thresholds=[0.5]
    ) == pytest.approx(56 / 101)
    assert compute_average_precision(prediction, reference, scores=scores) == pytest.approx(
        (3 * 56 + 7 * 34) / 1010
    )
    # ranking the false positive last: precision 1, 1, 2/3 at recall 1/3, 2/3, 2/3 → the
    # envelope is 1 up to recall 2/3 (67 points) → AP = 67 / 101
    better = {1: 0.9, 2: 0.8, 5: 0.1}
    assert compute_average_precision(
        prediction, reference, scores=better, iou_thresholds=[0.5]
    ) == pytest.approx(67 / 101)
    with pytest.raises(ValueError, match="every predicted instance"):
        compute_average_precision(prediction, reference, scores={1: 0.5})


def test_iou_matrix_by_hand() -> None:
    prediction, reference = _hand_case()
    iou, ref_ids, pred_ids = compute_instance_iou(prediction, reference)
    assert ref_ids.tolist() == [3, 7, 9]
    assert pred_ids.tolist() == [1, 2, 5]
    assert iou[0, 1] == pytest.approx(0.6)  # B vs its shifted copy
    assert iou[1, 0] == pytest.approx(1.0)
    assert iou[2].sum() == 0.0


def test_matching_is_one_to_one_below_half() -> None:
    # one reference split in two halves: at IoU ≥ 0.3 only one half may match
    reference = np.zeros((4, 8), np.int32)
    reference[:, :] = 1
    prediction = np.zeros_like(reference)
    prediction[:, :4] = 1
    prediction[:, 4:] = 2
    iou, _, _ = compute_instance_iou(prediction, reference)
    rows, _columns, matched = match_instances(iou, iou_threshold=0.3)
    assert rows.size == 1
    assert matched[0] == pytest.approx(0.5)


def test_empty_conventions() -> None:
    empty = np.zeros((5, 5), np.int32)
    one = empty.copy()
    one[1:3, 1:3] = 4
    both = compute_instance_metrics(empty, empty)
    assert both.empty.value == "both_empty"
    assert math.isnan(both.at(0.5).f1)
    missed = compute_instance_metrics(empty, one)
    assert missed.empty.value == "prediction_empty"
    assert missed.at(0.5).f1 == 0.0
    assert missed.at(0.5).recall == 0.0
    assert math.isnan(missed.at(0.5).precision)


def _brute_force_tp(prediction: np.ndarray, reference: np.ndarray, threshold: float) -> int:
    """Independent count for thresholds > 0.5, where a match is unique: loop over pairs."""
    tp = 0
    for ref_id in np.unique(reference[reference > 0]):
        ref_mask = reference == ref_id
        for pred_id in np.unique(prediction[ref_mask & (prediction > 0)]):
            pred_mask = prediction == pred_id
            iou = (ref_mask & pred_mask).sum() / (ref_mask | pred_mask).sum()
            tp += int(iou >= threshold)
    return tp


def _perturb_instances(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Erode or dilate each nucleus at random, drop every fifth, add a false positive."""
    prediction = np.zeros_like(labels)
    for index, instance in enumerate(np.unique(labels[labels > 0])):
        if index % 5 == 4:
            continue
        mask = labels == instance
        mask = (
            ndimage.binary_erosion(mask)
            if rng.random() < 0.5
            else ndimage.binary_dilation(mask) & (labels == 0) | mask
        )
        prediction[mask & (prediction == 0)] = instance + 1000
    prediction[:6, :6] = 1  # a small false positive in a corner
    return prediction


@pytest.mark.integration
def test_real_dsb2018_label_maps(repo_root: Path) -> None:
    rng = np.random.default_rng(0)
    files = sorted((repo_root / "data/cells_dsb2018/test/labels").glob("*.tif"))[:4]
    assert files
    for path in files:
        reference = read_image(path).array[..., 0].astype(np.int64)
        perfect = compute_instance_metrics(reference, reference)
        assert perfect.at(0.5).f1 == 1.0
        assert perfect.mean_accuracy_50_95 == 1.0
        assert perfect.at(0.5).pq == pytest.approx(1.0)
        prediction = _perturb_instances(reference, rng)
        metrics = compute_instance_metrics(prediction, reference)
        assert metrics.n_ref == len(np.unique(reference)) - 1
        for threshold in (0.5, 0.7, 0.9):
            assert metrics.at(threshold).tp == _brute_force_tp(prediction, reference, threshold)
        assert 0.0 < metrics.at(0.5).f1 < 1.0
        assert metrics.at(0.9).tp <= metrics.at(0.5).tp
        assert len(metrics.counts) == len(IOU_THRESHOLDS_50_95)


def test_pooled_counts_differ_from_the_mean_of_images() -> None:
    """Image 1: the hand case (TP 2, FP 1, FN 1); image 2: 1 of 9 nuclei found, no FP."""
    first = compute_instance_metrics(*_hand_case())
    reference = np.zeros((30, 30), np.uint16)
    for index in range(9):
        row, col = divmod(index, 3)
        reference[10 * row : 10 * row + 4, 10 * col : 10 * col + 4] = index + 1
    prediction = np.where(reference == 1, 1, 0).astype(np.uint16)
    second = compute_instance_metrics(prediction, reference)
    pooled = pool_instance_counts([first, second])
    at_50 = pooled.at(0.5)
    assert (at_50.tp, at_50.fp, at_50.fn) == (3, 1, 9)
    assert (pooled.n_pred, pooled.n_ref) == (4, 12)
    assert at_50.f1 == pytest.approx(6 / 16)  # 2·3 / (2·3 + 1 + 9)
    # the mean of per-image F1 is (2/3 + 2/10) / 2 = 0.433…, not 0.375
    mean_f1 = (first.at(0.5).f1 + second.at(0.5).f1) / 2
    assert mean_f1 == pytest.approx((2 / 3 + 2 / 10) / 2)
    assert at_50.pq == pytest.approx((1.0 + 0.6 + 1.0) / (3 + 0.5 + 4.5))
    # at 0.65 … 0.95 B (IoU 0.6) no longer matches: TP 2, FP 2, FN 10
    assert pooled.at(0.7).accuracy == pytest.approx(2 / 14)


def test_pooling_refuses_nothing_and_mixed_thresholds() -> None:
    with pytest.raises(ValueError, match="at least one"):
        pool_instance_counts([])
    prediction, reference = _hand_case()
    full = compute_instance_metrics(prediction, reference)
    extra = compute_instance_metrics(prediction, reference, iou_thresholds=[0.3])
    with pytest.raises(ValueError, match="same IoU thresholds"):
        pool_instance_counts([full, extra])
