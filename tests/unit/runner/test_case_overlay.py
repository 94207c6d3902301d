"""The run's per-case overlay outlines only the evaluated structures, named, on their slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medseg.core import load_config
from medseg.io import Volume
from medseg.runner import PipelineConfig
from medseg.runner._overlay import (
    evaluated_label_groups,
    plan_case_overlay,
    write_case_overlay,
)

LABELS = {1: "spleen", 5: "liver", 6: "stomach"}


def _demo_config(repo_root: Path) -> PipelineConfig:
    return load_config(repo_root / "pipelines" / "demo_ct_liver.yaml", PipelineConfig)


def test_demo_overlay_groups_are_the_evaluated_liver_only(repo_root: Path) -> None:
    prediction = np.zeros((4, 4, 2), dtype=np.uint8)
    prediction[1, 1, 0] = 5
    groups = evaluated_label_groups(_demo_config(repo_root), LABELS, prediction)
    assert groups == {"liver": [5]}


def test_overlay_slice_and_title_follow_the_evaluated_structure(
    repo_root: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    shape = (40, 40, 6)
    image = Volume(
        array=rng.normal(40, 30, shape).astype(np.float32),
        affine=np.diag([-0.8, -0.8, 2.0, 1.0]),  # LPS voxel axes
        metadata={"modality": "CT"},
    )
    reference = np.zeros(shape, dtype=np.uint8)
    reference[5:15, 5:15, 4] = 5  # the liver: only on slice 4
    reference[10:35, 10:35, 1] = 1  # a much larger spleen on slice 1, not evaluated
    prediction = np.where(reference == 5, 5, 0).astype(np.uint8)
    case = {
        "case_id": "case_01",
        "image": image,
        "prediction": image.with_array(prediction),
        "reference": image.with_array(reference),
        "labels": LABELS,
        "config": _demo_config(repo_root),
        "root": repo_root,
    }
    plan = plan_case_overlay(**case)
    assert plan.slice_index == 4  # the liver's slice, not the big spleen's
    assert plan.title == "case_01: liver, slice 4 of 6"
    assert [c[0] for c in plan.contours] == ["liver (prediction)", "liver (reference)"]
    assert plan.contours[1][3] == "dashed"
    reference_drawn = plan.contours[1][1]
    assert reference_drawn.sum() == 100  # the liver's 10 x 10 voxels, no spleen
    assert plan.markers == ("R", "L", "A", "P")
    assert plan.aspect == 1.0
    assert write_case_overlay(path=tmp_path / "overlay.png", **case).is_file()


def test_colour_images_stay_in_colour(tmp_path: Path) -> None:
    from medseg.core import parse_config

    config = parse_config(
        PipelineConfig,
        {
            "name": "t",
            "description": "t",
            "dataset": "data_manifests/cells_dsb2018.yaml",
            "stages": ["ingest", "segment"],
            "segment": {"method": "otsu_watershed"},
            "evaluate": {"kind": "instance"},
        },
    )
    rgb = np.zeros((30, 20, 1, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # an H&E-like pink-purple image: red and blue, little green
    rgb[..., 2] = 150
    rgb[..., 1] = 40
    image = Volume(array=rgb, affine=np.diag([-1.0, -1.0, 1.0, 1.0]), metadata={"is_2d": True})
    labels = np.zeros((30, 20, 1), dtype=np.int32)
    labels[5:10, 5:10, 0] = 1
    path = write_case_overlay(
        case_id="img_01",
        image=image,
        prediction=image.with_array(labels),
        reference=image.with_array(labels),
        labels={1: "nucleus"},
        config=config,
        root=tmp_path,
        path=tmp_path / "overlay.png",
    )
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
    pink = (pixels[:, 0] > 150) & (pixels[:, 2] > 100) & (pixels[:, 1] < 90)
    assert pink.sum() > 1000, "the colour image was drawn in grey"
