"""Brain-tumour channel model: leave-one-case-out cross-validation and the shipped model.

Five BraTS 2013 cases (FLAIR + T1c, DeepMedic preprocessing; CC BY-NC-SA 3.0, non-commercial)
from ``../shared/data/tumor_brats2015`` (only pat0001 is bundled in the repository). Each fold
trains ``configs/channel_training/brain_tumour.yaml`` on four cases for its CPU-time budget and
predicts the fifth; predictions are scored by medseg's metric engine
(:func:`medseg.evaluation.compute_region_metrics`, BraTS regions WT 1-4, TC 1/3/4, ET 4)
with and without mirror TTA and the largest-component step.

    PYTHONPATH=. python benchmarks/brain_tumour.py cv --out runs/brain_tumour_cv [--folds 1 2]
    PYTHONPATH=. python benchmarks/brain_tumour.py table --out runs/brain_tumour_cv
    PYTHONPATH=. python benchmarks/brain_tumour.py train --out runs/brain_tumour_all  # 5 cases
    PYTHONPATH=. python benchmarks/brain_tumour.py ship \
        --checkpoint runs/brain_tumour_all/checkpoint.pt

``--cpu-seconds`` overrides the config's training budget (``cv`` and ``train``); ``ship``
copies a checkpoint (``--checkpoint``, or fold ``--fold`` of the CV run ``--run``) into the
package with float16 weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from pathlib import Path

import numpy as np

from medseg.core import parse_config, read_yaml
from medseg.evaluation import compute_region_metrics
from medseg.inference import (
    InferConfig,
    NestedRegion,
    decide_nested_regions,
    keep_largest_foreground,
    predict_channel_volume,
)
from medseg.io import read_channels, read_image
from medseg.models import load_checkpoint, save_checkpoint
from medseg.training import (
    ChannelCase,
    ChannelTrainConfig,
    build_channel_plans,
    prepare_case,
    train_channel_model,
)

logger = logging.getLogger("brain_tumour")
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tumor_brats2015"
CONFIG = ROOT / "configs" / "channel_training" / "brain_tumour.yaml"
CASE_IDS = [f"brats2013_pat000{i}" for i in range(1, 6)]
FILES = {"flair": "Flair_subtrMeanDivStd.nii.gz", "t1c": "T1c_subtrMeanDivStd.nii.gz"}
METRICS = ("dice", "hd95_mm")
REGIONS = {"WT": (1, 2, 3, 4), "TC": (1, 3, 4), "ET": (4,)}
BRATS_REGIONS = [  # the shipped model's stored inference default (MODEL.yaml)
    NestedRegion(labels=[1, 2, 4], label=2),
    NestedRegion(labels=[1, 4], label=1),
    NestedRegion(labels=[4], label=4),
]


def case_dir(case_id: str, data: Path) -> Path:
    """Folder of a case (DeepMedic's naming)."""
    return data / f"brats2015_brats_2013_{case_id.split('_')[-1]}_1"


def channel_case(case_id: str, data: Path) -> ChannelCase:
    """The training case of one BraTS folder."""
    folder = case_dir(case_id, data)
    return ChannelCase(
        case_id=case_id,
        channels={name: folder / file for name, file in FILES.items()},
        label=folder / "OTMultiClass.nii.gz",
    )


def score(labels: np.ndarray, reference: np.ndarray) -> dict[str, dict[str, float]]:
    """Dice and HD95 (mm, 1 mm grid) of the BraTS regions."""
    metrics = compute_region_metrics(labels, reference, regions=REGIONS, spacing_mm=(1, 1, 1))
    return {k: {"dice": m.dice, "hd95_mm": m.hd95_mm} for k, m in metrics.items()}


def run_fold(fold: int, *, config: ChannelTrainConfig, data: Path, out: Path) -> dict:
    """Train on every case but ``CASE_IDS[fold - 1]``, predict and score that one."""
    held_out = CASE_IDS[fold - 1]
    fold_dir = out / f"fold{fold}"
    fold_dir.mkdir(parents=True, exist_ok=True)
    plans = build_channel_plans(config)
    started = time.perf_counter()
    cases = [
        prepare_case(channel_case(c, data), plans=plans, label_map=config.label_map)
        for c in CASE_IDS
        if c != held_out
    ]
    prep_seconds = time.perf_counter() - started
    result = train_channel_model(cases, config=config, plans=plans)
    save_checkpoint(result.checkpoint, fold_dir / "checkpoint.pt")
    case = channel_case(held_out, data)
    volume = read_channels(case.channels, expected=plans.image_keys)
    reference = np.rint(np.asarray(read_image(case.label).array)).astype(np.uint8)
    record: dict = {
        "fold": fold,
        "held_out": held_out,
        "train_cases": [c.case_id for c in cases],
        "steps": result.steps,
        "train_cpu_seconds": round(result.cpu_seconds, 1),
        "train_wall_seconds": round(result.wall_seconds, 1),
        "prepare_wall_seconds": round(prep_seconds, 1),
        "final_loss": round(result.final_loss, 4),
        "variants": {},
    }
    for tta in (False, True):
        cpu0 = time.process_time()
        prediction = predict_channel_volume(
            result.checkpoint,
            volume,
            config=InferConfig(mirror=tta, precision="bf16", save_probabilities=True),
            largest_component=False,
            case_id=held_out,
        )
        raw = np.asarray(prediction.labels.array)
        name = "tta" if tta else "plain"
        record["variants"][name] = score(raw, reference)
        record["variants"][name + "_largest"] = score(keep_largest_foreground(raw), reference)
        record[f"predict_{name}_seconds"] = round(prediction.seconds, 1)
        record[f"predict_{name}_cpu_seconds"] = round(time.process_time() - cpu0, 1)
        # the shipped decision: nested BraTS regions (WT, TC inside WT, ET inside TC)
        probabilities = np.asarray(prediction.probabilities.array)
        nested = decide_nested_regions(probabilities, BRATS_REGIONS)
        record["variants"][name + "_regions"] = score(nested, reference)
        record["variants"][name + "_regions_largest"] = score(
            keep_largest_foreground(nested), reference
        )
    (fold_dir / "metrics.json").write_text(json.dumps(record, indent=1))
    logger.info("fold %d (%s): %s", fold, held_out, record["variants"]["tta_largest"])
    return record


def format_table(out: Path, variant: str = "tta_largest") -> str:
    """Markdown table of the folds found in ``out``."""
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("fold*/metrics.json"))]
    lines = [
        "| fold (held out) | WT Dice | TC Dice | ET Dice | WT HD95 mm | TC HD95 mm | ET HD95 mm "
        "| steps | train CPU s | train wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        v = r["variants"][variant]
        lines.append(
            f"| {r['fold']} ({r['held_out']}) | "
            + " | ".join(f"{v[k]['dice']:.3f}" for k in REGIONS)
            + " | "
            + " | ".join(f"{v[k]['hd95_mm']:.1f}" for k in REGIONS)
            + f" | {r['steps']} | {r['train_cpu_seconds']:.0f} | {r['train_wall_seconds']:.0f} |"
        )
    if rows:
        mean = {
            k: {
                m: float(np.mean([r["variants"][variant][k][m] for r in rows]))
                for m in ("dice", "hd95_mm")
            }
            for k in REGIONS
        }
        lines.append(
            "| **mean** | "
            + " | ".join(f"**{mean[k]['dice']:.3f}**" for k in REGIONS)
            + " | "
            + " | ".join(f"{mean[k]['hd95_mm']:.1f}" for k in REGIONS)
            + f" | | {np.mean([r['train_cpu_seconds'] for r in rows]):.0f} "
            + f"| {np.mean([r['train_wall_seconds'] for r in rows]):.0f} |"
        )
        lines.append("")
        lines.append("Mean Dice WT / TC / ET by variant:")
        for name in ("plain", "plain_largest", "tta", "tta_largest"):
            means = [np.mean([r["variants"][name][k]["dice"] for r in rows]) for k in REGIONS]
            lines.append(f"- {name}: " + " / ".join(f"{m:.3f}" for m in means))
    return "\n".join(lines)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cv = sub.add_parser("cv", help="train and score folds")
    cv.add_argument("--out", type=Path, required=True)
    cv.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    cv.add_argument("--data", type=Path, default=DATA)
    cv.add_argument("--config", type=Path, default=CONFIG)
    cv.add_argument("--cpu-seconds", type=float, help="override the config's budget")
    train = sub.add_parser("train", help="train one model on the given cases (default: all)")
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--cases", nargs="+", default=CASE_IDS)
    train.add_argument("--data", type=Path, default=DATA)
    train.add_argument("--config", type=Path, default=CONFIG)
    train.add_argument("--cpu-seconds", type=float, help="override the config's budget")
    table = sub.add_parser("table", help="print the fold table")
    table.add_argument("--out", type=Path, required=True)
    table.add_argument("--variant", default="tta_largest")
    ship = sub.add_parser("ship", help="copy a fold's model (weights float16) into the package")
    source = ship.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a CV run folder (with --fold)")
    source.add_argument("--checkpoint", type=Path, help="a checkpoint file")
    ship.add_argument("--fold", type=int, default=1)
    ship.add_argument("--dest", type=Path, default=ROOT / "medseg/models/shipped/brain-tumour")
    ship.add_argument(
        "--inference-defaults",
        type=json.loads,
        default=None,
        help="JSON InferConfig settings stored as the model's defaults, e.g. '{\"mirror\": true, "
        '"regions": [{"labels": [1, 2, 4], "label": 2}, {"labels": [1, 4], "label": 1}, '
        '{"labels": [4], "label": 4}]}\'',
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command in ("cv", "train"):
        data = read_yaml(args.config)
        if args.cpu_seconds:
            data["cpu_seconds"] = args.cpu_seconds
        config = parse_config(ChannelTrainConfig, data, source=args.config)
    if args.command == "cv":
        for fold in args.folds:
            run_fold(fold, config=config, data=args.data, out=args.out)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        logger.info("process CPU: user %.0f s, system %.0f s", usage.ru_utime, usage.ru_stime)
    elif args.command == "train":
        plans = build_channel_plans(config)
        cases = [
            prepare_case(channel_case(c, args.data), plans=plans, label_map=config.label_map)
            for c in args.cases
        ]
        result = train_channel_model(cases, config=config, plans=plans)
        args.out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(result.checkpoint, args.out / "checkpoint.pt")
        record = {
            "cases": list(args.cases),
            "steps": result.steps,
            "train_cpu_seconds": round(result.cpu_seconds, 1),
            "train_wall_seconds": round(result.wall_seconds, 1),
            "final_loss": round(result.final_loss, 4),
        }
        (args.out / "training.json").write_text(json.dumps(record, indent=1))
    elif args.command == "table":
        print(format_table(args.out, args.variant))
    else:
        path = args.checkpoint or args.run / f"fold{args.fold}" / "checkpoint.pt"
        checkpoint = load_checkpoint(path)
        checkpoint.state_dict = {
            k: v.half() if v.is_floating_point() else v for k, v in checkpoint.state_dict.items()
        }
        checkpoint.resume_state = {}
        if args.inference_defaults is not None:
            parse_config(InferConfig, args.inference_defaults, source="--inference-defaults")
            checkpoint.inference_defaults = dict(args.inference_defaults)
        args.dest.mkdir(parents=True, exist_ok=True)
        save_checkpoint(checkpoint, args.dest / "checkpoint.pt")


if __name__ == "__main__":
    main()
