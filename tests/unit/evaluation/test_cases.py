"""Pairing predictions and references by case id; loading onto one grid."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.core import GeometryError, InputError
from medseg.evaluation import case_id_of, find_case_pairs, load_case
from medseg.io import load_manifest, manifest_root


def _write(path: Path, array: np.ndarray, spacing: tuple[float, float, float]) -> Path:
    nib.save(nib.Nifti1Image(array, np.diag([*spacing, 1.0])), path)
    return path


@pytest.mark.parametrize(
    ("name", "case_id"),
    [("case_01.nii.gz", "case_01"), ("a.b.nii", "a.b"), ("x.PNG", "x"), ("img.tif", "img")],
)
def test_case_id_of(name: str, case_id: str) -> None:
    assert case_id_of(Path(name)) == case_id


def test_folders_pair_by_case_id(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    mask = np.zeros((4, 4, 2), np.uint8)
    for name in ("b", "a"):
        _write(tmp_path / "r" / f"{name}.nii.gz", mask, (1, 1, 1))
        _write(tmp_path / "p" / f"{name}.nii.gz", mask, (1, 1, 1))
    _write(tmp_path / "p" / "extra.nii.gz", mask, (1, 1, 1))  # ignored with a warning
    pairs = find_case_pairs(tmp_path / "p", tmp_path / "r")
    assert [p.case_id for p in pairs] == ["a", "b"]
    assert pairs[0].prediction.name == "a.nii.gz"


def test_manifest_supplies_references(repo_root: Path, tmp_path: Path) -> None:
    manifest_path = repo_root / "data_manifests/ct_totalsegmentator.yaml"
    (tmp_path / "ct_small_01.nii.gz").write_bytes(
        (repo_root / "data/ct_totalsegmentator/example_seg.nii.gz").read_bytes()
    )
    pairs = find_case_pairs(
        tmp_path, manifest=load_manifest(manifest_path), manifest_root=manifest_root(manifest_path)
    )
    assert [p.case_id for p in pairs] == ["ct_small_01"]
    case = load_case(pairs[0])
    assert case.spacing_mm == pytest.approx((3.0, 3.0, 3.0))
    assert case.image is not None
    assert case.image.shape == case.reference.shape


def test_grid_mismatch_is_a_geometry_error(tmp_path: Path) -> None:
    mask = np.zeros((4, 4, 2), np.uint8)
    ref = _write(tmp_path / "r.nii.gz", mask, (1, 1, 1))
    pred = _write(tmp_path / "p.nii.gz", mask, (1, 1, 2))
    (pair,) = find_case_pairs(pred, ref)
    with pytest.raises(GeometryError):
        load_case(pair)


def test_missing_paths_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        find_case_pairs(tmp_path / "nope", tmp_path)
    with pytest.raises(InputError, match="reference"):
        find_case_pairs(tmp_path)
