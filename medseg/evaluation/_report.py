"""Self-contained HTML report: definitions, summary tables, box plots, worst-case overlays.

Plots are PNGs embedded as base64 ``data:`` URIs, so the one file can be mailed or archived
and opened offline. Only pseudonymous case ids and label names appear; no paths, no metadata.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from pathlib import Path

import numpy as np

from medseg import __version__
from medseg.core import atomic_output
from medseg.evaluation._evaluate import EvaluationKind, EvaluationResult

logger = logging.getLogger(__name__)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; } td.name, th.name { text-align: left; }
td.text { text-align: left; white-space: normal; max-width: 900px; }
.flag { color: #a33; } .note { color: #555; font-size: 13px; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; max-width: 100%; }
img { max-width: 100%; height: auto; }
figcaption { font-size: 12px; color: #444; max-width: 420px; }
"""


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


def _overlay(result: EvaluationResult, case_id: str, label_id: int) -> str | None:
    case = result.worst_overlays.get((case_id, label_id))
    if case is None:
        return None
    plt = _pyplot()
    if result.metric_set.kind is EvaluationKind.INSTANCE:
        from skimage.segmentation import find_boundaries

        pred = find_boundaries(case.prediction, mode="inner")
        ref = find_boundaries(case.reference, mode="inner")
    else:
        pred, ref = case.prediction == label_id, case.reference == label_id
    image = case.image
    if pred.ndim == 3:  # the slice along k with the most disagreement (else most structure)
        disagreement = (pred ^ ref).sum(axis=(0, 1))
        score = disagreement if disagreement.any() else (pred | ref).sum(axis=(0, 1))
        k = int(np.argmax(score))
        pred, ref = pred[:, :, k], ref[:, :, k]
        image = image[:, :, k] if image is not None else None
        where = f"slice k={k}"
    else:
        where = "2D"
    # display: array axis j downwards, axis i across (file order: column, row)
    pred, ref = pred.T, ref.T
    if image is not None:
        shown = image.T.astype(np.float32)
        low, high = np.percentile(shown, [1, 99])
        shown = np.clip((shown - low) / (high - low if high > low else 1.0), 0, 1)
    else:
        shown = 0.25 * (pred | ref).astype(np.float32)
    height, width = shown.shape
    figure, axes = plt.subplots(figsize=(4.2, 4.2 * height / max(width, 1)))
    axes.imshow(shown, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for mask, colour in ((ref, "tab:green"), (pred, "tab:red")):
        if mask.any():
            axes.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.0)
    axes.set_title(f"{case_id} · {result.labels[label_id]} · {where}", fontsize=8)
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


def _stat_cell(stats: dict[str, float | int | None]) -> str:
    if stats["mean"] is None:
        text = "–"
    else:
        text = _fmt(stats["mean"])
        if stats["std"] is not None:
            text += f" ± {_fmt(stats['std'])}"
        if stats["n_finite"] and int(stats["n_finite"]) > 1:  # type: ignore[arg-type]
            text += (
                f"<br><small>med {_fmt(stats['median'])} "
                f"[{_fmt(stats['q1'])}, {_fmt(stats['q3'])}]</small>"
            )
    flags = []
    if stats["n_undefined"]:
        flags.append(f"{stats['n_undefined']} NaN")
    if stats["n_infinite"]:
        flags.append(f"{stats['n_infinite']} ∞")
    if flags:
        text += f"<br><span class='flag'>{', '.join(flags)}</span>"
    return f"<td>{text}</td>"


def _summary_table(result: EvaluationResult, *, metrics: tuple[str, ...], table_id: str) -> str:
    summary = result.summarise()
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    rows = []
    for name, per_metric in summary.items():
        n = per_metric[metrics[0]]["n"]
        cells = "".join(_stat_cell(per_metric[m]) for m in metrics)
        rows.append(f"<tr><td class='name'>{html.escape(name)}</td><td>{n}</td>{cells}</tr>")
    return (
        f"<table id='{table_id}'><thead><tr><th class='name'>label</th><th>cases</th>"
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


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


def _case_table(result: EvaluationResult) -> str:
    metrics = result.metric_set.table
    head = "".join(f"<th>{m}</th>" for m in metrics)
    rows = [
        f"<tr><td class='name'>{html.escape(r.case_id)}</td><td class='name'>"
        f"{html.escape(r.label)}</td><td class='name'>{r.metrics.empty.value}</td>"
        + "".join(f"<td>{_fmt(r.metrics.to_dict()[m])}</td>" for m in metrics)
        + "</tr>"
        for r in result.results
    ]
    return (
        "<table id='case-table'><thead><tr><th class='name'>case</th><th class='name'>label</th>"
        f"<th class='name'>empty</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def render_report_html(result: EvaluationResult) -> str:
    """The report as one HTML string (plots embedded)."""
    settings = result.settings
    metric_set = result.metric_set
    definitions = "".join(
        f"<tr><td class='name'>{html.escape(m)}</td><td class='text'>{html.escape(text)}"
        f"{' (higher is better)' if m in metric_set.higher_is_better else ''}</td></tr>"
        for m, text in metric_set.definitions.items()
    )
    plots = "".join(
        f"<figure><img id='boxplot-{m}' alt='box plot of {m} per label' "
        f"src='{_box_plot(result, m)}'><figcaption>{html.escape(metric_set.definitions[m])}"
        "</figcaption></figure>"
        for m in metric_set.headline
    )
    worst = []
    for row in _worst_rows(result, count=12):
        uri = _overlay(result, row.case_id, row.label_id)
        if uri is None:
            continue
        values = row.metrics.to_dict()
        caption = (
            f"{html.escape(row.case_id)} · {html.escape(row.label)}: "
            + ", ".join(f"{m} {_fmt(values[m])}" for m in metric_set.headline)
            + f" ({row.metrics.empty.value})"
        )
        worst.append(
            f"<figure class='worst-case'><img alt='overlay {html.escape(row.case_id)} "
            f"{html.escape(row.label)}' src='{uri}'><figcaption>{caption}</figcaption></figure>"
        )
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
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>medseg evaluation report</title>
<style>{_STYLE}</style></head><body>
<h1>Segmentation evaluation</h1>
<p>{len(result.case_ids)} cases × {len(result.labels)} labels ({metric_set.kind.value}),
evaluated in {result.seconds:.1f} s by medseg {html.escape(__version__)}.</p>
<p class="note">{note} Statistics are over finite values; NaN (undefined, e.g. both masks
empty) and ∞ (distance to an empty mask) are counted separately.</p>
<h2>Distributions</h2>
<div id="boxplots">{plots}</div>
<h2>Summary per label</h2>
<p class="note">mean ± std (sample); median [q1, q3] when more than one case.</p>
{_summary_table(result, metrics=metric_set.table, table_id="summary-table")}
<h2>Worst cases (lowest {html.escape(metric_set.rank_by)})</h2>
<p class="note">Green: reference contour; red: prediction contour.</p>
<div id="worst-cases">{"".join(worst) or "<p>No case with a defined Dice.</p>"}</div>
<h2>Definitions</h2>
<table id="definitions"><tbody>{definitions}</tbody></table>
<h2>Every metric</h2>
<details><summary>statistics of all {len(metric_set.definitions)} metrics per label</summary>
{_summary_table(result, metrics=tuple(metric_set.definitions), table_id="full-summary-table")}
</details>
<h2>All cases</h2>
<details><summary>{len(result.results)} case × label rows</summary>{_case_table(result)}</details>
</body></html>
"""


def write_report_html(result: EvaluationResult, path: Path, *, overwrite: bool = False) -> Path:
    """Write the self-contained HTML report atomically."""
    text = render_report_html(result)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
