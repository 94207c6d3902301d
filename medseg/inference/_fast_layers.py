"""Numerically equivalent, faster forms of common layers for CPU inference.

Profiling MONAI's UNet on windows of 96³ voxels on this project's CPU (oneDNN 3.12, fp32,
``benchmarks/sliding_window.py``) showed three costs that have nothing to do with the
arithmetic the network needs:

- ``InstanceNorm`` runs as ``batch_norm`` on a ``(1, N·C, …)`` view, 8–15 ms per call on a
  ``2×16×48³`` tensor, and copies channels-last inputs back to contiguous. A two-pass
  mean/variance in the input's own memory format takes ~2.5 ms with the same accuracy
  (``group_norm`` is as fast but, in channels-last, sums in one pass and loses ~1e-2 when
  the channel mean is large against its spread, as after a biased convolution).
- oneDNN pads channels to blocks of 16: a 2→2 channel convolution at 96³ costs as much as a
  16→16 one, and ``ConvTranspose3d(32→2, stride 2)`` took ~100 ms. The transposed
  convolution is rewritten exactly as a stride-1 convolution producing every output phase
  as channels (``2³ × C_out`` = 16 here), followed by a pixel shuffle (the sub-pixel form).
- In the contiguous layout every oneDNN convolution reorders its input and output to a
  blocked layout; channels-last (weights and activations) avoids the reorders.

:func:`prepare_network` applies these to a copy of the network (the caller's module is not
touched). Results equal the original's to float rounding (~1e-5 on the logits).
"""

from __future__ import annotations

import copy
import itertools
import logging

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

#: oneDNN's channel block on AVX-512: transposed convolutions with fewer output channels
#: waste most of their arithmetic and are rewritten in sub-pixel form.
_SUBPIXEL_MAX_OUT_CHANNELS = 16


class FastInstanceNorm(nn.Module):
    """Instance normalisation by a two-pass mean/variance that keeps the memory format.

    Same result as ``nn.InstanceNorm{1,2,3}d`` without running statistics (to float
    rounding). Statistics and normalisation are computed in float32 whatever the input
    dtype; a bf16/fp16 input (autocast) gets its output in the same dtype, which the next
    convolution would cast to anyway, and which halves what skip connections hold.
    """

    def __init__(
        self,
        norm: nn.modules.instancenorm._InstanceNorm,
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.eps = float(norm.eps)
        self.weight = norm.weight
        self.bias = norm.bias
        #: An activation applied in place on the fresh output (ReLU, LeakyReLU or a
        #: single-slope PReLU), saving the activation's own output tensor.
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(2, x.ndim))
        mean = x.mean(dim=dims, keepdim=True, dtype=torch.float32)
        centred = x - mean  # a new float32 tensor in x's memory format
        var = (centred * centred).mean(dim=dims, keepdim=True)
        centred.mul_(var.add_(self.eps).rsqrt_())
        if self.weight is not None:
            shape = (1, -1) + (1,) * len(dims)
            centred.mul_(self.weight.view(shape))
            if self.bias is not None:
                centred.add_(self.bias.view(shape))
        if isinstance(self.activation, nn.PReLU):
            F.leaky_relu_(centred, float(self.activation.weight))
        elif isinstance(self.activation, nn.LeakyReLU):
            F.leaky_relu_(centred, self.activation.negative_slope)
        elif isinstance(self.activation, nn.ReLU):
            centred.relu_()
        if x.dtype in (torch.bfloat16, torch.float16):  # autocast: the next layer's dtype
            return centred.to(x.dtype)
        return centred

    @staticmethod
    def fuses(activation: nn.Module) -> bool:
        """Whether ``activation`` can be applied in place after the norm."""
        if isinstance(activation, nn.PReLU):
            return activation.num_parameters == 1
        return type(activation) in (nn.ReLU, nn.LeakyReLU)


class SubPixelConvTranspose(nn.Module):
    """A transposed convolution computed as a convolution over every output phase.

    For stride ``s``, output voxel ``o = s·m + r`` (phase ``r``) receives input voxel
    ``m + j`` through kernel tap ``k = r + p − s·j``. One stride-1 convolution with
    ``prod(s) × C_out`` channels computes all phases; a reshape interleaves them. Only
    built when the output is at most ``s × input`` long along each axis
    (``k − 2p + output_padding ≤ s``, e.g. MONAI's ``k=3, s=2, p=1, op=1``).
    """

    def __init__(self, deconv: nn.ConvTranspose2d | nn.ConvTranspose3d) -> None:
        super().__init__()
        dims = deconv.weight.ndim - 2
        self.dims = dims
        self.stride = tuple(int(s) for s in deconv.stride)
        self.out_channels = int(deconv.out_channels)
        self.kernel_size = tuple(int(k) for k in deconv.kernel_size)
        self.padding = tuple(int(p) for p in deconv.padding)  # type: ignore[arg-type]
        self.output_padding = tuple(int(p) for p in deconv.output_padding)
        taps = []  # per axis: phase -> [(input offset j, kernel tap k)]
        for axis in range(dims):
            s, p, k = self.stride[axis], self.padding[axis], self.kernel_size[axis]
            taps.append(
                {
                    r: [((r + p - kk) // s, kk) for kk in range(k) if (r + p - kk) % s == 0]
                    for r in range(s)
                }
            )
        lows = [min(j for phase in axis.values() for j, _ in phase) for axis in taps]
        highs = [max(j for phase in axis.values() for j, _ in phase) for axis in taps]
        size = [h - lo + 1 for lo, h in zip(lows, highs, strict=True)]
        phases = list(itertools.product(*[range(s) for s in self.stride]))
        weight = deconv.weight.detach()  # (C_in, C_out, *k)
        fused = weight.new_zeros((len(phases) * self.out_channels, weight.shape[0], *size))
        for index, phase in enumerate(phases):
            rows = slice(index * self.out_channels, (index + 1) * self.out_channels)
            for combo in itertools.product(*[taps[a][phase[a]] for a in range(dims)]):
                at = tuple(j - lows[a] for a, (j, _) in enumerate(combo))
                tap = tuple(kk for _, kk in combo)
                fused[(rows, slice(None), *at)] += weight[(slice(None), slice(None), *tap)].T
        conv_type = nn.Conv3d if dims == 3 else nn.Conv2d
        self.conv = conv_type(
            weight.shape[0], fused.shape[0], size, bias=deconv.bias is not None
        ).to(weight.device)
        self.conv.weight = nn.Parameter(fused, requires_grad=False)
        if deconv.bias is not None:
            repeated = deconv.bias.detach().repeat(len(phases))
            self.conv.bias = nn.Parameter(repeated, requires_grad=False)
        self.pad: list[int] = []
        for lo, h in zip(reversed(lows), reversed(highs), strict=True):
            self.pad += [-lo, h]

    @staticmethod
    def supports(deconv: nn.Module) -> bool:
        """Whether ``deconv`` is a transposed convolution this class reproduces exactly."""
        if not isinstance(deconv, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
            return False
        if deconv.groups != 1 or any(d != 1 for d in deconv.dilation):
            return False
        if deconv.padding_mode != "zeros" or isinstance(deconv.padding, str):
            return False
        return all(
            k - 2 * p + op <= s and k >= s
            for k, p, op, s in zip(
                deconv.kernel_size,
                deconv.padding,
                deconv.output_padding,
                deconv.stride,
                strict=True,
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        phased = self.conv(F.pad(x, self.pad) if any(self.pad) else x)
        n, steps = phased.shape[0], phased.shape[2:]
        phased = phased.view(n, *self.stride, self.out_channels, *steps)
        order = (0, 4, 5, 1, 6, 2, 7, 3) if self.dims == 3 else (0, 3, 4, 1, 5, 2)
        full = [steps[a] * self.stride[a] for a in range(self.dims)]
        out = phased.permute(order).reshape(n, self.out_channels, *full)
        wanted = [
            (spatial[a] - 1) * self.stride[a]
            - 2 * self.padding[a]
            + self.kernel_size[a]
            + self.output_padding[a]
            for a in range(self.dims)
        ]
        if wanted != full:
            out = out[(slice(None), slice(None), *(slice(0, w) for w in wanted))]
        return out


def _is_instance_norm(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.modules.instancenorm._InstanceNorm) and not module.track_running_stats
    )


def _fuse_norm_activation(block: nn.Sequential) -> bool:
    """MONAI's ADN block ``N [D] A``: norm and activation become one in-place module."""
    names = list(block._modules)
    norm = block._modules.get("N")
    activation = block._modules.get("A")
    if norm is None or activation is None or not _is_instance_norm(norm):
        return False
    if names not in (["N", "A"], ["N", "D", "A"]) or not FastInstanceNorm.fuses(activation):
        return False
    block._modules["N"] = FastInstanceNorm(norm, activation)  # type: ignore[arg-type]
    block._modules["A"] = nn.Identity()  # eval-mode dropout between them is the identity
    return True


def _rewrite_children(module: nn.Module) -> int:
    from monai.networks.blocks import ADN

    count = 0
    for name, child in module.named_children():
        if isinstance(child, ADN) and _fuse_norm_activation(child):
            count += 1
            continue
        if _is_instance_norm(child):
            setattr(module, name, FastInstanceNorm(child))  # type: ignore[arg-type]
            count += 1
        elif (
            SubPixelConvTranspose.supports(child)
            and child.out_channels < _SUBPIXEL_MAX_OUT_CHANNELS  # type: ignore[operator]
        ):
            setattr(module, name, SubPixelConvTranspose(child))  # type: ignore[arg-type]
            count += 1
        else:
            count += _rewrite_children(child)
    return count


def prepare_network(
    network: nn.Module, *, rewrite_layers: bool = True, channels_last: bool = True
) -> nn.Module:
    """A copy of ``network`` in eval mode, prepared for fast inference.

    Parameters
    ----------
    rewrite_layers
        Replace instance norms (without running statistics) by :class:`FastInstanceNorm`
        and transposed convolutions with fewer than 16 output channels by
        :class:`SubPixelConvTranspose`.
    channels_last
        Convert the weights to channels-last memory format (feed channels-last inputs).

    Returns
    -------
    nn.Module
        A deep copy (the caller's network and weights are left as they are).
    """
    prepared = copy.deepcopy(network).eval()
    for parameter in prepared.parameters():
        parameter.requires_grad_(False)
    if rewrite_layers:
        count = _rewrite_children(prepared)
        logger.debug("rewrote %d layer(s) for inference", count)
    if channels_last:
        dims = {p.ndim for p in prepared.parameters() if p.ndim in (4, 5)}
        if dims == {5}:
            prepared = prepared.to(memory_format=torch.channels_last_3d)
        elif dims == {4}:
            prepared = prepared.to(memory_format=torch.channels_last)
    return prepared
