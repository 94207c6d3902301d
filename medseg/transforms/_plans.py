"""Dataset fingerprint → plans (nnU-Net's idea: configure from the data, not by hand).

The fingerprint records per-case spacings and shapes, foreground intensity statistics per
channel and class frequencies. :func:`plan_from_fingerprint` turns it into
:class:`Plans`: target spacing, patch size, batch size for a memory budget, per-channel
normalisation and the network's per-level strides (hence depth).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from medseg.core import ConfigModel, InputError
from medseg.io import DatasetManifest, Split
from medseg.transforms._cases import CaseArrays, load_case

logger = logging.getLogger(__name__)

_FOREGROUND_SAMPLES_PER_CASE = 10_000
_CT_MODALITIES = {"ct"}
_RGB_MODALITIES = {"fundus", "rgb", "dermoscopy", "endoscopy", "histology"}


class NormalizationScheme(str, enum.Enum):
    """How one input channel is normalised."""

    CT = "ct"  # clip to dataset foreground 0.5–99.5 percentiles, z-score with dataset stats
    ZSCORE = "zscore"  # per image and channel: (x - mean) / std (MR, microscopy, RGB)
    CLAHE = "clahe"  # per image and channel: CLAHE (contrast-limited equalisation), z-score


class ChannelStats(ConfigModel):
    """Intensity statistics of one channel inside the foreground (label > 0)."""

    mean: float
    std: float
    percentile_00_5: float
    median: float
    percentile_99_5: float


class CaseFingerprint(ConfigModel):
    """Geometry of one case. Spatial values are in the array's axis order."""

    case_id: str
    spacing_mm: list[float]
    shape: list[int]


class DatasetFingerprint(ConfigModel):
    """What :func:`compute_fingerprint` measures on the training cases."""

    dataset: str
    modality: str
    spatial_dims: int
    n_channels: int
    image_keys: list[str] = Field(default_factory=lambda: ["image"])
    labels: dict[int, str]
    cases: list[CaseFingerprint]
    foreground_stats: list[ChannelStats]
    class_voxel_fraction: dict[int, float]


class ChannelNormalization(ConfigModel):
    """Normalisation of one channel.

    ``clip_*``, ``mean`` and ``std`` are used by ``ct`` only; ``clahe_clip_limit`` (fraction
    of a tile's pixels) and ``clahe_tile_px`` (tile side, default 1/8 of each axis) by
    ``clahe`` only (see :func:`~medseg.transforms.equalize_adaptive_histogram`).
    """

    scheme: NormalizationScheme
    clip_low: float | None = None
    clip_high: float | None = None
    mean: float | None = None
    std: float | None = None
    clahe_clip_limit: float = Field(default=0.01, gt=0, le=1)
    clahe_tile_px: int | None = Field(default=None, ge=2)


class Plans(ConfigModel):
    """Everything preprocessing, training and inference need to agree on.

    Spatial lists are in the array's axis order: ``(i, j, k)`` for 3D, ``(column, row)``
    for 2D.
    """

    dataset: str
    modality: str
    spatial_dims: int = Field(ge=2, le=3)
    in_channels: int = Field(ge=1)
    image_keys: list[str] = Field(default_factory=lambda: ["image"])
    labels: dict[int, str]
    target_spacing_mm: list[float]
    median_shape: list[int]
    patch_size: list[int]
    batch_size: int = Field(ge=1)
    strides: list[list[int]]
    kernel_sizes: list[list[int]]
    normalization: list[ChannelNormalization]
    foreground_oversampling: float = Field(default=0.33, ge=0.0, le=1.0)
    memory_budget_gb: float
    features: int = 32

    @property
    def out_channels(self) -> int:
        """Number of classes including background."""
        return max(self.labels, default=0) + 1

    @property
    def depth(self) -> int:
        """Number of down-sampling levels."""
        return len(self.strides) - 1


def compute_fingerprint(
    manifest: DatasetManifest,
    *,
    root: str | Path,
    splits: Sequence[Split] = (Split.TRAIN,),
    seed: int = 0,
) -> DatasetFingerprint:
    """Measure the cases of ``manifest`` in ``splits`` (all cases if none match).

    Foreground intensities are sampled (≤ 10,000 voxels per case, seeded) from voxels whose
    label is > 0; cases without labels contribute all their voxels.
    """
    chosen = [c for c in manifest.cases if c.split in splits] or list(manifest.cases)
    if not chosen:
        raise InputError(f"manifest {manifest.name} has no cases to plan from")
    rng = np.random.default_rng(seed)
    samples: list[list[np.ndarray]] = []
    class_counts: dict[int, int] = {int(k): 0 for k in manifest.labels}
    total = 0
    cases: list[CaseFingerprint] = []
    dims = None
    modality = (chosen[0].modality or manifest.modality).lower()
    image_keys = ["image", *sorted(set.intersection(*(set(c.additional_images) for c in chosen)))]
    for case in chosen:
        arrays = load_case(case, root=root, labels=manifest.labels, image_keys=image_keys)
        dims = dims or arrays.image.ndim - 1
        if arrays.image.ndim - 1 != dims:
            raise InputError(f"case {case.id}: all cases must be 2D or all 3D")
        cases.append(
            CaseFingerprint(
                case_id=case.id,
                spacing_mm=list(arrays.spacing_mm),
                shape=list(arrays.image.shape[1:]),
            )
        )
        samples.append(_sample_foreground(arrays, rng))
        if arrays.label is not None:
            counts = np.bincount(arrays.label.ravel(), minlength=max(class_counts, default=0) + 1)
            for key in class_counts:
                class_counts[key] += int(counts[key]) if key < len(counts) else 0
            total += arrays.label.size
    n_channels = len(samples[0])
    stats = []
    for channel in range(n_channels):
        values = np.concatenate([s[channel] for s in samples])
        p005, p50, p995 = np.percentile(values, [0.5, 50.0, 99.5])
        stats.append(
            ChannelStats(
                mean=float(values.mean()),
                std=float(values.std()),
                percentile_00_5=float(p005),
                median=float(p50),
                percentile_99_5=float(p995),
            )
        )
    return DatasetFingerprint(
        dataset=manifest.name,
        modality=modality,
        spatial_dims=int(dims or 3),
        n_channels=n_channels,
        image_keys=image_keys,
        labels={int(k): v for k, v in manifest.labels.items()},
        cases=cases,
        foreground_stats=stats,
        class_voxel_fraction={k: (v / total if total else 0.0) for k, v in class_counts.items()},
    )


def _sample_foreground(arrays: CaseArrays, rng: np.random.Generator) -> list[np.ndarray]:
    image = arrays.image.reshape(arrays.image.shape[0], -1)
    if arrays.label is not None and arrays.label.any():
        index = np.flatnonzero(arrays.label.ravel() > 0)
    else:
        index = np.arange(image.shape[1])
    if index.size > _FOREGROUND_SAMPLES_PER_CASE:
        index = rng.choice(index, _FOREGROUND_SAMPLES_PER_CASE, replace=False)
    return [image[c, index] for c in range(image.shape[0])]


def estimate_training_memory_gb(
    *, patch_size: Sequence[int], batch_size: int, features: int, amp: bool = True
) -> float:
    """Rough activation memory of a U-Net training step, in GB.

    Heuristic (hand-written because no library gives one): each voxel of the first level
    stores ~16 feature maps of ``features`` channels (two conv blocks, norm and activation,
    encoder and decoder, kept for backward); deeper levels add a geometric series (×4/3 in
    3D, ×2 in 2D); 2 bytes per value with AMP, else 4. It is calibrated so that nnU-Net's
    typical 3D plan (128³, batch 2, 32 features, AMP) comes to ~6 GB.
    """
    voxels = math.prod(int(s) for s in patch_size)
    series = 4.0 / 3.0 if len(patch_size) == 3 else 2.0
    bytes_per_value = 2 if amp else 4
    return batch_size * voxels * 16 * features * bytes_per_value * series / 1e9


def _target_spacing(spacings: np.ndarray) -> list[float]:
    target = np.median(spacings, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(len(target)) if i != worst]
    if others and target[worst] > 3 * max(target[i] for i in others):
        # nnU-Net: for strongly anisotropic data use the 10th percentile of the coarse axis
        target[worst] = max(np.percentile(spacings[:, worst], 10), 3 * max(target[others]))
    return [float(v) for v in target]


def compute_layout(
    *, patch_size: Sequence[int], spacing_mm: Sequence[float], max_depth: int = 5
) -> tuple[list[list[int]], list[list[int]]]:
    """nnU-Net's rule for per-level kernels and strides from the patch size and spacing.

    An axis is down-sampled (stride 2) only while its size stays ≥ 8 voxels and its spacing
    is at most twice the finest current spacing; an axis whose spacing is still more than
    twice the finest gets a kernel of 1 (no context mixing across thick slices).

    Returns
    -------
    kernel_sizes, strides
        One ``[k_axis...]`` per level; the first stride is all ones.
    """
    sizes = [int(s) for s in patch_size]
    spacings = [float(s) for s in spacing_mm]
    strides: list[list[int]] = [[1] * len(sizes)]
    kernels: list[list[int]] = []
    for _ in range(max_depth + 1):
        finest = min(spacings)
        kernels.append([3 if s <= 2 * finest else 1 for s in spacings])
        if len(strides) > max_depth:
            break
        ratios = [finest / s for s in spacings]
        stride = [2 if r > 0.5 and n >= 8 else 1 for r, n in zip(ratios, sizes, strict=True)]
        if all(v == 1 for v in stride):
            break
        strides.append(stride)
        sizes = [-(-n // v) for n, v in zip(sizes, stride, strict=True)]
        spacings = [s * v for s, v in zip(spacings, stride, strict=True)]
    kernels = kernels[: len(strides)]
    return kernels, strides


def plan_from_fingerprint(
    fingerprint: DatasetFingerprint,
    *,
    memory_budget_gb: float = 8.0,
    features: int = 32,
    max_batch_size: int | None = None,
    max_depth: int = 5,
) -> Plans:
    """Choose target spacing, patch and batch size, normalisation and strides.

    Patch size starts at the median resampled shape (capped at 192 voxels per axis in 3D,
    512 in 2D), shrinks along its physically longest axis until batch 2 fits
    ``memory_budget_gb`` (see :func:`estimate_training_memory_gb`), then grows to a multiple
    of the network's total stride. Batch size is then as large as the budget allows (at
    least 2; at most 8 in 3D, 32 in 2D, or ``max_batch_size``).
    """
    spacings = np.asarray([c.spacing_mm for c in fingerprint.cases], dtype=np.float64)
    shapes = np.asarray([c.shape for c in fingerprint.cases], dtype=np.float64)
    target = _target_spacing(spacings)
    resampled = shapes * spacings / np.asarray(target)
    median_shape = [max(1, round(v)) for v in np.median(resampled, axis=0)]
    cap = 192 if fingerprint.spatial_dims == 3 else 512
    patch = [min(n, cap) for n in median_shape]
    while estimate_training_memory_gb(patch_size=patch, batch_size=2, features=features) > (
        memory_budget_gb
    ):
        extent = [p * s for p, s in zip(patch, target, strict=True)]
        axis = int(np.argmax(extent))
        if patch[axis] <= 8:
            break
        patch[axis] = max(8, int(patch[axis] * 0.9))
    kernels, strides = compute_layout(patch_size=patch, spacing_mm=target, max_depth=max_depth)
    total = np.prod(np.asarray(strides), axis=0)
    patch = [int(math.ceil(p / t) * t) for p, t in zip(patch, total, strict=True)]
    per_sample = estimate_training_memory_gb(patch_size=patch, batch_size=1, features=features)
    limit = max_batch_size or (8 if fingerprint.spatial_dims == 3 else 32)
    batch = int(max(2, min(limit, memory_budget_gb // per_sample if per_sample > 0 else limit)))
    normalization = [
        _normalization_for(fingerprint.modality, stats) for stats in fingerprint.foreground_stats
    ]
    plans = Plans(
        dataset=fingerprint.dataset,
        modality=fingerprint.modality,
        spatial_dims=fingerprint.spatial_dims,
        in_channels=fingerprint.n_channels,
        image_keys=fingerprint.image_keys,
        labels=fingerprint.labels,
        target_spacing_mm=target,
        median_shape=median_shape,
        patch_size=patch,
        batch_size=batch,
        strides=strides,
        kernel_sizes=kernels,
        normalization=normalization,
        memory_budget_gb=memory_budget_gb,
        features=features,
    )
    logger.info(
        "plans: spacing %s mm, patch %s, batch %d, depth %d",
        [round(v, 3) for v in target],
        patch,
        batch,
        plans.depth,
    )
    return plans


def _normalization_for(modality: str, stats: ChannelStats) -> ChannelNormalization:
    if modality.lower() in _CT_MODALITIES:
        return ChannelNormalization(
            scheme=NormalizationScheme.CT,
            clip_low=stats.percentile_00_5,
            clip_high=stats.percentile_99_5,
            mean=stats.mean,
            std=max(stats.std, 1e-6),
        )
    return ChannelNormalization(scheme=NormalizationScheme.ZSCORE)
