from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.core import ConfigError, InputError
from medseg.io import LPS_TO_RAS, Volume
from medseg.sam import CoordinateSpace, load_prompt_file, resolve_object_prompts


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def _volume(shape: tuple[int, int, int], affine: np.ndarray | None = None) -> Volume:
    return Volume(np.zeros(shape, dtype=np.int16), np.eye(4) if affine is None else affine)


def test_valid_file_resolves_to_voxel_prompts(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "cases": [
                {
                    "case_id": "c1",
                    "objects": [
                        {"label": 3, "box": [1, 2, 3, 10, 12, 8]},
                        {"slice": 4, "points": [[5, 6, 1], [7, 8, 0]], "propagate": True},
                    ],
                }
            ]
        },
    )
    prompts = load_prompt_file(path)
    assert prompts.coordinates is CoordinateSpace.VOXEL
    first, second = resolve_object_prompts(prompts, _volume((20, 20, 10)))
    assert first.label == 3
    assert first.box_ijk == (1, 2, 3, 10, 12, 8)
    assert second.points_ijk == ((5, 6, 4), (7, 8, 4))
    assert second.point_labels == (1, 0)
    assert second.propagate


def test_two_d_image_needs_no_slice(tmp_path: Path) -> None:
    path = _write(tmp_path, {"cases": [{"case_id": "img", "objects": [{"box": [1, 2, 30, 40]}]}]})
    (obj,) = resolve_object_prompts(load_prompt_file(path), _volume((64, 48, 1)))
    assert obj.box_ijk == (1, 2, 0, 30, 40, 0)


def test_three_d_image_needs_a_slice_for_four_value_boxes(tmp_path: Path) -> None:
    path = _write(tmp_path, {"cases": [{"case_id": "c", "objects": [{"box": [1, 2, 30, 40]}]}]})
    with pytest.raises(InputError, match="give 'slice'"):
        resolve_object_prompts(load_prompt_file(path), _volume((64, 48, 5)))


@pytest.mark.parametrize("space", ["ras_mm", "lps_mm"])
def test_world_mm_points_map_through_the_affine(tmp_path: Path, space: str) -> None:
    affine = np.array([[-0.5, 0, 0, 40.0], [0, -0.5, 0, 30.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]])
    voxel = np.array([10.0, 20.0, 3.0])
    ras = (affine @ np.r_[voxel, 1.0])[:3]
    world = ras if space == "ras_mm" else (LPS_TO_RAS[:3, :3] @ ras)
    corner = (affine @ np.array([30.0, 40.0, 6.0, 1.0]))[:3]
    corner = corner if space == "ras_mm" else LPS_TO_RAS[:3, :3] @ corner
    path = _write(
        tmp_path,
        {
            "coordinates": space,
            "cases": [
                {
                    "case_id": "c",
                    "objects": [
                        {"points": [[*world.tolist(), 1]]},
                        {"box": [*world.tolist(), *corner.tolist()]},
                    ],
                }
            ],
        },
    )
    point_obj, box_obj = resolve_object_prompts(
        load_prompt_file(path), _volume((64, 64, 10), affine)
    )
    np.testing.assert_allclose(point_obj.points_ijk[0], voxel, atol=1e-9)
    np.testing.assert_allclose(box_obj.box_ijk, [10, 20, 3, 30, 40, 6], atol=1e-9)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"not valid JSON: .* line 1, column 2"),
        ("[1, 2]", "must hold a JSON object"),
        ({"cases": []}, "cases: list should have at least 1 item"),
        ({"cases": [{"case_id": "a", "objects": [{}]}]}, r"cases\.0\.objects\.0: .*box or points"),
        (
            {"cases": [{"case_id": "a", "objects": [{"box": [1, 2, 3, 4, 5]}]}]},
            r"cases\.0\.objects\.0: .*box must have 4 values",
        ),
        (
            {"cases": [{"case_id": "a", "objects": [{"points": [[1, 2, 7]]}]}]},
            r"point 0 label must be 1 \(foreground\) or 0 \(background\)",
        ),
        (
            {"cases": [{"case_id": "a", "objects": [{"box": [1, 2, 3, 4], "colour": 1}]}]},
            r"cases\.0\.objects\.0\.colour: unknown key",
        ),
        (
            {
                "coordinates": "ras_mm",
                "cases": [{"case_id": "a", "objects": [{"box": [1, 2, 3, 4]}]}],
            },
            "world-mm boxes need 6 values",
        ),
        (
            {
                "coordinates": "pixels",
                "cases": [{"case_id": "a", "objects": [{"box": [1, 2, 3, 4]}]}],
            },
            r"coordinates: input should be 'voxel', 'ras_mm' or 'lps_mm'",
        ),
        (
            {
                "cases": [
                    {"case_id": "a", "objects": [{"box": [1, 2, 3, 4]}]},
                    {"case_id": "a", "objects": [{"box": [1, 2, 3, 4]}]},
                ]
            },
            "case_id 'a' appears more than once",
        ),
    ],
)
def test_bad_prompt_files_give_clear_errors(tmp_path: Path, content: object, message: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ConfigError, match=message) as info:
        load_prompt_file(path)
    assert "prompts.json" in str(info.value)


def test_case_selection(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "cases": [
                {"case_id": "a", "objects": [{"box": [1, 2, 3, 4]}]},
                {"case_id": "b", "objects": [{"box": [1, 2, 3, 4]}]},
            ]
        },
    )
    prompts = load_prompt_file(path)
    with pytest.raises(ConfigError, match="choose one with --case"):
        prompts.case(None)
    with pytest.raises(ConfigError, match="'c' is not in the prompt file"):
        prompts.case("c")
    assert prompts.case("b").case_id == "b"


def test_missing_prompt_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prompt file not found"):
        load_prompt_file(tmp_path / "none.json")
