"""DICOM discovery: read headers only, group files into series, sort and validate slices.

Hand-written on top of pydicom (``stop_before_pixels``) rather than GDCM's scanner because
the issue needs what GDCM does not report: the split of one SeriesInstanceUID by orientation,
frame of reference, matrix size or acquisition, a list of skipped files with the reason, and
explicit validation findings (gaps, duplicates, tilt) before any pixel is decoded.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from medseg.core import InputError
from medseg.io._volume import LPS_TO_RAS

logger = logging.getLogger(__name__)

#: Direction cosines closer than this are treated as the same orientation.
ORIENTATION_TOLERANCE = 1e-4
#: Positions closer than this (mm, along the slice normal) are the same position.
POSITION_TOLERANCE_MM = 1e-3
#: Relative deviation of one slice step from the median step that counts as non-uniform.
SPACING_TOLERANCE = 0.01
#: In-plane drift per slice (mm) above which the stack is reported as tilted.
TILT_TOLERANCE_MM = 1e-2

_NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2": ("<", False),  # implicit VR little endian
    "1.2.840.10008.1.2.1": ("<", True),  # explicit VR little endian
    "1.2.840.10008.1.2.2": (">", True),  # explicit VR big endian (retired)
}


@dataclass(frozen=True)
class FileRef:
    """A DICOM file on disk, or a member of a zip archive (``member`` set)."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    def read_bytes(self) -> bytes:
        """Return the whole file (or archive member)."""
        if self.member is None:
            return self.path.read_bytes()
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(self.member)


@dataclass(frozen=True)
class NativePixels:
    """Where uncompressed pixel data lies in a file, so it can be read without pydicom."""

    offset: int  # byte offset of the first pixel value
    dtype: str  # numpy dtype string with byte order, e.g. "<i2"
    bits_stored: int
    signed: bool


@dataclass(frozen=True)
class SliceHeader:
    """The header facts of one frame (a single-frame file is one frame)."""

    ref: FileRef
    frame: int | None  # frame index in a multi-frame file, None for single-frame files
    n_frames: int
    study_uid: str
    series_uid: str
    sop_uid: str
    frame_of_reference: str
    acquisition: str
    modality: str
    description: str
    rows: int
    columns: int
    samples: int
    transfer_syntax: str
    position_lps: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None  # row direction (3), column direction (3), LPS
    pixel_spacing_mm: tuple[float, float] | None  # (between rows, between columns)
    thickness_mm: float | None
    gantry_tilt_deg: float
    rescale: tuple[float, float] | None  # (slope, intercept)
    has_modality_lut: bool
    native: NativePixels | None


@dataclass(frozen=True)
class DicomSeries:
    """One stackable series found by :func:`scan_dicom`.

    Attributes
    ----------
    key
        What ``--series`` takes: the SeriesInstanceUID, with ``#2``, ``#3`` … appended when
        one series UID had to be split (orientation, frame of reference, matrix size or
        acquisition differ).
    shape
        ``(columns, rows, slices)`` of the volume it loads into.
    spacing_mm
        Voxel size along (column, row, slice) in mm.
    affine
        4×4 voxel → RAS+ mm affine computed from the headers (see :func:`read_dicom_series`).
    warnings
        Problems found (gaps, non-uniform spacing, tilt, duplicates …); safe to show.
    problems
        Reasons the series cannot be stacked on a regular grid; loading raises on them.
    notes
        Facts worth knowing that are not problems (rescale applied, multi-frame).
    """

    key: str
    study_uid: str
    series_uid: str
    modality: str
    description: str
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    affine: np.ndarray
    orientation_codes: str
    has_geometry: bool
    transfer_syntaxes: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    slices: tuple[SliceHeader, ...] = field(default=(), repr=False)

    @property
    def n_slices(self) -> int:
        """Number of slices (frames) in the stack."""
        return len(self.slices)

    @property
    def files(self) -> list[Path]:
        """Files in slice order (each once; zip members as ``archive.zip/member``)."""
        seen: dict[str, Path] = {}
        for header in self.slices:
            ref = header.ref
            path = ref.path / ref.member if ref.member else ref.path
            seen.setdefault(str(ref), path)
        return list(seen.values())

    def summary(self) -> dict[str, object]:
        """JSON-ready facts (no PHI fields beyond the series description)."""
        return {
            "key": self.key,
            "modality": self.modality,
            "description": self.description,
            "n_slices": self.n_slices,
            "shape": list(self.shape),
            "spacing_mm": [round(s, 6) for s in self.spacing_mm],
            "orientation": self.orientation_codes,
            "affine_ras": np.round(self.affine, 6).tolist(),
            "transfer_syntaxes": list(self.transfer_syntaxes),
            "warnings": list(self.warnings),
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class DicomScan:
    """Result of :func:`scan_dicom`: the series found and the files skipped (with reason)."""

    series: list[DicomSeries]
    skipped: list[tuple[str, str]]
    n_files: int


# --------------------------------------------------------------------------- headers


def _floats(value: object, n: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == n and all(np.isfinite(numbers)) else None


def _float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _native_layout(ds: pydicom.Dataset, fp: io.BufferedIOBase, size: int) -> NativePixels | None:
    """Locate uncompressed single-sample pixel data right after the header just read.

    pydicom leaves ``fp`` at the (7FE0,0010) tag when it stops before the pixels; the
    element header is checked here, and anything unexpected returns None (pydicom then
    decodes the file instead).
    """
    syntax = _NATIVE_SYNTAXES.get(str(ds.file_meta.get("TransferSyntaxUID", "")))
    bits = int(ds.get("BitsAllocated", 0) or 0)
    if syntax is None or bits not in (8, 16, 32) or int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        return None
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        return None
    byte_order, explicit = syntax
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return None
    endian: Literal["little", "big"] = "little" if byte_order == "<" else "big"
    group = int.from_bytes(head[0:2], endian)
    element = int.from_bytes(head[2:4], endian)
    if (group, element) != (0x7FE0, 0x0010):
        return None
    if explicit:
        if head[4:6] not in (b"OW", b"OB"):
            return None
        length, header_bytes = int.from_bytes(head[8:12], endian), 12
    else:
        length, header_bytes = int.from_bytes(head[4:8], endian), 8
    expected = int(ds.Rows) * int(ds.Columns) * bits // 8
    if length == 0xFFFFFFFF or length < expected:
        return None
    if start + header_bytes + expected > size:
        raise InputError(
            f"truncated file: pixel data needs {expected} bytes, "
            f"{max(size - start - header_bytes, 0)} present"
        )
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    kind = "i" if signed else "u"
    dtype = f"{byte_order}{kind}{bits // 8}" if bits > 8 else f"|{kind}1"
    bits_stored = int(ds.get("BitsStored", bits) or bits)
    return NativePixels(
        offset=start + header_bytes, dtype=dtype, bits_stored=bits_stored, signed=signed
    )


def _frame_geometry(
    ds: pydicom.Dataset, index: int | None
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None, tuple[float, ...] | None]:
    """Position, orientation and pixel spacing of a frame (enhanced objects: functional
    groups, per-frame first, then shared; classic objects: top level)."""
    if index is None:
        return (
            _floats(ds.get("ImagePositionPatient"), 3),
            _floats(ds.get("ImageOrientationPatient"), 6),
            _floats(ds.get("PixelSpacing"), 2),
        )
    position = orientation = spacing = None
    groups = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and index < len(per_frame):
        groups.append(per_frame[index])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    for group in groups:
        if position is None and group.get("PlanePositionSequence"):
            position = _floats(group.PlanePositionSequence[0].get("ImagePositionPatient"), 3)
        if orientation is None and group.get("PlaneOrientationSequence"):
            orientation = _floats(
                group.PlaneOrientationSequence[0].get("ImageOrientationPatient"), 6
            )
        if spacing is None and group.get("PixelMeasuresSequence"):
            spacing = _floats(group.PixelMeasuresSequence[0].get("PixelSpacing"), 2)
    return (
        position or _floats(ds.get("ImagePositionPatient"), 3),
        orientation or _floats(ds.get("ImageOrientationPatient"), 6),
        spacing or _floats(ds.get("PixelSpacing"), 2),
    )


def _rescale(ds: pydicom.Dataset) -> tuple[float, float] | None:
    slope, intercept = _float(ds.get("RescaleSlope")), _float(ds.get("RescaleIntercept"))
    if slope is None and intercept is None:
        shared = ds.get("SharedFunctionalGroupsSequence")
        if shared and shared[0].get("PixelValueTransformationSequence"):
            item = shared[0].PixelValueTransformationSequence[0]
            slope, intercept = (
                _float(item.get("RescaleSlope")),
                _float(item.get("RescaleIntercept")),
            )
    if slope is None and intercept is None:
        return None
    return (slope if slope not in (None, 0.0) else 1.0, intercept or 0.0)


def read_slice_headers(ref: FileRef) -> list[SliceHeader]:
    """Read one file's header (no pixel data) into one SliceHeader per frame.

    Raises
    ------
    InvalidDicomError
        If the file is not DICOM (no ``DICM`` preamble).
    InputError
        If the header is DICOM but unreadable or has no pixel data description.
    """
    data = None if ref.member is None else ref.read_bytes()
    with open(ref.path, "rb") if data is None else io.BytesIO(data) as fp:
        size = os.fstat(fp.fileno()).st_size if data is None else len(data)
        try:
            with warnings.catch_warnings():  # pydicom warns per odd value; we report instead
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
        except InvalidDicomError:
            raise
        except Exception as err:  # pydicom raises many kinds on broken headers
            raise InputError(f"unreadable DICOM header ({type(err).__name__})") from err
        # pydicom stops at the Pixel Data tag; at end of file there is no pixel data.
        at_end = fp.tell() >= size
        try:
            native = None if at_end else _native_layout(ds, fp, size)  # type: ignore[arg-type]
        except InputError:
            raise
        except Exception:  # odd element layouts: pydicom decodes the pixels instead
            native = None
    if "Rows" not in ds or "Columns" not in ds:
        raise InputError(
            "DICOM object without an image (no Rows/Columns): not a pixel series "
            "(e.g. SR, RTSTRUCT) or a truncated file"
        )
    if at_end:
        raise InputError("no pixel data: the file ends after the header (truncated?)")
    n_frames = int(_float(ds.get("NumberOfFrames")) or 1)
    common = {
        "ref": ref,
        "n_frames": n_frames,
        "study_uid": _text(ds, "StudyInstanceUID"),
        "series_uid": _text(ds, "SeriesInstanceUID") or "unknown-series",
        "sop_uid": _text(ds, "SOPInstanceUID") or str(ref),
        "frame_of_reference": _text(ds, "FrameOfReferenceUID"),
        "acquisition": _text(ds, "AcquisitionNumber"),
        "modality": _text(ds, "Modality"),
        "description": _text(ds, "SeriesDescription"),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "samples": int(ds.get("SamplesPerPixel", 1) or 1),
        "transfer_syntax": str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2")),
        "thickness_mm": _float(ds.get("SliceThickness")),
        "gantry_tilt_deg": _float(ds.get("GantryDetectorTilt")) or 0.0,
        "rescale": _rescale(ds),
        "has_modality_lut": "ModalityLUTSequence" in ds,
        "native": native,
    }
    frames: list[int | None] = [None] if n_frames == 1 else list(range(n_frames))
    headers = []
    for index in frames:
        position, orientation, spacing = _frame_geometry(ds, index)
        headers.append(
            SliceHeader(
                frame=index,
                position_lps=position,  # type: ignore[arg-type]
                orientation=orientation,
                pixel_spacing_mm=spacing,  # type: ignore[arg-type]
                **common,  # type: ignore[arg-type]
            )
        )
    return headers


def _iter_refs(source: Path) -> Iterator[FileRef]:
    if source.is_dir():
        for root, dirs, files in os.walk(source):
            dirs.sort()
            for name in sorted(files):
                yield FileRef(Path(root) / name)
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield FileRef(source, info.filename)
    else:
        yield FileRef(source)


# --------------------------------------------------------------------------- grouping


def _orientation_group(groups: list[list[SliceHeader]], header: SliceHeader) -> int:
    for index, group in enumerate(groups):
        first = group[0]
        if (
            first.frame_of_reference == header.frame_of_reference
            and (first.rows, first.columns, first.samples)
            == (header.rows, header.columns, header.samples)
            and (first.n_frames > 1) == (header.n_frames > 1)
            and (first.orientation is None) == (header.orientation is None)
            and (
                first.orientation is None
                or np.allclose(
                    np.asarray(first.orientation),
                    np.asarray(header.orientation),
                    atol=ORIENTATION_TOLERANCE,
                )
            )
        ):
            return index
    groups.append([])
    return len(groups) - 1


def _normal(orientation: tuple[float, ...]) -> np.ndarray:
    row, column = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    normal = np.cross(row, column)
    return normal / (np.linalg.norm(normal) or 1.0)


def _split_series(headers: list[SliceHeader]) -> tuple[list[list[SliceHeader]], list[str]]:
    """Split one SeriesInstanceUID into stackable groups; return the groups and why."""
    groups: list[list[SliceHeader]] = []
    for header in headers:
        groups[_orientation_group(groups, header)].append(header)
    reasons = []
    if len(groups) > 1:
        kinds = set()
        for group in groups[1:]:
            a, b = groups[0][0], group[0]
            if a.frame_of_reference != b.frame_of_reference:
                kinds.add("frame of reference")
            if (a.rows, a.columns, a.samples) != (b.rows, b.columns, b.samples):
                kinds.add("rows/columns")
            if (a.n_frames > 1) != (b.n_frames > 1):
                kinds.add("single-/multi-frame")
            if (
                a.orientation is not None
                and b.orientation is not None
                and not np.allclose(a.orientation, b.orientation, atol=ORIENTATION_TOLERANCE)
            ):
                kinds.add("orientation")
        reasons.append("mixed " + ", ".join(sorted(kinds)))
    # Repeated acquisitions in one series: split by AcquisitionNumber only when positions
    # repeat (some scanners number every slice as its own acquisition).
    split: list[list[SliceHeader]] = []
    for group in groups:
        unique = _drop_duplicate_files(group)[0]
        positions = Counter(
            _position_key(h) for h in unique if h.position_lps is not None and h.frame is None
        )
        acquisitions = {h.acquisition for h in unique}
        if positions and max(positions.values()) > 1 and len(acquisitions) > 1:
            for acquisition in sorted(acquisitions):
                split.append([h for h in group if h.acquisition == acquisition])
            reasons.append("repeated acquisitions")
        else:
            split.append(group)
    return split, reasons


def _position_key(header: SliceHeader) -> tuple[float, ...]:
    return tuple(np.round(np.asarray(header.position_lps), 3))


def _drop_duplicate_files(headers: list[SliceHeader]) -> tuple[list[SliceHeader], list[str]]:
    seen: dict[tuple[str, int | None], SliceHeader] = {}
    dropped = []
    for header in headers:
        key = (header.sop_uid, header.frame)
        if key in seen:
            dropped.append(str(header.ref))
        else:
            seen[key] = header
    return list(seen.values()), dropped


# --------------------------------------------------------------------------- stacking


def _build_series(key: str, headers: list[SliceHeader], split_reasons: list[str]) -> DicomSeries:
    warnings: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    headers, dropped = _drop_duplicate_files(headers)
    if dropped:
        warnings.append(
            f"{len(dropped)} duplicate file(s) (same SOPInstanceUID) ignored: "
            + ", ".join(Path(name).name for name in dropped[:5])
        )
    if split_reasons:
        warnings.append(f"SeriesInstanceUID split into several stacks ({'; '.join(split_reasons)})")
    first = headers[0]
    has_geometry = all(h.position_lps is not None and h.orientation is not None for h in headers)
    spacing = first.pixel_spacing_mm or (1.0, 1.0)
    if first.pixel_spacing_mm is None:
        warnings.append("no PixelSpacing: pixel size 1 mm assumed")
    if has_geometry:
        normal = _normal(first.orientation)  # type: ignore[arg-type]
        distances = np.array([float(np.dot(np.asarray(h.position_lps), normal)) for h in headers])
        order = np.argsort(distances, kind="stable")
        headers = [headers[i] for i in order]
        distances = distances[order]
    else:
        if len(headers) > 1:
            warnings.append(
                "no ImagePositionPatient/ImageOrientationPatient: slices stacked in "
                "frame/instance order, slice axis spacing 1 mm"
            )
        else:
            warnings.append("no patient geometry: pixel grid only (LPS-coded like a 2D image)")
        normal = np.array([0.0, 0.0, 1.0])
        distances = np.zeros(len(headers))
    slice_step = np.asarray(normal, dtype=np.float64) * (first.thickness_mm or 1.0)
    slice_spacing = float(first.thickness_mm or 1.0)
    if has_geometry and len(headers) > 1:
        steps = np.diff(distances)
        if np.any(steps < POSITION_TOLERANCE_MM):
            n_dup = int(np.sum(steps < POSITION_TOLERANCE_MM))
            problems.append(f"{n_dup} duplicate slice position(s) with different SOPInstanceUIDs")
        positive = steps[steps >= POSITION_TOLERANCE_MM]
        median = float(np.median(positive)) if positive.size else 0.0
        if median > 0:
            slice_spacing = median
            gaps = int(np.sum(steps > 1.5 * median))
            if gaps:
                problems.append(
                    f"{gaps} gap(s) larger than the median slice spacing {median:.4g} mm: "
                    "missing slice(s)"
                )
            deviation = float(np.max(np.abs(positive - median)))
            if not gaps and deviation > SPACING_TOLERANCE * median + 1e-4:
                problems.append(
                    f"non-uniform slice spacing: steps {positive.min():.4g}–{positive.max():.4g} mm"
                )
        first_position = np.asarray(headers[0].position_lps)
        last_position = np.asarray(headers[-1].position_lps)
        mean_step = (last_position - first_position) / (len(headers) - 1)
        along = float(np.dot(mean_step, normal))
        drift = float(np.linalg.norm(mean_step - along * normal))
        slice_step = normal * slice_spacing
        if drift > TILT_TOLERANCE_MM and along > 0:
            tilt = float(np.degrees(np.arctan2(drift, along)))
            warnings.append(
                f"gantry tilt {tilt:.2f}° (slices shift {drift:.3g} mm in-plane per slice): "
                "the affine is sheared to keep every voxel at its true position"
            )
            slice_step = mean_step
    if first.gantry_tilt_deg and not any("gantry tilt" in w for w in warnings):
        notes.append(f"GantryDetectorTilt {first.gantry_tilt_deg:g}° in header")
    if first.n_frames > 1:
        notes.append(f"multi-frame object: {first.n_frames} frames stacked as slices")
    rescales = {h.rescale for h in headers}
    if rescales != {None} and rescales != {(1.0, 0.0)}:
        slope, intercept = next(r for r in rescales if r is not None)
        notes.append(
            f"RescaleSlope/Intercept applied (slope {slope:g}, intercept {intercept:g}"
            + (", varies per slice" if len(rescales) > 1 else "")
            + ")"
        )
    if any(h.has_modality_lut for h in headers):
        notes.append("Modality LUT applied")
    lps = np.eye(4)
    if has_geometry:
        orientation = np.asarray(first.orientation)
        lps[:3, 0] = orientation[:3] * spacing[1]
        lps[:3, 1] = orientation[3:] * spacing[0]
        lps[:3, 2] = slice_step
        lps[:3, 3] = headers[0].position_lps  # type: ignore[assignment]
        affine = LPS_TO_RAS @ lps
    else:
        affine = np.diag([-spacing[1], -spacing[0], slice_spacing, 1.0])
    import nibabel.orientations as nio

    codes = "".join(nio.aff2axcodes(affine))
    return DicomSeries(
        key=key,
        study_uid=first.study_uid,
        series_uid=first.series_uid,
        modality=first.modality,
        description=first.description,
        shape=(first.columns, first.rows, len(headers)),
        spacing_mm=(float(spacing[1]), float(spacing[0]), float(np.linalg.norm(slice_step))),
        affine=affine,
        orientation_codes=codes,
        has_geometry=has_geometry,
        transfer_syntaxes=tuple(sorted({h.transfer_syntax for h in headers})),
        warnings=tuple(warnings),
        problems=tuple(problems),
        notes=tuple(notes),
        slices=tuple(headers),
    )


def scan_dicom(source: str | Path) -> DicomScan:
    """Find every DICOM image series under a folder, in a zip archive, or in one file.

    Only headers are read (pydicom ``stop_before_pixels``). Files are grouped by
    Study/Series Instance UID, then split where orientation, frame of reference,
    rows/columns or single-/multi-frame differ, and by AcquisitionNumber where positions
    repeat. Slices are sorted by their position projected on the slice normal
    (row direction × column direction), never by file name or InstanceNumber.
    Files that are not DICOM are ignored; DICOM files whose header cannot be read, and
    objects without pixel data (SR, RTSTRUCT …), are listed in ``skipped``.

    Raises
    ------
    InputError
        If ``source`` does not exist.
    """
    source = Path(source)
    if not source.exists():
        raise InputError("DICOM input not found (expected a folder, a .zip or a file)", path=source)
    by_series: dict[tuple[str, str], list[SliceHeader]] = {}
    skipped: list[tuple[str, str]] = []
    n_files = 0
    for ref in _iter_refs(source):
        n_files += 1
        try:
            headers = read_slice_headers(ref)
        except InvalidDicomError:
            logger.debug("not DICOM, ignored: %s", ref)
            continue
        except (InputError, OSError) as err:
            reason = err.message if isinstance(err, InputError) else type(err).__name__
            skipped.append((str(ref), reason))
            logger.warning("skipped %s: %s", ref, reason)
            continue
        for header in headers:
            by_series.setdefault((header.study_uid, header.series_uid), []).append(header)
    series: list[DicomSeries] = []
    for (_, series_uid), headers in by_series.items():
        groups, reasons = _split_series(headers)
        for index, group in enumerate(groups):
            key = series_uid if len(groups) == 1 else f"{series_uid}#{index + 1}"
            series.append(_build_series(key, group, reasons if len(groups) > 1 else []))
    return DicomScan(series=series, skipped=skipped, n_files=n_files)
