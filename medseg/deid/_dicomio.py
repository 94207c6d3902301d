"""Reading and writing DICOM for de-identification without leaking values into logs.

pydicom's validation warnings quote the offending value (a malformed name, an over-long ID):
that would put PHI into logs, so validation is silenced while medseg reads and writes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom import Dataset, config
from pydicom.errors import InvalidDicomError

_READ_ERRORS = (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, OSError)


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's validation, warnings and log for the block (they quote values)."""
    settings = config.settings
    saved = settings.reading_validation_mode, settings.writing_validation_mode
    pydicom_logger = logging.getLogger("pydicom")
    was_disabled = pydicom_logger.disabled
    settings.reading_validation_mode = config.IGNORE
    settings.writing_validation_mode = config.IGNORE
    pydicom_logger.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        settings.reading_validation_mode, settings.writing_validation_mode = saved
        pydicom_logger.disabled = was_disabled


def read_dataset(source: bytes | Path) -> Dataset | None:
    """Parse DICOM from bytes or a file; None if it is not DICOM.

    Files without the Part 10 preamble/meta header are accepted when they parse as a data
    set with a SOP Class and SOP Instance UID (old raw data sets).
    """
    stream: io.BytesIO | Path = io.BytesIO(source) if isinstance(source, bytes) else source
    with quiet_pydicom():
        try:
            return pydicom.dcmread(stream)
        except _READ_ERRORS:
            pass
        if isinstance(stream, io.BytesIO):
            stream.seek(0)
        try:
            ds = pydicom.dcmread(stream, force=True)
            if "SOPClassUID" in ds and "SOPInstanceUID" in ds:
                return ds
        except _READ_ERRORS:
            return None
    return None


def write_dataset(ds: Dataset) -> bytes:
    """Serialise ``ds`` as a Part 10 file (preamble, meta header) and return the bytes."""
    buffer = io.BytesIO()
    with quiet_pydicom():
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def find_pixel_data_problem(ds: Dataset) -> str | None:
    """Why the Pixel Data of ``ds`` is incomplete (a truncated file), or None if it is whole.

    Native data must hold Rows × Columns × Samples × Frames × BitsAllocated bits; for
    encapsulated (compressed) data every frame's fragments must be present.
    """
    if "PixelData" not in ds:
        has_other_pixels = "FloatPixelData" in ds or "DoubleFloatPixelData" in ds
        meta = getattr(ds, "file_meta", None)
        sop_class = ds.get("SOPClassUID") or (
            meta.get("MediaStorageSOPClassUID") if meta is not None else None
        )
        is_image_class = sop_class is not None and "Image Storage" in getattr(sop_class, "name", "")
        if ("Rows" in ds or is_image_class) and not has_other_pixels:
            return "an image object without pixel data (truncated before it?)"
        return None
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames") or 1)
        samples = int(ds.get("SamplesPerPixel") or 1)
        bits = int(ds.BitsAllocated)
        syntax = ds.file_meta.TransferSyntaxUID
        data = ds.PixelData
        if syntax.is_encapsulated:
            from pydicom.encaps import generate_frames

            found = sum(1 for _ in generate_frames(data, number_of_frames=frames))
            return None if found == frames else f"{found} of {frames} compressed frame(s)"
    except Exception as err:  # a header that cannot describe its pixels
        return f"pixel description unreadable ({type(err).__name__})"
    expected = (rows * columns * samples * frames * bits + 7) // 8
    if len(data) < expected:
        return f"{len(data)} of {expected} pixel bytes"
    return None
