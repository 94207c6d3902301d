"""Train the Cellpose peer from scratch on the nuclei model's training images, then segment test/.

Runs in the Cellpose venv (``benchmarks/cellpose/setup_venv.sh``), not in medseg's: it imports
``cellpose`` 4.2.1.1 and never ``medseg``. Scoring is medseg's (``benchmarks/nuclei.py
--pred-dir cellpose=OUT/test_masks``), so both methods are measured by one metric engine.

What is trained: Cellpose 4's own network class (``cellpose.vit.CPSAM``, the Cellpose-SAM
ViT: 8x8 tokens, a 3-channel flow + cell-probability readout), its flow targets,
loss, augmentation and training loop (``cellpose.train.train_seg``), and its mask reconstruction
(flow following, ``CellposeModel.eval``). Cellpose 4 ships no from-scratch recipe
(``CellposeModel(pretrained_model=None)`` raises "training from scratch is not implemented")
and its pretrained weights are not reachable here, so the encoder starts from random weights.
The full ViT-L (300 M parameters) cannot take a useful number of steps on a shared 2-core CPU;
``--backbone vit_b --blocks N`` builds the same model on SAM's smallest encoder (ViT-B) with its
first N blocks, and ``--bsize`` sets the crop (and token grid) size. The settings used are
written to ``OUT/settings.json`` with the wall and CPU seconds.

    /work/venvs/cellpose/bin/python benchmarks/cellpose/train_cellpose.py \
        --manifest data_manifests/cells_dsb2018_full.yaml --test data/cells_dsb2018/test \
        --out runs/cellpose [--backbone vit_b --blocks 4 --bsize 128 --epochs 40 ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
import yaml
from cellpose import io as cp_io
from cellpose import models, train
from cellpose.vit import CPSAM, BaseModel
from segment_anything import sam_model_registry

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


def _build_net(backbone: str, blocks: int, bsize: int, device: torch.device) -> CPSAM:
    """Cellpose-SAM (``cellpose.vit.CPSAM``) as its ``__init__`` builds it, on any SAM encoder.

    CPSAM hard-wires SAM's ViT-L; this repeats its construction (8x8 tokens, position
    embedding subsampled to the crop, global attention in every block, 1x1 readout of
    3 x 8 x 8 channels unfolded to pixels) with ``backbone`` and its first ``blocks`` blocks.
    """
    ps, nout = 8, 3
    net = CPSAM.__new__(CPSAM)
    BaseModel.__init__(net, dtype=torch.float32)
    net.rdrop = 0.4
    net.backbone = f"sam_{backbone.replace('_', '')}"
    encoder = sam_model_registry[backbone](None).image_encoder
    weight = encoder.patch_embed.proj.weight.detach()
    encoder.patch_embed.proj = torch.nn.Conv2d(3, weight.shape[0], stride=ps, kernel_size=ps)
    encoder.patch_embed.proj.weight.data = weight[:, :, :: 16 // ps, :: 16 // ps]
    step = (1024 // 16) // (bsize // ps)
    encoder.pos_embed = torch.nn.Parameter(encoder.pos_embed[:, ::step, ::step])
    for block in encoder.blocks:
        block.window_size = 0
    if blocks:
        encoder.blocks = torch.nn.ModuleList(list(encoder.blocks)[:blocks])
    net.encoder = encoder
    feat_dim = encoder.neck[-2].weight.shape[0]
    net.out = torch.nn.Conv2d(feat_dim, nout * ps**2, kernel_size=1)
    eye = torch.eye(nout * ps**2).reshape(nout * ps**2, nout, ps, ps)
    net.W2 = torch.nn.Parameter(eye, requires_grad=False)
    net.nout, net.ps = nout, ps
    return net.to(device)


def _segmenter(net: CPSAM, device: torch.device) -> models.CellposeModel:
    # CellposeModel.__init__ insists on the downloadable cpsam weights; build it around ours
    model = models.CellposeModel.__new__(models.CellposeModel)
    model.device = device
    model.gpu = False
    model.pretrained_model = "scratch"
    model.backbone = net.backbone  # not "sam_vitl": eval then accepts our crop size
    model.net = net
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True, help="folder with images/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--backbone", default="vit_b", choices=["vit_b", "vit_l", "vit_h"])
    parser.add_argument("--blocks", type=int, default=2, help="encoder blocks kept (0: all)")
    parser.add_argument("--bsize", type=int, default=128, help="training crop, pixels")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--images-per-epoch", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument(
        "--max-images", type=int, help="train on the first N training images of the manifest"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--predict-only", action="store_true", help="reuse OUT/models/cellpose")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device("cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    net = _build_net(args.backbone, args.blocks, args.bsize, device)
    n_params = sum(p.numel() for p in net.parameters())
    weights = args.out / "models" / "cellpose"
    if args.predict_only:
        net.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
        train_seconds = train_cpu = None
    else:
        cases = _training_cases(args.manifest)[: args.max_images]
        images = [_read_rgb(image) for image, _ in cases]
        labels = [tifffile.imread(label).astype(np.int32) for _, label in cases]
        logging.info("training on %d images, %d parameters", len(images), n_params)
        train.train_seg(
            net,
            train_data=images,
            train_labels=labels,
            channel_axis=-1,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            weight_decay=args.weight_decay,
            n_epochs=args.epochs,
            nimg_per_epoch=args.images_per_epoch,
            bsize=args.bsize,
            save_path=args.out,
            save_every=10,
            model_name="cellpose",
            min_train_masks=1,
        )
        train_seconds = time.perf_counter() - started
        train_cpu = _cpu_seconds() - cpu_started
    net.eval()
    model = _segmenter(net, device)
    pred_dir = args.out / "test_masks"
    pred_dir.mkdir(exist_ok=True)
    predict_started, predict_cpu = time.perf_counter(), _cpu_seconds()
    paths = sorted((args.test / "images").glob("*.png"))
    for path in paths:
        masks = model.eval(_read_rgb(path), channel_axis=-1, bsize=args.bsize, batch_size=8)[0]
        tmp = pred_dir / f".{path.stem}.tif"
        tifffile.imwrite(tmp, masks.astype(np.uint16), compression="zlib")
        tmp.replace(pred_dir / f"{path.stem}.tif")
        logging.info("%s: %d masks", path.stem, int(masks.max()))
    settings = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "cellpose_network": f"cellpose.vit.CPSAM on SAM {args.backbone}, first "
        f"{args.blocks or 'all'} blocks, ps 8, bsize {args.bsize}, random init",
        "parameters": n_params,
        "train_wall_seconds": train_seconds,
        "train_cpu_seconds": train_cpu,
        "predict_wall_seconds": time.perf_counter() - predict_started,
        "predict_cpu_seconds": _cpu_seconds() - predict_cpu,
        "test_images": len(paths),
    }
    (args.out / "settings.json").write_text(json.dumps(settings, indent=2))


if __name__ == "__main__":
    main()
