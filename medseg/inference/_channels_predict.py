"""Segmentation of a multi-channel case (e.g. FLAIR + T1c) with a channel model.

The channels are named on the command line (``--channel flair=F.nii.gz``) and checked
against the names stored in the checkpoint's plans (``image_keys``); they are stacked on the
first channel's grid (:func:`medseg.io.read_channels`), cropped to the box of the
non-background voxels (as in training) and segmented with :func:`predict_volume`
(probabilities are not kept). The labels come back on the first channel's grid (same shape and
affine).
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
    foreground = labels > 0
    components, count = ndimage.label(foreground, structure=np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return labels
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    out = labels.copy()
    out[foreground & (components != int(np.argmax(sizes)))] = 0
    return out


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
    prediction = predict_volume(
        network, crop_volume(volume, box), plans=checkpoint.plans, config=config, case_id=case_id
    )
    labels = np.zeros(volume.spatial_shape, dtype=np.uint8)
    labels[box] = np.asarray(prediction.labels.array)
    if largest_component:
        labels = keep_largest_foreground(labels)
    seconds = time.perf_counter() - started
    logger.info("case %s: %d channels segmented in %.1f s", case_id, n_channels, seconds)
    label_volume = Volume(array=labels, affine=volume.affine.copy(), metadata={"kind": "labels"})
    return Prediction(labels=label_volume, probabilities=None, seconds=seconds)
