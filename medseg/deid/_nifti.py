"""NIfTI de-identification: scrub the header's free-text fields and drop extensions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib

from medseg.core import InputError

NIFTI_TEXT_FIELDS = ("descrip", "aux_file", "intent_name", "db_name")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_path(path: Path) -> bool:
    """Whether ``path`` is named like a NIfTI file (``.nii`` or ``.nii.gz``)."""
    name = path.name.lower()
    return name.endswith(NIFTI_SUFFIXES)


def scrub_nifti(src: Path, dst: Path) -> dict[str, int]:
    """Write ``src`` to ``dst`` with the text fields emptied and every extension removed.

    The voxel data, affine (qform and sform with their codes), intent codes, units and
    scaling are kept; ``descrip``, ``aux_file``, ``intent_name`` and (NIfTI-1) ``db_name`` are
    set to empty, and header extensions (which may carry a whole DICOM header, e.g. ecode 2)
    are dropped. ``dst`` must be a temporary path (the caller renames it atomically).

    Returns
    -------
    dict
        Counts: ``Z`` text fields emptied, ``X`` extensions removed.

    Raises
    ------
    InputError
        If ``src`` is not a readable NIfTI file.
    """
    try:
        image: Any = nib.load(str(src))
    except Exception as err:  # nibabel raises several kinds
        raise InputError(f"not a readable NIfTI file ({type(err).__name__})", path=src) from err
    header = image.header.copy()
    emptied = 0
    for name in NIFTI_TEXT_FIELDS:
        if name in header:
            if bytes(header[name].tobytes()).strip(b"\x00 "):
                emptied += 1
            header[name] = b""
    removed = len(header.extensions)
    header.extensions.clear()
    out = type(image)(image.dataobj, image.affine, header)
    nib.save(out, str(dst))
    return {"Z": emptied, "X": removed}
