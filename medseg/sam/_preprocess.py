"""Per-modality intensity preparation for SAM-family encoders.

CT is windowed (a named preset or level/width in HU), MR and microscopy are clipped to
percentiles of the whole volume, RGB images (fundus, H&E) pass through scaled to [0, 1].
Statistics are taken over the whole volume, not per slice, so neighbouring slices share
one intensity scale (upstream MedSAM's practice).
"""

from __future__ import annotations

import enum

import numpy as np
from pydantic import Field, model_validator

from medseg.core import ConfigError, ConfigModel, InputError
from medseg.transforms import CTWindow, apply_window, scale_percentiles


class IntensityMode(str, enum.Enum):
    """How raw intensities become the encoder's [0, 1] input."""

    AUTO = "auto"
    CT = "ct"
    PERCENTILE = "percentile"
    RGB = "rgb"


class IntensityConfig(ConfigModel):
    """Intensity preparation; ``auto`` picks ``rgb`` for colour images, ``ct`` for DICOM
    CT and ``percentile`` otherwise (NIfTI carries no modality: say ``ct`` for CT)."""

    mode: IntensityMode = IntensityMode.AUTO
    window: CTWindow = CTWindow.ABDOMEN
    level_hu: float | None = None
    width_hu: float | None = Field(default=None, gt=0)
    lower_percentile: float = Field(default=0.5, ge=0, le=100)
    upper_percentile: float = Field(default=99.5, ge=0, le=100)
    nonzero_only: bool = False

    @model_validator(mode="after")
    def _check(self) -> IntensityConfig:
        if (self.level_hu is None) != (self.width_hu is None):
            raise ValueError("give both level_hu and width_hu, or neither (then window applies)")
        if self.lower_percentile >= self.upper_percentile:
            raise ValueError("lower_percentile must be below upper_percentile")
        return self

    @property
    def level_width_hu(self) -> tuple[float, float]:
        """The CT window as (level, width) in HU."""
        if self.level_hu is not None and self.width_hu is not None:
            return self.level_hu, self.width_hu
        return self.window.level_width_hu


def resolve_intensity_mode(
    config: IntensityConfig, *, is_rgb: bool, modality: str | None
) -> IntensityMode:
    """The concrete mode for an image (``auto`` resolved)."""
    if config.mode is not IntensityMode.AUTO:
        if is_rgb and config.mode is not IntensityMode.RGB:
            raise ConfigError(
                f"intensity mode {config.mode.value!r} needs a grey image; this one is RGB "
                "(use mode rgb)"
            )
        if not is_rgb and config.mode is IntensityMode.RGB:
            raise ConfigError("intensity mode 'rgb' needs a colour image; this one is grey")
        return config.mode
    if is_rgb:
        return IntensityMode.RGB
    if modality is not None and modality.upper() == "CT":
        return IntensityMode.CT
    return IntensityMode.PERCENTILE


def scale_intensity(
    array: np.ndarray, config: IntensityConfig, *, is_rgb: bool, modality: str | None = None
) -> np.ndarray:
    """Scale a whole image or volume to float32 [0, 1] for the encoder.

    Parameters
    ----------
    array
        Any spatial layout; RGB(A) images carry the channels last (alpha is dropped).
    is_rgb
        Whether the last axis holds colour channels.
    modality
        DICOM modality if known (``CT`` enables windowing in ``auto`` mode).

    Returns
    -------
    numpy.ndarray
        float32 in [0, 1], same shape (RGB: 3 channels).
    """
    mode = resolve_intensity_mode(config, is_rgb=is_rgb, modality=modality)
    if mode is IntensityMode.RGB:
        if array.shape[-1] not in (3, 4):
            raise InputError(f"RGB image must have 3 or 4 channels last, not {array.shape}")
        rgb = array[..., :3]
        if np.issubdtype(rgb.dtype, np.integer):
            return (rgb.astype(np.float32) / np.float32(np.iinfo(rgb.dtype).max)).clip(0, 1)
        low, high = float(np.min(rgb)), float(np.max(rgb))
        return ((rgb.astype(np.float32) - low) / max(high - low, 1e-8)).clip(0, 1)
    if mode is IntensityMode.CT:
        level, width = config.level_width_hu
        return apply_window(array, level_hu=level, width_hu=width)
    data = np.asarray(array, dtype=np.float32)
    if config.nonzero_only:
        nonzero = data[data != 0]
        if nonzero.size == 0:
            return np.zeros_like(data)
        low, high = np.percentile(nonzero, [config.lower_percentile, config.upper_percentile])
        if high <= low:
            return np.zeros_like(data)
        scaled = np.clip((data - low) / (high - low), 0.0, 1.0)
        return np.where(data != 0, scaled, 0.0).astype(np.float32)
    return scale_percentiles(
        data, lower_percentile=config.lower_percentile, upper_percentile=config.upper_percentile
    )
