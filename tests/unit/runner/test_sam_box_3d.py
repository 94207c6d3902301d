"""Runner method ``sam_box_3d``: config, simulated radiologist boxes, prompt files, regions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.core import ConfigError, parse_config
from medseg.evaluation import compute_dice
from medseg.io import Case, Volume
from medseg.runner import (
    CaseContext,
    PipelineConfig,
    PromptSource,
    SamBox3DConfig,
    segment_with_3d_boxes,
    simulate_box_prompts,
)
from medseg.runner._stages import evaluate

_BASE = {
    "name": "t",
    "description": "test",
    "dataset": "data_manifests/tumor_brats2015.yaml",
    "stages": ["ingest", "segment", "evaluate"],
}


def test_structures_given_as_names_or_with_labels() -> None:
    config = parse_config(
        PipelineConfig,
        {
            **_BASE,
            "segment": {
                "method": "sam_box_3d",
                "sam_3d": {
                    "structures": ["liver", {"name": "whole_tumour", "reference_labels": [1, 4]}]
                },
            },
            "evaluate": {"regions": {"whole_tumour": [1, 2, 3, 4], "enhancing": [4]}},
        },
    )
    sam_3d = config.segment.sam_3d
    assert sam_3d is not None
    assert [s.name for s in sam_3d.structures] == ["liver", "whole_tumour"]
    assert sam_3d.structures[1].reference_labels == [1, 4]
    assert sam_3d.prompts is PromptSource.REFERENCE
    assert config.evaluate.regions == {"whole_tumour": [1, 2, 3, 4], "enhancing": [4]}


@pytest.mark.parametrize(
    ("segment", "evaluate", "message"),
    [
        ({"method": "sam_box_3d"}, {}, "needs a 'sam_3d' section"),
        (
            {"method": "sam_box_3d", "sam_3d": {"structures": ["a"], "prompts": "file"}},
            {},
            "needs prompt_file",
        ),
        (
            {"method": "sam_box_3d", "sam_3d": {"structures": ["a", "a"]}},
            {},
            "unique",
        ),
        (
            {"method": "sam_box_3d", "sam_3d": {"structures": ["a"]}},
            {"regions": {"wt": [0, 1]}},
            "label ids >= 1",
        ),
    ],
)
def test_bad_sam_3d_configs(segment: dict, evaluate: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(PipelineConfig, {**_BASE, "segment": segment, "evaluate": evaluate})


def _reference() -> Volume:
    array = np.zeros((60, 50, 12), dtype=np.uint8)
    array[10:30, 20:40, 3:9] = 2
    array[35:45, 5:15, 5:7] = 7
    return Volume(array, np.diag([0.8, 0.8, 2.5, 1.0]))


def test_simulated_boxes_jitter_in_plane_only_and_are_seeded() -> None:
    structures = {"big": ([2], 2), "small": ([7], 9), "absent": ([5], 5)}
    first = simulate_box_prompts(
        _reference(), structures, jitter_fraction=0.05, rng=np.random.default_rng(3)
    )
    again = simulate_box_prompts(
        _reference(), structures, jitter_fraction=0.05, rng=np.random.default_rng(3)
    )
    assert [p.box_ijk for p in first] == [p.box_ijk for p in again]
    assert [p.label for p in first] == [2, 9]  # the absent structure is not prompted
    exact = {2: (10, 20, 3, 29, 39, 8), 9: (35, 5, 5, 44, 14, 6)}
    for prompt in first:
        box, tight = np.array(prompt.box_ijk), np.array(exact[prompt.label], dtype=float)
        size = tight[3:] - tight[:3] + 1
        # i and j sides move by at most 5 % of the box size; the slice range is exact.
        assert np.all(np.abs(box - tight)[[0, 1, 3, 4]] <= 0.05 * np.r_[size[:2], size[:2]])
        assert box[2] == tight[2]
        assert box[5] == tight[5]
    assert first[0].box_ijk != exact[2]  # it did move


def test_regions_scored_in_the_evaluate_stage(tmp_path: Path) -> None:
    reference = np.zeros((20, 20, 6), dtype=np.uint8)
    reference[4:12, 4:12, 1:5] = 2
    reference[6:10, 6:10, 2:4] = 4
    prediction = np.where(reference > 0, 1, 0).astype(np.uint8)  # whole tumour only
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    context = CaseContext(
        case=Case(id="c1", image="x.nii.gz", split="test"),
        labels={1: "necrosis", 2: "oedema", 4: "enhancing"},
        root=tmp_path,
        out_dir=tmp_path,
        image=Volume(reference.astype(np.float32), affine),
        reference=Volume(reference, affine),
        prediction=Volume(prediction, affine),
    )
    config = parse_config(
        PipelineConfig,
        {
            **_BASE,
            "segment": {"method": "otsu_watershed"},
            "evaluate": {"regions": {"whole_tumour": [1, 2, 4], "enhancing": [4]}},
        },
    )
    evaluate(context, config)
    assert context.metrics["dice_whole_tumour"] == pytest.approx(1.0)
    assert context.metrics["dice_enhancing"] == 0.0  # no label 4 predicted
    written = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert written["enhancing"]["empty"] == "prediction_empty"


@pytest.mark.slow
def test_prompt_file_boxes_drive_the_method(tmp_path: Path) -> None:
    """A bright box-shaped object in a small CT-like volume, boxed in a prompt file."""
    rng = np.random.default_rng(1)
    truth = np.zeros((64, 64, 5), dtype=bool)
    ii, jj = np.mgrid[:64, :64]
    disk = ((ii - 30) / 11.0) ** 2 + ((jj - 26) / 9.0) ** 2 < 1.0
    truth[:, :, 1:4] = disk[..., None]
    image = Volume(
        (np.where(truth, 180.0, -40.0) + rng.normal(0, 5, truth.shape)).astype(np.float32),
        np.diag([0.8, 0.8, 3.0, 1.0]),
    )
    prompts = tmp_path / "prompts.json"
    prompts.write_text(
        json.dumps(
            {"cases": [{"case_id": "c1", "objects": [{"label": 3, "box": [17, 15, 1, 43, 37, 3]}]}]}
        ),
        encoding="utf-8",
    )
    config = SamBox3DConfig.model_validate(
        {
            "device": "cpu",
            "intensity": {"mode": "ct"},
            "structures": ["spleen"],
            "prompts": "file",
            "prompt_file": "prompts.json",
        }
    )
    context = CaseContext(
        case=Case(id="c1", image="x.nii.gz", split="test"),
        labels={3: "spleen"},
        root=tmp_path,
        out_dir=tmp_path,
        image=image,
    )
    labels = segment_with_3d_boxes(context, config)
    np.testing.assert_array_equal(labels.affine, image.affine)
    assert set(np.unique(labels.array)) == {0, 3}
    assert compute_dice(labels.array == 3, truth) > 0.9
