"""The confidence as a FRACTIONAL SEG: validates, references the source, reloads exactly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medseg.export import (
    read_dicom_seg,
    read_source_series,
    validate_dicom_iod,
    write_confidence_maps,
    write_confidence_seg,
)
from medseg.io import Volume, read_image, reorient
from medseg.segment import Confidence


def _confidence(series_volume: Volume, labels: np.ndarray) -> tuple[Confidence, np.ndarray]:
    """A confidence in RAS order (as a NIfTI-side segmenter holds it) and its values on the
    series' grid, channel per label value 1, 2."""
    rng = np.random.default_rng(7)
    kidney = np.where(labels == 2, rng.uniform(0.5, 1.0, labels.shape), 0.0)
    liver = np.where(labels == 1, rng.uniform(0.5, 1.0, labels.shape), 0.0)
    liver += np.where(labels == 0, rng.uniform(0.0, 0.3, labels.shape), 0.0)
    on_series = np.stack([liver, kidney], axis=-1).astype(np.float16)
    held = np.stack([kidney, liver], axis=-1).astype(np.float16)  # structure_ids (2, 1)
    volume = reorient(series_volume.with_array(held), "RAS")
    assert not np.array_equal(volume.array, held)
    confidence = Confidence(probability=volume, structure_ids=(2, 1), source="softmax")
    return confidence, on_series.astype(np.float32)


def test_fractional_confidence_seg_validates_and_reloads(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path
) -> None:
    series = read_source_series(synthetic_series)
    confidence, on_series = _confidence(series.volume, synthetic_labels)
    path = write_confidence_seg(
        confidence, series, tmp_path / "confidence_seg.dcm", names={1: "liver", 2: "kidney_left"}
    )
    ds = pydicom.dcmread(path)
    assert ds.SegmentationType == "FRACTIONAL"
    assert ds.SegmentationFractionalType == "PROBABILITY"
    assert ds.MaximumFractionalValue == 255
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series.datasets[0].SeriesInstanceUID
    assert ds.FrameOfReferenceUID == series.datasets[0].FrameOfReferenceUID
    back, names = read_dicom_seg(path, series)
    assert names == {1: "liver", 2: "kidney_left"}  # segments sorted by label value
    # voxel-exact up to the 8-bit quantisation (half a step of 1/255)
    np.testing.assert_allclose(back.array, on_series, atol=0.5 / 255 + 1e-6)
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) not installed")
    report = validate_dicom_iod(path)
    assert list(report.errors) == []


def test_confidence_maps_beside_the_mask(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path
) -> None:
    series = read_source_series(synthetic_series)
    confidence, _ = _confidence(series.volume, synthetic_labels)
    labels = reorient(series.volume.with_array(synthetic_labels.astype(np.uint8)), "RAS")
    (path,) = write_confidence_maps(confidence, labels, tmp_path)
    written = read_image(path)
    np.testing.assert_allclose(written.affine, labels.affine)
    assert written.array.dtype == np.float32
    voxel = written.array
    probability = confidence.probability.array.astype(np.float32)
    inside = labels.array == 1
    np.testing.assert_allclose(voxel[inside], probability[..., 1][inside], rtol=1e-6)
    outside = labels.array == 0
    np.testing.assert_allclose(voxel[outside], 1.0 - probability.max(axis=-1)[outside], rtol=1e-6)


def test_review_package_carries_the_confidence_seg_and_flags(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path
) -> None:
    import json

    from medseg.evaluation import compute_segmentation_qc
    from medseg.export import build_structures, write_review_package

    series = read_source_series(synthetic_series)
    confidence, _ = _confidence(series.volume, synthetic_labels)
    names = {1: "liver", 2: "kidney_left"}
    mask = series.volume.with_array(np.where(synthetic_labels <= 2, synthetic_labels, 0))
    qc = compute_segmentation_qc(
        reorient(mask, "RAS").array, names, spacing_mm=(1.0, 1.0, 1.0), confidence=confidence
    )
    package = write_review_package(
        series,
        mask,
        build_structures([1, 2], names=names),
        tmp_path / "review",
        confidence=confidence,
        qc={name: result.to_dict() for name, result in qc.items()},
    )
    manifest = json.loads((package.folder / "manifest.json").read_text())
    assert manifest["confidence_seg"] == "confidence_seg.dcm"
    assert "confidence_seg.dcm" in package.files
    flagged = {f["name"] for f in manifest["qc_flags"]["liver"]}
    assert "low_mean_confidence" in flagged  # uniform 0.5-1.0 inside: mean 0.75 < 0.9
    assert all("threshold" in f and "reason" in f for f in manifest["qc_flags"]["liver"])
    if shutil.which("dciodvfy"):
        assert package.dciodvfy_errors["confidence_seg.dcm"] == 0
    back, _ = read_dicom_seg(package.folder / "confidence_seg.dcm", series)
    assert back.array.shape[-1] == 2
