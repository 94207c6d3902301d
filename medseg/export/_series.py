"""The source DICOM series of an export, and masks mapped exactly onto its pixel grid."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from medseg.core import GeometryError, InputError, atomic_output
from medseg.io import Volume, dicom_series_files, read_dicom_series, reorient_like

logger = logging.getLogger(__name__)

_REFERENCE_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@dataclass(frozen=True)
class SourceSeries:
    """A single-frame DICOM series as exports need it.

    Attributes
    ----------
    volume
        The series as a Volume: array (column, row, slice), affine voxel → RAS+ mm.
    files
        One file per slice; ``files[k]`` is slice ``k`` of ``volume``.
    datasets
        The headers of ``files`` (pixel data not loaded), same order.
    completed
        Attributes that were blank in the files and filled in ``datasets``.
    """

    volume: Volume
    files: tuple[Path, ...]
    datasets: tuple[Dataset, ...]
    completed: tuple[str, ...] = ()

    @property
    def n_slices(self) -> int:
        """Number of slices (frames)."""
        return len(self.files)


def _complete_uids(dataset: Dataset, *, frame_of_reference_uid: str) -> list[str]:
    """Fill empty SOP/Study/Series UIDs in place; return the names of the filled ones.

    SOP Class/Instance UID come from the file meta information (the file's own identity,
    not invented); Study and Series Instance UIDs, when blank (some anonymisers blank
    them), are derived deterministically from the Frame of Reference UID so every slice
    (and every rerun) gets the same values.
    """
    filled = []
    meta = getattr(dataset, "file_meta", None)
    if not dataset.get("SOPClassUID") and meta is not None and meta.get("MediaStorageSOPClassUID"):
        dataset.SOPClassUID = meta.MediaStorageSOPClassUID
        filled.append("SOPClassUID")
    if (
        not dataset.get("SOPInstanceUID")
        and meta is not None
        and meta.get("MediaStorageSOPInstanceUID")
    ):
        dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        filled.append("SOPInstanceUID")
    for name in ("StudyInstanceUID", "SeriesInstanceUID"):
        if not dataset.get(name):
            setattr(dataset, name, generate_uid(entropy_srcs=[frame_of_reference_uid, name]))
            filled.append(name)
    if dataset.get("SeriesNumber") in (None, ""):
        dataset.SeriesNumber = 1
        filled.append("SeriesNumber")
    return filled


def read_source_series(
    folder: str | Path, *, series_uid: str | None = None, complete_uids: bool = False
) -> SourceSeries:
    """Read a single-frame DICOM series (pixels and headers) for export.

    Parameters
    ----------
    folder
        Folder holding the series.
    series_uid
        The series to take when the folder holds several.
    complete_uids
        Fill blank SOP/Study/Series UIDs (some anonymisers blank them) so that exports
        can reference the images; write the completed series with
        :func:`write_source_series` and use that copy as the source everywhere (PACS
        included). Without it, blank UIDs raise InputError.

    Raises
    ------
    InputError
        If the folder has no (or an ambiguous) series, it is a multi-frame image, or UIDs
        needed for references are blank and ``complete_uids`` is false.
    """
    folder = Path(folder)
    volume = read_dicom_series(folder, series_uid=series_uid)
    files = tuple(dicom_series_files(folder, series_uid=series_uid))
    datasets = tuple(pydicom.dcmread(f, stop_before_pixels=True) for f in files)
    if len(files) != volume.spatial_shape[2]:
        raise InputError(
            f"exports need one file per slice; found {len(files)} files for "
            f"{volume.spatial_shape[2]} slices (multi-frame images are not supported)",
            path=folder,
        )
    frame_of_reference = str(datasets[0].get("FrameOfReferenceUID", ""))
    if not frame_of_reference:
        raise InputError("the source series has no FrameOfReferenceUID", path=folder)
    completed: set[str] = set()
    for dataset in datasets:
        missing = [n for n in _REFERENCE_UIDS if not dataset.get(n)]
        if missing and not complete_uids:
            raise InputError(
                f"the source series has blank {', '.join(missing)}, so exports cannot "
                "reference it; rerun with --complete-uids to fill them (the completed "
                "series is written beside the exports)",
                path=folder,
            )
        if missing:
            completed.update(_complete_uids(dataset, frame_of_reference_uid=frame_of_reference))
    if completed:
        logger.warning("completed blank source attributes: %s", ", ".join(sorted(completed)))
    if len({str(d.SOPInstanceUID) for d in datasets}) != len(datasets):
        raise InputError("the source series repeats SOP Instance UIDs", path=folder)
    return SourceSeries(
        volume=volume, files=files, datasets=datasets, completed=tuple(sorted(completed))
    )


def source_series_paths(series: SourceSeries, folder: str | Path) -> list[Path]:
    """Where :func:`write_source_series` puts each slice: ``folder/<SOPInstanceUID>.dcm``."""
    return [Path(folder) / f"{header.SOPInstanceUID}.dcm" for header in series.datasets]


def write_source_series(
    series: SourceSeries, folder: str | Path, *, overwrite: bool = False
) -> list[Path]:
    """Write the series' files, with any completed UIDs, into ``folder`` (one per slice).

    Pixel data are copied unchanged (same transfer syntax). Files are named by their
    SOP Instance UID (no PHI) and written atomically.
    """
    written = []
    paths = source_series_paths(series, folder)
    for source, header, path in zip(series.files, series.datasets, paths, strict=True):
        dataset = pydicom.dcmread(source)
        for name in series.completed:
            setattr(dataset, name, header.get(name))
        with atomic_output(path, overwrite=overwrite) as tmp:
            dataset.save_as(tmp, enforce_file_format=True)
        written.append(path)
    return written


def map_mask_to_series(mask: Volume, series: SourceSeries, *, tolerance_mm: float = 1e-2) -> Volume:
    """Put ``mask`` on the series' voxel grid (axis permutations/flips only, no resampling).

    The result's array has axes (column, row, slice) of the series, so ``array[:, :, k]``
    belongs to ``series.files[k]`` and ``array[c, r, k]`` to pixel (row r, column c).

    Raises
    ------
    GeometryError
        If the mask's grid is not the series' grid up to axis order and direction (within
        ``tolerance_mm``); resample it onto the series first.
    """
    if mask.array.ndim not in (3, 4):
        raise GeometryError(f"mask must be 3D (or 4D with segments last), not {mask.array.ndim}D")
    return reorient_like(mask, series.volume, tolerance_mm=tolerance_mm, what="mask")


def to_frames(array: np.ndarray) -> np.ndarray:
    """(column, row, slice[, segment]) → (slice, row, column[, segment]), as DICOM frames."""
    if array.ndim == 3:
        return np.ascontiguousarray(array.transpose(2, 1, 0))
    return np.ascontiguousarray(array.transpose(2, 1, 0, 3))


def from_frames(frames: np.ndarray) -> np.ndarray:
    """(slice, row, column[, segment]) → (column, row, slice[, segment])."""
    return to_frames(frames)


def slice_geometry_lps(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (origin, row-index step, column-index step) of one slice in LPS mm.

    ``origin`` is ImagePositionPatient (the centre of pixel (0, 0)); a pixel at (row r,
    column c) has its centre at ``origin + r * row_step + c * column_step``.
    """
    position = np.asarray([float(v) for v in dataset.ImagePositionPatient])
    orientation = np.asarray([float(v) for v in dataset.ImageOrientationPatient])
    row_spacing, column_spacing = (float(v) for v in dataset.PixelSpacing)
    # The first three direction cosines point along a row (increasing column index).
    column_step = orientation[:3] * column_spacing
    row_step = orientation[3:] * row_spacing
    return position, row_step, column_step
