"""2D in, 2D out, and folders of images (issue 24, items 3 and 4) through the CLI with
the shipped models: masks and probabilities in the image's own (H, W), never transposed,
one output per input of a folder or pattern."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from medseg.cli import main
from medseg.core import ExitCode
from medseg.evaluation import compute_dice
from medseg.io import read_image

pytestmark = pytest.mark.integration

# 256 rows x 320 columns: a transposed mask cannot have this shape
STEM = "13f2bec0a24c7034"
IMAGE = f"data/cells_dsb2018/test/images/{STEM}.png"
LABEL = f"data/cells_dsb2018/test/labels/{STEM}.tif"


def test_infer_png_to_a_png_file_in_the_image_shape(repo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred.png"
    argv = ["infer", "--model", "nuclei", "-i", str(repo_root / IMAGE), "-o", str(out)]
    assert main([*argv, "--probabilities", "--no-tta"]) == ExitCode.OK
    assert out.is_file()
    mask = np.asarray(Image.open(out))
    label = tifffile.imread(repo_root / LABEL)
    assert mask.shape == label.shape == (256, 320)
    # as loaded, no transposition: Dice of the foregrounds against the image's own label
    assert compute_dice(mask > 0, label > 0) > 0.85
    pages = tifffile.imread(tmp_path / "pred_probabilities.tif")
    assert pages.shape == (3, 256, 320)
    assert pages.dtype == np.float32
    np.testing.assert_allclose(pages.sum(axis=0), 1.0, atol=0.01)


def test_infer_a_folder_of_images_and_a_nifti_file_on_request(
    repo_root: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("one.png", "two.png"):
        shutil.copy(repo_root / IMAGE, folder / name)
    argv = ["infer", "--model", "nuclei", "-i", str(folder), "-o", str(tmp_path / "out")]
    assert main([*argv, "--no-tta"]) == ExitCode.OK
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["one_labels.png", "two_labels.png"]
    one = np.asarray(Image.open(tmp_path / "out" / "one_labels.png"))
    two = np.asarray(Image.open(tmp_path / "out" / "two_labels.png"))
    np.testing.assert_array_equal(one, two)
    # --out NAME.nii.gz writes that file (not a folder), on the image's grid
    nifti = tmp_path / "pred.nii.gz"
    argv = ["infer", "--model", "nuclei", str(folder / "one.png"), "--out", str(nifti)]
    assert main([*argv, "--no-tta"]) == ExitCode.OK
    assert nifti.is_file()
    np.testing.assert_array_equal(read_image(nifti).array[:, :, 0], one.T)


def test_sam_on_a_pattern_writes_png_masks_inside_the_box(repo_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(repo_root / IMAGE, folder / name)
    x0, y0, x1, y1 = 180, 20, 300, 120  # columns 180-300, rows 20-120
    argv = ["sam", "-i", str(folder / "*.png"), "-o", str(tmp_path / "masks")]
    assert main([*argv, "--box", f"{x0},{y0},{x1},{y1}"]) == ExitCode.OK
    for name in ("a_labels.png", "b_labels.png"):
        mask = np.asarray(Image.open(tmp_path / "masks" / name)) > 0
        assert mask.shape == (256, 320)
        assert mask.sum() > 50
        rows, columns = np.nonzero(mask)
        assert y0 - 5 <= rows.min()
        assert rows.max() <= y1 + 5
        assert x0 - 5 <= columns.min()
        assert columns.max() <= x1 + 5


def test_convert_a_folder_of_images_one_file_each(repo_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.png", "b.tif"):
        source = IMAGE if name.endswith(".png") else LABEL
        shutil.copy(repo_root / source, folder / name)
    assert main(["convert", "-i", str(folder), "-o", str(tmp_path / "nifti")]) == ExitCode.OK
    assert sorted(p.name for p in (tmp_path / "nifti").iterdir()) == ["a.nii.gz", "b.nii.gz"]
    back = read_image(tmp_path / "nifti" / "b.nii.gz")
    np.testing.assert_array_equal(back.array, read_image(folder / "b.tif").array)
