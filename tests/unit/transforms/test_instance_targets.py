"""Instance map → background / interior / boundary training target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg.core import InputError
from medseg.io import load_manifest
from medseg.transforms import (
    BOUNDARY_CLASS,
    CORE_CLASS,
    INTERIOR_CLASS,
    InstancesToBoundaryClassesd,
    TrainingTarget,
    compute_boundary_classes,
    compute_contact_weights,
    load_case,
    target_label_names,
)


def _two_touching_boxes() -> np.ndarray:
    labels = np.zeros((12, 20), dtype=np.uint16)
    labels[2:10, 2:9] = 1
    labels[2:10, 9:16] = 2
    return labels


def test_width_one_by_hand() -> None:
    classes = compute_boundary_classes(_two_touching_boxes(), boundary_width_px=1)
    expected = np.zeros((12, 20), dtype=np.uint8)
    expected[2:10, 2:16] = BOUNDARY_CLASS
    expected[3:9, 3:8] = INTERIOR_CLASS  # object 1: columns 2..8, its outline excluded
    expected[3:9, 10:15] = INTERIOR_CLASS  # object 2: columns 9..15
    np.testing.assert_array_equal(classes, expected)
    assert classes.dtype == np.uint8


def test_width_two_by_hand() -> None:
    classes = compute_boundary_classes(_two_touching_boxes(), boundary_width_px=2)
    expected = np.zeros((12, 20), dtype=np.uint8)
    expected[2:10, 2:16] = BOUNDARY_CLASS
    expected[4:8, 4:7] = INTERIOR_CLASS
    expected[4:8, 11:14] = INTERIOR_CLASS
    np.testing.assert_array_equal(classes, expected)


def test_band_stays_inside_objects_and_separates_touching_ones() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros((96, 96), dtype=np.int32)
    yy, xx = np.mgrid[:96, :96]
    for index in range(1, 13):  # overlapping discs: later ones paint over earlier ones
        cy, cx, r = rng.integers(10, 86), rng.integers(10, 86), rng.integers(5, 12)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = index
    for width in (1, 2, 3):
        classes = compute_boundary_classes(labels, boundary_width_px=width)
        np.testing.assert_array_equal(classes > 0, labels > 0)
        # no interior pixel lies within `width` pixels of another object or background (one
        # 4-neighbour step, then 8-neighbour steps: the band's definition)
        for index in np.unique(labels[labels > 0]):
            outside = labels != index
            near = ndimage.binary_dilation(outside, ndimage.generate_binary_structure(2, 1))
            if width > 1:
                near = ndimage.binary_dilation(near, np.ones((3, 3)), iterations=width - 1)
            assert not (near & (labels == index) & (classes == INTERIOR_CLASS)).any()
        # interiors of different objects never touch (8-connectivity)
        interiors, _ = ndimage.label(classes == INTERIOR_CLASS, np.ones((3, 3)))
        for component in range(1, interiors.max() + 1):
            assert len(np.unique(labels[interiors == component])) == 1


def test_three_dimensional_instances() -> None:
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[2:8, 2:8, 2:8] = 5
    classes = compute_boundary_classes(labels, boundary_width_px=1)
    assert (classes == INTERIOR_CLASS).sum() == 4**3
    assert (classes == BOUNDARY_CLASS).sum() == 6**3 - 4**3


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        compute_boundary_classes(_two_touching_boxes(), boundary_width_px=0)
    with pytest.raises(InputError, match="integer"):
        compute_boundary_classes(np.full((4, 4), 0.5))


def test_dict_transform_on_a_float_channel_first_label() -> None:
    item = {"image": np.zeros((3, 12, 20), np.float32), "label": _two_touching_boxes()[None]}
    out = InstancesToBoundaryClassesd(boundary_width_px=1)({**item, "label": item["label"] * 1.0})
    assert out["label"].shape == (1, 12, 20)
    np.testing.assert_array_equal(
        out["label"][0], compute_boundary_classes(_two_touching_boxes(), boundary_width_px=1)
    )
    assert InstancesToBoundaryClassesd()({"image": item["image"]}) == {"image": item["image"]}


def test_target_label_names() -> None:
    assert target_label_names(TrainingTarget.SEMANTIC, {1: "a", 2: "b"}) == {1: "a", 2: "b"}
    assert target_label_names(TrainingTarget.INSTANCE_BOUNDARY, {1: "nucleus"}) == {
        1: "nucleus_interior",
        2: "nucleus_boundary",
    }
    with pytest.raises(InputError, match="one object class"):
        target_label_names(TrainingTarget.INSTANCE_BOUNDARY, {1: "a", 2: "b"})


def test_core_by_hand() -> None:
    labels = np.zeros((16, 16), dtype=np.uint8)
    labels[2:13, 2:13] = 4  # 11 x 11: distance to the outside 1..6 (centre), rows/columns alike
    classes = compute_boundary_classes(labels, boundary_width_px=2, core_fraction=0.8)
    expected = np.zeros((16, 16), dtype=np.uint8)
    expected[2:13, 2:13] = BOUNDARY_CLASS
    expected[4:11, 4:11] = INTERIOR_CLASS
    expected[6:9, 6:9] = CORE_CLASS  # distance >= 0.8 * 6 = 4.8, i.e. 5 and 6
    np.testing.assert_array_equal(classes, expected)
    without = compute_boundary_classes(labels, boundary_width_px=2)
    np.testing.assert_array_equal(np.where(classes == CORE_CLASS, INTERIOR_CLASS, classes), without)
    with pytest.raises(ValueError, match="core_fraction"):
        compute_boundary_classes(labels, core_fraction=1.5)


def test_cores_of_touching_objects_lie_apart() -> None:
    yy, xx = np.mgrid[:60, :90]
    labels = np.zeros((60, 90), dtype=np.int32)
    labels[(yy - 30) ** 2 + (xx - 30) ** 2 < 16**2] = 1
    labels[(yy - 30) ** 2 + (xx - 56) ** 2 < 16**2] = 2  # overlaps the first: a wide contact
    labels[(yy - 8) ** 2 + (xx - 80) ** 2 < 3**2] = 3  # small: its core is its deepest pixels
    classes = compute_boundary_classes(labels, boundary_width_px=1, core_fraction=0.5)
    cores, n_cores = ndimage.label(classes == CORE_CLASS, np.ones((3, 3)))
    assert n_cores == 3
    assert sorted(len(np.unique(labels[cores == c])) for c in range(1, 4)) == [1, 1, 1]
    # the cores are further apart than the interiors are
    gap = ndimage.distance_transform_edt(cores != 1)[cores == 2].min()
    assert gap > 8
    item = InstancesToBoundaryClassesd(boundary_width_px=1, core_fraction=0.5)(
        {"label": labels[None]}
    )
    np.testing.assert_array_equal(item["label"][0], classes)
    assert target_label_names(TrainingTarget.INSTANCE_CORE, {1: "nucleus"})[CORE_CLASS] == (
        "nucleus_core"
    )


def test_real_dsb_case_keeps_its_instance_ids(repo_root: Path) -> None:
    manifest = load_manifest(repo_root / "data_manifests/cells_dsb2018.yaml")
    case = next(c for c in manifest.cases if c.id == "dsb_54fe2d3416951cbc")  # 25 nuclei
    arrays = load_case(case, root=repo_root, labels=manifest.labels, instance_label=True)
    assert arrays.label is not None
    assert arrays.label.dtype == np.int32
    assert len(np.unique(arrays.label[arrays.label > 0])) == 25
    classes = compute_boundary_classes(arrays.label)
    assert set(np.unique(classes)) == {0, 1, 2}
    semantic = load_case(case, root=repo_root, labels=manifest.labels)
    np.testing.assert_array_equal(semantic.label > 0, classes > 0)


def test_contact_weights_mark_the_band_between_touching_objects_only() -> None:
    weights = compute_contact_weights(_two_touching_boxes(), contact_weight=5.0)
    assert weights.dtype == np.float32
    expected = np.ones((12, 20), dtype=np.float32)
    # columns 7..10 lie within 2 px of both boxes (object 1 ends at column 8, object 2
    # starts at 9); rows 1 and 10 only at the two columns next to the seam
    expected[2:10, 7:11] = 5.0
    expected[[1, 10], 8:10] = 5.0
    np.testing.assert_array_equal(weights, expected)


def test_contact_weights_of_an_isolated_object_and_a_wide_gap_are_one() -> None:
    labels = np.zeros((12, 20), dtype=np.int32)
    labels[2:10, 2:7] = 1
    labels[2:10, 12:18] = 2  # 5 background columns apart: nobody within 2 px of both
    np.testing.assert_array_equal(compute_contact_weights(labels, contact_weight=5.0), 1.0)
    only = np.zeros((8, 8), dtype=np.int32)
    only[2:6, 2:6] = 7
    np.testing.assert_array_equal(compute_contact_weights(only, contact_weight=5.0), 1.0)


def test_contact_weights_across_a_one_pixel_gap_include_the_gap() -> None:
    labels = np.zeros((8, 12), dtype=np.int32)
    labels[2:6, 1:5] = 1
    labels[2:6, 6:10] = 2  # column 5 is background between them
    weights = compute_contact_weights(labels, contact_weight=3.0, band_px=1)
    expected = np.ones((8, 12), dtype=np.float32)
    expected[2:6, 5] = 3.0  # within 1 px of both: the gap only
    np.testing.assert_array_equal(weights, expected)
    weights = compute_contact_weights(labels, contact_weight=3.0, band_px=2)
    expected[2:6, 4:7] = 3.0  # within 2 px: the gap and the facing column of each object
    expected[[1, 6], 5] = 3.0  # and the gap's ends (sqrt(2) px from both corners)
    np.testing.assert_array_equal(weights, expected)
    with pytest.raises(ValueError, match="positive"):
        compute_contact_weights(labels, contact_weight=0.0)


def test_dict_transform_adds_contact_weights_only_when_asked() -> None:
    label = _two_touching_boxes()[None].astype(np.float32)
    plain = InstancesToBoundaryClassesd(boundary_width_px=2)({"label": label})
    assert "weight" not in plain
    item = InstancesToBoundaryClassesd(boundary_width_px=2, contact_weight=5.0)({"label": label})
    assert item["weight"].shape == label.shape
    np.testing.assert_array_equal(
        item["weight"][0], compute_contact_weights(_two_touching_boxes(), contact_weight=5.0)
    )
