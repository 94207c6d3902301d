"""NRRD and MetaImage (MHA/MHD) reading and writing through SimpleITK.

SimpleITK turns NRRD ``space directions`` (in any ``space``) and MetaImage
``TransformMatrix`` into ITK's LPS direction/origin/spacing; they are converted here into
the Volume convention (array axes in file order, voxel → RAS+ mm affine).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medseg.core import GeometryError, InputError, atomic_output
from medseg.io._volume import LPS_TO_RAS, Volume

if TYPE_CHECKING:
    import SimpleITK as sitk

logger = logging.getLogger(__name__)

#: Suffixes read by :func:`read_itk_image`; the first two are also written.
ITK_SUFFIXES = (".nrrd", ".mha", ".nhdr", ".mhd")


def _affine_lps(image: sitk.Image) -> np.ndarray:
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)
    lps = np.eye(4)
    lps[:dim, :dim] = direction @ np.diag(image.GetSpacing())
    lps[:dim, 3] = image.GetOrigin()
    return lps


def read_itk_image(path: str | Path) -> Volume:
    """Read a 2D or 3D NRRD/MHA/MHD image (scalar or vector pixels) into a Volume.

    Array axes are (i, j, k[, component]) in file order; a 2D image becomes one slice
    ``(i, j, 1[, C])`` with unit slice spacing. The dtype is kept.

    Raises
    ------
    InputError
        If the file is missing, unreadable, or not 2D/3D.
    """
    import SimpleITK as sitk  # ~90 MB of shared libraries: loaded only when used

    path = Path(path)
    if not path.is_file():
        raise InputError("image file not found", path=path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[-1][:200] if str(err).strip() else ""
        raise InputError(f"cannot read image with SimpleITK: {first_line}", path=path) from err
    dim = image.GetDimension()
    if dim not in (2, 3):
        raise InputError(f"expected a 2D or 3D image, found {dim}D", path=path)
    pixels = sitk.GetArrayFromImage(image)  # (k, j, i[, C]) or (j, i[, C])
    vector = image.GetNumberOfComponentsPerPixel() > 1
    if dim == 2:
        pixels = pixels[None]
    axes = (2, 1, 0, 3) if vector else (2, 1, 0)
    array = np.ascontiguousarray(np.transpose(pixels, axes))
    return Volume(
        array=array,
        affine=LPS_TO_RAS @ _affine_lps(image),
        metadata={"format": path.suffix.lower().lstrip("."), "is_2d": dim == 2},
    )


def _image_from_volume(volume: Volume) -> sitk.Image:
    import SimpleITK as sitk

    array = volume.array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    vector = array.ndim == 4
    if array.ndim not in (3, 4):
        raise GeometryError(f"expected array axes (i, j, k[, C]), not {array.ndim} axes")
    axes = (2, 1, 0, 3) if vector else (2, 1, 0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, axes)), isVector=vector)
    lps = LPS_TO_RAS @ volume.affine
    matrix = lps[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    if np.any(spacing <= 0):
        raise GeometryError(f"affine has a zero-length axis (spacing {spacing.tolist()} mm)")
    direction = matrix / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-5):
        raise GeometryError(
            "affine is sheared (e.g. a gantry-tilted CT): NRRD/MHA need orthogonal axes; "
            "write NIfTI instead or resample the image first"
        )
    image.SetSpacing(spacing.tolist())
    image.SetDirection(direction.ravel().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def write_itk_image(volume: Volume, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``volume`` as ``.nrrd`` or ``.mha`` (compressed) atomically, with its geometry.

    Boolean masks are stored as uint8; integer label maps keep their integer dtype.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    GeometryError
        If the affine is sheared (NRRD/MHA store orthogonal axes only).
    """
    path = Path(path)
    if path.suffix.lower() not in (".nrrd", ".mha"):
        raise InputError(f"write_itk_image writes .nrrd or .mha, not {path.suffix!r}", path=path)
    import SimpleITK as sitk

    image = _image_from_volume(volume)
    with atomic_output(path, overwrite=overwrite) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    logger.debug("wrote %s", path.name)
    return path
