"""The HTML report of a finished (or partly finished) pipeline run: ``medseg report RUN_DIR``.

Every case folder ``RUN_DIR/cases/<id>/`` with a ``mask.nii.gz`` is scored again against the
reference of the run's dataset manifest (moved onto the mask's grid by axis order/flips
only, as the run's ingest stage does), with the case's image under every contour and its
QC flags (``qc.json``) and confidence map (``confidence.nii.gz``) when the run wrote them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from medseg.core import GeometryError, InputError, parse_config, read_yaml
from medseg.evaluation import (
    EvaluationResult,
    LoadedCase,
    display_slice_index,
    evaluate_loaded_cases,
    evaluate_loaded_instance_cases,
    load_case_volumes,
    write_report_html,
)
from medseg.io import Case, Volume, load_manifest, read_image
from medseg.runner._pipeline import EvaluationKind, PipelineConfig

logger = logging.getLogger(__name__)

REPORT_NAME = "report.html"


def _read_case(
    case: Case, case_dir: Path, *, root: Path, binarize: bool
) -> tuple[LoadedCase, Volume, dict[str, dict[str, object]]]:
    mask = read_image(case_dir / "mask.nii.gz")
    if case.label is None:
        raise InputError("the case has no reference label to score against", case_id=case.id)
    reference = read_image(root / case.label)
    image = read_image(root / case.image)
    confidence_path = case_dir / "confidence.nii.gz"
    confidence = read_image(confidence_path) if confidence_path.is_file() else None
    if binarize:
        mask = mask.with_array((np.asarray(mask.array) > 0).astype(np.uint8))
        reference = reference.with_array((np.asarray(reference.array) > 0).astype(np.uint8))
    try:
        loaded = load_case_volumes(
            case.id, mask, reference, image=image, confidence=confidence, source=case_dir
        )
    except GeometryError:  # an image on another grid: overlays without it
        logger.info("image of case %s is on another grid; overlays without it", case.id)
        loaded = load_case_volumes(case.id, mask, reference, source=case_dir)
    qc: dict[str, dict[str, object]] = {}
    qc_path = case_dir / "qc.json"
    if qc_path.is_file():
        qc = json.loads(qc_path.read_text(encoding="utf-8")).get("structures", {})
        for entry in qc.values():
            for flag in entry.get("flags", []):  # type: ignore[attr-defined]
                k = flag.get("slice_k")
                flag["slice_k_display"] = (
                    display_slice_index(mask, int(k)) if k is not None else None
                )
    return loaded, mask, qc


def build_run_evaluation(
    run_dir: Path, *, root: Path, manifest_path: Path | None = None
) -> EvaluationResult:
    """Score every finished case of the run in ``run_dir`` (see the module docstring).

    ``root`` is the folder the manifest's paths start from; ``manifest_path`` overrides the
    pipeline's ``dataset`` (as ``medseg run --cases`` does).

    Raises
    ------
    InputError
        If ``run_dir`` holds no ``pipeline.yaml`` or no finished case with a reference.
    """
    config_path = run_dir / "pipeline.yaml"
    if not config_path.is_file():
        raise InputError("not a medseg run folder (no pipeline.yaml)", path=run_dir)
    config = parse_config(PipelineConfig, read_yaml(config_path), source=config_path)
    manifest = load_manifest(manifest_path or root / config.dataset)
    kind = config.evaluate.kind
    cases: list[LoadedCase] = []
    qc: dict[str, dict[str, dict[str, object]]] = {}
    for case in manifest.cases:
        case_dir = run_dir / "cases" / case.id
        if not (case_dir / "mask.nii.gz").is_file() or case.label is None:
            continue
        loaded, _, case_qc = _read_case(
            case, case_dir, root=root, binarize=kind is EvaluationKind.VESSEL
        )
        cases.append(loaded)
        if case_qc:
            qc[case.id] = case_qc
    if not cases:
        raise InputError("the run holds no finished case with a mask and a reference", path=run_dir)
    if kind is EvaluationKind.INSTANCE:
        result = evaluate_loaded_instance_cases(cases)
    else:
        labels = dict(manifest.labels)
        if kind is EvaluationKind.VESSEL:
            labels = {1: "vessel"}
        scored = _scored_names(run_dir, [case.case_id for case in cases])
        if scored:
            labels = {i: name for i, name in labels.items() if name in scored}
        result = evaluate_loaded_cases(cases, labels=labels, skip_absent_labels=not scored)
    result.qc = qc
    by_id = {case.case_id: case for case in cases}
    result.flagged_cases = {case_id: by_id[case_id] for case_id in qc if case_id in by_id}
    return result


def _scored_names(run_dir: Path, case_ids: list[str]) -> set[str]:
    """Structure names the run's evaluate stage scored (its ``metrics.json`` keys)."""
    names: set[str] = set()
    for case_id in case_ids:
        path = run_dir / "cases" / case_id / "metrics.json"
        if path.is_file():
            metrics = json.loads(path.read_text(encoding="utf-8")).get("metrics", {})
            names |= {k for k, v in metrics.items() if isinstance(v, dict) and "dice" in v}
    return names


def write_run_report(
    run_dir: Path, *, root: Path, manifest_path: Path | None = None, overwrite: bool = True
) -> Path:
    """Write ``run_dir/report.html`` for the run in ``run_dir`` (see the module docstring)."""
    result = build_run_evaluation(run_dir, root=root, manifest_path=manifest_path)
    path = write_report_html(result, run_dir / REPORT_NAME, overwrite=overwrite)
    logger.info("report of %d case(s): %s", len(result.case_ids), path)
    return path
