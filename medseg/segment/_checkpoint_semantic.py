"""``trained_model``: a network trained with ``medseg train``, run by sliding window, its
classes mapped onto the dataset's labels by name."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from pydantic import Field

from medseg.core import ConfigError, ConfigModel, InputError
from medseg.inference import InferConfig, Prediction, predict_volume
from medseg.io import Volume
from medseg.models import Precision, resolve_model_path
from medseg.segment._base import (
    CaseImages,
    Confidence,
    MapKind,
    Segmentation,
    Segmenter,
    SegmenterSpec,
)
from medseg.segment._cache import cached_network
from medseg.transforms import Plans


class TrainedModelConfig(ConfigModel):
    """A network trained with ``medseg train``, run by sliding window (``predict_volume``).

    ``model`` is a checkpoint file or run folder (relative to the repository root or
    absolute) or the name of a shipped model (``medseg/models/shipped/<name>``). The
    model's classes are mapped onto the dataset's labels by name.
    """

    model: str = Field(min_length=1)
    device: str = "auto"
    precision: Precision = Precision.FP32
    overlap: float = Field(default=0.5, ge=0, lt=1)
    sw_batch_size: int = Field(default=4, ge=1)
    mirror: bool = Field(default=False, description="mirror test-time augmentation")
    confidence: bool = Field(
        default=True,
        description="per-voxel confidence (softmax) and, with mirror, the TTA disagreement",
    )


def resolve_pipeline_model(reference: str, *, root: Path) -> Path:
    """A checkpoint from a path relative to ``root``, an absolute path or a shipped name."""
    relative = root / reference
    if not Path(reference).is_absolute() and relative.exists():
        return resolve_model_path(relative)
    return resolve_model_path(reference)


def _label_map(plans: Plans, labels: Mapping[int, str]) -> dict[int, int]:
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
    image: Volume, *, config: TrainedModelConfig, labels: Mapping[int, str], root: Path
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
    labels_volume, probabilities, _, _ = _predict_mapped(
        image, config=config, labels=labels, root=root
    )
    return labels_volume, probabilities


def _predict_mapped(
    image: Volume, *, config: TrainedModelConfig, labels: Mapping[int, str], root: Path
) -> tuple[Volume, Volume, Prediction, dict[int, int]]:
    """Labels (dataset ids), probabilities, the raw prediction and class → label id."""
    path = resolve_pipeline_model(config.model, root=root)
    network, plans = cached_network(str(path.resolve()), "cpu")
    infer = InferConfig(
        overlap=config.overlap,
        sw_batch_size=config.sw_batch_size,
        precision=config.precision,
        mirror=config.mirror,
        device=config.device,
        save_probabilities=True,
        confidence=config.confidence,
    )
    prediction = predict_volume(network, image, plans=plans, config=infer)
    if prediction.probabilities is None:  # save_probabilities is set: never happens
        raise InputError("the prediction returned no probabilities")
    mapping = _label_map(plans, labels)
    classes = prediction.labels.array
    mapped = np.zeros(classes.shape, dtype=np.uint8 if max(mapping.values()) < 256 else np.uint16)
    for index, label_id in mapping.items():
        mapped[classes == index] = label_id
    return prediction.labels.with_array(mapped), prediction.probabilities, prediction, mapping


def _confidence(prediction: Prediction, mapping: Mapping[int, int], *, mirror: bool) -> Confidence:
    """Per-structure softmax probabilities (dataset label ids) and the TTA disagreement."""
    probabilities = prediction.probabilities
    if probabilities is None:  # pragma: no cover - always kept by _predict_mapped
        raise InputError("the prediction returned no probabilities")
    channels = sorted(index for index in mapping if index > 0)
    return Confidence(
        probability=probabilities.with_array(probabilities.array[..., channels]),
        structure_ids=tuple(mapping[index] for index in channels),
        source="softmax_tta" if mirror else "softmax",
        disagreement=prediction.disagreement,
    )


class CheckpointSemanticSegmenter(Segmenter):
    """The ``trained_model`` method: a label map of dataset ids plus class probabilities."""

    def __init__(self, config: TrainedModelConfig) -> None:
        self.config = config

    def segment(self, case: CaseImages) -> Segmentation:
        labels, probabilities, prediction, mapping = _predict_mapped(
            case.image, config=self.config, labels=case.labels, root=case.root
        )
        present = {int(v) for v in np.unique(labels.array)} - {0}
        structures = {i: name for i, name in case.labels.items() if i in present}
        confidence = (
            _confidence(prediction, mapping, mirror=self.config.mirror)
            if self.config.confidence
            else None
        )
        return Segmentation(
            labels=labels,
            kind=MapKind.SEMANTIC,
            structures=structures,
            probabilities=probabilities,
            confidence=confidence,
        )


SPEC = SegmenterSpec(
    method="trained_model",
    section="trained_model",
    config_type=TrainedModelConfig,
    build=CheckpointSemanticSegmenter,  # type: ignore[arg-type]
    section_hint=" with a model",
)
