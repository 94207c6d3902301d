"""Inference-side variants of the brain-tumour CV models, compared without retraining.

``probs`` predicts each fold's held-out case with the fold's checkpoint (from
``benchmarks/brain_tumour.py cv``), plain and with mirror TTA, and keeps the class
probabilities on disk (``fold<k>/probs_<tta|plain>.npz``, float16, channel = label id, on the
case's 1 mm grid). ``score`` derives every variant from those files and scores it with
medseg's metric engine: decision (argmax over {0, 1, 2, 4}, or the nested BraTS regions
WT = P1+P2+P4 > 0.5, TC = P1+P4 > 0.5 inside WT, ET = P4 > 0.5 inside TC) × component filter
(none, largest only, components >= f × the largest). ``overlay`` draws where a fold's
prediction is wrong (false negatives red, false positives blue) on FLAIR slices.

    PYTHONPATH=. python benchmarks/brain_tumour_variants.py probs --out runs/brain_tumour_cv
    PYTHONPATH=. python benchmarks/brain_tumour_variants.py score --out runs/brain_tumour_cv
    PYTHONPATH=. python benchmarks/brain_tumour_variants.py overlay --out runs/brain_tumour_cv \
        --fold 5 --variant tta_regions_largest
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from brain_tumour import CASE_IDS, DATA, REGIONS, channel_case, score

from medseg.inference import (
    InferConfig,
    NestedRegion,
    decide_nested_regions,
    keep_foreground_components,
    keep_largest_foreground,
    predict_channel_volume,
)
from medseg.io import read_channels, read_image
from medseg.models import load_checkpoint

logger = logging.getLogger("brain_tumour_variants")
BRATS_REGIONS = [
    NestedRegion(labels=[1, 2, 4], label=2),
    NestedRegion(labels=[1, 4], label=1),
    NestedRegion(labels=[4], label=4),
]
FILTERS = {
    "none": None,
    "largest": 1.0,
    "frac0.2": 0.2,
    "frac0.1": 0.1,
    "frac0.05": 0.05,
    "frac0.02": 0.02,
}


def save_probabilities(out: Path, fold: int, data: Path) -> None:
    """Predict fold ``fold``'s held-out case (plain and TTA) and keep the probabilities."""
    fold_dir = out / f"fold{fold}"
    checkpoint = load_checkpoint(fold_dir / "checkpoint.pt")
    case = channel_case(CASE_IDS[fold - 1], data)
    volume = read_channels(case.channels, expected=checkpoint.plans.image_keys)
    for tta in (False, True):
        cpu0 = time.process_time()
        prediction = predict_channel_volume(
            checkpoint,
            volume,
            config=InferConfig(mirror=tta, precision="bf16", save_probabilities=True),
            largest_component=False,
            case_id=CASE_IDS[fold - 1],
        )
        name = "tta" if tta else "plain"
        if prediction.probabilities is None:
            raise RuntimeError(f"fold {fold}: the prediction kept no probabilities")
        np.savez_compressed(
            fold_dir / f"probs_{name}.npz", probs=np.asarray(prediction.probabilities.array)
        )
        logger.info("fold %d %s: %.1f CPU s", fold, name, time.process_time() - cpu0)


def derive_labels(probs: np.ndarray, decision: str, min_fraction: float | None) -> np.ndarray:
    """Labels of one variant from ``(*spatial, C)`` probabilities."""
    if decision == "regions":
        labels = decide_nested_regions(probs, BRATS_REGIONS)
    else:
        masked = probs.astype(np.float32)
        masked[..., 3] = -1.0  # label 3 is never written (BraTS 3 -> 1 in training)
        labels = np.argmax(masked, axis=-1).astype(np.uint8)
    if min_fraction is not None:
        labels = keep_foreground_components(labels, min_fraction=min_fraction)
    return labels


def score_variants(out: Path, data: Path) -> dict:
    """Every variant of every fold with stored probabilities → ``variants.json``."""
    results: dict = {}
    for fold_dir in sorted(out.glob("fold*")):
        fold = int(fold_dir.name[4:])
        case = channel_case(CASE_IDS[fold - 1], data)
        reference = np.rint(np.asarray(read_image(case.label).array)).astype(np.uint8)
        for name in ("plain", "tta"):
            path = fold_dir / f"probs_{name}.npz"
            if not path.exists():
                continue
            probs = np.load(path)["probs"]
            for decision in ("argmax", "regions"):
                for filt, fraction in FILTERS.items():
                    key = f"{name}_{decision}_{filt}"
                    labels = derive_labels(probs, decision, fraction)
                    results.setdefault(key, {})[str(fold)] = score(labels, reference)
    (out / "variants.json").write_text(json.dumps(results, indent=1))
    return results


def format_variants(results: dict) -> str:
    """Markdown: mean Dice per variant and the per-fold WT Dice."""
    folds = sorted({f for v in results.values() for f in v}, key=int)
    lines = [
        "| variant | mean WT | mean TC | mean ET | " + " | ".join(f"WT f{f}" for f in folds) + " |",
        "|---|---|---|---|" + "---|" * len(folds),
    ]
    for key, per_fold in results.items():
        means = [np.mean([per_fold[f][r]["dice"] for f in per_fold]) for r in REGIONS]
        lines.append(
            f"| {key} | "
            + " | ".join(f"{m:.3f}" for m in means)
            + " | "
            + " | ".join(f"{per_fold[f]['WT']['dice']:.3f}" if f in per_fold else "" for f in folds)
            + " |"
        )
    return "\n".join(lines)


def choose_wt_threshold(out: Path, fold: int, data: Path, grid: list[float]) -> dict:
    """Whole-tumour threshold of fold ``fold`` chosen on its own **training** cases, then
    applied to its held-out case (no held-out label is looked at to choose it).

    The fold's model predicts each of its four training cases (plain, bf16); for each ``t`` of
    ``grid`` the WT mask (P1+P2+P4 > t, largest component) is scored on them; the ``t`` with
    the best mean training WT Dice (ties: nearest 0.5) becomes the WT level's threshold of the
    nested decision (TC, ET stay at 0.5) on the held-out case's stored ``probs_plain.npz``.
    """
    fold_dir = out / f"fold{fold}"
    checkpoint = load_checkpoint(fold_dir / "checkpoint.pt")
    held = CASE_IDS[fold - 1]
    train_dice: dict[float, list[float]] = {t: [] for t in grid}
    for case_id in CASE_IDS:
        if case_id == held:
            continue
        case = channel_case(case_id, data)
        volume = read_channels(case.channels, expected=checkpoint.plans.image_keys)
        prediction = predict_channel_volume(
            checkpoint,
            volume,
            config=InferConfig(precision="bf16", save_probabilities=True),
            largest_component=False,
            case_id=case_id,
        )
        probs = np.asarray(prediction.probabilities.array)
        wt_prob = probs[..., [1, 2, 4]].astype(np.float32).sum(axis=-1)
        reference = np.asarray(read_image(case.label).array) > 0.5
        for t in grid:
            mask = keep_largest_foreground((wt_prob > t).astype(np.uint8)) > 0
            dice = 2 * np.sum(mask & reference) / max(1, mask.sum() + reference.sum())
            train_dice[t].append(float(dice))
    means = {t: float(np.mean(v)) for t, v in train_dice.items()}
    best = max(grid, key=lambda t: (round(means[t], 4), -abs(t - 0.5)))
    regions = [BRATS_REGIONS[0].model_copy(update={"threshold": best}), *BRATS_REGIONS[1:]]
    held_probs = np.load(fold_dir / "probs_plain.npz")["probs"]
    case = channel_case(held, data)
    reference = np.rint(np.asarray(read_image(case.label).array)).astype(np.uint8)
    record = {
        "fold": fold,
        "held_out": held,
        "training_mean_wt_dice": {str(t): round(m, 4) for t, m in means.items()},
        "chosen_wt_threshold": best,
        "held_out_at_0.5": score(
            keep_largest_foreground(decide_nested_regions(held_probs, BRATS_REGIONS)), reference
        ),
        "held_out_at_chosen": score(
            keep_largest_foreground(decide_nested_regions(held_probs, regions)), reference
        ),
    }
    (fold_dir / "threshold.json").write_text(json.dumps(record, indent=1))
    logger.info(
        "fold %d: WT threshold %.2f (training WT Dice %.4f at 0.5, %.4f chosen); held-out WT "
        "%.3f -> %.3f",
        fold,
        best,
        means.get(0.5, float("nan")),
        means[best],
        record["held_out_at_0.5"]["WT"]["dice"],
        record["held_out_at_chosen"]["WT"]["dice"],
    )
    return record


def draw_overlay(out: Path, fold: int, variant: str, data: Path) -> Path:
    """PNG of 6 axial FLAIR slices: reference ∩ prediction green, FN red, FP blue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, decision, filt = variant.split("_")
    probs = np.load(out / f"fold{fold}" / f"probs_{name}.npz")["probs"]
    labels = derive_labels(probs, decision, FILTERS[filt])
    case = channel_case(CASE_IDS[fold - 1], data)
    reference = np.rint(np.asarray(read_image(case.label).array)).astype(np.uint8)
    flair = np.asarray(read_image(case.channels["flair"]).array, dtype=np.float32)
    union = np.flatnonzero(((labels > 0) | (reference > 0)).any(axis=(0, 1)))
    slices = np.linspace(union[0], union[-1], 6).round().astype(int) if union.size else [77] * 6
    fig, axes = plt.subplots(2, 3, figsize=(12, 8))
    for ax, z in zip(axes.ravel(), slices, strict=True):
        rgb = np.repeat(np.clip((flair[:, :, z] + 2) / 6, 0, 1)[..., None], 3, axis=-1)
        pred, ref = labels[:, :, z] > 0, reference[:, :, z] > 0
        rgb[pred & ref] = 0.5 * rgb[pred & ref] + [0, 0.5, 0]
        rgb[ref & ~pred] = [1, 0, 0]
        rgb[pred & ~ref] = [0, 0.4, 1]
        ax.imshow(np.rot90(rgb))
        ax.set_title(f"z={z} FN={int((ref & ~pred).sum())} FP={int((pred & ~ref).sum())}")
        ax.axis("off")
    fig.suptitle(f"fold {fold} ({CASE_IDS[fold - 1]}) {variant}: green TP, red FN, blue FP (WT)")
    path = out / f"fold{fold}" / f"overlay_{variant}.png"
    fig.savefig(path, dpi=60, bbox_inches="tight")
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["probs", "score", "overlay", "threshold"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--fold", type=int, default=5)
    parser.add_argument("--variant", default="tta_argmax_largest")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "probs":
        for fold in args.folds:
            if not (args.out / f"fold{fold}" / "checkpoint.pt").exists():
                logger.info("fold %d: no checkpoint yet", fold)
                continue
            save_probabilities(args.out, fold, args.data)
    elif args.command == "score":
        print(format_variants(score_variants(args.out, args.data)))
    elif args.command == "threshold":
        grid = [round(0.2 + 0.05 * i, 2) for i in range(9)]  # 0.20 ... 0.60
        for fold in args.folds:
            choose_wt_threshold(args.out, fold, args.data, grid)
    else:
        print(draw_overlay(args.out, args.fold, args.variant, args.data))


if __name__ == "__main__":
    main()
