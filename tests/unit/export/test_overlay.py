"""Overlay montage: a PNG with three planes, in radiological orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.core import GeometryError, OutputExistsError
from medseg.export import build_structures, write_overlay_montage, write_volume_overlay
from medseg.export._overlay import _display_planes
from medseg.io import Volume, reorient


def test_planes_are_radiological() -> None:
    # LPS grid: i right→left, j anterior→posterior, k inferior→superior.
    labels = np.zeros((10, 12, 8), dtype=np.uint8)
    labels[1, 2, 6] = 1  # patient right, anterior, superior
    labels[1, 2, 5] = 1
    labels[1, 2, 7] = 1
    image = np.zeros(labels.shape, dtype=np.float32)
    planes = {
        name.split()[0]: plane for name, _, plane, _ in _display_planes(image, labels, (1, 1, 1))
    }
    # Axial: right on the image left, anterior at the top.
    assert np.argwhere(planes["axial"])[0].tolist() == [2, 1]
    # Coronal: right on the left, superior at the top (k=7 → row 0).
    assert np.argwhere(planes["coronal"])[:, 1].tolist() == [1, 1, 1]
    assert np.argwhere(planes["coronal"])[:, 0].min() == 0
    # Sagittal: anterior on the left, superior at the top.
    assert np.argwhere(planes["sagittal"])[:, 1].tolist() == [2, 2, 2]


def test_volume_overlay_writes_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = Volume(
        array=rng.normal(40, 50, (30, 28, 10)).astype(np.float32),
        affine=np.diag([0.8, 0.8, 3.0, 1.0]),
        metadata={"modality": "CT"},
    )
    labels = np.zeros((30, 28, 10), dtype=np.uint8)
    labels[5:15, 5:12, 2:7] = 1
    labels[18:25, 10:20, 4:9] = 4
    mask = reorient(image.with_array(labels), "LPS")  # another orientation than the image
    structures = build_structures([1, 4], names={1: "liver", 4: "spleen"})
    path = write_volume_overlay(image, mask, structures, tmp_path / "o.png", title="t")
    with Image.open(path) as png:
        assert png.size[0] > png.size[1] > 400
    with pytest.raises(OutputExistsError):
        write_volume_overlay(image, mask, structures, path)


def test_montage_shape_mismatch_is_geometry_error(tmp_path: Path) -> None:
    with pytest.raises(GeometryError):
        write_overlay_montage(
            np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), (1, 1, 1), [], tmp_path / "x.png"
        )


def _panel_ratios(figure) -> list[float]:
    """Displayed height / width of each image panel, in pixels."""
    figure.canvas.draw()
    ratios = []
    for axis in figure.axes:
        box = axis.get_window_extent()
        ratios.append(box.height / box.width)
    return ratios


@pytest.mark.parametrize(
    ("shape", "spacing", "layout"),
    [
        ((64, 64, 6), (0.7, 0.7, 4.0), "stacked"),  # a thin slab: 45 x 45 x 24 mm
        ((50, 40, 80), (1.0, 1.0, 2.5), "row"),  # a tall volume: 50 x 40 x 200 mm
    ],
)
def test_montage_panels_keep_the_physical_shape_with_direction_letters(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], layout: str
) -> None:
    from matplotlib import pyplot as plt

    from medseg.export._overlay import _montage_figure, _montage_layout

    labels = np.zeros(shape, dtype=np.uint8)
    labels[10:30, 10:30, 1 : shape[2] - 1] = 1
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    figure = _montage_figure(
        image, labels, spacing, [(1, "liver", (221, 130, 101))], reference=labels, title=None
    )
    (nx, ny, nz), (sx, sy, sz) = shape, spacing
    physical = [ny * sy / (nx * sx), nz * sz / (nx * sx), nz * sz / (ny * sy)]
    assert _panel_ratios(figure) == pytest.approx(physical, rel=0.03)
    letters = [sorted(t.get_text() for t in axis.texts) for axis in figure.axes]
    assert letters == [["A", "L", "P", "R"], ["I", "L", "R", "S"], ["A", "I", "P", "S"]]
    width = figure.get_size_inches()[0] * figure.dpi
    coronal = figure.axes[1].get_window_extent().width
    planes = _display_planes(image, labels, spacing)
    assert _montage_layout([(p.shape, a) for _, p, _, a in planes])[0] == layout
    if layout == "stacked":  # slab views get half the figure, not a third of it
        assert coronal > 0.4 * width
    plt.close(figure)


def test_default_title_names_the_structures(tmp_path: Path) -> None:
    from medseg.export import describe_structures

    assert describe_structures(["liver"]) == "liver"
    assert describe_structures(["a", "b", "c", "d", "e"]) == "a, b, c +2 more"


def test_two_d_colour_image_is_drawn_in_colour(tmp_path: Path) -> None:
    rgb = np.zeros((40, 30, 1, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 40, 150  # H&E-like pink
    image = Volume(array=rgb, affine=np.diag([-1.0, -1.0, 1.0, 1.0]), metadata={"is_2d": True})
    labels = np.zeros((40, 30, 1), dtype=np.uint8)
    labels[5:20, 5:15, 0] = 1
    structures = build_structures([1], names={1: "nucleus"})
    path = write_volume_overlay(image, image.with_array(labels), structures, tmp_path / "c.png")
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
    pink = (pixels[:, 0] > 150) & (pixels[:, 2] > 100) & (pixels[:, 1] < 90)
    assert pink.sum() > 5000
