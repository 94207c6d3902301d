"""Segmentation of a multi-channel case (e.g. FLAIR + T1c) with a channel model.

The channels are named on the command line (``--channel flair=F.nii.gz``) and checked
against the names stored in the checkpoint's plans (``image_keys``); they are stacked on the
first channel's grid (:func:`medseg.io.read_channels`), cropped to the box of the
non-background voxels (as in training) and segmented with :func:`predict_volume`; the labels
are the argmax or, with ``InferConfig.regions``, a nested region decision (BraTS: whole tumour,
core inside it, enhancing inside the core, each where its summed probability exceeds 0.5). The
labels come back on the first channel's grid (same shape and affine).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.core import ChannelError
from medseg.inference._predict import InferConfig, Prediction, predict_volume
from medseg.inference._types import NestedRegion
from medseg.io import Volume, crop_volume, find_content_box, read_channels
from medseg.models import Checkpoint

logger = logging.getLogger(__name__)


def parse_channel_arguments(values: list[str]) -> dict[str, Path]:
    """``["flair=F.nii.gz", "t1c=T.nii.gz"]`` → ``{"flair": Path(...), ...}`` (order kept).

    Raises
    ------
    ChannelError
        If a value is not ``NAME=FILE`` or a name repeats.
    """
    channels: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ChannelError(f"--channel must be NAME=FILE, not {value!r}")
        name = name.strip()
        if name in channels:
            raise ChannelError(f"channel {name} given twice", found=[*channels, name])
        channels[name] = Path(path.strip())
    return channels


def keep_largest_foreground(labels: np.ndarray) -> np.ndarray:
    """Labels with every foreground component but the largest (26-connected) set to 0."""
    return keep_foreground_components(labels, min_fraction=1.0)


def keep_foreground_components(labels: np.ndarray, *, min_fraction: float) -> np.ndarray:
    """Labels with foreground components (26-connected) below ``min_fraction`` of the
    largest one's voxel count set to 0 (1.0 keeps the largest only; multifocal tumours
    keep their large foci with a smaller fraction)."""
    foreground = labels > 0
    components, count = ndimage.label(foreground, structure=np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return labels
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    if min_fraction >= 1.0:
        keep = np.zeros(count + 1, dtype=bool)
        keep[int(np.argmax(sizes))] = True
    else:
        keep = sizes >= min_fraction * sizes.max()
        keep[0] = False
    out = labels.copy()
    out[foreground & ~keep[components]] = 0
    return out


def decide_nested_regions(
    probabilities: np.ndarray, regions: list[NestedRegion] | list[dict]
) -> np.ndarray:
    """Label map from class probabilities by nested regions instead of the argmax.

    Parameters
    ----------
    probabilities
        ``(*spatial, C)`` probabilities, channel index = label id (any float dtype).
    regions
        Outermost first; level k writes its ``label`` where the summed probability of its
        ``labels`` exceeds its ``threshold`` (0.5 by default) and level k - 1 was decided
        (BraTS: WT {1, 2, 4} → 2, TC {1, 4} → 1, ET {4} → 4).

    Returns
    -------
    numpy.ndarray
        uint8 labels with the spatial shape.
    """
    levels = [r if isinstance(r, NestedRegion) else NestedRegion(**r) for r in regions]
    labels = np.zeros(probabilities.shape[:-1], dtype=np.uint8)
    inside = np.ones(labels.shape, dtype=bool)
    for level in levels:
        total = np.zeros(labels.shape, dtype=np.float32)
        for idx in level.labels:
            total += probabilities[..., idx]
        inside &= total > level.threshold
        labels[inside] = level.label
    return labels


def predict_channels(
    checkpoint: Checkpoint,
    channels: Mapping[str, str | Path],
    *,
    config: InferConfig,
    largest_component: bool = True,
    case_id: str = "case",
) -> Prediction:
    """Segment one case given as named channel files.

    Parameters
    ----------
    checkpoint
        A model whose plans name its input channels (``image_keys``).
    channels
        Channel name → image file; exactly the model's channels. The first channel the
        *model* lists defines the output grid.
    largest_component
        Keep only the largest connected foreground component (e.g. one tumour).

    Raises
    ------
    ChannelError
        If a channel is missing or not one of the model's.
    """
    expected = list(checkpoint.plans.image_keys)
    volume = read_channels(channels, expected=expected)
    return predict_channel_volume(
        checkpoint, volume, config=config, largest_component=largest_component, case_id=case_id
    )


def predict_channel_volume(
    checkpoint: Checkpoint,
    volume: Volume,
    *,
    config: InferConfig,
    largest_component: bool = True,
    case_id: str = "case",
) -> Prediction:
    """:func:`predict_channels` on channels already stacked as ``(X, Y, Z, C)``."""
    started = time.perf_counter()
    n_channels = volume.array.shape[-1] if volume.array.ndim == 4 else 1
    if n_channels != checkpoint.plans.in_channels:
        raise ChannelError(
            f"the model expects {checkpoint.plans.in_channels} channels "
            f"({', '.join(checkpoint.plans.image_keys)}), found {n_channels}",
            expected=list(checkpoint.plans.image_keys),
        )
    network = checkpoint.build(device="cpu")
    box = find_content_box(volume)
    keep = config.save_probabilities or bool(config.regions)
    prediction = predict_volume(
        network,
        crop_volume(volume, box),
        plans=checkpoint.plans,
        config=config.model_copy(update={"save_probabilities": keep}),
        case_id=case_id,
    )
    labels = np.zeros(volume.spatial_shape, dtype=np.uint8)
    probabilities = None
    if keep and prediction.probabilities is not None:
        cropped = np.asarray(prediction.probabilities.array)
        probabilities = np.zeros((*volume.spatial_shape, cropped.shape[-1]), dtype=np.float16)
        probabilities[..., 0] = 1.0
        probabilities[box] = cropped
    if config.regions and probabilities is not None:
        labels = decide_nested_regions(probabilities, config.regions)
    else:
        labels[box] = np.asarray(prediction.labels.array)
    if largest_component:
        labels = keep_foreground_components(labels, min_fraction=config.min_component_fraction)
    seconds = time.perf_counter() - started
    logger.info("case %s: %d channels segmented in %.1f s", case_id, n_channels, seconds)
    label_volume = Volume(array=labels, affine=volume.affine.copy(), metadata={"kind": "labels"})
    prob_volume = None
    if config.save_probabilities and probabilities is not None:
        prob_volume = Volume(
            array=probabilities, affine=volume.affine.copy(), metadata={"kind": "probabilities"}
        )
    return Prediction(labels=label_volume, probabilities=prob_volume, seconds=seconds)
