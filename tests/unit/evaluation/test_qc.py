"""QC flags on small synthetic masks whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.core import InputError
from medseg.evaluation import (
    QCFlagName,
    QCThresholds,
    compute_segmentation_qc,
    compute_structure_qc,
)
from medseg.io import Volume
from medseg.segment import Confidence

SPACING = (1.0, 1.0, 1.0)


def _cube(shape=(20, 20, 10), low=(5, 5, 2), high=(15, 15, 8)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[low[0] : high[0], low[1] : high[1], low[2] : high[2]] = True
    return mask


def _names(qc) -> set[str]:
    return {flag.name.value for flag in qc.flags}


def test_clean_cube_raises_no_flag():
    mask = _cube()
    qc = compute_structure_qc(
        mask, structure="thing", spacing_mm=SPACING, probability=mask.astype(np.float32)
    )
    assert qc.flags == ()
    assert qc.volume_ml == pytest.approx(10 * 10 * 6 / 1000)
    assert qc.n_components == 1
    assert qc.mean_confidence == pytest.approx(1.0)
    assert qc.confidence_dice == pytest.approx(1.0)


def test_low_mean_confidence_names_the_worst_slice():
    mask = _cube()
    probability = np.where(mask, 0.95, 0.0).astype(np.float32)
    probability[:, :, 5][mask[:, :, 5]] = 0.3  # one doubtful slice
    qc = compute_structure_qc(mask, structure="thing", spacing_mm=SPACING, probability=probability)
    # mean = (5 * 0.95 + 0.3) / 6
    assert qc.mean_confidence == pytest.approx((5 * 0.95 + 0.3) / 6, abs=1e-6)
    (flag,) = qc.flags
    assert flag.name is QCFlagName.LOW_MEAN_CONFIDENCE
    assert flag.threshold == 0.9
    assert flag.slice_k == 5
    assert "0.842" in flag.reason
    # a lower threshold lets it pass
    relaxed = compute_structure_qc(
        mask,
        structure="thing",
        spacing_mm=SPACING,
        probability=probability,
        thresholds=QCThresholds(min_mean_confidence=0.8),
    )
    assert relaxed.flags == ()


def test_confidence_dice_counts_probability_outside_the_mask():
    mask = _cube()
    probability = np.where(mask, 1.0, 0.0).astype(np.float32)
    probability[0:5, 5:15, 2:8] = 0.4  # 300 voxels of doubt beside the 600-voxel mask
    qc = compute_structure_qc(mask, structure="thing", spacing_mm=SPACING, probability=probability)
    assert qc.confidence_dice == pytest.approx(2 * 600 / (600 + 0.4 * 300 + 600), rel=1e-5)


def test_tta_disagreement_flag():
    mask = _cube()
    disagreement = np.zeros(mask.shape, dtype=np.float32)
    disagreement[5:15, 5:15, 7] = 0.5  # half the passes disagree on the top slice
    qc = compute_structure_qc(
        mask, structure="thing", spacing_mm=SPACING, disagreement=disagreement
    )
    assert qc.mean_tta_disagreement == pytest.approx(0.5 / 6)
    (flag,) = qc.flags
    assert flag.name is QCFlagName.TTA_DISAGREEMENT
    assert flag.slice_k == 7
    quiet = compute_structure_qc(
        mask, structure="thing", spacing_mm=SPACING, disagreement=disagreement * 0.1
    )
    assert quiet.flags == ()


def test_volume_outside_the_plausible_range():
    spleen = _cube()  # 0.6 mL at 1 mm: far below any adult spleen
    qc = compute_structure_qc(spleen, structure="spleen", spacing_mm=SPACING)
    (flag,) = qc.flags
    assert flag.name is QCFlagName.VOLUME_OUT_OF_RANGE
    assert flag.threshold == "40-1500 mL"
    # 0.6 mL × 400 (voxels of 20 × 20 × 1 mm) = 240 mL: plausible
    assert compute_structure_qc(spleen, structure="spleen", spacing_mm=(20, 20, 1)).flags == ()
    # unknown structures have no range
    assert compute_structure_qc(spleen, structure="tumour", spacing_mm=SPACING).flags == ()


def test_empty_structure_is_flagged():
    qc = compute_structure_qc(np.zeros((8, 8, 4), bool), structure="liver", spacing_mm=SPACING)
    assert _names(qc) == {"empty"}
    assert qc.volume_ml == 0.0


def test_fragmented_mask():
    mask = _cube(shape=(22, 22, 12))
    mask[1:3, 1:3, 8:10] = True  # 8 voxels apart: 600 / 608 in the largest part, fine
    assert compute_structure_qc(mask, structure="thing", spacing_mm=SPACING).flags == ()
    mask[16:19, 16:19, 1:10] = True  # 81 more voxels: 600 / 689 = 0.871 < 0.9
    qc = compute_structure_qc(mask, structure="thing", spacing_mm=SPACING)
    (flag,) = qc.flags
    assert flag.name is QCFlagName.FRAGMENTED
    assert qc.n_components == 3
    assert flag.value == pytest.approx(600 / 689)
    assert "3 components" in flag.reason
    assert flag.slice_k in range(1, 10)


def test_diagonal_neighbours_are_one_component():
    mask = np.zeros((6, 6, 6), dtype=bool)
    mask[1, 1, 1] = mask[2, 2, 2] = mask[3, 3, 3] = True
    qc = compute_structure_qc(mask, structure="thing", spacing_mm=SPACING)
    assert qc.n_components == 1


def test_mask_touching_the_image_border():
    mask = _cube(low=(0, 5, 2), high=(10, 15, 8))  # reaches i = 0
    qc = compute_structure_qc(mask, structure="thing", spacing_mm=SPACING)
    (flag,) = qc.flags
    assert flag.name is QCFlagName.TOUCHES_IMAGE_BORDER
    assert flag.value == 10 * 6  # the i = 0 face: 10 (j) × 6 (k) voxels
    assert "axes i" in flag.reason


def test_2d_image_ignores_its_singleton_axis():
    labels = np.zeros((12, 12, 1), dtype=np.uint8)
    labels[3:8, 3:8, 0] = 1
    qc = compute_segmentation_qc(labels, {1: "cell"}, spacing_mm=(1.0, 1.0, 1.0))
    assert qc["cell"].flags == ()
    assert qc["cell"].volume_ml == pytest.approx(25 / 1000)


def test_mask_reaching_its_prompt_box():
    mask = _cube()  # i 5..14, j 5..14, k 2..7
    inside = compute_structure_qc(
        mask, structure="thing", spacing_mm=SPACING, box_ijk=(3, 3, 2, 17, 17, 7)
    )
    assert inside.flags == ()
    cut = compute_structure_qc(
        mask, structure="thing", spacing_mm=SPACING, box_ijk=(5, 3, 2, 17, 17, 7)
    )
    (flag,) = cut.flags
    assert flag.name is QCFlagName.TOUCHES_BOX_BORDER
    assert flag.value == pytest.approx(1.0)  # all 6 slices touch the i0 side


def test_propagation_stopped_early_and_low_predicted_iou():
    mask = _cube()
    ious = {k: 0.95 for k in range(2, 8)}
    qc = compute_structure_qc(
        mask,
        structure="thing",
        spacing_mm=SPACING,
        slice_iou=ious,
        stopped_early="low_predicted_iou at slice 7 before the given slice 9",
    )
    (flag,) = qc.flags
    assert flag.name is QCFlagName.PROPAGATION_STOPPED_EARLY
    assert flag.slice_k == 7
    assert "slice 9" in flag.reason
    ious[4] = 0.1  # mean (5 × 0.95 + 0.1) / 6 = 0.808 ≥ 0.8
    assert compute_structure_qc(mask, structure="t", spacing_mm=SPACING, slice_iou=ious).flags == ()
    ious[5] = 0.1  # mean 0.667
    (low,) = compute_structure_qc(mask, structure="t", spacing_mm=SPACING, slice_iou=ious).flags
    assert low.name is QCFlagName.LOW_PREDICTED_IOU
    assert low.slice_k == 4


def test_shape_mismatch_is_an_input_error():
    with pytest.raises(InputError, match="probability must have the mask's shape"):
        compute_structure_qc(
            _cube(), structure="x", spacing_mm=SPACING, probability=np.zeros((2, 2, 2))
        )


def test_segmentation_qc_reads_the_confidence_per_structure():
    labels = np.zeros((20, 20, 10), dtype=np.uint8)
    labels[_cube()] = 2
    probability = np.zeros((20, 20, 10, 2), dtype=np.float16)
    probability[..., 1][labels == 2] = 0.5  # structure 2 is doubtful
    affine = np.eye(4)
    confidence = Confidence(
        probability=Volume(array=probability, affine=affine),
        structure_ids=(1, 2),
        source="softmax",
        stopped_early={2: "mask_vanished at slice 7 before the given slice 9"},
    )
    qc = compute_segmentation_qc(
        labels, {1: "one", 2: "two"}, spacing_mm=SPACING, confidence=confidence
    )
    assert _names(qc["one"]) == {"empty"}
    assert _names(qc["two"]) == {"low_mean_confidence", "propagation_stopped_early"}
    document = qc["two"].to_dict()
    assert document["mean_confidence"] == 0.5
    assert {f["name"] for f in document["flags"]} == _names(qc["two"])
    voxel = confidence.voxel_confidence(labels)
    assert voxel[labels == 2].max() == pytest.approx(0.5)
    assert voxel[0, 0, 0] == pytest.approx(1.0)
