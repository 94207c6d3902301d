"""A review package: everything a radiologist needs to review one case, with checksums."""

from __future__ import annotations

import datetime
import json
import logging
import math
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg import __version__
from medseg.core import ExportError, OutputExistsError, OutputPathError, compute_sha256
from medseg.evaluation import compute_dice
from medseg.export._confidence import CONFIDENCE_SEG_NAME, write_confidence_seg
from medseg.export._overlay import describe_structures, write_volume_overlay
from medseg.export._rtstruct import write_rtstruct
from medseg.export._seg import SegmentationType, write_dicom_seg
from medseg.export._series import SourceSeries, map_mask_to_series, write_source_series
from medseg.export._slicer import write_color_table, write_label_nifti, write_seg_nrrd
from medseg.export._structures import Structure
from medseg.export._validate import validate_dicom_iod
from medseg.io import Volume
from medseg.segment import Confidence

logger = logging.getLogger(__name__)

#: File names inside a review package.
SEG_NAME = "segmentation_seg.dcm"
RTSTRUCT_NAME = "segmentation_rtstruct.dcm"
NIFTI_NAME = "labels.nii.gz"
NRRD_NAME = "segmentation.seg.nrrd"
COLOR_TABLE_NAME = "labels.ctbl"
OVERLAY_NAME = "overlay.png"
STRUCTURES_NAME = "structures.json"
METRICS_NAME = "metrics.json"
MANIFEST_NAME = "manifest.json"
SOURCE_FOLDER = "source_dicom"


@dataclass(frozen=True)
class ReviewPackage:
    """Where a review package was written and what its DICOM validation found.

    Attributes
    ----------
    folder
        The package folder.
    files
        Relative path → sha256 of every file in it except ``manifest.json``.
    dciodvfy_errors
        File name → number of dciodvfy errors (absent when dciodvfy is not installed).
    """

    folder: Path
    files: dict[str, str]
    dciodvfy_errors: dict[str, int]


def _structure_table(mask: Volume, structures: Sequence[Structure]) -> list[dict[str, object]]:
    voxel_ml = float(np.prod(mask.spacing_mm)) / 1000.0
    values, counts = np.unique(mask.array, return_counts=True)
    count_of = dict(zip(values.tolist(), counts.tolist(), strict=True))
    rows = []
    for structure in structures:
        n = int(count_of.get(structure.label_value, 0))
        code = structure.code
        rows.append(
            {
                "label_value": structure.label_value,
                "name": structure.name,
                "color_rgb": list(structure.color_rgb),
                "snomed_category": [code.category_code.value, code.category_code.meaning],
                "snomed_type": [code.type_code.value, code.type_code.meaning],
                "snomed_modifier": (
                    [code.modifier_code.value, code.modifier_code.meaning]
                    if code.modifier_code
                    else None
                ),
                "code_from_map": structure.code_matched,
                "n_voxels": n,
                "volume_ml": round(n * voxel_ml, 3),
            }
        )
    return rows


def _dice_table(
    mask: Volume, reference: Volume, structures: Sequence[Structure]
) -> dict[str, object]:
    per_structure = {}
    for structure in structures:
        dice = compute_dice(
            mask.array == structure.label_value, reference.array == structure.label_value
        )
        per_structure[structure.name] = None if math.isnan(dice) else round(dice, 6)
    return {"dice_vs_reference": per_structure}


def _qc_flags(qc: Mapping[str, object] | None) -> dict[str, list[object]] | None:
    """Structure → its raised QC flags (name, value, threshold, reason, slice)."""
    if not qc:
        return None
    flags: dict[str, list[object]] = {}
    for name, entry in qc.items():
        raised = entry.get("flags", []) if isinstance(entry, Mapping) else []
        flags[name] = list(raised)
    return flags


def write_review_package(
    series: SourceSeries,
    mask: Volume,
    structures: Sequence[Structure],
    out_dir: str | Path,
    *,
    reference: Volume | None = None,
    metrics: Mapping[str, object] | None = None,
    model_name: str = "medseg",
    segmentation_type: SegmentationType = SegmentationType.BINARY,
    confidence: Confidence | None = None,
    qc: Mapping[str, object] | None = None,
    validate: bool = True,
    overwrite: bool = False,
) -> ReviewPackage:
    """Write DICOM SEG, RTSTRUCT, NIfTI, ``.seg.nrrd``, colour table, overlay, structure
    table, metrics and a sha256 ``manifest.json`` into ``out_dir``.

    The folder is built beside ``out_dir`` and renamed into place only when complete. If
    the source's UIDs had to be completed (:func:`read_source_series` with
    ``complete_uids``), the completed series is included under ``source_dicom/`` — the SEG
    and RTSTRUCT reference those UIDs, so send that copy to a PACS, not the original.

    Parameters
    ----------
    series
        Source DICOM series.
    mask
        Integer label map on the series' grid up to axis order/flips.
    structures
        One per label value to export.
    reference
        Optional reference label map (same label values) on the same grid: per-structure
        Dice is computed and stored in ``metrics.json``.
    metrics
        Optional precomputed metrics of the case (JSON-serialisable), stored in
        ``metrics.json`` under ``"provided"``.
    confidence
        Optional per-voxel confidence of the segmenter: written as a FRACTIONAL SEG
        (PROBABILITY) ``confidence_seg.dcm`` next to the SEG, validated like it.
    qc
        Optional per-structure QC (:func:`medseg.evaluation.compute_segmentation_qc`, as
        dicts): its flags go into ``manifest.json`` (``qc_flags``) and ``metrics.json``.
    validate
        Run ``dciodvfy`` on the SEG and RTSTRUCT (when installed) and record the counts.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise OutputExistsError(
            "output folder exists; pass --overwrite to replace it", path=out_dir
        )
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file():
        raise OutputPathError(  # --overwrite replaces a review package, never other files
            "output folder is not empty and holds no review package; choose a new folder",
            path=out_dir,
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    mapped = map_mask_to_series(mask, series)
    mapped_reference = map_mask_to_series(reference, series) if reference is not None else None
    staging = Path(tempfile.mkdtemp(prefix=".tmp-review-", dir=out_dir.parent))
    try:
        write_dicom_seg(
            mapped,
            series,
            structures,
            staging / SEG_NAME,
            segmentation_type=segmentation_type,
            model_name=model_name,
        )
        if confidence is not None and confidence.structure_ids:
            write_confidence_seg(
                confidence,
                series,
                staging / CONFIDENCE_SEG_NAME,
                names={s.label_value: s.name for s in structures},
                model_name=model_name,
            )
        write_rtstruct(mapped, series, structures, staging / RTSTRUCT_NAME, model_name=model_name)
        write_label_nifti(mapped, structures, staging / NIFTI_NAME)
        write_seg_nrrd(mapped, structures, staging / NRRD_NAME)
        write_color_table(structures, staging / COLOR_TABLE_NAME)
        write_volume_overlay(
            series.volume,
            mapped,
            structures,
            staging / OVERLAY_NAME,
            reference=mapped_reference,
            title=f"{describe_structures([s.name for s in structures])}: {model_name}",
        )
        (staging / STRUCTURES_NAME).write_text(
            json.dumps(_structure_table(mapped, structures), indent=2) + "\n", encoding="utf-8"
        )
        metrics_out: dict[str, object] = {}
        if mapped_reference is not None:
            metrics_out.update(_dice_table(mapped, mapped_reference, structures))
        if metrics:
            metrics_out["provided"] = dict(metrics)
        if qc:
            metrics_out["qc"] = dict(qc)
        if metrics_out:
            (staging / METRICS_NAME).write_text(
                json.dumps(metrics_out, indent=2, allow_nan=False) + "\n", encoding="utf-8"
            )
        if series.completed:
            write_source_series(series, staging / SOURCE_FOLDER)
        dciodvfy_errors: dict[str, int] = {}
        dciodvfy_warnings: dict[str, list[str]] = {}
        if validate and shutil.which("dciodvfy"):
            to_check = [SEG_NAME, RTSTRUCT_NAME]
            if (staging / CONFIDENCE_SEG_NAME).is_file():
                to_check.append(CONFIDENCE_SEG_NAME)
            if segmentation_type == SegmentationType.LABELMAP:
                # dicom3tools 1.00~20220618 predates the Label Map Segmentation IOD (2024):
                # it reports "Information Object Not found" for any such file.
                to_check.remove(SEG_NAME)
                logger.warning("LABELMAP SEG not checked: dciodvfy does not know its IOD")
            for name in to_check:
                report = validate_dicom_iod(staging / name)
                dciodvfy_errors[name] = len(report.errors)
                dciodvfy_warnings[name] = list(report.warnings)
                if report.errors:
                    logger.warning("dciodvfy: %d error(s) in %s", len(report.errors), name)
        files = {
            p.relative_to(staging).as_posix(): compute_sha256(p)
            for p in sorted(staging.rglob("*"))
            if p.is_file()
        }
        manifest = {
            "generator": f"medseg {__version__}",
            "created_utc": datetime.datetime.now(tz=datetime.timezone.utc).isoformat(),
            "model_name": model_name,
            "segmentation_type": segmentation_type.value,
            "confidence_seg": CONFIDENCE_SEG_NAME
            if (staging / CONFIDENCE_SEG_NAME).is_file()
            else None,
            "qc_flags": _qc_flags(qc),
            "source_uids_completed": list(series.completed),
            "n_source_slices": series.n_slices,
            "dciodvfy_errors": dciodvfy_errors or None,
            "dciodvfy_warnings": dciodvfy_warnings or None,
            "files": [{"path": k, "sha256": v} for k, v in files.items()],
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
        staging.chmod(0o755)
        for item in staging.rglob("*"):  # temp files are created 0600; share like any output
            item.chmod(0o755 if item.is_dir() else 0o644)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if any(dciodvfy_errors.values()):
        raise ExportError(
            f"dciodvfy reports errors in the package ({dciodvfy_errors}); see manifest.json",
            path=out_dir,
        )
    logger.info("review package with %d files", len(files) + 1)
    return ReviewPackage(folder=out_dir, files=files, dciodvfy_errors=dciodvfy_errors)
