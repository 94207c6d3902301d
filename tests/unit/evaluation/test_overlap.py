from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice as monai_dice

from medseg.core import GeometryError
from medseg.evaluation import compute_dice


def test_dice_by_hand() -> None:
    prediction = np.zeros((4, 4), bool)
    reference = np.zeros((4, 4), bool)
    prediction[0, :3] = True  # 3 voxels
    reference[0, 1:] = True  # 3 voxels, 2 shared
    assert compute_dice(prediction, reference) == pytest.approx(2 * 2 / 6)


def test_dice_empty_conventions() -> None:
    empty = np.zeros((3, 3), bool)
    full = np.ones((3, 3), bool)
    assert math.isnan(compute_dice(empty, empty))
    assert compute_dice(full, empty) == 0.0


def test_dice_matches_monai_on_random_3d_masks() -> None:
    rng = np.random.default_rng(7)
    prediction = rng.random((20, 24, 16)) > 0.6
    reference = rng.random((20, 24, 16)) > 0.5
    expected = monai_dice(
        torch.as_tensor(prediction)[None, None].float(),
        torch.as_tensor(reference)[None, None].float(),
        include_background=True,
    ).item()
    assert compute_dice(prediction, reference) == pytest.approx(expected, abs=1e-6)


def test_shape_mismatch_is_a_geometry_error() -> None:
    with pytest.raises(GeometryError, match="same shape"):
        compute_dice(np.zeros((2, 2)), np.zeros((2, 3)))
