"""Budgeted 3D training of a multi-channel semantic segmenter on a few cases (CPU first).

Made for small-data tasks such as the brain-tumour model (five BraTS cases, FLAIR + T1c):
every case is read once, stacked as channels on the first channel's grid
(:func:`medseg.io.read_channels`), cropped to the box of its non-background voxels
(:func:`medseg.io.find_content_box`, as inference does), mapped to the model's classes,
brought to the plans' spacing and normalised with the same chain inference uses
(:func:`medseg.transforms.build_preprocessing`) and kept in memory. Training draws patches
from these arrays (a fraction centred on a random foreground voxel), flips them on every axis
and scales/shifts each channel's intensity (or, with ``intensity_augmentation`` configured,
applies nnU-Net-style per-channel contrast, gamma, brightness, noise and blur instead:
:class:`~medseg.training.IntensityAugmentation`), and stops when a **CPU-time budget** is
spent (``time.process_time``: the budget means the same work whether the job shares the CPU
or not). On CPU the forward and backward
passes run under bf16 autocast (oneDNN/AMX); DynUNet's deep-supervision heads are weighted
1, 1/2, 1/4 (normalised). The learning rate decays polynomially with the spent fraction of
the budget. The checkpoint written is the last one (no case is used to choose it).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from medseg.core import ConfigModel, InputError
from medseg.io import crop_volume, find_content_box, read_channels, read_image
from medseg.models import Checkpoint, ModelName, NetworkConfig, build_model
from medseg.training._channel_augmentation import (
    ChannelIntensityAugmenter,
    IntensityAugmentation,
)
from medseg.training._channel_patch_transforms import (
    LabelIntensityShift,
    SpatialAugmentation,
    draw_spatial_matrix,
    shift_label_intensities,
    warp_patch,
)
from medseg.transforms import (
    ChannelNormalization,
    NormalizationScheme,
    Plans,
    build_preprocessing,
    compute_layout,
)

logger = logging.getLogger(__name__)


class ChannelCase(ConfigModel):
    """One training case: named input channels and a label map (absolute paths)."""

    case_id: str
    channels: dict[str, Path]
    label: Path


class ChannelTrainConfig(ConfigModel):
    """How to train (``configs/training/*.yaml`` of a channel model).

    Attributes
    ----------
    channels
        Input channel names in network order; the first defines the output grid.
    labels
        Network class index → name (0 is background and not listed). Indices that are not
        classes stay unused outputs (BraTS keeps 4 for enhancing tumour and leaves 3 out).
    label_map
        Source label value → class index applied before training (BraTS 3 → 1).
    spacing_mm
        Isotropic working resolution.
    patch_size
        Training patch, voxels at ``spacing_mm`` (also the inference window).
    features, depth
        DynUNet width at the first level (doubling, capped at 320) and stride-2 levels.
    cpu_seconds
        Training budget in CPU seconds of this process (data preparation excluded).
    batch_size, learning_rate, weight_decay
        AdamW settings; the rate decays as ``(1 - spent)^0.9``.
    foreground_fraction
        Fraction of patches centred on a foreground voxel.
    threads
        Torch intra-op threads (1 lets two trainings share two cores).
    bf16
        bf16 autocast on CPU.
    intensity_augmentation
        nnU-Net-style per-channel intensity transforms of every training patch; absent (old
        configs): each channel scaled by 0.9-1.1 and shifted by -0.1..0.1.
    label_intensity_shift
        Random intensity shift of some classes' voxels per channel
        (:class:`~medseg.training.LabelIntensityShift`); absent: none.
    spatial_augmentation
        Random rotation / scaling of patches (:class:`~medseg.training.SpatialAugmentation`);
        absent: flips only.
    """

    channels: list[str] = Field(min_length=1)
    labels: dict[int, str]
    label_map: dict[int, int] = Field(default_factory=dict)
    spacing_mm: float = Field(default=2.0, gt=0)
    patch_size: list[int] = Field(default_factory=lambda: [64, 64, 64], min_length=3, max_length=3)
    features: int = Field(default=16, ge=4)
    depth: int = Field(default=4, ge=2, le=6)
    cpu_seconds: float = Field(default=480.0, gt=0)
    batch_size: int = Field(default=2, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=3e-5, ge=0)
    foreground_fraction: float = Field(default=0.67, ge=0, le=1)
    threads: int = Field(default=1, ge=1)
    bf16: bool = True
    intensity_augmentation: IntensityAugmentation | None = None
    label_intensity_shift: LabelIntensityShift | None = None
    spatial_augmentation: SpatialAugmentation | None = None
    seed: int = 0
    dataset: str = "channels"
    modality: str = "MR"


@dataclass(frozen=True)
class PreparedCase:
    """A case at the working spacing, cropped to the non-background box.

    ``image`` is ``(C, X, Y, Z)`` float32, ``label`` ``(X, Y, Z)`` uint8 classes.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray


@dataclass(frozen=True)
class ChannelTrainResult:
    """The trained checkpoint and what the training cost."""

    checkpoint: Checkpoint
    steps: int
    cpu_seconds: float
    wall_seconds: float
    final_loss: float


def build_channel_plans(config: ChannelTrainConfig) -> Plans:
    """Plans of a channel model: spacing, patch, DynUNet layout, per-image z-score."""
    spacing = [config.spacing_mm] * 3
    strides = [[1, 1, 1]] + [[2, 2, 2]] * config.depth
    kernels = [[3, 3, 3]] * (config.depth + 1)
    if any(p % 2**config.depth for p in config.patch_size):
        strides, kernels = compute_layout(config.patch_size, spacing)
    return Plans(
        dataset=config.dataset,
        modality=config.modality,
        spatial_dims=3,
        in_channels=len(config.channels),
        image_keys=list(config.channels),
        labels=dict(config.labels),
        target_spacing_mm=spacing,
        median_shape=list(config.patch_size),
        patch_size=list(config.patch_size),
        batch_size=config.batch_size,
        strides=strides,
        kernel_sizes=kernels,
        normalization=[
            ChannelNormalization(scheme=NormalizationScheme.ZSCORE) for _ in config.channels
        ],
        foreground_oversampling=config.foreground_fraction,
        memory_budget_gb=1.0,
        features=config.features,
    )


def build_channel_network(config: ChannelTrainConfig, plans: Plans) -> NetworkConfig:
    """The DynUNet of a channel model."""
    return NetworkConfig(
        name=ModelName.DYNUNET.value,
        in_channels=plans.in_channels,
        out_channels=plans.out_channels,
        spatial_dims=3,
        features=config.features,
        strides=plans.strides,
        kernel_sizes=plans.kernel_sizes,
        deep_supervision=True,
    )


def _map_labels(label: np.ndarray, *, label_map: Mapping[int, int], labels: Mapping[int, str]):
    out = np.rint(label).astype(np.int16)
    for source, target in label_map.items():
        out[out == int(source)] = int(target)
    allowed = {0, *(int(k) for k in labels)}
    found = set(np.unique(out).tolist())
    if not found <= allowed:
        raise InputError(
            f"label values must be 0 or one of {sorted(allowed - {0})} after label_map, "
            f"found {sorted(found - allowed)}"
        )
    return out.astype(np.uint8)


def prepare_case(case: ChannelCase, *, plans: Plans, label_map: Mapping[int, int]) -> PreparedCase:
    """Read, stack, map, resample, normalise and crop one case (see the module docstring)."""
    volume = read_channels(case.channels, expected=plans.image_keys)
    label_volume = read_image(case.label)
    if tuple(label_volume.spatial_shape) != tuple(volume.spatial_shape):
        raise InputError(
            f"label grid {label_volume.spatial_shape} differs from the image grid "
            f"{volume.spatial_shape}",
            path=case.label,
            case_id=case.case_id,
        )
    label = _map_labels(np.asarray(label_volume.array), label_map=label_map, labels=plans.labels)
    box = find_content_box(volume)
    volume = crop_volume(volume, box)
    label = label[box]
    image = np.moveaxis(np.asarray(volume.array, dtype=np.float32), -1, 0)
    item = {"image": image, "label": label[None], "spacing_mm": list(volume.spacing_mm)}
    item = build_preprocessing(plans)(item)
    image = np.asarray(item["image"], dtype=np.float32)
    label = np.asarray(item["label"])[0].astype(np.uint8)
    return PreparedCase(case_id=case.case_id, image=image, label=label)


def _pad_to(array: np.ndarray, shape: Sequence[int], value: float) -> np.ndarray:
    pads = [(0, 0)] * (array.ndim - 3) + [
        ((max(0, s - a) // 2), max(0, s - a) - max(0, s - a) // 2)
        for a, s in zip(array.shape[-3:], shape, strict=True)
    ]
    return np.pad(array, pads, constant_values=value) if any(p != (0, 0) for p in pads) else array


def _sample_patch(
    case: PreparedCase,
    patch: Sequence[int],
    *,
    foreground: bool,
    rng: np.random.Generator,
    augmenter: ChannelIntensityAugmenter | None = None,
    spatial: SpatialAugmentation | None = None,
    label_shift: LabelIntensityShift | None = None,
    channels: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray]:
    background = float(case.image.min())
    image = _pad_to(case.image, patch, background)
    label = _pad_to(case.label, patch, 0)
    shape = label.shape
    if foreground and label.any():
        fg = np.argwhere(label > 0)
        centre = fg[rng.integers(len(fg))]
        start = [
            int(np.clip(c - p // 2, 0, s - p)) for c, p, s in zip(centre, patch, shape, strict=True)
        ]
    else:
        start = [int(rng.integers(0, s - p + 1)) for p, s in zip(patch, shape, strict=True)]
    matrix = draw_spatial_matrix(spatial, rng) if spatial is not None else None
    if matrix is None:
        box = tuple(slice(b, b + p) for b, p in zip(start, patch, strict=True))
        img = image[(slice(None), *box)].copy()
        lab = label[box].copy()
    else:  # a crop `margin` larger per side, centred on the patch, warped back to the patch
        margin = spatial.margin_voxels(patch)  # type: ignore[union-attr]
        pads = [(m, m) for m in margin]
        image = np.pad(image, [(0, 0), *pads], constant_values=background)
        label = np.pad(label, pads, constant_values=0)
        box = tuple(slice(b, b + p + 2 * m) for b, p, m in zip(start, patch, margin, strict=True))
        img, lab = warp_patch(image[(slice(None), *box)], label[box], matrix=matrix, patch=patch)
    for axis in range(3):
        if rng.random() < 0.5:
            img = np.flip(img, axis + 1)
            lab = np.flip(lab, axis)
    if label_shift is not None:
        img = shift_label_intensities(img, lab, config=label_shift, channels=channels, rng=rng)
    if augmenter is not None:
        img = augmenter(img)
    else:
        scale = rng.uniform(0.9, 1.1, size=(img.shape[0], 1, 1, 1))
        shift = rng.uniform(-0.1, 0.1, size=(img.shape[0], 1, 1, 1))
        img = img * scale + shift
    return np.ascontiguousarray(img, dtype=np.float32), np.ascontiguousarray(lab)


def _loss_fn(n_classes: int):
    from monai.losses import DiceCELoss

    return DiceCELoss(to_onehot_y=True, softmax=True, batch=True)


def train_channel_model(
    cases: Sequence[PreparedCase],
    *,
    config: ChannelTrainConfig,
    plans: Plans,
    log_every: int = 20,
) -> ChannelTrainResult:
    """Train a DynUNet on prepared cases until ``config.cpu_seconds`` are spent.

    Returns
    -------
    ChannelTrainResult
        The last checkpoint (weights float32) with the plans and the resolved config.
    """
    if not cases:
        raise InputError("no training cases given")
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    augmenter = (
        ChannelIntensityAugmenter(config.intensity_augmentation, seed=config.seed)
        if config.intensity_augmentation is not None
        else None
    )
    network_config = build_channel_network(config, plans)
    network = build_model(network_config).train()
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_fn = _loss_fn(plans.out_channels)
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    steps, running = 0, float("nan")
    patch = [int(p) for p in config.patch_size]
    while True:
        spent = (time.process_time() - started_cpu) / config.cpu_seconds
        if spent >= 1.0:
            break
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * (1.0 - spent) ** 0.9
        images, labels = [], []
        for _ in range(config.batch_size):
            case = cases[int(rng.integers(len(cases)))]
            img, lab = _sample_patch(
                case,
                patch,
                foreground=rng.random() < config.foreground_fraction,
                rng=rng,
                augmenter=augmenter,
                spatial=config.spatial_augmentation,
                label_shift=config.label_intensity_shift,
                channels=config.channels,
            )
            images.append(img)
            labels.append(lab)
        x = torch.from_numpy(np.stack(images))
        y = torch.from_numpy(np.stack(labels)[:, None].astype(np.int64))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            out = network(x)
        out = out.float()
        if out.ndim == 6:  # deep supervision: (B, heads, C, *S)
            weights = [0.5**i for i in range(out.shape[1])]
            total = sum(weights)
            loss = sum(w / total * loss_fn(out[:, i], y) for i, w in enumerate(weights))
        else:
            loss = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 12.0)
        optimizer.step()
        value = float(loss.detach())
        running = value if math.isnan(running) else 0.95 * running + 0.05 * value
        steps += 1
        if steps % log_every == 0:
            logger.info(
                "step %d: loss %.4f (smoothed %.4f), %.0f%% of the CPU budget",
                steps,
                value,
                running,
                100 * spent,
            )
    cpu = time.process_time() - started_cpu
    wall = time.perf_counter() - started_wall
    logger.info("trained %d steps in %.0f CPU s (%.0f s wall)", steps, cpu, wall)
    record: dict[str, Any] = config.model_dump(mode="json")
    record.update({"steps": steps, "cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1)})
    record["cases"] = [c.case_id for c in cases]
    checkpoint = Checkpoint(
        network=network_config,
        plans=plans,
        state_dict={k: v.detach().clone() for k, v in network.state_dict().items()},
        training_config=record,
        epoch=steps,
    )
    return ChannelTrainResult(
        checkpoint=checkpoint, steps=steps, cpu_seconds=cpu, wall_seconds=wall, final_loss=running
    )
