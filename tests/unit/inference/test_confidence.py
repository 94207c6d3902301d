"""Confidence from checkpoint inference: mirror-TTA disagreement and largest probability."""

from __future__ import annotations

import numpy as np
import torch

from medseg.inference import (
    SlidingWindowConfig,
    predict_sliding_window,
    predict_sliding_window_with_disagreement,
)


class _Threshold(torch.nn.Module):
    """Two-class logits ``(-x, x)``: flip-equivariant, mirrored passes always agree."""

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.cat([-batch, batch], dim=1)


class _Ramp(torch.nn.Module):
    """Logits ``(0, ramp)`` with a ramp along the window's first axis from -1 to 1: a
    mirrored pass sees the ramp reversed, so it disagrees on one half of every window."""

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        size = batch.shape[2]
        ramp = torch.linspace(-1.0, 1.0, size).view(1, 1, size, 1).expand_as(batch)
        return torch.cat([torch.zeros_like(batch), ramp + 0.01], dim=1)


def _config(mirror: bool) -> SlidingWindowConfig:
    return SlidingWindowConfig(
        roi_size=[8, 8], overlap=0.0, sw_batch_size=2, mirror_axes=[0] if mirror else []
    )


def test_equivariant_network_has_no_disagreement() -> None:
    image = torch.tensor(np.random.default_rng(0).normal(size=(1, 16, 16)), dtype=torch.float32)
    probabilities, disagreement = predict_sliding_window_with_disagreement(
        _Threshold(), image, config=_config(True)
    )
    assert disagreement.shape == (16, 16)
    assert float(disagreement.abs().max()) == 0.0
    torch.testing.assert_close(
        probabilities, predict_sliding_window(_Threshold(), image, config=_config(True))
    )


def test_ramp_network_disagrees_on_half_of_each_window() -> None:
    image = torch.zeros((1, 16, 16))
    probabilities, disagreement = predict_sliding_window_with_disagreement(
        _Ramp(), image, config=_config(True)
    )
    # averaged logits: ramp and its mirror cancel to 0.01 > 0: class 1 everywhere; the
    # plain pass says class 0 on the low half of each window, the mirrored one on the high
    # half: one of the two passes disagrees everywhere
    assert probabilities.argmax(0).eq(1).all()
    np.testing.assert_allclose(disagreement.numpy(), 0.5, atol=1e-6)
    _, none = predict_sliding_window_with_disagreement(_Ramp(), image, config=_config(False))
    assert float(none.abs().max()) == 0.0
