"""One entry point that reads any supported image by its path."""

from __future__ import annotations

from pathlib import Path

from medseg.core import InputError
from medseg.io._dicom import read_dicom_series
from medseg.io._image2d import IMAGE_2D_SUFFIXES, read_image_2d
from medseg.io._nifti import read_nifti
from medseg.io._volume import Volume

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def read_image(path: str | Path, *, series_uid: str | None = None) -> Volume:
    """Read a DICOM folder, a NIfTI file or a 2D image into a Volume.

    Raises
    ------
    InputError
        If the path does not exist or its kind is not supported.
    """
    path = Path(path)
    if path.is_dir():
        return read_dicom_series(path, series_uid=series_uid)
    name = path.name.lower()
    if name.endswith(_NIFTI_SUFFIXES):
        return read_nifti(path)
    if name.endswith(IMAGE_2D_SUFFIXES):
        return read_image_2d(path)
    if not path.exists():
        raise InputError("input not found", path=path)
    raise InputError(
        "unsupported input: expected a DICOM folder, .nii/.nii.gz or a 2D image "
        f"({', '.join(IMAGE_2D_SUFFIXES)})",
        path=path,
    )
