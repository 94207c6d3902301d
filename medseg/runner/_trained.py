"""Runner stages for trained semantic segmenters: ``trained_model`` segmentation (a
checkpoint or shipped model through :func:`medseg.inference.predict_volume`) and ``vessel``
evaluation (retina: pixel and topology metrics inside the case's field-of-view mask).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch

from medseg.core import ConfigError, InputError
from medseg.evaluation import compute_vessel_metrics
from medseg.inference import InferConfig, predict_volume
from medseg.io import Case, Volume, collapse_grey_channels, read_image, reorient_like
from medseg.models import load_checkpoint, resolve_model_path
from medseg.runner._pipeline import TrainedModelConfig
from medseg.transforms import Plans

logger = logging.getLogger(__name__)

#: Vessel metrics written per case and averaged over the run.
VESSEL_LOGGED = ("f1", "auc_roc", "sensitivity", "specificity", "accuracy", "cldice")


def resolve_pipeline_model(reference: str, *, root: Path) -> Path:
    """A checkpoint from a path relative to ``root``, an absolute path or a shipped name."""
    relative = root / reference
    if not Path(reference).is_absolute() and relative.exists():
        return resolve_model_path(relative)
    return resolve_model_path(reference)


@functools.lru_cache(maxsize=2)
def cached_network(checkpoint_path: str, device: str) -> tuple[torch.nn.Module, Plans]:
    """One checkpoint load per worker process, not per case."""
    checkpoint = load_checkpoint(checkpoint_path)
    return checkpoint.build(device=device), checkpoint.plans


def _label_map(plans: Plans, labels: dict[int, str]) -> dict[int, int]:
    """Model class index → dataset label id, matched by name."""
    by_name = {name: label_id for label_id, name in labels.items()}
    unknown = [name for name in plans.labels.values() if name not in by_name]
    if unknown:
        raise ConfigError(
            f"the model's classes {sorted(plans.labels.values())} are not all in the "
            f"dataset's labels {sorted(by_name)} (missing: {', '.join(unknown)})"
        )
    return {int(index): by_name[name] for index, name in plans.labels.items()}


def segment_with_trained_model(
    image: Volume, *, config: TrainedModelConfig, labels: dict[int, str], root: Path
) -> tuple[Volume, Volume]:
    """Predict a label map and class probabilities with a trained checkpoint.

    Parameters
    ----------
    image
        The case's image as read (source geometry).
    labels
        The dataset's label ids and names; the model's classes are mapped onto them by
        name.
    root
        Folder a relative ``config.model`` path starts from.

    Returns
    -------
    labels, probabilities
        Label map (dataset ids) on the image's grid, and float16 probabilities
        ``(*spatial, C)`` in the model's class order (index 0 background).
    """
    path = resolve_pipeline_model(config.model, root=root)
    network, plans = cached_network(str(path.resolve()), "cpu")
    infer = InferConfig(
        overlap=config.overlap,
        sw_batch_size=config.sw_batch_size,
        precision=config.precision,
        mirror=config.mirror,
        device=config.device,
        save_probabilities=True,
    )
    prediction = predict_volume(network, image, plans=plans, config=infer)
    if prediction.probabilities is None:  # save_probabilities is set: never happens
        raise InputError("the prediction returned no probabilities")
    mapping = _label_map(plans, labels)
    classes = prediction.labels.array
    mapped = np.zeros(classes.shape, dtype=np.uint8 if max(mapping.values()) < 256 else np.uint16)
    for index, label_id in mapping.items():
        mapped[classes == index] = label_id
    return prediction.labels.with_array(mapped), prediction.probabilities


def read_field_of_view(case: Case, *, root: Path, image: Volume) -> Volume | None:
    """The case's ROI/FOV mask (manifest ``roi``) on the image's grid, or None."""
    if case.roi is None:
        return None
    path = root / case.roi
    fov = read_image(path)
    fov = fov.with_array(collapse_grey_channels(fov.array, what="field-of-view mask", path=path))
    return reorient_like(fov, image, what="field-of-view mask")


def _squeeze_2d(array: np.ndarray, image: Volume) -> np.ndarray:
    """2D images are one-slice volumes; metrics (clDice skeletons) need the 2D plane."""
    return array[:, :, 0] if image.spatial_shape[2] == 1 else array


def compute_case_vessel_metrics(
    prediction: Volume,
    reference: Volume,
    *,
    image: Volume,
    fov: Volume | None,
    probabilities: Volume | None,
) -> dict[str, float]:
    """Vessel metrics of one case: every non-zero label is vessel, scored inside the FOV.

    The vessel probability is ``1 - p(background)`` of ``probabilities`` (channel 0 is
    background), so AUC-ROC works for two-class and multi-class models alike; without
    probabilities AUC is NaN. A case without a FOV mask is scored over the whole image.
    """
    vessel_probability = None
    if probabilities is not None:
        channels = np.asarray(probabilities.array)
        vessel_probability = _squeeze_2d(1.0 - channels[..., 0].astype(np.float32), image)
    metrics = compute_vessel_metrics(
        _squeeze_2d(np.asarray(prediction.array) > 0, image),
        _squeeze_2d(np.asarray(reference.array) > 0, image),
        fov=_squeeze_2d(np.asarray(fov.array) > 0, image) if fov is not None else None,
        probabilities=vessel_probability,
    )
    return metrics.to_dict()
