"""HD95 + ASSD + NSD on 512×512×200 masks (spacing 0.8, 0.8, 2.5 mm): medseg vs MONAI vs
DeepMind surface-distance, in the same process.

Run from the repository root:

    PYTHONPATH=$PWD python benchmarks/metrics.py [--repeats 3]

The masks are a liver-sized smooth blob (≈ 200 × 160 × 180 mm) and a copy of it shifted by
a few voxels with a different low-frequency boundary wobble: the case every segmentation
evaluation meets. Each tool computes HD95, the symmetric average surface distance and the
normalised surface Dice at 2 mm; medseg computes all its metrics (Dice, IoU, volumes, HD, HD95,
ASSD, MSD, NSD) in one call. Runs are interleaved; best and median of ``--repeats`` are printed.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

SHAPE = (512, 512, 200)
SPACING_MM = (0.8, 0.8, 2.5)
TOLERANCE_MM = 2.0


def make_blob(*, centre_mm: tuple[float, ...], radii_mm: tuple[float, ...], phase: float):
    """A smooth star-shaped blob: an ellipsoid whose radius wobbles with direction."""
    axes = [
        np.arange(n, dtype=np.float32) * s - c
        for n, s, c in zip(SHAPE, SPACING_MM, centre_mm, strict=True)
    ]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    rho = np.sqrt((x / radii_mm[0]) ** 2 + (y / radii_mm[1]) ** 2 + (z / radii_mm[2]) ** 2)
    theta = np.arctan2(y, x)
    phi = np.arctan2(z, np.sqrt(x**2 + y**2))
    wobble = 1.0 + 0.07 * np.sin(3 * theta + phase) * np.cos(2 * phi) + 0.04 * np.cos(5 * phi)
    return rho <= wobble


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    np.Inf = np.inf  # noqa: NPY201  (surface-distance 0.1 needs np.Inf, gone in NumPy 2)
    import surface_distance

    from medseg.evaluation import compute_segmentation_metrics

    centre = tuple(n * s / 2 for n, s in zip(SHAPE, SPACING_MM, strict=True))
    reference = make_blob(centre_mm=centre, radii_mm=(100.0, 80.0, 90.0), phase=0.0)
    shifted = (centre[0] + 2.4, centre[1] - 1.6, centre[2] + 2.5)
    prediction = make_blob(centre_mm=shifted, radii_mm=(98.0, 82.0, 88.0), phase=0.6)
    print(
        f"masks {SHAPE}, spacing {SPACING_MM} mm: reference {int(reference.sum())} voxels, "
        f"prediction {int(prediction.sum())} voxels"
    )

    def run_medseg():
        m = compute_segmentation_metrics(
            prediction, reference, spacing_mm=SPACING_MM, tolerance_mm=TOLERANCE_MM
        )
        return m.hd95_mm, m.assd_mm, m.nsd

    pred_t = torch.as_tensor(prediction)[None, None]
    ref_t = torch.as_tensor(reference)[None, None]

    def run_monai():
        hd95 = compute_hausdorff_distance(
            pred_t, ref_t, include_background=True, percentile=95, spacing=SPACING_MM
        ).item()
        assd = compute_average_surface_distance(
            pred_t, ref_t, include_background=True, symmetric=True, spacing=SPACING_MM
        ).item()
        nsd = compute_surface_dice(
            pred_t, ref_t, [TOLERANCE_MM], include_background=True, spacing=SPACING_MM
        ).item()
        return hd95, assd, nsd

    def run_deepmind():
        distances = surface_distance.compute_surface_distances(reference, prediction, SPACING_MM)
        hd95 = surface_distance.compute_robust_hausdorff(distances, 95)
        forward, backward = surface_distance.compute_average_surface_distance(distances)
        areas = distances["surfel_areas_gt"].sum(), distances["surfel_areas_pred"].sum()
        assd = (forward * areas[0] + backward * areas[1]) / (areas[0] + areas[1])
        nsd = surface_distance.compute_surface_dice_at_tolerance(distances, TOLERANCE_MM)
        return hd95, assd, nsd

    tools = (("medseg", run_medseg), ("MONAI", run_monai), ("surface-distance", run_deepmind))
    times: dict[str, list[float]] = {name: [] for name, _ in tools}
    values = {}
    for _ in range(args.repeats):  # interleaved, so every tool sees the same machine load
        for name, function in tools:
            started = time.perf_counter()
            values[name] = function()
            times[name].append(time.perf_counter() - started)
    for name, _ in tools:
        hd95, assd, nsd = values[name]
        print(
            f"{name:>17}: best {min(times[name]):7.3f} s  median {np.median(times[name]):7.3f} s"
            f"   HD95 {hd95:.4f} mm   ASSD {assd:.4f} mm   NSD@{TOLERANCE_MM:g}mm {nsd:.4f}"
        )
    for name in ("MONAI", "surface-distance"):
        print(
            f"speed-up of medseg vs {name}: {min(times[name]) / min(times['medseg']):.1f}x (best), "
            f"{np.median(times[name]) / np.median(times['medseg']):.1f}x (median)"
        )


if __name__ == "__main__":
    main()
