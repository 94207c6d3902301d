"""The fit loop shared by every trainer; a :class:`FitStrategy` says what differs.

One epoch is ``iterations_per_epoch`` optimisation steps. Every random stream is re-seeded
from ``seed + 1000 * epoch + rank`` at the start of each epoch, so a run resumed from the last
checkpoint continues exactly as the uninterrupted run would (same batches, same losses).
Under ``torchrun`` (``WORLD_SIZE`` > 1) the network is wrapped in DistributedDataParallel
(gloo on CPU, NCCL on CUDA); each rank samples its own batches; rank 0 validates, saves and
logs. The strategy supplies the data, the loss and the validation score: the semantic
trainer (patches, Dice + cross-entropy, sliding-window Dice) and the instance trainer
(Mask R-CNN images and targets, its summed losses, instance F1) differ only there.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from medseg.core import (
    ConfigError,
    InputError,
    OutputExistsError,
    atomic_output,
    dump_config,
    progress_bar,
)
from medseg.io import Case, DatasetManifest
from medseg.models import (
    Checkpoint,
    NetworkConfig,
    Precision,
    build_autocast,
    build_model,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
)
from medseg.training._config import OptimizerName, TrainConfig, compute_poly_factor
from medseg.transforms import Plans

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "checkpoint_last.pt"
BEST_CHECKPOINT = "checkpoint_best.pt"


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


def compute_sampling_probabilities(
    cases: Sequence[Case], sampling_weights: dict[str, float], *, default_modality: str
) -> np.ndarray | None:
    """Probability of drawing each training case from ``TrainConfig.sampling_weights``.

    A case without its own ``modality`` has ``default_modality`` (the manifest's). Returns
    None for uniform sampling (no weights), else float64 probabilities summing to 1 in the
    order of ``cases``.

    Raises
    ------
    ConfigError
        If a weighted modality is not the modality of any training case.
    """
    if not sampling_weights:
        return None
    case_modalities = [c.modality or default_modality for c in cases]
    modalities = sorted(set(case_modalities))
    unknown = sorted(set(sampling_weights) - set(modalities))
    if unknown:
        raise ConfigError(
            f"sampling_weights names modality {unknown[0]!r}, which no training case has; "
            f"expected one of {', '.join(modalities)}"
        )
    weights = np.array([sampling_weights.get(m, 1.0) for m in case_modalities], dtype=np.float64)
    return weights / weights.sum()


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


class FitStrategy(Protocol):
    """What a trainer adds to the shared fit loop.

    Attributes
    ----------
    clip_norm
        Gradient-norm clip of each step.
    validation_key, validation_name
        Metric name of the validation score (MLflow) and its name in the epoch's log line.
    find_unused_parameters
        DistributedDataParallel's flag (detection heads get no gradient without proposals).
    limit_cpu_threads
        Apply ``config.cpu_threads`` on CPU during the run.
    cpu_bf16
        Honour ``config.cpu_bf16`` (bfloat16 autocast of the forward pass on CPU).
    """

    clip_norm: float
    validation_key: str
    validation_name: str
    find_unused_parameters: bool
    limit_cpu_threads: bool
    cpu_bf16: bool

    def prepare(self, *, device: torch.device) -> None:
        """Load the data (called once, after the model is built and resumed)."""
        ...

    def batches(self, *, epoch_seed: int, device: torch.device) -> Iterator[tuple[Any, Any]]:
        """The epoch's ``(inputs, targets)`` on ``device``; re-seeds its augmentation first."""
        ...

    def forward(self, module: torch.nn.Module, inputs: Any, targets: Any) -> Any:
        """The network's output for one step (run under the autocast of the run)."""
        ...

    def compute_loss(
        self, outputs: Any, targets: Any
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The step's loss and its named parts (logged as epoch means; may be empty)."""
        ...

    def can_validate(self) -> bool:
        """Whether a validation score can be computed (a score function and cases)."""
        ...

    def validate(self, model: torch.nn.Module, *, device: torch.device) -> float:
        """Mean validation score of ``model`` (NaN if no case could be scored)."""
        ...


def load_initial_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Start ``model`` from a checkpoint's weights (``TrainConfig.init_weights``).

    Tensors of the same shape are copied. A tensor whose shape differs only where the source
    network has its number of output classes (an output head with more classes) keeps the
    overlapping part; along its first larger axis the added entries
    copy the interior class's slice (index 1, so an added class starts as the interior), along
    any further larger axis they are zero (an added input channel contributes nothing yet).

    Raises
    ------
    ConfigError
        If a tensor is missing or differs in shape other than by added output classes.
    """
    checkpoint = load_checkpoint(Path(path))
    source, classes = checkpoint.state_dict, checkpoint.network.out_channels
    state = model.state_dict()
    missing = sorted(set(state) - set(source))
    if missing:
        raise ConfigError(f"init_weights {path}: no tensor {missing[0]} (another network?)")
    for key, target in state.items():
        old = source[key].to(target.dtype)  # state_dict tensors share the parameters' memory
        if old.shape == target.shape:
            with torch.no_grad():
                target.copy_(old)
            continue
        if old.ndim != target.ndim or any(
            o != n and (o != classes or n < o) for o, n in zip(old.shape, target.shape, strict=True)
        ):
            raise ConfigError(
                f"init_weights {path}: tensor {key} has shape {tuple(old.shape)}, the model "
                f"needs {tuple(target.shape)}"
            )
        grown = torch.zeros_like(target)
        grown[tuple(slice(0, n) for n in old.shape)] = old
        axis = next(
            a for a, (o, n) in enumerate(zip(old.shape, target.shape, strict=True)) if n > o
        )
        extra = [slice(0, n) for n in old.shape]
        extra[axis] = slice(old.shape[axis], target.shape[axis])
        interior = [slice(0, n) for n in old.shape]
        interior[axis] = slice(1, 2)
        grown[tuple(extra)] = old[tuple(interior)]
        with torch.no_grad():
            target.copy_(grown)
    logger.info("weights initialised from %s", path)


def fit(
    strategy: FitStrategy,
    config: TrainConfig,
    *,
    plans: Plans,
    network: NetworkConfig,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    run_logger: RunLogger | None = None,
    stop_after_epochs: int | None = None,
) -> TrainResult:
    """Train ``network`` with ``strategy``; write checkpoints into ``out_dir``.

    Parameters as :func:`~medseg.training.train_model`'s. Raises OutputExistsError if
    ``out_dir`` holds a checkpoint and neither ``resume`` nor ``overwrite`` is set.
    """
    started = time.perf_counter()
    cpu_started = _cpu_seconds()
    out_dir = Path(out_dir)
    last_path = out_dir / LAST_CHECKPOINT
    best_path = out_dir / BEST_CHECKPOINT
    if last_path.exists() and not (resume or overwrite):
        raise OutputExistsError(
            "training output already holds a checkpoint; pass --resume to continue or "
            "--overwrite to start again",
            path=last_path,
        )
    batch_size = config.batch_size or plans.batch_size
    with (
        _distributed(config.device) as (rank, world, device),
        _cpu_threads(
            config.cpu_threads if strategy.limit_cpu_threads and device.type == "cpu" else None
        ),
    ):
        _seed_everything(config.seed)
        model = build_model(network).to(device)
        if config.init_weights is not None and not (resume and last_path.exists()):
            load_initial_weights(model, config.init_weights)
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

            extra = {"find_unused_parameters": True} if strategy.find_unused_parameters else {}
            train_module = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None, **extra
            )
        strategy.prepare(device=device)
        result = TrainResult(last_checkpoint=last_path, best_checkpoint=None, epochs_completed=0)
        if rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            _write_run_files(out_dir, config, plans, overwrite=True)
            if run_logger is not None and start_epoch == 0:
                run_logger.log_params(_run_params(config, plans, network, batch_size, world))
        end_epoch = config.epochs
        if stop_after_epochs is not None:
            end_epoch = min(end_epoch, start_epoch + stop_after_epochs)
        use_bf16 = strategy.cpu_bf16 and config.cpu_bf16 and device.type == "cpu"
        precision = Precision.FP16 if use_amp else Precision.BF16 if use_bf16 else Precision.FP32
        model.train()
        steps = (end_epoch - start_epoch) * config.iterations_per_epoch
        # one bar over every step of this call (rank 0), with time left
        bar_total = steps if rank == 0 else 0
        with progress_bar(total=bar_total, description="train", unit="step") as bar:
            for epoch in range(start_epoch, end_epoch):
                epoch_seed = config.seed + 1000 * epoch + rank
                _seed_everything(epoch_seed)
                losses: list[float] = []
                parts: dict[str, list[float]] = {}
                for inputs, targets in strategy.batches(epoch_seed=epoch_seed, device=device):
                    optimizer.zero_grad(set_to_none=True)
                    with build_autocast(device, precision):
                        outputs = strategy.forward(train_module, inputs, targets)
                    loss, loss_parts = strategy.compute_loss(outputs, targets)
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), strategy.clip_norm)
                    scaler.step(optimizer)
                    scaler.update()
                    losses.append(float(loss.detach()))
                    for key, value in loss_parts.items():
                        parts.setdefault(key, []).append(float(value.detach()))
                if rank == 0:
                    bar.update(1)
                metrics = {
                    "train_loss": float(np.mean(losses)),
                    "lr": optimizer.param_groups[0]["lr"],
                }
                metrics |= {key: float(np.mean(values)) for key, values in parts.items()}
                scheduler.step()
                result.step_losses += losses
                if rank == 0 and strategy.can_validate() and _validation_due(config, epoch):
                    value = strategy.validate(model, device=device)
                    metrics[strategy.validation_key] = value
                    result.validation.append((epoch, value))
                    best_metric = _keep_best(
                        value, best_metric, model, network, plans, config, epoch, best_path
                    )
                if rank == 0:
                    _end_epoch(
                        model, network, plans, config, epoch, best_metric,
                        (optimizer, scheduler, scaler), last_path, metrics, run_logger,
                        validation_key=strategy.validation_key,
                        validation_name=strategy.validation_name,
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
