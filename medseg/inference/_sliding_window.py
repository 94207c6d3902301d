"""Sliding-window inference with Gaussian blending, written for CPU and GPU speed.

Window placement and the Gaussian importance map are MONAI's (``sliding_window_inference``
with ``mode="gaussian"``, ``sigma_scale=0.125``), so in fp32 the result matches MONAI's to
float rounding (~1e-6 on probabilities). It is hand-written rather than calling MONAI
because most of the time goes into the network, and the network can be made faster:

- on CPU the network runs as a prepared copy (:func:`~medseg.inference.prepare_network`):
  instance norms and narrow transposed convolutions replaced by exact, faster forms, weights
  and activations in channels-last memory format; freed activation memory is kept in the
  process while predicting (:func:`~medseg.inference.retain_freed_memory`), and every
  forward pass gets a full window batch (together 1.67x MONAI's fp32 speed in
  ``benchmarks/sliding_window.py``, probabilities equal to 5e-6);
- ``precision="auto"`` is fp32 on CPU (bf16 autocast is opt-in: faster, not equal) and
  bf16 (or fp16 without bf16 support) autocast on CUDA;
- the network runs under ``inference_mode``; windows are gathered into one pre-allocated
  batch buffer; the importance map and the per-voxel weight sum are cached per (volume,
  window) shape, the weight sum as a single channel;
- logits are accumulated in place into one ``(C, *spatial)`` float32 buffer, which is then
  normalised and turned into probabilities in place (never a second full-size copy).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence

import torch
from pydantic import Field

from medseg.core import ConfigError, ConfigModel
from medseg.inference._allocator import retain_freed_memory
from medseg.inference._fast_layers import prepare_network
from medseg.models import Precision, build_autocast

logger = logging.getLogger(__name__)


#: The precision vocabulary (one enum for the whole project, :class:`medseg.models.Precision`).
ComputePrecision = Precision


class SlidingWindowConfig(ConfigModel):
    """How a volume is tiled and blended.

    Attributes
    ----------
    roi_size
        Window size in voxels per spatial axis (usually the plans' patch size).
    overlap
        Fraction of a window shared with its neighbour along each axis, in [0, 1).
    sw_batch_size
        Windows per forward pass.
    gaussian
        Gaussian blending (σ = ``sigma_scale`` × window size); else uniform weights.
    precision
        ``auto`` (fp32 on CPU, bf16/fp16 autocast on CUDA), ``fp32``, ``bf16`` or ``fp16``
        autocast (fp16 only on CUDA).
    mirror_axes
        Test-time augmentation: also predict on inputs flipped along every non-empty subset
        of these spatial axes (0-based) and average the logits.
    channels_last
        Run the network in channels-last memory format; ``None`` (default): on CUDA, and on
        CPU together with ``rewrite_layers`` (without the rewritten instance norms,
        PyTorch's own copies channels-last tensors back and is slower).
    rewrite_layers
        On CPU, run a copy of the network whose instance norms and narrow transposed
        convolutions are replaced by exact, faster forms (:func:`prepare_network`).
    retain_memory
        On CPU (Linux), keep freed activation memory in the process while predicting
        instead of page-faulting it back for every layer (:func:`retain_freed_memory`).
    """

    roi_size: list[int]
    overlap: float = Field(default=0.5, ge=0.0, lt=1.0)
    sw_batch_size: int = Field(default=4, ge=1)
    gaussian: bool = True
    sigma_scale: float = Field(default=0.125, gt=0.0)
    precision: ComputePrecision = ComputePrecision.AUTO
    mirror_axes: list[int] = Field(default_factory=list)
    channels_last: bool | None = None
    rewrite_layers: bool = True
    retain_memory: bool = True


def compute_window_starts(
    image_size: Sequence[int], roi_size: Sequence[int], *, overlap: float
) -> list[list[int]]:
    """Start index of every window along each axis (MONAI's placement).

    The step is ``int(roi * (1 - overlap))`` (1 at least); the last window is shifted back
    to end at the image border. ``image_size`` must be ≥ ``roi_size`` on every axis.
    """
    starts = []
    for size, roi in zip(image_size, roi_size, strict=True):
        if roi >= size:
            starts.append([0])
            continue
        step = max(1, int(roi * (1 - overlap)))
        count = math.ceil((size - roi) / step) + 1
        starts.append([min(i * step, size - roi) for i in range(count)])
    return starts


@functools.lru_cache(maxsize=8)
def _importance_map(roi_size: tuple[int, ...], gaussian: bool, sigma_scale: float) -> torch.Tensor:
    from monai.data.utils import compute_importance_map

    mode = "gaussian" if gaussian else "constant"
    return compute_importance_map(roi_size, mode=mode, sigma_scale=sigma_scale, device="cpu")


@functools.lru_cache(maxsize=4)
def _weight_sum(
    image_size: tuple[int, ...],
    roi_size: tuple[int, ...],
    overlap: float,
    gaussian: bool,
    sigma_scale: float,
) -> torch.Tensor:
    weights = _importance_map(roi_size, gaussian, sigma_scale)
    total = torch.zeros(image_size, dtype=torch.float32)
    for corner in _corners(compute_window_starts(image_size, roi_size, overlap=overlap)):
        total[_window(corner, roi_size)] += weights
    return total


def _corners(starts: list[list[int]]) -> list[tuple[int, ...]]:
    grids = torch.meshgrid(*[torch.tensor(s) for s in starts], indexing="ij")
    return [tuple(int(v) for v in row) for row in torch.stack([g.ravel() for g in grids], 1)]


def _window(corner: Sequence[int], roi_size: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(c, c + r) for c, r in zip(corner, roi_size, strict=True))


def _mirror_sets(axes: Sequence[int]) -> list[tuple[int, ...]]:
    sets: list[tuple[int, ...]] = [()]
    for axis in sorted(set(axes)):
        sets += [(*s, axis) for s in sets]
    return sets


@torch.inference_mode()
def predict_sliding_window(
    network: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    config: SlidingWindowConfig,
    device: torch.device | None = None,
    probabilities: bool = True,
) -> torch.Tensor:
    """Tile ``image``, run ``network`` per window batch and blend the outputs.

    Parameters
    ----------
    network
        Maps ``(B, C_in, *roi_size)`` to logits ``(B, C_out, *roi_size)``; in eval mode.
    image
        ``(C_in, *spatial)`` float32 (2 or 3 spatial axes), on CPU or ``device``.
    device
        Where the network runs (default: the image's device). The blended output stays on
        the image's device.
    probabilities
        Return softmax probabilities (computed in place) instead of blended logits.

    Returns
    -------
    torch.Tensor
        ``(C_out, *spatial)`` float32: probabilities (or logits) per class.
    """
    device = device or image.device
    with retain_freed_memory(enabled=config.retain_memory and device.type == "cpu"):
        output, _ = _predict(
            network, image, config=config, device=device, probabilities=probabilities
        )
    return output


@torch.inference_mode()
def predict_sliding_window_with_disagreement(
    network: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    config: SlidingWindowConfig,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`predict_sliding_window` (probabilities) plus the mirror-TTA disagreement.

    Returns
    -------
    probabilities, disagreement
        ``(C_out, *spatial)`` float32 probabilities, and ``(*spatial)`` float32 in [0, 1]:
        in each window, the share of the mirrored passes (``config.mirror_axes``) whose
        argmax class differs from the argmax of the averaged logits, blended over the
        windows with the same weights as the logits. All zeros without mirror axes.
    """
    device = device or image.device
    with retain_freed_memory(enabled=config.retain_memory and device.type == "cpu"):
        output, disagreement = _predict(
            network, image, config=config, device=device, probabilities=True, disagreement=True
        )
    if disagreement is None:  # pragma: no cover - requested above
        raise RuntimeError("no disagreement was computed")
    return output, disagreement


def _predict(
    network: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    config: SlidingWindowConfig,
    device: torch.device,
    probabilities: bool,
    disagreement: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    dims = image.ndim - 1
    roi = tuple(int(r) for r in config.roi_size)
    if len(roi) != dims:
        raise ConfigError(f"roi_size must have {dims} values for this image, not {len(roi)}")
    out_device = image.device
    size = tuple(int(s) for s in image.shape[1:])
    padded_size = tuple(max(s, r) for s, r in zip(size, roi, strict=True))
    pad = []
    for s, p in zip(reversed(size), reversed(padded_size), strict=True):
        diff = p - s
        pad += [diff // 2, diff - diff // 2]
    if any(pad):
        image = torch.nn.functional.pad(image, pad)
    rewrite = config.rewrite_layers and device.type == "cpu"
    channels_last = config.channels_last
    if channels_last is None:
        channels_last = device.type == "cuda" or rewrite
    memory_format = (
        (torch.channels_last_3d if dims == 3 else torch.channels_last)
        if channels_last
        else torch.contiguous_format
    )
    if isinstance(network, torch.nn.Module) and (rewrite or channels_last):
        network = prepare_network(network, rewrite_layers=rewrite, channels_last=channels_last)
    corners = _corners(compute_window_starts(padded_size, roi, overlap=config.overlap))
    weights = _importance_map(roi, config.gaussian, config.sigma_scale).to(out_device)
    weight_sum = _weight_sum(padded_size, roi, config.overlap, config.gaussian, config.sigma_scale)
    # Every forward pass gets the full batch, the last one too (its spare slots hold earlier
    # windows, whose outputs are dropped): on CPU, PyTorch sends 3D convolutions with
    # batch 1 and N·C·D·H ≤ 20480 to its slow native kernel instead of oneDNN, which made
    # a lone last window cost ~4 batches of 2.
    batch_size = min(config.sw_batch_size, len(corners))
    batch = torch.empty((batch_size, image.shape[0], *roi), dtype=image.dtype)
    batch = batch.to(device=device, memory_format=memory_format)
    output: torch.Tensor | None = None
    disagree: torch.Tensor | None = None
    if disagreement:
        disagree = torch.zeros(padded_size, dtype=torch.float32, device=out_device)
    mirrors = _mirror_sets(config.mirror_axes)
    with build_autocast(device, config.precision):
        for first in range(0, len(corners), batch_size):
            chunk = corners[first : first + batch_size]
            for n, corner in enumerate(chunk):
                batch[n].copy_(image[(slice(None), *_window(corner, roi))])
            logits = None
            votes: list[torch.Tensor] = []
            for axes in mirrors:
                flip = tuple(a + 2 for a in axes)
                out = network(torch.flip(batch, flip) if flip else batch)
                out = torch.flip(out, flip) if flip else out
                if disagree is not None:
                    votes.append(_classes(out))
                logits = out.float() if logits is None else logits.add_(out.float())
            if logits is None:  # pragma: no cover - mirrors always holds ()
                raise RuntimeError("no forward pass ran")
            if len(mirrors) > 1:
                logits.div_(len(mirrors))
            if disagree is not None:
                consensus = _classes(logits)
                differ = torch.stack([vote != consensus for vote in votes]).float().mean(0)
                differ = differ.to(out_device)
                for n, corner in enumerate(chunk):
                    disagree[_window(corner, roi)].addcmul_(differ[n], weights)
            logits = logits.to(out_device)
            if output is None:
                output = torch.zeros((logits.shape[1], *padded_size), dtype=torch.float32)
                output = output.to(out_device)
            for n, corner in enumerate(chunk):
                output[(slice(None), *_window(corner, roi))].addcmul_(logits[n], weights)
    if output is None:  # pragma: no cover - at least one window always exists
        raise RuntimeError("no window was predicted")
    output.div_(weight_sum.to(out_device))
    if disagree is not None:
        disagree.div_(weight_sum.to(out_device))
    if any(pad):
        lows = [pad[2 * (dims - 1 - i)] for i in range(dims)]
        crop = tuple(slice(lo, lo + s) for lo, s in zip(lows, size, strict=True))
        output = output[(slice(None), *crop)].contiguous()
        if disagree is not None:
            disagree = disagree[crop].contiguous()
    if probabilities:
        softmax_(output)
    return output, disagree


def _classes(logits: torch.Tensor) -> torch.Tensor:
    """Class per voxel of ``(B, C, *roi)`` logits (one channel: logit > 0), uint8."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).to(torch.uint8)
    return logits.argmax(dim=1).to(torch.uint8)


def softmax_(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over axis 0 in place (sigmoid for one channel); extra memory: one channel."""
    if logits.shape[0] == 1:
        return logits.sigmoid_()
    logits.sub_(logits.amax(dim=0, keepdim=True)).exp_()
    return logits.div_(logits.sum(dim=0, keepdim=True))
