"""Batch runs: Dask workers, failures that do not stop others, and a SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from medseg.core import OutputExistsError, load_config
from medseg.runner import CaseStateStore, CaseStatus, PipelineConfig, run_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_CASES = 80  # every DSB2018 image (60 train + 20 test): real, small, fast to segment


@pytest.fixture(scope="module")
def nuclei_pipeline(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped watershed pipeline, over all DSB2018 cases, overlays off (faster)."""
    data = yaml.safe_load((repo_root / "pipelines/cell_nuclei_watershed.yaml").read_text())
    data["cases"] = {}
    data["export"] = {"mask_nifti": True, "overlay_png": False}
    path = tmp_path_factory.mktemp("pipeline") / "nuclei_all.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def uninterrupted(
    nuclei_pipeline: Path, repo_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    config = load_config(nuclei_pipeline, PipelineConfig)
    summary = run_pipeline(config, root=repo_root, out_dir=out, workers=0)
    assert summary.done == N_CASES
    assert summary.failed == 0
    return out


def _case_metrics(out: Path) -> dict[str, dict]:
    cases = json.loads((out / "summary.json").read_text())["cases"]
    return {case_id: entry["metrics"] for case_id, entry in cases.items()}


def _done_count(state: Path) -> int:
    if not state.exists():
        return 0
    try:
        with sqlite3.connect(state, timeout=1) as connection:
            return connection.execute(
                "SELECT COUNT(*) FROM cases WHERE status = 'done'"
            ).fetchone()[0]
    except sqlite3.Error:
        return 0


def test_sigkill_midway_then_resume_loses_and_duplicates_nothing(
    nuclei_pipeline: Path, uninterrupted: Path, repo_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "medseg",
        "run",
        str(nuclei_pipeline),
        "--out",
        str(out),
        "--root",
        str(repo_root),
        "--workers",
        "2",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while _done_count(out / "state.sqlite") < 3:
        assert process.poll() is None, "run ended before it could be killed"
        assert time.monotonic() < deadline, "no case finished in time"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the whole process group: coordinator + workers
    process.wait(timeout=30)
    done_at_kill = _done_count(out / "state.sqlite")
    assert 3 <= done_at_kill < N_CASES

    resumed = subprocess.run(
        [*command, "--resume"], capture_output=True, text=True, check=False, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"cases: {N_CASES} done, 0 failed, 0 pending" in resumed.stdout

    store = CaseStateStore(out / "state.sqlite")
    records = store.records()
    store.close()
    assert len(records) == N_CASES
    assert all(record.status is CaseStatus.DONE for record in records)
    case_dirs = sorted(p.name for p in (out / "cases").iterdir())
    assert case_dirs == sorted(record.case_id for record in records)  # once each, no temp
    assert not list(out.rglob(".tmp-*"))
    assert _case_metrics(out) == _case_metrics(uninterrupted)


def test_failing_case_does_not_stop_others_and_is_retried(
    nuclei_pipeline: Path, repo_root: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    (root / "data_manifests").mkdir(parents=True)
    shutil.copytree(repo_root / "data/cells_dsb2018", root / "data/cells_dsb2018")
    shutil.copy(repo_root / "data_manifests/cells_dsb2018.yaml", root / "data_manifests")
    config = load_config(nuclei_pipeline, PipelineConfig).model_copy(
        update={
            "cases": load_config(nuclei_pipeline, PipelineConfig).cases.model_copy(
                update={"limit": 6}
            )
        }
    )
    from medseg.io import load_manifest

    third_case = load_manifest(root / "data_manifests/cells_dsb2018.yaml").cases[2]
    victim = root / third_case.image
    original = victim.read_bytes()
    victim.write_bytes(original[:40])  # truncated PNG
    out = tmp_path / "out"
    summary = run_pipeline(config, root=root, out_dir=out, workers=2)
    assert (summary.done, summary.failed) == (5, 1)
    failed_case, error_type, message = summary.failures[0]
    assert error_type == "InputError"
    assert "cannot read 2D image" in message
    assert not (out / "cases" / failed_case).exists()

    with pytest.raises(OutputExistsError, match="--resume"):
        run_pipeline(config, root=root, out_dir=out, workers=0)
    victim.write_bytes(original)  # the user fixes the file, then resumes
    resumed = run_pipeline(config, root=root, out_dir=out, workers=0, resume=True)
    assert (resumed.done, resumed.failed) == (6, 0)
    assert (out / "cases" / failed_case / "mask.nii.gz").is_file()
