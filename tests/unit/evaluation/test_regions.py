"""Composite regions (BraTS whole tumour / core / enhancing) scored as binary structures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.core import GeometryError
from medseg.evaluation import (
    BRATS_REGIONS,
    EmptyCase,
    compute_label_metrics,
    compute_region_metrics,
)

# BraTS 2015 labels: 1 necrosis, 2 oedema, 3 non-enhancing, 4 enhancing.
REFERENCE = np.array(
    [
        [2, 2, 2, 2, 0, 0],
        [2, 4, 1, 4, 0, 0],
        [2, 4, 4, 4, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
)
PREDICTION = np.array(
    [
        [2, 2, 2, 0, 0, 0],
        [2, 4, 4, 4, 0, 0],
        [2, 4, 4, 2, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
)


def test_region_dice_worked_out_by_hand() -> None:
    results = compute_region_metrics(
        PREDICTION, REFERENCE, regions=BRATS_REGIONS, spacing_mm=(1.0, 1.0)
    )
    # Whole tumour: |R| 12, |P| 11, overlap 11.
    assert results["whole_tumour"].dice == pytest.approx(22 / 23)
    # Core (1, 3, 4): |R| 6, |P| 5, overlap 5 (the necrotic voxel counts in both).
    assert results["tumour_core"].dice == pytest.approx(10 / 11)
    # Enhancing: |R| 5, |P| 5, overlap 4.
    assert results["enhancing_tumour"].dice == pytest.approx(8 / 10)
    # Oedema: |R| 6, |P| 6, overlap 5.
    assert results["oedema"].dice == pytest.approx(10 / 12)
    assert results["whole_tumour"].empty is EmptyCase.NONE


def test_a_region_equals_its_binary_label_metrics() -> None:
    region = compute_region_metrics(
        PREDICTION, REFERENCE, regions={"core": [4, 1, 3]}, spacing_mm=(0.7, 1.3)
    )["core"]
    single = compute_label_metrics(
        np.isin(PREDICTION, [1, 3, 4]).astype(np.uint8),
        np.isin(REFERENCE, [1, 3, 4]).astype(np.uint8),
        labels=[1],
        spacing_mm=(0.7, 1.3),
    )[1]
    assert region == single


def test_empty_region_is_flagged_and_bad_ids_refused() -> None:
    results = compute_region_metrics(
        PREDICTION, REFERENCE, regions={"non_enhancing": [3]}, spacing_mm=(1.0, 1.0)
    )
    assert results["non_enhancing"].empty is EmptyCase.BOTH
    assert math.isnan(results["non_enhancing"].dice)
    with pytest.raises(ValueError, match="positive label ids"):
        compute_region_metrics(PREDICTION, REFERENCE, regions={"x": [0, 1]}, spacing_mm=(1, 1))
    with pytest.raises(GeometryError, match="same shape"):
        compute_region_metrics(PREDICTION, REFERENCE[:2], regions=BRATS_REGIONS, spacing_mm=(1, 1))
