"""The engine on generated files carrying PHI in 50+ attributes, sequences, private, meta."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from medseg.deid import (
    AUDIT_NAME,
    DeidConfig,
    DeidKey,
    DeidOption,
    check_for_leaks,
    deidentify_tree,
)
from tests.unit.deid.conftest import PhiFile, count_planted_tags


def _all_output_bytes(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]


@pytest.fixture
def phi_tree(tmp_path: Path, make_phi_file: Callable[..., PhiFile]) -> tuple[Path, list[PhiFile]]:
    src = tmp_path / "src"
    files = [
        make_phi_file(src / "ZORBAQUEX0" / f"slice{i}.dcm", patient=0, instance=i) for i in range(3)
    ]
    files.append(make_phi_file(src / "other" / "x.dcm", patient=1))
    return src, files


def test_generated_files_carry_50_tags(phi_tree: tuple[Path, list[PhiFile]]) -> None:
    _, files = phi_tree
    assert count_planted_tags(files[0]) >= 50


def test_no_planted_value_survives_anywhere(
    phi_tree: tuple[Path, list[PhiFile]], tmp_path: Path, deid_key: DeidKey
) -> None:
    src, files = phi_tree
    dst = tmp_path / "dst"
    summary = deidentify_tree(src, dst, config=DeidConfig(), key=deid_key)
    assert summary.statuses["written"] == 4
    outputs = _all_output_bytes(dst)
    assert len(outputs) == 5  # 4 files + the audit
    for phi in files:
        planted = list(phi.markers.values()) + list(phi.uids.values())
        for path, data in outputs:
            for value in planted:
                # raw bytes: catches the preamble, meta, private and nested values alike
                assert value.encode() not in data, (path.name, value)
                assert value.split("^")[0].encode() not in data
        # names of files and folders
        for path, _ in outputs:
            assert "ZORBAQUEX" not in str(path.relative_to(dst))
    report = check_for_leaks(src, dst)
    assert report.leaks == []
    assert report.values_by_category["private"] >= 4
    assert report.values_by_category["meta"] >= 2


def test_outputs_have_deid_markers_and_new_meta(
    phi_tree: tuple[Path, list[PhiFile]], tmp_path: Path, deid_key: DeidKey
) -> None:
    src, _ = phi_tree
    dst = tmp_path / "dst"
    deidentify_tree(src, dst, config=DeidConfig(), key=deid_key)
    for path in dst.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPInstanceUID.startswith("2.25.")
        assert "SourceApplicationEntityTitle" not in ds.file_meta
        assert "PrivateInformation" not in ds.file_meta
        assert ds.preamble == b"\x00" * 128
        assert not any(elem.tag.is_private for elem in ds.iterall())
        assert path.name == f"{ds.SOPInstanceUID}.dcm"
        assert path.parent.name == ds.SeriesInstanceUID
        assert path.parent.parent.name == ds.StudyInstanceUID
        assert path.parent.parent.parent.name == ds.PatientID


def test_audit_has_no_phi(
    phi_tree: tuple[Path, list[PhiFile]], tmp_path: Path, deid_key: DeidKey
) -> None:
    src, files = phi_tree
    dst = tmp_path / "dst"
    deidentify_tree(src, dst, config=DeidConfig(), key=deid_key)
    text = (dst / AUDIT_NAME).read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 4
    assert {line["status"] for line in lines} == {"written"}
    assert all(sum(line["actions"].values()) > 50 for line in lines)
    for phi in files:
        for value in list(phi.markers.values()) + list(phi.uids.values()):
            assert value not in text
    for fragment in ("slice", "ZORBAQUEX", "src"):
        assert fragment not in text


@pytest.mark.parametrize("option", list(DeidOption))
def test_every_option_still_leaks_nothing_it_should_not(
    phi_tree: tuple[Path, list[PhiFile]], tmp_path: Path, deid_key: DeidKey, option: DeidOption
) -> None:
    src, _ = phi_tree
    dst = tmp_path / "dst"
    deidentify_tree(src, dst, config=DeidConfig(options=(option,)), key=deid_key)
    report = check_for_leaks(src, dst)
    assert report.retained_options == [option.value]
    assert report.leaks == [], report.to_json()["leak_details"][:5]
