"""`medseg demo` end to end on the bundled real CT series."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medseg.core import ExitCode
from medseg.io import read_dicom_series, read_nifti, to_dcm2niix_layout

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CASE = "ct_dicom_01"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "medseg", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=900,
    )
    return out, result


def test_demo_succeeds_and_prints_dice(demo_run: tuple) -> None:
    out, result = demo_run
    assert result.returncode == 0, result.stderr
    assert "cases: 1 done, 0 failed, 0 pending" in result.stdout
    assert "mean dice_liver: 0.9" in result.stdout
    metrics = json.loads((out / "cases" / CASE / "metrics.json").read_text())["metrics"]
    assert metrics["liver"]["dice"] > 0.95
    assert metrics["liver"]["empty"] == "none"
    assert 0 < metrics["liver"]["hd95_mm"] < 20
    assert metrics["liver"]["nsd"] > 0.8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"][CASE]["status"] == "done"


def test_demo_mask_overlays_the_image_and_reference(
    demo_run: tuple, ct_dicom_dir: Path, repo_root: Path
) -> None:
    out, _ = demo_run
    image = read_nifti(out / "cases" / CASE / "image.nii.gz")
    mask = read_nifti(out / "cases" / CASE / "mask.nii.gz")
    series = to_dcm2niix_layout(read_dicom_series(ct_dicom_dir))  # the order medseg writes
    np.testing.assert_array_equal(image.array, series.array)
    np.testing.assert_allclose(image.affine, series.affine, atol=1e-6)
    np.testing.assert_allclose(mask.affine, image.affine, atol=1e-6)
    assert mask.array.dtype == np.uint8
    assert mask.spatial_shape == image.spatial_shape
    reference = read_nifti(repo_root / "data/ct_totalsegmentator/example_seg_dicom.nii.gz")
    np.testing.assert_allclose(reference.affine, mask.affine, atol=1e-3)  # same array order
    liver = 5
    overlap = np.logical_and(mask.array == liver, reference.array == liver).sum()
    assert overlap / (reference.array == liver).sum() > 0.9


def test_demo_logged_to_mlflow(demo_run: tuple) -> None:
    out, _ = demo_run
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("medseg-demo")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.metrics["mean_dice_liver"] > 0.95
    assert run.data.params["segment_method"] == "sam_reference_box"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "pipeline.yaml"} <= artifacts


def test_demo_png_is_an_image(demo_run: tuple) -> None:
    out, _ = demo_run
    assert (out / "cases" / CASE / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_refuses_to_overwrite(demo_run: tuple) -> None:
    out, _ = demo_run
    result = subprocess.run(
        [sys.executable, "-m", "medseg", "demo", "--out", str(out), "--workers", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == ExitCode.OUTPUT_EXISTS
    assert "--resume" in result.stderr
    assert "Traceback" not in result.stderr
