"""Prompts for text-named structures: label order, group concepts, open box sides."""

from __future__ import annotations

import numpy as np

from medseg.anatomy import LocatedBox, Vocabulary
from medseg.sam import prompts_from_boxes


def test_labels_follow_the_order_named_and_groups_share_one_label() -> None:
    vocabulary = Vocabulary()
    concepts = [vocabulary.match(t) for t in ("spleen", "kidneys", "liver", "left lung")]
    boxes = {
        "liver": LocatedBox("liver", (1, 2, 3, 10, 20, 30), "atlas", (False, True)),
        "spleen": LocatedBox("spleen", (5, 5, 5, 9, 9, 9), "atlas"),
        "kidney_left": LocatedBox("kidney_left", (2, 2, 2, 4, 4, 4), "atlas", (True, False)),
        "kidney_right": LocatedBox("kidney_right", (6, 2, 2, 8, 4, 4), "atlas"),
        # lung_left not found: no prompt, no label
    }
    objects = prompts_from_boxes(concepts, boxes, n_slices=40, extend_open_ends=True)
    assert [(o.label, o.box_ijk) for o in objects] == [
        (1, (5.0, 5.0, 5.0, 9.0, 9.0, 9.0)),
        (2, (2.0, 2.0, 2.0, 4.0, 4.0, 4.0)),
        (2, (6.0, 2.0, 2.0, 8.0, 4.0, 4.0)),
        (3, (1.0, 2.0, 3.0, 10.0, 20.0, 30.0)),
    ]
    assert all(o.propagate for o in objects)
    # An atlas label cut by the atlas's field of view lets propagation pass that box side.
    assert (objects[1].first_slice, objects[1].last_slice) == (0, None)
    assert (objects[3].first_slice, objects[3].last_slice) == (None, 39)
    assert (objects[0].first_slice, objects[0].last_slice) == (None, None)
    closed = prompts_from_boxes(concepts, boxes, n_slices=40)  # the default
    assert all(o.first_slice is None and o.last_slice is None for o in closed)


def test_a_structure_drawn_by_its_rule_gets_no_sam_prompt() -> None:
    vocabulary = Vocabulary()
    concepts = [vocabulary.match(t) for t in ("liver", "lungs")]
    boxes = {
        "liver": LocatedBox("liver", (1, 2, 3, 10, 20, 30), "atlas"),
        "lung_left": LocatedBox(
            "lung_left", (0, 0, 0, 3, 3, 3), "rules", mask=np.ones((4, 4, 4), dtype=bool)
        ),
    }
    objects = prompts_from_boxes(concepts, boxes, n_slices=40)
    assert [o.label for o in objects] == [1]


def test_each_prompt_carries_its_own_region_and_the_volume_to_redraw_below() -> None:
    vocabulary = Vocabulary()
    concepts = [vocabulary.match(t) for t in ("spleen", "kidneys")]
    region = np.zeros((4, 4, 4), dtype=bool)
    region[:2] = True
    boxes = {
        "spleen": LocatedBox("spleen", (5, 5, 5, 9, 9, 9), "atlas", expected_ml=200.0),
        "kidney_left": LocatedBox(
            "kidney_left", (2, 2, 2, 4, 4, 4), "atlas", region=region, expected_ml=100.0
        ),
    }
    # 1 mm³ voxels: half of 200 mL is 100,000 voxels.
    objects = prompts_from_boxes(concepts, boxes, n_slices=40, voxel_ml=0.001, redraw_below=0.5)
    assert [o.min_voxels for o in objects] == [100_000, 50_000]
    assert objects[0].region_ijk is None
    assert objects[1].region_ijk is region
    # Without the voxel volume nothing is redrawn.
    assert [o.min_voxels for o in prompts_from_boxes(concepts, boxes, n_slices=40)] == [0, 0]
