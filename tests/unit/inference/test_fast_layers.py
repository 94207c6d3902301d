"""Exact faster layers for CPU inference, checked against the layers they replace."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import UNet

from medseg.inference import (
    FastInstanceNorm,
    SlidingWindowConfig,
    SubPixelConvTranspose,
    _allocator,
    predict_sliding_window,
    prepare_network,
    retain_freed_memory,
)


def _biased(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Activations as after a biased convolution: channel means far from zero."""
    g = torch.Generator().manual_seed(seed)
    channels = shape[1]
    offsets = torch.randn((1, channels) + (1,) * (len(shape) - 2), generator=g) * 3
    return torch.randn(shape, generator=g) * 0.3 + offsets


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_instance_norm_equals_torch(dims: int, affine: bool, channels_last: bool) -> None:
    norm_type = torch.nn.InstanceNorm3d if dims == 3 else torch.nn.InstanceNorm2d
    norm = norm_type(6, affine=affine).eval()
    if affine:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-1, 1)
    x = _biased((2, 6, 20, 18, 16)[: dims + 2])
    memory_format = torch.contiguous_format
    if channels_last:
        memory_format = torch.channels_last_3d if dims == 3 else torch.channels_last
    x = x.contiguous(memory_format=memory_format)
    fast = FastInstanceNorm(norm)
    with torch.no_grad():
        expected = copy.deepcopy(norm).double()(x.double().contiguous()).float()
        ours = fast(x)
    assert float((ours - expected).abs().max()) < 1e-5
    assert ours.is_contiguous(memory_format=memory_format)


def test_fast_instance_norm_fuses_activation_and_takes_bf16() -> None:
    norm, act = torch.nn.InstanceNorm3d(4), torch.nn.PReLU()
    with torch.no_grad():
        act.weight.fill_(0.2)
    x = _biased((1, 4, 8, 8, 8), seed=1)
    with torch.no_grad():
        expected = act(norm(x))
        fused = FastInstanceNorm(norm, act)(x)
        from_bf16 = FastInstanceNorm(norm, act)(x.bfloat16())
    assert float((fused - expected).abs().max()) < 1e-5
    assert from_bf16.dtype == torch.bfloat16
    assert float((from_bf16.float() - expected).abs().max()) < 0.1
    assert FastInstanceNorm.fuses(torch.nn.ReLU())
    assert not FastInstanceNorm.fuses(torch.nn.PReLU(num_parameters=4))
    assert not FastInstanceNorm.fuses(torch.nn.GELU())


@pytest.mark.parametrize(
    ("dims", "kernel", "stride", "padding", "output_padding", "size"),
    [
        (3, 3, 2, 1, 1, (5, 6, 7)),  # MONAI UNet's up-convolution
        (3, 2, 2, 0, 0, (3, 4, 5)),  # DynUNet's
        (3, (3, 3, 1), (2, 2, 1), (1, 1, 0), (1, 1, 0), (4, 5, 3)),  # anisotropic
        (2, 3, 2, 1, 1, (9, 7)),
        (2, 4, 2, 1, 0, (6, 5)),
        (2, 5, 3, 1, 0, (4, 4)),
    ],
)
def test_subpixel_transposed_conv_equals_torch(
    dims: int, kernel: object, stride: object, padding: object, output_padding: object, size: tuple
) -> None:
    torch.manual_seed(0)
    conv_type = torch.nn.ConvTranspose3d if dims == 3 else torch.nn.ConvTranspose2d
    deconv = conv_type(
        5, 3, kernel, stride=stride, padding=padding, output_padding=output_padding
    ).eval()
    assert SubPixelConvTranspose.supports(deconv)
    x = torch.randn(2, 5, *size)
    with torch.no_grad():
        expected = deconv(x)
        ours = SubPixelConvTranspose(deconv)(x)
    assert ours.shape == expected.shape
    assert float((ours - expected).abs().max()) < 1e-5


def test_subpixel_refuses_what_it_cannot_reproduce() -> None:
    assert not SubPixelConvTranspose.supports(torch.nn.ConvTranspose2d(4, 2, 5, stride=2))
    assert not SubPixelConvTranspose.supports(torch.nn.ConvTranspose2d(4, 2, 3, stride=2, groups=2))
    assert not SubPixelConvTranspose.supports(torch.nn.ConvTranspose2d(4, 2, 3, 2, dilation=2))
    assert not SubPixelConvTranspose.supports(torch.nn.Conv2d(4, 2, 3))


def _unet(dims: int = 3) -> UNet:
    torch.manual_seed(0)
    return UNet(
        spatial_dims=dims,
        in_channels=1,
        out_channels=2,
        channels=(4, 8, 16),
        strides=(2, 2),
        num_res_units=2,
    ).eval()


def test_prepare_network_is_exact_and_leaves_the_original_alone() -> None:
    net = _unet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    prepared = prepare_network(net)
    rewritten = [m for m in prepared.modules() if isinstance(m, FastInstanceNorm)]
    subpixel = [m for m in prepared.modules() if isinstance(m, SubPixelConvTranspose)]
    assert rewritten
    assert len(subpixel) == 2  # both up-convolutions have < 16 output channels
    assert any(isinstance(m, torch.nn.InstanceNorm3d) for m in net.modules())
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key])
        assert value.is_contiguous()
    x = _biased((2, 1, 32, 32, 24), seed=2)
    with torch.no_grad():
        expected = net(x)
        ours = prepared(x.contiguous(memory_format=torch.channels_last_3d))
    assert float((ours - expected).abs().max()) < 1e-4


@pytest.mark.parametrize("dims", [2, 3])
def test_engine_with_a_monai_unet_matches_monai(dims: int) -> None:
    """Rewritten layers, channels-last and a full last batch: MONAI's probabilities."""
    rng = np.random.default_rng(5)
    shape = (1, 56, 40, 30)[: dims + 1]
    roi = [32, 32, 16][:dims]
    image = torch.tensor(rng.normal(size=shape), dtype=torch.float32)
    net = _unet(dims)
    with torch.no_grad():
        reference = sliding_window_inference(
            image[None], roi, 2, net, overlap=0.5, mode="gaussian"
        )[0].softmax(0)
    config = SlidingWindowConfig(roi_size=roi, overlap=0.5, sw_batch_size=2)
    ours = predict_sliding_window(net, image, config=config)
    assert float((ours - reference).abs().max()) < 1e-4
    plain = SlidingWindowConfig(
        roi_size=roi, sw_batch_size=2, rewrite_layers=False, retain_memory=False
    )
    assert float((predict_sliding_window(net, image, config=plain) - ours).abs().max()) < 1e-4


def test_every_forward_pass_gets_a_full_batch() -> None:
    sizes: list[int] = []

    def network(batch: torch.Tensor) -> torch.Tensor:
        sizes.append(batch.shape[0])
        return torch.cat([batch, -batch], dim=1)

    image = torch.randn(1, 32, 16)
    config = SlidingWindowConfig(roi_size=[16, 16], overlap=0.5, sw_batch_size=2)
    out = predict_sliding_window(network, image, config=config, probabilities=False)
    assert sizes == [2, 2]  # 3 windows: the last pass reuses a stale slot
    with torch.no_grad():
        reference = sliding_window_inference(image[None], [16, 16], 2, network, overlap=0.5)
    assert float((out - reference[0]).abs().max()) < 1e-5


def test_retained_memory_block_nests_and_restores() -> None:
    with retain_freed_memory():
        with retain_freed_memory():
            assert _allocator._depth in (0, 2)  # 0 where glibc is absent
        assert _allocator._depth in (0, 1)
    assert _allocator._depth == 0
    with pytest.raises(RuntimeError), retain_freed_memory():
        raise RuntimeError("inside")
    assert _allocator._depth == 0
    with retain_freed_memory(enabled=False):
        assert _allocator._depth == 0
