"""Does the confidence say where the segmentation is bad? (issue 21)

Reads the output folder of::

    medseg infer --model nuclei --manifest data_manifests/cells_dsb2018.yaml \\
        --confidence --out OUT

(``<id>.nii.gz`` instance maps, ``<id>_confidence.nii.gz``, ``<id>_tta_disagreement.nii.gz``)
and, for each test image, compares the mean confidence and mean TTA disagreement inside the
predicted nuclei with the quality against the reference (F1 at IoU 0.5, foreground Dice).
Prints the Spearman correlations and how many of the worst images (lowest F1) the QC
thresholds (``evaluate.qc``: mean confidence < 0.9, TTA disagreement > 0.05) flag.

    python benchmarks/confidence_quality.py OUT [--manifest M] [--worst 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from medseg.evaluation import QCThresholds, compute_dice, compute_instance_metrics
from medseg.io import Split, load_manifest, manifest_root, read_image, read_nifti


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--manifest", type=Path, default=Path("data_manifests/cells_dsb2018.yaml"))
    parser.add_argument("--worst", type=int, default=5)
    args = parser.parse_args()
    thresholds = QCThresholds()
    manifest = load_manifest(args.manifest)
    root = manifest_root(args.manifest)
    rows = []
    for case in manifest.cases:
        if case.split is not Split.TEST:
            continue
        labels = np.asarray(read_nifti(args.out / f"{case.id}.nii.gz").array)[:, :, 0]
        confidence = np.asarray(read_nifti(args.out / f"{case.id}_confidence.nii.gz").array)
        disagreement = np.asarray(read_nifti(args.out / f"{case.id}_tta_disagreement.nii.gz").array)
        reference = np.asarray(read_image(root / case.label).array)[:, :, 0]
        inside = labels > 0
        rows.append(
            {
                "id": case.id,
                "confidence": float(confidence.reshape(labels.shape)[inside].mean()),
                "disagreement": float(disagreement.reshape(labels.shape)[inside].mean()),
                "f1": compute_instance_metrics(labels, reference).at(0.5).f1,
                "dice": compute_dice(inside, reference > 0),
            }
        )
    rows.sort(key=lambda r: r["f1"])
    print(f"{'image':18} {'F1@0.5':>7} {'Dice':>6} {'conf':>6} {'disagr':>7} flags")
    for r in rows:
        flags = []
        if r["confidence"] < thresholds.min_mean_confidence:
            flags.append("low_mean_confidence")
        if r["disagreement"] > thresholds.max_tta_disagreement:
            flags.append("tta_disagreement")
        r["flagged"] = bool(flags)
        print(
            f"{r['id'][:16]:18} {r['f1']:7.3f} {r['dice']:6.3f} {r['confidence']:6.3f} "
            f"{r['disagreement']:7.4f} {','.join(flags)}"
        )
    for score in ("confidence", "disagreement"):
        for quality in ("f1", "dice"):
            rho, p = spearmanr([r[score] for r in rows], [r[quality] for r in rows])
            print(f"Spearman {score} vs {quality}: rho {rho:+.3f} (p {p:.3g}, n {len(rows)})")
    flagged = [r for r in rows if r["flagged"]]
    print(f"flagged {len(flagged)}/{len(rows)} images")
    for quality in ("f1", "dice"):
        worst = sorted(rows, key=lambda r: r[quality])[: args.worst]
        caught = sum(r["flagged"] for r in worst)
        by_confidence = sorted(rows, key=lambda r: r["confidence"])[: args.worst]
        hit = len({r["id"] for r in by_confidence} & {r["id"] for r in worst})
        print(
            f"{args.worst} lowest-{quality} images: {caught} flagged; "
            f"{hit} among the {args.worst} lowest-confidence images"
        )


if __name__ == "__main__":
    main()
