"""deid-check finds planted leaks and nothing on clean outputs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from medseg.deid import DeidConfig, DeidKey, check_for_leaks, deidentify_tree
from tests.unit.deid.conftest import PhiFile


@pytest.fixture
def clean_pair(
    tmp_path: Path, make_phi_file: Callable[..., PhiFile], deid_key: DeidKey
) -> tuple[Path, Path, PhiFile]:
    src = tmp_path / "in"
    phi = make_phi_file(src / "p" / "a.dcm", patient=3)
    make_phi_file(src / "p" / "b.dcm", patient=3, instance=1)
    dst = tmp_path / "out"
    deidentify_tree(src, dst, config=DeidConfig(), key=deid_key)
    return src, dst, phi


def _first_output(dst: Path) -> Path:
    return sorted(dst.rglob("*.dcm"))[0]


def test_clean_output_has_no_leaks(clean_pair: tuple[Path, Path, PhiFile]) -> None:
    src, dst, _ = clean_pair
    report = check_for_leaks(src, dst)
    assert report.leaks == []
    assert report.values_by_category["name"] > 10
    assert report.values_by_category["uid"] >= 8


@pytest.mark.parametrize(
    ("plant", "category"),
    [
        (
            lambda ds, phi: setattr(ds, "ImageComments", f"for {phi.markers['PatientName']}"),
            "name",
        ),
        (
            lambda ds, phi: setattr(ds, "ImageComments", phi.markers["PatientName"].split("^")[1]),
            "name",
        ),
        (
            lambda ds, phi: setattr(ds, "ImageComments", phi.markers["AccessionNumber"]),
            "identifier",
        ),
        (lambda ds, phi: setattr(ds, "AcquisitionDateTime", "19870203101010"), "date"),
        (lambda ds, phi: setattr(ds, "StudyInstanceUID", phi.uids["StudyInstanceUID"]), "uid"),
        (
            lambda ds, phi: ds.private_block(0x0011, "LEAK", create=True).add_new(
                0x01, "LO", phi.markers["private1"]
            ),
            "private",
        ),
        (
            lambda ds, phi: setattr(
                ds.file_meta, "SourceApplicationEntityTitle", phi.markers["meta.source_ae"]
            ),
            "meta",
        ),
    ],
)
def test_planted_leak_is_found(
    clean_pair: tuple[Path, Path, PhiFile], plant: Callable, category: str
) -> None:
    src, dst, phi = clean_pair
    if category == "date":
        # plant a date the original really had
        phi.markers["x"] = phi.markers["PatientBirthDate"]
        date = phi.markers["PatientBirthDate"]
        plant = lambda ds, _: setattr(ds, "AcquisitionDateTime", f"{date}101010")  # noqa: E731
    out = _first_output(dst)
    ds = pydicom.dcmread(out)
    plant(ds, phi)
    ds.save_as(out)
    report = check_for_leaks(src, dst)
    assert report.leaks, category
    assert category in {leak.category for leak in report.leaks}
    json_text = str(report.to_json())
    assert phi.markers["PatientName"] not in json_text  # the report itself carries no PHI


def test_leak_in_a_path_is_found(clean_pair: tuple[Path, Path, PhiFile]) -> None:
    src, dst, phi = clean_pair
    out = _first_output(dst)
    shutil.move(out, out.with_name(f"{phi.markers['PatientID']}.dcm"))
    report = check_for_leaks(src, dst)
    assert any(leak.where == "path" for leak in report.leaks)


def test_leak_in_a_text_file_is_found(clean_pair: tuple[Path, Path, PhiFile]) -> None:
    src, dst, phi = clean_pair
    (dst / "notes.csv").write_text(f"a,{phi.markers['InstitutionName']}\n")
    report = check_for_leaks(src, dst)
    assert [leak.where for leak in report.leaks] == ["line 1"]


def test_short_numbers_do_not_match_inside_longer_ones(
    clean_pair: tuple[Path, Path, PhiFile],
) -> None:
    src, dst, _ = clean_pair
    out = _first_output(dst)
    ds = pydicom.dcmread(out)
    ds.ImageComments = "PRIMARY scan"  # contains no whole-word original value
    ds.save_as(out)
    assert check_for_leaks(src, dst).leaks == []


def test_a_profile_that_keeps_identities_is_caught(
    tmp_path: Path, make_phi_file: Callable[..., PhiFile], deid_key: DeidKey
) -> None:
    src = tmp_path / "in"
    make_phi_file(src / "a.dcm", patient=4)
    dst = tmp_path / "out"
    leaky = DeidConfig(overrides={"InstitutionName": "K", "ReferringPhysicianName": "K"})
    deidentify_tree(src, dst, config=leaky, key=deid_key)
    report = check_for_leaks(src, dst)
    assert {leak.where for leak in report.leaks} >= {"(0008,0080)", "(0008,0090)"}


def test_the_tools_own_folder_names_are_no_leak(repo_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "nifti").mkdir(parents=True)  # the input folder has the tool's output folder name
    shutil.copy(
        repo_root / "data/ct_totalsegmentator/example_mr_sm.nii.gz", src / "nifti" / "scan.nii.gz"
    )
    dst = tmp_path / "out"
    deidentify_tree(src, dst, config=DeidConfig(), key=DeidKey(b"k" * 32))
    assert (dst / "nifti").is_dir()
    assert check_for_leaks(src, dst).leaks == []
    (dst / "nifti" / "scan-copy.txt").write_text("x")  # a real leak under it is still found
    assert [leak.category for leak in check_for_leaks(src, dst).leaks] == ["path"]
