"""Issue 24 item 5: your own cases as a three-line manifest (paths relative to it,
provenance optional), a plain folder, or an nnU-Net dataset.json — one path rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.core import InputError
from medseg.io import (
    ReferenceStandard,
    Split,
    Volume,
    find_manifest_problems,
    load_cases,
    manifest_root,
    resolve_case_paths,
    write_nifti,
)


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_nifti(Volume(array=np.zeros((3, 3, 2), np.int16), affine=np.eye(4)), path)


def test_three_line_manifest_resolves_against_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _image(tmp_path / "project" / "scans" / "a.nii.gz")
    _image(tmp_path / "project" / "scans" / "a_seg.nii.gz")
    manifest_path = tmp_path / "project" / "my.yaml"
    manifest_path.write_text(
        "cases:\n  - {id: a, image: scans/a.nii.gz, label: scans/a_seg.nii.gz}\n"
    )
    monkeypatch.chdir(tmp_path)  # the working directory plays no part
    manifest, root = load_cases(Path("project/my.yaml"))
    assert root == (tmp_path / "project").resolve()
    assert manifest.name == "my"
    for field in ("licence", "citation", "deid_status", "description", "modality"):
        assert getattr(manifest, field) == "unknown"
    assert manifest.reference_standard is ReferenceStandard.UNKNOWN
    assert manifest.files == []
    assert manifest.cases[0].split is Split.TEST
    assert find_manifest_problems(manifest, root=root) == []
    case = resolve_case_paths(manifest.cases[0], root)
    assert Path(case.image) == (tmp_path / "project/scans/a.nii.gz").resolve()


def test_root_key_and_bundled_manifests(tmp_path: Path, repo_root: Path) -> None:
    (tmp_path / "m").mkdir()
    path = tmp_path / "m" / "x.yaml"
    path.write_text("root: ../data\ncases:\n  - {id: a, image: a.nii.gz}\n")
    assert manifest_root(path) == (tmp_path / "data").resolve()
    assert manifest_root(repo_root / "data_manifests/ct_totalsegmentator.yaml") == repo_root


def test_missing_case_file_is_named_with_its_full_path(tmp_path: Path) -> None:
    path = tmp_path / "my.yaml"
    path.write_text("cases:\n  - {id: a, image: nowhere/a.nii.gz}\n")
    manifest, root = load_cases(path)
    (problem,) = find_manifest_problems(manifest, root=root)
    assert str(tmp_path / "nowhere" / "a.nii.gz") in problem


def test_plain_folder_with_images_and_labels(tmp_path: Path) -> None:
    for name in ("case1", "case2"):
        _image(tmp_path / "my" / "images" / f"{name}.nii.gz")
    _image(tmp_path / "my" / "labels" / "case2.nii.gz")
    manifest, root = load_cases(tmp_path / "my")
    assert root == (tmp_path / "my").resolve()
    assert [(c.id, c.image, c.label) for c in manifest.cases] == [
        ("case1", "images/case1.nii.gz", None),
        ("case2", "images/case2.nii.gz", "labels/case2.nii.gz"),
    ]


def test_folder_of_images_alone(tmp_path: Path) -> None:
    _image(tmp_path / "a.nii.gz")
    (tmp_path / "notes.txt").write_text("ignored")
    manifest, _ = load_cases(tmp_path)
    assert [c.id for c in manifest.cases] == ["a"]


def test_nnunet_v2_dataset_json(tmp_path: Path) -> None:
    for case in ("liver_001", "liver_002"):
        _image(tmp_path / "imagesTr" / f"{case}_0000.nii.gz")
        _image(tmp_path / "imagesTr" / f"{case}_0001.nii.gz")
        _image(tmp_path / "labelsTr" / f"{case}.nii.gz")
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "CT", "1": "venous"},
                "labels": {"background": 0, "liver": 1, "tumour": 2},
                "numTraining": 2,
                "file_ending": ".nii.gz",
            }
        )
    )
    manifest, root = load_cases(tmp_path / "dataset.json")
    assert root == tmp_path.resolve()
    assert manifest.labels == {1: "liver", 2: "tumour"}
    assert manifest.modality == "CT"
    first = manifest.cases[0]
    assert (first.id, first.image, first.label) == (
        "liver_001",
        "imagesTr/liver_001_0000.nii.gz",
        "labelsTr/liver_001.nii.gz",
    )
    assert first.additional_images == {"venous": "imagesTr/liver_001_0001.nii.gz"}
    assert first.split is Split.TRAIN


def test_msd_v1_dataset_json(tmp_path: Path) -> None:
    _image(tmp_path / "imagesTr" / "spleen_2.nii.gz")
    _image(tmp_path / "labelsTr" / "spleen_2.nii.gz")
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {
                "name": "Spleen",
                "modality": {"0": "CT"},
                "labels": {"0": "background", "1": "spleen"},
                "training": [
                    {"image": "./imagesTr/spleen_2.nii.gz", "label": "./labelsTr/spleen_2.nii.gz"}
                ],
            }
        )
    )
    manifest, _ = load_cases(tmp_path)  # the folder holding dataset.json
    assert manifest.name == "spleen"
    assert manifest.labels == {1: "spleen"}
    assert [(c.id, c.label) for c in manifest.cases] == [("spleen_2", "labelsTr/spleen_2.nii.gz")]


@pytest.mark.parametrize("kind", ["empty", "bad_name", "missing", "orphan_label"])
def test_errors_name_the_path(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "cases"
    folder.mkdir()
    expected = folder
    if kind == "bad_name":
        expected = _image(folder / "my scan (1).nii.gz")
    elif kind == "missing":
        expected = folder / "absent.yaml"
    elif kind == "orphan_label":
        _image(folder / "images" / "a.nii.gz")
        expected = _image(folder / "labels" / "b.nii.gz")
    with pytest.raises(InputError) as info:
        load_cases(expected if kind == "missing" else folder)
    assert info.value.path == expected
