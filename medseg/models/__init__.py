"""Models: network builders and weight loaders (SAM family; U-Nets come here too)."""

from __future__ import annotations

from medseg.models._device import resolve_device
from medseg.models._sam import (
    LITEMEDSAM_SHA256,
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    InputNormalization,
    SamModel,
    SamModelName,
    litemedsam_checkpoint_path,
    load_sam_model,
)

__all__ = [
    "LITEMEDSAM_SHA256",
    "SAM_PIXEL_MEAN",
    "SAM_PIXEL_STD",
    "InputNormalization",
    "SamModel",
    "SamModelName",
    "litemedsam_checkpoint_path",
    "load_sam_model",
    "resolve_device",
]
