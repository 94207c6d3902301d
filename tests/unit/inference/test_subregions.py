"""Tumour sub-region rules on a synthetic lesion whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.core import GeometryError
from medseg.inference import TumourSubregionConfig, split_tumour_subregions

SHAPE = (48, 48, 40)
SPACING = (1.0, 1.0, 1.5)


def _distance_mm(centre: tuple[float, float, float]) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    return np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, SPACING, strict=True)))


@pytest.fixture(scope="module")
def lesion() -> dict[str, np.ndarray]:
    """Brain, oedema shell (r < 18 mm), enhancing rim (8-11 mm) around a necrotic core."""
    rng = np.random.default_rng(0)
    r = _distance_mm((24, 24, 20))
    brain = r < 23
    whole = r < 18
    rim = (r >= 8) & (r < 11)
    necrosis = r < 8
    t1c = rng.normal(0.0, 0.3, SHAPE)  # normal brain and oedema
    t1c[rim] += 3.0  # enhancing
    t1c[necrosis] -= 1.0  # dark necrosis
    return {"brain": brain, "whole": whole, "rim": rim, "necrosis": necrosis, "t1c": t1c}


def test_rim_core_and_oedema_are_recovered(lesion: dict[str, np.ndarray]) -> None:
    result = split_tumour_subregions(
        lesion["whole"], lesion["t1c"], spacing_mm=SPACING, brain_mask=lesion["brain"]
    )
    labels = result.labels
    np.testing.assert_array_equal(labels[lesion["rim"]], 4)
    np.testing.assert_array_equal(labels[lesion["necrosis"]], 1)  # enclosed by the rim
    oedema = lesion["whole"] & ~lesion["rim"] & ~lesion["necrosis"]
    np.testing.assert_array_equal(labels[oedema], 2)
    np.testing.assert_array_equal(labels[~lesion["whole"]], 0)
    assert result.enhancing_threshold == max(result.otsu_threshold, result.normal_brain_threshold)


def test_a_gap_in_the_rim_is_bridged_by_the_closing(lesion: dict[str, np.ndarray]) -> None:
    t1c = lesion["t1c"].copy()
    gap = np.zeros(SHAPE, dtype=bool)
    gap[24:, 23:26, 18:23] = True  # an opening 3 mm wide, 7.5 mm tall in the rim, towards +i
    t1c[lesion["rim"] & gap] = 0.0
    closed = split_tumour_subregions(
        lesion["whole"], t1c, spacing_mm=SPACING, brain_mask=lesion["brain"]
    ).labels
    assert np.mean(closed[lesion["necrosis"]] == 1) > 0.99
    open_rim = split_tumour_subregions(
        lesion["whole"],
        t1c,
        spacing_mm=SPACING,
        brain_mask=lesion["brain"],
        config=TumourSubregionConfig(closing_radius_mm=0.0),
    ).labels
    # Without the closing, the slices through the opening leave the necrosis unfilled.
    assert np.mean(open_rim[lesion["necrosis"]] == 1) < 0.5


def test_enhancing_rim_missed_by_the_whole_tumour_mask_is_added(
    lesion: dict[str, np.ndarray],
) -> None:
    t1c = lesion["t1c"].copy()
    vessel = np.zeros(SHAPE, dtype=bool)
    vessel[2:4, 23:25, 17:23] = True  # 24 enhancing voxels in the brain, off the lesion
    t1c[vessel] += 3.0
    brain = lesion["brain"] | vessel
    cut = lesion["whole"] & (np.arange(SHAPE[0])[:, None, None] < 31)  # misses the +i rim
    result = split_tumour_subregions(
        cut,
        t1c,
        spacing_mm=SPACING,
        brain_mask=brain,
        search_mask=np.ones(SHAPE, dtype=bool),
    )
    np.testing.assert_array_equal(result.labels[lesion["rim"]], 4)  # rim restored
    assert not result.labels[vessel].any()
    kept = split_tumour_subregions(
        cut,
        t1c,
        spacing_mm=SPACING,
        brain_mask=brain,
        config=TumourSubregionConfig(complete_with_enhancing=False),
    )
    assert not kept.labels[lesion["rim"] & ~cut].any()


def test_a_lesion_without_enhancement_gets_no_enhancing_part(
    lesion: dict[str, np.ndarray],
) -> None:
    flat = lesion["t1c"].copy()
    flat[lesion["rim"]] -= 3.0  # rim no brighter than normal brain
    result = split_tumour_subregions(
        lesion["whole"], flat, spacing_mm=SPACING, brain_mask=lesion["brain"]
    )
    # Otsu alone would split the lesion; the normal-brain floor keeps enhancement honest.
    assert result.enhancing_threshold >= result.normal_brain_threshold
    assert np.count_nonzero(result.labels == 4) < 0.01 * np.count_nonzero(lesion["whole"])


def test_empty_whole_tumour_and_grid_mismatch() -> None:
    empty = split_tumour_subregions(
        np.zeros(SHAPE, dtype=bool), np.zeros(SHAPE), spacing_mm=SPACING
    )
    assert not empty.labels.any()
    with pytest.raises(GeometryError, match="share the grid"):
        split_tumour_subregions(
            np.ones(SHAPE, dtype=bool), np.zeros((*SHAPE[:2], 3)), spacing_mm=SPACING
        )
