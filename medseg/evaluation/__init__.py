"""Evaluation: segmentation metrics with stated definitions."""

from __future__ import annotations

from medseg.evaluation._instance import (
    INSTANCE_METRIC_DEFINITIONS,
    IOU_THRESHOLDS_50_95,
    InstanceCounts,
    InstanceMetrics,
    compute_instance_iou,
    compute_instance_metrics,
    match_instances,
)
from medseg.evaluation._overlap import compute_dice
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
    "HIGHER_IS_BETTER",
    "INSTANCE_METRIC_DEFINITIONS",
    "IOU_THRESHOLDS_50_95",
    "METRIC_DEFINITIONS",
    "VESSEL_METRIC_DEFINITIONS",
    "EmptyCase",
    "InstanceCounts",
    "InstanceMetrics",
    "SegmentationMetrics",
    "SurfaceDistances",
    "VesselMetrics",
    "compute_auc_roc",
    "compute_cldice",
    "compute_dice",
    "compute_instance_iou",
    "compute_instance_metrics",
    "compute_label_metrics",
    "compute_segmentation_metrics",
    "compute_surface_distances",
    "compute_vessel_metrics",
    "match_instances",
]
