"""RTSTRUCT: contour tracing, even-odd rasterising, geometry in patient mm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from matplotlib.path import Path as PolygonPath

from medseg.export import (
    build_structures,
    rasterise_slice_contours,
    read_rtstruct,
    read_source_series,
    trace_slice_contours,
    write_rtstruct,
)
from medseg.io import LPS_TO_RAS

NAMES = {1: "liver", 2: "kidney_left", 3: "dot"}


def _random_blobs(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.random(shape), sigma=2.0)
    return noise > np.quantile(noise, 0.7)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_trace_then_rasterise_is_exact_on_random_shapes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = _random_blobs(rng, (40, 33))
    mask[0, :5] = True  # touches the border
    contours = trace_slice_contours(mask)
    assert all(len(c) >= 3 for c in contours)
    np.testing.assert_array_equal(rasterise_slice_contours(contours, mask.shape), mask)


def test_ring_gives_outer_and_hole_contours() -> None:
    mask = np.zeros((12, 12), dtype=bool)
    mask[2:10, 2:10] = True
    mask[4:8, 4:8] = False
    contours = trace_slice_contours(mask)
    assert len(contours) == 2
    np.testing.assert_array_equal(rasterise_slice_contours(contours, mask.shape), mask)


def test_single_pixel_is_a_diamond_around_its_centre() -> None:
    mask = np.zeros((5, 5), dtype=bool)
    mask[2, 3] = True
    (contour,) = trace_slice_contours(mask)
    assert len(contour) == 4
    np.testing.assert_allclose(contour.mean(axis=0), [2.0, 3.0])  # centred on the pixel


def test_empty_slice_has_no_contours() -> None:
    assert trace_slice_contours(np.zeros((6, 6), dtype=bool)) == []


def _contour_centroid_lps(ds: pydicom.Dataset, roi_number: int, thickness_mm: float) -> np.ndarray:
    """Area-weighted centroid of an ROI straight from ContourData (mm), holes by nesting."""
    item = next(r for r in ds.ROIContourSequence if r.ReferencedROINumber == roi_number)
    polygons = [np.asarray(c.ContourData, dtype=float).reshape(-1, 3) for c in item.ContourSequence]
    total, moment = 0.0, np.zeros(3)
    for index, points in enumerate(polygons):
        # Plane coordinates: project on two in-plane axes of this polygon's slice.
        u = points[1] - points[0]
        u /= np.linalg.norm(u)
        normal = np.cross(points[1] - points[0], points[2] - points[0])
        for j in range(3, len(points)):
            if np.linalg.norm(normal) > 1e-6:
                break
            normal = np.cross(points[1] - points[0], points[j] - points[0])
        normal /= np.linalg.norm(normal)
        v = np.cross(normal, u)
        xy = np.stack([(points - points[0]) @ u, (points - points[0]) @ v], axis=1)
        x, y = xy[:, 0], xy[:, 1]
        cross = x * np.roll(y, -1) - np.roll(x, -1) * y
        area = cross.sum() / 2
        cx = ((x + np.roll(x, -1)) * cross).sum() / (6 * area)
        cy = ((y + np.roll(y, -1)) * cross).sum() / (6 * area)
        centre = points[0] + cx * u + cy * v
        depth = sum(
            PolygonPath(other[:, :2]).contains_point(points[0, :2])
            for k, other in enumerate(polygons)
            if k != index and abs(other[0] @ normal - points[0] @ normal) < 1e-3
        )
        sign = -1.0 if depth % 2 else 1.0
        total += sign * abs(area) * thickness_mm
        moment += sign * abs(area) * thickness_mm * centre
    return moment / total


def test_round_trip_and_centroids_in_patient_mm(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path
) -> None:
    series = read_source_series(synthetic_series)
    mask = series.volume.with_array(synthetic_labels)
    structures = build_structures([1, 2, 3], names=NAMES)
    path = write_rtstruct(mask, series, structures, tmp_path / "rt.dcm")
    back, names = read_rtstruct(path, series)
    assert names == {1: "liver", 2: "kidney_left", 3: "dot"}
    for channel, value in enumerate((1, 2, 3)):
        np.testing.assert_array_equal(back.array[..., channel], synthetic_labels == value)
    ds = pydicom.dcmread(path)
    spacing = np.asarray(series.volume.spacing_mm)
    for value in (1, 2):  # the dot's centroid is checked by the single-pixel test
        voxels = np.argwhere(synthetic_labels == value).mean(axis=0)
        expected_lps = (LPS_TO_RAS @ mask.affine @ np.append(voxels, 1))[:3]
        got = _contour_centroid_lps(ds, value, spacing[2])
        # Polygons cut voxel corners, so allow a small fraction of a voxel, never half.
        assert np.all(np.abs(got - expected_lps) < 0.25 * spacing.max())


def test_headers_reference_the_series(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path
) -> None:
    series = read_source_series(synthetic_series)
    path = write_rtstruct(
        series.volume.with_array(synthetic_labels),
        series,
        build_structures([1, 2, 3], names=NAMES),
        tmp_path / "rt.dcm",
        model_name="UNetX",
    )
    ds = pydicom.dcmread(path)
    assert ds.Modality == "RTSTRUCT"
    assert ds.StudyInstanceUID == series.datasets[0].StudyInstanceUID
    assert ds.PatientID == series.datasets[0].PatientID
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == series.datasets[0].FrameOfReferenceUID
    referenced_series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert {i.ReferencedSOPInstanceUID for i in referenced_series.ContourImageSequence} == {
        str(d.SOPInstanceUID) for d in series.datasets
    }
    assert [r.ROIName for r in ds.StructureSetROISequence] == ["liver", "kidney_left", "dot"]
    for roi in ds.ROIContourSequence:
        for contour in roi.ContourSequence:
            assert contour.ContourGeometricType == "CLOSED_PLANAR"
            assert contour.NumberOfContourPoints >= 3
            assert len(contour.ContourData) == 3 * contour.NumberOfContourPoints


def test_contours_without_image_references_are_placed_by_plane(
    synthetic_series: Path, synthetic_labels: np.ndarray, tmp_path: Path
) -> None:
    series = read_source_series(synthetic_series)
    path = write_rtstruct(
        series.volume.with_array(synthetic_labels),
        series,
        build_structures([1, 2, 3], names=NAMES),
        tmp_path / "rt.dcm",
    )
    ds = pydicom.dcmread(path)
    for roi in ds.ROIContourSequence:
        for contour in roi.ContourSequence:
            del contour.ContourImageSequence  # optional (type 3) in the standard
    ds.save_as(tmp_path / "bare.dcm")
    back, _ = read_rtstruct(tmp_path / "bare.dcm", series)
    for channel, value in enumerate((1, 2, 3)):
        np.testing.assert_array_equal(back.array[..., channel], synthetic_labels == value)
