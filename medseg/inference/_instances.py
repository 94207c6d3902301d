"""Object instances from a background / interior / boundary prediction (nuclei, cells).

A network trained with the ``instance_boundary`` target (:mod:`medseg.transforms`) outputs
per-pixel probabilities of background, nucleus interior and nucleus boundary. Instances
come from a marker watershed, the DSB2018 "3-class U-Net" post-processing:

1. foreground = pixels whose background probability is below ``1 - foreground_threshold``;
2. seeds = connected components of ``p(interior) > seed_threshold`` (inside the
   foreground) of at least ``min_seed_size_px`` pixels — touching nuclei have separate
   interiors because the boundary band lies between them; with ``seed_split_h_px`` a seed
   that is itself two nuclei' seeds joined by a neck is split first
   (:func:`split_merged_seeds`);
3. watershed of ``1 - p(interior)`` from the seeds, restricted to the foreground
   (``skimage.segmentation.watershed``), so each nucleus grows back over its boundary band;
4. foreground components that hold no seed (very small nuclei predicted as all boundary)
   become instances of their own;
5. instances smaller than ``min_size_px`` are dropped, holes inside an instance filled, ids
   renumbered 1..N.

A network trained with the ``instance_core`` target has a fourth output, each nucleus'
core (its deepest pixels, a coarse distance map). Its interior is then p(interior) +
p(core) and the seeds are the components of ``p(core) > seed_threshold``: cores of touching
nuclei lie apart even where the network missed the boundary band between them.

Nucleus size: a network sees nuclei at the scale it was trained on. With
``zoom_in_below_area_px`` / ``zoom_out_above_area_px`` set, :func:`choose_instance_zoom`
reads the median area of the instances found in a first pass; when it lies outside that
range the image is segmented again at ``zoom_factor`` (or its inverse) times its size and the
instances resampled back (:func:`~medseg.inference.predict_volume`).

Stain: H&E images (colour) and fluorescence / brightfield images (grey, stored as RGB in
DSB2018) fail differently. With ``stained`` set, :func:`select_instance_config` uses those
settings instead for an image :func:`is_stained_image` finds coloured — detected from the
pixels, not asked of the user.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydantic import Field
from scipy import ndimage
from skimage.segmentation import relabel_sequential, watershed

from medseg.core import ConfigError, ConfigModel, parse_config
from medseg.models import Checkpoint
from medseg.transforms import BOUNDARY_CLASS, CORE_CLASS, INTERIOR_CLASS

logger = logging.getLogger(__name__)


class InstanceConfig(ConfigModel):
    """Settings of :func:`label_instances` (probabilities in [0, 1], sizes in pixels).

    Attributes
    ----------
    foreground_threshold
        A pixel is foreground when p(interior) + p(boundary) exceeds it.
    seed_threshold
        Seeds are where p(interior) exceeds it.
    min_seed_size_px
        Seed components smaller than this are ignored (noise would over-split nuclei).
    min_size_px
        Instances smaller than this are removed.
    fill_holes
        Fill holes enclosed by one instance.
    zoom_in_below_area_px
        Segment the image again at ``zoom_factor`` times its size when the first pass's
        median instance area is below this (0: never).
    zoom_out_above_area_px
        Segment it again at ``1 / zoom_factor`` times its size when the median area is above
        this (0: never).
    zoom_factor
        The zoom of those second passes (sizes and thresholds then apply on the zoomed grid).
    seed_split_h_px
        Split seeds whose distance map (pixels from the seed's outline) has two or more
        maxima standing at least this many pixels above the saddle between them
        (:func:`split_merged_seeds`); 0 (the default): seeds are not split.
    stained
        Settings used instead for a stained (colour, e.g. H&E) image; unset: these.
    """

    foreground_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    seed_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    min_seed_size_px: int = Field(default=4, ge=1)
    min_size_px: int = Field(default=15, ge=0)
    fill_holes: bool = True
    zoom_in_below_area_px: float = Field(default=0.0, ge=0.0)
    zoom_out_above_area_px: float = Field(default=0.0, ge=0.0)
    zoom_factor: float = Field(default=2.0, gt=1.0, le=4.0)
    seed_split_h_px: float = Field(default=0.0, ge=0.0)
    stained: InstanceConfig | None = None


#: median chroma (max - min over R, G, B, as a fraction of the value range) above which an
#: image is stained: 0 for every grey DSB2018 image, >= 0.031 for its 100 H&E images
STAINED_CHROMA = 0.015


def is_stained_image(array: np.ndarray) -> bool:
    """Whether an image is coloured (stained, e.g. H&E) rather than grey.

    ``array`` has its channels (3 or 4: R, G, B[, A]) on the last axis; any other channel
    count is grey. The median over pixels of max - min across R, G, B, divided by the dtype's
    maximum (integers) or the image's maximum (floats), is compared with ``STAINED_CHROMA``.
    """
    if array.ndim < 3 or array.shape[-1] not in (3, 4):
        return False
    rgb = np.asarray(array[..., :3], dtype=np.float32).reshape(-1, 3)
    if np.issubdtype(array.dtype, np.integer):
        scale = float(np.iinfo(array.dtype).max)
    else:
        scale = float(np.abs(rgb).max()) or 1.0
    chroma = np.median(rgb.max(axis=1) - rgb.min(axis=1)) / scale
    return bool(chroma > STAINED_CHROMA)


def select_instance_config(array: np.ndarray, *, config: InstanceConfig) -> InstanceConfig:
    """``config.stained`` for a stained image (:func:`is_stained_image`), else ``config``."""
    if config.stained is not None and is_stained_image(array):
        logger.info("stained image: its own watershed settings")
        return config.stained
    return config


def label_instances(probabilities: np.ndarray, *, config: InstanceConfig) -> np.ndarray:
    """Instance map from background / interior / boundary probabilities (2D or 3D).

    Parameters
    ----------
    probabilities
        ``(3, *spatial)`` float probabilities (softmax outputs), channel order background,
        interior, boundary (the ``instance_boundary`` target's classes), or ``(4, *spatial)``
        with the ``instance_core`` target's core last.
    config
        Thresholds and sizes (see the module docstring for the steps).

    Returns
    -------
    np.ndarray
        ``spatial`` instance ids, 0 background and 1..N (uint16, or int32 above 65,535).
    """
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.ndim < 3 or probs.shape[0] not in (3, 4):
        raise ConfigError(
            "instance post-processing needs 3 probability channels (background, interior, "
            f"boundary) or 4 (and core), found shape {probs.shape}"
        )
    interior = probs[INTERIOR_CLASS]
    seed_map = interior
    if probs.shape[0] == 4:
        seed_map = probs[CORE_CLASS]
        interior = interior + seed_map
    foreground = (interior + probs[BOUNDARY_CLASS]) > config.foreground_threshold
    structure = ndimage.generate_binary_structure(foreground.ndim, 1)
    seeds, n_seeds = ndimage.label(foreground & (seed_map > config.seed_threshold), structure)
    if n_seeds:
        sizes = np.bincount(seeds.ravel(), minlength=n_seeds + 1)
        small = sizes < config.min_seed_size_px
        small[0] = False
        seeds[small[seeds]] = 0
    if config.seed_split_h_px > 0:
        seeds = split_merged_seeds(seeds, h_px=config.seed_split_h_px)
    instances = watershed(1.0 - interior, markers=seeds, mask=foreground, connectivity=1)
    # foreground components that no seed reached: objects of their own
    orphans, n_orphans = ndimage.label(foreground & (instances == 0), structure)
    if n_orphans:
        instances = np.where(orphans > 0, orphans + instances.max(), instances)
    instances = _remove_small(instances, min_size_px=config.min_size_px)
    if config.fill_holes:
        instances = _fill_holes(instances)
    relabelled, _, _ = relabel_sequential(instances.astype(np.int64, copy=False))
    n_instances = int(relabelled.max(initial=0))
    dtype = np.uint16 if n_instances < 2**16 else np.int32
    return relabelled.astype(dtype)


def split_merged_seeds(seeds: np.ndarray, *, h_px: float) -> np.ndarray:
    """Split seed components that are several nuclei' seeds joined by a neck.

    The Euclidean distance of each seed pixel to the outside of the seeds has one maximum per
    round seed; a dumbbell has two, with a saddle at the neck. The regional maxima of the
    distance reconstructed by dilation from itself lowered by ``h_px`` (the h-maxima
    transform) are the maxima that stand about ``h_px`` or more above the saddle to any higher
    one; they become markers, and a watershed of the negated distance from them, inside the
    seeds, divides each component (the distance-transform watershed, applied to seeds instead
    of whole nuclei). Components with one such maximum, or none (seeds less than ``h_px``
    deep), stay whole.

    Parameters
    ----------
    seeds
        Integer map, 0 outside the seeds and one id per seed component (2D or 3D).
    h_px
        Least height of a maximum above the saddle to its neighbour, in pixels (> 0).

    Returns
    -------
    np.ndarray
        int64 map of the same shape: the seeds, split, ids 1..M.
    """
    from skimage.morphology import local_maxima, reconstruction

    if h_px <= 0:
        raise ValueError(f"h_px must be positive, not {h_px}")
    labels = np.asarray(seeds).astype(np.int64)
    out = np.zeros(labels.shape, dtype=np.int64)
    next_id = 1
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == index
        # one pixel of margin so that the seed's outline counts as outside at the crop's border
        distance = ndimage.distance_transform_edt(np.pad(mask, 1))[(slice(1, -1),) * mask.ndim]
        pieces, n_pieces = None, 1
        # a second maximum needs a saddle (>= 1 px deep) and h_px above it
        if distance.max() > h_px + 1:
            # the h-maxima transform (skimage's h_maxima keeps both of two equal peaks
            # whatever the saddle between them)
            lowered = reconstruction(distance - h_px, distance, method="dilation")
            peaks = local_maxima(lowered) & mask & (distance >= h_px)
            full = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
            markers, n_pieces = ndimage.label(peaks, full)
            if n_pieces > 1:
                pieces = watershed(-distance, markers=markers, mask=mask, connectivity=1)
        target = out[box]
        if pieces is None:
            target[mask] = next_id
            next_id += 1
        else:
            target[mask] = pieces[mask] + next_id - 1
            next_id += n_pieces
    return out


def choose_instance_zoom(instances: np.ndarray, *, config: InstanceConfig) -> float:
    """The zoom of the second pass for a first pass's instance map (1.0: none).

    ``config.zoom_factor`` when the median instance area (pixels) is below
    ``zoom_in_below_area_px``, its inverse when above ``zoom_out_above_area_px``, else 1.0
    (also for a map without instances).
    """
    if not (config.zoom_in_below_area_px or config.zoom_out_above_area_px):
        return 1.0
    areas = np.bincount(np.asarray(instances).ravel().astype(np.int64))[1:]
    areas = areas[areas > 0]
    if areas.size == 0:
        return 1.0
    median = float(np.median(areas))
    if config.zoom_in_below_area_px and median < config.zoom_in_below_area_px:
        return config.zoom_factor
    if config.zoom_out_above_area_px and median > config.zoom_out_above_area_px:
        return 1.0 / config.zoom_factor
    return 1.0


def _remove_small(instances: np.ndarray, *, min_size_px: int) -> np.ndarray:
    if min_size_px <= 1 or not instances.any():
        return instances
    sizes = np.bincount(instances.ravel())
    small = sizes < min_size_px
    small[0] = False
    out = instances.copy()
    out[small[instances]] = 0
    return out


def _fill_holes(instances: np.ndarray) -> np.ndarray:
    """Fill background holes enclosed by one instance (each object's bounding box only)."""
    out = instances.copy()
    for index, box in enumerate(ndimage.find_objects(instances), start=1):
        if box is None:
            continue
        mask = instances[box] == index
        filled = ndimage.binary_fill_holes(mask)
        holes = filled & ~mask & (out[box] == 0)
        if holes.any():
            out[box][holes] = index
    return out


def resolve_instance_config(
    checkpoint: Checkpoint, override: InstanceConfig | None = None
) -> InstanceConfig | None:
    """The instance post-processing for a checkpoint: None for a semantic model.

    ``override`` (from an inference config) wins; else the settings stored in the
    checkpoint (chosen on validation data when the model was shipped); else the defaults.
    """
    if not checkpoint.is_instance_model:
        if override is not None:
            raise ConfigError(
                "instances settings were given but the checkpoint is a semantic model "
                f"(target {checkpoint.target.value})"
            )
        return None
    if override is not None:
        return override
    stored: dict[str, Any] = checkpoint.instance_postprocess
    return parse_config(InstanceConfig, stored, source="checkpoint instance_postprocess")
