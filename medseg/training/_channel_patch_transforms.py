"""Label-aware and spatial augmentation of multi-channel 3D training patches.

Two options of :class:`~medseg.training.ChannelTrainConfig`, both off by default:

- :class:`LabelIntensityShift` shifts the intensities of chosen classes' voxels by a random
  amount per channel, so a class is not learnt from one intensity level. Made for the
  brain-tumour model, whose four training cases all have a FLAIR-bright necrotic core while
  BraTS also has cystic cores that are dark on FLAIR and T1c (BraTS 2013 pat0005).
- :class:`SpatialAugmentation` rotates and scales a patch about its centre (trilinear image,
  nearest label), read from a larger crop so that no padding enters the patch where the case
  has data; it shows the network tumour in more poses relative to the brain's edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import Field, model_validator

from medseg.core import ConfigModel


class LabelIntensityShift(ConfigModel):
    """Per-patch intensity shift of the voxels of some classes (z-scored units).

    Attributes
    ----------
    prob
        Probability that a patch is shifted.
    classes
        Network class indices whose voxels move (after ``label_map``: BraTS core = 1).
    shift_range
        Channel name → (low, high) shift, drawn uniformly per channel and patch; a channel
        not listed is not shifted.
    """

    prob: float = Field(default=0.5, ge=0, le=1)
    classes: list[int] = Field(min_length=1)
    shift_range: dict[str, tuple[float, float]] = Field(min_length=1)

    @model_validator(mode="after")
    def _ranges(self) -> LabelIntensityShift:
        for name, (low, high) in self.shift_range.items():
            if low > high:
                raise ValueError(f"shift_range.{name} must be (low, high) with low <= high")
        return self


class SpatialAugmentation(ConfigModel):
    """Random rotation and isotropic scaling of a training patch (nnU-Net-like ranges).

    Attributes
    ----------
    rotation_deg, rotation_prob
        Each axis's rotation angle drawn in ``±rotation_deg``; applied with ``rotation_prob``.
    scale_range, scale_prob
        Zoom factor (> 1 enlarges the anatomy); applied with ``scale_prob``.
    """

    rotation_deg: float = Field(default=15.0, ge=0, le=45)
    rotation_prob: float = Field(default=0.2, ge=0, le=1)
    scale_range: tuple[float, float] = (0.85, 1.25)
    scale_prob: float = Field(default=0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _ranges(self) -> SpatialAugmentation:
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must be 0 < low <= high, not {[low, high]}")
        return self

    def margin_voxels(self, patch: Sequence[int]) -> list[int]:
        """Extra voxels per side the source crop needs so the warped patch stays inside it."""
        reach = math.sqrt(3.0) / self.scale_range[0]  # a rotated, zoomed-out corner
        return [math.ceil((reach - 1.0) * p / 2.0) + 1 for p in patch]


def shift_label_intensities(
    image: np.ndarray,
    label: np.ndarray,
    *,
    config: LabelIntensityShift,
    channels: Sequence[str],
    rng: np.random.Generator,
) -> np.ndarray:
    """``image`` (``(C, X, Y, Z)``) with the voxels of ``config.classes`` shifted per channel."""
    if rng.random() >= config.prob:
        return image
    mask = np.isin(label, config.classes)
    if not mask.any():
        return image
    out = image.copy()
    for index, name in enumerate(channels):
        if name in config.shift_range:
            low, high = config.shift_range[name]
            out[index][mask] += np.float32(rng.uniform(low, high))
    return out


def _rotation(angles: Sequence[float]) -> np.ndarray:
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def draw_spatial_matrix(config: SpatialAugmentation, rng: np.random.Generator) -> np.ndarray | None:
    """Random 3×3 map from output to source voxel offsets, or ``None`` (identity) this time."""
    matrix = np.eye(3)
    changed = False
    if rng.random() < config.rotation_prob:
        limit = math.radians(config.rotation_deg)
        matrix = _rotation(rng.uniform(-limit, limit, size=3)) @ matrix
        changed = True
    if rng.random() < config.scale_prob:
        matrix = matrix / rng.uniform(*config.scale_range)
        changed = True
    return matrix if changed else None


def warp_patch(
    image: np.ndarray, label: np.ndarray, *, matrix: np.ndarray, patch: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Resample the centre ``patch`` of a larger crop through ``matrix`` about its centre.

    ``image`` is ``(C, *crop)`` float32 and ``label`` ``crop`` integers; returns the
    ``(C, *patch)`` image (trilinear) and ``patch`` label (nearest).
    """
    from scipy.ndimage import affine_transform

    crop = np.array(label.shape, dtype=float)
    out_centre = (np.array(patch, dtype=float) - 1) / 2
    offset = (crop - 1) / 2 - matrix @ out_centre
    shape = tuple(int(p) for p in patch)
    warped = np.stack(
        [
            affine_transform(c, matrix, offset=offset, output_shape=shape, order=1, mode="nearest")
            for c in image
        ]
    ).astype(np.float32)
    warped_label = affine_transform(
        label, matrix, offset=offset, output_shape=shape, order=0, mode="constant", cval=0
    )
    return warped, warped_label.astype(label.dtype)
