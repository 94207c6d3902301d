"""Evaluation: segmentation metrics with stated definitions."""

from __future__ import annotations

from medseg.evaluation._overlap import compute_dice

__all__ = ["compute_dice"]
