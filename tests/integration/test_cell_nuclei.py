"""The shipped nuclei model: `medseg infer --model nuclei` writes instance maps that reproduce
the metrics recorded in its card, and `pipelines/cell_nuclei.yaml` runs end to end."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml

from medseg.cli import main
from medseg.core import ExitCode
from medseg.evaluation import compute_instance_metrics
from medseg.io import load_manifest, read_image, read_nifti
from medseg.models import load_checkpoint, resolve_model_path, shipped_model_card

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def card() -> dict:
    return shipped_model_card("nuclei")


@pytest.fixture(scope="module")
def subset_cases(card: dict, repo_root: Path) -> list:
    manifest = load_manifest(repo_root / "data_manifests/cells_dsb2018.yaml")
    by_id = {case.id: case for case in manifest.cases}
    cases = [by_id[case_id] for case_id in card["evaluation_subset"]["cases"]]
    assert all(case.split.value == "test" for case in cases)
    return cases


def test_shipped_checkpoint_is_a_small_instance_model(repo_root: Path) -> None:
    path = resolve_model_path("nuclei")
    assert path.stat().st_size < 5_000_000
    checkpoint = load_checkpoint(path)
    assert checkpoint.is_instance_model
    assert checkpoint.label_names == {
        1: "nucleus_interior",
        2: "nucleus_boundary",
        3: "nucleus_core",
    }
    assert checkpoint.instance_postprocess  # chosen on held-out training images
    assert checkpoint.inference_defaults == {"mirror": True}  # tuned with TTA: on by default
    # trained and tuned on the full training manifest; no test image is in it
    assert checkpoint.training_config["manifest"] == "data_manifests/cells_dsb2018_full.yaml"
    assert checkpoint.training_config["validation_splits"] == ["validation"]
    training = load_manifest(repo_root / checkpoint.training_config["manifest"])
    test = load_manifest(repo_root / "data_manifests/cells_dsb2018.yaml")
    test_images = {Path(c.image).name for c in test.cases if c.split.value == "test"}
    assert not test_images & {Path(c.image).name for c in training.cases}
    assert sum(c.split.value == "validation" for c in training.cases) == 40


def test_infer_reproduces_the_recorded_subset_metrics(
    card: dict, subset_cases: list, repo_root: Path, tmp_path: Path
) -> None:
    images = [str(repo_root / case.image) for case in subset_cases]
    # no options: the model's defaults (mirror TTA) give the card's figures
    command = ["infer", "--model", "nuclei", *images, "--out", str(tmp_path)]
    assert main(command) == ExitCode.OK
    f1, pq = [], []
    for case in subset_cases:
        image = read_image(repo_root / case.image)
        # PNG in, PNG out (issue 24): the mask in the image's own (H, W), read onto its grid
        predicted = read_image(tmp_path / f"{Path(case.image).stem}_labels.png")
        assert predicted.spatial_shape == image.spatial_shape
        np.testing.assert_allclose(predicted.affine, image.affine, atol=1e-6)
        instances = np.asarray(predicted.array)[:, :, 0]
        assert np.issubdtype(instances.dtype, np.integer)
        assert len(np.unique(instances)) > 3  # instance ids, not a class map
        reference = np.asarray(read_image(repo_root / case.label).array)[:, :, 0]
        metrics = compute_instance_metrics(instances, reference)
        f1.append(metrics.at(0.5).f1)
        pq.append(metrics.at(0.5).pq)
    recorded = card["evaluation_subset"]
    assert statistics.fmean(f1) == pytest.approx(recorded["f1_50"], abs=0.01)
    assert statistics.fmean(pq) == pytest.approx(recorded["pq_50"], abs=0.01)


@pytest.mark.slow  # 38 s (MLflow store creation, Dask-free run of two images with TTA)
def test_pipeline_runs_end_to_end_on_two_test_images(
    card: dict, subset_cases: list, repo_root: Path, tmp_path: Path
) -> None:
    data = yaml.safe_load((repo_root / "pipelines/cell_nuclei.yaml").read_text())
    data["cases"] = {"split": "test", "ids": [case.id for case in subset_cases[:2]]}
    pipeline = tmp_path / "cell_nuclei_two.yaml"
    pipeline.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    code = main(["run", str(pipeline), "--out", str(out), "--workers", "0"])
    assert code == ExitCode.OK
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["cases"]) == {case.id for case in subset_cases[:2]}
    for case in subset_cases[:2]:
        folder = out / "cases" / case.id
        mask = read_nifti(folder / "mask.nii.gz")
        assert len(np.unique(np.asarray(mask.array))) > 3
        assert (folder / "overlay.png").is_file()
        metrics = json.loads((folder / "metrics.json").read_text())["metrics"]["instances"]
        assert 0.0 < metrics["f1_50"] <= 1.0
        assert metrics["n_pred"] > 0
    recorded = card["evaluation_subset"]["per_case"]
    for case_id, entry in summary["cases"].items():
        assert entry["metrics"]["f1_50"] == pytest.approx(recorded[case_id]["f1_50"], abs=0.01)
