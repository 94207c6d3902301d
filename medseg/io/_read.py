"""One entry point that reads any supported image by its path, and one that writes."""

from __future__ import annotations

from pathlib import Path

import nibabel.orientations as nio
import numpy as np

from medseg.core import InputError
from medseg.io._dicom import read_dicom_series
from medseg.io._image2d import (
    IMAGE_2D_SUFFIXES,
    WRITE_2D_SUFFIXES,
    read_image_2d,
    write_image_2d,
)
from medseg.io._itk import ITK_SUFFIXES, read_itk_image, write_itk_image
from medseg.io._nifti import read_nifti, write_nifti
from medseg.io._volume import Volume

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: Suffixes :func:`write_image` writes.
WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")


def is_dicom_file(path: str | Path) -> bool:
    """True for a file named ``*.dcm``/``*.dicom``/``*.ima`` or with the ``DICM`` preamble."""
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    try:
        with open(path, "rb") as stream:
            stream.seek(128)
            return stream.read(4) == b"DICM"
    except OSError:
        return False


def check_volume_is_sane(volume: Volume, *, path: str | Path) -> Volume:
    """Refuse NaN/Inf voxels and a non-finite or singular affine (corrupt input).

    Raises
    ------
    InputError
        Naming the file and how many voxels are not finite.
    """
    affine = volume.affine
    if (
        not np.isfinite(affine).all()
        or abs(np.linalg.det(affine[:3, :3])) < 1e-12
        or None in nio.aff2axcodes(affine)
    ):
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


def _read_by_kind(path: Path, series_uid: str | None, allow_burned_in: bool) -> Volume:
    """Dispatch on the path's kind; see :func:`read_image`."""
    if path.is_dir():
        return read_dicom_series(path, series_uid=series_uid, allow_burned_in=allow_burned_in)
    if not path.exists():
        raise InputError("input not found", path=path)
    name = path.name.lower()
    if name.endswith(_NIFTI_SUFFIXES):
        return read_nifti(path)
    if name.endswith(ITK_SUFFIXES):
        return read_itk_image(path)
    if name.endswith(IMAGE_2D_SUFFIXES):
        return read_image_2d(path)
    if name.endswith(".zip") or is_dicom_file(path):
        return read_dicom_series(path, series_uid=series_uid, allow_burned_in=allow_burned_in)
    raise InputError(
        "unsupported input: expected a DICOM folder, .zip or file, .nii/.nii.gz, "
        f"{', '.join(ITK_SUFFIXES)} or a 2D image ({', '.join(IMAGE_2D_SUFFIXES)})",
        path=path,
    )


def read_image(
    path: str | Path, *, series_uid: str | None = None, allow_burned_in: bool = False
) -> Volume:
    """Read a DICOM folder/zip/file, NIfTI, NRRD, MHA/MHD or 2D image into a Volume.

    Every reader returns the same convention: array axes in file order, affine voxel →
    RAS+ mm (see :class:`Volume`). Corrupt content that parses (NaN/Inf voxels, a singular
    affine) is refused too.

    Raises
    ------
    InputError
        If the path does not exist, its kind is not supported or its content is corrupt.
    DeidError
        If a DICOM series has BurnedInAnnotation YES and ``allow_burned_in`` is false.
    """
    path = Path(path)
    return check_volume_is_sane(_read_by_kind(path, series_uid, allow_burned_in), path=path)


def write_image(volume: Volume, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``volume`` atomically as NIfTI (``.nii.gz``/``.nii``), NRRD/MHA or, for a
    one-slice volume, PNG/TIFF in the image's own ``(H, W)`` (:func:`write_image_2d`), by
    suffix.

    Raises
    ------
    InputError
        If the suffix is not one of :data:`WRITE_SUFFIXES` or ``WRITE_2D_SUFFIXES``.
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(_NIFTI_SUFFIXES):
        return write_nifti(volume, path, overwrite=overwrite)
    if name.endswith((".nrrd", ".mha")):
        return write_itk_image(volume, path, overwrite=overwrite)
    if name.endswith(WRITE_2D_SUFFIXES):
        return write_image_2d(volume, path, overwrite=overwrite)
    raise InputError(
        "unsupported output type: expected a name ending in "
        f"{', '.join((*WRITE_SUFFIXES, *WRITE_2D_SUFFIXES))}",
        path=path,
    )
