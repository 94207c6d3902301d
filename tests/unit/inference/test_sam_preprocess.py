from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from medseg.core import ConfigError
from medseg.sam import IntensityConfig, IntensityMode, resolve_intensity_mode, scale_intensity


def test_ct_window_preset_and_level_width() -> None:
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0], dtype=np.float32)
    out = scale_intensity(hu, IntensityConfig(mode="ct", window="abdomen"), is_rgb=False)
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0])
    out = scale_intensity(hu, IntensityConfig(mode="ct", level_hu=0, width_hu=2000), is_rgb=False)
    np.testing.assert_allclose(out, [0.0, 0.42, 0.52, 0.62, 1.0], atol=1e-6)


def test_level_without_width_is_refused() -> None:
    with pytest.raises(ValidationError, match="give both level_hu and width_hu"):
        IntensityConfig(mode="ct", level_hu=40)


def test_percentiles_are_taken_over_the_whole_volume() -> None:
    volume = np.stack([np.full((4, 4), 10.0), np.full((4, 4), 20.0)], axis=-1)
    out = scale_intensity(
        volume, IntensityConfig(lower_percentile=0, upper_percentile=100), is_rgb=False
    )
    assert out[..., 0].max() == 0.0
    assert out[..., 1].min() == 1.0


def test_nonzero_percentiles_keep_background_at_zero() -> None:
    rng = np.random.default_rng(0)
    data = np.zeros((20, 20), dtype=np.float32)
    data[5:15, 5:15] = rng.normal(-1.0, 1.0, (10, 10))
    out = scale_intensity(data, IntensityConfig(mode="percentile", nonzero_only=True), is_rgb=False)
    assert out[0, 0] == 0.0
    assert out[5:15, 5:15].max() == pytest.approx(1.0)


def test_rgb_passthrough_scales_by_dtype_and_drops_alpha() -> None:
    rgba = np.zeros((3, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 128
    out = scale_intensity(rgba, IntensityConfig(), is_rgb=True)
    assert out.shape == (3, 3, 3)
    np.testing.assert_allclose(out[0, 0], [1.0, 0.0, 0.0])


def test_auto_mode_resolution() -> None:
    config = IntensityConfig()
    assert resolve_intensity_mode(config, is_rgb=True, modality=None) is IntensityMode.RGB
    assert resolve_intensity_mode(config, is_rgb=False, modality="CT") is IntensityMode.CT
    assert resolve_intensity_mode(config, is_rgb=False, modality="MR") is IntensityMode.PERCENTILE
    with pytest.raises(ConfigError, match="needs a grey image"):
        resolve_intensity_mode(IntensityConfig(mode="ct"), is_rgb=True, modality=None)
    with pytest.raises(ConfigError, match="needs a colour image"):
        resolve_intensity_mode(IntensityConfig(mode="rgb"), is_rgb=False, modality=None)
