"""Per-modality intensity preparation for SAM-family encoders.

CT is windowed (a named preset or level/width in HU), MR and microscopy are clipped to
percentiles of the whole volume, RGB images (fundus, H&E) pass through scaled to [0, 1].
Statistics are taken over the whole volume, not per slice, so neighbouring slices share
one intensity scale (upstream MedSAM's practice).
"""

from __future__ import annotations

import enum
import logging

import numpy as np
from pydantic import Field, model_validator

from medseg.core import ConfigError, ConfigModel, InputError
from medseg.transforms import CTWindow, apply_window, scale_percentiles

logger = logging.getLogger(__name__)


class IntensityMode(str, enum.Enum):
    """How raw intensities become the encoder's [0, 1] input."""

    AUTO = "auto"
    CT = "ct"
    PERCENTILE = "percentile"
    RGB = "rgb"


class IntensityConfig(ConfigModel):
    """Intensity preparation; ``auto`` picks ``rgb`` for colour images, ``ct`` for DICOM
    CT and for images without a modality whose values look like Hounsfield units (see
    :func:`looks_like_hu`), and ``percentile`` otherwise."""

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


#: A CT in HU holds air (about -1000 HU) in at least 1 % of its voxels and nothing below
#: the padding values scanners write (-1024, -2048, -3024), nor above 4000 HU in its top 1 %.
_HU_AIR_BELOW = -500.0
_HU_FLOOR = -4000.0
_HU_P99_ABOVE = 4000.0
_SAMPLE_VOXELS = 2_000_000


def looks_like_hu(array: np.ndarray) -> bool:
    """Whether a grey image's values look like CT Hounsfield units.

    True when its 1st percentile is at most -500 (air or lung in at least 1 % of the
    voxels), its minimum is at least -4000 (scanner padding goes to -3024) and its 99th
    percentile at most 4000. MR, PET and microscopy are non-negative or z-scored (above
    about -10), so they are never taken for CT. Computed on at most 2 million voxels taken
    on a regular grid.
    """
    if array.size == 0 or not np.issubdtype(array.dtype, np.number):
        return False
    step = max(1, int(np.ceil((array.size / _SAMPLE_VOXELS) ** (1 / max(array.ndim, 1)))))
    sample = np.asarray(array[(slice(None, None, step),) * array.ndim], dtype=np.float32)
    if not np.isfinite(sample).all():
        return False
    low, p1, p99 = np.percentile(sample, [0, 1, 99])
    return bool(p1 <= _HU_AIR_BELOW and low >= _HU_FLOOR and p99 <= _HU_P99_ABOVE)


def resolve_intensity_mode(
    config: IntensityConfig,
    *,
    is_rgb: bool,
    modality: str | None,
    array: np.ndarray | None = None,
) -> IntensityMode:
    """The concrete mode for an image (``auto`` resolved), logged with its reason.

    ``auto``: ``rgb`` for colour images; ``ct`` for DICOM CT, or when the modality is
    unknown (NIfTI, NRRD) and ``array`` looks like HU (:func:`looks_like_hu`); else
    ``percentile``. This is the one place that decides the mode.
    """
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
        mode, reason = IntensityMode.RGB, "colour image"
    elif modality is not None and modality.upper() == "CT":
        mode, reason = IntensityMode.CT, "DICOM modality CT"
    elif modality is not None:
        mode, reason = IntensityMode.PERCENTILE, f"DICOM modality {modality.upper()[:16]}"
    elif array is not None and looks_like_hu(array):
        mode, reason = IntensityMode.CT, "no modality; values look like CT in HU"
    else:
        mode, reason = IntensityMode.PERCENTILE, "no modality; values do not look like HU"
    logger.info("intensity auto: %s (%s)", mode.value, reason)
    return mode


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
    mode = resolve_intensity_mode(config, is_rgb=is_rgb, modality=modality, array=array)
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
