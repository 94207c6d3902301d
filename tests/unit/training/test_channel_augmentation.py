"""Intensity augmentation of channel-model patches: intensities only, per channel, seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.core import ConfigError, InputError, parse_config, read_yaml
from medseg.training import ChannelIntensityAugmenter, ChannelTrainConfig, IntensityAugmentation
from medseg.training._channels_trainer import PreparedCase, _sample_patch

OFF = {
    "contrast_prob": 0.0,
    "gamma_prob": 0.0,
    "inverted_gamma_prob": 0.0,
    "brightness_prob": 0.0,
    "noise_prob": 0.0,
    "blur_prob": 0.0,
}


def _patch(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(2, 12, 10, 8)).astype(np.float32)


def _only(**settings: object) -> IntensityAugmentation:
    return IntensityAugmentation(**{**OFF, **settings})


def test_all_off_is_identity() -> None:
    patch = _patch()
    out = ChannelIntensityAugmenter(_only(), seed=0)(patch)
    np.testing.assert_array_equal(out, patch)


def test_shape_dtype_and_input_kept() -> None:
    patch = _patch()
    before = patch.copy()
    config = IntensityAugmentation(
        contrast_prob=1, gamma_prob=1, brightness_prob=1, noise_prob=1, blur_prob=1
    )
    out = ChannelIntensityAugmenter(config, seed=1)(patch)
    assert out.shape == patch.shape
    assert out.dtype == np.float32
    assert not np.allclose(out, patch)
    np.testing.assert_array_equal(patch, before)  # the input is not modified in place


def test_brightness_scales_each_channel_by_its_own_factor() -> None:
    patch = _patch()
    out = ChannelIntensityAugmenter(_only(brightness_prob=1.0), seed=2)(patch)
    factors = [float(np.median(out[c] / patch[c])) for c in range(2)]
    for c, factor in enumerate(factors):
        assert 0.75 <= factor <= 1.25
        np.testing.assert_allclose(out[c], patch[c] * factor, rtol=1e-5)
    assert factors[0] != pytest.approx(factors[1])


def test_contrast_keeps_mean_and_range() -> None:
    patch = _patch()
    out = ChannelIntensityAugmenter(_only(contrast_prob=1.0, contrast_range=(1.4, 1.5)), seed=3)(
        patch
    )
    for c in range(2):
        assert out[c].min() >= patch[c].min() - 1e-6
        assert out[c].max() <= patch[c].max() + 1e-6
        assert out[c].std() > patch[c].std()  # stretched about the mean, then clipped


@pytest.mark.parametrize("setting", ["gamma_prob", "inverted_gamma_prob"])
def test_gamma_keeps_mean_and_std(setting: str) -> None:
    patch = _patch()
    out = ChannelIntensityAugmenter(_only(**{setting: 1.0}, gamma_range=(1.4, 1.5)), seed=4)(patch)
    assert not np.allclose(out, patch)
    for c in range(2):
        assert out[c].mean() == pytest.approx(patch[c].mean(), abs=1e-4)
        assert out[c].std() == pytest.approx(patch[c].std(), rel=1e-3)
        # monotonic per voxel: gamma reorders nothing
        order = np.argsort(patch[c], axis=None)
        assert np.all(np.diff(out[c].ravel()[order]) >= -1e-5)


def test_noise_and_blur_change_intensities() -> None:
    patch = _patch()
    noisy = ChannelIntensityAugmenter(_only(noise_prob=1.0), seed=5)(patch)
    blurred = ChannelIntensityAugmenter(_only(blur_prob=1.0), seed=5)(patch)
    assert 0 < np.abs(noisy - patch).mean() < 0.3
    assert blurred.std() < patch.std()  # smoothing white noise lowers its spread


def test_seeded_reproducible() -> None:
    config = IntensityAugmentation(
        contrast_prob=0.5, gamma_prob=0.5, brightness_prob=0.5, noise_prob=0.5, blur_prob=0.5
    )
    first = ChannelIntensityAugmenter(config, seed=7)
    second = ChannelIntensityAugmenter(config, seed=7)
    other = ChannelIntensityAugmenter(config, seed=8)
    patch = _patch()
    a = [first(patch) for _ in range(6)]
    b = [second(patch) for _ in range(6)]
    c = [other(patch) for _ in range(6)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c, strict=True))


def test_sampled_patch_label_unchanged_by_augmentation() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 20, 20, 20)).astype(np.float32)
    label = (rng.random((20, 20, 20)) > 0.8).astype(np.uint8)
    case = PreparedCase(case_id="case", image=image, label=label)
    config = IntensityAugmentation(contrast_prob=1, gamma_prob=1, brightness_prob=1)
    augmenter = ChannelIntensityAugmenter(config, seed=0)
    plain_img, plain_lab = _sample_patch(
        case, [8, 8, 8], foreground=True, rng=np.random.default_rng(3)
    )
    aug_img, aug_lab = _sample_patch(
        case, [8, 8, 8], foreground=True, rng=np.random.default_rng(3), augmenter=augmenter
    )
    np.testing.assert_array_equal(aug_lab, plain_lab)  # same crop and flips
    assert aug_img.shape == plain_img.shape == (2, 8, 8, 8)
    assert not np.allclose(aug_img, plain_img)


def test_rejects_bad_patch_and_ranges() -> None:
    augmenter = ChannelIntensityAugmenter(_only(), seed=0)
    with pytest.raises(InputError, match="must be"):
        augmenter(np.zeros((8, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="low <= high"):
        IntensityAugmentation(contrast_range=(1.5, 0.65))
    with pytest.raises(ValueError, match="positive"):
        IntensityAugmentation(gamma_range=(0.0, 1.5))


def test_configs_old_off_new_on(repo_root: Path) -> None:
    folder = repo_root / "configs" / "channel_training"
    old = parse_config(ChannelTrainConfig, read_yaml(folder / "brain_tumour.yaml"), source="old")
    assert old.intensity_augmentation is None
    new_path = folder / "brain_tumour_intensity.yaml"
    new = parse_config(ChannelTrainConfig, read_yaml(new_path), source=new_path)
    assert new.intensity_augmentation is not None
    assert new.intensity_augmentation.contrast_range == (0.65, 1.5)
    data = read_yaml(new_path)
    data["intensity_augmentation"]["gama_prob"] = 0.3
    with pytest.raises(ConfigError, match="gama_prob"):
        parse_config(ChannelTrainConfig, data, source=new_path)
