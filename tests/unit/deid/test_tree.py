"""deidentify_tree: output naming, never in place, link table, resume, workers, NIfTI."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from medseg.core import DeidError
from medseg.deid import (
    AUDIT_NAME,
    FAILURE_STATUSES,
    DeidConfig,
    DeidKey,
    DeidOption,
    deidentify_tree,
)
from tests.unit.deid.conftest import KEY_BYTES, PhiFile


@pytest.fixture
def src(tmp_path: Path, make_phi_file: Callable[..., PhiFile]) -> Path:
    root = tmp_path / "in"
    for i in range(3):
        make_phi_file(root / "a" / f"{i}.dcm", patient=0, instance=i)
    make_phi_file(root / "b" / "x.dcm", patient=1)
    (root / "notes.txt").write_text("ZORBAQUEX0 private notes\n")
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != AUDIT_NAME
    }


def test_never_in_place(src: Path, deid_key: DeidKey) -> None:
    for dst in (src, src / "out"):
        with pytest.raises(DeidError, match="outside the input"):
            deidentify_tree(src, dst, config=DeidConfig(), key=deid_key)
    with pytest.raises(DeidError, match="outside the input"):
        deidentify_tree(src, src.parent, config=DeidConfig(), key=deid_key)


def test_inputs_are_not_modified(src: Path, tmp_path: Path, deid_key: DeidKey) -> None:
    before = _tree(src)
    deidentify_tree(src, tmp_path / "out", config=DeidConfig(), key=deid_key)
    assert _tree(src) == before


def test_unknown_files_are_not_copied(src: Path, tmp_path: Path, deid_key: DeidKey) -> None:
    dst = tmp_path / "out"
    summary = deidentify_tree(src, dst, config=DeidConfig(), key=deid_key)
    assert summary.statuses == {"written": 4, "not_supported": 1}
    assert not list(dst.rglob("*.txt"))


def test_hostile_values_stay_inside(
    tmp_path: Path, make_phi_file: Callable[..., PhiFile], deid_key: DeidKey
) -> None:
    root = tmp_path / "in"
    phi = make_phi_file(root / "h.dcm")
    ds = pydicom.dcmread(phi.path)
    ds.PatientID = "../../../../tmp/escape"
    ds.PatientName = "/etc/passwd"
    ds.SeriesInstanceUID = "../../x"
    ds.save_as(phi.path)
    for options in ((), (DeidOption.RETAIN_UIDS,)):
        dst = tmp_path / f"out{len(options)}"
        summary = deidentify_tree(root, dst, config=DeidConfig(options=options), key=deid_key)
    outputs = [p for p in tmp_path.rglob("*") if p.is_file() and root not in p.parents]
    assert len(outputs) == 3  # one DICOM (basic profile) and two audits
    assert all(
        p.is_relative_to(tmp_path / "out0") or p.is_relative_to(tmp_path / "out1") for p in outputs
    )
    # Retain UIDs keeps the hostile series UID: that file is refused, not written outside
    assert summary.statuses["failed"] == 1
    assert not (tmp_path / "escape").exists()


def test_link_table(src: Path, tmp_path: Path, deid_key: DeidKey) -> None:
    dst = tmp_path / "out"
    with pytest.raises(DeidError, match="link table"):
        deidentify_tree(
            src, dst, config=DeidConfig(), key=deid_key, link_table=dst / "sub" / "link.csv"
        )
    link = tmp_path / "private" / "link.csv"
    deidentify_tree(src, dst, config=DeidConfig(), key=deid_key, link_table=link)
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
    rows = link.read_text().splitlines()
    assert rows[0] == "kind,original,replacement"
    ids = [r for r in rows if r.startswith("patient_id,")]
    assert len(ids) == 2
    pseudonyms = {p.name for p in dst.iterdir() if p.is_dir()}
    assert {r.split(",")[2] for r in ids} == pseudonyms


def test_key_is_never_written(src: Path, tmp_path: Path, deid_key: DeidKey) -> None:
    dst = tmp_path / "out"
    link = tmp_path / "link.csv"
    deidentify_tree(src, dst, config=DeidConfig(), key=deid_key, link_table=link)
    for path in [*dst.rglob("*"), link]:
        if path.is_file():
            assert KEY_BYTES not in path.read_bytes()


def test_resume_skips_done_files(
    src: Path, tmp_path: Path, deid_key: DeidKey, make_phi_file: Callable[..., PhiFile]
) -> None:
    dst = tmp_path / "out"
    deidentify_tree(src, dst, config=DeidConfig(), key=deid_key)
    first = _tree(dst)
    make_phi_file(src / "c" / "new.dcm", patient=2)
    summary = deidentify_tree(src, dst, config=DeidConfig(), key=deid_key)
    assert summary.statuses == {"already_done": 4, "written": 1, "not_supported": 1}
    after = _tree(dst)
    assert {k: v for k, v in after.items() if k in first} == first
    lines = (dst / AUDIT_NAME).read_text().splitlines()
    assert sum(json.loads(line)["status"] == "written" for line in lines) == 5


def test_same_outputs_across_runs_and_workers(src: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    two = tmp_path / "two"
    deidentify_tree(src, one, config=DeidConfig(), key=DeidKey(KEY_BYTES))
    summary = deidentify_tree(src, two, config=DeidConfig(), key=DeidKey(KEY_BYTES), workers=2)
    assert summary.statuses["written"] == 4
    assert _tree(one) == _tree(two)


def test_nifti_header_text_and_extensions_are_scrubbed(tmp_path: Path, deid_key: DeidKey) -> None:
    root = tmp_path / "in"
    root.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 100, (4, 5, 6)).astype(np.int16)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    image = nib.Nifti1Image(data, affine)
    image.header["descrip"] = b"ZORBAQUEX0 1987-02-03"
    image.header["aux_file"] = b"PID123456"
    image.header["intent_name"] = b"WILHELMINA"
    image.header["db_name"] = b"HOSPITALDB"
    image.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"ZORBAQUEX0 comment"))
    nib.save(image, root / "ZORBAQUEX0_ct.nii.gz")
    dst = tmp_path / "out"
    summary = deidentify_tree(root, dst, config=DeidConfig(), key=deid_key)
    assert summary.statuses == {"written": 1}
    (out,) = dst.glob("nifti/*.nii.gz")
    assert "ZORBAQUEX" not in out.name
    result = nib.load(out)
    for field in ("descrip", "aux_file", "intent_name", "db_name"):
        assert result.header[field].tobytes().strip(b"\x00") == b""
    assert len(result.header.extensions) == 0
    np.testing.assert_array_equal(np.asarray(result.dataobj), data)
    np.testing.assert_allclose(result.affine, affine)


def test_a_changed_profile_is_not_skipped(src: Path, tmp_path: Path, deid_key: DeidKey) -> None:
    dst = tmp_path / "out"
    deidentify_tree(src, dst, config=DeidConfig(), key=deid_key)
    again = deidentify_tree(
        src, dst, config=DeidConfig(options=(DeidOption.RETAIN_UIDS,)), key=deid_key
    )
    assert "already_done" not in again.statuses
    assert again.statuses["written"] == 4  # new UIDs, so new paths


def test_dicomdir_is_not_carried_over(repo_root: Path, tmp_path: Path, deid_key: DeidKey) -> None:
    from pydicom.fileset import FileSet

    media = tmp_path / "media"
    fileset = FileSet()
    series = repo_root / "data/dicom_corpus/series_and_seg/pydicom_bundled/CT2_series"
    for path in sorted(series.iterdir()):
        fileset.add(path)
    fileset.write(media)
    dst = tmp_path / "out"
    summary = deidentify_tree(media, dst, config=DeidConfig(), key=deid_key)
    assert summary.statuses == {"written": 4, "not_supported": 1}
    lines = [json.loads(line) for line in (dst / AUDIT_NAME).read_text().splitlines()]
    assert [line["reason"] for line in lines if line["status"] == "not_supported"] == ["dicomdir"]


@pytest.mark.parametrize("workers", [1, 2])
def test_two_inputs_with_the_same_sop_uid_are_never_both_written(
    tmp_path: Path, make_phi_file: Callable[..., PhiFile], deid_key: DeidKey, workers: int
) -> None:
    root = tmp_path / "in"
    first = make_phi_file(root / "one.dcm", instance=0).path
    second = make_phi_file(root / "two.dcm", instance=0).path
    ds = pydicom.dcmread(second)
    ds.InstanceNumber = 99  # kept by the profile: the outputs differ
    ds.save_as(second)
    assert pydicom.dcmread(first).SOPInstanceUID == ds.SOPInstanceUID
    dst = tmp_path / "out"
    summary = deidentify_tree(root, dst, config=DeidConfig(), key=deid_key, workers=workers)
    assert dict(summary.statuses) == {"written": 1, "duplicate_output": 1}
    assert "duplicate_output" in FAILURE_STATUSES  # the CLI exits non-zero
    assert len(list(dst.rglob("*.dcm"))) == 1
    assert list(dst.rglob(".tmp-*")) == []


def test_link_table_ignores_planted_links(src: Path, tmp_path: Path, deid_key: DeidKey) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("not a link table\n")
    link = tmp_path / "private" / "link.csv"
    link.parent.mkdir()
    (link.parent / f".tmp-{link.name}").symlink_to(victim)  # the old predictable name
    deidentify_tree(src, tmp_path / "out", config=DeidConfig(), key=deid_key, link_table=link)
    assert victim.read_text() == "not a link table\n"
    assert link.read_text().startswith("kind,original,replacement")
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
    other = tmp_path / "private" / "elsewhere.csv"
    other.symlink_to(victim)
    with pytest.raises(DeidError, match="regular file"):
        deidentify_tree(src, tmp_path / "out2", config=DeidConfig(), key=deid_key, link_table=other)
    assert victim.read_text() == "not a link table\n"
