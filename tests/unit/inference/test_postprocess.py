"""Per-class postprocessing on hand-made label maps."""

from __future__ import annotations

import numpy as np

from medseg.inference import LabelPostprocess, postprocess_labels


def _labels() -> np.ndarray:
    labels = np.zeros((12, 12, 3), dtype=np.uint8)
    labels[1:6, 1:6, :] = 1  # big component of class 1 (75 voxels) with a hole
    labels[3, 3, 1] = 0
    labels[9:11, 9:11, 0] = 1  # small component of class 1 (4 voxels)
    labels[8:10, 1:3, :] = 2  # class 2 (12 voxels)
    return labels


def test_largest_component_keeps_one_and_leaves_other_classes() -> None:
    out = postprocess_labels(_labels(), rules={1: LabelPostprocess(largest_component=True)})
    assert out[9, 9, 0] == 0
    assert out[1, 1, 0] == 1
    assert int((out == 2).sum()) == 12
    assert int((_labels() == 1).sum()) - int((out == 1).sum()) == 4


def test_min_size_removes_small_components_only() -> None:
    out = postprocess_labels(_labels(), rules={1: LabelPostprocess(min_size_voxels=5)})
    assert out[9, 9, 0] == 0
    assert int((out == 1).sum()) == 74
    out = postprocess_labels(_labels(), rules={2: LabelPostprocess(min_size_voxels=13)})
    assert int((out == 2).sum()) == 0


def test_fill_holes_fills_enclosed_background() -> None:
    out = postprocess_labels(_labels(), rules={1: LabelPostprocess(fill_holes=True)})
    assert out[3, 3, 1] == 1
    assert int((out == 1).sum()) == int((_labels() == 1).sum()) + 1


def test_input_is_not_modified() -> None:
    labels = _labels()
    before = labels.copy()
    postprocess_labels(labels, rules={1: LabelPostprocess(largest_component=True)})
    np.testing.assert_array_equal(labels, before)
