"""Axis reorientation of Volumes (permutations and flips only, no resampling)."""

from __future__ import annotations

import nibabel.orientations as nio
import numpy as np

from medseg.core import GeometryError
from medseg.io._volume import Volume, check_same_grid


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


def reorient_like(
    volume: Volume, reference: Volume, *, tolerance_mm: float = 1e-3, what: str = "mask"
) -> Volume:
    """Reorient ``volume`` onto ``reference``'s voxel grid; raise GeometryError if it
    cannot be matched by axis permutations and flips alone."""
    moved = reorient(volume, axis_codes(reference))
    check_same_grid(reference, moved, tolerance_mm=tolerance_mm, what=what)
    return moved
