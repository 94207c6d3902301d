"""Per-label metrics on label maps: real CT labels vs surface-distance, Dice vs MONAI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice as monai_dice
from scipy import ndimage

from medseg.core import InputError
from medseg.evaluation import EmptyCase, compute_label_metrics, compute_segmentation_metrics
from medseg.io import read_nifti

np.Inf = np.inf  # noqa: NPY201  (surface-distance 0.1 needs np.Inf, gone in NumPy 2)
import surface_distance  # noqa: E402  (the oracle; needs the alias above first)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _perturb(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible prediction: shifted, one label eroded, one dilated, one dropped."""
    prediction = np.roll(labels, shift=(2, -1, 1), axis=(0, 1, 2))
    liver = ndimage.binary_erosion(prediction == 5, iterations=2)
    prediction[(prediction == 5) & ~liver] = 0
    spleen = ndimage.binary_dilation(prediction == 1, iterations=1) & (prediction == 0)
    prediction[spleen] = 1
    prediction[prediction == 52] = 0  # aorta missed entirely
    noise = ndimage.gaussian_filter(rng.random(labels.shape), 1.5) > 0.62
    prediction[noise & (prediction == 6)] = 0  # stomach with holes
    return prediction


@pytest.fixture(scope="module")
def ct_labels(repo_root: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    volume = read_nifti(repo_root / "data/ct_totalsegmentator/example_seg_dicom.nii.gz")
    return np.asarray(volume.array), volume.spacing_mm


@pytest.mark.integration
def test_real_ct_labels_match_surface_distance(
    ct_labels: tuple[np.ndarray, tuple[float, float, float]],
) -> None:
    reference, spacing = ct_labels
    prediction = _perturb(reference, np.random.default_rng(0))
    labels = [1, 2, 5, 6, 52, 79]  # 2 (kidney_right) is absent from this crop
    results = compute_label_metrics(prediction, reference, labels=labels, spacing_mm=spacing)
    assert results[2].empty is EmptyCase.BOTH
    assert results[52].empty is EmptyCase.PREDICTION
    assert results[52].hd95_mm == math.inf
    for label in (1, 5, 6, 52, 79):
        ref, pred = reference == label, prediction == label
        oracle = surface_distance.compute_surface_distances(ref, pred, spacing)
        ours = results[label]
        assert ours.hd95_mm == pytest.approx(
            surface_distance.compute_robust_hausdorff(oracle, 95), abs=1e-6
        )
        assert ours.hd_mm == pytest.approx(
            surface_distance.compute_robust_hausdorff(oracle, 100), abs=1e-6
        )
        assert ours.nsd == pytest.approx(
            surface_distance.compute_surface_dice_at_tolerance(oracle, 2.0), abs=1e-6
        )
        if label != 52:
            forward, backward = surface_distance.compute_average_surface_distance(oracle)
            assert ours.msd_mm == pytest.approx((forward + backward) / 2, abs=1e-6)
            assert ours.dice == pytest.approx(
                surface_distance.compute_dice_coefficient(ref, pred), abs=1e-12
            )
    assert 0.0 < results[5].dice < 1.0
    assert results[1].volume_diff_ml > 0  # dilated spleen is larger


def test_label_metrics_equal_single_mask_metrics() -> None:
    rng = np.random.default_rng(5)
    reference = rng.integers(0, 4, size=(24, 20, 10)).astype(np.uint8)
    reference = ndimage.median_filter(reference, size=3)
    prediction = ndimage.median_filter(rng.integers(0, 4, size=(24, 20, 10)).astype(np.uint8), 3)
    spacing = (0.9, 1.1, 3.0)
    results = compute_label_metrics(prediction, reference, labels=[1, 2, 3], spacing_mm=spacing)
    for label, metrics in results.items():
        single = compute_segmentation_metrics(
            prediction == label, reference == label, spacing_mm=spacing
        )
        assert metrics == single


@pytest.mark.parametrize("seed", range(3))
def test_dice_equals_monai(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 3, size=(16, 18, 12))
    prediction = rng.integers(0, 3, size=(16, 18, 12))
    ours = compute_label_metrics(prediction, reference, labels=[1, 2], spacing_mm=(1, 1, 1))
    one_hot = [
        torch.as_tensor(np.stack([x == 1, x == 2]))[None].float() for x in (prediction, reference)
    ]
    expected = monai_dice(*one_hot, include_background=True)[0]
    assert ours[1].dice == pytest.approx(expected[0].item(), abs=1e-6)
    assert ours[2].dice == pytest.approx(expected[1].item(), abs=1e-6)


def test_fractional_label_map_is_refused() -> None:
    with pytest.raises(InputError, match="whole numbers"):
        compute_label_metrics(np.full((4, 4), 0.5), np.zeros((4, 4)), labels=[1], spacing_mm=(1, 1))
