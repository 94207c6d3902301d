"""Reading-room orientation of 2D slices taken from (i, j, k) volumes."""

from __future__ import annotations

import numpy as np


def to_display_slice(volume_slice: np.ndarray) -> np.ndarray:
    """Turn an ``(i, j)`` slice (DICOM column, row) into a ``(row, column)`` image.

    The result is the slice as a DICOM viewer shows it (row 0 at the top), which is how
    SAM-family models saw medical slices in training.
    """
    return np.ascontiguousarray(np.swapaxes(volume_slice, 0, 1))


def from_display_slice(display_image: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_display_slice`."""
    return np.ascontiguousarray(np.swapaxes(display_image, 0, 1))
