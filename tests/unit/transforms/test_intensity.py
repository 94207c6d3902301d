from __future__ import annotations

import numpy as np
import pytest

from medseg.core import ConfigError
from medseg.transforms import CTWindow, apply_window, scale_percentiles


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
