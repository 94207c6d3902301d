"""NIfTI reading and atomic writing with nibabel, keeping the affine exactly."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.core import InputError, atomic_output
from medseg.io._size import DEFLATE_MAX_RATIO, check_claimed_size, claimed_bytes
from medseg.io._volume import Volume

logger = logging.getLogger(__name__)


def read_nifti(path: str | Path) -> Volume:
    """Read a ``.nii``/``.nii.gz`` file into a Volume (array in file order, RAS+ affine).

    Scaled data (``scl_slope``/``scl_inter``) are returned scaled, as nibabel does.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("NIfTI file not found", path=path)
    try:
        image: nib.Nifti1Image = nib.load(str(path))  # type: ignore[assignment]
        header = image.header
        claimed = int(header.get_data_offset()) + claimed_bytes(
            header.get_data_shape(), header.get_data_dtype().itemsize
        )
    except Exception as err:  # nibabel raises many kinds for corrupt files
        raise InputError(f"cannot read NIfTI file ({type(err).__name__})", path=path) from err
    compressed = path.name.lower().endswith(".gz")
    check_claimed_size(path, claimed, max_ratio=DEFLATE_MAX_RATIO if compressed else 1)
    try:
        array = np.asanyarray(image.dataobj)
    except Exception as err:  # nibabel raises many kinds for corrupt files
        raise InputError(f"cannot read NIfTI file ({type(err).__name__})", path=path) from err
    affine = image.affine if image.affine is not None else np.eye(4)
    metadata: dict[str, object] = {"format": "nifti"}
    if array.ndim == 2:  # a 2D NIfTI is one slice, as every other 2D reader gives it
        array = array[:, :, None]
        metadata["is_2d"] = True
    elif array.ndim not in (3, 4):
        raise InputError(f"expected a 2D, 3D or 4D NIfTI image, found {array.ndim}D", path=path)
    return Volume(array=array, affine=affine, metadata=metadata)


def _label_dtype(array: np.ndarray) -> np.ndarray:
    """Booleans → uint8; integers → the smallest of uint8/int16/int32 holding them."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer) or not array.size:
        return array
    low, high = int(array.min()), int(array.max())
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return array if array.dtype == dtype else array.astype(dtype)
    return array


def write_nifti(volume: Volume, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``volume`` to ``path`` atomically; the affine goes to sform and qform (mm).

    Integer and boolean arrays are stored as integers (``uint8`` when labels fit, else
    int16/int32), so label maps stay label maps. A sheared affine (gantry tilt) is kept
    exactly in the sform; the qform, which cannot hold shear, is then left unset. Header
    text fields are left empty (no PHI).
    """
    path = Path(path)
    array = _label_dtype(volume.array)
    image = nib.Nifti1Image(array, volume.affine)
    image.header.set_xyzt_units("mm")
    image.set_sform(volume.affine, code=1)
    matrix = volume.affine[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    direction = matrix / np.where(spacing > 0, spacing, 1.0)
    if np.allclose(direction.T @ direction, np.eye(3), atol=1e-5):
        image.set_qform(volume.affine, code=1)
    else:
        logger.warning("sheared affine: written to the NIfTI sform only (qform unset)")
        image.set_qform(None, code=0)
    with atomic_output(path, overwrite=overwrite) as tmp:
        nib.save(image, str(tmp))
    return path
