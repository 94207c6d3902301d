from __future__ import annotations

import logging

import numpy as np
import pytest

from medseg.core import InputError
from medseg.evaluation import compute_dice
from medseg.io import Volume, axis_codes
from medseg.sam import (
    AutoMaskConfig,
    IntensityConfig,
    ObjectPrompt,
    SamModel,
    SamSegmentConfig,
    display_axis_codes,
    embed_image,
    load_sam_model,
    segment_everything,
    segment_with_prompts,
    to_display_volume,
)

# Object in file voxel indices (i, j, k) of a RAS volume. Display orientation (LPS) flips
# i and j; prompts are given and answers checked in file indices.
I_RANGE, J_RANGE, K_RANGE = (10, 30), (34, 56), (1, 3)


@pytest.fixture(scope="module")
def litemedsam() -> SamModel:
    return load_sam_model("litemedsam", device="cpu")


@pytest.fixture(scope="module")
def ras_volume() -> tuple[Volume, np.ndarray]:
    shape = (72, 64, 5)
    ii, jj = np.mgrid[: shape[0], : shape[1]]
    centre_i, centre_j = np.mean(I_RANGE), np.mean(J_RANGE)
    ellipse = ((ii - centre_i) / 10.5) ** 2 + ((jj - centre_j) / 11.5) ** 2 < 1.0
    truth = np.zeros(shape, dtype=bool)
    truth[:, :, K_RANGE[0] : K_RANGE[1] + 1] = ellipse[..., None]
    rng = np.random.default_rng(2)
    array = np.where(truth, 200.0, -50.0) + rng.normal(0, 5, shape)
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    affine[:3, 3] = (-20.0, 15.0, 40.0)
    return Volume(array.astype(np.float32), affine), truth


def test_display_orientation_keeps_the_slice_axis() -> None:
    def codes(affine_diag: list[float], permute: list[int] | None = None) -> str:
        affine = np.diag([*affine_diag, 1.0])
        if permute is not None:
            affine[:3, :3] = affine[:3, permute]
        return display_axis_codes(Volume(np.zeros((4, 4, 4)), affine))

    assert codes([1, 1, 1]) == "LPS"
    assert codes([-1, -1, -1]) == "LPI"
    assert codes([1, 1, 1], permute=[0, 2, 1]) == "LIA"  # coronal slices
    assert codes([1, 1, 1], permute=[1, 2, 0]) == "PIR"  # sagittal slices


def test_file_voxels_map_to_display_voxels_exactly(ras_volume: tuple) -> None:
    volume, _ = ras_volume
    display = to_display_volume(volume)
    assert axis_codes(display.volume) == "LPS"
    point = np.array([[3.0, 5.0, 2.0]])
    mapped = display.map_points(point)
    np.testing.assert_allclose(mapped, [[72 - 1 - 3.0, 64 - 1 - 5.0, 2.0]])
    world_file = volume.affine @ np.r_[point[0], 1.0]
    world_display = display.volume.affine @ np.r_[mapped[0], 1.0]
    np.testing.assert_allclose(world_file, world_display)


def test_one_slice_box_in_file_voxels(litemedsam: SamModel, ras_volume: tuple) -> None:
    volume, truth = ras_volume
    box = (I_RANGE[0] - 3, J_RANGE[0] - 3, 2, I_RANGE[1] + 3, J_RANGE[1] + 3, 2)
    labels = segment_with_prompts(
        litemedsam,
        volume,
        [ObjectPrompt(label=4, box_ijk=box)],
        SamSegmentConfig(intensity=IntensityConfig(mode="ct")),
    )
    np.testing.assert_array_equal(labels.affine, volume.affine)
    assert labels.array.shape == volume.array.shape
    assert set(np.unique(labels.array)) == {0, 4}
    assert not labels.array[:, :, [0, 1, 3, 4]].any()
    assert compute_dice(labels.array[:, :, 2] == 4, truth[:, :, 2]) > 0.9


def test_three_d_box_propagates_through_its_slices(litemedsam: SamModel, ras_volume: tuple) -> None:
    volume, truth = ras_volume
    box = (I_RANGE[0] - 3, J_RANGE[0] - 3, K_RANGE[0], I_RANGE[1] + 3, J_RANGE[1] + 3, K_RANGE[1])
    labels = segment_with_prompts(
        litemedsam,
        volume,
        [ObjectPrompt(box_ijk=box)],
        SamSegmentConfig(intensity=IntensityConfig(mode="ct")),
    )
    assert not labels.array[:, :, 0].any()
    assert not labels.array[:, :, 4].any()
    assert compute_dice(labels.array == 1, truth) > 0.9


def test_rgb_two_d_image_with_a_foreground_click(litemedsam: SamModel) -> None:
    rows, columns = 90, 120
    yy, xx = np.mgrid[:rows, :columns]
    disk = (yy - 30) ** 2 + (xx - 85) ** 2 < 18**2
    rgb = np.zeros((rows, columns, 3), dtype=np.uint8)
    rgb[...] = (40, 40, 160)
    rgb[disk] = (230, 200, 30)
    # read_image_2d layout: (column, row, 1, channel), affine diag(-1, -1, 1).
    volume = Volume(np.swapaxes(rgb, 0, 1)[:, :, None, :], np.diag([-1.0, -1.0, 1.0, 1.0]))
    labels = segment_with_prompts(
        litemedsam,
        volume,
        [
            ObjectPrompt(
                box_ijk=(62, 7, 0, 108, 53, 0), points_ijk=((85, 30, 0),), point_labels=(1,)
            )
        ],
    )
    assert labels.array.shape == (columns, rows, 1)
    assert compute_dice(labels.array[:, :, 0].T > 0, disk) > 0.9


def test_automatic_label_map_is_a_partition(litemedsam: SamModel) -> None:
    rows, columns = 96, 96
    yy, xx = np.mgrid[:rows, :columns]
    image = np.where((yy - 48) ** 2 + (xx - 48) ** 2 < 15**2, 0.9, 0.1)
    config = AutoMaskConfig(
        points_per_side=4,
        box_sizes_fraction=(0.5,),
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        min_area_px=5,
    )
    labels = segment_everything(litemedsam, embed_image(litemedsam, image), config)
    values, counts = np.unique(labels[labels > 0], return_counts=True)
    np.testing.assert_array_equal(values, np.arange(1, len(values) + 1))
    assert np.all(counts >= 5)


@pytest.mark.xfail(
    strict=True,
    reason="known limitation: with LiteMedSAM's scores the automatic mode keeps background "
    "fragments (README, medseg sam --auto)",
)
def test_automatic_mode_finds_separate_objects(litemedsam: SamModel) -> None:
    rows, columns = 160, 160
    yy, xx = np.mgrid[:rows, :columns]
    centres = [(40, 40), (45, 115), (115, 75)]
    disks = [(yy - r) ** 2 + (xx - c) ** 2 < 20**2 for r, c in centres]
    image = np.where(np.any(disks, axis=0), 0.9, 0.1)
    image = image + np.random.default_rng(3).normal(0, 0.02, image.shape)
    labels = segment_everything(
        litemedsam,
        embed_image(litemedsam, image),
        # LiteMedSAM: boxes on the grid; its IoU/stability scores run lower than SAM's.
        AutoMaskConfig(
            points_per_side=8,
            box_sizes_fraction=(0.3,),
            pred_iou_thresh=0.7,
            stability_score_thresh=0.6,
            box_nms_thresh=0.5,
        ),
    )
    assert labels.max() == len(disks)
    for disk in disks:
        values, counts = np.unique(labels[disk], return_counts=True)
        best = values[np.argmax(counts)]
        assert best > 0
        assert compute_dice(labels == best, disk) > 0.8


def test_prompted_confidence_matches_the_mask_and_reports_early_stops(
    litemedsam: SamModel, ras_volume: tuple
) -> None:
    from medseg.sam import PropagationConfig, segment_prompts_with_confidence

    volume, _ = ras_volume
    box = (I_RANGE[0] - 3, J_RANGE[0] - 3, K_RANGE[0], I_RANGE[1] + 3, J_RANGE[1] + 3, K_RANGE[1])
    ct = IntensityConfig(mode="ct")
    result = segment_prompts_with_confidence(
        litemedsam, volume, [ObjectPrompt(label=3, box_ijk=box)], SamSegmentConfig(intensity=ct)
    )
    assert result.label_ids == (3,)
    assert result.probability.array.shape == (*volume.array.shape, 1)
    np.testing.assert_array_equal(result.probability.affine, volume.affine)
    probability = result.probability.array[..., 0].astype(np.float32)
    # the mask is the decoder's logit > 0, i.e. sigmoid > 0.5 (float16 rounding at 0.5 aside)
    assert ((probability > 0.5) == (result.labels.array == 3)).mean() > 0.999
    assert set(result.slice_iou[3]) == set(range(K_RANGE[0], K_RANGE[1] + 1))
    assert all(0.0 < v <= 1.0 for v in result.slice_iou[3].values())
    assert result.stopped_early == {}
    strict = SamSegmentConfig(
        intensity=ct,
        propagation=PropagationConfig(min_predicted_iou=0.9999, stop_inside_bounds=True),
    )
    stopped = segment_prompts_with_confidence(
        litemedsam, volume, [ObjectPrompt(label=3, box_ijk=box)], strict
    )
    assert "low_predicted_iou" in stopped.stopped_early[3]
    assert set(stopped.slice_iou[3]) == {(K_RANGE[0] + K_RANGE[1]) // 2}
    # the plain label map is the same as segment_with_prompts'
    plain = segment_with_prompts(
        litemedsam, volume, [ObjectPrompt(label=3, box_ijk=box)], SamSegmentConfig(intensity=ct)
    )
    np.testing.assert_array_equal(plain.array, result.labels.array)


def test_an_object_keeps_to_its_region_in_file_voxels(
    litemedsam: SamModel, ras_volume: tuple
) -> None:
    # The region is given on the file's grid (RAS; the display flips i and j): the object
    # keeps only the part of the ellipse with i < 20, nothing beyond.
    volume, truth = ras_volume
    box = (I_RANGE[0] - 3, J_RANGE[0] - 3, K_RANGE[0], I_RANGE[1] + 3, J_RANGE[1] + 3, K_RANGE[1])
    region = np.zeros(volume.array.shape, dtype=bool)
    region[:20] = True
    config = SamSegmentConfig(intensity=IntensityConfig(mode="ct"))
    labels = segment_with_prompts(
        litemedsam, volume, [ObjectPrompt(box_ijk=box, region_ijk=region)], config
    ).array
    assert not labels[20:].any()
    assert compute_dice(labels == 1, truth & region) > 0.9
    with pytest.raises(InputError, match="region must have the image's shape"):
        segment_with_prompts(
            litemedsam, volume, [ObjectPrompt(box_ijk=box, region_ijk=region[:10])], config
        )


def test_an_object_drawn_smaller_than_expected_is_drawn_again(
    litemedsam: SamModel, ras_volume: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    volume, truth = ras_volume
    box = (I_RANGE[0] - 3, J_RANGE[0] - 3, K_RANGE[0], I_RANGE[1] + 3, J_RANGE[1] + 3, K_RANGE[1])
    config = SamSegmentConfig(intensity=IntensityConfig(mode="ct"))
    with caplog.at_level(logging.INFO, logger="medseg.sam"):
        plain = segment_with_prompts(litemedsam, volume, [ObjectPrompt(box_ijk=box)], config)
    assert "drawn again" not in caplog.text
    expected = int(truth.sum()) * 2  # more than any mask can hold: always drawn again
    with caplog.at_level(logging.INFO, logger="medseg.sam"):
        again = segment_with_prompts(
            litemedsam, volume, [ObjectPrompt(box_ijk=box, min_voxels=expected)], config
        )
    assert f"fewer than the {expected} expected; drawn again" in caplog.text
    # the larger of the two masks is kept
    assert (again.array == 1).sum() >= (plain.array == 1).sum()
    assert compute_dice(again.array == 1, truth) > 0.9
