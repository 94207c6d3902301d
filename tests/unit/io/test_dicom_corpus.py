"""Every file of the pydicom test corpus loads or gives a typed error (no traceback).

Outcome table (file → Volume shape, dtype), checked against pydicom's own decoding
(pylibjpeg/openjpeg/libjpeg/RLE plugins) as the oracle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

from medseg.cli import main
from medseg.core import InputError
from medseg.io import read_dicom_series, read_image, scan_dicom

CORPUS = Path(__file__).resolve().parents[3] / "data/dicom_corpus/pydicom_data"

#: file → (array shape (column, row, slice[, sample]), dtype); None: typed InputError.
EXPECTED: dict[str, tuple[tuple[int, ...], str] | None] = {
    "693_J2KR.dcm": ((512, 512, 1), "int16"),
    "JPEG-LL.dcm": ((256, 1024, 1), "int16"),
    "JPEG2000_UNC.dcm": ((256, 1024, 1), "int16"),
    "JPGLosslessP14SV1_1s_1f_8b.dcm": ((1024, 768, 1), "uint8"),
    "LICENSE.txt": None,
    "MR-SIEMENS-DICOM-WithOverlays.dcm": ((484, 484, 1), "uint16"),
    "MR2_J2KR.dcm": ((1024, 1024, 1), "float32"),
    "OBXXXX1A_rle_2frame.dcm": ((800, 600, 2), "uint8"),
    "RG3_J2KI.dcm": ((1760, 1760, 1), "uint16"),
    "SC_rgb_2frame.dcm": ((100, 100, 2, 3), "uint8"),
    "US1_J2KR.dcm": ((640, 480, 1, 3), "uint8"),
    "bad_sequence.dcm": ((512, 512, 1), "int16"),
    "eCT_Supplemental.dcm": ((512, 512, 2), "int16"),
    "emri_small.dcm": ((64, 64, 10), "uint16"),
    "emri_small_big_endian.dcm": ((64, 64, 10), "uint16"),
    "explicit_VR-UN.dcm": ((512, 512, 1), "int16"),
    "liver.dcm": ((512, 512, 3), "uint8"),
    "mlut_18.dcm": ((512, 512, 1), "uint16"),  # Modality LUT output
}


def test_table_covers_the_whole_corpus() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


def _oracle(path: Path) -> np.ndarray:
    """pydicom's decode, Modality LUT/rescale applied, in our slice order and axes."""
    ds = pydicom.dcmread(path)
    values = apply_modality_lut(ds.pixel_array, ds)
    shared = ds.get("SharedFunctionalGroupsSequence")
    if "RescaleSlope" not in ds and shared and "PixelValueTransformationSequence" in shared[0]:
        # Enhanced objects keep the rescale in a functional group, which pydicom's
        # apply_modality_lut does not read (DICOM PS3.3 C.7.6.16.2.9).
        item = shared[0].PixelValueTransformationSequence[0]
        values = values * float(item.RescaleSlope) + float(item.RescaleIntercept)
    (series,) = scan_dicom(path).series
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        values = np.stack([values[h.frame] for h in series.slices])
    else:
        values = values[None]
    return np.moveaxis(values, (0, 1, 2), (2, 1, 0))


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_loads_or_gives_typed_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = CORPUS / name
    expected = EXPECTED[name]
    code = main(["convert", str(path), str(tmp_path / "out.nii.gz")])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if expected is None:
        assert code == 4
        with pytest.raises(InputError):
            read_image(path)
        with pytest.raises(InputError, match="no DICOM image series found"):
            read_dicom_series(path)
        return
    assert code == 0, err
    volume = read_image(path)
    shape, dtype = expected
    assert volume.array.shape == shape
    assert volume.array.dtype == np.dtype(dtype)
    np.testing.assert_allclose(volume.array, _oracle(path), rtol=1e-6)


def test_big_endian_equals_little_endian() -> None:
    little = read_image(CORPUS / "emri_small.dcm")
    big = read_image(CORPUS / "emri_small_big_endian.dcm")
    np.testing.assert_array_equal(little.array, big.array)


def test_truncated_compressed_file_is_a_typed_error(tmp_path: Path) -> None:
    data = (CORPUS / "RG3_J2KI.dcm").read_bytes()
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError):
        read_image(broken)
    assert main(["convert", str(broken), str(tmp_path / "x.nii.gz")]) == 4
