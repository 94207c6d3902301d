"""Experiment tracking in MLflow (embedded SQLite store by default)."""

from __future__ import annotations

from medseg.tracking._evaluation import (
    aggregate_metrics,
    check_case_ids,
    describe_code_version,
    log_evaluation,
)
from medseg.tracking._mlflow import (
    Tracker,
    check_no_phi,
    default_tracking_uri,
    format_run_view,
    start_tracking,
)

__all__ = [
    "Tracker",
    "aggregate_metrics",
    "check_case_ids",
    "check_no_phi",
    "default_tracking_uri",
    "describe_code_version",
    "format_run_view",
    "log_evaluation",
    "start_tracking",
]
