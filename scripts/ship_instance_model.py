"""Choose an instance model's watershed settings on its held-out cases and ship it.

Reads a ``medseg train`` run of an ``instance_boundary`` model, predicts the probabilities of
the validation cases named in its training config (``validation_case_ids`` and
``validation_splits``; never the test split) once, searches the
``medseg.inference.InstanceConfig`` settings on them, and writes ``OUT/checkpoint.pt``: the
weights as float16 (half the size; inference computes in float32), no optimiser state, the
chosen settings stored as the checkpoint's ``instance_postprocess`` (what ``medseg infer
--model`` applies) and, with ``--tta``, ``inference_defaults: {mirror: true}`` so that the
model runs with the TTA it was tuned with unless the user says ``--no-tta``.

Criterion (``--criterion``): ``pooled_f1`` (default) — F1 at IoU 0.5 with TP/FP/FN summed over
the validation images, ties broken by the mean DSB2018 score; ``dsb`` — the mean DSB2018 score
(mean of TP/(TP+FP+FN) over IoU 0.50:0.95), ties broken by the mean F1@0.5. ``--search grid``
tries every combination of the grid below; ``--search coordinate`` (default) changes one
setting at a time from the defaults, keeping the best, for two rounds (some 40 evaluations
instead of several hundred). The grid includes ``seed_split_h_px`` (splitting merged seeds;
0 = off) unless ``--no-seed-split``. ``--recipe`` names the training configs of every stage,
recorded with their sha256 (and the checkpoint's) in ``OUT/ship_summary.json``.

    PYTHONPATH=. python scripts/ship_instance_model.py --run runs/nuclei_full \
        --out medseg/models/shipped/nuclei --tta
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import statistics
from pathlib import Path

import numpy as np

from medseg.evaluation import (
    InstanceErrors,
    compute_instance_errors,
    compute_instance_metrics,
    pool_instance_counts,
)
from medseg.inference import (
    InferConfig,
    InstanceConfig,
    choose_instance_zoom,
    label_instances,
    predict_volume,
    predict_with_checkpoint,
    relabel_instances,
    resolve_instance_config,
    zoom_image,
)
from medseg.io import load_manifest, read_image
from medseg.models import Checkpoint, load_checkpoint, resolve_model_path, save_checkpoint
from medseg.training import TrainConfig
from medseg.transforms import resample_to_shape

ROOT = Path(__file__).resolve().parents[1]

GRID = {
    "foreground_threshold": [0.4, 0.5, 0.6, 0.7, 0.8],
    "seed_threshold": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98],
    "min_seed_size_px": [1, 4, 8, 16, 24, 32],
    # split merged seeds (h-maxima of their distance map, pixels; 0 = off), searched last
    "seed_split_h_px": [0, 2, 3, 4, 5, 6, 8],
}
#: second-pass zoom by nucleus size (searched after the settings above, with them fixed)
ZOOM_GRID = {
    "zoom_in_below_area_px": [0, 60, 80, 100, 130, 160, 200, 260],
    "zoom_out_above_area_px": [0, 600, 800, 1000, 1300, 1700, 2200],
}
#: min_size_px candidates stop at this percentile of the training nuclei's areas: a handful of
#: held-out images (with large nuclei) would otherwise pick a size that deletes the small
#: nuclei of other images (it picked 60 px, the 10th percentile, when allowed)
MIN_SIZE_PERCENTILE = 2.0


def _validation_cases(config: TrainConfig) -> list:
    manifest = load_manifest(ROOT / config.manifest)
    held_out = set(config.validation_case_ids)
    return [
        c
        for c in manifest.cases
        if c.label is not None and (c.id in held_out or c.split in config.validation_splits)
    ]


def _validation_probabilities(
    checkpoint: Checkpoint, cases: list, *, mirror: bool, cache: Path | None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            print(f"probabilities read from {cache}")
            return [(c.id, stored[f"p_{c.id}"], stored[f"r_{c.id}"]) for c in cases]
    network = checkpoint.build(device="cpu")
    infer = InferConfig(save_probabilities=True, mirror=mirror)
    out = []
    for case in cases:
        image = read_image(ROOT / case.image)
        prediction = predict_volume(network, image, plans=checkpoint.plans, config=infer)
        if prediction.probabilities is None:
            raise SystemExit("no probabilities returned")
        probabilities = np.moveaxis(np.asarray(prediction.probabilities.array)[:, :, 0], -1, 0)
        reference = np.asarray(read_image(ROOT / case.label).array)[:, :, 0]
        out.append((case.id, probabilities.astype(np.float16), reference))
        print(f"predicted {case.id} ({prediction.seconds:.1f} s)", flush=True)
    if cache is not None:
        arrays = {f"p_{i}": p for i, p, _ in out} | {f"r_{i}": r for i, _, r in out}
        np.savez_compressed(cache, **arrays)
    return out


class ZoomedProbabilities:
    """Probabilities of validation images segmented at a zoom, computed when first needed."""

    def __init__(
        self, checkpoint: Checkpoint, cases: list, *, mirror: bool, cache: Path | None
    ) -> None:
        self.checkpoint, self.mirror, self.cache = checkpoint, mirror, cache
        self.paths = {c.id: ROOT / c.image for c in cases}
        self.network = None
        self.stored: dict[str, np.ndarray] = {}
        if cache is not None and cache.is_file():
            with np.load(cache) as stored:
                self.stored = {k: stored[k] for k in stored.files}

    def get(self, case_id: str, zoom: float) -> np.ndarray:
        key = f"z{zoom:g}_{case_id}"
        if key not in self.stored:
            if self.network is None:
                self.network = self.checkpoint.build(device="cpu")
            infer = InferConfig(save_probabilities=True, mirror=self.mirror)
            image = zoom_image(read_image(self.paths[case_id]), zoom)
            prediction = predict_volume(
                self.network, image, plans=self.checkpoint.plans, config=infer
            )
            if prediction.probabilities is None:
                raise SystemExit("no probabilities returned")
            probabilities = np.asarray(prediction.probabilities.array)[:, :, 0]
            self.stored[key] = np.moveaxis(probabilities, -1, 0).astype(np.float16)
            print(f"predicted {case_id} at {zoom:g}x ({prediction.seconds:.1f} s)", flush=True)
        return self.stored[key]

    def save(self) -> None:
        if self.cache is not None and self.stored:
            np.savez_compressed(self.cache, **self.stored)


def _label(
    case_id: str,
    probabilities: np.ndarray,
    config: InstanceConfig,
    zoomed: ZoomedProbabilities | None,
) -> np.ndarray:
    """What ``medseg infer`` writes: the first pass, then the zoomed pass when it is due."""
    labels = label_instances(probabilities, config=config)
    zoom = choose_instance_zoom(labels, config=config) if zoomed is not None else 1.0
    if zoom == 1.0:
        return labels
    single = config.model_copy(update={"zoom_in_below_area_px": 0, "zoom_out_above_area_px": 0})
    again = label_instances(zoomed.get(case_id, zoom), config=single)  # type: ignore[union-attr]
    back = resample_to_shape(again[None].astype(np.int32), labels.shape, is_label=True)
    return relabel_instances(np.asarray(back)[0])


def _kind_table(
    name: str,
    predictions: dict[str, np.ndarray],
    references: dict[str, np.ndarray],
    kinds: dict[str, str],
) -> list[str]:
    lines = []
    for kind in ("all", "fluo", "histo", "bright"):
        ids = [i for i in predictions if kind in ("all", kinds[i])]
        if not ids:
            continue
        metrics = [compute_instance_metrics(predictions[i], references[i]) for i in ids]
        errors = InstanceErrors()
        for i in ids:
            errors = errors + compute_instance_errors(predictions[i], references[i])
        pooled = pool_instance_counts(metrics).at(0.5)
        recall = " / ".join(
            f"{v:.2f} ({n})" if n else "–"
            for v, (n, _) in zip(
                errors.recall_by_size().values(), errors.by_size.values(), strict=True
            )
        )
        lines.append(
            f"| {name} ({kind}) | {len(ids)} | {pooled.f1:.3f} ({pooled.tp}/{pooled.fp}/"
            f"{pooled.fn}) | {statistics.fmean(m.at(0.5).f1 for m in metrics):.3f} | "
            f"{statistics.fmean(m.mean_accuracy_50_95 for m in metrics):.3f} | "
            f"{errors.fn_merged} | {errors.fn_split} | {errors.fn_missed} | "
            f"{errors.fp_fragment} | {errors.fp_merge} | {errors.fp_spurious} | {recall} |"
        )
    return lines


def _trained_on(checkpoint: Checkpoint) -> set[str]:
    """Resolved image paths a checkpoint was trained on (from its stored training config)."""
    config = TrainConfig.model_validate(checkpoint.training_config)
    manifest = load_manifest(ROOT / config.manifest)
    held_out = set(config.validation_case_ids)
    return {
        str((ROOT / c.image).resolve())
        for c in manifest.cases
        if c.split in config.train_splits and c.id not in held_out
    }


TABLE_HEADER = (
    "| model (kind) | images | F1@0.5 pooled (TP/FP/FN) | F1@0.5 mean per image | DSB score "
    "| FN merged | FN split | FN missed | FP fragment | FP merge | FP spurious "
    "| recall@0.5 by area (<80 / 80-400 / 400-1500 / >=1500 px) |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def _min_size_candidates(config: TrainConfig) -> list[int]:
    manifest = load_manifest(ROOT / config.manifest)
    areas = []
    for case in manifest.cases:
        if case.split in config.train_splits and case.label is not None:
            labels = np.asarray(read_image(ROOT / case.label).array)
            counts = np.bincount(labels.ravel().astype(np.int64))[1:]
            areas.append(counts[counts > 0])
    limit = int(np.percentile(np.concatenate(areas), MIN_SIZE_PERCENTILE))
    return sorted({v for v in (0, 10, 20, 30, 45, 60) if v < limit} | {limit})


def _score(
    items: list[tuple[str, np.ndarray, np.ndarray]],
    config: InstanceConfig,
    zoomed: ZoomedProbabilities | None = None,
) -> dict[str, float]:
    metrics = [compute_instance_metrics(_label(i, p, config, zoomed), r) for i, p, r in items]
    pooled = pool_instance_counts(metrics).at(0.5)
    return {
        "pooled_f1_50": pooled.f1,
        "dsb_score": statistics.fmean(m.mean_accuracy_50_95 for m in metrics),
        "f1_50": statistics.fmean(m.at(0.5).f1 for m in metrics),
        "pq_50": statistics.fmean(m.at(0.5).pq for m in metrics),
    }


def _key(scores: dict[str, float], criterion: str) -> tuple[float, float]:
    if criterion == "dsb":
        return scores["dsb_score"], scores["f1_50"]
    return scores["pooled_f1_50"], scores["dsb_score"]


def _search(
    items: list[tuple[str, np.ndarray, np.ndarray]],
    grid: dict[str, list],
    *,
    criterion: str,
    exhaustive: bool,
    start: InstanceConfig | None = None,
    zoomed: ZoomedProbabilities | None = None,
) -> list[tuple[dict[str, float], InstanceConfig]]:
    results: dict[tuple, tuple[dict[str, float], InstanceConfig]] = {}
    base = (start or InstanceConfig()).model_dump()

    def evaluate(values: dict) -> tuple[dict[str, float], InstanceConfig]:
        key = tuple(values[name] for name in grid)
        if key not in results:
            candidate = InstanceConfig(**{**base, **values})
            results[key] = (_score(items, candidate, zoomed), candidate)
        return results[key]

    if exhaustive:
        for values in itertools.product(*grid.values()):
            evaluate(dict(zip(grid, values, strict=True)))
    else:
        defaults = base
        best = {name: min(options, key=lambda v, d=defaults[name]: abs(v - d))
                for name, options in grid.items()}  # fmt: skip
        for _ in range(2):
            for name, options in grid.items():
                scored = [(evaluate({**best, name: v}), v) for v in options]
                best[name] = max(scored, key=lambda r: _key(r[0][0], criterion))[1]
    ranked = sorted(results.values(), key=lambda r: _key(r[0], criterion), reverse=True)
    return ranked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="training run folder or checkpoint")
    parser.add_argument("--out", type=Path, required=True, help="shipped model folder")
    parser.add_argument("--tta", action="store_true", help="choose with mirror TTA predictions")
    parser.add_argument("--criterion", choices=["pooled_f1", "dsb"], default="pooled_f1")
    parser.add_argument("--search", choices=["coordinate", "grid"], default="coordinate")
    parser.add_argument("--cache", type=Path, help="keep the validation probabilities here (.npz)")
    parser.add_argument(
        "--compare", help="also score this model (e.g. the shipped one) on the same images"
    )
    parser.add_argument(
        "--zoom", action="store_true", help="also search the second-pass zoom by nucleus size"
    )
    parser.add_argument("--max-cases", type=int, help="first N validation images (smoke tests)")
    parser.add_argument(
        "--no-seed-split", action="store_true", help="leave seed_split_h_px out of the search"
    )
    parser.add_argument(
        "--recipe",
        nargs="+",
        type=Path,
        default=[],
        help="the training configs of every stage, in order (recorded with their sha256 in "
        "the summary, OUT/ship_summary.json, for the model card)",
    )
    args = parser.parse_args()

    trained = load_checkpoint(resolve_model_path(args.run))
    if not trained.is_instance_model:
        raise SystemExit("not an instance model (training target instance_boundary)")
    # the shipped weights are float16; settings are chosen with exactly those weights
    checkpoint = Checkpoint(
        network=trained.network,
        plans=trained.plans,
        state_dict={
            k: v.half() if v.is_floating_point() else v for k, v in trained.state_dict.items()
        },
        training_config=trained.training_config,
        target=trained.target,
        epoch=trained.epoch,
        best_metric=trained.best_metric,
    )
    config = TrainConfig.model_validate(checkpoint.training_config)
    cases = _validation_cases(config)[: args.max_cases]
    kinds = {c.id: (c.modality or "").removeprefix("microscopy_") for c in cases}
    items = _validation_probabilities(checkpoint, cases, mirror=args.tta, cache=args.cache)
    default = _score(items, InstanceConfig())
    print(f"defaults {InstanceConfig().model_dump()}: {default}")
    grid = {name: v for name, v in GRID.items() if name != "seed_split_h_px"}
    grid |= {"min_size_px": _min_size_candidates(config)}
    if not args.no_seed_split:
        grid["seed_split_h_px"] = GRID["seed_split_h_px"]
    print(f"grid: {grid}")
    results = _search(items, grid, criterion=args.criterion, exhaustive=args.search == "grid")
    print(f"{len(results)} settings scored")
    for scores, candidate in results[:8]:
        print(json.dumps({**candidate.model_dump(), **{k: round(v, 4) for k, v in scores.items()}}))
    best_scores, best = results[0]
    if args.zoom:
        zoomed = ZoomedProbabilities(
            checkpoint,
            cases,
            mirror=args.tta,
            cache=args.cache.with_name(f"zoomed_{args.cache.name}") if args.cache else None,
        )
        print(f"zoom grid: {ZOOM_GRID}")
        zoom_results = _search(
            items, ZOOM_GRID, criterion=args.criterion, exhaustive=False, start=best,
            zoomed=zoomed,
        )  # fmt: skip
        zoomed.save()
        for scores, candidate in zoom_results[:5]:
            print(
                json.dumps(
                    {**candidate.model_dump(), **{k: round(v, 4) for k, v in scores.items()}}
                )
            )
        if _key(zoom_results[0][0], args.criterion) > _key(best_scores, args.criterion):
            best_scores, best = zoom_results[0]
    else:
        zoomed = None
    checkpoint.instance_postprocess = best.model_dump(mode="json")
    if args.tta:
        checkpoint.inference_defaults = {"mirror": True}
    args.out.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(checkpoint, args.out / "checkpoint.pt")
    summary = {
        "validation_cases": [case_id for case_id, _, _ in items],
        "chosen": best.model_dump(mode="json"),
        "mirror_tta": args.tta,
        "criterion": args.criterion,
        "search": args.search,
        "grid": grid | (ZOOM_GRID if args.zoom else {}),
        "validation": {k: round(v, 4) for k, v in best_scores.items()},
        "validation_with_defaults": {k: round(v, 4) for k, v in default.items()},
        "epoch": checkpoint.epoch,
        "size_bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "recipe": [
            {"config": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
            for p in args.recipe
        ],
    }
    print(json.dumps(summary, indent=2))
    (args.out / "ship_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    references = {i: r for i, _, r in items}
    chosen = {i: _label(i, p, best, zoomed) for i, p, _ in items}
    lines = [TABLE_HEADER, *_kind_table("new", chosen, references, kinds)]
    if args.compare:
        other = load_checkpoint(resolve_model_path(args.compare))
        infer = InferConfig(mirror=args.tta)
        settings = resolve_instance_config(other)
        print(f"{args.compare}: its own settings {settings}")
        seen = _trained_on(other)
        unseen = [c for c in cases if str((ROOT / c.image).resolve()) not in seen]
        print(f"{len(cases) - len(unseen)} validation image(s) were training images of the "
              f"compared model: both are scored on the other {len(unseen)}")  # fmt: skip
        theirs = {
            c.id: np.asarray(
                predict_with_checkpoint(
                    other, read_image(ROOT / c.image), config=infer
                ).labels.array
            )[:, :, 0]
            for c in unseen
        }
        ours = {c.id: chosen[c.id] for c in unseen}
        lines += _kind_table("new, images unseen by both", ours, references, kinds)
        lines += _kind_table(str(args.compare), theirs, references, kinds)
    print("\nvalidation images, chosen settings:")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
