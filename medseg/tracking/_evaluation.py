"""Log an evaluation (``medseg evaluate``) to MLflow: params, aggregate metrics, artifacts."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from medseg import __version__
from medseg.core import TrackingError
from medseg.evaluation import EvaluationResult
from medseg.tracking._mlflow import Tracker, check_no_phi

logger = logging.getLogger(__name__)

_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_.\-/ ]")


def describe_code_version(*, repo_root: Path | None = None) -> dict[str, str]:
    """medseg version and, inside a git checkout, the short commit (with ``-dirty``)."""
    info = {"medseg_version": __version__}
    root = repo_root or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],  # full: never mistaken for an ID
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return info
    if commit:
        info["code_commit"] = commit + ("-dirty" if dirty else "")
    return info


def check_case_ids(case_ids: Sequence[str]) -> None:
    """Refuse case ids that look like PHI (names, dates, long numbers) before any output.

    Case ids come from file names and end up in metrics.csv, the report and MLflow.
    """
    try:
        check_no_phi({f"case {i + 1}": case_id for i, case_id in enumerate(case_ids)}, what="id of")
    except TrackingError as err:
        raise TrackingError(
            f"{err}; rename the files to pseudonymous case ids (or evaluate through a dataset "
            "manifest) before evaluating"
        ) from err


def aggregate_metrics(result: EvaluationResult) -> dict[str, float]:
    """MLflow metrics: mean and median of the headline metrics per label, plus label means.

    Keys look like ``dice/liver/mean``; ``dice/mean_over_labels`` is the unweighted mean of the
    per-label means. Only finite statistics are logged; counts of undefined (NaN) and infinite
    values are logged as ``.../n_undefined`` and ``.../n_infinite`` when non-zero.
    """
    summary = result.summarise()
    metrics: dict[str, float] = {"n_cases": float(len(result.case_ids))}
    for metric in result.metric_set.headline:
        label_means = []
        for name, per_metric in summary.items():
            stats = per_metric[metric]
            key = f"{metric}/{_UNSAFE_KEY.sub('_', name)}"
            for stat in ("mean", "median"):
                value = stats[stat]
                if value is not None:
                    metrics[f"{key}/{stat}"] = float(value)
            for count in ("n_undefined", "n_infinite"):
                if stats[count]:
                    metrics[f"{key}/{count}"] = float(stats[count])  # type: ignore[arg-type]
            if stats["mean"] is not None:
                label_means.append(float(stats["mean"]))  # type: ignore[arg-type]
        if label_means:
            metrics[f"{metric}/mean_over_labels"] = sum(label_means) / len(label_means)
    return metrics


def log_evaluation(
    tracker: Tracker,
    result: EvaluationResult,
    *,
    params: Mapping[str, object],
    tags: Mapping[str, object],
    artifacts: Sequence[Path],
) -> None:
    """Log an evaluation run: params + settings, aggregate metrics, the files as artifacts.

    Parameters
    ----------
    tracker
        The open run from :func:`start_tracking`.
    result
        What :func:`medseg.evaluation.evaluate_cases` returned.
    params, tags
        Extra run params (model, dataset, manifest hash …) and tags; PHI-guarded.
    artifacts
        Files to attach (metrics.csv, summary.json, report.html).
    """
    tracker.log_params(
        {
            **describe_code_version(),
            "n_cases": len(result.case_ids),
            "n_labels": len(result.labels),
            "kind": result.metric_set.kind.value,
            "nsd_tolerance_mm": result.settings.tolerance_mm,
            "hd_percentile": result.settings.percentile,
            "surface_definition": "deepmind-surfels",
            **params,
        }
    )
    tracker.set_tags({"task": "evaluate", **tags})
    metrics = aggregate_metrics(result)
    keys = sorted(metrics)
    for start in range(0, len(keys), 900):  # MLflow accepts at most 1000 metrics per batch
        tracker.log_metrics({k: metrics[k] for k in keys[start : start + 900]})
    for path in artifacts:
        tracker.log_artifact(path)
    logger.info("logged %d metrics and %d artifacts", len(metrics), len(artifacts))
