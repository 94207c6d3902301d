"""Direct reads of uncompressed pixel data agree with pydicom's decoder for every native
transfer syntax and for BitsStored < BitsAllocated (masking / sign extension)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medseg.io import read_dicom_series, scan_dicom


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]
)
@pytest.mark.parametrize(("bits_stored", "signed"), [(16, 1), (12, 1), (12, 0), (16, 0)])
def test_native_read_equals_pydicom(
    ct_slices: list[pydicom.Dataset], tmp_path: Path, syntax: str, bits_stored: int, signed: int
) -> None:
    rng = np.random.default_rng(bits_stored + 10 * signed)
    ds = copy.deepcopy(ct_slices[0])
    raw = rng.integers(0, 65536, size=(ds.Rows, ds.Columns), dtype=np.uint16)  # noisy high bits
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, signed
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = raw.astype(">u2" if syntax == ExplicitVRBigEndian else "<u2").tobytes()
    ds.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / "slice.dcm"
    pydicom.dcmwrite(
        path,
        ds,
        implicit_vr=syntax == ImplicitVRLittleEndian,
        little_endian=syntax != ExplicitVRBigEndian,
        force_encoding=True,
    )
    (series,) = scan_dicom(tmp_path).series
    assert series.slices[0].native is not None  # the direct-read path is the one tested
    volume = read_dicom_series(tmp_path)
    reference = pydicom.dcmread(path)
    expected = reference.pixel_array.astype(np.int64) - 1024
    np.testing.assert_array_equal(volume.array[:, :, 0], expected.T)
