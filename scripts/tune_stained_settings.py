"""Choose an instance model's watershed settings for stained (H&E) images on validation data.

H&E nuclei fail differently from fluorescence ones (fragments and merges, issue 19), so the
shipped ``nuclei`` keeps a second set of settings, ``instance_postprocess.stained``, used for
images :func:`medseg.inference.is_stained_image` finds coloured. This script searches them
(coordinate search, two rounds, from the model's current settings; criterion pooled F1@0.5,
ties by mean DSB score) on the validation images of the manifest that are stained — never the
test split — and writes ``OUT/checkpoint.pt`` (the same weights and grey-image settings) plus
``OUT/stained_search.json``. ``--reuse JSON`` writes the checkpoint from an earlier search.

    PYTHONPATH=. python scripts/tune_stained_settings.py --model nuclei --out runs/ship_stained
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from medseg.evaluation import compute_instance_metrics
from medseg.inference import (
    InstanceConfig,
    is_stained_image,
    predict_volume,
    resolve_infer_config,
    resolve_instance_config,
)
from medseg.io import Split, load_manifest, read_image
from medseg.models import load_checkpoint, resolve_model_path, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("tune_stained_settings")

GRID: dict[str, list[float]] = {
    "foreground_threshold": [0.4, 0.5, 0.6, 0.7],
    "seed_threshold": [0.5, 0.7, 0.8, 0.9, 0.95],
    "min_seed_size_px": [1, 4, 8, 16],
    "min_size_px": [10, 26, 40, 60],
    "zoom_out_above_area_px": [0, 600, 800, 1000, 1300],
    "zoom_in_below_area_px": [0, 100, 200],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="nuclei", help="checkpoint or shipped model name")
    parser.add_argument(
        "--manifest", type=Path, default=ROOT / "data_manifests/cells_dsb2018_full.yaml"
    )
    parser.add_argument("--split", default="validation")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reuse", type=Path, help="stained_search.json of an earlier search")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    checkpoint = load_checkpoint(resolve_model_path(args.model))
    base = resolve_instance_config(checkpoint)
    if base is None:
        raise SystemExit(f"{args.model} is not an instance model")
    grey = base.model_dump(mode="json", exclude={"stained"})
    if args.reuse is not None:
        result = json.loads(args.reuse.read_text())
    else:
        network = checkpoint.build().eval()
        infer = resolve_infer_config(checkpoint, {"device": "cpu"})
        manifest = load_manifest(args.manifest)
        root = args.manifest.resolve().parent.parent
        data = []
        for case in manifest.cases:
            if case.split is not Split(args.split) or case.label is None:
                continue
            image = read_image(root / case.image)
            if is_stained_image(np.asarray(image.array)):
                reference = np.asarray(read_image(root / case.label).array)[:, :, 0]
                data.append((case.id, image, reference))
        logger.info("%d stained %s images", len(data), args.split)

        def score(settings: dict[str, float]) -> tuple[float, float, list[int]]:
            config = InstanceConfig(**settings)
            tp = fp = fn = 0
            dsb = 0.0
            for _, image, reference in data:
                labels = predict_volume(
                    network, image, plans=checkpoint.plans, config=infer, instances=config
                ).labels
                metrics = compute_instance_metrics(np.asarray(labels.array)[:, :, 0], reference)
                tp, fp, fn = (
                    tp + metrics.at(0.5).tp,
                    fp + metrics.at(0.5).fp,
                    fn + metrics.at(0.5).fn,
                )
                dsb += metrics.mean_accuracy_50_95
            return 2 * tp / max(2 * tp + fp + fn, 1), dsb / len(data), [tp, fp, fn]

        best = dict(grey)
        best_score = score(best)
        history = [{"settings": dict(best), "score": best_score}]
        logger.info("start %s: pooled F1 %.4f", best, best_score[0])
        for _ in range(2):
            for key, values in GRID.items():
                for value in values:
                    if value == best[key]:
                        continue
                    candidate = {**best, key: value}
                    candidate_score = score(candidate)
                    history.append({"settings": candidate, "score": candidate_score})
                    logger.info("%s=%s: pooled F1 %.4f", key, value, candidate_score[0])
                    if candidate_score[:2] > best_score[:2]:
                        best, best_score = candidate, candidate_score
        result = {
            "cases": [case_id for case_id, _, _ in data],
            "start": {"settings": grey, "score": history[0]["score"]},
            "best": {"settings": best, "score": best_score},
            "history": history,
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stained_search.json").write_text(json.dumps(result, indent=1))
    checkpoint.instance_postprocess = {**grey, "stained": result["best"]["settings"]}
    path = save_checkpoint(checkpoint, args.out / "checkpoint.pt")
    logger.info("stained settings %s -> %s", result["best"]["settings"], path)


if __name__ == "__main__":
    main()
