"""Vessel metrics: hand-worked counts, AUC vs scikit-learn, DRIVE 2nd observer vs 1st."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medseg.evaluation import compute_auc_roc, compute_cldice, compute_vessel_metrics
from medseg.io import read_image


def test_counts_inside_fov_by_hand() -> None:
    reference = np.array([[1, 1, 0, 0], [0, 1, 0, 1]], bool)
    prediction = np.array([[1, 0, 1, 0], [0, 1, 0, 1]], bool)
    fov = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)  # last pixel (a TP) is outside
    metrics = compute_vessel_metrics(prediction, reference, fov=fov)
    # inside: TP 2, FN 1, FP 1, TN 3
    assert metrics.sensitivity == pytest.approx(2 / 3)
    assert metrics.specificity == pytest.approx(3 / 4)
    assert metrics.accuracy == pytest.approx(5 / 7)
    assert metrics.f1 == pytest.approx(4 / 6)
    assert math.isnan(metrics.auc_roc)


@pytest.mark.parametrize("seed", range(3))
def test_auc_equals_scikit_learn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(500) < 0.3
    scores = np.round(rng.random(500) + 0.3 * labels, 1)  # rounded: many ties
    assert compute_auc_roc(scores, labels) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-12
    )


def test_cldice_by_hand() -> None:
    # One-pixel-wide lines are their own skeletons, so the counts can be read off the arrays.
    reference = np.zeros((9, 9), bool)
    reference[4, 1:8] = True  # a vessel of 7 px
    prediction = np.zeros_like(reference)
    prediction[4, 1:5] = True  # 4 px of it found …
    prediction[1, 1:4] = True  # … and a 3 px false vessel
    # Tprec = |S(P)∩R| / |S(P)| = 4/7; Tsens = |S(R)∩P| / |S(R)| = 4/7 → clDice 4/7
    assert compute_cldice(prediction, reference) == pytest.approx(4 / 7)
    assert compute_cldice(reference, reference) == 1.0
    fov = np.ones_like(reference)
    fov[:3] = False  # the false vessel lies outside the field of view
    assert compute_cldice(prediction, reference, fov=fov) == pytest.approx(
        2 * (4 / 7) / (1 + 4 / 7)
    )


def _read_mask(path: Path) -> np.ndarray:
    array = read_image(path).array  # (column, row, 1) or (column, row, 1, RGB)
    return (array[..., 0] if array.ndim == 4 else array)[:, :, 0] > 127


@pytest.mark.integration
def test_drive_second_observer_matches_published_figures(repo_root: Path) -> None:
    """Second observer vs first on DRIVE test 01–10: published mean accuracy 0.947 (Staal 2004;
    on all 20 test images: accuracy 0.9473, sensitivity 0.7760, specificity 0.9725)."""
    root = repo_root / "data/retina_drive/test"
    results = []
    for case in range(1, 11):
        first = _read_mask(root / f"1st_manual/{case:02d}_manual1.gif")
        second = _read_mask(root / f"2nd_manual/{case:02d}_manual2.gif")
        fov = _read_mask(root / f"mask/{case:02d}_test_mask.gif")
        results.append(
            compute_vessel_metrics(second, first, fov=fov, probabilities=second.astype(float))
        )
    accuracy = np.mean([m.accuracy for m in results])
    sensitivity = np.mean([m.sensitivity for m in results])
    specificity = np.mean([m.specificity for m in results])
    assert accuracy == pytest.approx(0.947, abs=0.005)
    assert sensitivity == pytest.approx(0.776, abs=0.04)
    assert specificity == pytest.approx(0.9725, abs=0.01)
    for metrics in results:  # AUC of a binary score is (sensitivity + specificity) / 2
        assert metrics.auc_roc == pytest.approx((metrics.sensitivity + metrics.specificity) / 2)
        assert 0.6 < metrics.cldice < 1.0
