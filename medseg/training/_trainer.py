"""Supervised training of semantic segmenters from a manifest and plans: the data, loss and
validation of :class:`SemanticStrategy`, run by the shared fit loop
(:func:`medseg.training._fit.fit`: seeding, resume, DDP, checkpoints, logging).

One epoch is ``iterations_per_epoch`` batches of patches sampled from MONAI's
``CacheDataset`` (preprocessing cached, augmentation random).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Transform

from medseg.core import ConfigError
from medseg.io import DatasetManifest
from medseg.models import ModelName, ModelTask, NetworkConfig
from medseg.training._config import TrainConfig
from medseg.training._config import network_from_plans as _network_from_plans
from medseg.training._fit import (
    RunLogger,
    TrainResult,
    compute_sampling_probabilities,
    fit,
    select_training_cases,
)
from medseg.training._instance_trainer import train_instance_model
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

#: ``score_fn(prediction, reference) -> float`` on binary masks (e.g. compute_dice).
ScoreFn = Callable[[np.ndarray, np.ndarray], float]


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
) -> tuple[Any, list[dict[str, Any]], Any, np.ndarray | None]:
    from monai.data import CacheDataset
    from monai.transforms import Compose, EnsureTyped, Identity, Lambda

    instances = config.target.is_instance
    if config.contact_weight != 1.0 and not instances:
        raise ConfigError(
            "contact_weight weighs the contact band between touching instances; it needs "
            f"target instance_boundary or instance_core, not {config.target.value}"
        )
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
        InstancesToBoundaryClassesd(
            boundary_width_px=config.boundary_width_px,
            core_fraction=(
                config.core_fraction if config.target is TrainingTarget.INSTANCE_CORE else None
            ),
            contact_weight=config.contact_weight,
        )
        if instances
        else Identity()
    )
    train_cases, validation_cases = select_training_cases(config, manifest)
    probabilities = compute_sampling_probabilities(
        train_cases, config.sampling_weights, default_modality=manifest.modality
    )
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
            EnsureTyped(keys=["image", "label", "weight"], allow_missing_keys=True),
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
    return dataset, validation, chain, probabilities


def _batches(
    dataset: Any,
    *,
    batch_size: int,
    iterations: int,
    seed: int,
    num_workers: int,
    probabilities: np.ndarray | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    from monai.data import DataLoader
    from torch.utils.data import RandomSampler, Sampler, WeightedRandomSampler

    generator = torch.Generator().manual_seed(seed)
    samples = batch_size * iterations
    sampler: Sampler[int]
    if probabilities is None:
        sampler = RandomSampler(dataset, replacement=True, num_samples=samples, generator=generator)
    else:  # TrainConfig.sampling_weights
        sampler = WeightedRandomSampler(
            torch.as_tensor(probabilities, dtype=torch.float64),
            num_samples=samples,
            replacement=True,
            generator=generator,
        )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        generator=generator,
    )
    yield from loader


def compute_weighted_cross_entropy(
    logits: torch.Tensor,
    label: torch.Tensor,
    pixel_weights: torch.Tensor,
    *,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy with a weight per pixel (and optionally per class).

    ``logits`` ``(B, C, *S)``, ``label`` ``(B, 1, *S)`` class indices, ``pixel_weights``
    ``(B, 1, *S)``. The weighted sum is divided by the summed class weights of the targets
    (the pixel count without class weights), so all-ones pixel weights give exactly torch's
    mean-reduced ``cross_entropy`` (MONAI's ``DiceCELoss`` cross-entropy part).
    """
    target = label[:, 0].long()
    losses = torch.nn.functional.cross_entropy(
        logits, target, weight=class_weights, reduction="none"
    )
    norm = class_weights[target].sum() if class_weights is not None else target.numel()
    return (losses * pixel_weights[:, 0].to(losses.dtype)).sum() / norm


def _make_loss(
    network: NetworkConfig, *, class_weights: Sequence[float] = ()
) -> Callable[..., torch.Tensor]:
    from monai.losses import DeepSupervisionLoss, DiceCELoss

    if class_weights and len(class_weights) != network.out_channels:
        raise ConfigError(
            f"class_weights must have one weight per output class ({network.out_channels}, "
            f"background first), not {len(class_weights)}"
        )
    base = DiceCELoss(
        to_onehot_y=True,
        softmax=True,
        smooth_nr=1e-5,
        smooth_dr=1e-5,
        weight=torch.tensor(class_weights, dtype=torch.float32) if class_weights else None,
    )
    if network.model_name is ModelName.DYNUNET and network.deep_supervision:
        supervised = DeepSupervisionLoss(base, weight_mode="exp")

        def deep_loss(
            output: Any, label: torch.Tensor, pixel_weights: torch.Tensor | None = None
        ) -> torch.Tensor:
            if pixel_weights is not None:
                raise ConfigError("contact_weight is not supported with deep supervision")
            if output.ndim == label.ndim + 1:  # (B, heads, C, *S) from DynUNet in train mode
                return supervised(list(torch.unbind(output, dim=1)), label)
            return base(output, label)

        return deep_loss

    def loss(
        output: torch.Tensor, label: torch.Tensor, pixel_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        if pixel_weights is None:
            return base(output, label)
        # TrainConfig.contact_weight: Dice as before, the cross-entropy weighted per pixel
        weights = base.cross_entropy.weight
        ce = compute_weighted_cross_entropy(output, label, pixel_weights, class_weights=weights)
        return base.lambda_dice * base.dice(output, label) + base.lambda_ce * ce

    return loss


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
    plans = training_plans(plans, config)
    network = network_from_plans(plans, config)
    strategy = SemanticStrategy(
        config, plans=plans, network=network, manifest=manifest, root=Path(root), score_fn=score_fn
    )
    return fit(
        strategy,
        config,
        plans=plans,
        network=network,
        out_dir=out_dir,
        resume=resume,
        overwrite=overwrite,
        run_logger=run_logger,
        stop_after_epochs=stop_after_epochs,
    )


class SemanticStrategy:
    """Semantic segmenters in the fit loop: patches from MONAI's ``CacheDataset``
    (preprocessing cached, augmentation random), Dice + cross-entropy (deep supervision for
    DynUNet), validation by sliding-window Dice over the validation cases."""

    clip_norm = 12.0
    validation_key = "val_dice"
    validation_name = "val Dice"
    find_unused_parameters = False
    limit_cpu_threads = True
    cpu_bf16 = True

    def __init__(
        self,
        config: TrainConfig,
        *,
        plans: Plans,
        network: NetworkConfig,
        manifest: DatasetManifest,
        root: Path,
        score_fn: ScoreFn | None,
    ) -> None:
        self.config, self.plans, self.network = config, plans, network
        self.manifest, self.root, self.score_fn = manifest, root, score_fn
        self.batch_size = config.batch_size or plans.batch_size

    def prepare(self, *, device: torch.device) -> None:
        self.dataset, self.validation, self.chain, self.probabilities = _build_datasets(
            self.config, self.plans, self.manifest, self.root, self.batch_size
        )
        self.loss_fn = _make_loss(self.network, class_weights=self.config.class_weights)

    def batches(
        self, *, epoch_seed: int, device: torch.device
    ) -> Iterator[tuple[torch.Tensor, Any]]:
        """Patches and their targets: the label, or ``(label, pixel weights)`` with
        ``contact_weight``."""
        self.chain.set_random_state(seed=epoch_seed)
        for batch in _batches(
            self.dataset,
            batch_size=self.batch_size,
            iterations=self.config.iterations_per_epoch,
            seed=epoch_seed,
            num_workers=self.config.num_workers,
            probabilities=self.probabilities,
        ):
            label = batch["label"].to(device)
            if "weight" in batch:
                yield batch["image"].to(device).float(), (label, batch["weight"].to(device))
            else:
                yield batch["image"].to(device).float(), label

    def forward(
        self, module: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return module(inputs)

    def compute_loss(
        self, outputs: torch.Tensor, targets: Any
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if outputs.dtype == torch.bfloat16:  # cpu_bf16: the loss in float32 (bf16 sums lose digits)
            outputs = outputs.float()
        if isinstance(targets, tuple):  # (label, contact weights)
            return self.loss_fn(outputs, targets[0], targets[1]), {}
        return self.loss_fn(outputs, targets), {}

    def can_validate(self) -> bool:
        return self.score_fn is not None and bool(self.validation)

    def validate(self, model: torch.nn.Module, *, device: torch.device) -> float:
        if self.score_fn is None:
            return float("nan")
        return _validate(
            model,
            self.validation,
            plans=self.plans,
            overlap=self.config.overlap,
            device=device,
            score_fn=self.score_fn,
        )


def check_plans_match(plans: Plans, manifest: DatasetManifest) -> None:
    """Raise ConfigError if the plans were made for another dataset."""
    if plans.dataset != manifest.name:
        raise ConfigError(
            f"plans are for dataset {plans.dataset!r}, the manifest is {manifest.name!r}; "
            "run medseg plan on this manifest"
        )
