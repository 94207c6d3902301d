"""Whole-image prediction with an instance detector (Mask R-CNN) from a checkpoint.

The image is preprocessed with the checkpoint's plans, given to the network at its own
size (the network batches and pads it, nothing is tiled), and the detections become an
instance label map (:func:`~medseg.models.detections_to_instances`) on the source grid.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from medseg.core import ConfigError
from medseg.inference._types import InferConfig, Prediction
from medseg.io import Volume
from medseg.models import build_autocast, detections_to_instances, resolve_device
from medseg.transforms import (
    Plans,
    build_preprocessing,
    resample_to_shape,
    run_chain,
    volume_to_case,
)

logger = logging.getLogger(__name__)


def is_instance_detector(network: torch.nn.Module) -> bool:
    """Whether ``network`` is a torchvision detector (lists of images in, detections out)."""
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

    return isinstance(network, GeneralizedRCNN)


def predict_instances(
    network: torch.nn.Module,
    volume: Volume,
    *,
    plans: Plans,
    config: InferConfig,
    case_id: str = "case",
) -> Prediction:
    """Segment the objects of one 2D image as an instance label map.

    Parameters
    ----------
    network
        A Mask R-CNN (e.g. ``Checkpoint.build()``); moved to the configured device.
    volume
        A 2D image as read by :func:`medseg.io.read_image` (``(column, row, 1[, C])``).
    plans
        The plans the network was trained with (normalisation, spacing).

    Returns
    -------
    Prediction
        ``labels``: uint16 instance map (0 background, 1..N by descending confidence) with
        the input's shape and affine; no probabilities.
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    autocast = build_autocast(device, config.precision)  # ConfigError: fp16 without CUDA
    case = volume_to_case(volume, case_id=case_id)
    if case.image.ndim != 3:
        raise ConfigError("the model segments 2D images; this input is 3D")
    if config.save_probabilities:
        logger.warning("case %s: instance models write no probabilities", case_id)
    item = run_chain(
        build_preprocessing(plans),
        {"image": case.image, "spacing_mm": list(case.spacing_mm)},
    )
    image = np.ascontiguousarray(np.swapaxes(np.asarray(item["image"], dtype=np.float32), 1, 2))
    network = network.to(device).eval()
    with torch.inference_mode(), autocast:
        detections = network([torch.as_tensor(image, device=device)])[0]
    instances = detections_to_instances(
        detections, shape=image.shape[1:], min_score=config.min_score
    ).T  # (row, column) -> (column, row)
    source = tuple(case.image.shape[1:])
    if instances.shape != source:
        instances = np.asarray(resample_to_shape(instances[None], source, is_label=True))[0]
    labels = Volume(
        array=np.ascontiguousarray(instances)[:, :, None],
        affine=volume.affine.copy(),
        metadata={"kind": "instances"},
    )
    seconds = time.perf_counter() - started
    logger.info("case %s: %d object(s) in %.1f s", case_id, int(instances.max(initial=0)), seconds)
    return Prediction(labels=labels, probabilities=None, seconds=seconds)
