"""Brain-tumour sub-regions inside a whole-tumour mask, by intensity and shape rules.

The rules follow the radiological definitions BraTS annotates by (Menze et al., IEEE TMI
2015): the **enhancing tumour** is the part of the lesion that is hyperintense on
post-contrast T1 (T1c) relative to the rest of the lesion and to normal-appearing brain; the
**tumour core** is the enhancing tumour plus the necrotic and non-enhancing tissue it
encloses (what a surgeon resects); **oedema** is the rest of the FLAIR-hyperintense whole
tumour.

- Enhancing: T1c above a threshold taken from the data: Otsu's threshold of the T1c values
  inside the whole tumour (the lesion's T1c histogram is bimodal when it enhances), never
  below a high percentile of T1c in normal-appearing brain (so a non-enhancing lesion does
  not get an enhancing part from a forced split); normal-appearing brain is the brain mask
  minus the whole tumour grown by ``normal_brain_margin_mm``, because tumour the whole-tumour
  mask missed lies next to it and would inflate the percentile (measured on the BraTS case:
  99th percentile 2.30 with no margin, 1.60 with 5 mm, 1.52 with 10 mm; 1.60 against the
  reference whole tumour). Components smaller than ``min_enhancing_voxels`` are dropped as
  noise.
- Whole tumour completed by enhancement: BraTS regions are nested (whole tumour ⊇ core ⊇
  enhancing), but a mask drawn on FLAIR misses enhancing rim that is not FLAIR-bright; every
  connected component of enhancing voxels (above the threshold, inside the brain mask and
  the search region, e.g. the prompt's 3D box) that touches the whole tumour joins it
  (``complete_with_enhancing``). Measured on the BraTS case (SAM whole tumour from one box):
  whole-tumour Dice 0.862 → 0.893, enhancing 0.739 → 0.870; 14 % of the added voxels lie
  outside the reference tumour.
- Core: the enhancing rim is closed with a ball of ``closing_radius_mm`` (bridging gaps in
  the rim), then enclosed background is filled, per slice and in 3D; the result is cut to
  the whole tumour.
- Oedema: whole tumour minus core.

Output labels follow BraTS 2015: 1 necrotic/non-enhancing core (the rules cannot tell
necrosis, label 1, from non-enhancing tumour, label 3), 2 oedema, 4 enhancing tumour.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import Field
from scipy import ndimage

from medseg.core import ConfigModel, GeometryError

logger = logging.getLogger(__name__)

CORE_LABEL = 1
OEDEMA_LABEL = 2
ENHANCING_LABEL = 4


class TumourSubregionConfig(ConfigModel):
    """Rules splitting a whole-tumour mask into enhancing, core and oedema.

    Attributes
    ----------
    enhancing_channel
        Name of the post-contrast T1 image among the case's images (manifest
        ``additional_images``).
    normal_brain_percentile
        The enhancing threshold is at least this percentile of T1c in normal-appearing brain
        (the case's region mask minus the whole tumour and a margin); needs the case's
        ``roi``.
    normal_brain_margin_mm
        Band around the whole tumour left out of normal-appearing brain.
    min_enhancing_voxels
        Enhancing components smaller than this are removed.
    closing_radius_mm
        Radius of the ball closing gaps in the enhancing rim before the core is filled.
    complete_with_enhancing
        Add to the whole tumour the enhancing components that touch it (see module doc).
    """

    enhancing_channel: str = "t1c"
    normal_brain_percentile: float = Field(default=99.0, ge=50.0, le=100.0)
    normal_brain_margin_mm: float = Field(default=5.0, ge=0.0, le=50.0)
    min_enhancing_voxels: int = Field(default=10, ge=0)
    closing_radius_mm: float = Field(default=3.0, ge=0.0, le=20.0)
    complete_with_enhancing: bool = True


@dataclass(frozen=True)
class SubregionResult:
    """Sub-region label map and the threshold that made it.

    Attributes
    ----------
    labels
        uint8 label map on the input grid: 1 core (non-enhancing), 2 oedema, 4 enhancing;
        its non-zero voxels are the (completed) whole tumour.
    enhancing_threshold
        T1c value above which a whole-tumour voxel counted as enhancing (image units).
    otsu_threshold, normal_brain_threshold
        The two candidates it is the larger of (``nan`` when not computed).
    """

    labels: np.ndarray
    enhancing_threshold: float
    otsu_threshold: float
    normal_brain_threshold: float


def _ball(radius_mm: float, spacing_mm: Sequence[float]) -> np.ndarray:
    """Boolean ellipsoid in voxels covering a ball of ``radius_mm`` at ``spacing_mm``."""
    half = [int(np.floor(radius_mm / s)) for s in spacing_mm]
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    distance = sum((g * s) ** 2 for g, s in zip(grids, spacing_mm, strict=True))
    return np.asarray(distance <= radius_mm**2)


def _search_region(
    wt: np.ndarray, search_mask: np.ndarray | None, brain_mask: np.ndarray | None
) -> np.ndarray:
    """Where enhancing voxels may join the whole tumour: the search mask (default: the whole
    tumour's bounding box), inside the brain when a brain mask is given."""
    if search_mask is not None:
        region = np.asarray(search_mask, dtype=bool)
    else:
        region = np.zeros(wt.shape, dtype=bool)
        (box,) = ndimage.find_objects(wt.astype(np.uint8))
        region[box] = True
    if brain_mask is not None:
        region = region & np.asarray(brain_mask, dtype=bool)
    return region


def _touching_components(candidates: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The connected components of ``candidates`` that overlap or touch ``mask``."""
    components, _ = ndimage.label(candidates)
    touching = np.unique(components[ndimage.binary_dilation(mask) & candidates])
    return np.isin(components, touching[touching > 0])


def _fill_holes(mask: np.ndarray, *, slice_axis: int) -> np.ndarray:
    """Fill enclosed background in each slice along ``slice_axis``, then in 3D."""
    moved = np.moveaxis(mask, slice_axis, 0)
    per_slice = np.stack([ndimage.binary_fill_holes(plane) for plane in moved])
    return np.asarray(ndimage.binary_fill_holes(np.moveaxis(per_slice, 0, slice_axis)))


def split_tumour_subregions(
    whole_tumour: np.ndarray,
    t1c: np.ndarray,
    *,
    spacing_mm: Sequence[float],
    config: TumourSubregionConfig | None = None,
    brain_mask: np.ndarray | None = None,
    search_mask: np.ndarray | None = None,
    slice_axis: int = 2,
) -> SubregionResult:
    """Split a whole-tumour mask into core, oedema and enhancing tumour (see module doc).

    Parameters
    ----------
    whole_tumour
        Boolean mask ``(i, j, k)``.
    t1c
        Post-contrast T1 on the same grid, any real units (e.g. z-scores).
    spacing_mm
        Voxel size along ``(i, j, k)`` in mm (for the closing ball).
    config
        The rule parameters.
    brain_mask
        Optional brain (region) mask on the same grid; gives the normal-appearing brain
        floor of the enhancing threshold, and bounds the completion by enhancement.
        Without it, Otsu's threshold alone is used.
    search_mask
        Where enhancing components may extend the whole tumour (e.g. the prompt's 3D box);
        default: the whole tumour's bounding box.
    slice_axis
        Array axis of the acquisition slices (per-slice hole filling).
    """
    from skimage.filters import threshold_otsu  # lazy: skimage is slow to import

    config = config or TumourSubregionConfig()
    wt = np.asarray(whole_tumour, dtype=bool)
    values = np.asarray(t1c, dtype=np.float32)
    if values.shape != wt.shape:
        raise GeometryError(
            f"T1c image {values.shape} and whole-tumour mask {wt.shape} must share the grid"
        )
    labels = np.zeros(wt.shape, dtype=np.uint8)
    nan = float("nan")
    if not wt.any():
        return SubregionResult(labels, nan, nan, nan)
    inside = values[wt]
    otsu = float(threshold_otsu(inside)) if float(inside.max()) > float(inside.min()) else nan
    normal = nan
    if brain_mask is not None:
        near_tumour = wt
        if config.normal_brain_margin_mm > 0:
            near_tumour = ndimage.binary_dilation(
                wt, structure=_ball(config.normal_brain_margin_mm, spacing_mm)
            )
        normal_voxels = values[np.asarray(brain_mask, dtype=bool) & ~near_tumour]
        if normal_voxels.size:
            normal = float(np.percentile(normal_voxels, config.normal_brain_percentile))
    candidates = [t for t in (otsu, normal) if np.isfinite(t)]
    if not candidates:
        labels[wt] = OEDEMA_LABEL
        return SubregionResult(labels, nan, otsu, normal)
    threshold = max(candidates)
    bright = values > threshold
    if config.complete_with_enhancing:
        wt = wt | _touching_components(bright & _search_region(wt, search_mask, brain_mask), wt)
    enhancing = wt & bright
    if config.min_enhancing_voxels and enhancing.any():
        components, count = ndimage.label(enhancing)
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        sizes[0] = 0
        enhancing = (sizes >= config.min_enhancing_voxels)[components]
    closed = enhancing
    if config.closing_radius_mm > 0 and enhancing.any():
        closed = enhancing | ndimage.binary_closing(
            enhancing, structure=_ball(config.closing_radius_mm, spacing_mm)
        )
    core = (_fill_holes(closed, slice_axis=slice_axis) & wt) | enhancing
    labels[wt] = OEDEMA_LABEL
    labels[core] = CORE_LABEL
    labels[enhancing] = ENHANCING_LABEL
    logger.info(
        "sub-regions: enhancing threshold %.3g (Otsu %.3g, normal brain %.3g); "
        "%d enhancing, %d core, %d whole-tumour voxels",
        threshold,
        otsu,
        normal,
        int(enhancing.sum()),
        int(core.sum()),
        int(wt.sum()),
    )
    return SubregionResult(labels, threshold, otsu, normal)
