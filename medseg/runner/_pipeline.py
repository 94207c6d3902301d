"""Pipeline definitions: ``pipelines/<task>.yaml`` validated into :class:`PipelineConfig`.

A pipeline names its dataset manifest, which cases to run, and its ordered stages
(ingest → segment → evaluate → export; tracking is done by the runner for the whole run).
Each stage is configured by its own section.
"""

from __future__ import annotations

import enum

from pydantic import Field, field_validator, model_validator

from medseg.core import ConfigModel
from medseg.inference import ComputePrecision, InstanceConfig, TumourSubregionConfig
from medseg.io import Split
from medseg.sam import IntensityConfig, Precision, PropagationConfig
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
    SAM_BOX_3D = "sam_box_3d"


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


class PromptSource(str, enum.Enum):
    """Where the 3D boxes of ``sam_box_3d`` come from.

    ``reference``: a simulated radiologist's box: the bounding box of the reference label,
    each in-plane side moved by a seeded random amount up to ``box_jitter_fraction`` of the
    box size (the slice range kept exact), as ``benchmarks/sam_accuracy.py`` does.
    ``file``: boxes or clicks from a prompt file (``medseg sam --prompts`` format), found
    by case id.
    """

    REFERENCE = "reference"
    FILE = "file"


class PromptedStructure(ConfigModel):
    """One structure segmented from one 3D box.

    ``reference_labels`` default to the dataset label called ``name``; ``output_label``
    (the value written in the prediction) defaults to the first reference label.
    """

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    reference_labels: list[int] | None = Field(default=None, min_length=1)
    output_label: int | None = Field(default=None, ge=1, le=65535)


class SamBox3DConfig(ConfigModel):
    """SAM (LiteMedSAM by default) propagated through a volume from one 3D box per structure,
    optionally split into brain-tumour sub-regions by intensity rules."""

    model: str = "litemedsam"
    checkpoint: str | None = None
    device: str = "auto"
    precision: Precision = Precision.BF16
    intensity: IntensityConfig = IntensityConfig()
    propagation: PropagationConfig = PropagationConfig()
    image_channel: str | None = Field(
        default=None,
        description="segment this one of the case's additional_images; null: the main image",
    )
    structures: list[PromptedStructure] = Field(min_length=1)
    prompts: PromptSource = PromptSource.REFERENCE
    prompt_file: str | None = Field(
        default=None, description="JSON prompt file (relative to the repository root)"
    )
    box_jitter_fraction: float = Field(default=0.05, ge=0.0, le=0.5)
    seed: int = Field(default=0, ge=0)
    max_cached_slices: int = Field(default=32, ge=1)
    subregions: TumourSubregionConfig | None = None

    @field_validator("structures", mode="before")
    @classmethod
    def _names_are_structures(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _file_prompts_need_a_file(self) -> SamBox3DConfig:
        if self.prompts is PromptSource.FILE and self.prompt_file is None:
            raise ValueError("prompts 'file' needs prompt_file")
        names = [s.name for s in self.structures]
        if len(set(names)) != len(names):
            raise ValueError("structure names must be unique")
        return self


class SegmentConfig(ConfigModel):
    """Which segmenter runs and its settings."""

    method: SegmentMethod
    sam: SamBoxConfig | None = None
    watershed: WatershedConfig = WatershedConfig()
    trained_model: TrainedModelConfig | None = None
    nuclei_model: NucleiModelConfig = NucleiModelConfig()
    sam_3d: SamBox3DConfig | None = None

    @model_validator(mode="after")
    def _method_has_settings(self) -> SegmentConfig:
        if self.method is SegmentMethod.SAM_REFERENCE_BOX and self.sam is None:
            raise ValueError("method sam_reference_box needs a 'sam' section with structures")
        if self.method is SegmentMethod.TRAINED_MODEL and self.trained_model is None:
            raise ValueError("method trained_model needs a 'trained_model' section with a model")
        if self.method is SegmentMethod.SAM_BOX_3D and self.sam_3d is None:
            raise ValueError("method sam_box_3d needs a 'sam_3d' section with structures")
        return self


class EvaluationKind(str, enum.Enum):
    """How predictions are scored against the reference."""

    SEMANTIC = "semantic"
    INSTANCE = "instance"
    VESSEL = "vessel"  # retina: F1, AUC, Se, Sp, Acc, clDice inside the case's roi (FOV)


class EvaluateConfig(ConfigModel):
    """Scoring of each case against its reference label.

    ``regions`` (semantic only) scores named unions of label ids instead of single labels,
    the same ids selecting the region in prediction and reference (BraTS: whole tumour
    ``[1, 2, 3, 4]``, tumour core ``[1, 3, 4]``, enhancing ``[4]``).
    """

    kind: EvaluationKind = EvaluationKind.SEMANTIC
    regions: dict[str, list[int]] | None = None

    @field_validator("regions")
    @classmethod
    def _regions_are_positive_ids(
        cls, regions: dict[str, list[int]] | None
    ) -> dict[str, list[int]] | None:
        for name, ids in (regions or {}).items():
            if not ids or min(ids) < 1:
                raise ValueError(f"region {name!r} must list label ids >= 1")
        return regions


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
