"""Pipeline definitions: ``pipelines/<task>.yaml`` validated into :class:`PipelineConfig`.

A pipeline names its dataset manifest, which cases to run, and its ordered stages
(ingest → segment → evaluate → export; tracking is done by the runner for the whole run).
Each stage is configured by its own section.
"""

from __future__ import annotations

import enum

from pydantic import Field, field_validator, model_validator

from medseg.core import ConfigModel
from medseg.inference import ComputePrecision, InstanceConfig, Precision
from medseg.io import Split
from medseg.transforms import CTWindow


class StageName(str, enum.Enum):
    """Pipeline stages, in the only order they may run."""

    INGEST = "ingest"
    SEGMENT = "segment"
    EVALUATE = "evaluate"
    EXPORT = "export"


STAGE_ORDER = tuple(StageName)


class SegmentMethod(str, enum.Enum):
    """Segmenters the runner can call."""

    SAM_REFERENCE_BOX = "sam_reference_box"
    OTSU_WATERSHED = "otsu_watershed"
    TRAINED_MODEL = "trained_model"
    NUCLEI_MODEL = "nuclei_model"


class SamBoxConfig(ConfigModel):
    """LiteMedSAM prompted with a box from the reference label on each 2D slice."""

    model: str = "litemedsam"
    checkpoint: str | None = None
    device: str = "auto"
    precision: Precision = Precision.FP32
    window: CTWindow | None = Field(
        default=None,
        description="CT window; null scales MR/microscopy by percentiles and passes RGB through",
    )
    box_margin_px: int = Field(default=5, ge=0, le=100)
    structures: list[str] = Field(default_factory=list, min_length=1)


class WatershedConfig(ConfigModel):
    """Classical nuclei baseline: Otsu threshold, distance transform, marker watershed."""

    smoothing_sigma_px: float = Field(default=1.0, ge=0)
    min_distance_px: int = Field(default=4, ge=1)
    min_size_px: int = Field(default=15, ge=0)


class TrainedModelConfig(ConfigModel):
    """A network trained with ``medseg train``, run by sliding window (``predict_volume``).

    ``model`` is a checkpoint file or run folder (relative to the repository root or
    absolute) or the name of a shipped model (``medseg/models/shipped/<name>``). The
    model's classes are mapped onto the dataset's labels by name.
    """

    model: str = Field(min_length=1)
    device: str = "auto"
    precision: ComputePrecision = ComputePrecision.FP32
    overlap: float = Field(default=0.5, ge=0, lt=1)
    sw_batch_size: int = Field(default=4, ge=1)
    mirror: bool = Field(default=False, description="mirror test-time augmentation")


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


class SegmentConfig(ConfigModel):
    """Which segmenter runs and its settings."""

    method: SegmentMethod
    sam: SamBoxConfig | None = None
    watershed: WatershedConfig = WatershedConfig()
    trained_model: TrainedModelConfig | None = None
    nuclei_model: NucleiModelConfig = NucleiModelConfig()

    @model_validator(mode="after")
    def _method_has_settings(self) -> SegmentConfig:
        if self.method is SegmentMethod.SAM_REFERENCE_BOX and self.sam is None:
            raise ValueError("method sam_reference_box needs a 'sam' section with structures")
        if self.method is SegmentMethod.TRAINED_MODEL and self.trained_model is None:
            raise ValueError("method trained_model needs a 'trained_model' section with a model")
        return self


class EvaluationKind(str, enum.Enum):
    """How predictions are scored against the reference."""

    SEMANTIC = "semantic"
    INSTANCE = "instance"
    VESSEL = "vessel"  # retina: F1, AUC, Se, Sp, Acc, clDice inside the case's roi (FOV)


class EvaluateConfig(ConfigModel):
    """Scoring of each case against its reference label."""

    kind: EvaluationKind = EvaluationKind.SEMANTIC


class ExportConfig(ConfigModel):
    """Per-case files written for review."""

    mask_nifti: bool = True
    image_nifti: bool = Field(
        default=False,
        description="also write the image as read "
        "(e.g. a converted DICOM series), for viewing beside the mask",
    )
    overlay_png: bool = True


class CaseSelection(ConfigModel):
    """Which cases of the dataset to run: by split and/or ids, optionally the first N."""

    split: Split | None = None
    ids: list[str] | None = None
    limit: int | None = Field(default=None, ge=1)


class PipelineTrackingConfig(ConfigModel):
    """MLflow settings; ``tracking_uri: null`` means ``sqlite:///<out>/mlflow.db``."""

    tracking_uri: str | None = None
    experiment: str | None = None


class PipelineConfig(ConfigModel):
    """One end-to-end task pipeline."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str
    dataset: str
    cases: CaseSelection = CaseSelection()
    stages: list[StageName]
    segment: SegmentConfig
    evaluate: EvaluateConfig = EvaluateConfig()
    export: ExportConfig = ExportConfig()
    tracking: PipelineTrackingConfig = PipelineTrackingConfig()

    @field_validator("stages")
    @classmethod
    def _stages_in_order(cls, stages: list[StageName]) -> list[StageName]:
        if len(set(stages)) != len(stages):
            raise ValueError("each stage may appear once")
        positions = [STAGE_ORDER.index(stage) for stage in stages]
        if positions != sorted(positions):
            raise ValueError(
                f"stages must follow the order {' → '.join(s.value for s in STAGE_ORDER)}"
            )
        for required in (StageName.INGEST, StageName.SEGMENT):
            if required not in stages:
                raise ValueError(f"stage {required.value!r} is required")
        return stages
