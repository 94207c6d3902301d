"""One entry point that reads any supported image by its path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.core import InputError
from medseg.io._dicom import read_dicom_series
from medseg.io._image2d import IMAGE_2D_SUFFIXES, read_image_2d
from medseg.io._nifti import read_nifti
from medseg.io._volume import Volume

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def check_volume_is_sane(volume: Volume, *, path: str | Path) -> Volume:
    """Refuse NaN/Inf voxels and a non-finite or singular affine (corrupt input).

    Raises
    ------
    InputError
        Naming the file and how many voxels are not finite.
    """
    if not np.isfinite(volume.affine).all() or abs(np.linalg.det(volume.affine[:3, :3])) < 1e-12:
        raise InputError(
            "image affine is singular or not finite; the file's geometry is corrupt", path=path
        )
    if np.issubdtype(volume.array.dtype, np.floating):
        bad = int(volume.array.size - np.count_nonzero(np.isfinite(volume.array)))
        if bad:
            raise InputError(
                f"{bad} voxel(s) are NaN or infinite; expected finite intensities", path=path
            )
    return volume


def read_image(path: str | Path, *, series_uid: str | None = None) -> Volume:
    """Read a DICOM folder, a NIfTI file or a 2D image into a Volume.

    Raises
    ------
    InputError
        If the path does not exist or its kind is not supported.
    """
    path = Path(path)
    if path.is_dir():
        return check_volume_is_sane(read_dicom_series(path, series_uid=series_uid), path=path)
    name = path.name.lower()
    if name.endswith(_NIFTI_SUFFIXES):
        return check_volume_is_sane(read_nifti(path), path=path)
    if name.endswith(IMAGE_2D_SUFFIXES):
        return check_volume_is_sane(read_image_2d(path), path=path)
    if not path.exists():
        raise InputError("input not found", path=path)
    raise InputError(
        "unsupported input: expected a DICOM folder, .nii/.nii.gz or a 2D image "
        f"({', '.join(IMAGE_2D_SUFFIXES)})",
        path=path,
    )
