"""Logging an evaluation: aggregate metric names/values, PHI guard on case ids and params."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from medseg.core import TrackingError
from medseg.evaluation import (
    CaseLabelResult,
    EvaluationResult,
    EvaluationSettings,
    compute_segmentation_metrics,
)
from medseg.tracking import (
    aggregate_metrics,
    check_case_ids,
    default_tracking_uri,
    log_evaluation,
    start_tracking,
)


def _result() -> EvaluationResult:
    square = np.zeros((8, 8), bool)
    square[2:6, 2:6] = True
    shifted = np.roll(square, 1, axis=0)
    empty = np.zeros_like(square)
    rows = [
        CaseLabelResult(
            "case_1", 1, "liver", compute_segmentation_metrics(square, square, spacing_mm=(1, 1))
        ),
        CaseLabelResult(
            "case_2", 1, "liver", compute_segmentation_metrics(shifted, square, spacing_mm=(1, 1))
        ),
        CaseLabelResult(
            "case_1", 2, "spleen/2", compute_segmentation_metrics(empty, square, spacing_mm=(1, 1))
        ),
        CaseLabelResult(
            "case_2", 2, "spleen/2", compute_segmentation_metrics(empty, empty, spacing_mm=(1, 1))
        ),
    ]
    return EvaluationResult(
        results=rows, labels={1: "liver", 2: "spleen/2"}, settings=EvaluationSettings()
    )


def test_aggregate_metrics_by_hand() -> None:
    metrics = aggregate_metrics(_result())
    # liver: Dice 1 and 2·12/32 = 0.75 → mean 0.875
    assert metrics["dice/liver/mean"] == pytest.approx(0.875)
    assert metrics["dice/liver/median"] == pytest.approx(0.875)
    # spleen: one prediction_empty (Dice 0, HD95 inf) and one both_empty (NaN)
    assert metrics["dice/spleen/2/mean"] == 0.0
    assert metrics["dice/spleen/2/n_undefined"] == 1.0
    assert metrics["hd95_mm/spleen/2/n_infinite"] == 1.0
    assert "hd95_mm/spleen/2/mean" not in metrics
    assert metrics["dice/mean_over_labels"] == pytest.approx((0.875 + 0.0) / 2)
    assert all(math.isfinite(v) for v in metrics.values())


def test_summary_statistics_by_hand() -> None:
    summary = _result().summarise()
    liver = summary["liver"]["dice"]
    assert liver["n"] == 2
    assert liver["std"] == pytest.approx(np.std([1.0, 0.75], ddof=1))
    assert liver["iqr"] == pytest.approx(0.125)  # q3 0.9375 − q1 0.8125
    spleen = summary["spleen/2"]["hd95_mm"]
    assert (spleen["n_finite"], spleen["n_undefined"], spleen["n_infinite"]) == (0, 1, 1)
    assert spleen["mean"] is None


@pytest.mark.parametrize("case_id", ["DOE^JANE", "scan_20190311", "mrn1234567"])
def test_phi_like_case_ids_are_refused_without_echo(case_id: str) -> None:
    with pytest.raises(TrackingError) as info:
        check_case_ids(["case_001", case_id])
    assert case_id not in str(info.value)
    assert "pseudonymous" in str(info.value)


def test_log_evaluation_refuses_phi_param_and_logs_otherwise(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    result = _result()
    artifact = tmp_path / "summary.json"
    artifact.write_text("{}")
    uri = default_tracking_uri(tmp_path)
    with (
        pytest.raises(TrackingError),
        start_tracking(
            tracking_uri=uri, experiment="t", artifact_location=tmp_path / "a"
        ) as tracker,
    ):
        log_evaluation(tracker, result, params={"model": "SMITH^JOHN"}, tags={}, artifacts=[])
    with start_tracking(tracking_uri=uri, experiment="t") as tracker:
        log_evaluation(
            tracker, result, params={"model": "unet"}, tags={"site": "a"}, artifacts=[artifact]
        )
        run_id = tracker.run_id
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.data.params["model"] == "unet"
    assert run.data.params["nsd_tolerance_mm"] == "2.0"
    assert run.data.tags["site"] == "a"
    assert run.data.metrics["dice/liver/mean"] == pytest.approx(0.875)
    runs = MlflowClient(tracking_uri=uri).search_runs([run.info.experiment_id])
    refused = [r for r in runs if r.info.run_id != run_id]
    assert all("model" not in r.data.params for r in refused)  # nothing PHI-like was stored


def test_start_tracking_leaves_the_environment_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with start_tracking(tracking_uri=default_tracking_uri(tmp_path), experiment="env"):
        pass
    assert "MLFLOW_TRACKING_URI" not in os.environ  # mlflow.set_tracking_uri sets it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    with start_tracking(tracking_uri=default_tracking_uri(tmp_path), experiment="env"):
        pass
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:1"
