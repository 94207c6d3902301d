"""Label-map postprocessing per class: largest component, hole filling, minimum size."""

from __future__ import annotations

import numpy as np
from pydantic import Field
from scipy import ndimage

from medseg.core import ConfigModel


class LabelPostprocess(ConfigModel):
    """What to clean up for one class.

    Attributes
    ----------
    largest_component
        Keep only the largest connected component (face connectivity).
    fill_holes
        Fill enclosed background inside the class (per 2D slice is not used: 3D holes).
    min_size_voxels
        Remove connected components smaller than this (0 keeps all).
    """

    largest_component: bool = False
    fill_holes: bool = False
    min_size_voxels: int = Field(default=0, ge=0)


def postprocess_labels(labels: np.ndarray, *, rules: dict[int, LabelPostprocess]) -> np.ndarray:
    """Apply ``rules`` (class index → rule) to a class map; returns a new array.

    Removed voxels become background; filled holes take the class. Classes are processed
    in ascending index order. Uses ``scipy.ndimage`` (label, binary_fill_holes).
    """
    out = np.array(labels, copy=True)
    for cls in sorted(rules):
        rule = rules[cls]
        mask = out == cls
        if not mask.any():
            continue
        if rule.min_size_voxels or rule.largest_component:
            components, count = ndimage.label(mask)
            sizes = np.bincount(components.ravel(), minlength=count + 1)
            sizes[0] = 0
            keep = sizes >= max(rule.min_size_voxels, 1)
            if rule.largest_component and count:
                keep = np.zeros_like(keep)
                keep[int(np.argmax(sizes))] = True
            new_mask = keep[components]
            out[mask & ~new_mask] = 0
            mask = new_mask
        if rule.fill_holes:
            filled = ndimage.binary_fill_holes(mask)
            out[filled & ~mask] = cls
    return out
