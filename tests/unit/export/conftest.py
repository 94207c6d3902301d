"""A small synthetic single-frame CT series with an oblique orientation, written with pydicom.

Oblique and anisotropic on purpose: a writer that swaps rows and columns, flips an axis or
shifts by half a voxel puts contours and frames in the wrong place here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medseg.export import StructureCodeMap, load_structure_codes

ROWS, COLUMNS, SLICES = 24, 20, 6
PIXEL_SPACING_MM = (0.8, 0.6)  # (between rows, between columns)
SLICE_SPACING_MM = 2.5


def _rotation(angle_deg: float) -> np.ndarray:
    angle = np.deg2rad(angle_deg)
    return np.array(
        [[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0, 0, 1]]
    )


def write_series(
    folder: Path, *, blank_uids: bool = False, angle_deg: float = 20.0, seed: int = 0
) -> Path:
    """Write SLICES files of ROWS×COLUMNS CT in random file order (names carry no order)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rotation = _rotation(angle_deg) @ _rotation(0.0)
    row_direction = rotation @ np.array([1.0, 0.0, 0.0])  # along a row (column index)
    column_direction = rotation @ np.array([0.0, 1.0, 0.0])  # down a column (row index)
    normal = np.cross(row_direction, column_direction)
    origin = np.array([-12.0, 30.5, -100.25])
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for position, k in enumerate(rng.permutation(SLICES)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = "" if blank_uids else CTImageStorage
        ds.SOPInstanceUID = "" if blank_uids else meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = "" if blank_uids else study
        ds.SeriesInstanceUID = "" if blank_uids else series
        ds.FrameOfReferenceUID = frame
        ds.Modality = "CT"
        ds.PatientName = "Test^Synthetic"
        ds.PatientID = "SYN001"
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyDate = "20240101"
        ds.StudyTime = "120000"
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.SeriesNumber = 3
        ds.InstanceNumber = int(k) + 1
        ds.Manufacturer = "synthetic"
        ds.ImagePositionPatient = [float(v) for v in origin + k * SLICE_SPACING_MM * normal]
        ds.ImageOrientationPatient = [float(v) for v in (*row_direction, *column_direction)]
        ds.PixelSpacing = list(PIXEL_SPACING_MM)
        ds.SliceThickness = SLICE_SPACING_MM
        ds.Rows, ds.Columns = ROWS, COLUMNS
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        pixels = rng.integers(-100, 200, size=(ROWS, COLUMNS), dtype=np.int16)
        ds.PixelData = pixels.tobytes()
        pydicom.dcmwrite(folder / f"im{position:03d}.dcm", ds, enforce_file_format=True)
    return folder


@pytest.fixture
def synthetic_series(tmp_path: Path) -> Path:
    """Folder with the synthetic oblique CT series (UIDs present)."""
    return write_series(tmp_path / "series")


@pytest.fixture
def synthetic_labels() -> np.ndarray:
    """Label map (column, row, slice) with labels 1..3: a block, a ring with a hole, a dot."""
    labels = np.zeros((COLUMNS, ROWS, SLICES), dtype=np.uint8)
    labels[2:8, 3:12, 1:4] = 1
    labels[10:18, 10:20, 2:6] = 2
    labels[12:16, 13:17, 2:6] = 0  # hole inside label 2
    labels[0, 23, 5] = 3  # one voxel in a corner: touches the image border
    return labels


@pytest.fixture(scope="session")
def code_map(repo_root: Path) -> StructureCodeMap:
    """The shipped SNOMED CT code map (configs/export/structure_codes.yaml)."""
    return load_structure_codes(repo_root / "configs" / "export" / "structure_codes.yaml")
