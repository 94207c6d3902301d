"""Evaluation: segmentation metrics with stated definitions, reports of many cases."""

from __future__ import annotations

from medseg.evaluation._cases import (
    CasePair,
    LabelsConfig,
    LoadedCase,
    case_id_of,
    find_case_pairs,
    load_case,
)
from medseg.evaluation._evaluate import (
    HEADLINE_METRICS,
    INSTANCE_METRICS,
    SEMANTIC_METRICS,
    CaseLabelResult,
    EvaluationKind,
    EvaluationResult,
    EvaluationSettings,
    MetricSet,
    evaluate_cases,
    evaluate_instance_cases,
    format_instance_summary,
    format_summary_table,
    summary_document,
    write_metrics_csv,
    write_summary_json,
)
from medseg.evaluation._instance import (
    INSTANCE_METRIC_DEFINITIONS,
    IOU_THRESHOLDS_50_95,
    InstanceCounts,
    InstanceMetrics,
    compute_average_precision,
    compute_instance_iou,
    compute_instance_metrics,
    match_instances,
    pool_instance_counts,
)
from medseg.evaluation._instance_errors import (
    SIZE_CLASSES_PX,
    InstanceErrors,
    compute_instance_errors,
)
from medseg.evaluation._overlap import compute_dice
from medseg.evaluation._regions import BRATS_REGIONS, compute_region_metrics
from medseg.evaluation._report import render_report_html, write_report_html
from medseg.evaluation._semantic import (
    HIGHER_IS_BETTER,
    METRIC_DEFINITIONS,
    EmptyCase,
    SegmentationMetrics,
    compute_label_metrics,
    compute_segmentation_metrics,
)
from medseg.evaluation._surface import SurfaceDistances, compute_surface_distances
from medseg.evaluation._vessel import (
    VESSEL_METRIC_DEFINITIONS,
    VesselMetrics,
    compute_auc_roc,
    compute_cldice,
    compute_vessel_metrics,
)

__all__ = [
    "BRATS_REGIONS",
    "HEADLINE_METRICS",
    "HIGHER_IS_BETTER",
    "INSTANCE_METRICS",
    "INSTANCE_METRIC_DEFINITIONS",
    "IOU_THRESHOLDS_50_95",
    "METRIC_DEFINITIONS",
    "SEMANTIC_METRICS",
    "SIZE_CLASSES_PX",
    "VESSEL_METRIC_DEFINITIONS",
    "CaseLabelResult",
    "CasePair",
    "EmptyCase",
    "EvaluationKind",
    "EvaluationResult",
    "EvaluationSettings",
    "InstanceCounts",
    "InstanceErrors",
    "InstanceMetrics",
    "LabelsConfig",
    "LoadedCase",
    "MetricSet",
    "SegmentationMetrics",
    "SurfaceDistances",
    "VesselMetrics",
    "case_id_of",
    "compute_auc_roc",
    "compute_average_precision",
    "compute_cldice",
    "compute_dice",
    "compute_instance_errors",
    "compute_instance_iou",
    "compute_instance_metrics",
    "compute_label_metrics",
    "compute_region_metrics",
    "compute_segmentation_metrics",
    "compute_surface_distances",
    "compute_vessel_metrics",
    "evaluate_cases",
    "evaluate_instance_cases",
    "find_case_pairs",
    "format_instance_summary",
    "format_summary_table",
    "load_case",
    "match_instances",
    "pool_instance_counts",
    "render_report_html",
    "summary_document",
    "write_metrics_csv",
    "write_report_html",
    "write_summary_json",
]
