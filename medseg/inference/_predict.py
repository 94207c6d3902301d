"""Whole-image prediction from a checkpoint: plans-based preprocessing, sliding window,
inverse resampling onto the source grid and per-class postprocessing (or, for an instance
model, the marker watershed of :func:`~medseg.inference.label_instances`).

Memory: the only full-size float32 probability volume is the sliding-window output on the
network's grid; it is resampled to the source grid one channel at a time (running argmax),
and optional probabilities are kept as float16.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.core import ConfigError, atomic_output, parse_config
from medseg.inference._instance_predict import is_instance_detector, predict_instances
from medseg.inference._instances import (
    InstanceConfig,
    choose_instance_zoom,
    label_instances,
    resolve_instance_config,
    select_instance_config,
)
from medseg.inference._postprocess import LabelPostprocess, postprocess_labels
from medseg.inference._sliding_window import (
    SlidingWindowConfig,
    predict_sliding_window,
    predict_sliding_window_with_disagreement,
)
from medseg.inference._types import InferConfig, Prediction
from medseg.io import Volume
from medseg.models import Checkpoint, Precision, resolve_device
from medseg.transforms import (
    Plans,
    build_preprocessing,
    resample_to_shape,
    run_chain,
    volume_to_case,
)

logger = logging.getLogger(__name__)


def _rules(plans: Plans, postprocess: dict[str, LabelPostprocess]) -> dict[int, LabelPostprocess]:
    by_name = {name: int(idx) for idx, name in plans.labels.items()}
    rules = {}
    for name, rule in postprocess.items():
        if name not in by_name:
            from medseg.core import look_up_option

            look_up_option(name, by_name, what="label in postprocess")
        rules[by_name[name]] = rule
    return rules


def predict_volume(
    network: torch.nn.Module,
    volume: Volume,
    *,
    plans: Plans,
    config: InferConfig,
    case_id: str = "case",
    instances: InstanceConfig | None = None,
) -> Prediction:
    """Segment one image with a trained network.

    Parameters
    ----------
    network
        Semantic segmenter in eval mode (e.g. ``Checkpoint.build()``); it is moved to the
        configured device.
    volume
        The image as read by :func:`medseg.io.read_image`, with its source geometry.
    plans
        The plans the network was trained with (spacing, normalisation, patch size).
    instances
        For an instance model (see :func:`resolve_instance_config`): turn the background /
        interior / boundary probabilities into an instance map on the source grid.

    Returns
    -------
    Prediction
        Labels (and optionally probabilities) on the input's grid.
    """
    if is_instance_detector(network):  # Mask R-CNN: instances, not a sliding window
        return predict_instances(network, volume, plans=plans, config=config, case_id=case_id)
    started = time.perf_counter()
    device = resolve_device(config.device)
    if config.precision is Precision.FP16 and device.type != "cuda":
        raise ConfigError("precision fp16 needs CUDA; use bf16 or fp32 on CPU")
    case = volume_to_case(volume, case_id=case_id)
    if case.image.ndim - 1 != plans.spatial_dims:
        raise ConfigError(
            f"the model was trained on {plans.spatial_dims}D images; this input is "
            f"{case.image.ndim - 1}D"
        )
    item = run_chain(
        build_preprocessing(plans), {"image": case.image, "spacing_mm": list(case.spacing_mm)}
    )
    image = torch.as_tensor(np.asarray(item["image"], dtype=np.float32))
    del item
    network = network.to(device).eval()
    sliding = SlidingWindowConfig(
        roi_size=plans.patch_size,
        overlap=config.overlap,
        sw_batch_size=config.sw_batch_size,
        precision=config.precision,
        mirror_axes=list(range(plans.spatial_dims)) if config.mirror else [],
    )
    disagreement = None
    if config.confidence and config.mirror:
        probabilities, disagreement = predict_sliding_window_with_disagreement(
            network, image, config=sliding, device=device
        )
    else:
        probabilities = predict_sliding_window(network, image, config=sliding, device=device)
    del image
    source_spatial = case.image.shape[1:]
    keep = config.save_probabilities or config.confidence or instances is not None
    classes = {0, *(int(k) for k in plans.labels)}
    labels, probs16 = _to_source_grid(probabilities, source_spatial, keep=keep, classes=classes)
    del probabilities
    confidence = disagreement_map = None
    if config.confidence and probs16 is not None:
        confidence = probs16[..., sorted(classes)].max(axis=-1).astype(np.float32)
        if disagreement is not None:
            if tuple(disagreement.shape) != tuple(source_spatial):
                disagreement = resample_to_shape(
                    disagreement[None], source_spatial, is_label=False
                )[0]
            disagreement_map = np.clip(np.asarray(disagreement.cpu(), dtype=np.float32), 0, 1)
    kind = "labels"
    if instances is not None and probs16 is not None:
        instances = select_instance_config(np.asarray(volume.array), config=instances)
        labels = label_instances(np.moveaxis(probs16, -1, 0), config=instances)
        kind = "instances"
        zoom = choose_instance_zoom(labels, config=instances)
        if zoom != 1.0 and plans.spatial_dims == 2:
            labels = _predict_zoomed_instances(
                network, volume, zoom, plans=plans, config=config, instances=instances
            )
            logger.info("case %s: segmented again at %.2fx (nucleus size)", case_id, zoom)
        if not config.save_probabilities:
            probs16 = None
    else:
        labels = postprocess_labels(labels, rules=_rules(plans, config.postprocess)).astype(
            np.uint8
        )
    if not config.save_probabilities and instances is None:
        probs16 = None
    if plans.spatial_dims == 2:
        labels = labels[:, :, None]
        probs16 = probs16[:, :, None] if probs16 is not None else None
        confidence = confidence[:, :, None] if confidence is not None else None
        if disagreement_map is not None:
            disagreement_map = disagreement_map[:, :, None]
    label_volume = Volume(array=labels, affine=volume.affine.copy(), metadata={"kind": kind})
    prob_volume = (
        Volume(array=probs16, affine=volume.affine.copy(), metadata={"kind": "probabilities"})
        if probs16 is not None
        else None
    )
    seconds = time.perf_counter() - started
    logger.info("case %s: predicted in %.1f s", case_id, seconds)
    extra = {
        name: Volume(array=array, affine=volume.affine.copy(), metadata={"kind": name})
        for name, array in (("confidence", confidence), ("disagreement", disagreement_map))
        if array is not None
    }
    return Prediction(labels=label_volume, probabilities=prob_volume, seconds=seconds, **extra)


def zoom_image(volume: Volume, zoom: float) -> Volume:
    """A 2D image ``(column, row, 1[, C])`` resampled (linear) to ``zoom`` times its size.

    The affine is kept as it is, so that the plans' resampling leaves the zoom in place: the
    network sees the objects ``zoom`` times larger. For the zoomed second pass only.
    """
    from scipy import ndimage

    array = np.asarray(volume.array)
    factors = (zoom, zoom) + (1.0,) * (array.ndim - 2)
    zoomed = ndimage.zoom(
        array.astype(np.float32), factors, order=1, grid_mode=True, mode="nearest"
    )
    return Volume(array=zoomed, affine=volume.affine.copy(), metadata=dict(volume.metadata))


def _predict_zoomed_instances(
    network: torch.nn.Module,
    volume: Volume,
    zoom: float,
    *,
    plans: Plans,
    config: InferConfig,
    instances: InstanceConfig,
) -> np.ndarray:
    """Instances of a 2D image segmented at ``zoom`` times its size, on its own grid."""
    single = instances.model_copy(update={"zoom_in_below_area_px": 0, "zoom_out_above_area_px": 0})
    inner = config.model_copy(update={"save_probabilities": False})
    zoomed = predict_volume(network, zoom_image(volume, zoom), plans=plans, config=inner,
                            instances=single)  # fmt: skip
    array = np.asarray(zoomed.labels.array)[:, :, 0]
    shape = tuple(int(n) for n in np.asarray(volume.array).shape[:2])
    back = np.asarray(resample_to_shape(array[None].astype(np.int32), shape, is_label=True))[0]
    return relabel_instances(back)


def relabel_instances(instances: np.ndarray) -> np.ndarray:
    """Ids renumbered 1..N (objects lost in a resampling leave no gap), uint16 or int32."""
    from skimage.segmentation import relabel_sequential

    relabelled, _, _ = relabel_sequential(np.asarray(instances).astype(np.int64, copy=False))
    dtype = np.uint16 if int(relabelled.max(initial=0)) < 2**16 else np.int32
    return relabelled.astype(dtype)


def _to_source_grid(
    probabilities: torch.Tensor,
    shape: tuple[int, ...],
    *,
    keep: bool,
    classes: set[int] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Channel-by-channel resampling with a running argmax (one channel of float32 extra).

    Only output channels in ``classes`` (default: all) can win the argmax: a network whose
    labels skip an index (BraTS: 1, 2, 4) never writes the unused one.
    """
    same = tuple(probabilities.shape[1:]) == tuple(shape)
    labels = np.zeros(shape, dtype=np.uint8)
    best = np.full(shape, -1.0, dtype=np.float32)
    kept = np.empty((*shape, probabilities.shape[0]), dtype=np.float16) if keep else None
    for channel in range(probabilities.shape[0]):
        prob = probabilities[channel : channel + 1]
        if not same:
            prob = resample_to_shape(prob, shape, is_label=False)
        values = np.asarray(prob[0].cpu(), dtype=np.float32)
        if kept is not None:
            kept[..., channel] = values
        if classes is not None and channel not in classes:
            continue
        better = values > best
        labels[better] = channel
        best[better] = values[better]
    return labels, kept


def resolve_infer_config(
    checkpoint: Checkpoint, settings: Mapping[str, Any], *, source: str | Path | None = None
) -> InferConfig:
    """The inference settings for ``checkpoint``: ``settings`` over the model's own defaults.

    A shipped model stores the settings it was tuned with (``Checkpoint.inference_defaults``,
    e.g. mirror TTA for ``nuclei``), so that running it without options gives the accuracy its
    model card reports; any key in ``settings`` (a config file, command-line options) wins.

    Raises
    ------
    ConfigError
        If the merged settings are not a valid :class:`InferConfig`.
    """
    merged = {**checkpoint.inference_defaults, **settings}
    return parse_config(InferConfig, merged, source=source)


def predict_with_checkpoint(
    checkpoint: Checkpoint, volume: Volume, *, config: InferConfig, case_id: str = "case"
) -> Prediction:
    """:func:`predict_volume` with the network and plans stored in ``checkpoint``; an
    instance model's output is its instance map (:func:`resolve_instance_config`)."""
    network = checkpoint.build(device="cpu")
    return predict_volume(
        network,
        volume,
        plans=checkpoint.plans,
        config=config,
        case_id=case_id,
        instances=resolve_instance_config(checkpoint, config.instances),
    )


def write_probabilities(
    probabilities: Volume,
    path: str | Path,
    *,
    label_names: dict[int, str],
    overwrite: bool = False,
) -> Path:
    """Write float16 probabilities atomically as a compressed NumPy ``.npz``.

    NIfTI (nibabel) has no float16 type, so the file holds ``probabilities``
    ``(*spatial, C)`` float16, ``affine`` (4×4 voxel→RAS mm, the source grid's) and
    ``class_names`` (index 0 is ``background``).
    """
    names = ["background"] + [label_names.get(i, f"class_{i}") for i in range(1, 256)]
    n_classes = probabilities.array.shape[-1]
    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "wb") as stream:
        np.savez_compressed(
            stream,
            probabilities=probabilities.array.astype(np.float16, copy=False),
            affine=probabilities.affine,
            class_names=np.asarray(names[:n_classes]),
        )
    return Path(path)
