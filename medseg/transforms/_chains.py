"""MONAI transform chains built from :class:`~medseg.transforms.Plans`.

Data items are dicts: ``image`` ``(C, *spatial)`` float32, ``label`` ``(1, *spatial)``
uint8 (optional) and ``spacing_mm`` (one value per spatial axis). Preprocessing
(resample to the plans' spacing, normalise) is deterministic, so MONAI's ``CacheDataset``
caches it; augmentation follows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    Compose,
    DeleteItemsd,
    FgBgToIndicesd,
    Identityd,
    Lambda,
    MapTransform,
    NormalizeIntensity,
    OneOf,
    Rand2DElasticd,
    RandAdjustContrastd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandGaussianNoised,
    RandRotated,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandZoomd,
    Resize,
    SpatialPadd,
    ThresholdIntensity,
)

from medseg.transforms._intensity import equalize_adaptive_histogram
from medseg.transforms._plans import NormalizationScheme, Plans


def compute_resampled_shape(
    shape: Sequence[int], *, spacing_mm: Sequence[float], target_spacing_mm: Sequence[float]
) -> tuple[int, ...]:
    """Spatial shape after resampling to ``target_spacing_mm`` (same physical extent)."""
    return tuple(
        max(1, round(n * s / t))
        for n, s, t in zip(shape, spacing_mm, target_spacing_mm, strict=True)
    )


class ResampleToSpacingd(MapTransform):
    """Resample ``image`` (trilinear/bilinear) and ``label`` (nearest) to a target spacing.

    Resampling is by shape (the new grid spans the same field of view), as nnU-Net does,
    so :func:`resample_to_shape` with the source shape is its exact geometric inverse.
    MONAI's ``Resize`` does the interpolation; this wrapper only computes the shape from
    the item's ``spacing_mm`` and stores the new spacing.
    """

    def __init__(self, *, target_spacing_mm: Sequence[float]) -> None:
        super().__init__(keys=["image"], allow_missing_keys=True)
        self.target_spacing_mm = [float(v) for v in target_spacing_mm]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Resample one item."""
        item = dict(data)
        shape = tuple(item["image"].shape[1:])
        new_shape = compute_resampled_shape(
            shape, spacing_mm=item["spacing_mm"], target_spacing_mm=self.target_spacing_mm
        )
        if new_shape != shape:
            item["image"] = resample_to_shape(item["image"], new_shape, is_label=False)
            if item.get("label") is not None:
                item["label"] = resample_to_shape(item["label"], new_shape, is_label=True)
        item["spacing_mm"] = list(self.target_spacing_mm)
        return item


def resample_to_shape(
    array: np.ndarray | torch.Tensor, shape: Sequence[int], *, is_label: bool
) -> np.ndarray | torch.Tensor:
    """Resample a channel-first array to spatial ``shape`` (nearest for labels)."""
    mode = "nearest" if is_label else ("bilinear" if len(shape) == 2 else "trilinear")
    resize = Resize(spatial_size=tuple(int(s) for s in shape), mode=mode, anti_aliasing=False)
    out = resize(array)
    if isinstance(array, np.ndarray):
        out = np.asarray(out.detach().cpu() if isinstance(out, torch.Tensor) else out)
        return out.astype(array.dtype)
    return out.as_tensor() if hasattr(out, "as_tensor") else out


class NormalizeChannelsd(MapTransform):
    """Normalise each channel of ``image`` as the plans say, with MONAI intensity transforms.

    ``ct``: clip to the dataset's foreground 0.5–99.5 percentiles, then z-score with the
    dataset's foreground mean and std. ``zscore``: per image and channel. ``clahe``:
    contrast-limited adaptive histogram equalisation, then z-score, per image and channel.
    """

    def __init__(self, *, plans: Plans) -> None:
        super().__init__(keys=["image"])
        self.chains = []
        for norm in plans.normalization:
            if norm.scheme is NormalizationScheme.CT:
                self.chains.append(
                    Compose(
                        [
                            ThresholdIntensity(norm.clip_high, above=False, cval=norm.clip_high),
                            ThresholdIntensity(norm.clip_low, above=True, cval=norm.clip_low),
                            NormalizeIntensity(subtrahend=norm.mean, divisor=norm.std),
                        ]
                    )
                )
            elif norm.scheme is NormalizationScheme.CLAHE:
                equalise = functools.partial(
                    equalize_adaptive_histogram,
                    clip_limit=norm.clahe_clip_limit,
                    kernel_size_px=norm.clahe_tile_px,
                )
                self.chains.append(Compose([Lambda(equalise), NormalizeIntensity()]))
            else:
                self.chains.append(NormalizeIntensity())

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Normalise one item (a new array; the input is not modified)."""
        item = dict(data)
        image = np.asarray(item["image"], dtype=np.float32)
        if image.shape[0] != len(self.chains):
            from medseg.core import InputError

            raise InputError(
                f"image must have {len(self.chains)} channel(s) as in the plans, "
                f"found {image.shape[0]}"
            )
        item["image"] = np.stack(
            [np.asarray(chain(image[c]), dtype=np.float32) for c, chain in enumerate(self.chains)]
        )
        return item


def run_chain(chain: Compose, item: dict[str, Any]) -> dict[str, Any]:
    """Apply a MONAI chain; a medseg error inside it is re-raised as itself.

    MONAI wraps every exception raised by a transform in ``RuntimeError``; this unwraps
    medseg's typed errors so the CLI reports them with their exit code.
    """
    from medseg.core import MedsegError

    try:
        return dict(chain(item))
    except RuntimeError as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, MedsegError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from err
        raise


def build_preprocessing(plans: Plans) -> Compose:
    """Deterministic chain: resample to the target spacing, normalise per channel."""
    return Compose(
        [
            ResampleToSpacingd(target_spacing_mm=plans.target_spacing_mm),
            NormalizeChannelsd(plans=plans),
        ]
    )


def build_augmentation(plans: Plans, *, samples_per_case: int = 1) -> Compose:
    """Random chain for training: pad, positive/negative patch crop, spatial and intensity
    augmentation (flips, rotation, scaling, gamma, intensity scale/shift, noise; elastic
    deformation in 2D).

    Rotation is in the plane of the two finest axes (3D: ±15°, 2D: ±180°). The padding and
    the foreground/background voxel indices the crop samples from come first and are
    deterministic, so a ``CacheDataset`` given this chain's transforms one by one caches them.
    """
    keys = ["image", "label"]
    patch = [int(p) for p in plans.patch_size]
    dims = plans.spatial_dims
    oversample = plans.foreground_oversampling
    indices = ("label_fg_indices", "label_bg_indices")
    chain: list[Any] = [
        SpatialPadd(keys=keys, spatial_size=patch, mode="constant"),
        FgBgToIndicesd(keys="label", fg_postfix="_fg_indices", bg_postfix="_bg_indices"),
        RandCropByPosNegLabeld(
            keys=keys,
            label_key="label",
            spatial_size=patch,
            pos=oversample,
            neg=1.0 - oversample,
            num_samples=samples_per_case,
            fg_indices_key=indices[0],
            bg_indices_key=indices[1],
            allow_smaller=False,
        ),
        DeleteItemsd(keys=list(indices)),
    ]
    chain += [RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in range(dims)]
    if dims == 2:
        chain.append(
            RandRotated(keys=keys, range_x=math.pi, prob=0.3, mode=("bilinear", "nearest"))
        )
        elastic = Rand2DElasticd(
            keys=keys,
            spacing=(max(8, patch[0] // 8), max(8, patch[1] // 8)),
            magnitude_range=(0.0, 2.0),
            prob=1.0,
            mode=("bilinear", "nearest"),
            padding_mode="zeros",
        )
        # applied to 20 % of patches; MONAI's own prob=0.2 would still resample the other
        # 80 % through an identity grid (in float64), a third of the data pipeline's time
        chain.append(OneOf([elastic, Identityd(keys=keys)], weights=[0.2, 0.8]))
    else:
        spacing = plans.target_spacing_mm
        coarse = int(np.argmax(spacing))
        angle = math.radians(15)
        ranges = [0.0, 0.0, 0.0]
        ranges[coarse] = angle  # rotate about the coarse axis: within the fine plane
        chain.append(
            RandRotated(
                keys=keys,
                range_x=ranges[0],
                range_y=ranges[1],
                range_z=ranges[2],
                prob=0.2,
                mode=("bilinear", "nearest"),
            )
        )
    chain += [
        RandZoomd(
            keys=keys,
            min_zoom=0.8,
            max_zoom=1.25,
            prob=0.2,
            mode=("bilinear" if dims == 2 else "trilinear", "nearest"),
            keep_size=True,
        ),
        RandScaleIntensityd(keys="image", factors=0.25, prob=0.15),
        RandShiftIntensityd(keys="image", offsets=0.1, prob=0.15),
        RandAdjustContrastd(keys="image", gamma=(0.7, 1.5), prob=0.15),
        RandGaussianNoised(keys="image", std=0.05, prob=0.1),
    ]
    return Compose(chain)
