"""nnU-Net-style intensity augmentation of multi-channel training patches (MONAI transforms).

Each channel of a patch draws its own transforms, each applied with its own probability, in
nnU-Net v2's order: Gaussian noise, Gaussian blur, brightness multiplier, contrast (scale
about the channel mean, clipped to the channel's range), inverted gamma, gamma (both on the
channel's min-max rescaled intensities, range restored and mean / standard deviation kept).
Only intensities change: the patch's shape, dtype and label are untouched. Made for
small-data models that otherwise learn one cohort's intensity profile (the brain-tumour
model: "bright on FLAIR = tumour" from four cases).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator

from medseg.core import ConfigModel, InputError


def _check_range(name: str, bounds: tuple[float, float]) -> None:
    if bounds[0] > bounds[1]:
        raise ValueError(f"{name} must be (low, high) with low <= high, not {list(bounds)}")


class IntensityAugmentation(ConfigModel):
    """Probabilities (per channel and patch) and ranges of the intensity transforms.

    Attributes
    ----------
    contrast_range, contrast_prob
        Contrast factor: values scaled about the channel mean, clipped to the channel's
        original min / max (MONAI ``RandScaleIntensityFixedMean``, ``preserve_range``).
    gamma_range, gamma_prob
        Gamma of the channel rescaled to [0, 1], range restored, mean and standard deviation
        kept (MONAI ``RandAdjustContrast``, ``retain_stats``); gamma drawn uniformly.
    inverted_gamma_prob
        The same on the negated channel (darkens bright structures' edges instead).
    brightness_range, brightness_prob
        Multiplier of the whole channel (MONAI ``RandScaleIntensity``).
    noise_std_max, noise_prob
        Additive Gaussian noise, standard deviation drawn in ``[0, noise_std_max]`` (units of
        the z-scored intensities; MONAI ``RandGaussianNoise``).
    blur_sigma_voxels, blur_prob
        Gaussian blur, sigma per axis drawn in this range, voxels (MONAI ``RandGaussianSmooth``).
    """

    contrast_range: tuple[float, float] = (0.75, 1.25)
    contrast_prob: float = Field(default=0.15, ge=0, le=1)
    gamma_range: tuple[float, float] = (0.7, 1.5)
    gamma_prob: float = Field(default=0.3, ge=0, le=1)
    inverted_gamma_prob: float = Field(default=0.1, ge=0, le=1)
    brightness_range: tuple[float, float] = (0.75, 1.25)
    brightness_prob: float = Field(default=0.15, ge=0, le=1)
    noise_std_max: float = Field(default=0.3, ge=0)
    noise_prob: float = Field(default=0.1, ge=0, le=1)
    blur_sigma_voxels: tuple[float, float] = (0.5, 1.0)
    blur_prob: float = Field(default=0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _ranges(self) -> IntensityAugmentation:
        _check_range("contrast_range", self.contrast_range)
        _check_range("gamma_range", self.gamma_range)
        _check_range("brightness_range", self.brightness_range)
        _check_range("blur_sigma_voxels", self.blur_sigma_voxels)
        if self.contrast_range[0] <= 0 or self.brightness_range[0] <= 0:
            raise ValueError("contrast_range and brightness_range must be positive factors")
        if self.gamma_range[0] <= 0:
            raise ValueError(f"gamma_range must be positive, not {list(self.gamma_range)}")
        if self.blur_sigma_voxels[0] <= 0:
            raise ValueError("blur_sigma_voxels must be positive")
        return self


class ChannelIntensityAugmenter:
    """Applies :class:`IntensityAugmentation` to ``(C, X, Y, Z)`` patches, each channel drawing
    its own transforms; seeded, so the same seed gives the same sequence of patches."""

    def __init__(self, config: IntensityAugmentation, *, seed: int) -> None:
        from monai.transforms import (
            RandAdjustContrast,
            RandGaussianNoise,
            RandGaussianSmooth,
            RandScaleIntensity,
            RandScaleIntensityFixedMean,
        )

        sigma = tuple(config.blur_sigma_voxels)
        lo, hi = config.contrast_range
        blo, bhi = config.brightness_range
        self.transforms: list[Any] = [
            RandGaussianNoise(prob=config.noise_prob, std=config.noise_std_max),
            RandGaussianSmooth(sigma_x=sigma, sigma_y=sigma, sigma_z=sigma, prob=config.blur_prob),
            RandScaleIntensity(factors=(blo - 1.0, bhi - 1.0), prob=config.brightness_prob),
            RandScaleIntensityFixedMean(
                factors=(lo - 1.0, hi - 1.0), prob=config.contrast_prob, preserve_range=True
            ),
            RandAdjustContrast(
                gamma=config.gamma_range,
                prob=config.inverted_gamma_prob,
                invert_image=True,
                retain_stats=True,
            ),
            RandAdjustContrast(gamma=config.gamma_range, prob=config.gamma_prob, retain_stats=True),
        ]
        seeds = np.random.SeedSequence(seed).generate_state(len(self.transforms))
        for transform, state in zip(self.transforms, seeds, strict=True):
            transform.set_random_state(seed=int(state))

    def __call__(self, patch: np.ndarray) -> np.ndarray:
        """Augmented copy of ``patch`` (``(C, X, Y, Z)``, float32; intensities only)."""
        import torch

        if patch.ndim != 4:
            raise InputError(f"patch must be (C, X, Y, Z), found shape {patch.shape}")
        channels = []
        for channel in np.asarray(patch, dtype=np.float32):
            x: Any = torch.from_numpy(np.ascontiguousarray(channel[None]))
            for transform in self.transforms:
                x = transform(x)
            channels.append(torch.as_tensor(x).detach().cpu().numpy()[0])
        return np.ascontiguousarray(np.stack(channels), dtype=np.float32)
