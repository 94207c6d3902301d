"""Generate the hostile and broken input corpus (seeded, reproducible).

Every file is derived from the repository's real sample data or made from scratch:
zero-byte, truncated, wrong-magic and random-byte DICOM/NIfTI/PNG files; DICOM with absurd
dimensions, missing pixel data, wrong VR lengths, NaN rescale values, path traversal,
control characters and very long values in text fields, BurnedInAnnotation YES; NIfTI with
NaN/Inf voxels, absurd header dimensions, a header claiming 2 GiB in 352 bytes (raw and
gzip) and a valid 2D image; and byte-mutated copies of real files.

    python tests/hostile/generate_corpus.py OUT_DIR   # writes the files and corpus.json
"""

from __future__ import annotations

import copy
import gzip
import json
import struct
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian

REPO_ROOT = Path(__file__).resolve().parents[2]
CT_DIR = REPO_ROOT / "data/ct_totalsegmentator/example_ct_dicom"
NIFTI_SOURCE = REPO_ROOT / "data/ct_msd_spleen/sub-spleen2_ct.nii.gz"
PNG_SOURCE = next(iter(sorted((REPO_ROOT / "data/cells_dsb2018/test/images").glob("*.png"))))
SEED = 20261129

HOSTILE_STRINGS = {
    "traversal": "../../../../etc/passwd",
    "absolute": "/etc/shadow",
    "windows_traversal": "..\\..\\windows\\system32",
    "control": "A\x00B\x07C\x1b[31mD\r\nE",
    "long": "X" * 70_000,
    "format": "%s%n{0}{__class__}",
}


@dataclass(frozen=True)
class CorpusCase:
    """One generated input: its file, its format and what was done to it."""

    name: str
    path: str
    kind: str  # dicom | nifti | png
    mutation: str


def _first_ct_slice() -> pydicom.Dataset:
    path = sorted(CT_DIR.iterdir())[0]
    dataset = pydicom.dcmread(path)
    # A real 128×128 crop, uncompressed, so files stay small and byte surgery hits the
    # real structure.
    crop = np.ascontiguousarray(dataset.pixel_array[192:320, 192:320])
    dataset.decompress(generate_instance_uid=False)
    dataset.Rows, dataset.Columns = crop.shape
    dataset.PixelData = crop.tobytes()
    return dataset


def _save_dicom(dataset: pydicom.Dataset, path: Path) -> None:
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.save_as(path, enforce_file_format=True)


def _dicom_cases(out: Path, rng: np.random.Generator) -> list[CorpusCase]:
    cases: list[CorpusCase] = []
    base = _first_ct_slice()
    good = out / "dicom_good.dcm"
    _save_dicom(copy.deepcopy(base), good)
    raw = good.read_bytes()

    def add(name: str, data: bytes, mutation: str) -> None:
        path = out / f"{name}.dcm"
        path.write_bytes(data)
        cases.append(CorpusCase(name, path.name, "dicom", mutation))

    add("dicom_zero_byte", b"", "zero bytes")
    for fraction in (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.999):
        cut = max(1, int(len(raw) * fraction))
        add(f"dicom_truncated_{cut}", raw[:cut], f"truncated at byte {cut}")
    add("dicom_wrong_magic", raw[:128] + b"DICX" + raw[132:], "DICM magic replaced")
    add("dicom_no_preamble_garbage", b"\x00" * 10 + raw[132:], "preamble and magic lost")
    for index in range(8):
        size = int(rng.integers(1, 4096))
        add(f"dicom_random_{index}", rng.bytes(size), f"{size} random bytes")
    # Wrong VR length: make the first explicit-VR data element's length absurd.
    offset = raw.index(b"\x08\x00\x16\x00")  # (0008,0016) SOPClassUID after the meta
    broken = bytearray(raw)
    broken[offset + 6 : offset + 8] = struct.pack("<H", 0xFFF0)
    add("dicom_wrong_vr_length", bytes(broken), "element length 0xFFF0")
    broken = bytearray(raw)
    pixel_offset = raw.rindex(b"\xe0\x7f\x10\x00")
    broken[pixel_offset + 8 : pixel_offset + 12] = struct.pack("<I", 0x7FFFFFF0)
    add("dicom_pixel_length_huge", bytes(broken), "pixel data length 2 GB")

    def variant(name: str, mutation: str, change: object) -> None:
        dataset = copy.deepcopy(base)
        change(dataset)  # type: ignore[operator]
        path = out / f"{name}.dcm"
        _save_dicom(dataset, path)
        cases.append(CorpusCase(name, path.name, "dicom", mutation))

    variant(
        "dicom_absurd_dims",
        "Rows/Columns 65535",
        lambda d: setattr(d, "Rows", 65535) or setattr(d, "Columns", 65535),
    )
    variant("dicom_zero_dims", "Rows 0", lambda d: setattr(d, "Rows", 0))
    variant("dicom_no_pixel_data", "PixelData removed", lambda d: delattr(d, "PixelData"))
    variant(
        "dicom_short_pixel_data",
        "PixelData half its length",
        lambda d: setattr(d, "PixelData", d.PixelData[: len(d.PixelData) // 2]),
    )
    variant("dicom_bits_allocated_7", "BitsAllocated 7", lambda d: setattr(d, "BitsAllocated", 7))
    variant("dicom_nan_rescale", "RescaleSlope NaN", lambda d: setattr(d, "RescaleSlope", "NaN"))
    variant(
        "dicom_inf_rescale", "RescaleIntercept inf", lambda d: setattr(d, "RescaleIntercept", "inf")
    )
    variant(
        "dicom_bad_orientation",
        "ImageOrientationPatient all zeros",
        lambda d: setattr(d, "ImageOrientationPatient", [0, 0, 0, 0, 0, 0]),
    )
    variant(
        "dicom_no_position",
        "ImagePositionPatient removed",
        lambda d: delattr(d, "ImagePositionPatient"),
    )
    for label, text in HOSTILE_STRINGS.items():
        for keyword in (
            "PatientName",
            "PatientID",
            "SeriesDescription",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "SOPInstanceUID",
            "InstitutionName",
        ):

            def set_value(d: pydicom.Dataset, k: str = keyword, v: str = text) -> None:
                setattr(d, k, v)
                if k == "SOPInstanceUID":
                    d.file_meta.MediaStorageSOPInstanceUID = v

            variant(f"dicom_{keyword}_{label}", f"{keyword} = {label} string", set_value)
    variant(
        "dicom_burned_in_annotation",
        "BurnedInAnnotation YES (pixels may show identity)",
        lambda d: setattr(d, "BurnedInAnnotation", "YES"),
    )
    for index in range(150):
        data = bytearray(raw)
        flips = int(rng.integers(1, 40))
        for position in rng.integers(0, len(data), size=flips):
            data[int(position)] = int(rng.integers(0, 256))
        add(f"dicom_mutated_{index:03d}", bytes(data), f"{flips} random bytes overwritten")
    good.unlink()
    return cases


def _nifti_bytes(image: nib.Nifti1Image, out: Path) -> bytes:
    """Uncompressed NIfTI bytes (gzip is applied by the caller with mtime 0: reproducible)."""
    path = out / "scratch.nii"
    nib.save(image, path)
    data = path.read_bytes()
    path.unlink()
    return data


def _nifti_cases(out: Path, rng: np.random.Generator) -> list[CorpusCase]:
    cases: list[CorpusCase] = []
    source = nib.load(NIFTI_SOURCE)
    crop = np.asarray(source.dataobj[40:88, 40:88, 8:16], dtype=np.float32)  # real, small
    raw = _nifti_bytes(nib.Nifti1Image(crop, source.affine), out)
    raw_gz = gzip.compress(raw, mtime=0)

    def add(name: str, data: bytes, mutation: str, suffix: str = ".nii.gz") -> None:
        path = out / f"{name}{suffix}"
        path.write_bytes(data)
        cases.append(CorpusCase(name, path.name, "nifti", mutation))

    add("nifti_zero_byte", b"", "zero bytes")
    for fraction in (0.01, 0.2, 0.5, 0.9):
        cut = int(len(raw_gz) * fraction)
        add(f"nifti_gz_truncated_{cut}", raw_gz[:cut], f"gzip stream cut at {cut}")
        cut = int(len(raw) * fraction)
        add(f"nifti_truncated_{cut}", raw[:cut], f"uncompressed file cut at {cut}", ".nii")
    add("nifti_wrong_magic", raw[:344] + b"xx1\x00" + raw[348:], "magic n+1 replaced", ".nii")
    add("nifti_not_gzip", rng.bytes(2048), "random bytes named .nii.gz")
    add("nifti_random", rng.bytes(2048), "random bytes", ".nii")
    header = bytearray(raw)
    header[40:56] = struct.pack("<8h", 3, 32767, 32767, 32767, 1, 1, 1, 1)
    add("nifti_absurd_dims", bytes(header), "dim = 32767^3 with a tiny payload", ".nii")
    header = bytearray(raw)
    header[40:56] = struct.pack("<8h", 3, -5, 10, 10, 1, 1, 1, 1)
    add("nifti_negative_dim", bytes(header), "negative dimension", ".nii")
    # a 93-byte-class file whose header claims 1024 x 1024 x 512 float32 (2 GiB)
    claims = bytearray(raw[:352])
    claims[40:56] = struct.pack("<8h", 3, 1024, 1024, 512, 1, 1, 1, 1)
    add("nifti_header_claims_2gib", bytes(claims), "header claims 2 GiB, file 352 bytes", ".nii")
    add(
        "nifti_gz_header_claims_2gib",
        gzip.compress(bytes(claims), mtime=0),
        "gzip: header claims 2 GiB beyond deflate's 1032:1",
    )
    flat = nib.Nifti1Image(crop[:, :, 0], source.affine)
    add("nifti_2d_valid", gzip.compress(_nifti_bytes(flat, out), mtime=0), "valid 2D NIfTI")
    for name, value in (("nan", np.nan), ("inf", np.inf)):
        array = np.zeros((8, 9, 10), dtype=np.float32)
        array[2:5, 3:6, 4:7] = 1.0
        array[0, 0, 0] = value
        image = nib.Nifti1Image(array, np.diag([0.8, 0.8, 2.5, 1.0]))
        add(
            f"nifti_{name}_voxels",
            gzip.compress(_nifti_bytes(image, out), mtime=0),
            f"{name} voxel",
        )
    header = nib.Nifti1Header()
    header.set_data_shape((4, 4, 4))
    header.set_data_dtype(np.uint8)
    for row in ("srow_x", "srow_y", "srow_z"):
        header[row] = 0.0
    header["sform_code"] = 1
    header["qform_code"] = 0
    image = nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), None, header=header)
    add(
        "nifti_singular_affine", gzip.compress(_nifti_bytes(image, out), mtime=0), "all-zero affine"
    )
    for index in range(40):
        data = bytearray(raw)
        flips = int(rng.integers(1, 20))
        for position in rng.integers(0, 348, size=flips):  # the header
            data[int(position)] = int(rng.integers(0, 256))
        add(f"nifti_mutated_{index:02d}", bytes(data), f"{flips} header bytes overwritten", ".nii")
    return cases


def _png_cases(out: Path, rng: np.random.Generator) -> list[CorpusCase]:
    cases: list[CorpusCase] = []
    raw = PNG_SOURCE.read_bytes()

    def add(name: str, data: bytes, mutation: str) -> None:
        path = out / f"{name}.png"
        path.write_bytes(data)
        cases.append(CorpusCase(name, path.name, "png", mutation))

    add("png_zero_byte", b"", "zero bytes")
    for fraction in (0.001, 0.05, 0.3, 0.6, 0.95):
        cut = max(1, int(len(raw) * fraction))
        add(f"png_truncated_{cut}", raw[:cut], f"truncated at byte {cut}")
    add("png_wrong_magic", b"\x89PNX" + raw[4:], "PNG signature broken")
    add("png_random", rng.bytes(4096), "random bytes")
    add("png_is_dicom", (sorted(CT_DIR.iterdir())[0]).read_bytes()[:4096], "DICOM bytes")
    for index in range(40):
        data = bytearray(raw)
        flips = int(rng.integers(1, 30))
        for position in rng.integers(8, len(data), size=flips):
            data[int(position)] = int(rng.integers(0, 256))
        add(f"png_mutated_{index:02d}", bytes(data), f"{flips} random bytes overwritten")
    return cases


def generate_corpus(out: Path, *, seed: int = SEED) -> list[CorpusCase]:
    """Write the corpus into ``out`` (created) and return its cases; same seed, same bytes."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    warnings.filterwarnings("ignore", module="pydicom")  # we write invalid values on purpose
    cases = _dicom_cases(out, rng) + _nifti_cases(out, rng) + _png_cases(out, rng)
    (out / "corpus.json").write_text(json.dumps([asdict(c) for c in cases], indent=1))
    return cases


if __name__ == "__main__":
    corpus = generate_corpus(Path(sys.argv[1]))
    print(f"{len(corpus)} cases written to {sys.argv[1]}")
