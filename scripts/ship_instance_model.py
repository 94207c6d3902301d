"""Choose an instance model's watershed settings on its held-out cases and ship it.

Reads a ``medseg train`` run of an ``instance_boundary`` model, predicts the probabilities of
the validation cases named in its training config (``validation_case_ids`` and
``validation_splits``; never the test split) once, grid-searches the
``medseg.inference.InstanceConfig`` settings on them (criterion: mean DSB2018 score, i.e.
mean of TP/(TP+FP+FN) over IoU 0.50:0.95, ties broken by F1@0.5), and writes
``OUT/checkpoint.pt``: the weights as float16 (half the size; inference computes in float32),
no optimiser state, and the chosen settings stored as the checkpoint's
``instance_postprocess`` (what ``medseg infer --model`` applies).

    PYTHONPATH=. python scripts/ship_instance_model.py --run runs/nuclei \
        --out medseg/models/shipped/nuclei [--tta]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

import numpy as np

from medseg.evaluation import compute_instance_metrics
from medseg.inference import InferConfig, InstanceConfig, label_instances, predict_volume
from medseg.io import load_manifest, read_image
from medseg.models import Checkpoint, load_checkpoint, resolve_model_path, save_checkpoint
from medseg.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

GRID = {
    "foreground_threshold": [0.4, 0.5, 0.6],
    "seed_threshold": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    "min_seed_size_px": [1, 4, 8],
}
#: min_size_px candidates stop at this percentile of the training nuclei's areas: a handful of
#: held-out images (with large nuclei) would otherwise pick a size that deletes the small
#: nuclei of other images (it picked 60 px, the 10th percentile, when allowed)
MIN_SIZE_PERCENTILE = 2.0


def _validation_probabilities(
    checkpoint: Checkpoint, config: TrainConfig, *, mirror: bool
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    manifest = load_manifest(ROOT / config.manifest)
    held_out = set(config.validation_case_ids)
    cases = [
        c
        for c in manifest.cases
        if c.label is not None and (c.id in held_out or c.split in config.validation_splits)
    ]
    network = checkpoint.build(device="cpu")
    infer = InferConfig(save_probabilities=True, mirror=mirror)
    out = []
    for case in cases:
        image = read_image(ROOT / case.image)
        prediction = predict_volume(network, image, plans=checkpoint.plans, config=infer)
        if prediction.probabilities is None:
            raise SystemExit("no probabilities returned")
        probabilities = np.moveaxis(np.asarray(prediction.probabilities.array)[:, :, 0], -1, 0)
        reference = np.asarray(read_image(ROOT / case.label).array)[:, :, 0]
        out.append((case.id, probabilities, reference))
        print(f"predicted {case.id} ({prediction.seconds:.1f} s)", flush=True)
    return out


def _min_size_candidates(config: TrainConfig) -> list[int]:
    manifest = load_manifest(ROOT / config.manifest)
    areas = []
    for case in manifest.cases:
        if case.split in config.train_splits and case.label is not None:
            labels = np.asarray(read_image(ROOT / case.label).array)
            counts = np.bincount(labels.ravel().astype(np.int64))[1:]
            areas.append(counts[counts > 0])
    limit = int(np.percentile(np.concatenate(areas), MIN_SIZE_PERCENTILE))
    return sorted({v for v in (0, 10, 20, 30, 45, 60) if v < limit} | {limit})


def _score(
    items: list[tuple[str, np.ndarray, np.ndarray]], config: InstanceConfig
) -> dict[str, float]:
    metrics = [compute_instance_metrics(label_instances(p, config=config), r) for _, p, r in items]
    return {
        "dsb_score": statistics.fmean(m.mean_accuracy_50_95 for m in metrics),
        "f1_50": statistics.fmean(m.at(0.5).f1 for m in metrics),
        "pq_50": statistics.fmean(m.at(0.5).pq for m in metrics),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="training run folder or checkpoint")
    parser.add_argument("--out", type=Path, required=True, help="shipped model folder")
    parser.add_argument("--tta", action="store_true", help="choose with mirror TTA predictions")
    args = parser.parse_args()

    trained = load_checkpoint(resolve_model_path(args.run))
    if not trained.is_instance_model:
        raise SystemExit("not an instance model (training target instance_boundary)")
    # the shipped weights are float16; settings are chosen with exactly those weights
    checkpoint = Checkpoint(
        network=trained.network,
        plans=trained.plans,
        state_dict={
            k: v.half() if v.is_floating_point() else v for k, v in trained.state_dict.items()
        },
        training_config=trained.training_config,
        target=trained.target,
        epoch=trained.epoch,
        best_metric=trained.best_metric,
    )
    config = TrainConfig.model_validate(checkpoint.training_config)
    items = _validation_probabilities(checkpoint, config, mirror=args.tta)
    default = _score(items, InstanceConfig())
    print(f"defaults {InstanceConfig().model_dump()}: {default}")
    grid = {**GRID, "min_size_px": _min_size_candidates(config)}
    print(f"grid: {grid}")
    results = []
    for values in itertools.product(*grid.values()):
        candidate = InstanceConfig(**dict(zip(grid, values, strict=True)))
        results.append((_score(items, candidate), candidate))
    results.sort(key=lambda r: (r[0]["dsb_score"], r[0]["f1_50"]), reverse=True)
    for scores, candidate in results[:8]:
        print(json.dumps({**candidate.model_dump(), **{k: round(v, 4) for k, v in scores.items()}}))
    best_scores, best = results[0]
    checkpoint.instance_postprocess = best.model_dump(mode="json")
    args.out.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(checkpoint, args.out / "checkpoint.pt")
    summary = {
        "validation_cases": [case_id for case_id, _, _ in items],
        "chosen": best.model_dump(mode="json"),
        "mirror_tta": args.tta,
        "grid": grid,
        "validation": {k: round(v, 4) for k, v in best_scores.items()},
        "validation_with_defaults": {k: round(v, 4) for k, v in default.items()},
        "epoch": checkpoint.epoch,
        "size_bytes": path.stat().st_size,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
