"""Overlapping SAM objects: a voxel two objects claim goes to the more probable one."""

from __future__ import annotations

import numpy as np

from medseg.sam import assign_claimed_voxels


def _paint(objects: list[tuple[int, np.ndarray]]) -> np.ndarray:
    labels = np.zeros((1, 4, 4), dtype=np.uint16)
    best = np.zeros(labels.shape, dtype=np.float16)
    for label, probability in objects:
        assign_claimed_voxels(labels, best, probability > 0.5, probability, label)
    return labels


def test_a_later_object_does_not_take_voxels_it_is_less_sure_of() -> None:
    liver = np.zeros((1, 4, 4), dtype=np.float16)
    liver[0, :, :3] = 0.95
    lungs = np.zeros((1, 4, 4), dtype=np.float16)
    lungs[0, :2, :] = 0.6  # overlaps the liver's top rows, less sure there
    lungs[0, :2, 3] = 0.9
    labels = _paint([(1, liver), (2, lungs)])
    assert (labels[0, :, :3] == 1).all()  # the liver keeps all it was surer of
    assert (labels[0, :2, 3] == 2).all()  # the lungs keep what nobody else claimed
    assert (labels[0, 2:, 3] == 0).all()


def test_the_order_of_the_objects_does_not_matter() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((1, 4, 4)).astype(np.float16)
    b = rng.random((1, 4, 4)).astype(np.float16)
    forward = _paint([(1, a), (2, b)])
    backward = _paint([(2, b), (1, a)])
    assert np.array_equal(forward, backward)
    both = (a > 0.5) & (b > 0.5)
    assert np.array_equal(forward[both], np.where(a > b, 1, 2)[both])
