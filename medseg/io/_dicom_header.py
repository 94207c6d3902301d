"""DICOM headers: read one file's header (no pixel data) into one record per frame.

Hand-written on top of pydicom (``stop_before_pixels``): the records carry exactly what
discovery, validation and the direct pixel read need (geometry per frame from the
functional groups of enhanced objects, rescale, and where uncompressed pixel data lie).
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from medseg.core import InputError

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
    burned_in_annotation: bool = False  # BurnedInAnnotation YES: the pixels may show PHI


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
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        value = ds.get(keyword)
        if value not in (None, "") and _float(value) is None:
            raise InputError(
                f"{keyword} is not a finite number; the pixel values cannot be "
                "converted to modality units"
            )
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
    try:
        return _slice_headers_from(ds, ref, native=native, at_end=at_end)
    except InputError:
        raise
    except Exception as err:  # pydicom parses elements lazily: a broken one fails here
        raise InputError(f"unreadable DICOM header element ({type(err).__name__})") from err


def _slice_headers_from(
    ds: pydicom.Dataset, ref: FileRef, *, native: NativePixels | None, at_end: bool
) -> list[SliceHeader]:
    """The per-frame headers of a parsed dataset; checks dimensions and orientation."""
    if "Rows" not in ds or "Columns" not in ds:
        raise InputError(
            "DICOM object without an image (no Rows/Columns): not a pixel series "
            "(e.g. SR, RTSTRUCT) or a truncated file"
        )
    if at_end:
        raise InputError("no pixel data: the file ends after the header (truncated?)")
    if int(ds.Rows) < 1 or int(ds.Columns) < 1:
        raise InputError(f"image has {ds.Rows} rows and {ds.Columns} columns; expected >= 1")
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
        "burned_in_annotation": _text(ds, "BurnedInAnnotation").upper() == "YES",
    }
    frames: list[int | None] = [None] if n_frames == 1 else list(range(n_frames))
    headers = []
    for index in frames:
        position, orientation, spacing = _frame_geometry(ds, index)
        if orientation is not None and (
            np.linalg.norm(orientation[:3]) < 1e-3 or np.linalg.norm(orientation[3:]) < 1e-3
        ):
            raise InputError("ImageOrientationPatient has a zero direction vector")
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
