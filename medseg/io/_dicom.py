"""Loading DICOM series into Volumes: header geometry from :mod:`._dicom_scan`, pixels
read directly for uncompressed data and decoded by pydicom (pylibjpeg, openjpeg, libjpeg,
RLE plugins) for compressed data, files read in parallel threads."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pydicom
from pydicom.uid import UID

from medseg.core import DeidError, GeometryError, InputError
from medseg.io._dicom_header import FileRef, SliceHeader
from medseg.io._dicom_scan import DicomScan, DicomSeries, scan_dicom
from medseg.io._volume import LPS_TO_RAS, Volume

if TYPE_CHECKING:  # SimpleITK maps ~90 MB of shared libraries: imported where used
    import SimpleITK as sitk

logger = logging.getLogger(__name__)


def affine_from_sitk(image: sitk.Image) -> np.ndarray:
    """Return the 4×4 voxel (i, j, k) → RAS+ mm affine of a 3D SimpleITK image."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps


def _describe(series: DicomSeries) -> str:
    text = f"{series.key} ({series.modality or '?'}, {series.n_slices} slice(s)"
    return text + (f", {series.description!r})" if series.description else ")")


def choose_dicom_series(
    scan: DicomScan, *, series_uid: str | None = None, source: str | Path | None = None
) -> DicomSeries:
    """Pick one series of a scan by key or SeriesInstanceUID (the only one if not given).

    Raises
    ------
    InputError
        If there is no series, several and none chosen, or the choice is not found; the
        message lists the choices.
    """
    if not scan.series:
        detail = ""
        if scan.skipped:
            name, reason = scan.skipped[0]
            detail = (
                f"; {len(scan.skipped)} DICOM file(s) skipped, e.g. {Path(name).name}: {reason}"
            )
        raise InputError(
            f"no DICOM image series found among {scan.n_files} file(s){detail}", path=source
        )
    choices = "; ".join(_describe(s) for s in scan.series)
    if series_uid is None:
        if len(scan.series) > 1:
            raise InputError(
                f"input holds {len(scan.series)} series; choose one with --series: {choices}",
                path=source,
            )
        return scan.series[0]
    matches = [s for s in scan.series if s.key == series_uid] or [
        s for s in scan.series if s.series_uid == series_uid
    ]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InputError(
            f"series {series_uid} was split into {len(matches)} stacks; choose one key: "
            + "; ".join(_describe(s) for s in matches),
            path=source,
        )
    raise InputError(f"series {series_uid} not found; choices: {choices}", path=source)


def list_dicom_series(folder: str | Path) -> list[str]:
    """Return the keys of the series under ``folder`` (a folder, zip or file): the
    SeriesInstanceUIDs, with ``#n`` added where one UID was split (header read only)."""
    return [series.key for series in scan_dicom(folder).series]


def dicom_series_files(folder: str | Path, *, series_uid: str | None = None) -> list[Path]:
    """Files of one series in slice order: entry ``k`` is slice ``k`` of the Volume that
    :func:`read_dicom_series` returns for the same arguments (single-frame series)."""
    scan = scan_dicom(folder)
    return choose_dicom_series(scan, series_uid=series_uid, source=folder).files


def _syntax_name(uid: str) -> str:
    name = UID(uid).name
    return name if name and name != uid else uid


def _decode_file(ref: FileRef, syntax: str) -> np.ndarray:
    """Decode every frame of one file with pydicom (frames first for multi-frame); a
    Modality LUT, if present, is applied here."""
    try:
        source = str(ref.path) if ref.member is None else io.BytesIO(ref.read_bytes())
        with warnings.catch_warnings():  # odd values are reported by the scan, not here
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(source)
            pixels = ds.pixel_array
            if "ModalityLUTSequence" in ds:
                from pydicom.pixels import apply_modality_lut

                pixels = apply_modality_lut(pixels, ds)
    except Exception as err:  # pydicom/plugins raise many kinds on bad or odd pixel data
        text = str(err).strip()
        first_line = text.splitlines()[0][:200] if text else ""
        hint = "; install the matching pylibjpeg plugin" if "plugin" in text.lower() else ""
        raise InputError(
            f"cannot decode pixel data ({_syntax_name(syntax)}): {type(err).__name__}: "
            f"{first_line}{hint}",
            path=ref.path if ref.member is None else f"{ref.path}!{ref.member}",
        ) from err
    return pixels


def _read_native(headers: Sequence[SliceHeader], n_threads: int) -> np.ndarray:
    """Read uncompressed slices straight into one (slice, row, column) array."""
    first = headers[0]
    layout = first.native
    if layout is None:
        raise InputError("internal: slice has no native pixel layout", path=first.ref.path)
    raw = np.empty((len(headers), first.rows, first.columns), dtype=np.dtype(layout.dtype))
    as_bytes = raw.view(np.uint8).reshape(len(headers), -1)

    def read_one(k: int) -> None:
        header = headers[k]
        offset = header.native.offset  # type: ignore[union-attr]
        target = as_bytes[k]
        if header.ref.member is None:
            with open(header.ref.path, "rb", buffering=0) as stream:
                stream.seek(offset)
                got = stream.readinto(target.data)
        else:
            data = header.ref.read_bytes()[offset : offset + target.size]
            got = len(data)
            target[:got] = np.frombuffer(data, dtype=np.uint8)
        if got != target.size:
            raise InputError(
                f"truncated pixel data ({got} of {target.size} bytes)", path=header.ref.path
            )

    if n_threads > 1 and len(headers) > 4:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            list(pool.map(read_one, range(len(headers))))
    else:
        for k in range(len(headers)):
            read_one(k)
    if not raw.dtype.isnative:
        raw = raw.astype(raw.dtype.newbyteorder("="))
    bits = raw.dtype.itemsize * 8
    if layout.bits_stored < bits:  # same as pydicom: mask unsigned, sign-extend signed
        shift = bits - layout.bits_stored
        if layout.signed:
            raw <<= shift
            raw >>= shift
        else:
            raw &= (1 << layout.bits_stored) - 1
    return raw


def _read_decoded(headers: Sequence[SliceHeader], n_threads: int) -> tuple[np.ndarray, bool]:
    """Decode files with pydicom (each file once) and stack their frames in slice order.

    Returns the stack and whether a Modality LUT was already applied.
    """
    syntaxes = {h.ref: h.transfer_syntax for h in headers}
    refs = list(syntaxes)
    if n_threads > 1 and len(refs) > 1:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            decoded = dict(zip(refs, pool.map(_decode_file, refs, syntaxes.values()), strict=True))
    else:
        decoded = {ref: _decode_file(ref, syntaxes[ref]) for ref in refs}
    frames = []
    for header in headers:
        pixels = decoded[header.ref]
        frame = pixels if header.frame is None else pixels[header.frame]
        expected = (header.rows, header.columns) + ((header.samples,) if header.samples > 1 else ())
        if frame.shape != expected:
            raise InputError(
                f"decoded frame has shape {frame.shape}, expected {expected} from the header",
                path=header.ref.path,
            )
        frames.append(frame)
    lut_applied = any(h.has_modality_lut for h in headers)
    return np.stack(frames), lut_applied


def _apply_rescale(raw: np.ndarray, headers: Sequence[SliceHeader]) -> np.ndarray:
    """Apply Rescale Slope/Intercept; integers stay integers when the values fit."""
    rescales = [h.rescale or (1.0, 0.0) for h in headers]
    if all(r == (1.0, 0.0) for r in rescales):
        return raw
    if len(set(rescales)) == 1:
        slope, intercept = rescales[0]
        if slope == 1.0 and float(intercept).is_integer() and raw.dtype.kind in "iu":
            low, high = int(raw.min()) + int(intercept), int(raw.max()) + int(intercept)
            for dtype in (np.int16, np.int32):
                info = np.iinfo(dtype)
                if info.min <= low and high <= info.max:
                    out: np.ndarray = raw.astype(dtype, copy=raw.dtype != dtype)
                    np.add(out, int(intercept), out=out, casting="unsafe")
                    return out
        return (raw.astype(np.float32) * np.float32(slope) + np.float32(intercept)).astype(
            np.float32
        )
    out = raw.astype(np.float32)
    for k, (slope, intercept) in enumerate(rescales):
        out[k] = out[k] * np.float32(slope) + np.float32(intercept)
    return out


def _default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def series_log_label(key: str) -> str:
    """How logs name a series: ``series`` and a short hash of its key, never the original
    SeriesInstanceUID (an identifier of the patient's study)."""
    return f"series {hashlib.sha256(key.encode('utf-8')).hexdigest()[:8]}"


def check_no_burned_in_annotation(series: DicomSeries, *, source: str | Path) -> None:
    """Refuse a series whose header says its pixels carry burned-in annotation.

    Such pixels may show the patient's name or birth date; an image, overlay or mask
    written from them would carry it. ``medseg deid --clean-pixels`` blanks the regions.

    Raises
    ------
    DeidError
        If any slice has BurnedInAnnotation YES.
    """
    if any(h.burned_in_annotation for h in series.slices):
        raise DeidError(
            "the DICOM series has BurnedInAnnotation YES: its pixels may show patient "
            "identity; de-identify it first (medseg deid --clean-pixels RULES), or convert "
            "it with --allow-burned-in inside the hospital",
            path=source,
        )


def load_dicom_series(
    series: DicomSeries, *, n_threads: int | None = None, allow_burned_in: bool = False
) -> Volume:
    """Decode the pixels of a scanned series into a Volume (see :func:`read_dicom_series`).

    Raises
    ------
    GeometryError
        If the slices do not form a regular grid (missing slices, non-uniform spacing,
        duplicate positions).
    InputError
        If pixel data cannot be decoded.
    """
    if not allow_burned_in:
        check_no_burned_in_annotation(series, source=series.slices[0].ref.path)
    if series.problems:
        raise GeometryError(
            f"series {series.key} cannot be stacked on a regular grid: "
            + "; ".join(series.problems)
            + ". Remove or restore the offending files, or pick another series with --series"
        )
    threads = n_threads or _default_threads()
    headers = series.slices
    layouts = {h.native.dtype if h.native else None for h in headers}
    lut = any(h.has_modality_lut for h in headers)
    if None not in layouts and len(layouts) == 1 and not lut:
        raw, lut_applied = _read_native(headers, threads), False
    else:
        raw, lut_applied = _read_decoded(headers, threads)
    values = raw if lut_applied else _apply_rescale(raw, headers)
    # (slice, row, column[, sample]) C-order → (column, row, slice[, sample]) without a copy.
    axes = (2, 1, 0, 3) if values.ndim == 4 else (2, 1, 0)
    array = np.transpose(values, axes)
    label = series_log_label(series.key)  # never the SeriesInstanceUID itself in logs
    for message in series.warnings:
        logger.warning("%s: %s", label, message)
    for message in series.notes:
        logger.debug("%s: %s", label, message)
    metadata: dict[str, object] = {
        "format": "dicom",
        "modality": series.modality,
        "n_slices": series.n_slices,
        "source_orientation": series.orientation_codes,
        "warnings": list(series.warnings),
        "notes": list(series.notes),
    }
    if not series.has_geometry:
        metadata["is_2d"] = series.n_slices == 1
    logger.debug("read DICOM series with %d slices", series.n_slices)
    return Volume(array=array, affine=series.affine.copy(), metadata=metadata)


def read_dicom_series(
    source: str | Path,
    *,
    series_uid: str | None = None,
    n_threads: int | None = None,
    allow_burned_in: bool = False,
) -> Volume:
    """Read one DICOM series from a folder tree, a zip archive or a single file.

    Slices are ordered by their position along the slice normal (row × column direction
    cosines), never by file name or InstanceNumber. Rescale Slope/Intercept (or a Modality
    LUT) are applied, so CT values are in HU; integer data stay integer (int16/int32) when
    the slope is 1, otherwise float32. The array axes are (column, row, slice[, sample]) and
    the affine maps them to RAS+ mm: columns 0 and 1 are the DICOM row/column direction
    cosines times the pixel spacing, column 2 the slice normal times the median slice step
    (the mean step vector for gantry-tilted stacks), the origin is the first slice's
    ImagePositionPatient — all converted from LPS to RAS. Objects without patient geometry
    get ``diag(-sx, -sy, 1)`` like 2D images.

    Parameters
    ----------
    source
        Folder (searched recursively), ``.zip`` archive, or one DICOM file.
    series_uid
        Series key or SeriesInstanceUID; required when ``source`` holds several series.
    n_threads
        Threads reading/decoding files (default: CPU count, at most 8).
    allow_burned_in
        Read a series whose header says BurnedInAnnotation YES (refused by default).

    Raises
    ------
    InputError
        No series, several series and none chosen, or undecodable pixel data.
    GeometryError
        Missing slices, non-uniform spacing or duplicate positions.
    """
    scan = scan_dicom(source)
    series = choose_dicom_series(scan, series_uid=series_uid, source=source)
    if not allow_burned_in:  # checked here so the message names what the user gave
        check_no_burned_in_annotation(series, source=source)
    return load_dicom_series(series, n_threads=n_threads, allow_burned_in=True)
