"""DICOM discovery: read headers only, group files into series, sort and validate slices.

Hand-written on top of pydicom (``stop_before_pixels``, see :mod:`._dicom_header`) rather
than GDCM's scanner because the issue needs what GDCM does not report: the split of one
SeriesInstanceUID by orientation, frame of reference, matrix size or acquisition, a list
of skipped files with the reason, and explicit validation findings (gaps, duplicates,
tilt) before any pixel is decoded.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.errors import InvalidDicomError

from medseg.core import InputError
from medseg.io._dicom_header import FileRef, SliceHeader, read_slice_headers
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
        warnings.append(f"{len(dropped)} duplicate file(s) (same SOPInstanceUID) ignored")
    if any(h.burned_in_annotation for h in headers):
        warnings.append("BurnedInAnnotation YES: the pixels may show patient identity")
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
            logger.warning("skipped input file %d: %s", n_files, reason)  # no name: may be PHI
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
