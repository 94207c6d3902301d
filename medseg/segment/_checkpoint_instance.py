"""``nuclei_model``: a trained instance model (3-class U-Net + marker watershed), e.g. the
shipped ``nuclei``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from medseg.core import ConfigModel
from medseg.inference import (
    ComputePrecision,
    InferConfig,
    InstanceConfig,
    predict_volume,
    resolve_instance_config,
)
from medseg.io import Volume
from medseg.models import resolve_model_path
from medseg.segment._base import CaseImages, MapKind, Segmentation, Segmenter, SegmenterSpec
from medseg.segment._cache import cached_instance_model


class NucleiModelConfig(ConfigModel):
    """A trained instance model (3-class U-Net + marker watershed), e.g. the shipped ``nuclei``.

    ``model`` is a checkpoint file, a training run folder (relative paths are tried under the
    dataset root first) or a shipped model's name. ``instances`` overrides the watershed
    settings stored in the checkpoint.
    """

    model: str = "nuclei"
    device: str = "auto"
    precision: ComputePrecision = ComputePrecision.FP32
    overlap: float = Field(default=0.5, ge=0, lt=1)
    mirror: bool = Field(default=False, description="mirror test-time augmentation")
    instances: InstanceConfig | None = None


def segment_nuclei_with_model(image: Volume, *, config: NucleiModelConfig, root: Path) -> Volume:
    """Nuclei instances from a trained 3-class U-Net and its marker watershed.

    Returns a uint16 instance map (0 background, 1..N) on ``image``'s grid.
    """
    candidate = root / config.model
    path = resolve_model_path(candidate if candidate.exists() else config.model)
    checkpoint, network = cached_instance_model(str(path))
    infer = InferConfig(
        overlap=config.overlap,
        precision=config.precision,
        mirror=config.mirror,
        device=config.device,
    )
    prediction = predict_volume(
        network,
        image,
        plans=checkpoint.plans,
        config=infer,
        instances=resolve_instance_config(checkpoint, config.instances),
    )
    return prediction.labels


class CheckpointInstanceSegmenter(Segmenter):
    """The ``nuclei_model`` method: an instance map."""

    def __init__(self, config: NucleiModelConfig) -> None:
        self.config = config

    def segment(self, case: CaseImages) -> Segmentation:
        labels = segment_nuclei_with_model(case.image, config=self.config, root=case.root)
        return Segmentation(labels=labels, kind=MapKind.INSTANCE)


SPEC = SegmenterSpec(
    method="nuclei_model",
    section="nuclei_model",
    config_type=NucleiModelConfig,
    build=CheckpointInstanceSegmenter,  # type: ignore[arg-type]
    default_settings=True,
)
