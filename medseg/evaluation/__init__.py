"""Evaluation: segmentation metrics with stated definitions."""

from __future__ import annotations

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

__all__ = [
    "HIGHER_IS_BETTER",
    "METRIC_DEFINITIONS",
    "EmptyCase",
    "SegmentationMetrics",
    "SurfaceDistances",
    "compute_dice",
    "compute_label_metrics",
    "compute_segmentation_metrics",
    "compute_surface_distances",
]
