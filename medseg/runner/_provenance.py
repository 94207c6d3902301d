"""What a pipeline's MLflow run records so that it can be reproduced and reviewed.

Params: every setting of the segmenter (``segment.*``: model, precision, window or intensity
mode, device, ...), the model's checkpoint file name and SHA-256, the device it resolves to
here, and the code version (package version and, in a git checkout, the commit with
``-dirty``) with the Python and torch versions. Artifacts: per case its ``metrics.json``,
``overlay.png`` and, when small, ``mask.nii.gz``; a ``case_metrics.csv`` table; any HTML
report of the run. For a trained model: its ``plans.json`` (preprocessing, patch, labels) and,
for a shipped model, its ``MODEL.yaml`` card under ``model/``, with the card's cross-validation
figures as ``model_cv.*`` metrics (e.g. the brain-tumour model's per-fold Dice).

No PHI: checkpoint *paths* are never logged (a home folder can name a person), only file
names and digests; case ids are pseudonymous and checked again before they name artifacts.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path

from medseg.core import TrackingError, atomic_output, compute_sha256, read_yaml
from medseg.runner._pipeline import PipelineConfig
from medseg.tracking import Tracker, check_no_phi, describe_code_version

logger = logging.getLogger(__name__)

#: Masks larger than this are not copied into the run (the case folder keeps them).
MAX_MASK_ARTIFACT_BYTES = 2_000_000
#: MLflow keeps long params; a readable run view does not.
_MAX_PARAM_CHARS = 250
_CASE_ARTIFACTS = ("metrics.json", "overlay.png")


def _flatten(prefix: str, value: object, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)
        return
    if isinstance(value, list | tuple):
        scalars = all(not isinstance(v, Mapping | list | tuple) for v in value)
        text = ",".join(str(v) for v in value) if scalars else json.dumps(value)
    else:
        text = "null" if value is None else str(value)
    out[prefix] = text if len(text) <= _MAX_PARAM_CHARS else text[: _MAX_PARAM_CHARS - 1] + "…"


def _resolve_model(reference: str, *, root: Path) -> Path:
    """A segmenter's model reference as a checkpoint file: relative to ``root`` first, then
    as given (a path or a shipped name); raises ModelError when neither resolves."""
    from medseg.models import resolve_model_path

    found = next((c for c in (root / reference, Path(reference)) if c.exists()), None)
    return resolve_model_path(found if found is not None else reference)


def _checkpoint_identity(settings: Mapping[str, object], *, root: Path) -> dict[str, str]:
    """The model's checkpoint file name and SHA-256 (16 hex digits), or why it is unknown."""
    from medseg.core import ModelError
    from medseg.sam import LITEMEDSAM_SHA256

    model = settings.get("model")
    checkpoint = settings.get("checkpoint")
    if model is None and checkpoint is None:
        return {}
    if "checkpoint" in settings:  # a SAM-family section: model is an architecture name
        if checkpoint is None:
            return {"model_checkpoint": "shipped", "model_sha256": LITEMEDSAM_SHA256[:16]}
        reference = str(checkpoint)
    else:
        reference = str(model)
    try:
        path = _resolve_model(reference, root=root)
    except ModelError:
        return {"model_checkpoint": "unresolved"}
    return {"model_checkpoint": path.name, "model_sha256": compute_sha256(path)[:16]}


def _encoder_backend(requested: str, device: str) -> str:
    """The SAM image encoder's runtime as ``load_sam_model`` chooses it (``auto``: OpenVINO
    on the CPU when installed, else PyTorch)."""
    from medseg.sam import openvino_available

    if requested != "auto":
        return requested
    return "openvino" if device == "cpu" and openvino_available() else "torch"


def describe_run(config: PipelineConfig, *, root: Path) -> dict[str, str]:
    """The MLflow params that pin down how a pipeline run's masks were made."""
    import torch

    from medseg.models import resolve_device

    settings = config.segment.settings().model_dump(mode="json")
    params: dict[str, str] = {}
    _flatten("segment", settings, params)
    params.update(_checkpoint_identity(settings, root=root))
    device = settings.get("device", "auto")
    try:
        params["device_resolved"] = str(resolve_device(str(device or "auto")))
    except Exception as err:  # an unavailable device fails later, in the segmenter
        params["device_resolved"] = f"unavailable ({type(err).__name__})"
    if "checkpoint" in settings:  # SAM family: which runtime the image encoder gets here
        params["sam_encoder_backend"] = _encoder_backend(
            str(settings.get("encoder_backend", "auto")), params["device_resolved"]
        )
    params["evaluate.kind"] = config.evaluate.kind.value
    params.update(describe_code_version(repo_root=root))
    params["python_version"] = platform.python_version()
    params["torch_version"] = torch.__version__
    try:
        check_no_phi(params, what="param")
    except TrackingError:  # a tag or path-like setting that trips the guard: keep the rest
        safe = {}
        for key, value in params.items():
            try:
                check_no_phi({key: value}, what="param")
            except TrackingError:
                logger.warning("param %s not logged: it looks like identifying data", key)
                continue
            safe[key] = value
        params = safe
    return params


def _numeric_leaves(prefix: str, value: object, out: dict[str, float]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _numeric_leaves(f"{prefix}.{key}", item, out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out[prefix] = float(value)


def log_model_record(
    tracker: Tracker, config: PipelineConfig, *, root: Path, out_dir: Path
) -> list[str]:
    """Log the trained model's plans and, if shipped, its card and cross-validation figures.

    Writes ``out_dir/model/plans.json``; returns the artifact names logged. SAM-family
    segmenters (no plans) and methods without a model log nothing.
    """
    from medseg.core import ModelError
    from medseg.models import SHIPPED_MODELS_DIR, load_checkpoint

    settings = config.segment.settings().model_dump(mode="json")
    reference = settings.get("model")
    if reference is None or "checkpoint" in settings:
        return []
    try:
        path = _resolve_model(str(reference), root=root)
        checkpoint = load_checkpoint(path)
    except ModelError:
        return []  # the segmenter reports an unusable model itself
    logged: list[str] = []
    folder = out_dir / "model"
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / "plans.json", overwrite=True) as tmp:
        tmp.write_text(checkpoint.plans.model_dump_json(indent=2), encoding="utf-8")
    tracker.log_artifact(folder / "plans.json", artifact_path="model")
    logged.append("model/plans.json")
    card_path = path.parent / "MODEL.yaml"
    if path.parent.parent.resolve() == SHIPPED_MODELS_DIR.resolve() and card_path.is_file():
        tracker.log_artifact(card_path, artifact_path="model")
        logged.append("model/MODEL.yaml")
        card = read_yaml(card_path)
        metrics: dict[str, float] = {}
        _numeric_leaves("model_cv", card.get("cross_validation", {}), metrics)
        if metrics:
            check_no_phi(dict.fromkeys(metrics, ""), what="metric name")
            tracker.log_metrics(metrics)
    return logged


def write_case_metrics_table(
    records: Iterable[tuple[str, Mapping[str, float]]], path: Path
) -> Path:
    """``case_id,metric,value`` rows, one per case and tracked metric, written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["case_id", "metric", "value"])
    for case_id, metrics in records:
        for name, value in sorted(metrics.items()):
            writer.writerow([case_id, name, repr(float(value))])
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def log_run_artifacts(
    tracker: Tracker,
    out_dir: Path,
    case_ids: Iterable[str],
    *,
    max_mask_bytes: int = MAX_MASK_ARTIFACT_BYTES,
) -> list[str]:
    """Copy the run's reviewable outputs into its MLflow artifacts; return their names.

    Per done case ``cases/<id>/``: ``metrics.json``, ``overlay.png`` and ``mask.nii.gz``
    when at most ``max_mask_bytes``; at the top: ``case_metrics.csv``, ``summary.json``,
    ``pipeline.yaml`` and every ``*.html`` report (also inside ``report/``).
    """
    logged: list[str] = []
    for case_id in case_ids:
        try:
            check_no_phi({"case": case_id}, what="case id")
        except TrackingError:
            logger.warning("a case id looks like identifying data; its files are not logged")
            continue
        folder = out_dir / "cases" / case_id
        names = [n for n in _CASE_ARTIFACTS if (folder / n).is_file()]
        mask = folder / "mask.nii.gz"
        if mask.is_file() and mask.stat().st_size <= max_mask_bytes:
            names.append(mask.name)
        for name in names:
            tracker.log_artifact(folder / name, artifact_path=f"cases/{case_id}")
            logged.append(f"cases/{case_id}/{name}")
    top = ["case_metrics.csv", "summary.json", "pipeline.yaml"]
    reports = sorted(p.relative_to(out_dir) for p in out_dir.glob("*.html"))
    reports += sorted(p.relative_to(out_dir) for p in (out_dir / "report").glob("*.html"))
    for relative in [Path(n) for n in top] + reports:
        path = out_dir / relative
        if path.is_file():
            parent = str(relative.parent) if str(relative.parent) != "." else None
            tracker.log_artifact(path, artifact_path=parent)
            logged.append(str(relative))
    return logged
