"""NIfTI reading and atomic writing with nibabel, keeping the affine exactly."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.core import InputError, atomic_output
from medseg.io._volume import Volume


def read_nifti(path: str | Path) -> Volume:
    """Read a ``.nii``/``.nii.gz`` file into a Volume (array in file order, RAS+ affine)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("NIfTI file not found", path=path)
    try:
        image = nib.load(str(path))
        array = np.asanyarray(image.dataobj)
    except Exception as err:  # nibabel raises many kinds for corrupt files
        raise InputError(f"cannot read NIfTI file ({type(err).__name__})", path=path) from err
    affine = image.affine if image.affine is not None else np.eye(4)
    return Volume(array=array, affine=affine, metadata={"format": "nifti"})


def write_nifti(volume: Volume, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``volume`` to ``path`` atomically; the affine goes to both sform and qform.

    Integer and boolean arrays are stored as integers (``uint8`` when labels fit), so label
    maps stay label maps. Header text fields are left empty (no PHI).
    """
    path = Path(path)
    array = volume.array
    if array.dtype == bool or (
        np.issubdtype(array.dtype, np.integer)
        and array.size
        and array.min() >= 0
        and array.max() <= 255
    ):
        array = array.astype(np.uint8)
    image = nib.Nifti1Image(array, volume.affine)
    image.set_sform(volume.affine, code=1)
    image.set_qform(volume.affine, code=1)
    with atomic_output(path, overwrite=overwrite) as tmp:
        nib.save(image, str(tmp))
    return path
