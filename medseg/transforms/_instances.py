"""Training targets made from instance label maps (cells, nuclei).

A semantic network cannot output "object 17", but it can learn a map from which objects
are recovered. The classic recipe of the 2018 Data Science Bowl (Caicedo et al., Cytometry A
2019, "3-class U-Net") gives every pixel one of three classes: background, the interior of
a nucleus, or its boundary — a band just inside each nucleus' outline. Touching nuclei are
then separated by their boundary bands, and a marker watershed from the interiors
(:func:`medseg.inference.label_instances`) restores the full objects.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.transforms import MapTransform
from scipy import ndimage
from skimage.segmentation import find_boundaries

from medseg.core import InputError
from medseg.transforms._targets import BOUNDARY_CLASS, CORE_CLASS, INTERIOR_CLASS


def compute_boundary_classes(
    instances: np.ndarray, *, boundary_width_px: int = 2, core_fraction: float | None = None
) -> np.ndarray:
    """Three-class map from an instance map: 0 background, 1 interior, 2 boundary
    (four classes with ``core_fraction``: 3 core).

    The boundary is a band of each instance's own pixels: those with a face neighbour outside
    the instance (background or a touching neighbour; ``skimage.segmentation.
    find_boundaries(mode="inner")``), grown ``boundary_width_px - 1`` times inwards through
    face, edge and corner neighbours of the same instance. Everything else inside an instance
    is interior; interiors of touching instances never touch. Works in 2D and 3D.

    Parameters
    ----------
    instances
        Integer map, 0 background and one id per object (any ids, any order).
    boundary_width_px
        Width of the boundary band in pixels (≥ 1).
    core_fraction
        If given (in (0, 1]), interior pixels whose Euclidean distance to the outside of their
        own instance is at least this fraction of that instance's largest such distance
        become class 3, the core. Every instance with an interior has a core.

    Returns
    -------
    np.ndarray
        uint8 map of the same shape.
    """
    if boundary_width_px < 1:
        raise ValueError(f"boundary_width_px must be at least 1, not {boundary_width_px}")
    labels = np.asarray(instances)
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.array_equal(labels, np.round(labels)):
            raise InputError("instance map must hold integer ids")
        labels = labels.astype(np.int64)
    foreground = labels > 0
    boundary = find_boundaries(labels, connectivity=1, mode="inner") & foreground
    if boundary_width_px > 1:
        # grow inwards one pixel at a time, only into pixels of the same instance
        structure = ndimage.generate_binary_structure(labels.ndim, labels.ndim)
        for _ in range(boundary_width_px - 1):
            grown = boundary.copy()
            for offset in _neighbour_offsets(structure):
                shifted_boundary = _shift(boundary, offset, fill=False)
                shifted_labels = _shift(labels, offset, fill=0)
                grown |= shifted_boundary & (shifted_labels == labels) & foreground
            boundary = grown
    classes = np.zeros(labels.shape, dtype=np.uint8)
    classes[foreground] = INTERIOR_CLASS
    classes[boundary] = BOUNDARY_CLASS
    if core_fraction is not None:
        if not 0.0 < core_fraction <= 1.0:
            raise ValueError(f"core_fraction must be in (0, 1], not {core_fraction}")
        classes[_core_mask(labels, core_fraction=core_fraction) & ~boundary] = CORE_CLASS
    return classes


def compute_contact_weights(
    instances: np.ndarray, *, contact_weight: float, band_px: int = 2
) -> np.ndarray:
    """Per-pixel loss weights that stress the contact band between touching instances.

    A pixel within ``band_px`` (Euclidean, a disc footprint) of two or more different
    instances — the background gap and the facing boundary pixels where nuclei touch —
    weighs ``contact_weight``; every other pixel weighs 1 (the U-Net paper's and the DSB2018
    winners' weighted cross-entropy, as a band instead of a distance decay). Works in 2D and 3D.

    Parameters
    ----------
    instances
        Integer map, 0 background and one id per object (any ids).
    contact_weight
        Weight of the contact band (> 0; 1 gives a map of ones).
    band_px
        Radius of the neighbourhood in pixels (≥ 1).

    Returns
    -------
    np.ndarray
        float32 map of the same shape.
    """
    if contact_weight <= 0:
        raise ValueError(f"contact_weight must be positive, not {contact_weight}")
    if band_px < 1:
        raise ValueError(f"band_px must be at least 1, not {band_px}")
    labels = np.asarray(instances)
    if not np.issubdtype(labels.dtype, np.integer) and not np.array_equal(labels, np.round(labels)):
        raise InputError("instance map must hold integer ids")
    labels = labels.astype(np.int64)
    grid = np.indices((2 * band_px + 1,) * labels.ndim) - band_px
    footprint = (grid**2).sum(axis=0) <= band_px**2
    largest = int(labels.max(initial=0)) + 1  # stands for background (no id)
    # the smallest and largest id within reach (background left out of the smallest)
    lowest = ndimage.minimum_filter(
        np.where(labels > 0, labels, largest), footprint=footprint, mode="constant", cval=largest
    )
    highest = ndimage.maximum_filter(labels, footprint=footprint, mode="constant", cval=0)
    contact = (lowest != largest) & (highest != lowest)
    weights = np.ones(labels.shape, dtype=np.float32)
    weights[contact] = contact_weight
    return weights


def _core_mask(labels: np.ndarray, *, core_fraction: float) -> np.ndarray:
    """Pixels at least ``core_fraction`` of their instance's largest inner distance deep."""
    core = np.zeros(labels.shape, dtype=bool)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        # one pixel of margin so that the outline counts as outside at the crop's border
        padded = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
        mask = labels[padded] == index
        inner = np.pad(mask, 1)
        distance = ndimage.distance_transform_edt(inner)[(slice(1, -1),) * labels.ndim]
        deepest = distance.max()
        core[padded] |= mask & (distance >= core_fraction * deepest)
    return core


def _neighbour_offsets(structure: np.ndarray) -> list[tuple[int, ...]]:
    centre = tuple(s // 2 for s in structure.shape)
    return [
        tuple(int(i - c) for i, c in zip(index, centre, strict=True))
        for index in zip(*np.nonzero(structure), strict=True)
        if tuple(index) != centre
    ]


def _shift(array: np.ndarray, offset: tuple[int, ...], *, fill: Any) -> np.ndarray:
    """``out[x] = array[x - offset]`` with ``fill`` where ``x - offset`` is outside."""
    out = np.full_like(array, fill)
    pairs = list(zip(offset, array.shape, strict=True))
    source = tuple(slice(max(0, -o), n - max(0, o)) for o, n in pairs)
    target = tuple(slice(max(0, o), n - max(0, -o)) for o, n in pairs)
    out[target] = array[source]
    return out


class InstancesToBoundaryClassesd(MapTransform):
    """Dict transform: ``label`` ``(1, *spatial)`` instance ids → the three-class target.

    Deterministic (a plain MONAI ``MapTransform``), so ``CacheDataset`` caches its output
    with the preprocessing; it runs after resampling so the band width is in network pixels.
    With ``contact_weight`` other than 1 it also writes ``weight`` ``(1, *spatial)``, the
    per-pixel loss weights of :func:`compute_contact_weights` (made from the same ids).
    """

    def __init__(
        self,
        *,
        boundary_width_px: int = 2,
        core_fraction: float | None = None,
        contact_weight: float = 1.0,
        contact_band_px: int = 2,
    ) -> None:
        super().__init__(keys=["label"], allow_missing_keys=True)
        self.boundary_width_px = boundary_width_px
        self.core_fraction = core_fraction
        self.contact_weight = contact_weight
        self.contact_band_px = contact_band_px

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Convert one item's label (a new array; the input is not modified)."""
        item = dict(data)
        label = item.get("label")
        if label is None:
            return item
        array = np.asarray(label.detach().cpu() if hasattr(label, "detach") else label)
        classes = np.stack(
            [
                compute_boundary_classes(
                    c, boundary_width_px=self.boundary_width_px, core_fraction=self.core_fraction
                )
                for c in array
            ]
        )
        item["label"] = classes
        if self.contact_weight != 1.0:
            item["weight"] = np.stack(
                [
                    compute_contact_weights(
                        c, contact_weight=self.contact_weight, band_px=self.contact_band_px
                    )
                    for c in array
                ]
            )
        return item
