"""Self-contained HTML report: QC flags, definitions, summary tables, box plots, overlays.

The page is a Jinja2 template (``templates/report.html.j2``, autoescaped); plots are PNGs
embedded as base64 ``data:`` URIs, so the one file can be mailed or archived and opened
offline. Only pseudonymous case ids and label names appear; no paths, no metadata.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg import __version__
from medseg.core import atomic_output
from medseg.evaluation._cases import LoadedCase
from medseg.evaluation._evaluate import EvaluationKind, EvaluationResult

logger = logging.getLogger(__name__)


_INSTANCE_NOTE = (
    "Instances are matched one-to-one by IoU (StarDist's rule); 'accuracy' is TP/(TP+FP+FN), "
    "what DSB2018 and Cellpose call 'AP'; mean_accuracy_50_95 averages it over IoU "
    "0.50:0.05:0.95 (the DSB2018 score), it is not a precision-recall AP."
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _png_data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _box_plot(result: EvaluationResult, metric: str) -> str:
    plt = _pyplot()
    names, data = [], []
    for label_id, name in result.labels.items():
        values = np.asarray(result.values(label_id, metric), dtype=np.float64)
        names.append(name)
        data.append(values[np.isfinite(values)])
    figure, axes = plt.subplots(figsize=(max(4.0, 0.45 * len(names) + 1.5), 3.2))
    axes.boxplot(data, showmeans=True)
    axes.set_xticks(range(1, len(names) + 1), names, rotation=60, ha="right", fontsize=8)
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} per label (finite values)", fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    return _png_data_uri(figure)


#: Confidence below this is shaded in the overlays of flagged slices.
LOW_CONFIDENCE_SHADE = 0.9


@dataclass(frozen=True)
class _Figure:
    uri: str
    caption: str
    case_id: str = ""
    label: str = ""
    structure: str = ""


def _slice_masks(
    result: EvaluationResult, case: LoadedCase, label_id: int
) -> tuple[np.ndarray, np.ndarray]:
    if result.metric_set.kind is EvaluationKind.INSTANCE:
        from skimage.segmentation import find_boundaries

        return (
            find_boundaries(case.prediction, mode="inner"),
            find_boundaries(case.reference, mode="inner"),
        )
    return case.prediction == label_id, case.reference == label_id


def _overlay(
    result: EvaluationResult,
    case: LoadedCase,
    label_id: int,
    *,
    k: int | None = None,
    title: str = "",
    shade_confidence: bool = False,
) -> str:
    """A PNG data URI: the image (grey) with reference (green) and prediction (red) contours
    on slice ``k`` (default: the slice with most disagreement, else most structure)."""
    plt = _pyplot()
    pred, ref = _slice_masks(result, case, label_id)
    image, confidence = case.image, case.confidence
    if pred.ndim == 3:
        if k is None:
            disagreement = (pred ^ ref).sum(axis=(0, 1))
            score = disagreement if disagreement.any() else (pred | ref).sum(axis=(0, 1))
            k = int(np.argmax(score))
        k = int(np.clip(k, 0, pred.shape[2] - 1))
        pred, ref = pred[:, :, k], ref[:, :, k]
        image = image[:, :, k] if image is not None else None
        confidence = confidence[:, :, k] if confidence is not None else None
        where = f"slice k={k}"
    else:
        where = "2D"
    # display: array axis j downwards, axis i across (file order: column, row)
    pred, ref = pred.T, ref.T
    if image is not None:
        shown = image.T.astype(np.float32)
        low, high = np.percentile(shown, [1, 99])
        shown = np.clip((shown - low) / (high - low if high > low else 1.0), 0, 1)
    else:  # no image given: a grey silhouette of both masks, never black alone
        shown = 0.25 * (pred | ref).astype(np.float32)
    height, width = shown.shape
    figure, axes = plt.subplots(figsize=(4.2, 4.2 * height / max(width, 1)))
    axes.imshow(shown, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if shade_confidence and confidence is not None:
        doubtful = np.ma.masked_where(confidence.T >= LOW_CONFIDENCE_SHADE, confidence.T)
        axes.imshow(doubtful, cmap="autumn", vmin=0, vmax=1, alpha=0.45, interpolation="nearest")
    for mask, colour in ((ref, "tab:green"), (pred, "tab:red")):
        if mask.any():
            axes.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.0)
    axes.set_title(f"{title or case.case_id} · {where}", fontsize=8)
    axes.set_axis_off()
    return _png_data_uri(figure)


def _fmt(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _worst_rows(result: EvaluationResult, *, count: int) -> list:
    metric = result.metric_set.rank_by
    sign = 1.0 if metric in result.metric_set.higher_is_better else -1.0
    rows = [
        row
        for label_id in result.labels
        for row in result.worst_cases(label_id)
        if (row.case_id, label_id) in result.worst_overlays
    ]
    return sorted(rows, key=lambda r: sign * r.metrics.to_dict()[metric])[:count]


def _worst_figures(result: EvaluationResult) -> list[_Figure]:
    figures = []
    for row in _worst_rows(result, count=12):
        case = result.worst_overlays[(row.case_id, row.label_id)]
        values = row.metrics.to_dict()
        caption = (
            f"{row.case_id} · {row.label}: "
            + ", ".join(f"{m} {_fmt(values[m])}" for m in result.metric_set.headline)
            + f" ({row.metrics.empty.value})"
        )
        uri = _overlay(result, case, row.label_id, title=f"{row.case_id} · {row.label}")
        figures.append(_Figure(uri, caption, case_id=row.case_id, label=row.label))
    return figures


def _qc_cases(result: EvaluationResult, *, max_figures: int = 24) -> list[dict[str, object]]:
    """Cases with their structures' QC, most flags first, then the worst ranking metric."""
    metric = result.metric_set.rank_by
    sign = 1.0 if metric in result.metric_set.higher_is_better else -1.0
    scores = {(r.case_id, r.label): r.metrics.to_dict()[metric] for r in result.results}
    ids_by_name = {name: label_id for label_id, name in result.labels.items()}
    cases = []
    for case_id, structures in result.qc.items():
        rows = []
        for structure, entry in structures.items():
            flags = list(entry.get("flags", []))  # type: ignore[call-overload]
            rows.append(
                {
                    "structure": structure,
                    "score": scores.get((case_id, structure)),
                    "mean_confidence": entry.get("mean_confidence"),
                    "volume_ml": entry.get("volume_ml"),
                    "flags": flags,
                }
            )
        finite = [
            sign * float(row["score"])  # type: ignore[arg-type]
            for row in rows
            if row["score"] is not None and math.isfinite(float(row["score"]))  # type: ignore[arg-type]
        ]
        cases.append(
            {
                "case_id": case_id,
                "rows": rows,
                "n_flags": sum(len(row["flags"]) for row in rows),  # type: ignore[arg-type]
                "worst": min(finite) if finite else math.inf,
                "figures": [],
            }
        )
    cases.sort(key=lambda c: (-int(c["n_flags"]), float(c["worst"]), str(c["case_id"])))  # type: ignore[call-overload]
    budget = max_figures
    for case in cases:
        loaded = result.flagged_cases.get(str(case["case_id"]))
        if loaded is None:
            continue
        for row in case["rows"]:  # type: ignore[attr-defined]
            label_id = ids_by_name.get(row["structure"])
            if label_id is None:
                continue
            slices: dict[int | None, list[str]] = {}
            for flag in row["flags"]:
                slices.setdefault(flag.get("slice_k_display"), []).append(flag["name"])
            for k, names in slices.items():
                if budget <= 0:
                    break
                budget -= 1
                uri = _overlay(
                    result,
                    loaded,
                    label_id,
                    k=k,
                    title=f"{case['case_id']} · {row['structure']}",
                    shade_confidence=True,
                )
                case["figures"].append(  # type: ignore[attr-defined]
                    _Figure(
                        uri,
                        f"{case['case_id']} · {row['structure']}: {', '.join(names)}",
                        structure=str(row["structure"]),
                    )
                )
    return cases


@functools.lru_cache(maxsize=1)
def _environment():  # type: ignore[no-untyped-def]
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("medseg.evaluation", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )
    environment.filters["fmt"] = _fmt
    return environment


def render_report_html(result: EvaluationResult) -> str:
    """The report as one HTML string (plots embedded), from ``templates/report.html.j2``."""
    settings = result.settings
    metric_set = result.metric_set
    if metric_set.kind is EvaluationKind.INSTANCE:
        note = _INSTANCE_NOTE
    else:
        note = (
            f"Normalised surface Dice tolerance {settings.tolerance_mm:g} mm; robust Hausdorff "
            f"percentile {settings.percentile:g}. Surfaces follow DeepMind's "
            "<code>surface-distance</code>: surface elements of 2×2(×2) voxel cubes weighted by "
            "their marching-cubes area (3D) or contour length (2D); distances in mm using the "
            "voxel spacing."
        )
    plots = [
        {
            "metric": m,
            "uri": _box_plot(result, m),
            "caption": metric_set.definitions[m],
        }
        for m in metric_set.headline
    ]
    case_rows = [
        {
            "case_id": r.case_id,
            "label": r.label,
            "empty": r.metrics.empty.value,
            "cells": [r.metrics.to_dict()[m] for m in metric_set.table],
        }
        for r in result.results
    ]
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            n_cases=len(result.case_ids),
            n_labels=len(result.labels),
            kind=metric_set.kind.value,
            seconds=result.seconds,
            version=__version__,
            note=note,
            rank_by=metric_set.rank_by,
            qc_cases=_qc_cases(result) if result.qc else [],
            plots=plots,
            summary=result.summarise(),
            table_metrics=metric_set.table,
            all_metrics=tuple(metric_set.definitions),
            worst=_worst_figures(result),
            any_without_image=any(case.image is None for case in result.worst_overlays.values()),
            definitions=list(metric_set.definitions.items()),
            higher_is_better=metric_set.higher_is_better,
            case_rows=case_rows,
        )
    )


def write_report_html(result: EvaluationResult, path: Path, *, overwrite: bool = False) -> Path:
    """Write the self-contained HTML report atomically."""
    text = render_report_html(result)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
