"""Stage implementations run for one case: ingest, segment, evaluate, export.

They work on a :class:`CaseContext` and write only inside its (temporary) case folder;
the batch runner renames that folder into place when every stage has succeeded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.core import InputError, atomic_output
from medseg.evaluation import (
    compute_instance_metrics,
    compute_label_metrics,
    compute_region_metrics,
    compute_segmentation_qc,
)
from medseg.export import (
    CONFIDENCE_SEG_NAME,
    SourceSeries,
    build_structures,
    describe_labels,
    load_structure_codes,
    read_source_series,
    write_confidence_maps,
    write_confidence_seg,
    write_dicom_seg,
    write_source_series,
)
from medseg.io import (
    Case,
    Volume,
    collapse_grey_channels,
    label_sidecar_path,
    read_image,
    reorient_like,
    to_output_layout,
    write_label_map,
    write_nifti,
)
from medseg.runner._overlay import write_case_overlay
from medseg.runner._pipeline import EvaluationKind, PipelineConfig, SamBox3DConfig, StageName
from medseg.runner._trained import (
    VESSEL_LOGGED,
    compute_case_vessel_metrics,
    read_field_of_view,
)
from medseg.segment import (
    CaseImages,
    Confidence,
    MapKind,
    Segmenter,
    label_ids_for,
)
from medseg.segment import segment_with_3d_boxes as _segment_with_3d_boxes

logger = logging.getLogger(__name__)


@dataclass
class CaseContext:
    """Everything one case accumulates while its stages run."""

    case: Case
    labels: dict[int, str]
    root: Path
    out_dir: Path
    image: Volume | None = None
    reference: Volume | None = None
    prediction: Volume | None = None
    probabilities: Volume | None = None  # (*spatial, C) from trained models, C0 background
    structures: dict[int, str] = field(default_factory=dict)  # segmenter's label names
    kind: MapKind = MapKind.SEMANTIC
    channels: dict[str, Volume] = field(default_factory=dict)
    roi: Volume | None = None
    confidence: Confidence | None = None
    structures: dict[int, str] = field(default_factory=dict)
    qc: dict[str, dict[str, object]] = field(default_factory=dict)
    absent: tuple[str, ...] = ()  # requested structures outside the field of view, not drawn
    source_series: SourceSeries | None = None  # the DICOM series, read once for exports
    metrics: dict[str, float] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)


def ingest(context: CaseContext) -> None:
    """Read the case's image, its additional images (other MR sequences: ``channels``),
    region mask and reference, each moved onto the image grid by flips only."""
    context.image = read_image(context.root / context.case.image)
    for name, relative in context.case.additional_images.items():
        context.channels[name] = reorient_like(
            read_image(context.root / relative), context.image, what=f"image {name}"
        )
    if context.case.roi is not None:
        context.roi = reorient_like(
            read_image(context.root / context.case.roi), context.image, what="region mask"
        )
    if context.case.label is not None:
        label_path = context.root / context.case.label
        reference = read_image(label_path)
        reference = reference.with_array(
            collapse_grey_channels(reference.array, what="reference label", path=label_path)
        )
        context.reference = reorient_like(reference, context.image, what="reference label")


def case_images(context: CaseContext) -> CaseImages:
    """What a segmenter sees of ``context``: the case's images on the image's grid."""
    if context.image is None:
        raise InputError("segment needs the ingest stage first", case_id=context.case.id)
    return CaseImages(
        case_id=context.case.id,
        image=context.image,
        root=context.root,
        labels=context.labels,
        channels=context.channels,
        reference=context.reference,
        roi=context.roi,
        modality=context.case.modality,
    )


def segment(context: CaseContext, config: PipelineConfig) -> None:
    """Run the configured segmenter and store its label map on the image grid."""
    result = config.segment.build().segment(case_images(context))
    context.prediction = result.labels
    context.structures = dict(result.structures)
    context.kind = result.kind
    if result.probabilities is not None:
        context.probabilities = result.probabilities
    context.confidence = result.confidence
    context.absent = tuple(result.absent)
    if result.kind is not MapKind.SEMANTIC:
        return
    structures = dict(result.structures)
    if result.confidence is not None:  # also the classes the model did not predict
        for label_id in result.confidence.structure_ids:
            if label_id in context.labels:
                structures.setdefault(label_id, context.labels[label_id])
    context.structures = dict(sorted(structures.items()))
    qc = compute_segmentation_qc(
        result.labels.array,
        context.structures,
        spacing_mm=result.labels.spacing_mm,
        confidence=result.confidence,
        thresholds=config.evaluate.qc,
    )
    context.qc = {name: entry.to_dict() for name, entry in qc.items()}
    path = context.out_dir / "qc.json"
    with atomic_output(path, overwrite=True) as tmp:
        document = {
            "case": context.case.id,
            "confidence": result.confidence.source if result.confidence else None,
            "thresholds": config.evaluate.qc.model_dump(mode="json"),
            "structures": context.qc,
        }
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    context.outputs.append(path.name)
    n_flags = sum(len(entry["flags"]) for entry in context.qc.values())  # type: ignore[arg-type]
    if n_flags:
        logger.info("case %s: %d QC flag(s)", context.case.id, n_flags)


def segment_with_3d_boxes(context: CaseContext, config: SamBox3DConfig) -> Volume:
    """The ``sam_box_3d`` segmenter's label map for a runner context (see
    :func:`medseg.segment.segment_with_3d_boxes`)."""
    return _segment_with_3d_boxes(case_images(context), config)


_SEMANTIC_LOGGED = ("dice", "hd95_mm", "assd_mm", "nsd")


def _evaluated_structures(config: PipelineConfig, labels: dict[int, str]) -> list[str]:
    """The label names a semantic evaluation scores: the segmented ones, else all."""
    segmenter: Segmenter = config.segment.build()
    return segmenter.scored_structures(labels)


_INSTANCE_LOGGED = ("f1_50", "mean_accuracy_50_95", "pq_50", "n_pred", "n_ref")


def evaluate(context: CaseContext, config: PipelineConfig) -> None:
    """Score the prediction against the reference with :mod:`medseg.evaluation`.

    Semantic: Dice, HD95, ASSD and NSD (2 mm) per structure, surface metrics in mm from the
    image spacing (DeepMind definitions). Instance: F1 at IoU 0.5, mean accuracy over IoU
    0.50:0.95 (the DSB2018 score) and panoptic quality. Vessel: F1, AUC-ROC (from the
    trained model's probabilities), sensitivity, specificity, accuracy and clDice inside
    the case's ``roi`` mask (field of view). All go to ``metrics.json``; the
    headline ones are returned for tracking. Infinite distances (one mask empty) are kept
    in the JSON and left out of the tracked numbers.
    """
    if context.prediction is None or context.reference is None:
        raise InputError(
            "evaluate needs a prediction and a reference label", case_id=context.case.id
        )
    predicted = context.prediction.array
    reference = context.reference.array
    details: dict[str, object] = {}
    metrics: dict[str, float] = {}
    if config.evaluate.kind is EvaluationKind.VESSEL:
        image = context.image if context.image is not None else context.prediction
        fov = read_field_of_view(context.case, root=context.root, image=image)
        vessel = compute_case_vessel_metrics(
            context.prediction,
            context.reference,
            image=image,
            fov=fov,
            probabilities=context.probabilities,
        )
        details = {"vessel": vessel, "fov": context.case.roi is not None}
        metrics = {name: vessel[name] for name in VESSEL_LOGGED if np.isfinite(vessel[name])}
    elif config.evaluate.kind is EvaluationKind.INSTANCE:
        result = compute_instance_metrics(predicted, reference).to_dict()
        details = {"instances": result, "empty": None}
        metrics = {name: result[name] for name in _INSTANCE_LOGGED}
        metrics["count_error"] = result["n_pred"] - result["n_ref"]
    else:
        spatial = context.image.spatial_shape if context.image is not None else predicted.shape
        spacing = context.reference.spacing_mm[: len(spatial)]
        if config.evaluate.regions is not None:
            by_name = compute_region_metrics(
                predicted, reference, regions=config.evaluate.regions, spacing_mm=spacing
            )
        else:
            ids = label_ids_for(_evaluated_structures(config, context.labels), context.labels)
            per_label = compute_label_metrics(
                predicted, reference, labels=ids.values(), spacing_mm=spacing
            )
            by_name = {name: per_label[label_id] for name, label_id in ids.items()}
        for name, result in by_name.items():
            details[name] = {**result.to_dict(), "empty": result.empty.value}
            for metric in _SEMANTIC_LOGGED:
                value = result.to_dict()[metric]
                if np.isfinite(value):
                    metrics[f"{metric}_{name}"] = value
    for name, entry in context.qc.items():
        metrics[f"qc_flags_{name}"] = float(len(entry["flags"]))  # type: ignore[arg-type]
        if entry.get("mean_confidence") is not None:
            metrics[f"mean_confidence_{name}"] = float(entry["mean_confidence"])  # type: ignore[arg-type]
    for name in context.absent:
        metrics[f"absent_{name}"] = 1.0
    context.metrics = metrics
    path = context.out_dir / "metrics.json"
    document: dict[str, object] = {"case": context.case.id, "metrics": details}
    if context.absent:
        document["absent"] = list(context.absent)
    if context.qc:
        document["qc"] = context.qc
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
    context.outputs.append(path.name)


def export(context: CaseContext, config: PipelineConfig) -> None:
    """Write the label map (NIfTI, the image's geometry) and a PNG overlay of a key slice.

    Volumes from a DICOM series are written in dcm2niix's array order
    (:func:`medseg.io.to_output_layout`), so the mask overlays dcm2niix's conversion of
    the series and TotalSegmentator's masks voxel for voxel.
    """
    if context.prediction is None or context.image is None:
        raise InputError("export needs a prediction", case_id=context.case.id)
    if config.export.image_nifti:
        path = context.out_dir / "image.nii.gz"
        write_nifti(to_output_layout(context.image), path, overwrite=True)
        context.outputs.append(path.name)
    if config.export.mask_nifti:
        path = context.out_dir / "mask.nii.gz"
        entries = _sidecar_entries(context)
        write_label_map(
            context.prediction, path, entries=entries, source=context.image, overwrite=True
        )
        context.outputs.append(path.name)
        if entries is not None:
            context.outputs.append(label_sidecar_path(path).name)
    if context.confidence is not None and config.export.confidence_nifti:
        for path in write_confidence_maps(
            context.confidence, context.prediction, context.out_dir, overwrite=True
        ):
            context.outputs.append(path.name)
    source = context.root / context.case.image
    if (
        context.confidence is not None
        and context.confidence.structure_ids
        and config.export.confidence_seg
        and source.is_dir()  # a DICOM series
    ):
        path = write_confidence_seg(
            context.confidence,
            _source_series(context),
            context.out_dir / CONFIDENCE_SEG_NAME,
            names={**context.labels, **context.structures},
            code_map=_structure_codes(context.root),
            model_name=config.segment.method.value,
            overwrite=True,
        )
        context.outputs.append(path.name)
    if config.export.overlay_png:
        path = write_case_overlay(
            case_id=context.case.id,
            image=context.image,
            prediction=context.prediction,
            reference=context.reference,
            labels=context.labels,
            config=config,
            root=context.root,
            path=context.out_dir / "overlay.png",
        )
        context.outputs.append(path.name)
    if config.export.dicom_seg:
        _export_dicom_seg(context)


def _export_dicom_seg(context: CaseContext) -> None:
    """``seg.dcm`` referencing the case's DICOM series (one segment per label value, named
    by the segmenter, else by the dataset), plus the series with any completed UIDs."""
    source = context.root / context.case.image
    if not source.is_dir():
        logger.info("case %s: no DICOM SEG: its image is not a DICOM series", context.case.id)
        return
    if context.kind is not MapKind.SEMANTIC or context.prediction is None:
        logger.warning("case %s: no DICOM SEG for an instance map", context.case.id)
        return
    values = [int(v) for v in np.unique(context.prediction.array) if v != 0]
    if not values:
        logger.warning("case %s: no DICOM SEG: the label map is empty", context.case.id)
        return
    series = _source_series(context)
    names = {**context.labels, **context.structures}
    codes = context.root / "configs" / "export" / "structure_codes.yaml"
    code_map = load_structure_codes(codes if codes.is_file() else None)
    structures = build_structures(values, names=names, code_map=code_map)
    path = context.out_dir / "seg.dcm"
    write_dicom_seg(context.prediction, series, structures, path, overwrite=True)
    context.outputs.append(path.name)


def _source_series(context: CaseContext) -> SourceSeries:
    """The case's DICOM series, read once per case for every export that references it;
    blank UIDs are completed (the same ones for the SEG and the confidence SEG) and the
    completed series is written once to ``source_dicom/`` so the exports resolve."""
    if context.source_series is None:
        series = read_source_series(context.root / context.case.image, complete_uids=True)
        context.source_series = series
        if series.completed:
            folder = context.out_dir / "source_dicom"
            write_source_series(series, folder, overwrite=True)
            context.outputs.append(folder.name)
    return context.source_series


def _sidecar_entries(context: CaseContext) -> list[dict[str, object]] | None:
    """Label sidecar entries of the prediction: the structures the segmenter claims (else
    the values present), named from the dataset, coded from the export code map; None for
    instance maps (their values are object ids, not structures)."""
    prediction = context.prediction
    if prediction is None or context.kind is MapKind.INSTANCE:
        return None
    if not np.issubdtype(prediction.array.dtype, np.integer):
        return None
    structures = dict(context.structures)
    if not structures:
        values = np.unique(prediction.array)
        structures = {
            int(v): context.labels.get(int(v), f"label_{int(v)}") for v in values if v > 0
        }
    codes_path = context.root / "configs" / "export" / "structure_codes.yaml"
    code_map = load_structure_codes(codes_path) if codes_path.is_file() else None
    entries = describe_labels(structures, code_map=code_map)
    for entry in entries:
        if entry.get("name") in context.absent:
            entry["absent"] = True  # outside the field of view: requested, not drawn
    return entries


def _structure_codes(root: Path):  # type: ignore[no-untyped-def]
    """The repository's SNOMED CT code map (``configs/export/structure_codes.yaml``)."""
    path = root / "configs" / "export" / "structure_codes.yaml"
    return load_structure_codes(path if path.is_file() else None)


def run_stages(context: CaseContext, config: PipelineConfig) -> None:
    """Run the pipeline's stages, in order, on one case."""
    for stage in config.stages:
        if stage is StageName.INGEST:
            ingest(context)
        elif stage is StageName.SEGMENT:
            segment(context, config)
        elif stage is StageName.EVALUATE:
            evaluate(context, config)
        elif stage is StageName.EXPORT:
            export(context, config)
