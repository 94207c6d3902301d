"""2D in, 2D out (issue 24, item 3): masks written as PNG/TIFF in the image's own (H, W)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from medseg.core import InputError
from medseg.io import Volume, read_image, write_image, write_image_2d

# 256 rows x 320 columns: a transposed write cannot pass for the right one
WIDE = "data/cells_dsb2018/test/images/13f2bec0a24c7034.png"
LABEL = "data/cells_dsb2018/test/labels/13f2bec0a24c7034.tif"


@pytest.mark.parametrize("relative", [WIDE, LABEL])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_read_image_is_written_back_pixel_for_pixel(
    repo_root: Path, tmp_path: Path, relative: str, suffix: str
) -> None:
    source = repo_root / relative
    original = (
        np.asarray(Image.open(source)) if source.suffix == ".png" else tifffile.imread(source)
    )
    written = write_image(read_image(source), tmp_path / f"out{suffix}")
    back = np.asarray(Image.open(written)) if suffix == ".png" else tifffile.imread(written)
    assert back.shape == original.shape
    np.testing.assert_array_equal(back, original)
    # and medseg reads it onto the source's grid
    np.testing.assert_array_equal(read_image(written).array, read_image(source).array)


def test_labels_above_255_become_16_bit_png(tmp_path: Path) -> None:
    labels = np.zeros((4, 3, 1), dtype=np.int32)  # (columns, rows, 1)
    labels[3, 2, 0] = 300
    path = write_image_2d(
        Volume(array=labels, affine=np.diag([-1.0, -1, 1, 1])), tmp_path / "m.png"
    )
    pixels = np.asarray(Image.open(path))
    assert pixels.shape == (3, 4)
    assert pixels[2, 3] == 300


def test_probabilities_go_to_tiff_pages_in_h_w(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.random((5, 3, 1, 2)).astype(np.float32)  # (columns, rows, 1, C)
    volume = Volume(array=probabilities, affine=np.diag([-1.0, -1, 1, 1]))
    pages = tifffile.imread(write_image_2d(volume, tmp_path / "p.tif"))
    assert pages.shape == (2, 3, 5)
    np.testing.assert_array_equal(pages[1], probabilities[:, :, 0, 1].T)


@pytest.mark.parametrize(
    ("array", "name"),
    [
        (np.zeros((4, 4, 3), dtype=np.uint8), "volume.png"),  # three slices
        (np.full((4, 4, 1), 0.5, dtype=np.float32), "floats.png"),
        (np.full((4, 4, 1), -1, dtype=np.int16), "negative.png"),
    ],
)
def test_what_a_png_cannot_hold_is_refused_naming_the_file(
    tmp_path: Path, array: np.ndarray, name: str
) -> None:
    volume = Volume(array=array, affine=np.diag([-1.0, -1, 1, 1]))
    with pytest.raises(InputError, match=name):
        write_image_2d(volume, tmp_path / name)
    assert list(tmp_path.iterdir()) == []
