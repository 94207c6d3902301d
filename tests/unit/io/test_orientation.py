from __future__ import annotations

import numpy as np
import pytest

from medseg.core import GeometryError
from medseg.io import Volume, axis_codes, reorient, reorient_like


def _world(volume: Volume, index: tuple[int, int, int]) -> np.ndarray:
    return (volume.affine @ np.array([*index, 1.0]))[:3]


@pytest.fixture
def oblique_volume() -> Volume:
    rng = np.random.default_rng(0)
    angle = np.deg2rad(20)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.8, 1.1, 2.5])
    affine[:3, 3] = [-40.0, 12.5, 300.0]
    return Volume(array=rng.normal(size=(5, 6, 7)), affine=affine)


@pytest.mark.parametrize("codes", ["LPS", "RAS", "SPL", "AIR"])
def test_reorient_keeps_every_voxel_in_place(oblique_volume: Volume, codes: str) -> None:
    moved = reorient(oblique_volume, codes)
    assert axis_codes(moved) == codes
    # Voxel with the max value sits at the same world position before and after.
    before = np.unravel_index(np.argmax(oblique_volume.array), oblique_volume.array.shape)
    after = np.unravel_index(np.argmax(moved.array), moved.array.shape)
    np.testing.assert_allclose(_world(oblique_volume, before), _world(moved, after), atol=1e-9)
    back = reorient(moved, axis_codes(oblique_volume))
    np.testing.assert_array_equal(back.array, oblique_volume.array)
    np.testing.assert_allclose(back.affine, oblique_volume.affine, atol=1e-9)


def test_reorient_like_refuses_other_grids(oblique_volume: Volume) -> None:
    shifted = Volume(array=oblique_volume.array, affine=oblique_volume.affine.copy())
    shifted.affine[0, 3] += 5.0
    with pytest.raises(GeometryError, match="affine differs"):
        reorient_like(shifted, oblique_volume)


def test_spacing_from_affine(oblique_volume: Volume) -> None:
    np.testing.assert_allclose(oblique_volume.spacing_mm, (0.8, 1.1, 2.5))
