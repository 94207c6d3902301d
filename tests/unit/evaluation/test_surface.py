"""Surface metrics against DeepMind's surface-distance (the oracle) and hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from medseg.core import GeometryError
from medseg.evaluation import compute_segmentation_metrics, compute_surface_distances

np.Inf = np.inf  # noqa: NPY201  (surface-distance 0.1 needs np.Inf, gone in NumPy 2)
import surface_distance  # noqa: E402  (the oracle; needs the alias above first)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOLERANCE = 1e-6


def _random_blobs(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(rng.random(shape), sigma) > 0.5


def _oracle(reference: np.ndarray, prediction: np.ndarray, spacing: tuple[float, ...]) -> dict:
    distances = surface_distance.compute_surface_distances(reference, prediction, spacing)
    forward, backward = surface_distance.compute_average_surface_distance(distances)
    area_ref = distances["surfel_areas_gt"].sum()
    area_pred = distances["surfel_areas_pred"].sum()
    return {
        "hd_mm": surface_distance.compute_robust_hausdorff(distances, 100),
        "hd95_mm": surface_distance.compute_robust_hausdorff(distances, 95),
        "assd_mm": (forward * area_ref + backward * area_pred) / (area_ref + area_pred),
        "msd_mm": (forward + backward) / 2,
        "nsd": surface_distance.compute_surface_dice_at_tolerance(distances, 2.0),
        "dice": surface_distance.compute_dice_coefficient(reference, prediction),
    }


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ndim", [2, 3])
def test_random_anisotropic_masks_match_surface_distance(seed: int, ndim: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (48, 40, 24)[:ndim]
    spacing = tuple(float(s) for s in rng.uniform(0.4, 3.0, ndim))
    reference = _random_blobs(rng, shape, sigma=2.5)
    prediction = _random_blobs(rng, shape, sigma=2.5)
    ours = compute_segmentation_metrics(
        prediction, reference, spacing_mm=spacing, tolerance_mm=2.0
    ).to_dict()
    for name, expected in _oracle(reference, prediction, spacing).items():
        assert ours[name] == pytest.approx(expected, abs=TOLERANCE), name


@pytest.mark.parametrize("percentile", [0.0, 50.0, 90.0, 95.0, 99.0, 100.0])
def test_every_percentile_matches_surface_distance(percentile: float) -> None:
    rng = np.random.default_rng(11)
    reference = _random_blobs(rng, (30, 30, 30), sigma=3)
    prediction = ndimage.binary_dilation(reference, iterations=2) ^ _random_blobs(
        rng, (30, 30, 30), sigma=1
    )
    spacing = (0.7, 1.3, 2.9)
    expected = surface_distance.compute_robust_hausdorff(
        surface_distance.compute_surface_distances(reference, prediction, spacing), percentile
    )
    ours = compute_surface_distances(prediction, reference, spacing_mm=spacing)
    assert ours.compute_hausdorff_mm(percentile=percentile) == pytest.approx(
        expected, abs=TOLERANCE
    )


@pytest.mark.parametrize("gap", [0, 1, 3, 12, 40])
def test_near_and_far_surfaces_match_surface_distance(gap: int) -> None:
    # distances inside and far beyond the local search window (then the k-d tree answers)
    reference = np.zeros((70, 20, 12), bool)
    reference[5:15, 4:14, 3:9] = True
    prediction = np.zeros_like(reference)
    prediction[15 + gap : 22 + gap, 6:16, 2:8] = True
    spacing = (0.8, 0.8, 2.5)
    oracle = _oracle(reference, prediction, spacing)
    ours = compute_segmentation_metrics(prediction, reference, spacing_mm=spacing).to_dict()
    for name, expected in oracle.items():
        assert ours[name] == pytest.approx(expected, abs=TOLERANCE), name


def test_translated_square_by_hand() -> None:
    # A 3×3 square and the same square moved down 2 rows; spacing 1.5 mm (rows) × 0.5 mm.
    reference = np.zeros((10, 10), bool)
    reference[2:5, 2:5] = True
    prediction = np.roll(reference, 2, axis=0)
    metrics = compute_segmentation_metrics(
        prediction, reference, spacing_mm=(1.5, 0.5), tolerance_mm=3.0
    )
    assert metrics.dice == pytest.approx(2 * 3 / 18)  # one shared row of 3 pixels
    assert metrics.iou == pytest.approx(3 / 15)
    assert metrics.hd_mm == pytest.approx(2 * 1.5)  # the translation, 2 rows of 1.5 mm
    assert metrics.nsd == pytest.approx(1.0)  # every contour point within 3 mm
    assert metrics.volume_ref_ml == pytest.approx(9 * 1.5 * 0.5 / 1000)
    assert metrics.volume_diff_ml == pytest.approx(0.0)
    assert metrics.empty.value == "none"


def test_identical_masks_are_perfect() -> None:
    mask = _random_blobs(np.random.default_rng(3), (20, 20, 20), sigma=2)
    metrics = compute_segmentation_metrics(mask, mask, spacing_mm=(1.0, 2.0, 3.0))
    assert (metrics.dice, metrics.hd_mm, metrics.hd95_mm, metrics.assd_mm, metrics.nsd) == (
        1.0,
        0.0,
        0.0,
        0.0,
        1.0,
    )


def test_one_empty_mask_matches_surface_distance_convention() -> None:
    reference = np.zeros((12, 12, 6), bool)
    reference[3:8, 4:9, 1:4] = True
    empty = np.zeros_like(reference)
    spacing = (1.0, 1.0, 2.5)
    oracle = surface_distance.compute_surface_distances(reference, empty, spacing)
    ours = compute_segmentation_metrics(empty, reference, spacing_mm=spacing)
    assert ours.empty.value == "prediction_empty"
    assert ours.hd95_mm == surface_distance.compute_robust_hausdorff(oracle, 95) == math.inf
    assert ours.nsd == surface_distance.compute_surface_dice_at_tolerance(oracle, 2.0) == 0.0
    assert ours.dice == 0.0
    assert ours.recall == 0.0
    assert math.isnan(ours.precision)
    swapped = compute_segmentation_metrics(reference, empty, spacing_mm=spacing)
    assert swapped.empty.value == "reference_empty"
    assert swapped.assd_mm == math.inf
    assert math.isnan(swapped.volume_diff_percent)


def test_both_empty_is_flagged_nan_not_a_crash() -> None:
    empty = np.zeros((5, 5, 5), bool)
    metrics = compute_segmentation_metrics(empty, empty, spacing_mm=(1, 1, 1))
    assert metrics.empty.value == "both_empty"
    values = metrics.to_dict()
    for name in ("dice", "iou", "hd_mm", "hd95_mm", "assd_mm", "msd_mm", "nsd"):
        assert math.isnan(values[name]), name
    assert values["volume_diff_ml"] == 0.0


@pytest.mark.parametrize(
    ("shape", "spacing", "match"),
    [
        ((4, 4, 4), (1.0, 1.0), "one value per mask axis"),
        ((4, 4, 4), (1.0, 0.0, 1.0), "finite and positive"),
        ((4,), (1.0,), "2 or 3 spatial axes"),
    ],
)
def test_invalid_geometry_is_a_geometry_error(
    shape: tuple[int, ...], spacing: tuple[float, ...], match: str
) -> None:
    with pytest.raises(GeometryError, match=match):
        compute_surface_distances(np.ones(shape), np.ones(shape), spacing_mm=spacing)
