"""Does LiteMedSAM refine the brain-tumour model's proposal? (issue 18: "measure it")

For each cross-validation fold of ``benchmarks/brain_tumour.py cv`` (each fold's checkpoint
predicts the case it never saw), three label maps of the held-out case are scored by
medseg's metric engine (BraTS regions WT 1-4, TC 1/3/4, ET 4; Dice and HD95 on the 1 mm grid):

- ``model``: the fold model alone, the shipped decision (nested regions, no TTA, largest
  component);
- ``sam_subregions``: LiteMedSAM 3D propagation on FLAIR from the box of the model's whole
  tumour (``pipelines/tumour_sam_box.yaml``'s settings, no box jitter), sub-regions by its
  T1c intensity rules: the box path with the model's box in place of the reference's;
- ``sam_wt_model_subregions``: SAM's whole tumour, inside it the model's sub-regions, SAM
  voxels the model called background become oedema (2).

    PYTHONPATH=. python benchmarks/brain_tumour_sam_refine.py --run runs/brain_tumour_cv
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from brain_tumour import BRATS_REGIONS, CASE_IDS, DATA, ROOT, case_dir, channel_case, score

from medseg.core import load_config
from medseg.inference import (
    InferConfig,
    decide_nested_regions,
    keep_largest_foreground,
    predict_channel_volume,
)
from medseg.io import read_channels, read_image
from medseg.models import load_checkpoint
from medseg.runner import PipelineConfig
from medseg.segment import CaseImages, SamBox3DConfig, build_segmenter

LABELS = {1: "necrotic_core", 2: "oedema", 4: "enhancing_tumour"}


def sam_config() -> SamBox3DConfig:
    """The box pipeline's SAM settings, prompted from the given label map without jitter."""
    pipeline = load_config(ROOT / "pipelines" / "tumour_sam_box.yaml", PipelineConfig)
    config = pipeline.segment.settings()
    assert isinstance(config, SamBox3DConfig)
    return config.model_copy(update={"box_jitter_fraction": 0.0})


def refine_fold(fold: int, run: Path, data: Path) -> dict:
    """Score the model alone and the two SAM refinements on the fold's held-out case."""
    case_id = CASE_IDS[fold - 1]
    checkpoint = load_checkpoint(run / f"fold{fold}" / "checkpoint.pt")
    case = channel_case(case_id, data)
    volume = read_channels(case.channels, expected=checkpoint.plans.image_keys)
    reference = np.rint(np.asarray(read_image(case.label).array)).astype(np.uint8)
    prediction = predict_channel_volume(
        checkpoint,
        volume,
        config=InferConfig(mirror=False, precision="bf16", save_probabilities=True),
        largest_component=False,
        case_id=case_id,
    )
    probabilities = np.asarray(prediction.probabilities.array)
    model_labels = keep_largest_foreground(decide_nested_regions(probabilities, BRATS_REGIONS))
    flair = read_image(case.channels["flair"])
    images = CaseImages(
        case_id=case_id,
        image=flair,
        root=ROOT,
        labels=LABELS,
        channels={"t1c": read_image(case.channels["t1c"])},
        reference=flair.with_array(model_labels.astype(np.uint8)),
        roi=read_image(case_dir(case_id, data) / "brainmask.nii.gz"),
        modality="MR",
    )
    started = time.perf_counter()
    sam_labels = np.asarray(
        build_segmenter("sam_box_3d", sam_config()).segment(images).labels.array
    )
    sam_seconds = time.perf_counter() - started
    sam_wt = sam_labels > 0
    combined = np.where(sam_wt, np.where(model_labels > 0, model_labels, 2), 0).astype(np.uint8)
    return {
        "fold": fold,
        "held_out": case_id,
        "sam_seconds": round(sam_seconds, 1),
        "model": score(model_labels, reference),
        "sam_subregions": score(sam_labels, reference),
        "sam_wt_model_subregions": score(combined, reference),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/brain_tumour_cv"))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--json", type=Path, help="write the per-fold records here")
    args = parser.parse_args()
    records = [refine_fold(fold, args.run, args.data) for fold in args.folds]
    variants = ("model", "sam_subregions", "sam_wt_model_subregions")
    print("| fold (held out) | " + " | ".join(f"{v} WT / TC / ET" for v in variants) + " |")
    print("|---|" + "---|" * len(variants))
    for r in records:
        cells = [" / ".join(f"{r[v][k]['dice']:.3f}" for k in ("WT", "TC", "ET")) for v in variants]
        print(f"| {r['fold']} ({r['held_out']}) | " + " | ".join(cells) + " |")
    means = [
        " / ".join(f"{np.mean([r[v][k]['dice'] for r in records]):.3f}" for k in ("WT", "TC", "ET"))
        for v in variants
    ]
    print("| **mean** | " + " | ".join(means) + " |")
    print("SAM seconds per case:", [r["sam_seconds"] for r in records])
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
