"""Overlay montage: a PNG with three planes, in radiological orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.core import GeometryError, OutputExistsError
from medseg.export import build_structures, write_overlay_montage, write_volume_overlay
from medseg.export._overlay import _display_planes
from medseg.io import Volume, reorient


def test_planes_are_radiological() -> None:
    # LPS grid: i right→left, j anterior→posterior, k inferior→superior.
    labels = np.zeros((10, 12, 8), dtype=np.uint8)
    labels[1, 2, 6] = 1  # patient right, anterior, superior
    labels[1, 2, 5] = 1
    labels[1, 2, 7] = 1
    image = np.zeros(labels.shape, dtype=np.float32)
    planes = {
        name.split()[0]: plane for name, _, plane, _ in _display_planes(image, labels, (1, 1, 1))
    }
    # Axial: right on the image left, anterior at the top.
    assert np.argwhere(planes["axial"])[0].tolist() == [2, 1]
    # Coronal: right on the left, superior at the top (k=7 → row 0).
    assert np.argwhere(planes["coronal"])[:, 1].tolist() == [1, 1, 1]
    assert np.argwhere(planes["coronal"])[:, 0].min() == 0
    # Sagittal: anterior on the left, superior at the top.
    assert np.argwhere(planes["sagittal"])[:, 1].tolist() == [2, 2, 2]


def test_volume_overlay_writes_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = Volume(
        array=rng.normal(40, 50, (30, 28, 10)).astype(np.float32),
        affine=np.diag([0.8, 0.8, 3.0, 1.0]),
        metadata={"modality": "CT"},
    )
    labels = np.zeros((30, 28, 10), dtype=np.uint8)
    labels[5:15, 5:12, 2:7] = 1
    labels[18:25, 10:20, 4:9] = 4
    mask = reorient(image.with_array(labels), "LPS")  # another orientation than the image
    structures = build_structures([1, 4], names={1: "liver", 4: "spleen"})
    path = write_volume_overlay(image, mask, structures, tmp_path / "o.png", title="t")
    with Image.open(path) as png:
        assert png.size == (1500, 560)
    with pytest.raises(OutputExistsError):
        write_volume_overlay(image, mask, structures, path)


def test_montage_shape_mismatch_is_geometry_error(tmp_path: Path) -> None:
    with pytest.raises(GeometryError):
        write_overlay_montage(
            np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), (1, 1, 1), [], tmp_path / "x.png"
        )
