"""Nested region decision and the relative-size component filter of channel models."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.inference import (
    InferConfig,
    NestedRegion,
    decide_nested_regions,
    keep_foreground_components,
    keep_largest_foreground,
)

BRATS = [
    NestedRegion(labels=[1, 2, 4], label=2),
    NestedRegion(labels=[1, 4], label=1),
    NestedRegion(labels=[4], label=4),
]


def _probs(*rows: tuple[float, float, float, float]) -> np.ndarray:
    """``(N, 1, 1, 5)`` probabilities from (P0, P1, P2, P4) rows; channel 3 stays 0."""
    out = np.zeros((len(rows), 1, 1, 5), dtype=np.float32)
    for i, (p0, p1, p2, p4) in enumerate(rows):
        out[i, 0, 0, [0, 1, 2, 4]] = [p0, p1, p2, p4]
    return out


def test_nested_regions_worked_by_hand():
    probs = _probs(
        (0.6, 0.1, 0.2, 0.1),  # WT 0.4: background (argmax too)
        (0.4, 0.2, 0.2, 0.2),  # WT 0.6, TC 0.4: oedema although background is the argmax
        (0.3, 0.3, 0.1, 0.3),  # WT 0.7, TC 0.6, ET 0.3: core
        (0.2, 0.1, 0.1, 0.6),  # ET 0.6: enhancing
        (0.45, 0.0, 0.0, 0.55),  # ET 0.55 inside TC 0.55 inside WT 0.55: enhancing
    )
    labels = decide_nested_regions(probs, BRATS)
    assert labels.dtype == np.uint8
    assert labels.ravel().tolist() == [0, 2, 1, 4, 4]


def test_nested_regions_threshold_per_level():
    probs = _probs(
        (0.65, 0.1, 0.15, 0.1),  # WT 0.35
        (0.75, 0.05, 0.15, 0.05),  # WT 0.25
        (0.6, 0.2, 0.0, 0.2),  # WT 0.4, TC 0.4
    )
    lower = [NestedRegion(labels=[1, 2, 4], label=2, threshold=0.3), *BRATS[1:]]
    assert decide_nested_regions(probs, BRATS).ravel().tolist() == [0, 0, 0]
    # WT at 0.3: the first and third voxels join the whole tumour; TC keeps its 0.5
    assert decide_nested_regions(probs, lower).ravel().tolist() == [2, 0, 2]
    with pytest.raises(ValueError, match="threshold"):
        NestedRegion(labels=[1], label=1, threshold=1.0)


def test_nested_regions_inner_level_never_leaves_the_outer():
    # ET alone > 0.5 cannot happen without WT > 0.5; a region list with a disjoint inner
    # level shows the nesting: label 9 only inside level 1's voxels
    probs = np.zeros((2, 1, 1, 3), dtype=np.float32)
    probs[0, 0, 0] = [0.9, 0.05, 0.05]
    probs[1, 0, 0] = [0.2, 0.2, 0.6]
    regions = [{"labels": [1], "label": 5}, {"labels": [0], "label": 9}]
    assert decide_nested_regions(probs, regions).ravel().tolist() == [0, 0]


def test_component_fraction_keeps_large_foci_only():
    labels = np.zeros((20, 20, 20), dtype=np.uint8)
    labels[0:10, 0:10, 0:10] = 2  # 1000 voxels
    labels[12:18, 12:18, 12:18] = 1  # 216 voxels: 0.216 of the largest
    labels[0:2, 18:20, 18:20] = 4  # 8 voxels
    kept = keep_foreground_components(labels, min_fraction=0.2)
    assert (kept[12:18, 12:18, 12:18] == 1).all()
    assert (kept[0:2, 18:20, 18:20] == 0).all()
    np.testing.assert_array_equal(kept[0:10, 0:10, 0:10], labels[0:10, 0:10, 0:10])
    only = keep_foreground_components(labels, min_fraction=0.25)
    assert (only[12:18, 12:18, 12:18] == 0).all()
    np.testing.assert_array_equal(
        keep_foreground_components(labels, min_fraction=1.0), keep_largest_foreground(labels)
    )


def test_infer_config_validates_the_new_settings():
    config = InferConfig(regions=[{"labels": [1, 2, 4], "label": 2}], min_component_fraction=0.1)
    assert config.regions[0].labels == [1, 2, 4]
    assert InferConfig().regions == []
    assert InferConfig().min_component_fraction == 1.0
    with pytest.raises(ValueError, match="min_component_fraction"):
        InferConfig(min_component_fraction=0.0)
