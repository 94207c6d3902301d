"""Axis reorientation of Volumes (permutations and flips only, no resampling), and the one
orientation-aware grid comparison every stage uses (:func:`reorient_like`)."""

from __future__ import annotations

import nibabel.orientations as nio
import numpy as np

from medseg.core import GeometryError
from medseg.io._volume import Volume


def axis_codes(volume: Volume) -> str:
    """Closest anatomical direction of each voxel axis in RAS+ terms, e.g. ``"LPS"``."""
    return "".join(nio.aff2axcodes(volume.affine))


def reorient(volume: Volume, codes: str) -> Volume:
    """Permute/flip the spatial axes so they point along ``codes`` (e.g. ``"LPS"``).

    The affine is updated so every voxel keeps its world position exactly; any channel
    axis after the three spatial ones is carried along.
    """
    if len(codes) != 3:
        raise GeometryError(f"orientation codes must have 3 letters, not {codes!r}")
    current = nio.io_orientation(volume.affine)
    target = nio.axcodes2ornt(tuple(codes.upper()))
    transform = nio.ornt_transform(current, target)
    spatial_shape = volume.spatial_shape
    array = nio.apply_orientation(volume.array, transform)
    affine = volume.affine @ nio.inv_ornt_aff(transform, spatial_shape)
    return Volume(array=np.ascontiguousarray(array), affine=affine, metadata=dict(volume.metadata))


def _describe_difference(reference: Volume, moved: Volume) -> str:
    """What differs between two grids once axis order and flips agree (for messages)."""
    parts = []
    if moved.spatial_shape != reference.spatial_shape:
        parts.append(f"shape {moved.spatial_shape} vs {reference.spatial_shape}")
    spacing = np.asarray(moved.spacing_mm)
    ref_spacing = np.asarray(reference.spacing_mm)
    if not np.allclose(spacing, ref_spacing, atol=1e-4):
        parts.append(
            "spacing "
            + "x".join(f"{s:.4g}" for s in spacing)
            + " vs "
            + "x".join(f"{s:.4g}" for s in ref_spacing)
            + " mm"
        )
    offset = float(np.linalg.norm(moved.affine[:3, 3] - reference.affine[:3, 3]))
    if offset > 1e-3:
        parts.append(f"first voxel {offset:.4g} mm apart")
    return "; ".join(parts) or "direction cosines differ"


def reorient_like(
    volume: Volume, reference: Volume, *, tolerance_mm: float = 1e-3, what: str = "mask"
) -> Volume:
    """Put ``volume`` on ``reference``'s voxel grid by axis permutations and flips alone.

    This is the one comparison of two grids in medseg: masks from another tool on the same
    physical grid in another axis order (dcm2niix's ``LAS`` against a DICOM series' ``LPS``,
    a TotalSegmentator mask against an RAS image) are matched exactly, voxel for voxel; no
    value is ever interpolated.

    Raises
    ------
    GeometryError
        If the grids differ physically (shape, spacing, origin or direction beyond
        ``tolerance_mm``): that would need a resample, which is never done silently. The
        message names what differs.
    """
    moved = reorient(volume, axis_codes(reference))
    worst = (
        float(np.max(np.abs(reference.affine - moved.affine)))
        if moved.spatial_shape == reference.spatial_shape
        else float("inf")
    )
    if worst > tolerance_mm:
        amount = f"by up to {worst:.4g} mm " if np.isfinite(worst) else ""
        raise GeometryError(
            f"{what} lies on another physical grid than the {_reference_name(what)}: "
            f"affine differs {amount}after matching axis order and flips "
            f"({_describe_difference(reference, moved)}; tolerance {tolerance_mm} mm). "
            "Axis order and flips are matched exactly; this needs a resample onto the "
            f"{_reference_name(what)} grid (nearest neighbour for labels), which medseg "
            "does not do silently"
        )
    return moved


def _reference_name(what: str) -> str:
    return "reference" if what == "prediction" else "image"
