"""CPU vs CUDA: each shipped inference path run through the real CLI on both devices.

For every check the same command runs with ``--device cpu`` and ``--device cuda`` (and with
``--device auto``, which must pick CUDA when present); the masks are compared voxel by voxel
(foreground Dice and equal-voxel fraction, instance counts for instance maps) and against
the case's reference where it has one. Prints one table and writes JSON. Needs a GPU; run it
on a CUDA machine from the repository root:

    python benchmarks/cuda_check.py --group models --json out.json   # nuclei, vessels, tumour
    python benchmarks/cuda_check.py --group sam --json out.json      # LiteMedSAM 3D box
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

DATA = Path("data")
NUCLEI = ["06350c7cc618be44", "13f2bec0a24c7034", "24a20f2a529cede5"]


def _run(args: list[str], device: str, out: Path) -> dict:
    """Run one medseg command on ``device``; return wall time, exit code and stderr tail."""
    cmd = [sys.executable, "-m", "medseg", "--log-level", "info", *args, "--device", device]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    wall = time.perf_counter() - t0
    return {
        "device": device,
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "cuda_seen": "cuda" in (proc.stderr + proc.stdout).lower(),
        "tail": (proc.stderr + proc.stdout)[-600:],
        "out": str(out),
    }


def _load(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        return np.asarray(Image.open(path))
    return np.asarray(nib.load(str(path)).dataobj)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    denom = a.sum() + b.sum()
    return 1.0 if denom == 0 else float(2 * (a & b).sum() / denom)


def _find_output(folder: Path) -> Path:
    files = sorted(p for p in folder.rglob("*") if p.suffix in {".gz", ".png", ".tif", ".nii"})
    masks = [p for p in files if "prob" not in p.name and "confidence" not in p.name]
    if not masks:
        raise FileNotFoundError(f"no mask written under {folder}")
    return masks[0]


def _compare(name: str, runs: dict[str, dict], ref: np.ndarray | None) -> dict:
    """Masks of the cpu/cuda/auto runs against each other and against the reference."""
    masks = {}
    for device, run in runs.items():
        if run["rc"] == 0:
            out = Path(run["out"])
            masks[device] = np.squeeze(_load(out if out.is_file() else _find_output(out)))
    row: dict = {"check": name, "runs": runs}
    if "cpu" in masks and "cuda" in masks:
        cpu, gpu = masks["cpu"], masks["cuda"]
        row["shape_equal"] = cpu.shape == gpu.shape
        if cpu.shape == gpu.shape:
            row["dice_cpu_vs_cuda"] = round(_dice(cpu, gpu), 4)
            row["equal_voxels"] = round(float((cpu == gpu).mean()), 5)
            row["objects_cpu_cuda"] = [int(len(np.unique(cpu)) - 1), int(len(np.unique(gpu)) - 1)]
    if "auto" in masks and "cuda" in masks and masks["auto"].shape == masks["cuda"].shape:
        row["auto_equals_cuda"] = bool((masks["auto"] == masks["cuda"]).all())
    if ref is not None:
        ref = np.squeeze(ref)
        row["dice_vs_reference"] = {
            d: round(_dice(m, ref), 4) for d, m in masks.items() if m.shape == ref.shape
        }
    return row


def check_models(work: Path) -> list[dict]:
    rows = []
    images = [DATA / "cells_dsb2018/test/images" / f"{n}.png" for n in NUCLEI]
    for image in images:
        runs = {}
        for device in ("cpu", "cuda", "auto"):
            out = work / f"nuclei_{image.stem}_{device}"
            runs[device] = _run(
                ["infer", "--model", "nuclei", str(image), "--out", str(out)], device, out
            )
        ref_path = DATA / "cells_dsb2018/test/labels" / image.name
        ref = _load(ref_path) if ref_path.exists() else None
        rows.append(_compare(f"nuclei {image.stem}", runs, ref))
    image = DATA / "retina_drive/test/images/01_test.tif"
    runs = {}
    for device in ("cpu", "cuda", "auto"):
        out = work / f"retina_{device}"
        runs[device] = _run(
            ["infer", "--model", "retina-vessels", str(image), "--out", str(out)], device, out
        )
    ref = np.asarray(Image.open(DATA / "retina_drive/test/1st_manual/01_manual1.gif"))
    rows.append(_compare("retina-vessels 01_test", runs, ref))
    case = DATA / "tumor_brats2015/brats2015_brats_2013_pat0001_1"
    runs = {}
    for device in ("cpu", "cuda", "auto"):
        out = work / f"tumour_{device}"
        args = [
            "infer",
            "--model",
            "brain-tumour",
            "--channel",
            f"flair={case / 'Flair_subtrMeanDivStd.nii.gz'}",
        ]
        args += ["--channel", f"t1c={case / 'T1c_subtrMeanDivStd.nii.gz'}", "--out", str(out)]
        runs[device] = _run(args, device, out)
    rows.append(_compare("brain-tumour pat0001 (WT)", runs, _load(case / "OTMultiClass.nii.gz")))
    return rows


def check_sam(work: Path) -> list[dict]:
    image = DATA / "ct_totalsegmentator/example_ct_sm.nii.gz"
    ref = (_load(DATA / "ct_totalsegmentator/example_seg.nii.gz") == 1).astype(np.uint8)
    runs = {}
    for device in ("cpu", "cuda", "auto"):
        out = work / f"sam_spleen_{device}.nii.gz"
        args = ["sam", str(image), "--box", "10,22,0,43,57,29", "--out", str(out)]
        if device == "cpu":
            args += ["--encoder-backend", "torch"]
        runs[device] = _run(args, device, out)
    return [_compare("sam spleen 3D box", runs, ref)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=["models", "sam", "all"], default="all")
    parser.add_argument("--work", type=Path, default=Path("/tmp/medseg_cuda_check"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}", flush=True)
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name(0)}", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    if args.group in ("models", "all"):
        rows += check_models(args.work)
    if args.group in ("sam", "all"):
        rows += check_sam(args.work)
    for row in rows:
        walls = {d: (r["wall_s"], r["rc"]) for d, r in row["runs"].items()}
        print(
            f"{row['check']}: wall/rc {walls} dice cpu-vs-cuda {row.get('dice_cpu_vs_cuda')} "
            f"equal {row.get('equal_voxels')} objects {row.get('objects_cpu_cuda')} "
            f"auto==cuda {row.get('auto_equals_cuda')} vs ref {row.get('dice_vs_reference')}",
            flush=True,
        )
        for device, run in row["runs"].items():
            if run["rc"] != 0:
                print(f"  {device} failed: {run['tail']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
