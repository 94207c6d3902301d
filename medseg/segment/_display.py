"""The 2D working orientation SAM slices and overlays use."""

from __future__ import annotations

import numpy as np

from medseg.io import Volume, reorient
from medseg.transforms import apply_window, scale_percentiles, to_display_slice

#: Working orientation for 2D work: LPS axes, so (i, j) slices transpose to the
#: radiological display (row 0 anterior, column 0 patient right). 2D images already are.
DISPLAY_CODES = "LPS"


def display_slices(volume: Volume) -> tuple[Volume, int]:
    """The volume in the working orientation and its number of slices."""
    working = reorient(volume, DISPLAY_CODES)
    return working, working.spatial_shape[2]


def display_image(volume_lps: Volume, k: int, *, window: tuple[float, float] | None) -> np.ndarray:
    """Slice ``k`` as a (row, column[, 3]) float image in [0, 1] for SAM and overlays."""
    plane = to_display_slice(volume_lps.array[:, :, k])
    if plane.ndim == 3:  # RGB: passthrough, scaled from the dtype's range
        scale = 255.0 if plane.dtype == np.uint8 else float(max(plane.max(), 1))
        return np.clip(plane[..., :3].astype(np.float32) / scale, 0.0, 1.0)
    if window is not None:
        return apply_window(plane, level_hu=window[0], width_hu=window[1])
    return scale_percentiles(plane)
