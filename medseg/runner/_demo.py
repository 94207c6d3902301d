"""The walking skeleton: one real CT series → LiteMedSAM liver → Dice → MLflow → NIfTI + PNG.

Prompts are boxes taken from the reference label on every slice that contains the
structure (MedSAM's standard evaluation protocol), so the Dice measures how well the model
delineates a structure it was pointed at, not detection.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from medseg import __version__
from medseg.core import (
    ConfigError,
    ConfigModel,
    InputError,
    OutputExistsError,
    atomic_output,
    compute_sha256,
    dump_config,
    progress,
)
from medseg.evaluation import compute_dice
from medseg.export import write_contour_overlay
from medseg.inference import Precision, embed_image, predict_box_logits
from medseg.io import (
    axis_codes,
    load_manifest,
    read_dicom_series,
    read_nifti,
    reorient,
    reorient_like,
    write_nifti,
)
from medseg.models import load_sam_model
from medseg.tracking import default_tracking_uri, start_tracking
from medseg.transforms import CTWindow, apply_window, from_display_slice, to_display_slice

logger = logging.getLogger(__name__)

#: Working orientation for 2D prompting: LPS axes, so (i, j) slices transpose to the
#: radiological display (row 0 anterior, column 0 patient right).
_DISPLAY_CODES = "LPS"


class SamStageConfig(ConfigModel):
    """How LiteMedSAM is run in the demo."""

    model: str = "litemedsam"
    checkpoint: str | None = None
    device: str = "auto"
    precision: Precision = Precision.FP32
    window: CTWindow = CTWindow.ABDOMEN
    box_margin_px: int = Field(default=5, ge=0, le=100)


class TrackingConfig(ConfigModel):
    """Where the run is tracked; ``tracking_uri: null`` means ``sqlite:///<out>/mlflow.db``."""

    tracking_uri: str | None = None
    experiment: str = "medseg-demo"


class DemoConfig(ConfigModel):
    """The demo pipeline: dataset manifest, case, structure, model and tracking."""

    dataset: str = "data_manifests/ct_totalsegmentator.yaml"
    case: str = "ct_dicom_01"
    structure: str = "liver"
    sam: SamStageConfig = SamStageConfig()
    tracking: TrackingConfig = TrackingConfig()


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced."""

    dice: float
    n_prompted_slices: int
    seconds: float
    image_path: Path
    mask_path: Path
    overlay_path: Path
    metrics_path: Path
    config_path: Path
    tracking_uri: str
    run_id: str


def _box_from_mask(mask: np.ndarray, *, margin_px: int) -> tuple[float, float, float, float]:
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (
        float(max(columns[0] - margin_px, 0)),
        float(max(rows[0] - margin_px, 0)),
        float(min(columns[-1] + margin_px, width - 1)),
        float(min(rows[-1] + margin_px, height - 1)),
    )


def _label_id(labels: dict[int, str], structure: str, manifest_path: Path) -> int:
    for label_id, name in labels.items():
        if name == structure:
            return label_id
    raise ConfigError(f"structure {structure!r} is not a label of the dataset", path=manifest_path)


def run_demo(
    config: DemoConfig, *, repo_root: Path, out_dir: Path, overwrite: bool = False
) -> DemoResult:
    """Run the demo on the bundled case and write its outputs under ``out_dir``."""
    started = time.perf_counter()
    manifest_path = repo_root / config.dataset
    manifest = load_manifest(manifest_path)
    try:
        case = manifest.case(config.case)
    except KeyError as err:
        raise ConfigError(
            f"case {config.case!r} is not in the dataset", path=manifest_path
        ) from err
    if case.label is None:
        raise InputError(
            "case has no reference label to prompt from and score against",
            path=manifest_path,
            case_id=case.id,
        )
    label_id = _label_id(manifest.labels, config.structure, manifest_path)

    out_dir.mkdir(parents=True, exist_ok=True)
    image_path = out_dir / "image.nii.gz"
    mask_path = out_dir / f"{config.structure}_mask.nii.gz"
    overlay_path = out_dir / f"{config.structure}_overlay.png"
    metrics_path = out_dir / "metrics.json"
    config_path = out_dir / "config.yaml"
    for path in (image_path, mask_path, overlay_path, metrics_path, config_path):
        if path.exists() and not overwrite:
            raise OutputExistsError(
                "output already exists; pass --overwrite to replace it", path=path
            )

    image = read_dicom_series(repo_root / case.image)
    reference = reorient_like(read_nifti(repo_root / case.label), image, what="reference label")
    image_lps = reorient(image, _DISPLAY_CODES)
    reference_lps = reorient(reference, _DISPLAY_CODES).array == label_id
    level, width = config.sam.window.level_width_hu

    model = load_sam_model(
        config.sam.model, checkpoint=config.sam.checkpoint, device=config.sam.device
    )
    prediction_lps = np.zeros(image_lps.spatial_shape, dtype=bool)
    prompted = [k for k in range(image_lps.spatial_shape[2]) if reference_lps[:, :, k].any()]
    for k in progress(prompted, description=f"LiteMedSAM {config.structure}", unit="slice"):
        display = apply_window(
            to_display_slice(image_lps.array[:, :, k]), level_hu=level, width_hu=width
        )
        box = _box_from_mask(
            to_display_slice(reference_lps[:, :, k]), margin_px=config.sam.box_margin_px
        )
        embedding = embed_image(model, display, precision=config.sam.precision)
        logits = predict_box_logits(model, embedding, box)
        prediction_lps[:, :, k] = from_display_slice(logits > 0.0)

    dice = compute_dice(prediction_lps, reference_lps)
    prediction = reorient(image_lps.with_array(prediction_lps.astype(np.uint8)), axis_codes(image))
    write_nifti(image, image_path, overwrite=overwrite)
    write_nifti(prediction, mask_path, overwrite=overwrite)

    key_slice = max(prompted, key=lambda k: int(reference_lps[:, :, k].sum())) if prompted else 0
    write_contour_overlay(
        apply_window(
            to_display_slice(image_lps.array[:, :, key_slice]), level_hu=level, width_hu=width
        ),
        [
            (
                f"LiteMedSAM {config.structure}",
                to_display_slice(prediction_lps[:, :, key_slice]),
                "tab:red",
            ),
            (
                "reference (TotalSegmentator)",
                to_display_slice(reference_lps[:, :, key_slice]),
                "tab:green",
            ),
        ],
        overlay_path,
        title=f"{case.id} slice {key_slice}: Dice {dice:.3f}",
        overwrite=overwrite,
    )
    seconds = time.perf_counter() - started
    metrics = {
        "case": case.id,
        "structure": config.structure,
        "dice": dice,
        "prompted_slices": len(prompted),
        "seconds": round(seconds, 2),
    }
    with atomic_output(metrics_path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    with atomic_output(config_path, overwrite=overwrite) as tmp:
        tmp.write_text(dump_config(config), encoding="utf-8")

    tracking_uri = config.tracking.tracking_uri or default_tracking_uri(out_dir)
    with start_tracking(
        tracking_uri=tracking_uri,
        experiment=config.tracking.experiment,
        run_name=f"demo-{case.id}-{config.structure}",
        artifact_location=out_dir / "mlartifacts",
    ) as tracker:
        tracker.log_params(
            {
                "model": config.sam.model,
                "precision": config.sam.precision.value,
                "window": config.sam.window.value,
                "box_margin_px": config.sam.box_margin_px,
                "prompt": "reference box per slice",
                "dataset": manifest.name,
                "dataset_manifest_sha256": compute_sha256(manifest_path)[:16],
                "case": case.id,
                "structure": config.structure,
                "medseg_version": __version__,
            }
        )
        tracker.set_tags({"task": "demo", "reference_standard": manifest.reference_standard.value})
        tracker.log_metrics(
            {"dice": dice, "prompted_slices": float(len(prompted)), "seconds": seconds}
        )
        for path in (mask_path, overlay_path, metrics_path, config_path):
            tracker.log_artifact(path)
        run_id = tracker.run_id
    logger.info("demo finished in %.1f s", seconds)
    return DemoResult(
        dice=dice,
        n_prompted_slices=len(prompted),
        seconds=seconds,
        image_path=image_path,
        mask_path=mask_path,
        overlay_path=overlay_path,
        metrics_path=metrics_path,
        config_path=config_path,
        tracking_uri=tracking_uri,
        run_id=run_id,
    )
