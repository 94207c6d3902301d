"""nnU-Net v2 on the brain-tumour folds of benchmarks/brain_tumour.py, same CPU budget per fold.

nnU-Net runs from its own venv (``bash benchmarks/install_nnunet.sh /work/venvs/nnunet``, which
also installs the CPU-budget trainer ``benchmarks/nnunet/nnUNetTrainerCPUBudget.py``).
Inputs are the same five BraTS cases at the same working resolution as medseg's model: FLAIR
and T1c resampled to 2 mm (trilinear; labels nearest; 3 → 1 as BraTS, 4 → 3 because nnU-Net
wants consecutive labels). nnU-Net plans and preprocesses them itself (3d_fullres), trains
fold k on the four other cases for ``--cpu-seconds`` of process CPU time (data augmentation
in-process, one torch thread, fp32: nnU-Net autocasts on CUDA only) and predicts the held-out
case in its final validation (mirror TTA). The 2 mm prediction is put back on the case's
1 mm grid (nearest, world-aligned: :func:`medseg.io.resample_to_grid`) and scored by medseg's
:func:`medseg.evaluation.compute_region_metrics`.

    PYTHONPATH=. python benchmarks/nnunet_brain_tumour.py prepare --work runs/nnunet
    PYTHONPATH=. python benchmarks/nnunet_brain_tumour.py train --work runs/nnunet --fold 1
    PYTHONPATH=. python benchmarks/nnunet_brain_tumour.py table --work runs/nnunet

A CPU-sized plan (``cpu-plans``): nnU-Net's own 3d_fullres plans with only the patch (and the
number of stages it allows) changed, written as ``nnUNetPlansCPU<size>`` and used with
``--plans``; the preprocessed data are the default plans' (same spacing, same normalisation):

    PYTHONPATH=. python benchmarks/nnunet_brain_tumour.py cpu-plans --work runs/nnunet --patch 48
    PYTHONPATH=. python benchmarks/nnunet_brain_tumour.py train --work runs/nnunet \
        --plans nnUNetPlansCPU48 --cpu-seconds 400 --iterations 10
    PYTHONPATH=. python benchmarks/nnunet_brain_tumour.py table --work runs/nnunet \
        --plans nnUNetPlansCPU48
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.evaluation import compute_region_metrics
from medseg.inference import keep_largest_foreground
from medseg.io import Volume, read_image, resample_to_grid
from medseg.transforms import compute_resampled_shape, resample_to_shape

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tumor_brats2015"
CASE_IDS = [f"brats2013_pat000{i}" for i in range(1, 6)]
FILES = {"flair": "Flair_subtrMeanDivStd.nii.gz", "t1c": "T1c_subtrMeanDivStd.nii.gz"}
REGIONS = {"WT": (1, 2, 3, 4), "TC": (1, 3, 4), "ET": (4,)}
DATASET = "Dataset501_BraTS2013"
SPACING_MM = 2.0


def _case_dir(case_id: str, data: Path) -> Path:
    return data / f"brats2015_brats_2013_{case_id.split('_')[-1]}_1"


def _env(
    work: Path, cpu_seconds: float, batch: int | None = None, iterations: int = 2
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        nnUNet_raw=str(work / "raw"),
        nnUNet_preprocessed=str(work / "preprocessed"),
        nnUNet_results=str(work / "results"),
        nnUNet_n_proc_DA="0",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        MEDSEG_NNUNET_CPU_SECONDS=str(cpu_seconds),
        MEDSEG_NNUNET_THREADS="1",
        MEDSEG_NNUNET_ITERATIONS=str(iterations),
    )
    if batch:
        env["MEDSEG_NNUNET_BATCH"] = str(batch)
    return env


def _to_2mm(volume: Volume, *, is_label: bool) -> nib.Nifti1Image:
    shape = compute_resampled_shape(
        volume.spatial_shape, spacing_mm=volume.spacing_mm, target_spacing_mm=[SPACING_MM] * 3
    )
    array = resample_to_shape(
        np.asarray(volume.array, dtype=np.float32)[None], shape, is_label=is_label
    )[0]
    scale = np.array(volume.spatial_shape, dtype=float) / np.array(shape, dtype=float)
    affine = volume.affine.copy()
    affine[:3, :3] = volume.affine[:3, :3] * scale
    # same field of view: voxel centres of the coarse grid at (i + 0.5) * scale - 0.5
    affine[:3, 3] = (volume.affine @ np.append(0.5 * scale - 0.5, 1.0))[:3]
    if is_label:
        return nib.Nifti1Image(np.rint(array).astype(np.uint8), affine)
    return nib.Nifti1Image(array.astype(np.float32), affine)


def prepare(work: Path, data: Path, venv: Path) -> None:
    """Raw dataset at 2 mm, nnU-Net planning/preprocessing, the five leave-one-out splits."""
    raw = work / "raw" / DATASET
    (raw / "imagesTr").mkdir(parents=True, exist_ok=True)
    (raw / "labelsTr").mkdir(parents=True, exist_ok=True)
    for case_id in CASE_IDS:
        folder = _case_dir(case_id, data)
        if (raw / "labelsTr" / f"{case_id}.nii.gz").is_file():
            continue  # converted by an earlier run
        for index, file in enumerate(FILES.values()):
            image = _to_2mm(read_image(folder / file), is_label=False)
            nib.save(image, raw / "imagesTr" / f"{case_id}_{index:04d}.nii.gz")
        label = read_image(folder / "OTMultiClass.nii.gz")
        mapped = np.rint(np.asarray(label.array)).astype(np.uint8)
        mapped[mapped == 3] = 1
        mapped[mapped == 4] = 3
        nib.save(
            _to_2mm(label.with_array(mapped), is_label=True),
            raw / "labelsTr" / f"{case_id}.nii.gz",
        )
    dataset = {
        "channel_names": {"0": "FLAIR", "1": "T1c"},
        "labels": {"background": 0, "necrotic_core": 1, "oedema": 2, "enhancing": 3},
        "numTraining": len(CASE_IDS),
        "file_ending": ".nii.gz",
    }
    (raw / "dataset.json").write_text(json.dumps(dataset, indent=1))
    env = _env(work, 0)
    env["nnUNet_n_proc_DA"] = "1"  # the planner calls torch.set_num_threads with it
    subprocess.run(
        [
            str(venv / "bin" / "nnUNetv2_plan_and_preprocess"),
            "-d",
            "501",
            "-c",
            "3d_fullres",
            "-np",
            "1",
            "-npfp",
            "1",
            "--verify_dataset_integrity",
        ],
        check=True,
        env=env,
    )
    splits = [{"train": [c for c in CASE_IDS if c != held], "val": [held]} for held in CASE_IDS]
    (work / "preprocessed" / DATASET / "splits_final.json").write_text(json.dumps(splits))


def write_cpu_plans(work: Path, patch: int) -> str:
    """Copy nnU-Net's plans with a ``patch``-cube 3d_fullres patch; return the plans name.

    Everything else stays nnU-Net's (PlainConvUNet widths 32, 64, ... capped at 320, two convs
    per stage, instance norm, batch 2, data identifier): only ``patch_size`` and the stages it
    allows change (stride 2 on every axis until the feature map would go below 4 voxels).
    """
    folder = work / "preprocessed" / DATASET
    plans = json.loads((folder / "nnUNetPlans.json").read_text())
    name = f"nnUNetPlansCPU{patch}"
    config = plans["configurations"]["3d_fullres"]
    stages = 1
    while patch // 2**stages >= 4 and patch % 2**stages == 0:
        stages += 1
    arch = config["architecture"]["arch_kwargs"]
    arch["n_stages"] = stages
    arch["features_per_stage"] = [min(32 * 2**i, 320) for i in range(stages)]
    arch["kernel_sizes"] = [[3, 3, 3]] * stages
    arch["strides"] = [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1)
    arch["n_conv_per_stage"] = [2] * stages
    arch["n_conv_per_stage_decoder"] = [2] * (stages - 1)
    config["patch_size"] = [patch] * 3
    plans["plans_name"] = name
    (folder / f"{name}.json").write_text(json.dumps(plans, indent=1))
    return name


def train(
    work: Path,
    data: Path,
    venv: Path,
    fold: int,
    cpu_seconds: float,
    batch: int | None = None,
    *,
    plans: str = "nnUNetPlans",
    iterations: int = 2,
) -> dict:
    """Train and validate fold ``fold`` (1-5, held-out case ``CASE_IDS[fold - 1]``), score it."""
    env = _env(work, cpu_seconds, batch, iterations)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [
            str(venv / "bin" / "nnUNetv2_train"),
            "501",
            "3d_fullres",
            str(fold - 1),
            "-tr",
            "nnUNetTrainerCPUBudget",
            "-p",
            plans,
            "-device",
            "cpu",
        ],
        check=True,
        env=env,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    held = CASE_IDS[fold - 1]
    fold_dir = (
        work
        / "results"
        / DATASET
        / f"nnUNetTrainerCPUBudget__{plans}__3d_fullres"
        / f"fold_{fold - 1}"
    )
    raw, largest = score_validation(fold_dir, data, held)
    log = "".join(p.read_text() for p in sorted(fold_dir.glob("training_log_*.txt")))
    epochs = [line for line in log.splitlines() if "trained" in line and "epochs in" in line]
    record = {
        "fold": fold,
        "held_out": held,
        "trained": epochs[-1].split(": ", 1)[-1] if epochs else "",
        "process_cpu_seconds": round(
            after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1
        ),
        "process_wall_seconds": round(wall, 1),
        "cpu_budget_seconds": cpu_seconds,
        "batch_size": batch or "planned",
        "plans": plans,
        "iterations_per_epoch": iterations,
        "metrics": raw,
        "metrics_largest": largest,
    }
    (work / _metrics_name(plans, fold)).write_text(json.dumps(record, indent=1))
    return record


def score_validation(fold_dir: Path, data: Path, held: str) -> tuple[dict, dict]:
    """Medseg's region metrics of nnU-Net's validation prediction of ``held``: raw, and with
    medseg's largest-connected-component step (nnU-Net's own postprocessing is not run)."""
    pred = read_image(fold_dir / "validation" / f"{held}.nii.gz")
    labels = np.rint(np.asarray(pred.array)).astype(np.uint8)
    labels[labels == 3] = 4
    reference = read_image(_case_dir(held, data) / "OTMultiClass.nii.gz")
    on_grid = resample_to_grid(pred.with_array(labels.astype(np.float32)), reference, order=0)
    ref = np.rint(np.asarray(reference.array)).astype(np.uint8)
    pred_1mm = np.rint(on_grid.array).astype(np.uint8)
    out = []
    for candidate in (pred_1mm, keep_largest_foreground(pred_1mm)):
        metrics = compute_region_metrics(candidate, ref, regions=REGIONS, spacing_mm=(1, 1, 1))
        out.append({k: {"dice": m.dice, "hd95_mm": m.hd95_mm} for k, m in metrics.items()})
    return out[0], out[1]


def _metrics_name(plans: str, fold: int | str) -> str:
    prefix = "" if plans == "nnUNetPlans" else f"{plans}_"
    return f"{prefix}fold{fold}_metrics.json"


def format_table(work: Path, plans: str = "nnUNetPlans", key: str = "metrics") -> str:
    """Markdown table of the scored folds of one plans (``key``: ``metrics`` raw,
    ``metrics_largest`` with the largest connected component)."""
    rows = [json.loads(p.read_text()) for p in sorted(work.glob(_metrics_name(plans, "*")))]
    rows = [r for r in rows if key in r]
    lines = [
        "| fold (held out) | WT Dice | TC Dice | ET Dice | WT HD95 mm | TC HD95 mm | ET HD95 mm "
        "| training | process CPU s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r[key]
        lines.append(
            f"| {r['fold']} ({r['held_out']}) | "
            + " | ".join(f"{m[k]['dice']:.3f}" for k in REGIONS)
            + " | "
            + " | ".join(f"{m[k]['hd95_mm']:.1f}" for k in REGIONS)
            + f" | {r['trained']} | {r['process_cpu_seconds']:.0f}"
            + f" | {r['process_wall_seconds']:.0f} |"
        )
    if rows:
        lines.append(
            "| **mean** | "
            + " | ".join(f"**{np.mean([r[key][k]['dice'] for r in rows]):.3f}**" for k in REGIONS)
            + " | "
            + " | ".join(f"{np.mean([r[key][k]['hd95_mm'] for r in rows]):.1f}" for k in REGIONS)
            + " | | | |"
        )
    return "\n".join(lines)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["prepare", "cpu-plans", "train", "table"])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--venv", type=Path, default=Path("/work/venvs/nnunet"))
    parser.add_argument("--fold", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--cpu-seconds", type=float, default=150.0)
    parser.add_argument("--batch", type=int, help="override nnU-Net's planned batch size")
    parser.add_argument("--plans", default="nnUNetPlans", help="plans identifier (nnU-Net -p)")
    parser.add_argument("--iterations", type=int, default=2, help="training iterations per epoch")
    parser.add_argument("--patch", type=int, default=48, help="cpu-plans: cubic patch edge")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.work, args.data, args.venv)
    elif args.command == "cpu-plans":
        print(write_cpu_plans(args.work, args.patch))
    elif args.command == "train":
        for fold in args.fold:
            record = train(
                args.work,
                args.data,
                args.venv,
                fold,
                args.cpu_seconds,
                args.batch,
                plans=args.plans,
                iterations=args.iterations,
            )
            print(json.dumps(record))
    else:
        print("raw (nnU-Net's prediction, no postprocessing):")
        print(format_table(args.work, args.plans))
        print("\nlargest connected component (medseg's postprocessing):")
        print(format_table(args.work, args.plans, key="metrics_largest"))


if __name__ == "__main__":
    main()
