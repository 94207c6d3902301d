"""The shipped retinal-vessel U-Net reproduces its recorded DRIVE figures, and
``pipelines/retina_vessels.yaml`` runs end to end through ``medseg run``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from medseg.cli import main
from medseg.core import ExitCode, load_config, read_yaml
from medseg.io import collapse_grey_channels, load_manifest, read_image
from medseg.models import shipped_model_card
from medseg.runner import (
    PipelineConfig,
    TrainedModelConfig,
    compute_case_vessel_metrics,
    segment_with_trained_model,
)
from medseg.runner._trained import read_field_of_view

pytestmark = pytest.mark.integration

MODEL = "retina-vessels"


@pytest.fixture(scope="module")
def card() -> dict:
    return shipped_model_card(MODEL)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread, as in the pipeline's Dask workers (2 threads stall on a busy
    2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.usefixtures("one_thread")
def test_shipped_model_reproduces_its_recorded_metrics(card: dict, repo_root: Path) -> None:
    subset = card["evaluation_subset"]
    settings = card["evaluation"]["settings"]
    manifest = load_manifest(repo_root / card["training"]["data_manifest"])
    cases = {case.id: case for case in manifest.cases}
    config = TrainedModelConfig(model=MODEL, device="cpu", **settings)
    assert len(subset["cases"]) >= 2
    for case_id, recorded in subset["cases"].items():
        case = cases[case_id]
        image = read_image(repo_root / case.image)
        label_path = repo_root / case.label
        reference = read_image(label_path)
        reference = reference.with_array(
            collapse_grey_channels(reference.array, what="label", path=label_path)
        )
        prediction, probabilities = segment_with_trained_model(
            image, config=config, labels=manifest.labels, root=repo_root
        )
        metrics = compute_case_vessel_metrics(
            prediction,
            reference,
            image=image,
            fov=read_field_of_view(case, root=repo_root, image=image),
            probabilities=probabilities,
        )
        for name in ("f1", "auc_roc"):
            assert metrics[name] == pytest.approx(recorded[name], abs=subset["tolerance"]), (
                case_id,
                name,
            )
        # the recorded subset figures are the card's per-image test figures
        assert recorded == pytest.approx(
            {k: card["evaluation"]["per_image"][case_id][k] for k in recorded}
        )


@pytest.mark.usefixtures("one_thread")
def test_pipeline_runs_end_to_end_on_a_drive_test_case(
    card: dict, repo_root: Path, tmp_path: Path
) -> None:
    data = read_yaml(repo_root / "pipelines/retina_vessels.yaml")
    load_config(repo_root / "pipelines/retina_vessels.yaml", PipelineConfig)
    data["cases"] = {"split": "test", "ids": ["drive_01"]}
    data["segment"]["trained_model"]["device"] = "cpu"
    pipeline = tmp_path / "retina.yaml"
    pipeline.write_text(json.dumps(data))
    out = tmp_path / "run"
    code = main(
        ["run", str(pipeline), "--out", str(out), "--workers", "0", "--root", str(repo_root)]
    )
    assert code == ExitCode.OK
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == 1
    metrics = summary["cases"]["drive_01"]["metrics"]
    quality = {"f1", "auc_roc", "sensitivity", "specificity", "accuracy", "cldice"}
    assert quality <= set(metrics)
    # beside the quality metrics only the model's confidence and its QC flags (issue 21)
    assert all(n.startswith(("mean_confidence_", "qc_flags_")) for n in set(metrics) - quality)
    recorded = card["evaluation"]["per_image"]["drive_01"]
    for name in quality:
        assert metrics[name] == pytest.approx(recorded[name], abs=0.01), name
    case_dir = out / "cases" / "drive_01"
    assert {"mask.nii.gz", "overlay.png", "metrics.json"} <= {p.name for p in case_dir.iterdir()}
    mask = read_image(case_dir / "mask.nii.gz")
    image = read_image(repo_root / "data/retina_drive/test/images/01_test.tif")
    assert mask.spatial_shape == image.spatial_shape
