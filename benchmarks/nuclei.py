"""Nuclei instance segmentation on the DSB2018 test images: trained model vs baselines.

Runs, side by side on the same images and scored by the same code
(``medseg.evaluation.compute_instance_metrics``):

- ``unet``: a 3-class U-Net instance model (default the shipped ``nuclei``) + its watershed;
- ``watershed``: the classical Otsu + distance-transform watershed baseline
  (``pipelines/cell_nuclei_watershed.yaml`` settings);
- ``sam_auto``: LiteMedSAM automatic mode (``configs/sam/auto_cells.yaml``);
- ``--pred-dir NAME=DIR``: instance maps another tool wrote (``DIR/<image stem>.tif``), e.g.
  the Cellpose peer (``benchmarks/cellpose/train_cellpose.py``).

Prints, per method and overall / per image kind (fluo, histo, bright):

1. scores: F1 at IoU 0.5 **pooled** (TP, FP, FN summed over the images, as StarDist's
   ``matching_dataset``) and the **mean of per-image F1**, the DSB2018 score (mean over images
   of the mean TP/(TP+FP+FN) over IoU 0.50:0.95), PQ (mean over images), mean signed and
   absolute count error (predicted − reference nuclei per image) and seconds per image;
2. failures (``medseg.evaluation.compute_instance_errors``, summed over the images): missed
   reference nuclei lost to merges, splits, misses or a poor outline; false detections that
   are fragments, merges or spurious; recall at IoU 0.5 per reference nucleus size class.

    PYTHONPATH=. python benchmarks/nuclei.py [--methods unet watershed sam_auto]
        [--model nuclei] [--tta] [--split test] [--cases ID ...] [--json OUT.json]
        [--manifest data_manifests/cells_dsb2018_full.yaml --split validation]
        [--pred-dir cellpose=runs/cellpose/test_masks]
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
from medseg.evaluation import InstanceErrors, compute_instance_errors, compute_instance_metrics
from medseg.inference import predict_with_checkpoint, resolve_infer_config
from medseg.io import Split, Volume, load_manifest, read_image
from medseg.models import load_checkpoint, resolve_model_path
from medseg.runner import WatershedConfig, segment_nuclei_watershed
from medseg.sam import SamSegmentConfig, load_sam_model

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("fluo", "histo", "bright")


def _reader(folder: Path) -> Callable[[Volume, str], np.ndarray]:
    def read(_: Volume, stem: str) -> np.ndarray:
        return np.asarray(read_image(folder / f"{stem}.tif").array)[:, :, 0]

    return read


def _segmenters(
    methods: list[str], model: str, *, tta: bool | None
) -> dict[str, Callable[[Volume], np.ndarray]]:
    segmenters: dict[str, Callable[[Volume], np.ndarray]] = {}
    if "unet" in methods:
        checkpoint = load_checkpoint(resolve_model_path(model))
        # the model's own defaults (the shipped nuclei model: mirror TTA) unless --[no-]tta
        settings: dict[str, object] = {"device": "auto"}
        if tta is not None:
            settings["mirror"] = tta
        infer = resolve_infer_config(checkpoint, settings)

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
    fp = sum(float(r["fp_50"]) for r in rows)
    fn = sum(float(r["fn_50"]) for r in rows)
    return {
        "images": len(rows),
        "f1_50_pooled": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
        "f1_50_mean": mean("f1_50"),
        "tp_50": tp,
        "fp_50": fp,
        "fn_50": fn,
        "accuracy_50_pooled": tp / (tp + fp + fn) if tp + fp + fn else float("nan"),
        "dsb_score": mean("dsb_score"),
        "pq_50": mean("pq_50"),
        "count_error": mean("count_error"),
        "abs_count_error": statistics.fmean(abs(float(r["count_error"])) for r in rows),
        "seconds": mean("seconds"),
        "cpu_seconds": mean("cpu_seconds"),
        "total_seconds": sum(float(r["seconds"]) for r in rows),
        "total_cpu_seconds": sum(float(r["cpu_seconds"]) for r in rows),
    }


def _error_cells(errors: InstanceErrors) -> str:
    recall = " / ".join(
        f"{value:.2f} ({n})" if n else "–"
        for value, (n, _) in zip(
            errors.recall_by_size().values(), errors.by_size.values(), strict=True
        )
    )
    return (
        f"{errors.fn_merged} | {errors.fn_split} | {errors.fn_missed} | {errors.fn_misshapen} | "
        f"{errors.fp_fragment} | {errors.fp_merge} | {errors.fp_spurious} | {errors.fp_other} | "
        f"{recall}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=["unet", "watershed", "sam_auto"])
    parser.add_argument("--model", default="nuclei", help="checkpoint, run folder or name")
    parser.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mirror TTA for the U-Net (default: the model's own setting)",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--cases", nargs="*", help="case ids (default: the whole split)")
    parser.add_argument("--json", type=Path, help="also write per-image rows and summaries")
    parser.add_argument("--manifest", type=Path, default=ROOT / "data_manifests/cells_dsb2018.yaml")
    parser.add_argument(
        "--pred-dir",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="score instance maps DIR/<image stem>.tif under the name NAME (repeatable)",
    )
    args = parser.parse_args()

    manifest = load_manifest(args.manifest)
    root = args.manifest.resolve().parent.parent
    cases = [c for c in manifest.cases if c.split is Split(args.split)]
    if args.cases:
        cases = [c for c in cases if c.id in set(args.cases)]
    segmenters = _segmenters(args.methods, args.model, tta=args.tta)
    external = {}
    for item in args.pred_dir:
        name, _, folder = item.partition("=")
        if not folder:
            raise SystemExit(f"--pred-dir must be NAME=DIR, not {item!r}")
        external[name] = _reader(Path(folder))
    rows: dict[str, list[dict[str, float | str]]] = {name: [] for name in [*segmenters, *external]}
    errors: dict[tuple[str, str], InstanceErrors] = {}
    for case in cases:
        image = read_image(root / case.image)
        reference = np.asarray(read_image(root / case.label).array)[:, :, 0]
        kind = (case.modality or "").removeprefix("microscopy_")
        stem = Path(case.image).stem
        methods: dict[str, Callable[[Volume], np.ndarray]] = dict(segmenters)
        for name, read in external.items():
            methods[name] = lambda volume, read=read, stem=stem: read(volume, stem)
        for name, segment in methods.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            prediction = segment(image)
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu_started
            metrics = compute_instance_metrics(prediction, reference)
            case_errors = compute_instance_errors(prediction, reference)
            for group in ("all", kind):
                errors[name, group] = errors.get((name, group), InstanceErrors()) + case_errors
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
                "cpu_seconds": cpu_seconds,
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
        "| method | images | F1@0.5 pooled (TP/FP/FN) | F1@0.5 mean per image | DSB score "
        "| PQ | count error (mean / mean abs) | s/image (CPU s) |"
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
                f"| {name} ({group}) | {s['images']} | {s['f1_50_pooled']:.3f} "
                f"({s['tp_50']:.0f}/{s['fp_50']:.0f}/{s['fn_50']:.0f}) | {s['f1_50_mean']:.3f} | "
                f"{s['dsb_score']:.3f} | {s['pq_50']:.3f} | "
                f"{s['count_error']:+.1f} / {s['abs_count_error']:.1f} | {s['seconds']:.2f} "
                f"({s['cpu_seconds']:.2f}) |"
            )
    sizes = " / ".join(next(iter(errors.values())).by_size) if errors else ""
    print()
    print(
        "| method | FN merged | FN split | FN missed | FN misshapen | FP fragment | FP merge "
        f"| FP spurious | FP other | recall@0.5 by nucleus area ({sizes}) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in rows:
        for group in ("all", *KINDS):
            if (name, group) in errors:
                print(f"| {name} ({group}) | {_error_cells(errors[name, group])} |")
    if args.json:
        failures = {
            f"{name} ({group})": {**vars(e), "recall_by_size": e.recall_by_size()}
            for (name, group), e in errors.items()
        }
        document = {"rows": rows, "summaries": summaries, "failures": failures}
        args.json.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
