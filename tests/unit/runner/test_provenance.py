"""A pipeline's MLflow run records what reproduces it: model + checksum, settings, device,
code version as params; per-case metrics, small masks, overlays and reports as artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medseg.core import compute_sha256, load_config
from medseg.models import SHIPPED_MODELS_DIR
from medseg.runner import PipelineConfig, run_pipeline
from medseg.runner._provenance import describe_run
from medseg.sam import LITEMEDSAM_SHA256
from medseg.tracking import check_no_phi, format_run_view


def test_demo_params_name_model_checksum_precision_window_device_and_code(
    repo_root: Path,
) -> None:
    config = load_config(repo_root / "pipelines" / "demo_ct_liver.yaml", PipelineConfig)
    params = describe_run(config, root=repo_root)
    assert params["segment.model"] == "litemedsam"
    assert params["model_checkpoint"] == "shipped"
    assert params["model_sha256"] == LITEMEDSAM_SHA256[:16]
    assert params["segment.precision"] == "bf16"
    assert params["segment.window"] == "abdomen"
    assert params["segment.device"] == "auto"
    assert params["device_resolved"] in {"cpu", "cuda"}
    assert params["sam_encoder_backend"] in {"openvino", "torch"}
    assert params["segment.structures"] == "liver"
    assert params["medseg_version"]
    assert len(params["code_commit"].split("-")[0]) == 40  # the checkout's full commit
    assert params["torch_version"]
    check_no_phi(params, what="param")  # loggable as is


def test_shipped_trained_model_is_pinned_by_its_checkpoint_digest(repo_root: Path) -> None:
    config = load_config(repo_root / "pipelines" / "retina_vessels.yaml", PipelineConfig)
    params = describe_run(config, root=repo_root)
    checkpoint = SHIPPED_MODELS_DIR / "retina-vessels" / "checkpoint.pt"
    assert params["model_checkpoint"] == "checkpoint.pt"
    assert params["model_sha256"] == compute_sha256(checkpoint)[:16]
    assert params["segment.mirror"] == "True"
    assert not any("/" in value for value in params.values())  # no paths


@pytest.mark.integration
def test_run_logs_params_case_artifacts_and_prints_its_page(
    repo_root: Path, tmp_path: Path
) -> None:
    mlflow = pytest.importorskip("mlflow")
    data = yaml.safe_load((repo_root / "pipelines" / "cell_nuclei_watershed.yaml").read_text())
    data["cases"] = {"split": "test", "limit": 2}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path, PipelineConfig)
    out = tmp_path / "run"
    summary = run_pipeline(config, root=repo_root, out_dir=out, workers=0)
    assert summary.done == 2
    client = mlflow.MlflowClient(summary.tracking_uri)
    run = client.get_run(summary.run_id)
    assert run.data.params["segment.min_size_px"] == "15"
    assert run.data.params["evaluate.kind"] == "instance"
    assert "code_commit" in run.data.params
    top = {a.path for a in client.list_artifacts(summary.run_id)}
    assert {"case_metrics.csv", "summary.json", "pipeline.yaml", "cases"} <= top
    cases = [a.path for a in client.list_artifacts(summary.run_id, "cases")]
    assert len(cases) == 2
    files = {a.path.rsplit("/", 1)[1] for a in client.list_artifacts(summary.run_id, cases[0])}
    assert files == {"metrics.json", "overlay.png", "mask.nii.gz"}
    rows = (out / "case_metrics.csv").read_text().splitlines()
    assert rows[0] == "case_id,metric,value"
    assert len(rows) > 2
    command, page = format_run_view(summary.tracking_uri, summary.experiment_id, summary.run_id)
    assert command.startswith("mlflow ui --backend-store-uri sqlite:///")
    assert page.endswith(f"/#/experiments/{summary.experiment_id}/runs/{summary.run_id}")


class _RecordingTracker:
    """Collects what a pipeline run would send to MLflow."""

    def __init__(self) -> None:
        self.artifacts: list[tuple[Path, str | None]] = []
        self.metrics: dict[str, float] = {}

    def log_artifact(self, path: Path, *, artifact_path: str | None = None) -> None:
        self.artifacts.append((Path(path), artifact_path))

    def log_metrics(self, metrics: dict[str, float], *, step: int | None = None) -> None:
        self.metrics.update(metrics)


def test_shipped_model_run_records_plans_card_and_cross_validation(
    repo_root: Path, tmp_path: Path
) -> None:
    from medseg.models import load_checkpoint
    from medseg.runner._provenance import log_model_record

    config = load_config(repo_root / "pipelines" / "tumour.yaml", PipelineConfig)
    tracker = _RecordingTracker()
    logged = log_model_record(tracker, config, root=repo_root, out_dir=tmp_path)  # type: ignore[arg-type]
    assert logged == ["model/plans.json", "model/MODEL.yaml"]
    card = yaml.safe_load((SHIPPED_MODELS_DIR / "brain-tumour" / "MODEL.yaml").read_text())
    folds = card["cross_validation"]["per_fold_whole_tumour_dice"]
    for case, dice in folds.items():
        assert tracker.metrics[f"model_cv.per_fold_whole_tumour_dice.{case}"] == dice
    mean = card["cross_validation"]["mean_dice_regions_largest_component"]["whole_tumour"]
    assert tracker.metrics["model_cv.mean_dice_regions_largest_component.whole_tumour"] == mean
    plans = yaml.safe_load((tmp_path / "model" / "plans.json").read_text())
    shipped = load_checkpoint(SHIPPED_MODELS_DIR / "brain-tumour" / "checkpoint.pt")
    assert plans["image_keys"] == list(shipped.plans.image_keys) == ["flair", "t1c"]
    assert {a for _, a in tracker.artifacts} == {"model"}


def test_sam_run_records_no_model_plans(repo_root: Path, tmp_path: Path) -> None:
    from medseg.runner._provenance import log_model_record

    config = load_config(repo_root / "pipelines" / "demo_ct_liver.yaml", PipelineConfig)
    tracker = _RecordingTracker()
    assert log_model_record(tracker, config, root=repo_root, out_dir=tmp_path) == []  # type: ignore[arg-type]
    assert not tracker.metrics
    assert not (tmp_path / "model").exists()
