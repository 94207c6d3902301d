"""Exports for review: overlays (DICOM SEG, RTSTRUCT and Slicer files come here too)."""

from __future__ import annotations

from medseg.export._overlay import write_contour_overlay

__all__ = ["write_contour_overlay"]
