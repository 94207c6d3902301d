"""One validation of case ids and output paths (issue 17, items 1, 3 and 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medseg.core import (
    ConfigError,
    OutputExistsError,
    OutputPathError,
    atomic_output,
    check_case_id,
    check_output_path,
    child_path,
)


@pytest.mark.parametrize("case_id", ["case_01", "dsb_54fe2d", "a.b-c", "_x", "0"])
def test_plain_case_ids_pass(case_id: str) -> None:
    assert check_case_id(case_id) == case_id


@pytest.mark.parametrize(
    "case_id", ["..", ".", ".hidden", "", "a/b", "a\\b", "../x", "x" * 129, "a b", "é"]
)
def test_case_ids_that_leave_their_folder_are_refused(case_id: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="case id"):
        check_case_id(case_id)
    with pytest.raises(ConfigError):
        child_path(tmp_path, case_id)


def test_output_may_not_be_an_input_or_inside_an_input_folder(tmp_path: Path) -> None:
    image = tmp_path / "image.nii.gz"
    image.write_bytes(b"x")
    with pytest.raises(OutputPathError, match="input"):
        check_output_path(image, overwrite=True, inputs=[image])
    with pytest.raises(OutputPathError, match="input"):  # the same file by another spelling
        check_output_path(tmp_path / "sub" / ".." / "image.nii.gz", overwrite=True, inputs=[image])
    with pytest.raises(OutputPathError, match="input"):
        check_output_path(tmp_path / "mask.nii.gz", inputs=[tmp_path])
    with pytest.raises(OutputPathError, match="input"):
        check_output_path(tmp_path / "out", folder=True, inputs=[tmp_path])
    assert check_output_path(tmp_path / "mask.nii.gz", inputs=[image]).name == "mask.nii.gz"


def test_output_checks_before_any_work(tmp_path: Path) -> None:
    existing = tmp_path / "mask.nii.gz"
    existing.write_bytes(b"x")
    with pytest.raises(OutputExistsError):
        check_output_path(existing)
    assert check_output_path(existing, overwrite=True) == existing
    with pytest.raises(OutputPathError, match="is a file"):
        check_output_path(existing / "below.nii.gz")
    with pytest.raises(OutputPathError, match="folder is there"):
        check_output_path(tmp_path, overwrite=True)
    with pytest.raises(OutputPathError, match="a file is there"):
        check_output_path(existing, folder=True)
    with pytest.raises(ConfigError, match=r"\.nii"):
        check_output_path(tmp_path / "mask.dcm", suffixes=(".nii", ".nii.gz"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_place_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(OutputPathError, match="permission"):
        check_output_path(locked / "new" / "mask.nii.gz")


def test_dotdot_path_is_normalised_and_creates_no_detour(tmp_path: Path) -> None:
    target = tmp_path / "a" / ".." / "b" / ".." / "c.txt"
    assert check_output_path(target) == tmp_path / "c.txt"
    with atomic_output(target) as tmp:
        tmp.write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_atomic_output_follows_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(previous)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "from medseg.core import atomic_output\n"
        "with atomic_output(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('half')\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "killed.nii.gz")], env=env, check=False
    )
    assert result.returncode == -9
    assert [p.name for p in tmp_path.glob(".tmp-*")]  # the killed writer left one
    with atomic_output(tmp_path / "next.txt") as tmp:
        tmp.write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["next.txt"]
