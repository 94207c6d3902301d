from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.core import InputError
from medseg.io import axis_codes, read_image, read_image_2d
from medseg.transforms import to_display_slice


def test_fundus_tiff_is_rgb_one_slice_volume(repo_root: Path) -> None:
    path = repo_root / "data/retina_drive/test/images/01_test.tif"
    volume = read_image(path)
    pixels = np.asarray(Image.open(path))
    assert pixels.shape == (584, 565, 3)
    assert volume.array.shape == (565, 584, 1, 3)
    assert axis_codes(volume) == "LPS"
    np.testing.assert_array_equal(to_display_slice(volume.array[:, :, 0]), pixels)


def test_gif_label_and_uint16_tiff_labels(repo_root: Path) -> None:
    manual = read_image_2d(repo_root / "data/retina_drive/test/1st_manual/01_manual1.gif")
    assert manual.array.shape[:3] == (565, 584, 1)
    assert set(np.unique(manual.array)) <= {0, 255}
    labels = sorted((repo_root / "data/cells_dsb2018/test/labels").glob("*.tif"))[0]
    volume = read_image(labels)
    assert volume.array.dtype == np.uint16
    assert volume.array.ndim == 3
    assert volume.array.max() > 1


def test_corrupt_and_unsupported_inputs(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(InputError, match="cannot read 2D image"):
        read_image(bad)
    other = tmp_path / "x.xyz"
    other.write_text("x")
    with pytest.raises(InputError, match="unsupported input"):
        read_image(other)
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "missing.png")


def test_collapse_grey_channels(tmp_path: Path) -> None:
    from medseg.io import collapse_grey_channels

    grey = np.zeros((4, 5, 1, 3), np.uint8)
    grey[1, 2, 0, :] = 255
    assert collapse_grey_channels(grey, what="mask", path=tmp_path).shape == (4, 5, 1)
    colour = grey.copy()
    colour[0, 0, 0, 1] = 7
    with pytest.raises(InputError, match="mask must be a grey label map"):
        collapse_grey_channels(colour, what="mask", path=tmp_path)
    plain = np.zeros((4, 5, 1), np.uint8)
    assert collapse_grey_channels(plain, what="mask", path=tmp_path) is plain
