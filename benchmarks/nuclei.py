"""Nuclei instance segmentation on the DSB2018 test images: trained model vs baselines.

Runs, side by side on the same images and scored by the same code
(``medseg.evaluation.compute_instance_metrics``):

- ``unet``: a 3-class U-Net instance model (default the shipped ``nuclei``) + its watershed;
- ``watershed``: the classical Otsu + distance-transform watershed baseline
  (``pipelines/cell_nuclei_watershed.yaml`` settings);
- ``sam_auto``: LiteMedSAM automatic mode (``configs/sam/auto_cells.yaml``).

Prints, per method and overall / per image kind (fluo, histo, bright): F1 at IoU 0.5,
TP/(TP+FP+FN) at IoU 0.5 pooled over the images (StarDist's "accuracy" as its
``matching_dataset`` computes it), the DSB2018 score (mean of TP/(TP+FP+FN) over IoU
0.50:0.95), PQ, mean signed and absolute count error (predicted − reference nuclei per image)
and seconds per image. Except the pooled accuracy, figures are means over images (each image
weighs the same, as in DSB2018's score).

    PYTHONPATH=. python benchmarks/nuclei.py [--methods unet watershed sam_auto]
        [--model nuclei] [--tta] [--split test] [--cases ID ...] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medseg.core import load_config
from medseg.evaluation import compute_instance_metrics
from medseg.inference import InferConfig, predict_with_checkpoint
from medseg.io import Split, Volume, load_manifest, read_image
from medseg.models import load_checkpoint, resolve_model_path
from medseg.runner import WatershedConfig, segment_nuclei_watershed
from medseg.sam import SamSegmentConfig, load_sam_model

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("fluo", "histo", "bright")


def _segmenters(
    methods: list[str], model: str, *, tta: bool
) -> dict[str, Callable[[Volume], np.ndarray]]:
    segmenters: dict[str, Callable[[Volume], np.ndarray]] = {}
    if "unet" in methods:
        checkpoint = load_checkpoint(resolve_model_path(model))
        infer = InferConfig(device="auto", mirror=tta)

        def unet(volume: Volume) -> np.ndarray:
            return predict_with_checkpoint(checkpoint, volume, config=infer).labels.array[:, :, 0]

        segmenters["unet"] = unet
    if "watershed" in methods:
        settings = WatershedConfig(smoothing_sigma_px=1.0, min_distance_px=4, min_size_px=15)

        def watershed(volume: Volume) -> np.ndarray:
            return segment_nuclei_watershed(volume, config=settings).array[:, :, 0]

        segmenters["watershed"] = watershed
    if "sam_auto" in methods:
        from medseg.sam import segment_automatically

        config = load_config(ROOT / "configs/sam/auto_cells.yaml", SamSegmentConfig)
        sam = load_sam_model(config.model, checkpoint=config.checkpoint, device=config.device)

        def sam_auto(volume: Volume) -> np.ndarray:
            return segment_automatically(sam, volume, config).array[:, :, 0]

        segmenters["sam_auto"] = sam_auto
    return segmenters


def _summarise(rows: list[dict[str, float | str]]) -> dict[str, float]:
    def mean(key: str) -> float:
        return statistics.fmean(float(r[key]) for r in rows)

    tp = sum(float(r["tp_50"]) for r in rows)
    errors = sum(float(r["fp_50"]) + float(r["fn_50"]) for r in rows)
    return {
        "images": len(rows),
        "f1_50": mean("f1_50"),
        "accuracy_50_pooled": tp / (tp + errors) if tp + errors else float("nan"),
        "dsb_score": mean("dsb_score"),
        "pq_50": mean("pq_50"),
        "count_error": mean("count_error"),
        "abs_count_error": statistics.fmean(abs(float(r["count_error"])) for r in rows),
        "seconds": mean("seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=["unet", "watershed", "sam_auto"])
    parser.add_argument("--model", default="nuclei", help="checkpoint, run folder or name")
    parser.add_argument("--tta", action="store_true", help="mirror TTA for the U-Net")
    parser.add_argument("--split", default="test")
    parser.add_argument("--cases", nargs="*", help="case ids (default: the whole split)")
    parser.add_argument("--json", type=Path, help="also write per-image rows and summaries")
    args = parser.parse_args()

    manifest = load_manifest(ROOT / "data_manifests/cells_dsb2018.yaml")
    cases = [c for c in manifest.cases if c.split is Split(args.split)]
    if args.cases:
        cases = [c for c in cases if c.id in set(args.cases)]
    segmenters = _segmenters(args.methods, args.model, tta=args.tta)
    rows: dict[str, list[dict[str, float | str]]] = {name: [] for name in segmenters}
    for case in cases:
        image = read_image(ROOT / case.image)
        reference = np.asarray(read_image(ROOT / case.label).array)[:, :, 0]
        kind = (case.modality or "").removeprefix("microscopy_")
        for name, segment in segmenters.items():
            started = time.perf_counter()
            prediction = segment(image)
            seconds = time.perf_counter() - started
            metrics = compute_instance_metrics(prediction, reference)
            row: dict[str, float | str] = {
                "case": case.id,
                "kind": kind,
                "f1_50": metrics.at(0.5).f1,
                "tp_50": metrics.at(0.5).tp,
                "fp_50": metrics.at(0.5).fp,
                "fn_50": metrics.at(0.5).fn,
                "dsb_score": metrics.mean_accuracy_50_95,
                "pq_50": metrics.at(0.5).pq,
                "count_error": metrics.n_pred - metrics.n_ref,
                "n_ref": metrics.n_ref,
                "seconds": seconds,
            }
            rows[name].append(row)
            print(
                f"{case.id} {kind:6s} {name:9s} F1 {row['f1_50']:.3f} DSB {row['dsb_score']:.3f} "
                f"PQ {row['pq_50']:.3f} found {metrics.n_pred}/{metrics.n_ref} ({seconds:.1f} s)",
                flush=True,
            )
    summaries: dict[str, dict[str, dict[str, float]]] = {}
    print()
    print(
        "| method | images | F1@0.5 | acc@0.5 pooled | DSB score | PQ "
        "| count error (mean / mean abs) | s/image |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, method_rows in rows.items():
        summaries[name] = {}
        groups = [("all", method_rows)] + [
            (kind, [r for r in method_rows if r["kind"] == kind]) for kind in KINDS
        ]
        for group, group_rows in groups:
            if not group_rows:
                continue
            s = _summarise(group_rows)
            summaries[name][group] = s
            print(
                f"| {name} ({group}) | {s['images']} | {s['f1_50']:.3f} | "
                f"{s['accuracy_50_pooled']:.3f} | {s['dsb_score']:.3f} | "
                f"{s['pq_50']:.3f} | {s['count_error']:+.1f} / {s['abs_count_error']:.1f} | "
                f"{s['seconds']:.2f} |"
            )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summaries": summaries}, indent=2))


if __name__ == "__main__":
    main()
