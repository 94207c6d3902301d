"""Evaluate many cases: per-case metrics, summary statistics, metrics.csv and summary.json."""

from __future__ import annotations

import csv
import enum
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.core import atomic_output, progress
from medseg.evaluation._cases import CasePair, LoadedCase, load_case
from medseg.evaluation._instance import (
    INSTANCE_METRIC_DEFINITIONS,
    InstanceMetrics,
    compute_instance_metrics,
    pool_instance_counts,
)
from medseg.evaluation._semantic import (
    HIGHER_IS_BETTER,
    METRIC_DEFINITIONS,
    EmptyCase,
    SegmentationMetrics,
    compute_label_metrics,
)

logger = logging.getLogger(__name__)

#: The metrics shown first in summaries, plots and MLflow.
HEADLINE_METRICS = ("dice", "hd95_mm", "assd_mm", "nsd")


class EvaluationKind(str, enum.Enum):
    """What the label maps hold: semantic classes or object instances."""

    SEMANTIC = "semantic"
    INSTANCE = "instance"


@dataclass(frozen=True)
class MetricSet:
    """The metrics of one evaluation kind: definitions, headline, table columns, ranking."""

    kind: EvaluationKind
    definitions: Mapping[str, str]
    headline: tuple[str, ...]
    table: tuple[str, ...]
    higher_is_better: frozenset[str]
    rank_by: str


SEMANTIC_METRICS = MetricSet(
    kind=EvaluationKind.SEMANTIC,
    definitions=METRIC_DEFINITIONS,
    headline=HEADLINE_METRICS,
    table=("dice", "iou", "hd_mm", "hd95_mm", "assd_mm", "nsd", "volume_diff_percent"),
    higher_is_better=HIGHER_IS_BETTER,
    rank_by="dice",
)
_INSTANCE_DEFINITIONS = {
    "n_pred": "Number of predicted instances.",
    "n_ref": "Number of reference instances.",
    "tp_50": "True positives: pairs matched one-to-one at IoU ≥ 0.5.",
    "fp_50": "Unmatched predicted instances at IoU ≥ 0.5.",
    "fn_50": "Unmatched reference instances at IoU ≥ 0.5.",
    **{k: v for k, v in INSTANCE_METRIC_DEFINITIONS.items() if k != "coco_ap_50_95"},
}
INSTANCE_METRICS = MetricSet(
    kind=EvaluationKind.INSTANCE,
    definitions=_INSTANCE_DEFINITIONS,
    headline=("f1_50", "accuracy_50", "mean_accuracy_50_95", "pq_50"),
    table=("n_ref", "n_pred", "precision_50", "recall_50", "f1_50", "mean_accuracy_50_95", "pq_50"),
    higher_is_better=frozenset(
        {"precision_50", "recall_50", "f1_50", "accuracy_50", "mean_accuracy_50_95"}
        | {"sq_50", "rq_50", "pq_50"}
    ),
    rank_by="f1_50",
)


@dataclass(frozen=True)
class EvaluationSettings:
    """How cases are scored: tolerance of the surface Dice and the robust-HD percentile."""

    tolerance_mm: float = 2.0
    percentile: float = 95.0


@dataclass(frozen=True)
class CaseLabelResult:
    """Metrics of one label in one case."""

    case_id: str
    label_id: int
    label: str
    metrics: SegmentationMetrics | InstanceMetrics


@dataclass
class EvaluationResult:
    """Everything ``medseg evaluate`` computed, ready to be written, plotted and tracked.

    ``qc`` (case id → structure → :meth:`StructureQC.to_dict`, with ``slice_k`` of each flag
    on the loaded case's axes) and ``flagged_cases`` (their arrays, for overlays of the
    flagged slices) come from a pipeline run's ``qc.json``; empty otherwise.
    """

    results: list[CaseLabelResult]
    labels: dict[int, str]
    settings: EvaluationSettings
    seconds: float = 0.0
    worst_overlays: dict[tuple[str, int], LoadedCase] = field(default_factory=dict)
    metric_set: MetricSet = SEMANTIC_METRICS
    qc: dict[str, dict[str, dict[str, object]]] = field(default_factory=dict)
    flagged_cases: dict[str, LoadedCase] = field(default_factory=dict)

    @property
    def case_ids(self) -> list[str]:
        """Case ids in evaluation order."""
        return list(dict.fromkeys(r.case_id for r in self.results))

    def values(self, label_id: int, metric: str) -> list[float]:
        """All values of ``metric`` for one label, one per case (NaN/inf kept)."""
        return [r.metrics.to_dict()[metric] for r in self.results if r.label_id == label_id]

    def summarise(self) -> dict[str, dict[str, dict[str, float | int | None]]]:
        """Per label and metric: n, counts of undefined/infinite values, and statistics.

        Statistics (mean, std with ddof=1, median, q1, q3, iqr) are over the finite values;
        ``n_undefined`` counts NaN (e.g. both masks empty) and ``n_infinite`` counts inf (e.g.
        a distance to an empty mask), so nothing is silently dropped.
        """
        summary: dict[str, dict[str, dict[str, float | int | None]]] = {}
        for label_id, name in self.labels.items():
            per_metric = {}
            for metric in self.metric_set.definitions:
                values = np.asarray(self.values(label_id, metric), dtype=np.float64)
                finite = values[np.isfinite(values)]
                stats: dict[str, float | int | None] = {
                    "n": int(values.size),
                    "n_finite": int(finite.size),
                    "n_undefined": int(np.isnan(values).sum()),
                    "n_infinite": int(np.isinf(values).sum()),
                }
                if finite.size:
                    q1, median, q3 = np.percentile(finite, [25, 50, 75])
                    stats.update(
                        mean=float(finite.mean()),
                        std=float(finite.std(ddof=1)) if finite.size > 1 else None,
                        median=float(median),
                        q1=float(q1),
                        q3=float(q3),
                        iqr=float(q3 - q1),
                    )
                else:
                    stats.update(mean=None, std=None, median=None, q1=None, q3=None, iqr=None)
                per_metric[metric] = stats
            summary[name] = per_metric
        return summary

    def pooled_instances(self) -> InstanceMetrics | None:
        """Instance counts summed over the cases (None for a semantic evaluation)."""
        metrics = [r.metrics for r in self.results if isinstance(r.metrics, InstanceMetrics)]
        if self.metric_set.kind is not EvaluationKind.INSTANCE or not metrics:
            return None
        return pool_instance_counts(metrics)

    def worst_cases(self, label_id: int, *, count: int = 3) -> list[CaseLabelResult]:
        """Worst cases of a label by the ranking metric (Dice, or F1 for instances);
        cases where it is undefined are left out."""
        metric = self.metric_set.rank_by
        rows = [
            r
            for r in self.results
            if r.label_id == label_id and not math.isnan(r.metrics.to_dict()[metric])
        ]
        sign = 1.0 if metric in self.metric_set.higher_is_better else -1.0
        return sorted(rows, key=lambda r: sign * r.metrics.to_dict()[metric])[:count]


def _present_labels(cases: Sequence[LoadedCase]) -> set[int]:
    present: set[int] = set()
    for case in cases:
        present |= {int(v) for v in np.unique(case.reference)} | {
            int(v) for v in np.unique(case.prediction)
        }
    present.discard(0)
    return present


def evaluate_cases(
    pairs: Sequence[CasePair],
    *,
    labels: Mapping[int, str] | None = None,
    settings: EvaluationSettings = EvaluationSettings(),
    binarize: bool = False,
    skip_absent_labels: bool = False,
    worst_per_label: int = 3,
) -> EvaluationResult:
    """Score every case and label.

    Parameters
    ----------
    pairs
        Cases from :func:`find_case_pairs`.
    labels
        Label id → name to evaluate (absent labels are scored with the empty conventions).
        None: every non-zero value found in any reference or prediction, named
        ``label_<id>``.
    settings
        NSD tolerance and HD percentile.
    binarize
        Treat non-zero as one foreground label (masks stored 0/255).
    skip_absent_labels
        Leave out labels found in no reference and no prediction (e.g. the full class list
        of a dataset manifest); by default every requested label gets rows.
    worst_per_label
        How many worst cases per label keep their arrays for overlays.
    """
    started = time.perf_counter()
    cases = [load_case(pair, binarize=binarize) for pair in pairs]
    return evaluate_loaded_cases(
        cases,
        labels=labels,
        settings=settings,
        binarize=binarize,
        skip_absent_labels=skip_absent_labels,
        worst_per_label=worst_per_label,
        started=started,
    )


def evaluate_loaded_cases(
    cases: Sequence[LoadedCase],
    *,
    labels: Mapping[int, str] | None = None,
    settings: EvaluationSettings = EvaluationSettings(),
    binarize: bool = False,
    skip_absent_labels: bool = False,
    worst_per_label: int = 3,
    started: float | None = None,
) -> EvaluationResult:
    """:func:`evaluate_cases` on cases already loaded on one grid (:class:`LoadedCase`)."""
    started = time.perf_counter() if started is None else started
    if labels is None or binarize:
        present = sorted(_present_labels(cases))
        names = dict(labels or {}) if not binarize else {}
        labels = {label: names.get(label, f"label_{label}") for label in present}
    elif skip_absent_labels:
        present_set = _present_labels(cases)
        labels = {k: v for k, v in labels.items() if k in present_set}
    results: list[CaseLabelResult] = []
    for case in progress(cases, description="evaluate", unit="case"):
        per_label = compute_label_metrics(
            case.prediction,
            case.reference,
            labels=list(labels),
            spacing_mm=case.spacing_mm,
            tolerance_mm=settings.tolerance_mm,
            percentile=settings.percentile,
        )
        results += [
            CaseLabelResult(case.case_id, label, labels[label], per_label[label])
            for label in labels
        ]
    result = EvaluationResult(results=results, labels=dict(labels), settings=settings)
    by_id = {case.case_id: case for case in cases}
    for label_id in labels:
        for row in result.worst_cases(label_id, count=worst_per_label):
            result.worst_overlays[(row.case_id, label_id)] = by_id[row.case_id]
    result.seconds = time.perf_counter() - started
    logger.info("evaluated %d cases × %d labels in %.1f s", len(cases), len(labels), result.seconds)
    return result


def _format_value(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else ("nan" if math.isnan(value) else "inf")


def write_metrics_csv(result: EvaluationResult, path: Path, *, overwrite: bool = False) -> Path:
    """Write one row per case × label × metric: ``case_id,label_id,label,metric,value,empty``.

    ``value`` is a float, ``nan`` (undefined) or ``inf``; ``empty`` is the
    :class:`EmptyCase` flag of that case and label.
    """
    with atomic_output(path, overwrite=overwrite) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "label_id", "label", "metric", "value", "empty"])
        for row in result.results:
            for metric, value in row.metrics.to_dict().items():
                writer.writerow(
                    [
                        row.case_id,
                        row.label_id,
                        row.label,
                        metric,
                        _format_value(value),
                        row.metrics.empty.value,
                    ]
                )
    return path


def _empty_counts(result: EvaluationResult) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for label_id, name in result.labels.items():
        flags = [r.metrics.empty.value for r in result.results if r.label_id == label_id]
        counts[name] = {case.value: flags.count(case.value) for case in EmptyCase}
    return counts


def summary_document(result: EvaluationResult) -> dict[str, object]:
    """The content of summary.json: settings, definitions, per-label statistics."""
    return {
        "n_cases": len(result.case_ids),
        "labels": {str(k): v for k, v in result.labels.items()},
        "settings": {
            "nsd_tolerance_mm": result.settings.tolerance_mm,
            "hd_percentile": result.settings.percentile,
            "surface_definition": "DeepMind surface-distance: surface elements of 2x2(x2) voxel "
            "cubes weighted by marching-cubes area (3D) or contour length (2D); distances in mm "
            "using the voxel spacing",
            "statistics": "over finite values; n_undefined counts NaN, n_infinite counts inf",
        },
        "kind": result.metric_set.kind.value,
        "definitions": dict(result.metric_set.definitions),
        "higher_is_better": sorted(result.metric_set.higher_is_better),
        "empty_cases": _empty_counts(result),
        "metrics": result.summarise(),
        **_pooled_section(result),
        "seconds": round(result.seconds, 3),
    }


def _pooled_section(result: EvaluationResult) -> dict[str, object]:
    pooled = result.pooled_instances()
    if pooled is None:
        return {}
    values = pooled.to_dict()
    return {
        "pooled": {
            "definition": "TP, FP, FN (and matched IoUs) summed over all cases, then the "
            "score computed once (StarDist matching_dataset); 'metrics' holds the means of "
            "per-case scores",
            **{k: (v if math.isfinite(v) else None) for k, v in values.items()},
        }
    }


def format_instance_summary(result: EvaluationResult) -> str:
    """Pooled and mean per-image instance scores side by side, each named as such.

    Returns an empty string for a semantic evaluation.
    """
    pooled = result.pooled_instances()
    if pooled is None:
        return ""
    summary = next(iter(result.summarise().values()))
    rows = [
        ("F1@0.5", "f1_50"),
        ("precision@0.5", "precision_50"),
        ("recall@0.5", "recall_50"),
        ("DSB score (mean TP/(TP+FP+FN) over IoU 0.50:0.95)", "mean_accuracy_50_95"),
        ("PQ@0.5", "pq_50"),
    ]
    pooled_values = pooled.to_dict()
    width = max(len(name) for name, _ in rows)
    n_cases = len(result.case_ids)
    lines = [
        f"{'instances, ' + str(n_cases) + ' images':<{width}}  {'pooled':>8}  "
        f"{'mean per image':>14}",
        f"{'':<{width}}  {'(summed)':>8}",
    ]
    for name, key in rows:
        mean = summary[key]["mean"]
        mean_text = f"{mean:.3f}" if mean is not None else "n/a"
        value = pooled_values[key]
        pooled_text = f"{value:.3f}" if math.isfinite(value) else "n/a"
        lines.append(f"{name:<{width}}  {pooled_text:>8}  {mean_text:>14}")
    lines.append(
        f"pooled counts at IoU 0.5: TP {pooled.at(0.5).tp}, FP {pooled.at(0.5).fp}, "
        f"FN {pooled.at(0.5).fn} ({pooled.n_pred} predicted, {pooled.n_ref} reference)"
    )
    return "\n".join(lines)


def write_summary_json(result: EvaluationResult, path: Path, *, overwrite: bool = False) -> Path:
    """Write summary.json (strict JSON: statistics of no finite value are ``null``)."""
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(
            json.dumps(summary_document(result), indent=2, allow_nan=False) + "\n",
            encoding="utf-8",
        )
    return path


def format_summary_table(result: EvaluationResult, *, metrics: Sequence[str] | None = None) -> str:
    """A plain-text table: one line per label, mean ± std and median of headline metrics."""
    metrics = metrics or result.metric_set.headline
    summary = result.summarise()
    width = max([len("label"), *(len(name) for name in summary)])
    header = f"{'label':<{width}}  " + "  ".join(f"{m:>22}" for m in metrics)
    lines = [header, "-" * len(header)]
    for name, per_metric in summary.items():
        cells = []
        for metric in metrics:
            stats = per_metric[metric]
            if stats["mean"] is None:
                cells.append(f"{'n/a':>22}")
                continue
            cell = f"{stats['mean']:.3f}"
            if stats["std"] is not None:
                cell += f"±{stats['std']:.3f}"
            cell += f" (med {stats['median']:.3f})"
            cells.append(f"{cell:>22}")
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def evaluate_instance_cases(pairs: Sequence[CasePair], *, worst_cases: int = 3) -> EvaluationResult:
    """Score instance label maps (cells, lesions): one row per case, label ``instances``.

    See :mod:`medseg.evaluation._instance` for the matching rule and the exact meaning of
    each metric (``accuracy`` is DSB2018's "AP", not a precision-recall AP).
    """
    return evaluate_loaded_instance_cases(
        [load_case(pair) for pair in pairs], worst_cases=worst_cases
    )


def evaluate_loaded_instance_cases(
    cases: Sequence[LoadedCase], *, worst_cases: int = 3
) -> EvaluationResult:
    """:func:`evaluate_instance_cases` on cases already loaded (:class:`LoadedCase`)."""
    started = time.perf_counter()
    results = [
        CaseLabelResult(
            case.case_id, 1, "instances", compute_instance_metrics(case.prediction, case.reference)
        )
        for case in progress(cases, description="evaluate", unit="case")
    ]
    result = EvaluationResult(
        results=results,
        labels={1: "instances"},
        settings=EvaluationSettings(),
        metric_set=INSTANCE_METRICS,
    )
    by_id = {case.case_id: case for case in cases}
    for row in result.worst_cases(1, count=worst_cases):
        result.worst_overlays[(row.case_id, 1)] = by_id[row.case_id]
    result.seconds = time.perf_counter() - started
    return result
