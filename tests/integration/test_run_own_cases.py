"""Issue 24 item 5: ``medseg run --cases`` with the user's own data: a three-line manifest
(paths relative to it, no provenance), a plain folder, and errors that name the path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medseg.cli import main
from medseg.core import ExitCode

pytestmark = pytest.mark.integration

IMAGES = ("06350c7cc618be44", "13f2bec0a24c7034")


@pytest.fixture
def my_data(repo_root: Path, tmp_path: Path) -> Path:
    """Two DSB test images and labels copied to a folder of the user's (images/, labels/)."""
    folder = tmp_path / "my data"
    for stem in IMAGES:
        for sub, suffix in (("images", ".png"), ("labels", ".tif")):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(repo_root / f"data/cells_dsb2018/test/{sub}/{stem}{suffix}", folder / sub)
    return folder


def _run(repo_root: Path, cases: Path, out: Path) -> int:
    pipeline = repo_root / "pipelines/cell_nuclei_watershed.yaml"
    return main(["run", str(pipeline), "--cases", str(cases), "--out", str(out), "--workers", "0"])


def test_three_line_manifest_relative_to_itself(
    repo_root: Path, my_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = my_data / "my.yaml"
    manifest.write_text(
        "cases:\n"
        + "".join(
            f"  - {{id: {s}, image: images/{s}.png, label: labels/{s}.tif}}\n" for s in IMAGES
        )
    )
    monkeypatch.chdir(tmp_path)  # neither the working directory nor the checkout
    assert _run(repo_root, Path("my data/my.yaml"), tmp_path / "out") == ExitCode.OK
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sorted(summary["cases"]) == sorted(IMAGES)
    assert all(c["status"] == "done" for c in summary["cases"].values())


def test_plain_folder_as_cases(repo_root: Path, my_data: Path, tmp_path: Path) -> None:
    assert _run(repo_root, my_data, tmp_path / "out") == ExitCode.OK
    assert sorted(p.name for p in (tmp_path / "out" / "cases").iterdir()) == sorted(IMAGES)


def test_a_missing_input_is_named_with_its_path(
    repo_root: Path, my_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = my_data / "my.yaml"
    manifest.write_text("cases:\n  - {id: gone, image: images/gone.png}\n")
    assert _run(repo_root, manifest, tmp_path / "out") == ExitCode.FAILURE
    out = capsys.readouterr().out
    assert "input not found" in out
    assert str(my_data / "images" / "gone.png") in out
