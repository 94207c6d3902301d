"""NRRD and MetaImage (MHA/MHD) reading and writing through SimpleITK.

SimpleITK turns NRRD ``space directions`` (in any ``space``) and MetaImage
``TransformMatrix`` into ITK's LPS direction/origin/spacing; they are converted here into
the Volume convention (array axes in file order, voxel → RAS+ mm affine).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medseg.core import GeometryError, InputError, atomic_output
from medseg.io._size import DEFLATE_MAX_RATIO, check_claimed_size, claimed_bytes
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


def _header_fields(path: Path) -> dict[str, str]:
    """``key: value`` / ``Key = Value`` lines of a NRRD or MetaImage header, keys lowercased."""
    with open(path, "rb") as stream:
        head = stream.read(65536).decode("latin-1")
    fields: dict[str, str] = {}
    for line in head.splitlines():
        if not line.strip():
            break  # NRRD: the header ends at the first blank line
        for sep in (":=", ":", "="):
            if sep in line:
                key, value = line.split(sep, 1)
                fields.setdefault(key.strip().lower(), value.strip())
                break
        if line.lower().startswith("elementdatafile"):
            break  # MetaImage: the data follow this line
    return fields


def _check_itk_size(path: Path, reader: sitk.ImageFileReader) -> None:
    """The one size check (:func:`check_claimed_size`) for NRRD/MetaImage headers."""
    import SimpleITK as sitk

    type_name = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    bits = re.search(r"(\d+)-bit", type_name)
    itemsize = (int(bits.group(1)) // 8 if bits else 1) * (2 if "complex" in type_name else 1)
    claimed = claimed_bytes(reader.GetSize(), itemsize * max(1, reader.GetNumberOfComponents()))
    fields = _header_fields(path)
    encoding = fields.get("encoding", "raw").lower()
    compressed = fields.get("compresseddata", "false").lower() == "true"
    if encoding in ("bzip2", "bz2"):
        return  # no useful bound on bzip2's expansion
    ratio = DEFLATE_MAX_RATIO if compressed or encoding in ("gzip", "gz") else 1
    if encoding in ("txt", "text", "ascii"):
        ratio = 1  # at least one character per byte of data
    data_file = fields.get("data file") or fields.get("datafile") or fields.get("elementdatafile")
    available = path.stat().st_size
    if data_file and data_file.upper() != "LOCAL":
        detached = path.parent / data_file.split()[0]
        if not detached.is_file():
            return  # a list or pattern of files: SimpleITK reports what is missing
        available = detached.stat().st_size
    check_claimed_size(path, claimed, available=available, max_ratio=ratio)


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
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        _check_itk_size(path, reader)
        image = reader.Execute()
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
