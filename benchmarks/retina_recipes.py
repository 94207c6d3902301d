"""Held-out recipe comparison for the DRIVE vessel U-Net (never touches the test images).

Trains on DRIVE training images 21-36 and scores vessel metrics (F1, AUC, Se, Sp, Acc,
clDice inside the field of view) on training images 37-40, for one recipe variant per run:

    PYTHONPATH=. python benchmarks/retina_recipes.py --norm zscore --epochs 10
    PYTHONPATH=. python benchmarks/retina_recipes.py --norm clahe --epochs 10
    PYTHONPATH=. python benchmarks/retina_recipes.py --norm clahe --epochs 20
    PYTHONPATH=. python benchmarks/retina_recipes.py --norm clahe --epochs 10 --eval-only --tta

Everything else comes from ``plans/retina_drive.yaml`` (patch, batch, depth) unless given.
Prints one line per held-out image and the mean, with training wall and CPU time.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from medseg.core import read_yaml
from medseg.inference import InferConfig, predict_volume
from medseg.io import Split, collapse_grey_channels, load_manifest, read_image
from medseg.models import load_checkpoint
from medseg.runner import compute_case_vessel_metrics
from medseg.runner._trained import read_field_of_view
from medseg.training import LAST_CHECKPOINT, ModelSection, TrainConfig, train_model
from medseg.transforms import Plans, compute_layout

REPO = Path(__file__).resolve().parent.parent
HELD_OUT = ["drive_37", "drive_38", "drive_39", "drive_40"]


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--norm", choices=["zscore", "clahe"], default="clahe")
    parser.add_argument("--patch", type=int, default=None)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--model", default="unet2d")
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--tta", action="store_true", help="mirror TTA when scoring")
    parser.add_argument("--eval-only", action="store_true", help="score an existing run")
    parser.add_argument("--out", type=Path, default=Path("runs/retina_recipes"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    manifest = load_manifest(REPO / "data_manifests/retina_drive.yaml")
    data = read_yaml(REPO / "plans/retina_drive.yaml")
    data["normalization"] = [{"scheme": args.norm}] * 3
    if args.patch is not None:
        data["patch_size"] = [args.patch] * 2
    kernels, strides = compute_layout(
        patch_size=data["patch_size"], spacing_mm=[1.0, 1.0], max_depth=args.depth
    )
    data.update(strides=strides, kernel_sizes=kernels, batch_size=args.batch)
    plans = Plans(**data)
    config = TrainConfig(
        manifest="data_manifests/retina_drive.yaml",
        model=ModelSection(name=args.model, features=args.features, backbone=args.backbone),
        train_splits=[Split.TRAIN],
        validation_splits=[],
        validation_case_ids=HELD_OUT,
        epochs=args.epochs,
        iterations_per_epoch=args.iterations,
        batch_size=args.batch,
        learning_rate=args.lr,
        validate_every_epochs=args.epochs,
        device="cpu",
        cpu_threads=1,
        num_workers=1,
    )
    name = (
        f"{args.model}_{args.norm}_p{plans.patch_size[0]}_f{args.features}_"
        f"{args.epochs * args.iterations}steps"
    )
    out = args.out / name
    wall, cpu = 0.0, 0.0
    if not args.eval_only:
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        train_model(config, plans=plans, manifest=manifest, root=REPO, out_dir=out, overwrite=True)
        wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started

    torch.set_num_threads(1)
    checkpoint = load_checkpoint(out / LAST_CHECKPOINT)
    network = checkpoint.build(device="cpu")
    infer = InferConfig(device="cpu", save_probabilities=True, mirror=args.tta)
    cases = {case.id: case for case in manifest.cases}
    rows = []
    for case_id in HELD_OUT:
        case = cases[case_id]
        image = read_image(REPO / case.image)
        label_path = REPO / str(case.label)
        reference = read_image(label_path)
        reference = reference.with_array(
            collapse_grey_channels(reference.array, what="label", path=label_path)
        )
        prediction = predict_volume(network, image, plans=checkpoint.plans, config=infer)
        metrics = compute_case_vessel_metrics(
            prediction.labels,
            reference,
            image=image,
            fov=read_field_of_view(case, root=REPO, image=image),
            probabilities=prediction.probabilities,
        )
        rows.append(metrics)
        print(case_id, " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    print(
        f"{name}{' +TTA' if args.tta else ''} held-out mean: "
        + " ".join(f"{k} {v:.4f}" for k, v in mean.items())
        + (f" | training {wall:.0f} s wall, {cpu:.0f} s CPU" if wall else "")
    )


if __name__ == "__main__":
    main()
