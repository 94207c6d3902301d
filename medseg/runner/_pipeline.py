"""Pipeline definitions: ``pipelines/<task>.yaml`` validated into :class:`PipelineConfig`.

A pipeline names its dataset manifest, which cases to run, and its ordered stages
(ingest → segment → evaluate → export; tracking is done by the runner for the whole run).
Each stage is configured by its own section; ``segment:`` (:class:`SegmentConfig`) comes from
the segmenter registry in :mod:`medseg.segment`.
"""

from __future__ import annotations

import enum

from pydantic import Field, field_validator

from medseg.core import ConfigModel
from medseg.evaluation import QCThresholds
from medseg.io import Split
from medseg.segment import (  # noqa: F401  (the segment sections, re-exported by medseg.runner)
    NucleiModelConfig,
    PromptedStructure,
    PromptSource,
    SamBox3DConfig,
    SamBoxConfig,
    SegmentConfig,
    SegmentMethod,
    TrainedModelConfig,
    WatershedConfig,
)


class StageName(str, enum.Enum):
    """Pipeline stages, in the only order they may run."""

    INGEST = "ingest"
    SEGMENT = "segment"
    EVALUATE = "evaluate"
    EXPORT = "export"


STAGE_ORDER = tuple(StageName)


class EvaluationKind(str, enum.Enum):
    """How predictions are scored against the reference."""

    SEMANTIC = "semantic"
    INSTANCE = "instance"
    VESSEL = "vessel"  # retina: F1, AUC, Se, Sp, Acc, clDice inside the case's roi (FOV)


class EvaluateConfig(ConfigModel):
    """Scoring of each case against its reference label.

    ``regions`` (semantic only) scores named unions of label ids instead of single labels,
    the same ids selecting the region in prediction and reference (BraTS: whole tumour
    ``[1, 2, 3, 4]``, tumour core ``[1, 3, 4]``, enhancing ``[4]``). ``qc``: thresholds
    of the per-structure QC flags (:class:`medseg.evaluation.QCThresholds`), computed
    after the segment stage (``qc.json``) and added to ``metrics.json``.
    """

    kind: EvaluationKind = EvaluationKind.SEMANTIC
    regions: dict[str, list[int]] | None = None
    qc: QCThresholds = QCThresholds()

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
    confidence_nifti: bool = Field(
        default=True,
        description="confidence.nii.gz (and tta_disagreement.nii.gz) where the segmenter "
        "gives a confidence",
    )
    confidence_seg: bool = Field(
        default=True,
        description="confidence_seg.dcm, a FRACTIONAL SEG (PROBABILITY) of each structure, "
        "where the case's image is a DICOM series",
    )
    dicom_seg: bool = Field(
        default=False,
        description="also write the label map as a DICOM SEG (seg.dcm) for cases whose image "
        "is a DICOM series (blank source UIDs are completed; the completed series is "
        "written to source_dicom/)",
    )


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
