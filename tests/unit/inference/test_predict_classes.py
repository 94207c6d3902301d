"""The argmax of a prediction only picks the plans' classes (labels may skip an index)."""

from __future__ import annotations

import numpy as np
import torch

from medseg.inference._predict import _to_source_grid


def test_unused_output_channel_never_wins():
    probabilities = torch.zeros((5, 2, 2, 2))
    probabilities[0] = 0.1
    probabilities[3] = 0.9  # index 3 is not a class (BraTS labels 1, 2, 4)
    probabilities[4, 0] = 0.5
    labels, _ = _to_source_grid(probabilities, (2, 2, 2), keep=False, classes={0, 1, 2, 4})
    np.testing.assert_array_equal(labels[0], 4)
    np.testing.assert_array_equal(labels[1], 0)
    everything, _ = _to_source_grid(probabilities, (2, 2, 2), keep=False)
    assert (everything == 3).all()


def test_kept_probabilities_still_hold_every_channel():
    probabilities = torch.rand((3, 2, 3, 4), generator=torch.Generator().manual_seed(0))
    _, kept = _to_source_grid(probabilities, (2, 3, 4), keep=True, classes={0, 2})
    assert kept is not None
    np.testing.assert_allclose(kept[..., 1], probabilities[1].numpy(), atol=1e-3)
