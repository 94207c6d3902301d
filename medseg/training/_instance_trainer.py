"""Training of instance segmenters (Mask R-CNN) from instance label maps.

``medseg train`` dispatches here when the model is an instance segmenter. The run folder,
checkpoints (:class:`~medseg.models.Checkpoint` with plans, labels and config), MLflow
logging, resume and DDP behave as for the semantic models (:mod:`._trainer`):

- every case is read once and preprocessed with the plans (per-image z-score for
  microscopy); its label file is kept as an instance map (0 background, 1..N objects);
- a step takes ``batch_size`` cases drawn with replacement, each cropped to the plans'
  patch size (a crop centred on an object with probability ``foreground_oversampling``),
  flipped, rotated by multiples of 90° and intensity-scaled/shifted (MONAI transforms, so
  instances stay exact); targets (boxes, labels, masks) come from the cropped map;
- the loss is the sum of torchvision's five Mask R-CNN losses;
- every random stream is re-seeded from ``seed + 1000 · epoch + rank`` at the start of an
  epoch, so a run resumed from its last checkpoint continues exactly;
- validation (every ``validate_every_epochs``) predicts whole images and scores them with
  the given ``score_fn(predicted instances, reference instances)`` (F1 at IoU 0.5 from the
  CLI); the best checkpoint follows it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.core import InputError, OutputExistsError
from medseg.io import DatasetManifest, read_image
from medseg.models import build_model, detections_to_instances, load_checkpoint
from medseg.training._config import TrainConfig, compute_poly_factor
from medseg.training._config import network_from_plans as _network_from_plans
from medseg.training._instances import compute_instance_targets
from medseg.training._trainer import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    RunLogger,
    TrainResult,
    _cpu_seconds,
    _distributed,
    _end_epoch,
    _keep_best,
    _log_run_artifacts,
    _make_optimizer,
    _run_params,
    _seed_everything,
    _validation_due,
    _write_run_files,
    select_training_cases,
)
from medseg.transforms import Plans, build_preprocessing, load_case, run_chain

logger = logging.getLogger(__name__)

#: ``score_fn(predicted instances, reference instances) -> float`` on ``(H, W)`` maps.
InstanceScoreFn = Callable[[np.ndarray, np.ndarray], float]

#: Gradient-norm clip for the summed detection losses.
_CLIP_NORM = 10.0


def _load_instances(case: Any, *, root: Path) -> np.ndarray:
    """The case's label file as an ``(H, W)`` int32 instance map (rows, columns)."""
    array = np.asarray(read_image(root / case.label).array)
    if array.ndim == 4:
        array = array[..., 0]
    if array.ndim != 3 or array.shape[2] != 1:
        raise InputError(
            f"case {case.id}: instance training needs 2D label maps, found shape {array.shape}"
        )
    return np.ascontiguousarray(array[:, :, 0].T).astype(np.int32)


def load_instance_items(
    manifest: DatasetManifest, cases: list[Any], *, plans: Plans, root: Path
) -> list[dict[str, Any]]:
    """Preprocessed images ``(C, H, W)`` and instance maps ``(1, H, W)`` of ``cases``.

    Images are read as :func:`~medseg.transforms.load_case` does (``(C, column, row)``),
    preprocessed with the plans and transposed to torchvision's ``(C, row, column)``.
    """
    preprocess = build_preprocessing(plans)
    items = []
    for case in cases:
        arrays = load_case(
            case, root=root, labels=manifest.labels, with_label=False, image_keys=plans.image_keys
        )
        instances = _load_instances(case, root=root)
        if instances.shape != arrays.image.shape[1:][::-1]:
            raise InputError(
                f"case {case.id}: label map {instances.shape[::-1]} and image "
                f"{arrays.image.shape[1:]} differ in size"
            )
        item = run_chain(
            preprocess,
            {
                "image": arrays.image,
                "label": instances.T[None].copy(),
                "spacing_mm": list(arrays.spacing_mm),
            },
        )
        image = np.ascontiguousarray(np.swapaxes(np.asarray(item["image"]), 1, 2))
        label = np.ascontiguousarray(np.swapaxes(np.asarray(item["label"]), 1, 2))
        items.append({"image": image.astype(np.float32), "label": label.astype(np.int32)})
        items[-1]["case_id"] = case.id
    return items


def build_instance_augmentation(plans: Plans) -> Any:
    """Random crop (object-centred with the plans' oversampling), dihedral flips/rotations,
    intensity scale and shift: transforms that keep instance ids exact."""
    from monai.transforms import (
        Compose,
        RandCropByPosNegLabeld,
        RandFlipd,
        RandRotate90d,
        RandScaleIntensityd,
        RandShiftIntensityd,
        SpatialPadd,
    )

    keys = ["image", "label"]
    patch = [int(p) for p in reversed(plans.patch_size)]  # plans: (column, row); here (row, column)
    return Compose(
        [
            SpatialPadd(keys=keys, spatial_size=patch, mode="constant"),
            RandCropByPosNegLabeld(
                keys=keys,
                label_key="label",
                spatial_size=patch,
                pos=plans.foreground_oversampling,
                neg=1.0 - plans.foreground_oversampling,
                num_samples=1,
                allow_smaller=False,
            ),
            RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
            RandRotate90d(keys=keys, prob=0.75, max_k=3),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        ]
    )


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _sample_batch(
    items: list[dict[str, Any]],
    chain: Any,
    rng: np.random.Generator,
    *,
    batch_size: int,
    device: torch.device,
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    images, targets = [], []
    for index in rng.integers(0, len(items), size=batch_size):
        item = items[int(index)]
        out = chain({"image": item["image"], "label": item["label"]})
        out = out[0] if isinstance(out, list) else out
        image = torch.as_tensor(_to_numpy(out["image"]), dtype=torch.float32)
        instances = _to_numpy(out["label"])[0].astype(np.int64)
        target = compute_instance_targets(instances)
        images.append(image.to(device))
        targets.append({key: value.to(device) for key, value in target.items()})
    return images, targets


def predict_instance_map(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    device: torch.device,
    min_score: float = 0.5,
    mask_threshold: float = 0.5,
) -> np.ndarray:
    """``(H, W)`` instance map of one preprocessed ``(C, H, W)`` image."""
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        detections = model([torch.as_tensor(image, dtype=torch.float32, device=device)])[0]
    if was_training:
        model.train()
    return detections_to_instances(
        detections, shape=image.shape[1:], min_score=min_score, mask_threshold=mask_threshold
    )


def train_instance_model(
    config: TrainConfig,
    *,
    plans: Plans,
    manifest: DatasetManifest,
    root: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    run_logger: RunLogger | None = None,
    score_fn: InstanceScoreFn | None = None,
    stop_after_epochs: int | None = None,
) -> TrainResult:
    """Train the configured instance segmenter; arguments as :func:`train_model`'s.

    ``score_fn`` compares instance maps (e.g. F1 at IoU 0.5); without it, or without
    validation cases, no best checkpoint is written.
    """
    started = time.perf_counter()
    cpu_started = _cpu_seconds()
    root, out_dir = Path(root), Path(out_dir)
    last_path, best_path = out_dir / LAST_CHECKPOINT, out_dir / BEST_CHECKPOINT
    if last_path.exists() and not (resume or overwrite):
        raise OutputExistsError(
            "training output already holds a checkpoint; pass --resume to continue or "
            "--overwrite to start again",
            path=last_path,
        )
    network = _network_from_plans(plans, config.model)
    batch_size = config.batch_size or plans.batch_size
    with _distributed(config.device) as (rank, world, device):
        _seed_everything(config.seed)
        model = build_model(network).to(device)
        optimizer = _make_optimizer(config, model.parameters())
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: compute_poly_factor(e, epochs=config.epochs)
        )
        use_amp = config.amp and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        start_epoch, best_metric = 0, float("nan")
        if resume and last_path.exists():
            previous = load_checkpoint(last_path)
            model.load_state_dict(previous.state_dict)
            optimizer.load_state_dict(previous.resume_state["optimizer"])
            scheduler.load_state_dict(previous.resume_state["scheduler"])
            if "scaler" in previous.resume_state:
                scaler.load_state_dict(previous.resume_state["scaler"])
            start_epoch, best_metric = previous.epoch + 1, previous.best_metric
            logger.info("resuming after epoch %d", previous.epoch)
        train_module: torch.nn.Module = model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            train_module = DistributedDataParallel(
                model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True,  # heads get no gradient without proposals
            )
        # validation_case_ids are held out of training, as for the semantic trainer
        train_cases, validation_cases = select_training_cases(config, manifest)
        items = load_instance_items(manifest, train_cases, plans=plans, root=root)
        validation = load_instance_items(manifest, validation_cases, plans=plans, root=root)
        logger.info(
            "training %s on %d image(s), validating on %d, batch %d",
            network.name,
            len(items),
            len(validation),
            batch_size,
        )
        chain = build_instance_augmentation(plans)
        result = TrainResult(last_checkpoint=last_path, best_checkpoint=None, epochs_completed=0)
        if rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            _write_run_files(out_dir, config, plans, overwrite=True)
            if run_logger is not None and start_epoch == 0:
                run_logger.log_params(_run_params(config, plans, network, batch_size, world))
        end_epoch = config.epochs
        if stop_after_epochs is not None:
            end_epoch = min(end_epoch, start_epoch + stop_after_epochs)
        model.train()
        for epoch in range(start_epoch, end_epoch):
            epoch_seed = config.seed + 1000 * epoch + rank
            _seed_everything(epoch_seed)
            chain.set_random_state(seed=epoch_seed)
            rng = np.random.default_rng(epoch_seed)
            losses: list[float] = []
            parts: dict[str, list[float]] = {}
            for _ in range(config.iterations_per_epoch):
                images, targets = _sample_batch(
                    items, chain, rng, batch_size=batch_size, device=device
                )
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    loss_parts = train_module(images, targets)
                    loss = sum(loss_parts.values())
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), _CLIP_NORM)
                scaler.step(optimizer)
                scaler.update()
                losses.append(float(loss.detach()))
                for key, value in loss_parts.items():
                    parts.setdefault(key, []).append(float(value.detach()))
            metrics = {"train_loss": float(np.mean(losses)), "lr": optimizer.param_groups[0]["lr"]}
            metrics |= {key: float(np.mean(values)) for key, values in parts.items()}
            scheduler.step()
            result.step_losses += losses
            if rank == 0 and score_fn is not None and validation and _validation_due(config, epoch):
                scores = [
                    score_fn(
                        predict_instance_map(model, item["image"], device=device),
                        item["label"][0],
                    )
                    for item in validation
                ]
                finite = [s for s in scores if not math.isnan(s)]
                value = float(np.mean(finite)) if finite else float("nan")
                metrics["val_score"] = value
                result.validation.append((epoch, value))
                best_metric = _keep_best(
                    value, best_metric, model, network, plans, config, epoch, best_path
                )
            if rank == 0:
                _end_epoch(
                    model, network, plans, config, epoch, best_metric,
                    (optimizer, scheduler, scaler), last_path, metrics, run_logger,
                    validation_key="val_score", validation_name="val score",
                )  # fmt: skip
            if world > 1:
                torch.distributed.barrier()
            result.epochs_completed = epoch + 1
        result.best_metric = best_metric
        result.best_checkpoint = best_path if best_path.exists() else None
        if rank == 0 and run_logger is not None:
            _log_run_artifacts(run_logger, out_dir, last_path, result.best_checkpoint)
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = _cpu_seconds() - cpu_started
    return result
