"""``medseg convert``: any supported input to NIfTI/NRRD/MHA, DICOM in dcm2niix's layout."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medseg.core import OutputExistsError
from medseg.io._orientation import axis_codes, reorient
from medseg.io._read import read_image, write_image
from medseg.io._volume import Volume

logger = logging.getLogger(__name__)


def flip_axis(volume: Volume, axis: int) -> Volume:
    """Reverse one spatial axis (0, 1 or 2); the affine changes so that every voxel keeps
    its world position exactly."""
    size = volume.spatial_shape[axis]
    flip = np.eye(4)
    flip[axis, axis] = -1.0
    flip[axis, 3] = size - 1
    return Volume(
        array=np.flip(volume.array, axis=axis),
        affine=volume.affine @ flip,
        metadata=dict(volume.metadata),
    )


def to_dcm2niix_layout(volume: Volume) -> Volume:
    """Put a DICOM-read Volume into the voxel layout dcm2niix writes.

    dcm2niix stores DICOM rows bottom-up (its NIfTI row axis is the DICOM row axis
    reversed, e.g. ``LAS`` for an axial ``LPS`` series) and slices in ascending position
    along the slice normal, which is already our slice order. Only the row axis (j) is
    flipped; world positions are unchanged, so masks made on dcm2niix's output (such as
    TotalSegmentator's) overlay the result voxel for voxel.
    """
    flipped = flip_axis(volume, 1)
    flipped.metadata["array_order"] = "dcm2niix"
    return flipped


def to_output_layout(volume: Volume, *, source: Volume | None = None) -> Volume:
    """Put ``volume`` into the one array order medseg writes files in.

    A volume read from a DICOM series (or, with ``source``, any volume on the grid of the
    DICOM-read ``source``: a mask, probabilities) is written in dcm2niix's layout (see
    :func:`to_dcm2niix_layout`: ``LAS`` for an axial series), so that medseg's outputs
    overlay dcm2niix's and TotalSegmentator's voxel for voxel. Every other volume keeps its
    file order. Only axes are flipped; world positions are unchanged. Idempotent.
    """
    origin = source if source is not None else volume
    if origin.metadata.get("format") != "dicom" or origin.metadata.get("array_order"):
        return volume
    flip = np.eye(4)
    flip[1, 1] = -1.0
    flip[1, 3] = origin.spatial_shape[1] - 1
    target = axis_codes(Volume(array=origin.array[:1, :1, :1], affine=origin.affine @ flip))
    moved = reorient(volume, target)
    moved.metadata["array_order"] = "dcm2niix"
    return moved


def convert_image(
    source: str | Path,
    destination: str | Path,
    *,
    series_uid: str | None = None,
    overwrite: bool = False,
    allow_burned_in: bool = False,
) -> Volume:
    """Read ``source`` (DICOM folder/zip/file, NIfTI, NRRD, MHA, 2D image) and write it to
    ``destination`` (``.nii.gz``, ``.nii``, ``.nrrd`` or ``.mha``, chosen by suffix).

    DICOM input is written in dcm2niix's voxel layout (:func:`to_dcm2niix_layout`); other
    inputs keep their file order. Returns the Volume that was written.

    Raises
    ------
    OutputExistsError
        If ``destination`` exists and ``overwrite`` is false (checked before reading).
    """
    destination = Path(destination)
    if destination.exists() and not overwrite:
        raise OutputExistsError(
            "output already exists; pass --overwrite to replace it", path=destination
        )
    volume = read_image(source, series_uid=series_uid, allow_burned_in=allow_burned_in)
    if volume.metadata.get("format") == "dicom":
        volume = to_dcm2niix_layout(volume)
    write_image(volume, destination, overwrite=overwrite)
    logger.info("wrote %s (%s)", destination.name, "x".join(map(str, volume.array.shape)))
    return volume
