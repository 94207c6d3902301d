"""Experiment tracking in MLflow (embedded SQLite store by default)."""

from __future__ import annotations

from medseg.tracking._mlflow import Tracker, check_no_phi, default_tracking_uri, start_tracking

__all__ = ["Tracker", "check_no_phi", "default_tracking_uri", "start_tracking"]
