"""`medseg run` never clears what it did not write (issue 17, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medseg.cli import main
from medseg.core import ExitCode


def _manifest_with_case_id(repo_root: Path, tmp_path: Path, case_id: str) -> Path:
    data = yaml.safe_load((repo_root / "data_manifests/cells_dsb2018.yaml").read_text())
    data["cases"] = data["cases"][:1]
    data["cases"][0]["id"] = case_id
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _pipeline(repo_root: Path, tmp_path: Path) -> Path:
    data = yaml.safe_load((repo_root / "pipelines/cell_nuclei_watershed.yaml").read_text())
    data["cases"] = {}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("case_id", ["..", "."])
def test_dot_case_ids_are_refused_and_the_run_folder_is_kept(
    case_id: str, repo_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "state.sqlite").write_bytes(b"earlier run")
    (out / "mlflow.db").write_bytes(b"earlier tracking")
    (out / "notes.txt").write_text("the user's file")
    argv = ["run", str(_pipeline(repo_root, tmp_path)), "--out", str(out), "--workers", "0"]
    argv += ["--cases", str(_manifest_with_case_id(repo_root, tmp_path, case_id))]
    argv += ["--root", str(repo_root), "--resume"]
    assert main(argv) == ExitCode.CONFIG
    assert sorted(p.name for p in out.iterdir()) == ["mlflow.db", "notes.txt", "state.sqlite"]


def test_run_refuses_a_non_empty_folder_that_holds_no_run(repo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    argv = ["run", str(_pipeline(repo_root, tmp_path)), "--out", str(out), "--workers", "0"]
    argv += ["--root", str(repo_root), "--overwrite"]
    assert main(argv) == ExitCode.OUTPUT_PATH
    assert [p.name for p in out.iterdir()] == ["holiday.jpg"]
