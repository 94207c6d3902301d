"""Label intensity shift and spatial warp of channel-model patches: off by default, aligned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg.core import parse_config, read_yaml
from medseg.training import ChannelTrainConfig, LabelIntensityShift, SpatialAugmentation
from medseg.training._channel_patch_transforms import shift_label_intensities, warp_patch
from medseg.training._channels_trainer import PreparedCase, _sample_patch


def _case(seed: int = 0) -> PreparedCase:
    rng = np.random.default_rng(seed)
    label = (ndimage.gaussian_filter(rng.random((40, 44, 36)), 3) > 0.5).astype(np.uint8)
    image = np.stack([label * 2.0, label * 1.0]).astype(np.float32)
    return PreparedCase(case_id="case", image=image, label=label)


def test_options_off_keep_the_old_patches() -> None:
    case = _case()
    old = _sample_patch(case, [16] * 3, foreground=True, rng=np.random.default_rng(4))
    new = _sample_patch(
        case,
        [16] * 3,
        foreground=True,
        rng=np.random.default_rng(4),
        spatial=None,
        label_shift=None,
        channels=["flair", "t1c"],
    )
    np.testing.assert_array_equal(old[0], new[0])
    np.testing.assert_array_equal(old[1], new[1])


def test_identity_warp_is_the_centre_crop() -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(size=(2, 20, 20, 20)).astype(np.float32)
    label = (rng.random((20, 20, 20)) > 0.5).astype(np.uint8)
    out, out_label = warp_patch(image, label, matrix=np.eye(3), patch=[12, 12, 12])
    np.testing.assert_allclose(out, image[:, 4:16, 4:16, 4:16], atol=1e-6)
    np.testing.assert_array_equal(out_label, label[4:16, 4:16, 4:16])


def test_rotated_scaled_patch_keeps_image_and_label_aligned() -> None:
    case = _case()
    spatial = SpatialAugmentation(
        rotation_deg=30, rotation_prob=1, scale_range=(0.8, 1.25), scale_prob=1
    )
    rng = np.random.default_rng(3)
    for _ in range(5):
        image, label = _sample_patch(case, [16] * 3, foreground=True, rng=rng, spatial=spatial)
        assert image.shape == (2, 16, 16, 16)
        assert label.shape == (16, 16, 16)
        # image channel 0 is 2 × label before the ±10 % scale / ±0.1 shift of the recipe
        assert np.mean((image[0] > 1.0) == (label > 0)) > 0.95


def test_label_shift_moves_only_the_chosen_class() -> None:
    image = np.zeros((2, 4, 4, 4), dtype=np.float32)
    label = np.zeros((4, 4, 4), dtype=np.uint8)
    label[0] = 1
    label[1] = 2
    config = LabelIntensityShift(prob=1.0, classes=[1], shift_range={"flair": (-3.0, -1.0)})
    out = shift_label_intensities(
        image, label, config=config, channels=["flair", "t1c"], rng=np.random.default_rng(0)
    )
    assert np.all(out[0][label == 1] <= -1.0)
    assert np.all(out[0][label == 1] >= -3.0)
    assert np.all(out[0][label != 1] == 0)
    assert np.all(out[1] == 0)
    assert np.all(image == 0)  # input untouched


def test_ranges_validated() -> None:
    with pytest.raises(ValueError, match="low <= high"):
        LabelIntensityShift(classes=[1], shift_range={"flair": (1.0, -1.0)})
    with pytest.raises(ValueError, match="scale_range"):
        SpatialAugmentation(scale_range=(1.2, 0.9))


def test_recipe_shifts_the_core_and_variant_parses(repo_root: Path) -> None:
    folder = repo_root / "configs" / "channel_training"
    base = parse_config(ChannelTrainConfig, read_yaml(folder / "brain_tumour.yaml"), source="b")
    assert base.spatial_augmentation is None
    assert base.label_intensity_shift is not None
    assert base.label_intensity_shift.classes == [1]
    assert base.label_intensity_shift.shift_range["flair"] == (-3.0, 0.0)
    spatial = parse_config(
        ChannelTrainConfig, read_yaml(folder / "brain_tumour_spatial.yaml"), source="s"
    )
    assert spatial.spatial_augmentation is not None
    assert spatial.label_intensity_shift is None
