"""Pipeline runner: ``pipelines/<task>.yaml`` over a dataset's cases, resumable, on Dask."""

from __future__ import annotations

from medseg.runner._batch import (
    BatchSummary,
    CaseOutcome,
    run_case,
    run_pipeline,
    select_cases,
)
from medseg.runner._pipeline import (
    STAGE_ORDER,
    CaseSelection,
    EvaluateConfig,
    EvaluationKind,
    ExportConfig,
    NucleiModelConfig,
    PipelineConfig,
    PipelineTrackingConfig,
    PromptedStructure,
    PromptSource,
    SamBox3DConfig,
    SamBoxConfig,
    SegmentConfig,
    SegmentMethod,
    StageName,
    TrainedModelConfig,
    WatershedConfig,
)
from medseg.runner._report import REPORT_NAME, build_run_evaluation, write_run_report
from medseg.runner._schemas import CONFIG_KINDS, config_schema
from medseg.runner._stages import CaseContext, case_images, segment_with_3d_boxes
from medseg.runner._state import CaseRecord, CaseStateStore, CaseStatus
from medseg.runner._trained import compute_case_vessel_metrics
from medseg.segment import (
    segment_nuclei_watershed,
    segment_nuclei_with_model,
    segment_with_reference_boxes,
    segment_with_trained_model,
    simulate_box_prompts,
)

__all__ = [
    "CONFIG_KINDS",
    "REPORT_NAME",
    "STAGE_ORDER",
    "BatchSummary",
    "CaseContext",
    "CaseOutcome",
    "CaseRecord",
    "CaseSelection",
    "CaseStateStore",
    "CaseStatus",
    "EvaluateConfig",
    "EvaluationKind",
    "ExportConfig",
    "NucleiModelConfig",
    "PipelineConfig",
    "PipelineTrackingConfig",
    "PromptSource",
    "PromptedStructure",
    "SamBox3DConfig",
    "SamBoxConfig",
    "SegmentConfig",
    "SegmentMethod",
    "StageName",
    "TrainedModelConfig",
    "WatershedConfig",
    "build_run_evaluation",
    "case_images",
    "compute_case_vessel_metrics",
    "config_schema",
    "run_case",
    "run_pipeline",
    "segment_nuclei_watershed",
    "segment_nuclei_with_model",
    "segment_with_3d_boxes",
    "segment_with_reference_boxes",
    "segment_with_trained_model",
    "select_cases",
    "simulate_box_prompts",
    "write_run_report",
]
