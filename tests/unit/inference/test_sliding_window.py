"""The sliding-window engine against MONAI's sliding_window_inference as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data.utils import dense_patch_slices
from monai.inferers import sliding_window_inference

from medseg.core import ConfigError
from medseg.inference import (
    SlidingWindowConfig,
    compute_window_starts,
    predict_sliding_window,
    softmax_,
)


def _conv_net(dims: int, channels_in: int = 1, channels_out: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    conv = torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d
    return torch.nn.Sequential(
        conv(channels_in, 4, 3, padding=1), torch.nn.ReLU(), conv(4, channels_out, 3, padding=1)
    ).eval()


@pytest.mark.parametrize(
    ("size", "roi", "overlap"),
    [((40, 33, 20), (16, 16, 8), 0.5), ((50, 21), (16, 16), 0.25), ((10, 9, 7), (8, 8, 8), 0.5)],
)
def test_window_starts_match_monai(size: tuple, roi: tuple, overlap: float) -> None:
    padded = tuple(max(s, r) for s, r in zip(size, roi, strict=True))
    interval = [
        r if r == s else max(1, int(r * (1 - overlap))) for s, r in zip(padded, roi, strict=True)
    ]
    monai_starts = dense_patch_slices(padded, roi, interval, return_slice=False)
    ours = compute_window_starts(padded, roi, overlap=overlap)
    for axis in range(len(size)):
        assert sorted({int(s[axis][0]) for s in monai_starts}) == ours[axis]


@pytest.mark.parametrize(
    ("shape", "roi", "overlap", "batch"),
    [
        ((1, 37, 30, 19), [16, 16, 8], 0.5, 3),
        ((2, 45, 38), [16, 24], 0.25, 4),
        ((1, 12, 40, 6), [16, 16, 8], 0.5, 2),  # smaller than the window on two axes: padded
    ],
)
def test_probabilities_match_monai_in_fp32(
    shape: tuple, roi: list[int], overlap: float, batch: int
) -> None:
    rng = np.random.default_rng(0)
    image = torch.tensor(rng.normal(size=shape), dtype=torch.float32)
    net = _conv_net(len(shape) - 1, channels_in=shape[0])
    with torch.no_grad():
        reference = sliding_window_inference(
            image[None], roi, batch, net, overlap=overlap, mode="gaussian"
        )[0]
        reference = torch.softmax(reference, dim=0)
    for channels_last in (False, True):
        config = SlidingWindowConfig(
            roi_size=roi, overlap=overlap, sw_batch_size=batch, channels_last=channels_last
        )
        ours = predict_sliding_window(net, image, config=config)
        assert ours.shape == reference.shape
        assert float((ours - reference).abs().max()) < 1e-5


def test_logits_and_constant_blending_match_monai() -> None:
    rng = np.random.default_rng(1)
    image = torch.tensor(rng.normal(size=(1, 30, 26, 12)), dtype=torch.float32)
    net = _conv_net(3)
    with torch.no_grad():
        reference = sliding_window_inference(image[None], [16, 16, 8], 2, net, overlap=0.5)[0]
    config = SlidingWindowConfig(roi_size=[16, 16, 8], gaussian=False)
    ours = predict_sliding_window(net, image, config=config, probabilities=False)
    assert float((ours - reference).abs().max()) < 1e-5


def test_mirror_tta_averages_flipped_predictions() -> None:
    rng = np.random.default_rng(2)
    image = torch.tensor(rng.normal(size=(1, 20, 20)), dtype=torch.float32)
    net = _conv_net(2)
    plain = SlidingWindowConfig(roi_size=[20, 20])
    tta = SlidingWindowConfig(roi_size=[20, 20], mirror_axes=[0, 1])
    with torch.no_grad():
        expected = (
            sum(
                torch.flip(net(torch.flip(image[None], dims)), dims)
                for dims in [(), (2,), (3,), (2, 3)]
            )[0]
            / 4
        )
    ours = predict_sliding_window(net, image, config=tta, probabilities=False)
    assert float((ours - expected).abs().max()) < 1e-5
    single = predict_sliding_window(net, image, config=plain, probabilities=False)
    assert float((single - expected).abs().max()) > 1e-4  # TTA changed the answer


def test_bf16_agrees_with_fp32_on_argmax() -> None:
    rng = np.random.default_rng(3)
    image = torch.tensor(rng.normal(size=(1, 24, 24, 12)), dtype=torch.float32)
    net = _conv_net(3)
    fp32 = predict_sliding_window(net, image, config=SlidingWindowConfig(roi_size=[16, 16, 8]))
    bf16 = predict_sliding_window(
        net, image, config=SlidingWindowConfig(roi_size=[16, 16, 8], precision="bf16")
    )
    assert bf16.dtype == torch.float32
    agreement = float((fp32.argmax(0) == bf16.argmax(0)).float().mean())
    assert agreement > 0.97


def test_fp16_on_cpu_is_refused() -> None:
    config = SlidingWindowConfig(roi_size=[8, 8], precision="fp16")
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        predict_sliding_window(_conv_net(2), torch.zeros(1, 8, 8), config=config)


def test_roi_dimensions_must_match_the_image() -> None:
    with pytest.raises(ConfigError, match="roi_size must have 2 values"):
        predict_sliding_window(
            _conv_net(2), torch.zeros(1, 8, 8), config=SlidingWindowConfig(roi_size=[8, 8, 8])
        )


def test_in_place_softmax_equals_torch() -> None:
    rng = np.random.default_rng(4)
    logits = torch.tensor(rng.normal(scale=20, size=(4, 5, 6)), dtype=torch.float32)
    expected = torch.softmax(logits, dim=0)
    assert torch.allclose(softmax_(logits.clone()), expected, atol=1e-6)
    one = torch.tensor([[0.0, 2.0]])
    assert torch.allclose(softmax_(one.clone()), torch.sigmoid(one))
