"""Train classic Cellpose (3.x, CPnet) from scratch on a subset of the nuclei training images.

Runs in its own venv (``benchmarks/cellpose/setup_venv3.sh``: ``cellpose`` 3.1.1.3), never in
medseg's. Cellpose 4 is Cellpose-SAM, a ViT meant to be fine-tuned from weights that are not
reachable here (``train_cellpose.py`` tried it from scratch: no nucleus found); Cellpose 3's
network is its residual U-Net (``cellpose.resnet_torch.CPnet``, 6.6 M parameters), which its
authors train from scratch (``CellposeModel(pretrained_model=None)``), on its own flow
targets, loss, augmentation and loop (``cellpose.train.train_seg``), with its flow-following
mask reconstruction (``CellposeModel.eval``).

Memory: ``train_seg`` holds every training image and its flows in memory and computes the
flows up front (Cellpose 4's run on all 564 images was OOM-killed), so a seeded subset of
``--max-images`` training images is used (``--max-side`` drops the largest ones). Training is
at the images' own scale (``rescale=False``, as medseg's model) and inference at scale 1
(``diameter = diam_mean``). Images are read as grey (``channels=[0, 0]``: Cellpose's setting
for nuclei). One torch thread. Settings, flow, training and inference seconds (wall and CPU)
go to ``OUT/settings.json``; masks to ``OUT/test_masks/<stem>.tif``, scored by
``benchmarks/nuclei.py --pred-dir cellpose3=OUT/test_masks``.

    /work/venvs/cellpose3/bin/python benchmarks/cellpose/train_cellpose3.py \
        --manifest data_manifests/cells_dsb2018_full.yaml \
        --test ../shared/data/cells_dsb2018/test --out runs/cellpose3
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import resource
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
import yaml
from cellpose import io as cp_io
from cellpose import models, train

ROOT = Path(__file__).resolve().parents[2]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _read_rgb(path: Path) -> np.ndarray:
    image = cp_io.imread(str(path))
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.asarray(image[..., :3], dtype=np.float32)


def _training_cases(manifest_path: Path) -> list[tuple[Path, Path]]:
    manifest = yaml.safe_load(manifest_path.read_text())
    root = manifest_path.resolve().parent.parent
    return [
        (root / case["image"], root / case["label"])
        for case in manifest["cases"]
        if case["split"] == "train"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True, help="folder with images/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-images", type=int, default=150)
    parser.add_argument("--max-side", type=int, default=700, help="skip larger images")
    parser.add_argument("--bsize", type=int, default=128, help="training crop, pixels")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--images-per-epoch", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=0.005)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--predict-only", action="store_true", help="reuse OUT/models/cellpose3")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "models" / "cellpose3"
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    model = models.CellposeModel(
        gpu=False, pretrained_model=str(weights) if args.predict_only else None, model_type=None
    )
    n_params = sum(p.numel() for p in model.net.parameters())
    settings: dict[str, object] = {}
    if not args.predict_only:
        cases = _training_cases(args.manifest)
        random.Random(args.seed).shuffle(cases)
        images, labels, names = [], [], []
        for image_path, label_path in cases:
            label = tifffile.imread(label_path).astype(np.int32)
            if max(label.shape) > args.max_side:
                continue
            images.append(_read_rgb(image_path))
            labels.append(label)
            names.append(image_path.stem)
            if len(images) == args.max_images:
                break
        flows_started, flows_cpu = time.perf_counter(), _cpu_seconds()
        flows = train.dynamics.labels_to_flows(labels, device=torch.device("cpu"))
        settings["flow_wall_seconds"] = time.perf_counter() - flows_started
        settings["flow_cpu_seconds"] = _cpu_seconds() - flows_cpu
        logging.info("training on %d images, %d parameters", len(images), n_params)
        train_started, train_cpu = time.perf_counter(), _cpu_seconds()
        train.train_seg(
            model.net,
            train_data=images,
            train_labels=flows,
            channels=[0, 0],
            channel_axis=-1,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            weight_decay=args.weight_decay,
            n_epochs=args.epochs,
            nimg_per_epoch=args.images_per_epoch,
            bsize=args.bsize,
            rescale=False,
            save_path=args.out,
            save_every=10,
            model_name="cellpose3",
            min_train_masks=1,
        )
        settings |= {
            "training_images": names,
            "train_wall_seconds": time.perf_counter() - train_started,
            "train_cpu_seconds": _cpu_seconds() - train_cpu,
        }
    model.net.eval()
    pred_dir = args.out / "test_masks"
    pred_dir.mkdir(exist_ok=True)
    predict_started, predict_cpu = time.perf_counter(), _cpu_seconds()
    paths = sorted((args.test / "images").glob("*.png"))
    for path in paths:
        masks = model.eval(
            _read_rgb(path), channels=[0, 0], channel_axis=-1, diameter=model.diam_mean
        )[0]
        tmp = pred_dir / f".{path.stem}.tif"
        tifffile.imwrite(tmp, masks.astype(np.uint16), compression="zlib")
        tmp.replace(pred_dir / f"{path.stem}.tif")
        logging.info("%s: %d masks", path.stem, int(masks.max()))
    settings |= {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "cellpose_network": "cellpose 3 CPnet (nbase 2-32-64-128-256), random init",
        "parameters": n_params,
        "predict_wall_seconds": time.perf_counter() - predict_started,
        "predict_cpu_seconds": _cpu_seconds() - predict_cpu,
        "total_wall_seconds": time.perf_counter() - started,
        "total_cpu_seconds": _cpu_seconds() - cpu_started,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "test_images": len(paths),
    }
    (args.out / "settings.json").write_text(json.dumps(settings, indent=2))


if __name__ == "__main__":
    main()
