"""Issue 24 item 6: a file ``medseg deid`` cannot handle is named by the user's own path (on
the console, in the error and in the local audit, never in the output tree); an empty input
folder is an error."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from medseg.cli import main
from medseg.core import DeidError, ExitCode, InputError
from medseg.deid import AUDIT_NAME, DeidConfig, DeidKey, deidentify_tree


@pytest.fixture
def source(repo_root: Path, tmp_path: Path) -> Path:
    ct_slice = sorted((repo_root / "data/ct_totalsegmentator/example_ct_dicom").iterdir())[0]
    folder = tmp_path / "in" / "visit_2"
    folder.mkdir(parents=True)
    data = ct_slice.read_bytes()
    (folder / "broken_scan.dcm").write_bytes(data[: len(data) // 2])
    (folder / "whole.dcm").write_bytes(data)
    return tmp_path / "in"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    key = tmp_path / "key"
    key.write_text("unit-test-key-0123456789abcdef\n")
    return key


def test_failed_input_is_named_on_the_console_and_in_the_error(
    source: Path, key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["deid", str(source), str(out), "--key-file", str(key_file)])
    captured = capsys.readouterr()
    assert code == ExitCode.DEID
    broken = str(source / "visit_2" / "broken_scan.dcm")
    assert f"failed: {broken} (unreadable: truncated_pixel_data)" in captured.out
    assert broken in captured.err  # the error line itself names it
    # the shareable output tree never holds the input's name
    assert "broken_scan" not in (out / AUDIT_NAME).read_text()


def test_local_audit_names_the_failed_input(source: Path, key_file: Path, tmp_path: Path) -> None:
    local = tmp_path / "private" / "failures.jsonl"
    out = tmp_path / "out"
    code = main(
        ["deid", str(source), str(out), "--key-file", str(key_file), "--local-audit", str(local)]
    )
    assert code == ExitCode.DEID
    (row,) = [json.loads(line) for line in local.read_text().splitlines()]
    assert row["input"] == str(source / "visit_2" / "broken_scan.dcm")
    assert row["status"] == "unreadable"
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    # the keyed hash joins it to the output tree's audit
    hashes = {json.loads(line).get("input_hash") for line in (out / AUDIT_NAME).open()}
    assert row["input_hash"] in hashes


def test_local_audit_inside_the_output_is_refused(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DeidError, match="local audit must not be inside"):
        deidentify_tree(
            source,
            out,
            config=DeidConfig(),
            key=DeidKey(b"k" * 32),
            local_audit=out / "failures.jsonl",
        )


def test_empty_input_folder_is_an_error(
    key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no files"):
        deidentify_tree(empty, tmp_path / "o", config=DeidConfig(), key=DeidKey(b"k" * 32))
    code = main(["deid", str(empty), str(tmp_path / "out"), "--key-file", str(key_file)])
    assert code == ExitCode.INPUT
    assert str(empty) in capsys.readouterr().err


def test_folder_without_dicom_or_nifti_is_an_error(
    key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images here\n")
    code = main(["deid", str(folder), str(tmp_path / "out"), "--key-file", str(key_file)])
    assert code == ExitCode.INPUT
    assert "is DICOM or NIfTI" in capsys.readouterr().err
