from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.evaluation import compute_dice
from medseg.io import Volume, read_image
from medseg.runner import WatershedConfig, segment_nuclei_watershed


def test_touching_disks_are_split() -> None:
    yy, xx = np.mgrid[:80, :120]
    first = (yy - 40) ** 2 + (xx - 45) ** 2 < 15**2
    second = (yy - 40) ** 2 + (xx - 72) ** 2 < 15**2
    assert (first & second).any()  # they touch
    image = np.where(first | second, 200, 20).astype(np.uint8)
    volume = Volume(array=np.swapaxes(image, 0, 1)[:, :, None], affine=np.diag([-1, -1, 1, 1]))
    instances = segment_nuclei_watershed(volume, config=WatershedConfig())
    labels = instances.array[:, :, 0]
    assert labels.dtype == np.uint16
    assert len(np.unique(labels[labels > 0])) == 2


def test_real_fluorescence_image(repo_root: Path) -> None:
    case = "data/cells_dsb2018/test/images/"
    image_path = sorted((repo_root / case).glob("*.png"))[0]
    label_path = repo_root / "data/cells_dsb2018/test/labels" / (image_path.stem + ".tif")
    image = read_image(image_path)
    reference = read_image(label_path).array[:, :, 0]
    instances = segment_nuclei_watershed(image, config=WatershedConfig()).array[:, :, 0]
    assert compute_dice(instances > 0, reference > 0) > 0.6
    n_reference = len(np.unique(reference[reference > 0]))
    n_found = ndimage.label(instances > 0)[1]
    assert n_found > 0.3 * n_reference
