from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medseg.core import ConfigError, IntegrityError
from medseg.io import load_manifest, manifest_root, verify_manifest

MANIFESTS = sorted((Path(__file__).resolve().parents[3] / "data_manifests").glob("*.yaml"))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_bundled_manifests_verify(path: Path) -> None:
    root = manifest_root(path)
    manifest = load_manifest(path)
    listed = [root / case.image for case in manifest.cases]
    listed += [root / listed_file.path for listed_file in manifest.files]
    outside = [file for file in listed if not file.resolve().is_relative_to(path.parents[1])]
    if outside and not all(file.exists() for file in outside):
        pytest.skip(f"{path.name} lists files outside the repository (../shared), absent here")
    manifest = verify_manifest(path)
    assert manifest.cases
    assert manifest.licence
    assert manifest.citation


def _copy_dataset(repo_root: Path, tmp_path: Path) -> Path:
    manifest_path = repo_root / "data_manifests" / "ct_totalsegmentator.yaml"
    (tmp_path / "data_manifests").mkdir()
    shutil.copy(manifest_path, tmp_path / "data_manifests")
    shutil.copytree(
        repo_root / "data" / "ct_totalsegmentator", tmp_path / "data" / "ct_totalsegmentator"
    )
    return tmp_path / "data_manifests" / "ct_totalsegmentator.yaml"


def test_altered_and_missing_files_are_each_named(repo_root: Path, tmp_path: Path) -> None:
    manifest_path = _copy_dataset(repo_root, tmp_path)
    altered = tmp_path / "data/ct_totalsegmentator/example_seg.nii.gz"
    data = bytearray(altered.read_bytes())
    data[100] ^= 0xFF
    altered.write_bytes(bytes(data))
    (tmp_path / "data/ct_totalsegmentator/labels_total.json").unlink()
    with pytest.raises(IntegrityError) as info:
        verify_manifest(manifest_path)
    message = str(info.value)
    assert "2 problem(s)" in message
    assert "example_seg.nii.gz: altered" in message
    assert "labels_total.json: missing" in message


def test_case_path_not_listed_is_reported(repo_root: Path, tmp_path: Path) -> None:
    manifest_path = _copy_dataset(repo_root, tmp_path)
    text = manifest_path.read_text().replace(
        "label: data/ct_totalsegmentator/example_seg.nii.gz",
        "label: data/ct_totalsegmentator/other.nii.gz",
    )
    manifest_path.write_text(text)
    with pytest.raises(
        IntegrityError, match=r"other\.nii\.gz: case ct_small_01 label is not listed"
    ):
        verify_manifest(manifest_path)


def test_schema_errors_name_the_key(repo_root: Path, tmp_path: Path) -> None:
    manifest_path = _copy_dataset(repo_root, tmp_path)
    text = manifest_path.read_text().replace("split: demo", "split: demonstration")
    manifest_path.write_text(text)
    with pytest.raises(ConfigError, match=r"cases\.0\.split"):
        load_manifest(manifest_path)
