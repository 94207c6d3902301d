"""Fixtures that build DICOM series by copying the real CT slices into tmp_path."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

SeriesFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def ct_slices(ct_dicom_dir: Path) -> list[pydicom.Dataset]:
    """The 20 real CT slices, decompressed (explicit VR little endian), in file order."""
    datasets = []
    for path in sorted(ct_dicom_dir.iterdir()):
        ds = pydicom.dcmread(path)
        ds.decompress()
        datasets.append(ds)
    return datasets


@pytest.fixture
def make_series(
    ct_slices: list[pydicom.Dataset], tmp_path_factory: pytest.TempPathFactory
) -> SeriesFactory:
    """Write ``n`` real CT slices as a new series with chosen geometry.

    ``row``/``column`` are direction cosines (LPS), slice k sits at
    ``origin + k * step`` (``step`` defaults to the normal times ``spacing_mm``); file
    names are ``names[k]`` (default ``slice_k.dcm``).
    """

    def factory(
        *,
        n: int = 6,
        row: Sequence[float] = (1.0, 0.0, 0.0),
        column: Sequence[float] = (0.0, 1.0, 0.0),
        spacing_mm: float = 2.5,
        step: Sequence[float] | None = None,
        origin: Sequence[float] = (-250.0, -250.0, -800.0),
        names: Sequence[str] | None = None,
        series_uid: str | None = None,
        folder: Path | None = None,
    ) -> Path:
        out = folder or tmp_path_factory.mktemp("series")
        out.mkdir(parents=True, exist_ok=True)
        row_v, col_v = np.asarray(row, float), np.asarray(column, float)
        normal = np.cross(row_v, col_v)
        step_v = np.asarray(step, float) if step is not None else normal * spacing_mm
        uid = series_uid or generate_uid()
        for k in range(n):
            ds = copy.deepcopy(ct_slices[k % len(ct_slices)])
            ds.SeriesInstanceUID = uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = k + 1
            ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_v, *col_v)]
            ds.ImagePositionPatient = [f"{v:.5f}" for v in np.asarray(origin) + k * step_v]
            name = names[k] if names is not None else f"slice_{k:03d}.dcm"
            ds.save_as(out / name, enforce_file_format=True)
        return out

    return factory
