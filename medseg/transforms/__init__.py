"""Transforms: intensity windows, scaling and slice orientation."""

from __future__ import annotations

from medseg.transforms._intensity import CTWindow, apply_window, scale_percentiles
from medseg.transforms._orientation import from_display_slice, to_display_slice

__all__ = [
    "CTWindow",
    "apply_window",
    "from_display_slice",
    "scale_percentiles",
    "to_display_slice",
]
