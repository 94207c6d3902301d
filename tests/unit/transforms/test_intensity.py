from __future__ import annotations

import numpy as np
import pytest

from medseg.core import ConfigError
from medseg.transforms import (
    CTWindow,
    apply_window,
    equalize_adaptive_histogram,
    scale_percentiles,
)


def test_abdomen_window_maps_level_to_half() -> None:
    level, width = CTWindow.ABDOMEN.level_width_hu
    out = apply_window(
        np.array([-1000.0, level, level + width / 2, 3000.0]), level_hu=level, width_hu=width
    )
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0, 1.0])
    assert out.dtype == np.float32


def test_bad_window_and_percentiles_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="width"):
        apply_window(np.zeros(3), level_hu=0, width_hu=0)
    with pytest.raises(ConfigError, match="percentiles"):
        scale_percentiles(np.zeros(3), lower_percentile=50, upper_percentile=10)


def test_percentile_scaling_range() -> None:
    data = np.random.default_rng(1).normal(100, 20, size=1000)
    out = scale_percentiles(data)
    assert out.min() == 0.0
    assert out.max() == 1.0


def _unevenly_lit_lines() -> np.ndarray:
    """A fundus-like test card: illumination falling 10x from left to right, with a dark
    1-pixel line every 16 rows whose contrast is 10 % of the local brightness."""
    rows, cols = 128, 256
    light = np.linspace(200.0, 20.0, cols)[None, :] * np.ones((rows, 1))
    image = light.copy()
    image[8::16, :] *= 0.9
    return image.astype(np.float32)


def test_clahe_brings_out_lines_in_the_dark_half() -> None:
    image = _unevenly_lit_lines()
    out = equalize_adaptive_histogram(image, clip_limit=0.02)
    assert out.dtype == np.float32
    assert out.shape == image.shape
    assert out.min() >= 0.0
    assert out.max() <= 1.0

    def dark_half_contrast(array: np.ndarray) -> float:
        scaled = (array - array.min()) / (array.max() - array.min())
        dark = scaled[:, 192:]
        return float(dark[9::16].mean() - dark[8::16].mean())  # background - line

    # min-max scaling leaves the lines ~2 % of the range in the dark half; CLAHE widens it
    assert dark_half_contrast(image) < 0.03
    assert dark_half_contrast(out) > 3 * dark_half_contrast(image)


def test_clahe_matches_skimage_on_the_scaled_channel() -> None:
    from skimage.exposure import equalize_adapthist

    image = np.random.default_rng(3).normal(100, 30, size=(64, 96)).astype(np.float32)
    expected = equalize_adapthist(
        (image - image.min()) / (image.max() - image.min()), kernel_size=16, clip_limit=0.03
    )
    out = equalize_adaptive_histogram(image, clip_limit=0.03, kernel_size_px=16)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_clahe_of_a_constant_channel_is_zero_and_bad_limit_is_refused() -> None:
    np.testing.assert_array_equal(equalize_adaptive_histogram(np.full((8, 8), 7.0)), 0.0)
    with pytest.raises(ConfigError, match="clip_limit"):
        equalize_adaptive_histogram(np.zeros((8, 8)), clip_limit=0.0)
