"""Supervised training of semantic segmenters from a manifest and plans.

One epoch is ``iterations_per_epoch`` batches of patches sampled from MONAI's
``CacheDataset`` (preprocessing cached, augmentation random). Every random stream is
re-seeded from ``seed + epoch`` at the start of each epoch, so a run resumed from the last
checkpoint continues exactly as the uninterrupted run would (same batches, same losses).
Under ``torchrun`` (``WORLD_SIZE`` > 1) the network is wrapped in DistributedDataParallel
(gloo on CPU, NCCL on CUDA); each rank samples its own patches; rank 0 validates, saves and
logs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from monai.transforms import Transform

from medseg.core import ConfigError, InputError, OutputExistsError, atomic_output, dump_config
from medseg.io import Case, DatasetManifest
from medseg.models import (
    Checkpoint,
    ModelName,
    ModelTask,
    NetworkConfig,
    build_model,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
)
from medseg.training._config import OptimizerName, TrainConfig, compute_poly_factor
from medseg.training._config import network_from_plans as _network_from_plans
from medseg.transforms import (
    InstancesToBoundaryClassesd,
    Plans,
    TrainingTarget,
    build_augmentation,
    build_preprocessing,
    load_case,
    run_chain,
    target_label_names,
)

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "checkpoint_last.pt"
BEST_CHECKPOINT = "checkpoint_best.pt"

#: ``score_fn(prediction, reference) -> float`` on binary masks (e.g. compute_dice).
ScoreFn = Callable[[np.ndarray, np.ndarray], float]


class RunLogger(Protocol):
    """What training logs to (``medseg.tracking.Tracker`` satisfies it)."""

    def log_params(self, params: dict[str, object]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], *, step: int | None = None) -> None: ...

    def log_artifact(self, path: str | Path, *, artifact_path: str | None = None) -> None: ...


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes
    ----------
    last_checkpoint, best_checkpoint
        Paths (best is None until a validation ran).
    epochs_completed
        Epochs finished in total (including those before a resume).
    step_losses
        Loss of every optimisation step run by this call, in order.
    validation
        ``(epoch, mean Dice)`` for each validation run by this call.
    best_metric
        Best mean validation Dice (NaN if none).
    seconds, cpu_seconds
        Wall time of this call, and CPU time (user + system) of this process and of the
        data-loader workers it waited for, over the same span.
    """

    last_checkpoint: Path
    best_checkpoint: Path | None
    epochs_completed: int
    step_losses: list[float] = field(default_factory=list)
    validation: list[tuple[int, float]] = field(default_factory=list)
    best_metric: float = float("nan")
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished child processes."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - MONAI transforms without a state use it
    torch.manual_seed(seed)


def _select_cases(manifest: DatasetManifest, splits: Sequence[Any], *, what: str) -> list[Case]:
    cases = [c for c in manifest.cases if c.split in splits and c.label is not None]
    if not cases and what == "training":
        names = ", ".join(s.value for s in splits)
        raise InputError(
            f"manifest {manifest.name} has no labelled cases in split(s) {names} for {what}; "
            "set train_splits in the training config"
        )
    return cases


def select_training_cases(
    config: TrainConfig, manifest: DatasetManifest
) -> tuple[list[Case], list[Case]]:
    """Training and validation cases: by split, with ``validation_case_ids`` held out.

    Raises
    ------
    ConfigError
        If a held-out id is not a labelled case of the manifest.
    """
    held_out = set(config.validation_case_ids)
    labelled = {c.id: c for c in manifest.cases if c.label is not None}
    unknown = sorted(held_out - set(labelled))
    if unknown:
        raise ConfigError(
            f"validation_case_ids not among the labelled cases of {manifest.name}: "
            f"{', '.join(unknown[:5])}"
        )
    train = [
        c
        for c in _select_cases(manifest, config.train_splits, what="training")
        if c.id not in held_out
    ]
    if not train:
        raise InputError("every training case is held out for validation")
    validation = _select_cases(manifest, config.validation_splits, what="validation")
    validation += [c for c in manifest.cases if c.id in held_out and c not in validation]
    return train, validation


def training_plans(plans: Plans, config: TrainConfig) -> Plans:
    """The plans with the class names the network learns for the config's target.

    ``instance_boundary`` replaces the dataset's single object class by its interior and
    boundary classes (three outputs with background); ``semantic`` keeps the plans as they are.
    """
    if config.target is TrainingTarget.SEMANTIC:
        return plans
    return plans.model_copy(update={"labels": target_label_names(config.target, plans.labels)})


class _LoadCased(Transform):
    """Dict transform: a manifest case → image/label arrays.

    A MONAI ``Transform`` subclass so that ``CacheDataset`` caches it (it caches the
    deterministic ``Transform`` prefix of the chain).
    """

    def __init__(
        self,
        *,
        root: Path,
        labels: dict[int, str],
        image_keys: list[str],
        instance_label: bool = False,
    ) -> None:
        self.root = root
        self.labels = labels
        self.image_keys = image_keys
        self.instance_label = instance_label

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        arrays = load_case(
            item["case"],
            root=self.root,
            labels=self.labels,
            image_keys=self.image_keys,
            instance_label=self.instance_label,
        )
        label = arrays.label[None] if arrays.label is not None else None
        return {"image": arrays.image, "label": label, "spacing_mm": list(arrays.spacing_mm)}


def _drop_meta(item: dict[str, Any]) -> dict[str, Any]:
    return {"image": item["image"], "label": item["label"]}


def _build_datasets(
    config: TrainConfig, plans: Plans, manifest: DatasetManifest, root: Path, batch_size: int
) -> tuple[Any, list[dict[str, Any]], Any]:
    from monai.data import CacheDataset
    from monai.transforms import Compose, EnsureTyped, Identity, Lambda

    instances = config.target is TrainingTarget.INSTANCE_BOUNDARY
    load = _LoadCased(
        root=root,
        labels={int(k): v for k, v in manifest.labels.items()},
        image_keys=plans.image_keys,
        instance_label=instances,
    )
    preprocess = build_preprocessing(plans)
    augment = build_augmentation(plans)
    # instance targets are made after augmentation (on the resampled, rotated instance ids),
    # so the boundary band keeps its width in network pixels
    target = (
        InstancesToBoundaryClassesd(boundary_width_px=config.boundary_width_px)
        if instances
        else Identity()
    )
    train_cases, validation_cases = select_training_cases(config, manifest)
    # the chains' transforms are listed one by one: a nested Compose counts as random for
    # CacheDataset, which would then cache nothing after loading (normalisation, padding and
    # the crop's voxel indices are deterministic and cached this way)
    chain = Compose(
        [
            load,
            *preprocess.transforms,
            Lambda(_drop_meta),
            *augment.transforms,
            target,
            EnsureTyped(keys=["image", "label"]),
        ]
    )
    dataset = CacheDataset(
        data=[{"case": c} for c in train_cases],
        transform=chain,
        cache_rate=config.cache_rate,
        num_workers=None,
        progress=False,
        # the first random transform (the patch crop) reads the cached item without changing
        # it, so copying every whole cached image per sample (MONAI's default) is not needed
        copy_cache=False,
    )
    validation = []
    for case in validation_cases:
        item = target(run_chain(preprocess, load({"case": case})))
        item["case_id"] = case.id
        validation.append(item)
    logger.info(
        "training on %d case(s), validating on %d, batch %d",
        len(train_cases),
        len(validation),
        batch_size,
    )
    return dataset, validation, chain


def _batches(
    dataset: Any, *, batch_size: int, iterations: int, seed: int, num_workers: int
) -> Iterator[dict[str, torch.Tensor]]:
    from monai.data import DataLoader
    from torch.utils.data import RandomSampler

    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(
        dataset, replacement=True, num_samples=batch_size * iterations, generator=generator
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        generator=generator,
    )
    yield from loader


def _make_loss(network: NetworkConfig) -> Callable[[Any, torch.Tensor], torch.Tensor]:
    from monai.losses import DeepSupervisionLoss, DiceCELoss

    base = DiceCELoss(to_onehot_y=True, softmax=True, smooth_nr=1e-5, smooth_dr=1e-5)
    if network.model_name is ModelName.DYNUNET and network.deep_supervision:
        supervised = DeepSupervisionLoss(base, weight_mode="exp")

        def deep_loss(output: Any, label: torch.Tensor) -> torch.Tensor:
            if output.ndim == label.ndim + 1:  # (B, heads, C, *S) from DynUNet in train mode
                return supervised(list(torch.unbind(output, dim=1)), label)
            return base(output, label)

        return deep_loss
    return base


def _make_optimizer(config: TrainConfig, params: Any) -> torch.optim.Optimizer:
    lr = config.initial_learning_rate
    if config.optimizer is OptimizerName.SGD:
        return torch.optim.SGD(
            params, lr=lr, momentum=0.99, nesterov=True, weight_decay=config.weight_decay
        )
    return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)


@contextlib.contextmanager
def _distributed(device_name: str) -> Iterator[tuple[int, int, torch.device]]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield 0, 1, resolve_device(device_name)
        return
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    try:
        yield dist.get_rank(), world, device
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def _cpu_threads(threads: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for the block, then restore it."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _validate(
    model: torch.nn.Module,
    items: list[dict[str, Any]],
    *,
    plans: Plans,
    overlap: float,
    device: torch.device,
    score_fn: ScoreFn,
) -> float:
    from monai.inferers import sliding_window_inference

    scores = []
    model.eval()
    with torch.no_grad():
        for item in items:
            image = torch.as_tensor(np.asarray(item["image"]))[None].to(device)
            logits = sliding_window_inference(
                image, plans.patch_size, 2, model, overlap=overlap, mode="gaussian"
            )
            prediction = logits[0].argmax(0).cpu().numpy()
            label = np.asarray(item["label"])[0]
            for cls in plans.labels:
                score = score_fn(prediction == cls, label == cls)
                if not math.isnan(score):
                    scores.append(score)
    model.train()
    return float(np.mean(scores)) if scores else float("nan")


def network_from_plans(plans: Plans, config: TrainConfig) -> NetworkConfig:
    """The network this training config builds for these plans."""
    return _network_from_plans(plans, config.model)


def train_model(
    config: TrainConfig,
    *,
    plans: Plans,
    manifest: DatasetManifest,
    root: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    run_logger: RunLogger | None = None,
    score_fn: ScoreFn | None = None,
    stop_after_epochs: int | None = None,
    instance_score_fn: ScoreFn | None = None,
) -> TrainResult:
    """Train the configured network; write checkpoints into ``out_dir``.

    Instance segmenters (``maskrcnn``) are trained by
    :func:`~medseg.training.train_instance_model` with ``instance_score_fn``.

    Parameters
    ----------
    resume
        Continue from ``out_dir/checkpoint_last.pt`` (its weights, optimiser, schedule and
        epoch); the data streams are re-seeded per epoch so the continuation is exact.
    overwrite
        Start afresh even if ``out_dir`` holds checkpoints.
    run_logger
        Receives params, per-epoch metrics and the checkpoints (rank 0 only).
    score_fn
        Binary-mask score for validation (the project's ``compute_dice``); without it no
        validation runs and the best checkpoint is not written.
    stop_after_epochs
        Stop after this many epochs in this call (as if killed); the schedule still spans
        ``config.epochs``.
    instance_score_fn
        Score of a predicted instance map against the reference one (e.g. F1 at IoU 0.5)
        for validating instance segmenters.

    Raises
    ------
    OutputExistsError
        If ``out_dir`` holds a checkpoint and neither ``resume`` nor ``overwrite`` is set.
    """
    if NetworkConfig(name=config.model.name).task is ModelTask.INSTANCE:
        from medseg.training._instance_trainer import train_instance_model

        return train_instance_model(
            config,
            plans=plans,
            manifest=manifest,
            root=root,
            out_dir=out_dir,
            resume=resume,
            overwrite=overwrite,
            run_logger=run_logger,
            score_fn=instance_score_fn,
            stop_after_epochs=stop_after_epochs,
        )
    started = time.perf_counter()
    cpu_started = _cpu_seconds()
    root = Path(root)
    out_dir = Path(out_dir)
    last_path = out_dir / LAST_CHECKPOINT
    best_path = out_dir / BEST_CHECKPOINT
    if last_path.exists() and not (resume or overwrite):
        raise OutputExistsError(
            "training output already holds a checkpoint; pass --resume to continue or "
            "--overwrite to start again",
            path=last_path,
        )
    plans = training_plans(plans, config)
    network = network_from_plans(plans, config)
    batch_size = config.batch_size or plans.batch_size
    with (
        _distributed(config.device) as (rank, world, device),
        _cpu_threads(config.cpu_threads if device.type == "cpu" else None),
    ):
        _seed_everything(config.seed)
        model = build_model(network).to(device)
        optimizer = _make_optimizer(config, model.parameters())
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: compute_poly_factor(e, epochs=config.epochs)
        )
        use_amp = config.amp and device.type == "cuda"
        use_bf16 = config.cpu_bf16 and device.type == "cpu"
        use_autocast = use_amp or use_bf16
        autocast_dtype = torch.bfloat16 if use_bf16 else torch.float16
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
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        dataset, validation, chain = _build_datasets(config, plans, manifest, root, batch_size)
        loss_fn = _make_loss(network)
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
            losses = []
            for batch in _batches(
                dataset,
                batch_size=batch_size,
                iterations=config.iterations_per_epoch,
                seed=epoch_seed,
                num_workers=config.num_workers,
            ):
                image = batch["image"].to(device).float()
                label = batch["label"].to(device)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=use_autocast):
                    output = train_module(image)
                    if use_bf16:  # the loss in float32: bf16 softmax/Dice sums lose digits
                        output = output.float()
                loss = loss_fn(output, label)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
                scaler.step(optimizer)
                scaler.update()
                losses.append(float(loss.detach()))
            metrics = {"train_loss": float(np.mean(losses)), "lr": optimizer.param_groups[0]["lr"]}
            scheduler.step()
            result.step_losses += losses
            if rank == 0 and score_fn is not None and validation and _validation_due(config, epoch):
                dice = _validate(
                    model,
                    validation,
                    plans=plans,
                    overlap=config.overlap,
                    device=device,
                    score_fn=score_fn,
                )
                metrics["val_dice"] = dice
                result.validation.append((epoch, dice))
                best_metric = _keep_best(
                    dice, best_metric, model, network, plans, config, epoch, best_path
                )
            if rank == 0:
                _end_epoch(
                    model, network, plans, config, epoch, best_metric,
                    (optimizer, scheduler, scaler), last_path, metrics, run_logger,
                    validation_key="val_dice", validation_name="val Dice",
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


def _validation_due(config: TrainConfig, epoch: int) -> bool:
    """Whether ``epoch`` (0-based) validates: every ``validate_every_epochs`` and the last."""
    return (epoch + 1) % config.validate_every_epochs == 0 or epoch + 1 == config.epochs


def _keep_best(
    value: float,
    best_metric: float,
    model: torch.nn.Module,
    network: NetworkConfig,
    plans: Plans,
    config: TrainConfig,
    epoch: int,
    best_path: Path,
) -> float:
    """The new best metric; writes the best checkpoint when ``value`` improves on it."""
    if math.isnan(value) or not (math.isnan(best_metric) or value > best_metric):
        return best_metric
    save_checkpoint(_checkpoint(model, network, plans, config, epoch, value), best_path)
    return value


def _end_epoch(
    model: torch.nn.Module,
    network: NetworkConfig,
    plans: Plans,
    config: TrainConfig,
    epoch: int,
    best_metric: float,
    optimization: tuple[Any, Any, Any],
    last_path: Path,
    metrics: dict[str, float],
    run_logger: RunLogger | None,
    *,
    validation_key: str,
    validation_name: str,
) -> None:
    """Rank 0 after an epoch: the last checkpoint with the (optimizer, scheduler, scaler)
    state to resume from, the epoch's log line and its metrics in MLflow."""
    optimizer, scheduler, scaler = optimization
    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
    }
    save_checkpoint(
        _checkpoint(model, network, plans, config, epoch, best_metric, state), last_path
    )
    logger.info(
        "epoch %d/%d: loss %.4f%s",
        epoch + 1,
        config.epochs,
        metrics["train_loss"],
        f", {validation_name} {metrics[validation_key]:.4f}" if validation_key in metrics else "",
    )
    if run_logger is not None:
        run_logger.log_metrics(metrics, step=epoch)


def _log_run_artifacts(
    run_logger: RunLogger, out_dir: Path, last_path: Path, best_path: Path | None
) -> None:
    """The checkpoints, plans and config of a finished run as MLflow artifacts."""
    run_logger.log_artifact(last_path, artifact_path="checkpoints")
    if best_path is not None:
        run_logger.log_artifact(best_path, artifact_path="checkpoints")
    for name in ("plans.yaml", "train_config.yaml"):
        run_logger.log_artifact(out_dir / name)


def _checkpoint(
    model: torch.nn.Module,
    network: NetworkConfig,
    plans: Plans,
    config: TrainConfig,
    epoch: int,
    best_metric: float,
    resume_state: dict[str, Any] | None = None,
) -> Checkpoint:
    return Checkpoint(
        network=network,
        plans=plans,
        state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
        training_config=config.model_dump(mode="json"),
        target=config.target,
        epoch=epoch,
        best_metric=best_metric,
        resume_state=resume_state or {},
    )


def _write_run_files(out_dir: Path, config: TrainConfig, plans: Plans, *, overwrite: bool) -> None:
    for name, model in (("plans.yaml", plans), ("train_config.yaml", config)):
        with atomic_output(out_dir / name, overwrite=overwrite) as tmp:
            tmp.write_text(dump_config(model), encoding="utf-8")


def _run_params(
    config: TrainConfig, plans: Plans, network: NetworkConfig, batch_size: int, world: int
) -> dict[str, object]:
    return {
        "dataset": plans.dataset,
        "model": network.name,
        "features": network.features,
        "patch_size": "x".join(map(str, plans.patch_size)),
        "spacing_mm": "x".join(f"{s:.3g}" for s in plans.target_spacing_mm),
        "batch_size": batch_size,
        "epochs": config.epochs,
        "iterations_per_epoch": config.iterations_per_epoch,
        "optimizer": config.optimizer.value,
        "learning_rate": config.initial_learning_rate,
        "seed": config.seed,
        "world_size": world,
    }


def check_plans_match(plans: Plans, manifest: DatasetManifest) -> None:
    """Raise ConfigError if the plans were made for another dataset."""
    if plans.dataset != manifest.name:
        raise ConfigError(
            f"plans are for dataset {plans.dataset!r}, the manifest is {manifest.name!r}; "
            "run medseg plan on this manifest"
        )
