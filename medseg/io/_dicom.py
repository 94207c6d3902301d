"""DICOM series reading with SimpleITK (GDCM sorts slices along the slice normal)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medseg.core import InputError
from medseg.io._volume import LPS_TO_RAS, Volume

logger = logging.getLogger(__name__)


def affine_from_sitk(image: sitk.Image) -> np.ndarray:
    """Return the 4×4 voxel (i, j, k) → RAS+ mm affine of a 3D SimpleITK image."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps


def list_dicom_series(folder: str | Path) -> list[str]:
    """Return the SeriesInstanceUIDs found directly in ``folder`` (header read only)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("DICOM folder not found", path=folder)
    return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _choose_series(folder: Path, series_uid: str | None) -> str:
    series = list_dicom_series(folder)
    if not series:
        raise InputError("no DICOM series found in folder", path=folder)
    if series_uid is None:
        if len(series) > 1:
            raise InputError(
                f"folder holds {len(series)} series; choose one with --series "
                f"({', '.join(series)})",
                path=folder,
            )
        return series[0]
    if series_uid not in series:
        raise InputError(
            f"series {series_uid} is not in the folder; found {', '.join(series)}", path=folder
        )
    return series_uid


def dicom_series_files(folder: str | Path, *, series_uid: str | None = None) -> list[Path]:
    """Files of one series in slice order: entry ``k`` is slice ``k`` of the Volume that
    :func:`read_dicom_series` returns for the same arguments."""
    folder = Path(folder)
    uid = _choose_series(folder, series_uid)
    return [Path(name) for name in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)]


def read_dicom_series(folder: str | Path, *, series_uid: str | None = None) -> Volume:
    """Read one DICOM series from ``folder`` into a Volume.

    Slices are ordered by their position along the slice normal; Rescale Slope/Intercept
    are applied, so CT values are in HU. The array axes are (column, row, slice), the
    affine maps them to RAS+ mm.

    Raises
    ------
    InputError
        If the folder holds no DICOM series, several series and no ``series_uid`` was
        given, or the pixel data cannot be decoded.
    """
    folder = Path(folder)
    file_names = [str(p) for p in dicom_series_files(folder, series_uid=series_uid)]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(file_names)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise InputError("cannot decode the DICOM series", path=folder) from err
    array = np.ascontiguousarray(sitk.GetArrayViewFromImage(image).transpose(2, 1, 0))
    modality = (
        reader.GetMetaData(0, "0008|0060").strip() if reader.HasMetaDataKey(0, "0008|0060") else ""
    )
    logger.debug("read DICOM series with %d slices", len(file_names))
    return Volume(
        array=array,
        affine=affine_from_sitk(image),
        metadata={"format": "dicom", "modality": modality, "n_slices": len(file_names)},
    )
